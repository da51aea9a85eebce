//! The tenant isolation matrix, generated from the OpenAPI document: every operation × every kind
//! of caller, against the real service (broker, registry, PostgreSQL, processor), with the
//! expected status and, for each 403, the reason its detail must name.
//!
//! Who may call an operation is its `x-auth` in the OpenAPI document (generated from the
//! handlers' `#[utoipa::path(..., extensions(("x-auth" = ...)))]`, and committed as openapi.json):
//! `public`, `device` (the path's device's token), `owner` (the user's token or one of their
//! devices'), `user` (the user's own token only). The test fails when an operation has no
//! `x-auth`, and when the service registers a route the document does not describe (found by
//! reading the `.route(...)` calls in src/), so a new route cannot skip the matrix.

mod keys;
mod stack;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use ingest_api::auth::{IdentitySettings, IdpSettings, JwksSource, TokenSigner};
use ingest_api::config::Secret;
use ingest_api::example::standard_sync;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use testkit::unique;

const USER: &str = "alice";
const DEVICE: &str = "alice-band";
const OTHER_USER: &str = "mallory";
const OTHER_DEVICE: &str = "mallory-band";

/// Routes served but deliberately not in the API document: the dashboard's static files. Each is
/// still checked to be public.
const UNDOCUMENTED_PUBLIC: &[&str] = &[
    "/dashboard",
    "/dashboard/dashboard.js",
    "/dashboard/dashboard.css",
    "/dashboard/vendor/uPlot.iife.min.js",
    "/dashboard/vendor/uPlot.min.css",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    Public,
    Device,
    Owner,
    User,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Caller {
    NoToken,
    Malformed,
    Forged,
    Expired,
    AnotherUser,
    AnotherDevice,
    RightDevice,
    RightUser,
    /// The right user, with a token from the identity provider (RS256, via the JWKS).
    RightUserFromProvider,
}

const CALLERS: [Caller; 9] = [
    Caller::NoToken,
    Caller::Malformed,
    Caller::Forged,
    Caller::Expired,
    Caller::AnotherUser,
    Caller::AnotherDevice,
    Caller::RightDevice,
    Caller::RightUser,
    Caller::RightUserFromProvider,
];

#[derive(Debug, PartialEq, Eq)]
enum Expect {
    /// One of the operation's documented 2xx.
    Success,
    /// 401, with this `WWW-Authenticate`.
    Unauthorized(&'static str),
    /// 403 whose detail contains this.
    Forbidden(String),
}

fn expected(access: Access, caller: Caller) -> Expect {
    use Caller::*;
    let for_user = |who: &str| format!("this token is for user {who:?}");
    let user_cannot_sync = || Expect::Forbidden("a user token cannot send syncs".into());
    match (access, caller) {
        (Access::Public, _) => Expect::Success,
        (_, NoToken) => Expect::Unauthorized("Bearer"),
        (_, Malformed | Forged | Expired) => Expect::Unauthorized("Bearer error=\"invalid_token\""),
        (Access::Device, AnotherUser | RightUser | RightUserFromProvider) => user_cannot_sync(),
        (Access::Device, AnotherDevice) => {
            Expect::Forbidden(format!("this token is for device {OTHER_DEVICE:?}, not {DEVICE:?}"))
        }
        (Access::Device, RightDevice) => Expect::Success,
        (Access::Owner, AnotherUser | AnotherDevice) => Expect::Forbidden(for_user(OTHER_USER)),
        (Access::Owner, RightDevice | RightUser | RightUserFromProvider) => Expect::Success,
        (Access::User, AnotherUser) => Expect::Forbidden(for_user(OTHER_USER)),
        (Access::User, AnotherDevice | RightDevice) => Expect::Forbidden("a device token".into()),
        (Access::User, RightUser | RightUserFromProvider) => Expect::Success,
    }
}

struct Operation {
    method: Method,
    path: String,
    id: String,
    access: Access,
    /// The documented 2xx statuses.
    success: BTreeSet<u16>,
}

/// The document the service serves (and `make openapi` commits).
fn openapi() -> Value {
    serde_json::from_str(ingest_api::openapi::json()).expect("the OpenAPI document is JSON")
}

/// Every operation of the document, with its `x-auth`, and checks that `security` agrees.
fn operations(doc: &Value) -> Vec<Operation> {
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("a path item") {
            let id = op["operationId"].as_str().unwrap_or("?").to_owned();
            let access = match op["x-auth"].as_str() {
                Some("public") => Access::Public,
                Some("device") => Access::Device,
                Some("owner") => Access::Owner,
                Some("user") => Access::User,
                other => panic!(
                    "{} {path} ({id}) has x-auth {other:?}: give every operation an x-auth of public, device, owner or user, so the isolation matrix covers it",
                    method.to_uppercase()
                ),
            };
            let schemes: BTreeSet<&str> = op["security"]
                .as_array()
                .map(|a| a.iter().flat_map(|r| r.as_object().unwrap().keys().map(String::as_str)).collect())
                .unwrap_or_default();
            let want: BTreeSet<&str> = match access {
                Access::Public => BTreeSet::new(),
                Access::Device => ["deviceToken"].into(),
                Access::Owner => ["userToken", "deviceToken"].into(),
                Access::User => ["userToken"].into(),
            };
            assert_eq!(schemes, want, "{id}: its security does not match its x-auth {access:?}");
            let success: BTreeSet<u16> = op["responses"]
                .as_object()
                .expect("responses")
                .keys()
                .filter_map(|c| c.parse().ok())
                .filter(|c| (200..300).contains(c))
                .collect();
            assert!(!success.is_empty(), "{id} documents no 2xx response");
            ops.push(Operation {
                method: method.to_uppercase().parse().expect("an HTTP method"),
                path: path.clone(),
                id,
                access,
                success,
            });
        }
    }
    ops
}

/// The routes the service registers: every `.route("<path>", web::<method>()` in src/. Other
/// ways of registering a route are refused, so none hides from this test.
fn served_routes() -> BTreeSet<(String, String)> {
    fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                rust_files(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    rust_files(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &mut files);
    let mut routes = BTreeSet::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        // A file's unit tests (its `#[cfg(test)]` module, last by convention) serve nothing.
        let text = text.split("#[cfg(test)]").next().unwrap_or_default();
        let name = file.display();
        for forbidden in
            ["web::resource(", "web::scope(", ".service(", "#[get(", "#[post(", "#[delete(", "#[put(", "#[patch("]
        {
            assert!(
                !text.contains(forbidden),
                "{name} registers a route with {forbidden}: the isolation matrix only sees .route(\"/path\", web::method()...) calls; use those"
            );
        }
        let mut rest = text;
        while let Some(i) = rest.find(".route(") {
            rest = &rest[i + ".route(".len()..];
            let parsed = (|| {
                let s = rest.trim_start().strip_prefix('"')?;
                let (path, after) = s.split_once('"')?;
                let after = after.trim_start().strip_prefix(',')?.trim_start().strip_prefix("web::")?;
                let method = after.split_once('(')?.0;
                Some((method.to_uppercase(), path.to_owned()))
            })();
            let route = parsed.unwrap_or_else(|| {
                panic!("{name}: a .route( call this test cannot read; write it as .route(\"/path\", web::method()...)")
            });
            routes.insert(route);
        }
    }
    routes
}

#[test]
fn every_served_route_is_in_the_document_and_every_operation_has_an_x_auth() {
    let doc = openapi();
    let ops = operations(&doc);
    let documented: BTreeSet<(String, String)> = ops.iter().map(|o| (o.method.to_string(), o.path.clone())).collect();
    let served = served_routes();
    assert!(served.len() >= 10, "the route scan found too little: {served:?}");
    let mut undocumented: Vec<_> = served
        .iter()
        .filter(|(m, p)| !documented.contains(&(m.clone(), p.clone())))
        .filter(|(m, p)| !(m == "GET" && UNDOCUMENTED_PUBLIC.contains(&p.as_str())))
        .collect();
    undocumented.sort();
    assert!(
        undocumented.is_empty(),
        "routes served but not in the OpenAPI document (give their handlers #[utoipa::path] with an x-auth, list them in src/openapi.rs, run `make openapi`): {undocumented:?}"
    );
    let unserved: Vec<_> = documented.difference(&served).collect();
    assert!(unserved.is_empty(), "operations in the OpenAPI document the service does not register: {unserved:?}");
}

use stack::{Stack, SECRET};

async fn spawn_stack() -> Stack {
    // The identity provider's keys, as a JWKS file.
    let jwks = std::env::temp_dir().join(format!("{}.jwks.json", unique("isolation")));
    std::fs::write(&jwks, keys::jwks(&[&keys::rsa1(), &keys::ec1(), &keys::ed1()])).unwrap();
    stack::spawn(true, |s| {
        s.identity = IdentitySettings {
            idp: Some(IdpSettings::new(JwksSource::File(jwks), keys::ISSUER, keys::AUDIENCE)),
            ..IdentitySettings::default()
        };
        s.read_max_waiters = 100;
    })
    .await
}

impl Stack {
    fn token(&self, caller: Caller, access: Access) -> Option<String> {
        let ttl = Duration::from_secs(600);
        // Malformed, forged and expired tokens are otherwise right for the operation.
        let right = |signer: &TokenSigner| match access {
            Access::Device => signer.mint(USER, Some(DEVICE), ttl),
            _ => signer.mint(USER, None, ttl),
        };
        Some(match caller {
            Caller::NoToken => return None,
            Caller::Malformed => "not-a-jwt".into(),
            Caller::Forged => right(&TokenSigner::new(&Secret::new("a-forger's-own-secret-0000"))),
            Caller::Expired => {
                let now = keys::now();
                let claims = match access {
                    Access::Device => json!({"sub": USER, "device": DEVICE, "iat": now - 120, "exp": now - 60}),
                    _ => json!({"sub": USER, "iat": now - 120, "exp": now - 60}),
                };
                let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
                header.kid = Some(ingest_api::auth::DEFAULT_KID.into());
                jsonwebtoken::encode(&header, &claims, &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()))
                    .unwrap()
            }
            Caller::AnotherUser => self.signer.mint(OTHER_USER, None, ttl),
            Caller::AnotherDevice => self.signer.mint(OTHER_USER, Some(OTHER_DEVICE), ttl),
            Caller::RightDevice => self.signer.mint(USER, Some(DEVICE), ttl),
            Caller::RightUser => self.signer.mint(USER, None, ttl),
            // RS256, ES256 and EdDSA in turn, so every algorithm of the provider's JWKS goes
            // through the running service, over many routes.
            Caller::RightUserFromProvider => {
                static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
                let key = match NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 3 {
                    0 => keys::rsa1(),
                    1 => keys::ec1(),
                    _ => keys::ed1(),
                };
                key.sign(&keys::user_claims(USER, 600))
            }
        })
    }

    /// A sync the standard way, with the phone's clock now.
    fn sync_body() -> Value {
        let now = chrono::Utc::now().timestamp_millis();
        let mut body = standard_sync(uuid::Uuid::new_v4(), now, 3, true);
        body["clock"] = json!({"device_time_ms": now, "phone_time_ms": now + 1_200});
        body
    }

    /// A processed sync of USER, for `/v1/syncs/{sync_id}`.
    async fn processed_sync(&self) -> String {
        let res = self
            .http
            .post(format!("{}/v1/devices/{DEVICE}/syncs", self.api))
            .bearer_auth(self.signer.mint(USER, Some(DEVICE), Duration::from_secs(600)))
            .json(&Self::sync_body())
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::ACCEPTED);
        let accepted: Value = res.json().await.unwrap();
        let url = format!("{}{}&wait=10000", self.api, accepted["status_url"].as_str().unwrap());
        let res = self
            .http
            .get(url)
            .bearer_auth(self.signer.mint(USER, None, Duration::from_secs(600)))
            .send()
            .await
            .unwrap();
        let status: Value = res.json().await.unwrap();
        assert_eq!(status["status"], json!("processed"), "{status}");
        accepted["sync_id"].as_str().unwrap().to_owned()
    }

    async fn call(&self, op: &Operation, sync_id: &str, caller: Caller) -> (StatusCode, String, Value) {
        let path = op.path.replace("{device_id}", DEVICE).replace("{user_id}", USER).replace("{sync_id}", sync_id);
        assert!(!path.contains('{'), "{}: a path parameter the matrix has no value for: {path}", op.id);
        let mut req = self.http.request(op.method.clone(), format!("{}{path}", self.api));
        if op.method == Method::POST {
            req = req.json(&Self::sync_body());
        }
        if let Some(token) = self.token(caller, op.access) {
            req = req.bearer_auth(token);
        }
        let res = req.send().await.unwrap();
        let status = res.status();
        let challenge =
            res.headers().get("www-authenticate").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        if res.headers().get("content-type").is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream")) {
            // A live stream never ends: it was let in, and that is all the matrix asks.
            return (status, challenge, Value::Null);
        }
        let body = res.bytes().await.unwrap();
        (status, challenge, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }
}

#[tokio::test]
async fn every_operation_refuses_every_caller_but_the_right_ones_with_the_real_reason() {
    let doc = openapi();
    let mut ops = operations(&doc);
    // Writes that change the user's state last: the refusals must find the state intact.
    ops.sort_by_key(|o| o.method == Method::DELETE);
    let stack = spawn_stack().await;
    let sync_id = stack.processed_sync().await;
    let mut failures = Vec::new();
    let mut checked = 0;
    for op in &ops {
        for caller in CALLERS {
            let want = expected(op.access, caller);
            let (status, challenge, body) = stack.call(op, &sync_id, caller).await;
            let detail = body["detail"].as_str().unwrap_or_default();
            let ok = match &want {
                Expect::Success => op.success.contains(&status.as_u16()),
                Expect::Unauthorized(c) => status == StatusCode::UNAUTHORIZED && challenge.starts_with(c),
                Expect::Forbidden(reason) => status == StatusCode::FORBIDDEN && detail.contains(reason.as_str()),
            };
            checked += 1;
            if !ok {
                failures.push(format!(
                    "{} {} ({}) as {caller:?}: expected {want:?}, got {status} (WWW-Authenticate {challenge:?}) {body}",
                    op.method, op.path, op.id
                ));
            }
        }
    }
    // The dashboard's files are public for everyone.
    for path in UNDOCUMENTED_PUBLIC {
        let res = stack.http.get(format!("{}{path}", stack.api)).bearer_auth("not-a-jwt").send().await.unwrap();
        checked += 1;
        if res.status() != StatusCode::OK {
            failures.push(format!("GET {path} with a malformed token: {}", res.status()));
        }
    }
    stack.stop().await;
    assert!(
        failures.is_empty(),
        "{} of {checked} cells of the matrix failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(checked >= ops.len() * CALLERS.len());
}
