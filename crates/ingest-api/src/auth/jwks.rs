//! An identity provider's user tokens (RS256, ES256, EdDSA), verified against its JWKS.
//!
//! The key set comes from a file or an http URL and is cached: a URL's set for its
//! `Cache-Control: max-age`, bounded by the configured minimum and maximum; a file's for the
//! minimum. A token whose `kid` is not in the set makes us fetch again, at most once per
//! `refetch_interval`, so random key ids cannot make us hammer the provider. A failed fetch keeps
//! the last good set.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use anyhow::Context;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Header, Validation};

use super::settings::{IdpSettings, JwksSource};
use super::{check_lifetime, AuthError, Claims, RawClaims};

/// Largest JWKS document read (a real one is a few kB).
const MAX_JWKS_BYTES: usize = 1 << 20;

/// The usable keys of a set by key id, and the `max-age` it came with.
type Fetched = (HashMap<String, Arc<Key>>, Option<Duration>);

/// One usable key: the single algorithm it verifies, and the key.
struct Key {
    alg: Algorithm,
    decoding: DecodingKey,
}

#[derive(Default)]
struct Cache {
    keys: HashMap<String, Arc<Key>>,
    /// Until when the set is used without fetching again.
    fresh_until: Option<Instant>,
    /// When the last fetch (successful or not) started.
    last_fetch: Option<Instant>,
}

pub struct IdentityProvider {
    settings: IdpSettings,
    max_lifetime: Duration,
    http: reqwest::Client,
    cache: RwLock<Cache>,
    /// One fetch at a time; the others wait for its result.
    fetching: tokio::sync::Mutex<()>,
    fetches: AtomicU64,
}

impl IdentityProvider {
    /// A file is read now, so a missing or invalid one stops the start; a URL is fetched on
    /// first use (the provider may be starting too).
    pub fn new(settings: IdpSettings, max_lifetime: Duration) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(settings.fetch_timeout)
            .connect_timeout(settings.fetch_timeout)
            .build()
            .context("creating the JWKS HTTP client")?;
        let idp = Self {
            settings,
            max_lifetime,
            http,
            cache: RwLock::new(Cache::default()),
            fetching: tokio::sync::Mutex::new(()),
            fetches: AtomicU64::new(0),
        };
        if let JwksSource::File(path) = &idp.settings.jwks {
            let bytes =
                std::fs::read(path).with_context(|| format!("AUTH_JWKS_FILE {}: cannot read it", path.display()))?;
            let keys = parse_jwks(&bytes).with_context(|| format!("AUTH_JWKS_FILE {}", path.display()))?;
            idp.store(Ok((keys, None)), Instant::now());
        }
        Ok(idp)
    }

    pub fn accepts(&self, alg: Algorithm) -> bool {
        self.settings.algorithms.contains(&alg)
    }

    /// How many times the key set was fetched (or the file read) since the start.
    pub fn fetch_count(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    pub async fn verify(&self, token: &str, header: &Header) -> Result<Claims, AuthError> {
        let kid = header.kid.as_deref().ok_or_else(|| AuthError::MissingClaim("kid (header)".into()))?;
        let key = self.key(kid).await?;
        // The key verifies one algorithm; a token naming another is refused, so an ES256 token
        // cannot borrow an RSA key and the like.
        if key.alg != header.alg {
            return Err(AuthError::Algorithm(format!("{:?} with key {kid:?} (an {:?} key)", header.alg, key.alg)));
        }
        let mut validation = Validation::new(key.alg);
        validation.leeway = 0;
        validation.validate_nbf = true;
        validation.set_issuer(&[&self.settings.issuer]);
        validation.set_audience(&[&self.settings.audience]);
        validation.set_required_spec_claims(&["exp", "sub", "iss", "aud"]);
        let raw = jsonwebtoken::decode::<RawClaims>(token, &key.decoding, &validation)
            .map(|d| d.claims)
            .map_err(AuthError::from_jwt)?;
        let iat = raw.iat;
        // A provider's token is a user token, whatever claims it carries.
        let claims = raw.into_claims(false)?;
        check_lifetime(claims.exp, iat, self.max_lifetime)?;
        Ok(claims)
    }

    /// The key named `kid`, fetching the set when it is stale or does not know the kid.
    async fn key(&self, kid: &str) -> Result<Arc<Key>, AuthError> {
        let (found, fresh) = self.lookup(kid);
        match found {
            Some(key) if fresh => return Ok(key),
            // Stale: fetch again; if that fails the stale key still serves.
            Some(key) => {
                self.refresh(true).await;
                return Ok(self.lookup(kid).0.unwrap_or(key));
            }
            None => {
                self.refresh(!fresh).await;
            }
        }
        self.lookup(kid).0.ok_or_else(|| AuthError::UnknownKey(kid.to_owned()))
    }

    fn lookup(&self, kid: &str) -> (Option<Arc<Key>>, bool) {
        let cache = self.cache.read().unwrap_or_else(|e| e.into_inner());
        let fresh = cache.fresh_until.is_some_and(|t| Instant::now() < t);
        (cache.keys.get(kid).cloned(), fresh)
    }

    /// Fetches the set unless another caller just did. `stale` fetches whenever the set is
    /// stale; otherwise (an unknown kid in a fresh set) at most once per `refetch_interval`.
    async fn refresh(&self, stale: bool) {
        let started = Instant::now();
        let _one_at_a_time = self.fetching.lock().await;
        {
            let cache = self.cache.read().unwrap_or_else(|e| e.into_inner());
            // Someone fetched while we waited for the lock: use their result.
            if cache.last_fetch.is_some_and(|t| t >= started) {
                return;
            }
            let now = Instant::now();
            let is_fresh = cache.fresh_until.is_some_and(|t| now < t);
            let recently = cache.last_fetch.is_some_and(|t| now.duration_since(t) < self.settings.refetch_interval);
            if (stale && is_fresh) || (!stale && recently) {
                return;
            }
        }
        let fetch_started = Instant::now();
        self.cache.write().unwrap_or_else(|e| e.into_inner()).last_fetch = Some(fetch_started);
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let result = self.fetch().await;
        self.store(result, fetch_started);
    }

    /// The set and its `max-age`, from the file or the URL.
    async fn fetch(&self) -> anyhow::Result<Fetched> {
        match &self.settings.jwks {
            JwksSource::File(path) => {
                // A small local file, read at most once per refetch interval: not worth a thread.
                let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
                Ok((parse_jwks(&bytes)?, None))
            }
            JwksSource::Url(url) => {
                let mut res = self.http.get(url).send().await.with_context(|| format!("fetching {url}"))?;
                if !res.status().is_success() {
                    anyhow::bail!("fetching {url}: HTTP {}", res.status());
                }
                let max_age =
                    res.headers().get(reqwest::header::CACHE_CONTROL).and_then(|v| v.to_str().ok()).and_then(max_age);
                let mut body = Vec::new();
                while let Some(chunk) = res.chunk().await.with_context(|| format!("reading {url}"))? {
                    if body.len() + chunk.len() > MAX_JWKS_BYTES {
                        anyhow::bail!("{url}: the JWKS is larger than {MAX_JWKS_BYTES} bytes");
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok((parse_jwks(&body).with_context(|| url.clone())?, max_age))
            }
        }
    }

    fn store(&self, result: anyhow::Result<Fetched>, fetched: Instant) {
        let mut cache = self.cache.write().unwrap_or_else(|e| e.into_inner());
        match result {
            Ok((keys, max_age)) => {
                let ttl =
                    max_age.unwrap_or(self.settings.cache_min).clamp(self.settings.cache_min, self.settings.cache_max);
                log::info!("identity provider: {} signing key(s) loaded, kept for {} s", keys.len(), ttl.as_secs());
                cache.keys = keys;
                cache.fresh_until = Some(fetched + ttl);
            }
            Err(e) => {
                // Keep the last good set; try again after the minimum, not on every request.
                log::warn!("identity provider: the JWKS could not be loaded ({e:#}); keeping the last good set");
                cache.fresh_until = Some(fetched + self.settings.cache_min);
            }
        }
    }
}

/// `max-age` of a `Cache-Control` value; `no-store` and `no-cache` count as 0 (then the
/// configured minimum applies).
fn max_age(value: &str) -> Option<Duration> {
    value.split(',').map(str::trim).find_map(|d| {
        let d = d.to_ascii_lowercase();
        if d == "no-store" || d == "no-cache" {
            return Some(Duration::ZERO);
        }
        d.strip_prefix("max-age=").and_then(|n| n.trim_matches('"').parse().ok()).map(Duration::from_secs)
    })
}

/// The usable signing keys of a JWKS, by key id. Keys without a `kid`, for encryption, symmetric
/// (`oct`: a provider's set must never hand us an HMAC secret), or of other curves are skipped;
/// one odd key does not spoil the set.
fn parse_jwks(bytes: &[u8]) -> anyhow::Result<HashMap<String, Arc<Key>>> {
    #[derive(serde::Deserialize)]
    struct Set {
        keys: Vec<serde_json::Value>,
    }
    let set: Set = serde_json::from_slice(bytes).context("not a JWKS (a JSON object with a `keys` array)")?;
    let mut keys = HashMap::new();
    for value in set.keys {
        let Ok(jwk) = serde_json::from_value::<Jwk>(value) else { continue };
        let Some(kid) = jwk.common.key_id.clone() else { continue };
        if jwk.common.public_key_use.as_ref().is_some_and(|u| *u != PublicKeyUse::Signature) {
            continue;
        }
        let natural = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => Algorithm::RS256,
            AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P256 => Algorithm::ES256,
            AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => Algorithm::EdDSA,
            _ => continue,
        };
        // A key that names its algorithm is used with that one only.
        let alg = match jwk.common.key_algorithm.map(|a| a.to_string().parse::<Algorithm>()) {
            None => natural,
            Some(Ok(a)) if a == natural => a,
            Some(_) => continue,
        };
        let Ok(decoding) = DecodingKey::from_jwk(&jwk) else { continue };
        keys.insert(kid, Arc::new(Key { alg, decoding }));
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_age_is_read_and_no_cache_means_zero() {
        assert_eq!(max_age("public, max-age=300"), Some(Duration::from_secs(300)));
        assert_eq!(max_age("no-cache"), Some(Duration::ZERO));
        assert_eq!(max_age("public"), None);
        assert_eq!(max_age("max-age=abc"), None);
    }

    #[test]
    fn symmetric_and_kidless_keys_in_a_jwks_are_never_used() {
        let set = serde_json::json!({"keys": [
            {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQ"},
            {"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
            {"kty": "OKP", "crv": "Ed25519", "kid": "ed", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
            {"kty": "OKP", "crv": "Ed25519", "kid": "enc", "use": "enc", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
            {"kty": "weird", "kid": "w"},
        ]});
        let keys = parse_jwks(set.to_string().as_bytes()).unwrap();
        assert_eq!(keys.keys().collect::<Vec<_>>(), ["ed"]);
        assert_eq!(keys["ed"].alg, Algorithm::EdDSA);
        assert!(parse_jwks(b"[]").is_err());
    }
}
