//! Identity settings from the environment: the HS256 secrets (with key ids, for rotation), the
//! token lifetime bound, and the identity provider (JWKS, issuer, audience).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use jsonwebtoken::Algorithm;

use super::DEFAULT_MAX_TOKEN_LIFETIME;
use service_kit::env;

use crate::config::Secret;

/// Shortest HS256 secret accepted (RFC 7518 §3.2 asks for at least the hash size; 16 bytes is
/// the floor this service has always enforced).
pub const MIN_SECRET_BYTES: usize = 16;

/// Algorithms an identity provider's tokens may use.
pub const IDP_ALGORITHMS: [Algorithm; 3] = [Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA];

#[derive(Debug, Clone)]
pub struct IdentitySettings {
    /// Secrets that still verify but no longer mint (`AUTH_TOKEN_SECRETS` after the first).
    /// The current one is `Settings::auth_token_secret`.
    pub previous_token_secrets: Vec<Secret>,
    /// Longest a token may be valid, from `iat` and from now.
    pub max_token_lifetime: Duration,
    /// An external identity provider's user tokens, when configured.
    pub idp: Option<IdpSettings>,
}

impl Default for IdentitySettings {
    fn default() -> Self {
        Self { previous_token_secrets: Vec::new(), max_token_lifetime: DEFAULT_MAX_TOKEN_LIFETIME, idp: None }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksSource {
    File(PathBuf),
    Url(String),
}

#[derive(Debug, Clone)]
pub struct IdpSettings {
    pub jwks: JwksSource,
    /// The `iss` every provider token must carry.
    pub issuer: String,
    /// The `aud` every provider token must include.
    pub audience: String,
    pub algorithms: Vec<Algorithm>,
    /// Bounds on how long a fetched JWKS is used before it is fetched again, whatever its
    /// `Cache-Control: max-age` says (no max-age: the minimum).
    pub cache_min: Duration,
    pub cache_max: Duration,
    /// Least time between two fetches that unknown key ids trigger, so forged tokens with random
    /// `kid`s cannot make us hammer the provider.
    pub refetch_interval: Duration,
    /// Longest one fetch may take.
    pub fetch_timeout: Duration,
}

impl IdpSettings {
    /// Defaults for everything but what must be configured.
    pub fn new(jwks: JwksSource, issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        Self {
            jwks,
            issuer: issuer.into(),
            audience: audience.into(),
            algorithms: IDP_ALGORITHMS.to_vec(),
            cache_min: Duration::from_secs(60),
            cache_max: Duration::from_secs(24 * 3600),
            refetch_interval: Duration::from_secs(30),
            fetch_timeout: Duration::from_secs(5),
        }
    }
}

impl IdentitySettings {
    pub fn from_env() -> anyhow::Result<Self> {
        let (_, previous_token_secrets) = token_secrets_from_env()?;
        let max_token_lifetime = env::seconds("AUTH_MAX_TOKEN_LIFETIME_SECONDS", DEFAULT_MAX_TOKEN_LIFETIME)?;
        if max_token_lifetime.is_zero() {
            bail!("AUTH_MAX_TOKEN_LIFETIME_SECONDS is 0: no token could be valid; unset it for 30 days");
        }
        Ok(Self { previous_token_secrets, max_token_lifetime, idp: idp_from_env()? })
    }
}

/// The current secret (mints) and the previous ones (still verify): `AUTH_TOKEN_SECRETS` when it
/// is set (it wins over `AUTH_TOKEN_SECRET`), else `AUTH_TOKEN_SECRET` under key id `default`.
/// Required: a default would let anyone mint tokens for a forgotten deployment.
pub fn token_secrets_from_env() -> anyhow::Result<(Secret, Vec<Secret>)> {
    if let Ok(raw) = std::env::var("AUTH_TOKEN_SECRETS") {
        let mut secrets = parse_token_secrets(&raw)?;
        let current = secrets.remove(0);
        return Ok((current, secrets));
    }
    match std::env::var("AUTH_TOKEN_SECRET") {
        Ok(s) if s.len() >= MIN_SECRET_BYTES => Ok((Secret::new(s), Vec::new())),
        Ok(_) => bail!("AUTH_TOKEN_SECRET is shorter than {MIN_SECRET_BYTES} bytes; use a long random value"),
        Err(_) => bail!(
            "AUTH_TOKEN_SECRET is not set (nor AUTH_TOKEN_SECRETS); set it to a long random value (e.g. `openssl rand -hex 32`), the same for every replica"
        ),
    }
}

/// `kid1=secret1,kid2=secret2`: the current secret first. Key ids are 1 to 64 of
/// `A-Z a-z 0-9 . _ -`; a secret is everything after the first `=` (so base64 padding is fine)
/// and may not contain a comma.
pub fn parse_token_secrets(raw: &str) -> anyhow::Result<Vec<Secret>> {
    let mut secrets: Vec<Secret> = Vec::new();
    for (i, entry) in raw.split(',').map(str::trim).enumerate() {
        let n = i + 1;
        let (kid, secret) = entry.split_once('=').with_context(|| {
            format!("AUTH_TOKEN_SECRETS entry {n} is not `kid=secret` (the format is `kid1=secret1,kid2=secret2`, current first)")
        })?;
        let kid = kid.trim();
        if kid.is_empty()
            || kid.len() > 64
            || !kid.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        {
            bail!("AUTH_TOKEN_SECRETS entry {n}: the key id {kid:?} must be 1 to 64 of A-Z a-z 0-9 . _ -");
        }
        if secret.len() < MIN_SECRET_BYTES {
            bail!(
                "AUTH_TOKEN_SECRETS entry {n} (key id {kid:?}): the secret is shorter than {MIN_SECRET_BYTES} bytes; use a long random value"
            );
        }
        if secrets.iter().any(|s| s.key_id() == kid) {
            bail!("AUTH_TOKEN_SECRETS names key id {kid:?} twice");
        }
        secrets.push(Secret::with_key_id(kid, secret));
    }
    if secrets.is_empty() {
        bail!("AUTH_TOKEN_SECRETS is empty");
    }
    Ok(secrets)
}

fn non_empty(name: &str) -> Option<String> {
    env::optional(name).map(|v| v.trim().to_owned())
}

fn idp_from_env() -> anyhow::Result<Option<IdpSettings>> {
    let jwks = match (non_empty("AUTH_JWKS_FILE"), non_empty("AUTH_JWKS_URL")) {
        (Some(_), Some(_)) => bail!("set AUTH_JWKS_FILE or AUTH_JWKS_URL, not both"),
        (Some(path), None) => Some(JwksSource::File(path.into())),
        (None, Some(url)) => Some(JwksSource::Url(check_url(&url)?)),
        (None, None) => None,
    };
    let (issuer, audience) = (non_empty("AUTH_JWT_ISSUER"), non_empty("AUTH_JWT_AUDIENCE"));
    let Some(jwks) = jwks else {
        if issuer.is_some() || audience.is_some() {
            bail!("AUTH_JWT_ISSUER/AUTH_JWT_AUDIENCE are set but no JWKS is: set AUTH_JWKS_FILE or AUTH_JWKS_URL");
        }
        return Ok(None);
    };
    let issuer = issuer.context("AUTH_JWT_ISSUER is required with a JWKS: the `iss` of the provider's tokens")?;
    let audience =
        audience.context("AUTH_JWT_AUDIENCE is required with a JWKS: the `aud` the provider puts in tokens for us")?;
    let mut idp = IdpSettings::new(jwks, issuer, audience);
    if let Some(raw) = non_empty("AUTH_JWT_ALGORITHMS") {
        idp.algorithms = parse_algorithms(&raw)?;
    }
    idp.cache_min = env::seconds("AUTH_JWKS_CACHE_MIN_SECONDS", idp.cache_min)?;
    idp.cache_max = env::seconds("AUTH_JWKS_CACHE_MAX_SECONDS", idp.cache_max)?;
    idp.refetch_interval = env::seconds("AUTH_JWKS_REFETCH_INTERVAL_SECONDS", idp.refetch_interval)?;
    if idp.cache_min > idp.cache_max {
        bail!("AUTH_JWKS_CACHE_MIN_SECONDS is more than AUTH_JWKS_CACHE_MAX_SECONDS");
    }
    Ok(Some(idp))
}

/// `https://`, verified against the system's CA certificates; plain `http://` only on loopback
/// (a test, or a local proxy beside the service): over any network, whoever can answer for the
/// provider could publish keys and sign any user's token.
fn check_url(url: &str) -> anyhow::Result<String> {
    let lower = url.to_ascii_lowercase();
    if lower.starts_with("https://") {
        return Ok(url.to_owned());
    }
    let Some(rest) = lower.strip_prefix("http://") else {
        bail!("AUTH_JWKS_URL {url:?} is not an https:// URL");
    };
    if crate::config::is_loopback_host(rest) {
        Ok(url.to_owned())
    } else {
        bail!(
            "AUTH_JWKS_URL {url:?}: plain http is accepted on loopback only (a local proxy); use the provider's https:// URL, or mount the JWKS and set AUTH_JWKS_FILE"
        )
    }
}

/// `RS256,ES256,EdDSA` (any subset).
pub fn parse_algorithms(raw: &str) -> anyhow::Result<Vec<Algorithm>> {
    let mut algorithms = Vec::new();
    for name in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let alg = IDP_ALGORITHMS.into_iter().find(|a| format!("{a:?}") == name).with_context(|| {
            format!("AUTH_JWT_ALGORITHMS: {name:?} is not accepted; choose from RS256, ES256, EdDSA (HS256 is our own tokens', keyed by AUTH_TOKEN_SECRETS)")
        })?;
        if !algorithms.contains(&alg) {
            algorithms.push(alg);
        }
    }
    if algorithms.is_empty() {
        bail!("AUTH_JWT_ALGORITHMS is empty");
    }
    Ok(algorithms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_secrets_parse_in_order_with_their_key_ids() {
        let s = parse_token_secrets("k2=new-secret-0123456789, k1=old-secret-0123456789==").unwrap();
        assert_eq!(s.iter().map(Secret::key_id).collect::<Vec<_>>(), ["k2", "k1"]);
        assert_eq!(s[1].expose(), b"old-secret-0123456789==");
    }

    #[test]
    fn bad_token_secrets_name_the_variable_and_the_entry() {
        for (raw, needle) in [
            ("k1=short", "entry 1 (key id \"k1\"): the secret is shorter than 16 bytes"),
            ("nokid", "entry 1 is not `kid=secret`"),
            ("k1=0123456789abcdef,k1=0123456789abcdefg", "names key id \"k1\" twice"),
            ("k 1=0123456789abcdef", "the key id \"k 1\""),
            ("k1=0123456789abcdef,", "entry 2 is not"),
        ] {
            let e = parse_token_secrets(raw).unwrap_err().to_string();
            assert!(e.contains("AUTH_TOKEN_SECRETS") && e.contains(needle), "{raw}: {e}");
        }
        assert_eq!(super::super::DEFAULT_KID, "default");
    }

    #[test]
    fn algorithms_are_limited_to_the_asymmetric_three() {
        assert_eq!(parse_algorithms("EdDSA, RS256").unwrap(), [Algorithm::EdDSA, Algorithm::RS256]);
        assert!(parse_algorithms("HS256").unwrap_err().to_string().contains("\"HS256\" is not accepted"));
        assert!(parse_algorithms("none").is_err());
    }

    #[test]
    fn jwks_urls_are_https_or_loopback_http() {
        assert!(check_url("https://idp.example/.well-known/jwks.json").is_ok());
        assert!(check_url("http://127.0.0.1:9/jwks").is_ok());
        assert!(check_url("http://localhost/jwks").is_ok());
        assert!(check_url("http://[::1]:8080/jwks").is_ok());
        let remote = check_url("http://idp.example/jwks").unwrap_err().to_string();
        assert!(remote.contains("loopback only") && remote.contains("AUTH_JWKS_FILE"), "{remote}");
        assert!(check_url("http://127.0.0.1.evil.example/jwks").is_err());
        assert!(check_url("http://user@127.0.0.1@evil.example/jwks").is_err());
        assert!(check_url("file:///etc/passwd").is_err());
    }
}
