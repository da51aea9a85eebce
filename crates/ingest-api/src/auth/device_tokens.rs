//! First-party HS256 tokens: device tokens (`sub` = user, `device` = device) and the dashboard's
//! user tokens (no `device`). Signed with the current secret; verified with whichever active
//! secret the token's `kid` names, so secrets rotate without logging every device out.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};

use super::{check_lifetime, AuthError, Claims, RawClaims, DEFAULT_MAX_TOKEN_LIFETIME};
use crate::config::Secret;

/// The key id of the single `AUTH_TOKEN_SECRET`, and of tokens minted before key ids existed
/// (they have no `kid`).
pub const DEFAULT_KID: &str = "default";

/// Mints and verifies HS256 tokens with a ring of secrets: the first mints, all verify.
#[derive(Clone)]
pub struct TokenSigner {
    current: String,
    encoding: EncodingKey,
    decoding: HashMap<String, DecodingKey>,
    max_lifetime: Duration,
}

impl TokenSigner {
    /// One secret, named by its key id (`default` unless it came from `AUTH_TOKEN_SECRETS`).
    pub fn new(secret: &Secret) -> Self {
        Self::with_keys(secret, &[], DEFAULT_MAX_TOKEN_LIFETIME)
    }

    /// `current` mints; it and `previous` verify. A later duplicate key id never shadows an
    /// earlier one (the settings refuse duplicates anyway).
    pub fn with_keys(current: &Secret, previous: &[Secret], max_lifetime: Duration) -> Self {
        let mut decoding = HashMap::new();
        for s in std::iter::once(current).chain(previous) {
            decoding.entry(s.key_id().to_owned()).or_insert_with(|| DecodingKey::from_secret(s.expose()));
        }
        Self {
            current: current.key_id().to_owned(),
            encoding: EncodingKey::from_secret(current.expose()),
            decoding,
            max_lifetime,
        }
    }

    /// The key id new tokens carry.
    pub fn current_kid(&self) -> &str {
        &self.current
    }

    pub fn max_lifetime(&self) -> Duration {
        self.max_lifetime
    }

    pub fn mint(&self, user: &str, device: Option<&str>, ttl: Duration) -> String {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        let claims =
            Claims { sub: user.to_owned(), device: device.map(str::to_owned), iat: now, exp: now + ttl.as_secs() };
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(self.current.clone());
        encode(&header, &claims, &self.encoding).expect("HS256 signing cannot fail")
    }

    /// Checks the algorithm (HS256 only), the key id, the signature (constant-time HMAC
    /// comparison inside jsonwebtoken), the expiry and the lifetime.
    pub fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::Invalid)?;
        if header.alg != Algorithm::HS256 {
            return Err(AuthError::Algorithm(format!("{:?}", header.alg)));
        }
        let kid = header.kid.as_deref().unwrap_or(DEFAULT_KID);
        let key = self.decoding.get(kid).ok_or_else(|| AuthError::UnknownKey(kid.to_owned()))?;
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub"]);
        let raw = decode::<RawClaims>(token, key, &validation).map(|d| d.claims).map_err(AuthError::from_jwt)?;
        let iat = raw.iat;
        let claims = raw.into_claims(true)?;
        check_lifetime(claims.exp, iat, self.max_lifetime)?;
        Ok(claims)
    }

    /// The claims of an `Authorization: Bearer` header value (HS256 tokens only; the service
    /// verifies with [`super::Verifier`], which also knows the identity provider's keys).
    pub fn verify_header(&self, header: Option<&str>) -> Result<Claims, AuthError> {
        self.verify(super::bearer(header)?)
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
        let token = s.mint("u1", Some("d1"), Duration::from_secs(60));
        assert_eq!(jsonwebtoken::decode_header(&token).unwrap().kid.as_deref(), Some(DEFAULT_KID));
        let c = s.verify(&token).unwrap();
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

    #[test]
    fn a_rotated_secret_still_verifies_a_removed_one_does_not() {
        let old = Secret::with_key_id("k1", "old-secret-0123456789");
        let new = Secret::with_key_id("k2", "new-secret-0123456789");
        let before = TokenSigner::with_keys(&old, &[], DEFAULT_MAX_TOKEN_LIFETIME);
        let old_token = before.mint("u1", Some("d1"), Duration::from_secs(60));
        // Rotation: k2 is current, k1 still verifies.
        let rotated = TokenSigner::with_keys(&new, std::slice::from_ref(&old), DEFAULT_MAX_TOKEN_LIFETIME);
        assert_eq!(rotated.verify(&old_token).unwrap().sub, "u1");
        let new_token = rotated.mint("u1", Some("d1"), Duration::from_secs(60));
        assert_eq!(jsonwebtoken::decode_header(&new_token).unwrap().kid.as_deref(), Some("k2"));
        assert_eq!(rotated.verify(&new_token).unwrap().sub, "u1");
        // k1 removed: its tokens fail, by key id.
        let after = TokenSigner::with_keys(&new, &[], DEFAULT_MAX_TOKEN_LIFETIME);
        assert_eq!(after.verify(&old_token), Err(AuthError::UnknownKey("k1".into())));
        assert!(after.verify(&new_token).is_ok());
    }

    #[test]
    fn a_token_claiming_another_kid_is_checked_with_that_kid_only() {
        let k1 = Secret::with_key_id("k1", "secret-one-0123456789");
        let k2 = Secret::with_key_id("k2", "secret-two-0123456789");
        let ring = TokenSigner::with_keys(&k1, std::slice::from_ref(&k2), DEFAULT_MAX_TOKEN_LIFETIME);
        // Signed with k1's secret but naming k2: the k2 secret does not match.
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some("k2".into());
        let claims = Claims { sub: "u1".into(), device: None, iat: super::super::now(), exp: super::super::now() + 60 };
        let token = encode(&header, &claims, &EncodingKey::from_secret(k1.expose())).unwrap();
        assert_eq!(ring.verify(&token), Err(AuthError::Invalid));
    }

    #[test]
    fn a_token_living_longer_than_the_maximum_is_refused() {
        let s = TokenSigner::with_keys(&Secret::new("0123456789abcdef0123"), &[], Duration::from_secs(3600));
        assert!(s.verify(&s.mint("u1", Some("d1"), Duration::from_secs(3600))).is_ok());
        let long = s.mint("u1", Some("d1"), Duration::from_secs(3601));
        assert!(matches!(s.verify(&long), Err(AuthError::Lifetime { .. })), "{:?}", s.verify(&long));
    }

    #[test]
    fn a_token_without_exp_is_refused() {
        #[derive(serde::Serialize)]
        struct NoExp<'a> {
            sub: &'a str,
            iat: u64,
        }
        let secret = Secret::new("0123456789abcdef0123");
        let token = encode(
            &Header::new(Algorithm::HS256),
            &NoExp { sub: "u1", iat: super::super::now() },
            &EncodingKey::from_secret(secret.expose()),
        )
        .unwrap();
        assert_eq!(TokenSigner::new(&secret).verify(&token), Err(AuthError::MissingClaim("exp".into())));
    }
}
