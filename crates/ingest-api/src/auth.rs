//! Bearer tokens: HS256 JWTs signed with `AUTH_TOKEN_SECRET`. A device token names a device and
//! its user; a user token names only a user (for the read routes).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::config::Secret;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: String,
    /// The device id, for device tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// Expiry, seconds since the epoch.
    pub exp: u64,
    pub iat: u64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("missing bearer token: send 'Authorization: Bearer <token>'")]
    Missing,
    #[error("the token has expired; get a new one")]
    Expired,
    #[error("the token is malformed or its signature is not valid")]
    Invalid,
}

#[derive(Clone)]
pub struct TokenSigner {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl TokenSigner {
    pub fn new(secret: &Secret) -> Self {
        Self {
            encoding: EncodingKey::from_secret(secret.expose()),
            decoding: DecodingKey::from_secret(secret.expose()),
        }
    }

    pub fn mint(&self, user: &str, device: Option<&str>, ttl: Duration) -> String {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        let claims =
            Claims { sub: user.to_owned(), device: device.map(str::to_owned), iat: now, exp: now + ttl.as_secs() };
        encode(&Header::new(Algorithm::HS256), &claims, &self.encoding).expect("HS256 signing cannot fail")
    }

    /// Checks the signature (constant-time HMAC comparison inside jsonwebtoken) and the expiry.
    pub fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub"]);
        decode::<Claims>(token, &self.decoding, &validation).map(|d| d.claims).map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::ExpiredSignature => AuthError::Expired,
            _ => AuthError::Invalid,
        })
    }

    /// The claims of an `Authorization: Bearer` header value.
    pub fn verify_header(&self, header: Option<&str>) -> Result<Claims, AuthError> {
        let value = header.ok_or(AuthError::Missing)?;
        let token =
            value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer ")).ok_or(AuthError::Invalid)?;
        self.verify(token.trim())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer(secret: &str) -> TokenSigner {
        TokenSigner::new(&Secret::new(secret))
    }

    #[test]
    fn device_and_user_tokens_verify_and_carry_their_claims() {
        let s = signer("0123456789abcdef0123");
        let c = s.verify(&s.mint("u1", Some("d1"), Duration::from_secs(60))).unwrap();
        assert_eq!((c.sub.as_str(), c.device.as_deref()), ("u1", Some("d1")));
        let c = s.verify(&s.mint("u1", None, Duration::from_secs(60))).unwrap();
        assert_eq!(c.device, None);
    }

    #[test]
    fn forged_expired_and_malformed_tokens_are_refused() {
        let s = signer("0123456789abcdef0123");
        let forged = signer("another-secret-0000").mint("u1", Some("d1"), Duration::from_secs(60));
        assert_eq!(s.verify(&forged), Err(AuthError::Invalid));
        let expired = s.mint("u1", Some("d1"), Duration::ZERO);
        std::thread::sleep(Duration::from_millis(1100));
        assert_eq!(s.verify(&expired), Err(AuthError::Expired));
        assert_eq!(s.verify("not.a.jwt"), Err(AuthError::Invalid));
        assert_eq!(s.verify_header(None), Err(AuthError::Missing));
        assert_eq!(s.verify_header(Some("Basic abc")), Err(AuthError::Invalid));
    }
}
