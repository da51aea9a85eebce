//! The TEST-ONLY identity-provider keys of this directory (README.md), as signing keys and as
//! the JWKS a provider would publish. Shared by identity.rs and isolation.rs.
#![allow(dead_code)] // each test binary uses a part

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

pub const ISSUER: &str = "https://idp.test.invalid/realms/fitness";
pub const AUDIENCE: &str = "fitness-api";

pub struct IdpKey {
    pub kid: &'static str,
    pub alg: Algorithm,
    pub encoding: EncodingKey,
}

fn path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/keys").join(name)
}

/// The DER inside a PEM file.
pub fn pem_der(name: &str) -> Vec<u8> {
    let text = std::fs::read_to_string(path(name)).expect("a test key");
    let body: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD.decode(body).expect("PEM base64")
}

/// The PEM text itself (the algorithm-confusion test uses a public key as an HMAC secret).
pub fn pem_text(name: &str) -> String {
    std::fs::read_to_string(path(name)).expect("a test key")
}

pub fn rsa1() -> IdpKey {
    IdpKey { kid: "rsa-1", alg: Algorithm::RS256, encoding: EncodingKey::from_rsa_der(&pem_der("rsa-1.test-only.pem")) }
}

pub fn rsa2() -> IdpKey {
    IdpKey { kid: "rsa-2", alg: Algorithm::RS256, encoding: EncodingKey::from_rsa_der(&pem_der("rsa-2.test-only.pem")) }
}

pub fn ec1() -> IdpKey {
    IdpKey { kid: "ec-1", alg: Algorithm::ES256, encoding: EncodingKey::from_ec_der(&pem_der("ec-1.test-only.pem")) }
}

pub fn ed1() -> IdpKey {
    IdpKey { kid: "ed-1", alg: Algorithm::EdDSA, encoding: EncodingKey::from_ed_der(&pem_der("ed-1.test-only.pem")) }
}

impl IdpKey {
    /// The public JWK, as the provider publishes it.
    pub fn jwk(&self) -> Value {
        let mut jwk = Jwk::from_encoding_key(&self.encoding, self.alg).expect("a JWK from the test key");
        jwk.common.key_id = Some(self.kid.to_owned());
        serde_json::to_value(jwk).unwrap()
    }

    /// A token with these claims, signed with this key and naming its kid.
    pub fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = Some(self.kid.to_owned());
        jsonwebtoken::encode(&header, claims, &self.encoding).unwrap()
    }
}

pub fn jwks(keys: &[&IdpKey]) -> String {
    json!({"keys": keys.iter().map(|k| k.jwk()).collect::<Vec<_>>()}).to_string()
}

pub fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// A provider's user token's claims, valid for `ttl` seconds.
pub fn user_claims(user: &str, ttl: u64) -> Value {
    json!({"sub": user, "iss": ISSUER, "aud": AUDIENCE, "iat": now(), "exp": now() + ttl})
}
