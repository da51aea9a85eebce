//! Identity: our HS256 tokens with rotating secrets, and an identity provider's RS256, ES256 and
//! EdDSA tokens checked against its JWKS, from a file and from a real local HTTP server.

mod keys;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use ingest_api::auth::{AuthError, IdentitySettings, IdpSettings, JwksSource, TokenSigner, Verifier};
use ingest_api::config::Secret;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use keys::{ec1, ed1, jwks, rsa1, rsa2, user_claims, AUDIENCE, ISSUER};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SECRET: &str = "identity-test-secret-0123";

fn jwks_file(keys: &[&keys::IdpKey]) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("{}.jwks.json", testkit::unique("identity")));
    std::fs::write(&path, jwks(keys)).unwrap();
    path
}

fn with_idp(idp: IdpSettings) -> Verifier {
    let identity = IdentitySettings { idp: Some(idp), ..IdentitySettings::default() };
    Verifier::from_parts(&Secret::new(SECRET), &identity).expect("the verifier starts")
}

fn file_verifier() -> Verifier {
    with_idp(IdpSettings::new(JwksSource::File(jwks_file(&[&rsa1(), &ec1(), &ed1()])), ISSUER, AUDIENCE))
}

#[tokio::test]
async fn provider_tokens_verify_with_rs256_es256_and_eddsa_from_a_jwks_file() {
    let v = file_verifier();
    for key in [rsa1(), ec1(), ed1()] {
        let claims = v.verify(&key.sign(&user_claims("alice", 300))).await;
        assert_eq!(claims.map(|c| c.sub), Ok("alice".to_owned()), "{:?}", key.alg);
    }
}

#[tokio::test]
async fn a_provider_token_is_never_a_device_token() {
    let v = file_verifier();
    let mut claims = user_claims("alice", 300);
    claims["device"] = json!("band-1");
    let verified = v.verify(&rsa1().sign(&claims)).await.unwrap();
    assert_eq!(verified.device, None);
}

#[tokio::test]
async fn wrong_audience_wrong_issuer_and_missing_claims_are_refused() {
    let v = file_verifier();
    let key = rsa1();
    let mut c = user_claims("alice", 300);
    c["aud"] = json!("another-api");
    assert_eq!(v.verify(&key.sign(&c)).await, Err(AuthError::WrongAudience));
    let mut c = user_claims("alice", 300);
    c["iss"] = json!("https://evil.example/");
    assert_eq!(v.verify(&key.sign(&c)).await, Err(AuthError::WrongIssuer));
    let mut c = user_claims("alice", 300);
    c.as_object_mut().unwrap().remove("exp");
    assert_eq!(v.verify(&key.sign(&c)).await, Err(AuthError::MissingClaim("exp".into())));
    let mut c = user_claims("alice", 300);
    c.as_object_mut().unwrap().remove("aud");
    assert_eq!(v.verify(&key.sign(&c)).await, Err(AuthError::MissingClaim("aud".into())));
    let mut c = user_claims("alice", 300);
    c["exp"] = json!(keys::now() - 10);
    assert_eq!(v.verify(&key.sign(&c)).await, Err(AuthError::Expired));
    // Not valid yet: a future nbf, or issued in the future.
    let mut c = user_claims("alice", 300);
    c["nbf"] = json!(keys::now() + 120);
    assert_eq!(v.verify(&key.sign(&c)).await, Err(AuthError::NotYetValid));
    let mut c = user_claims("alice", 300);
    c["iat"] = json!(keys::now() + 120);
    assert_eq!(v.verify(&key.sign(&c)).await, Err(AuthError::NotYetValid));
}

#[tokio::test]
async fn a_token_living_longer_than_the_maximum_is_refused() {
    let identity = IdentitySettings {
        idp: Some(IdpSettings::new(JwksSource::File(jwks_file(&[&rsa1()])), ISSUER, AUDIENCE)),
        max_token_lifetime: Duration::from_secs(3600),
        ..IdentitySettings::default()
    };
    let v = Verifier::from_parts(&Secret::new(SECRET), &identity).unwrap();
    assert!(v.verify(&rsa1().sign(&user_claims("alice", 3600))).await.is_ok());
    let long = v.verify(&rsa1().sign(&user_claims("alice", 3601))).await;
    assert!(matches!(long, Err(AuthError::Lifetime { max: 3600, .. })), "{long:?}");
    // Our own tokens have the same bound.
    let ours = TokenSigner::new(&Secret::new(SECRET)).mint("alice", Some("d1"), Duration::from_secs(7200));
    assert!(matches!(v.verify(&ours).await, Err(AuthError::Lifetime { .. })));
}

#[tokio::test]
async fn algorithm_confusion_finds_nothing_to_confuse() {
    let v = file_verifier();
    let now = keys::now();
    let claims = json!({"sub": "alice", "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 300});
    // HS256 "signed" with the provider's RSA public key as the HMAC secret, naming its kid: the
    // HS256 side knows no such kid; without a kid, our own secret does not match.
    let public_pem = keys::pem_text("rsa-1.public.test-only.pem");
    let hmac_with_public_key = |kid: Option<&str>| {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = kid.map(str::to_owned);
        jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(public_pem.as_bytes())).unwrap()
    };
    assert_eq!(v.verify(&hmac_with_public_key(Some("rsa-1"))).await, Err(AuthError::UnknownKey("rsa-1".into())));
    assert_eq!(v.verify(&hmac_with_public_key(None)).await, Err(AuthError::Invalid));
    // RS256 naming our HMAC key id: the JWKS has no such key, and our secret is never tried.
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("default".into());
    let rs_as_hs = jsonwebtoken::encode(&header, &claims, &rsa1().encoding).unwrap();
    assert_eq!(v.verify(&rs_as_hs).await, Err(AuthError::UnknownKey("default".into())));
    // ES256 naming the RSA key: the key verifies RS256 only.
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some("rsa-1".into());
    let es_with_rsa_kid = jsonwebtoken::encode(&header, &claims, &ec1().encoding).unwrap();
    assert!(matches!(v.verify(&es_with_rsa_kid).await, Err(AuthError::Algorithm(_))));
    // HS384 with our own secret: not configured.
    let hs384 = jsonwebtoken::encode(
        &Header::new(Algorithm::HS384),
        &json!({"sub": "alice", "iat": now, "exp": now + 300}),
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap();
    assert_eq!(v.verify(&hs384).await, Err(AuthError::Algorithm("HS384".into())));
    // Provider tokens without a configured provider.
    let no_idp = Verifier::from_parts(&Secret::new(SECRET), &IdentitySettings::default()).unwrap();
    assert_eq!(no_idp.verify(&rsa1().sign(&claims)).await, Err(AuthError::Algorithm("RS256".into())));
}

#[tokio::test]
async fn only_the_configured_algorithms_are_accepted() {
    let mut idp = IdpSettings::new(JwksSource::File(jwks_file(&[&rsa1(), &ec1()])), ISSUER, AUDIENCE);
    idp.algorithms = vec![Algorithm::RS256];
    let v = with_idp(idp);
    assert!(v.verify(&rsa1().sign(&user_claims("alice", 60))).await.is_ok());
    assert_eq!(v.verify(&ec1().sign(&user_claims("alice", 60))).await, Err(AuthError::Algorithm("ES256".into())));
}

#[tokio::test]
async fn alg_none_is_refused() {
    let v = file_verifier();
    let b64 = |v: serde_json::Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let claims = json!({"sub": "alice", "device": "d1", "iat": keys::now(), "exp": keys::now() + 60});
    for alg in ["none", "None", "NONE"] {
        let token = format!("{}.{}.", b64(json!({"alg": alg, "typ": "JWT", "kid": "default"})), b64(claims.clone()));
        assert_eq!(v.verify(&token).await, Err(AuthError::Invalid), "{alg}");
    }
}

#[tokio::test]
async fn rotated_hs256_secrets_verify_until_removed() {
    let old = Secret::with_key_id("2025-01", "old-secret-0123456789abc");
    let new = Secret::with_key_id("2025-06", "new-secret-0123456789abc");
    let old_token = TokenSigner::new(&old).mint("alice", Some("d1"), Duration::from_secs(600));
    let legacy_token = TokenSigner::new(&Secret::new(SECRET)).mint("alice", Some("d1"), Duration::from_secs(600));
    let identity = IdentitySettings { previous_token_secrets: vec![old.clone()], ..IdentitySettings::default() };
    let rotated = Verifier::from_parts(&new, &identity).unwrap();
    assert_eq!(rotated.verify(&old_token).await.map(|c| c.sub), Ok("alice".into()), "the previous secret verifies");
    let new_token = rotated.tokens().mint("alice", Some("d1"), Duration::from_secs(600));
    assert_eq!(jsonwebtoken::decode_header(&new_token).unwrap().kid.as_deref(), Some("2025-06"), "the first mints");
    assert!(rotated.verify(&new_token).await.is_ok());
    assert_eq!(rotated.verify(&legacy_token).await, Err(AuthError::UnknownKey("default".into())));
    let removed = Verifier::from_parts(&new, &IdentitySettings::default()).unwrap();
    assert_eq!(removed.verify(&old_token).await, Err(AuthError::UnknownKey("2025-01".into())), "removed: refused");
    assert!(removed.verify(&new_token).await.is_ok());
}

/// A JWKS endpoint: answers every request with the current status, `Cache-Control` and body,
/// and counts requests.
struct JwksServer {
    url: String,
    answer: Arc<Mutex<(u16, String, String)>>,
    hits: Arc<AtomicUsize>,
}

impl JwksServer {
    async fn start(cache_control: &str, body: String) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/realms/fitness/protocol/openid-connect/certs", listener.local_addr().unwrap());
        let answer = Arc::new(Mutex::new((200, cache_control.to_owned(), body)));
        let hits = Arc::new(AtomicUsize::new(0));
        let (a, h) = (answer.clone(), hits.clone());
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let (a, h) = (a.clone(), h.clone());
                tokio::spawn(async move {
                    let mut req = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                        match sock.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => req.extend_from_slice(&buf[..n]),
                        }
                    }
                    h.fetch_add(1, Ordering::SeqCst);
                    let (status, cc, body) = a.lock().unwrap().clone();
                    let res = format!(
                        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nCache-Control: {cc}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = sock.write_all(res.as_bytes()).await;
                });
            }
        });
        Self { url, answer, hits }
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    fn serve(&self, status: u16, body: String) {
        let mut a = self.answer.lock().unwrap();
        a.0 = status;
        a.2 = body;
    }
}

fn url_idp(server: &JwksServer) -> IdpSettings {
    let mut idp = IdpSettings::new(JwksSource::Url(server.url.clone()), ISSUER, AUDIENCE);
    idp.cache_min = Duration::ZERO;
    idp.refetch_interval = Duration::from_secs(1);
    idp
}

#[tokio::test]
async fn a_jwks_url_is_cached_for_its_max_age_and_refetched_on_a_new_kid() {
    let server = JwksServer::start("public, max-age=300", jwks(&[&rsa1()])).await;
    let v = with_idp(url_idp(&server));
    assert_eq!(server.hits(), 0, "a URL is fetched on first use, not at start");
    assert!(v.verify(&rsa1().sign(&user_claims("alice", 60))).await.is_ok());
    assert!(v.verify(&rsa1().sign(&user_claims("bob", 60))).await.is_ok());
    assert_eq!(server.hits(), 1, "the second token, within max-age, used the cached set");
    // Random key ids right after a fetch do not reach the provider.
    for i in 0..20 {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(format!("random-{i}"));
        let t = jsonwebtoken::encode(&header, &user_claims("alice", 60), &rsa1().encoding).unwrap();
        assert_eq!(v.verify(&t).await, Err(AuthError::UnknownKey(format!("random-{i}"))));
    }
    assert_eq!(server.hits(), 1, "unknown kids refetch at most once per refetch interval");
    // The provider rotates to rsa-2; after the interval, the first token with the new kid fetches.
    server.serve(200, jwks(&[&rsa2()]));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(v.verify(&rsa2().sign(&user_claims("alice", 60))).await.map(|c| c.sub), Ok("alice".into()));
    assert_eq!(server.hits(), 2, "the new kid made one fetch");
    assert_eq!(v.verify(&rsa1().sign(&user_claims("alice", 60))).await, Err(AuthError::UnknownKey("rsa-1".into())));
    assert_eq!(server.hits(), 2, "the retired key's kid did not fetch again within the interval");
}

#[tokio::test]
async fn an_expired_jwks_is_fetched_again_and_a_failed_fetch_keeps_the_last_good_set() {
    let server = JwksServer::start("max-age=1", jwks(&[&ec1(), &ed1()])).await;
    let v = with_idp(url_idp(&server));
    assert!(v.verify(&ec1().sign(&user_claims("alice", 60))).await.is_ok());
    assert_eq!(server.hits(), 1);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(v.verify(&ed1().sign(&user_claims("alice", 60))).await.is_ok());
    assert_eq!(server.hits(), 2, "past max-age the set was fetched again");
    // The provider fails: the last good set still verifies.
    server.serve(500, "oops".into());
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(v.verify(&ed1().sign(&user_claims("alice", 60))).await.map(|c| c.sub), Ok("alice".into()));
    assert_eq!(server.hits(), 3, "it tried");
}

#[tokio::test]
async fn max_age_is_bounded_by_the_configured_minimum_and_maximum() {
    let server = JwksServer::start("max-age=0", jwks(&[&rsa1()])).await;
    let mut idp = url_idp(&server);
    idp.cache_min = Duration::from_secs(60);
    let v = with_idp(idp);
    for _ in 0..3 {
        assert!(v.verify(&rsa1().sign(&user_claims("alice", 60))).await.is_ok());
    }
    assert_eq!(server.hits(), 1, "max-age=0 is raised to the minimum");
    let server = JwksServer::start("max-age=31536000", jwks(&[&rsa1()])).await;
    let mut idp = url_idp(&server);
    idp.cache_max = Duration::from_secs(1);
    let v = with_idp(idp);
    assert!(v.verify(&rsa1().sign(&user_claims("alice", 60))).await.is_ok());
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(v.verify(&rsa1().sign(&user_claims("alice", 60))).await.is_ok());
    assert_eq!(server.hits(), 2, "a year's max-age is lowered to the maximum");
}

#[test]
fn a_missing_or_invalid_jwks_file_stops_the_start() {
    let missing = IdpSettings::new(JwksSource::File("/nonexistent/jwks.json".into()), ISSUER, AUDIENCE);
    let identity = IdentitySettings { idp: Some(missing), ..IdentitySettings::default() };
    let e = Verifier::from_parts(&Secret::new(SECRET), &identity).err().expect("refused").to_string();
    assert!(e.contains("AUTH_JWKS_FILE"), "{e}");
    let path = std::env::temp_dir().join(format!("{}.json", testkit::unique("bad-jwks")));
    std::fs::write(&path, "{\"not\": \"a jwks\"}").unwrap();
    let bad = IdpSettings::new(JwksSource::File(path), ISSUER, AUDIENCE);
    let identity = IdentitySettings { idp: Some(bad), ..IdentitySettings::default() };
    let e = format!("{:#}", Verifier::from_parts(&Secret::new(SECRET), &identity).err().expect("refused"));
    assert!(e.contains("not a JWKS"), "{e}");
}
