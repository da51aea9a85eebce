//! Who is calling, and what they may do.
//!
//! Two kinds of bearer token are accepted:
//! - our own HS256 tokens ([`device_tokens`]): device tokens name a device and its user; the
//!   dashboard's user tokens name only a user. Secrets rotate by key id (`AUTH_TOKEN_SECRETS`).
//! - an identity provider's user tokens ([`jwks`]): RS256, ES256 or EdDSA, checked against its
//!   JWKS with the configured issuer and audience. They never act as device tokens.
//!
//! Every token must carry `exp` and live no longer than `AUTH_MAX_TOKEN_LIFETIME_SECONDS`; `alg:
//! none` and every algorithm not configured are refused. [`authorize_device`],
//! [`authorize_owner`] and [`authorize_user_token`] turn the claims into a decision whose 403
//! detail says the real reason.

pub mod device_tokens;
pub mod jwks;
pub mod settings;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::Algorithm;
use serde::{Deserialize, Serialize};

pub use device_tokens::{TokenSigner, DEFAULT_KID};
pub use settings::{IdentitySettings, IdpSettings, JwksSource};

use crate::config::Settings;
use crate::problem::ApiError;

/// 30 days: the dashboard token `make run` mints (720 h) and the simulator's (7 days) fit.
pub const DEFAULT_MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(30 * 24 * 3600);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: String,
    /// The device id, for device tokens. Always `None` for an identity provider's tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// Expiry, seconds since the epoch.
    pub exp: u64,
    /// Issued at, seconds since the epoch (the verification time when a provider's token has none).
    pub iat: u64,
}

/// The claims as a token carries them: every one optional here, so a missing one is reported
/// by name (jsonwebtoken's required-claim check) rather than as a JSON error.
#[derive(Debug, Deserialize)]
struct RawClaims {
    sub: Option<String>,
    #[serde(default)]
    device: Option<String>,
    exp: Option<u64>,
    iat: Option<u64>,
}

impl RawClaims {
    fn into_claims(self, device_allowed: bool) -> Result<Claims, AuthError> {
        let sub = self.sub.filter(|s| !s.is_empty()).ok_or_else(|| AuthError::MissingClaim("sub".into()))?;
        let exp = self.exp.ok_or_else(|| AuthError::MissingClaim("exp".into()))?;
        Ok(Claims {
            sub,
            device: if device_allowed { self.device } else { None },
            exp,
            iat: self.iat.unwrap_or_else(now),
        })
    }
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("missing bearer token: send 'Authorization: Bearer <token>'")]
    Missing,
    #[error("the token has expired; get a new one")]
    Expired,
    #[error("the token is malformed or its signature is not valid")]
    Invalid,
    #[error("tokens signed with {0} are not accepted here")]
    Algorithm(String),
    #[error("the token's key id {0:?} is not one of the active keys")]
    UnknownKey(String),
    #[error("the token has no {0:?} claim; every token must carry it")]
    MissingClaim(String),
    #[error("the token is valid for {lifetime} s, more than the {max} s allowed; use a shorter-lived token")]
    Lifetime { lifetime: u64, max: u64 },
    #[error("the token was not issued by the configured identity provider (wrong iss)")]
    WrongIssuer,
    #[error("the token is not meant for this service (wrong aud)")]
    WrongAudience,
    #[error("the token is not valid yet (nbf or iat in the future); check the issuer's clock")]
    NotYetValid,
}

impl AuthError {
    fn from_jwt(e: jsonwebtoken::errors::Error) -> Self {
        match e.kind() {
            ErrorKind::ExpiredSignature => AuthError::Expired,
            ErrorKind::MissingRequiredClaim(c) => AuthError::MissingClaim(c.clone()),
            ErrorKind::InvalidIssuer => AuthError::WrongIssuer,
            ErrorKind::InvalidAudience => AuthError::WrongAudience,
            ErrorKind::ImmatureSignature => AuthError::NotYetValid,
            _ => AuthError::Invalid,
        }
    }

    /// The `WWW-Authenticate` challenge (RFC 6750 §3): no error code when no token was sent.
    pub fn challenge(&self) -> String {
        match self {
            AuthError::Missing => "Bearer".to_owned(),
            other => {
                format!("Bearer error=\"invalid_token\", error_description=\"{}\"", other.to_string().replace('"', "'"))
            }
        }
    }
}

pub(crate) fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs()
}

/// A token may be valid for at most `max`, from when it was issued and from now: a stolen
/// long-lived token is worth less, and a provider's misconfiguration is caught.
pub(crate) fn check_lifetime(exp: u64, iat: Option<u64>, max: Duration) -> Result<(), AuthError> {
    // Issued in the future (beyond a minute of clock skew): not a token we can reason about.
    if iat.is_some_and(|iat| iat > now() + 60) {
        return Err(AuthError::NotYetValid);
    }
    let max = max.as_secs();
    let lifetime = iat.map_or(0, |iat| exp.saturating_sub(iat)).max(exp.saturating_sub(now()));
    if lifetime > max {
        return Err(AuthError::Lifetime { lifetime, max });
    }
    Ok(())
}

/// The token of an `Authorization: Bearer` header value.
pub fn bearer(header: Option<&str>) -> Result<&str, AuthError> {
    let value = header.ok_or(AuthError::Missing)?;
    let (scheme, token) = value.split_once(' ').ok_or(AuthError::Invalid)?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(AuthError::Invalid);
    }
    Ok(token.trim())
}

/// Verifies every token the service accepts: our HS256 tokens by key id, and, when configured,
/// the identity provider's by its JWKS.
pub struct Verifier {
    tokens: TokenSigner,
    idp: Option<jwks::IdentityProvider>,
}

impl Verifier {
    /// Loads a JWKS file now, so a bad one stops the start; a JWKS URL is fetched on first use.
    pub fn new(settings: &Settings) -> anyhow::Result<Self> {
        Self::from_parts(&settings.auth_token_secret, &settings.identity)
    }

    /// From the current HS256 secret and the identity settings.
    pub fn from_parts(current: &crate::config::Secret, identity: &IdentitySettings) -> anyhow::Result<Self> {
        Ok(Self {
            tokens: TokenSigner::with_keys(current, &identity.previous_token_secrets, identity.max_token_lifetime),
            idp: identity
                .idp
                .clone()
                .map(|idp| jwks::IdentityProvider::new(idp, identity.max_token_lifetime))
                .transpose()?,
        })
    }

    /// The HS256 side, which also mints.
    pub fn tokens(&self) -> &TokenSigner {
        &self.tokens
    }

    pub fn identity_provider(&self) -> Option<&jwks::IdentityProvider> {
        self.idp.as_ref()
    }

    /// The algorithm in the header picks the verifier, and each verifier accepts only its own:
    /// an HS256 token is never checked with a provider's public key, nor an RS256 one with our
    /// secret, so algorithm confusion has nothing to confuse.
    pub async fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        // `alg: none` (and any name jsonwebtoken does not know) fails to parse here.
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::Invalid)?;
        match (header.alg, &self.idp) {
            (Algorithm::HS256, _) => self.tokens.verify(token),
            (alg, Some(idp)) if idp.accepts(alg) => idp.verify(token, &header).await,
            (alg, _) => Err(AuthError::Algorithm(format!("{alg:?}"))),
        }
    }

    pub async fn verify_header(&self, header: Option<&str>) -> Result<Claims, AuthError> {
        self.verify(bearer(header)?).await
    }

    /// The claims of the request's `Authorization` header.
    pub async fn verify_request(&self, req: &actix_web::HttpRequest) -> Result<Claims, AuthError> {
        let auth = req.headers().get(actix_web::http::header::AUTHORIZATION).and_then(|v| v.to_str().ok());
        self.verify_header(auth).await
    }
}

/// The outcome of verifying a request's bearer token, left in its extensions by [`authenticate`].
#[derive(Clone)]
struct Authentication(Result<Claims, AuthError>);

/// Middleware: verifies the `Authorization` header, when there is one, before any handler runs
/// (verifying a provider's token may fetch its JWKS, which is async), and leaves the outcome for
/// [`request_claims`]. It refuses nothing itself: public routes ignore it.
pub async fn authenticate(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody>,
) -> Result<actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>, actix_web::Error> {
    use actix_web::HttpMessage;
    let state = req.app_data::<actix_web::web::Data<crate::AppState>>().cloned();
    let header = req.headers().get(actix_web::http::header::AUTHORIZATION).map(|v| v.to_str().unwrap_or(""));
    if let (Some(state), Some(header)) = (state, header) {
        let outcome = state.verifier.verify_header(Some(header)).await;
        req.extensions_mut().insert(Authentication(outcome));
    }
    next.call(req).await
}

/// The caller's verified claims, as [`authenticate`] found them.
pub fn request_claims(req: &actix_web::HttpRequest) -> Result<Claims, AuthError> {
    use actix_web::HttpMessage;
    match req.extensions().get::<Authentication>() {
        Some(Authentication(outcome)) => outcome.clone(),
        // A header nobody verified (the middleware is missing) is never trusted.
        None if req.headers().contains_key(actix_web::http::header::AUTHORIZATION) => Err(AuthError::Invalid),
        None => Err(AuthError::Missing),
    }
}

/// `POST /v1/devices/{device}/syncs`: only that device's own token.
pub fn authorize_device(claims: &Claims, device: &str) -> Result<(), ApiError> {
    match &claims.device {
        None => Err(ApiError::Forbidden("a user token cannot send syncs; use the device's token".into())),
        Some(d) if d != device => {
            Err(ApiError::WrongDevice { token_device: d.clone(), path_device: device.to_owned() })
        }
        Some(_) => Ok(()),
    }
}

/// Reads of a user's data: the user's token, or the token of one of their devices.
pub fn authorize_owner(claims: &Claims, user: &str) -> Result<(), ApiError> {
    if claims.sub == user {
        Ok(())
    } else {
        Err(ApiError::Forbidden(format!("this token is for user {:?}; it cannot read {user:?}", claims.sub)))
    }
}

/// Acts on a user's whole account (erasure, export): the user's own token only. The kind of
/// token is checked first, so a device token hears that, whoever it belongs to.
pub fn authorize_user_token(claims: &Claims, user: &str) -> Result<(), ApiError> {
    if let Some(device) = &claims.device {
        return Err(ApiError::Forbidden(format!(
            "a device token (device {device:?}) cannot be used here; use the user's token"
        )));
    }
    if claims.sub != user {
        return Err(ApiError::Forbidden(format!(
            "this token is for user {:?}; it cannot act for {user:?}",
            claims.sub
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(user: &str, device: Option<&str>) -> Claims {
        Claims { sub: user.into(), device: device.map(Into::into), exp: now() + 60, iat: now() }
    }

    fn detail(r: Result<(), ApiError>) -> String {
        r.unwrap_err().to_string()
    }

    #[test]
    fn every_refusal_says_its_real_reason() {
        assert!(detail(authorize_device(&claims("a", None), "d1")).contains("a user token cannot send syncs"));
        assert!(detail(authorize_device(&claims("a", Some("d2")), "d1")).contains("device \"d2\", not \"d1\""));
        assert!(authorize_device(&claims("a", Some("d1")), "d1").is_ok());
        assert!(detail(authorize_owner(&claims("b", None), "a")).contains("for user \"b\"; it cannot read \"a\""));
        assert!(authorize_owner(&claims("a", Some("d1")), "a").is_ok(), "a device token of the user reads");
        assert!(detail(authorize_user_token(&claims("a", Some("d1")), "a")).contains("a device token"));
        assert!(detail(authorize_user_token(&claims("b", None), "a")).contains("for user \"b\""));
        assert!(authorize_user_token(&claims("a", None), "a").is_ok());
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive_and_required() {
        assert_eq!(bearer(Some("Bearer abc")), Ok("abc"));
        assert_eq!(bearer(Some("bEaReR  abc ")), Ok("abc"));
        assert_eq!(bearer(Some("Basic abc")), Err(AuthError::Invalid));
        assert_eq!(bearer(Some("Bearer ")), Err(AuthError::Invalid));
        assert_eq!(bearer(None), Err(AuthError::Missing));
    }

    #[test]
    fn challenges_follow_rfc_6750() {
        assert_eq!(AuthError::Missing.challenge(), "Bearer");
        assert!(AuthError::Expired.challenge().starts_with("Bearer error=\"invalid_token\""));
    }

    #[test]
    fn the_lifetime_is_bounded_from_issue_and_from_now() {
        let max = Duration::from_secs(100);
        let t = now();
        assert!(check_lifetime(t + 100, Some(t), max).is_ok());
        assert!(check_lifetime(t + 101, Some(t), max).is_err());
        assert!(check_lifetime(t + 50, Some(t - 100), max).is_err(), "exp - iat counts");
        assert!(check_lifetime(t + 1000, None, max).is_err(), "exp - now counts");
    }
}
