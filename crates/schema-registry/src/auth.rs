//! HTTP Basic authentication and roles, the way Confluent's registry does it with a JAAS
//! `PropertyFileLoginModule`: users come from a file, one line per user,
//! `username: <argon2id PHC hash>,role`, `#` for comments. Passwords are never stored in plain
//! text: a line whose password is not an argon2id hash is refused at start.
//!
//! Argon2 is slow on purpose, so a successful verification is remembered (bounded LRU, keyed by
//! a keyed SHA-256 of the presented user and password, never the password itself): a healthy
//! client pays argon2 once per process, not once per request. Failures are never cached.

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::path::Path;
use std::sync::{Arc, Mutex};

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{header, Method};
use actix_web::middleware::Next;
use actix_web::{web, HttpMessage, ResponseError};
use anyhow::{bail, Context};
use argon2::password_hash::{generate_salt, PasswordHasher, PasswordVerifier};
use argon2::{Argon2, PasswordHash};
use base64::Engine;
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::AppState;

/// The environment variable naming the credentials file.
pub const AUTH_FILE_ENV: &str = "SCHEMA_REGISTRY_AUTH_FILE";

/// The realm in `WWW-Authenticate`.
pub const REALM: &str = "schema-registry";

/// Verified credentials remembered at most (one per client process in practice).
const CACHE_ENTRIES: usize = 1024;

/// What a user may do. Ordered: each role can do everything the ones before it can.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// GET only.
    Reader,
    /// Register, look up, check compatibility, and GET.
    Writer,
    /// Everything: deletes, `/config` and `/mode` changes.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Reader => "reader",
            Role::Writer => "writer",
            Role::Admin => "admin",
        }
    }

    /// The role a request needs, by method: the registry's reads are GETs, its registrations,
    /// look-ups and compatibility checks are POSTs, and its deletes and config/mode changes are
    /// DELETEs and PUTs.
    pub fn needed_for(method: &Method) -> Role {
        match *method {
            Method::GET | Method::HEAD => Role::Reader,
            Method::POST => Role::Writer,
            _ => Role::Admin,
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "reader" => Ok(Role::Reader),
            "writer" => Ok(Role::Writer),
            "admin" => Ok(Role::Admin),
            other => Err(format!("unknown role {other:?}; the roles are admin, writer and reader")),
        }
    }
}

/// Who made a request; put in the request's extensions by [`middleware`].
#[derive(Debug, Clone)]
pub struct Principal {
    pub user: String,
    pub role: Role,
}

impl Principal {
    /// Everyone, when no credentials file is configured.
    fn anonymous() -> Self {
        Self { user: "anonymous".into(), role: Role::Admin }
    }
}

/// One line of the credentials file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub user: String,
    pub hash: String,
    pub role: Role,
}

/// A user name fits the file format: no separators, no whitespace.
pub fn valid_user_name(user: &str) -> Result<(), String> {
    if user.is_empty() {
        return Err("the user name is empty".into());
    }
    if let Some(c) = user.chars().find(|c| c.is_whitespace() || matches!(c, ':' | ',' | '#')) {
        return Err(format!("the user name {user:?} contains {c:?}; use letters, digits, '-', '_' or '.'"));
    }
    Ok(())
}

/// Parses a credentials file. Errors name the line and say what is wrong.
pub fn parse(text: &str) -> anyhow::Result<Vec<Entry>> {
    let mut entries: Vec<Entry> = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let n = index + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((user, rest)) = line.split_once(':') else {
            bail!("line {n}: expected `username: <argon2id hash>,role`, found no ':'");
        };
        let user = user.trim();
        valid_user_name(user).map_err(|e| anyhow::anyhow!("line {n}: {e}"))?;
        let rest = rest.trim();
        // A PHC string has commas in its parameters (m=19456,t=2,p=1) but none after its last
        // '$': the roles follow the first comma after the last '$'.
        let refuse_plain = || {
            anyhow::anyhow!(
                "line {n}: the password of {user:?} is not an argon2id hash ($argon2id$...); plain-text \
                 passwords are refused. Create the entry with `schema-registry passwd --file <file> --user {user} \
                 --role <role>`"
            )
        };
        let last_dollar = rest.rfind('$').ok_or_else(refuse_plain)?;
        let Some(comma) = rest[last_dollar..].find(',').map(|c| c + last_dollar) else {
            bail!("line {n}: no role for {user:?}; expected `{user}: <hash>,admin|writer|reader`");
        };
        let (hash, roles) = (rest[..comma].trim(), &rest[comma + 1..]);
        match PasswordHash::new(hash) {
            Ok(parsed) if parsed.algorithm.as_str() == "argon2id" => {}
            _ => return Err(refuse_plain()),
        }
        // Several roles may be listed, as in Jetty's format; the strongest applies.
        let role = roles
            .split(',')
            .map(|r| r.parse::<Role>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| anyhow::anyhow!("line {n}: {e}"))?
            .into_iter()
            .max()
            .ok_or_else(|| anyhow::anyhow!("line {n}: no role for {user:?}"))?;
        if entries.iter().any(|e| e.user == user) {
            bail!("line {n}: user {user:?} appears twice");
        }
        entries.push(Entry { user: user.to_owned(), hash: hash.to_owned(), role });
    }
    Ok(entries)
}

/// An argon2id PHC hash of `password` with a random salt and the crate's default parameters
/// (OWASP's: 19 MiB, 2 passes).
pub fn hash_password(password: &str) -> anyhow::Result<String> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("hashing the password: {e}"))
}

/// Why a request is not authenticated; each is a 401.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    NoCredentials,
    Malformed(&'static str),
    BadCredentials,
}

impl Refusal {
    fn message(&self) -> String {
        match self {
            Refusal::NoCredentials => {
                "Unauthorized: this registry needs HTTP Basic authentication (an Authorization header)".into()
            }
            Refusal::Malformed(why) => format!("Unauthorized: malformed Authorization header: {why}"),
            Refusal::BadCredentials => "Unauthorized: unknown user or wrong password".into(),
        }
    }
}

/// The users of the credentials file and the cache of verified credentials.
pub struct Authenticator {
    users: HashMap<String, (String, Role)>,
    /// Keyed SHA-256 of verified (user, password) → who they are.
    verified: Mutex<lru::LruCache<[u8; 32], Principal>>,
    /// Random per process: the cache keys mean nothing outside it.
    cache_key: [u8; 16],
    /// Verified for unknown users, so they take as long as known ones.
    dummy_hash: String,
    /// Argon2 runs at once: each takes 19 MiB and a core for tens of milliseconds, so a flood of
    /// wrong passwords waits here instead of exhausting memory. Cached credentials never wait.
    verifications: Arc<tokio::sync::Semaphore>,
}

/// Argon2 verifications that may run at once.
const CONCURRENT_VERIFICATIONS: usize = 2;

impl Authenticator {
    pub fn new(entries: Vec<Entry>) -> anyhow::Result<Self> {
        if entries.is_empty() {
            bail!("the credentials file holds no users, so every request would be refused; add one with `schema-registry passwd`");
        }
        let dummy_hash = hash_password(&hex(&generate_salt()))?;
        Ok(Self {
            users: entries.into_iter().map(|e| (e.user, (e.hash, e.role))).collect(),
            verified: Mutex::new(lru::LruCache::new(NonZeroUsize::new(CACHE_ENTRIES).expect("non-zero"))),
            cache_key: generate_salt(),
            dummy_hash,
            verifications: Arc::new(tokio::sync::Semaphore::new(CONCURRENT_VERIFICATIONS)),
        })
    }

    /// Reads and checks the credentials file.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the credentials file {} ({AUTH_FILE_ENV})", path.display()))?;
        let entries = parse(&text).with_context(|| format!("credentials file {}", path.display()))?;
        Self::new(entries).with_context(|| format!("credentials file {}", path.display()))
    }

    pub fn user_count(&self) -> usize {
        self.users.len()
    }

    fn cache_key(&self, user: &str, password: &str) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(self.cache_key);
        h.update((user.len() as u64).to_be_bytes());
        h.update(user.as_bytes());
        h.update(password.as_bytes());
        h.finalize().into()
    }

    /// The principal when these credentials were verified before: no argon2.
    pub fn cached(&self, user: &str, password: &str) -> Option<Principal> {
        let key = self.cache_key(user, password);
        self.verified.lock().unwrap_or_else(|p| p.into_inner()).get(&key).cloned()
    }

    /// Verifies with argon2 (slow: call off the async workers) and remembers a success.
    pub fn verify(&self, user: &str, password: &str) -> Result<Principal, Refusal> {
        if let Some(p) = self.cached(user, password) {
            return Ok(p);
        }
        let (hash, role) = match self.users.get(user) {
            Some((hash, role)) => (hash.as_str(), Some(*role)),
            None => (self.dummy_hash.as_str(), None),
        };
        let parsed = PasswordHash::new(hash).map_err(|_| Refusal::BadCredentials)?;
        let ok = Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok();
        match role {
            Some(role) if ok => {
                let principal = Principal { user: user.to_owned(), role };
                let key = self.cache_key(user, password);
                self.verified.lock().unwrap_or_else(|p| p.into_inner()).put(key, principal.clone());
                Ok(principal)
            }
            _ => Err(Refusal::BadCredentials),
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The user and password of an `Authorization: Basic ...` header.
pub fn basic_credentials(value: Option<&str>) -> Result<(String, String), Refusal> {
    let value = value.ok_or(Refusal::NoCredentials)?.trim();
    let (scheme, encoded) = value.split_once(' ').ok_or(Refusal::Malformed("expected `Basic <base64>`"))?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(Refusal::Malformed("only the Basic scheme is supported"));
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| Refusal::Malformed("the credentials are not base64"))?;
    let text = String::from_utf8(decoded).map_err(|_| Refusal::Malformed("the credentials are not UTF-8"))?;
    let (user, password) = text.split_once(':').ok_or(Refusal::Malformed("expected `user:password`"))?;
    Ok((user.to_owned(), password.to_owned()))
}

/// Paths that stay open for probes and scrapers.
fn is_open(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz" | "/metrics")
}

/// Authenticates every request but the probes, checks the method's role, and puts the
/// [`Principal`] in the request's extensions for the handlers' audit lines.
pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let auth = req.app_data::<web::Data<AppState>>().and_then(|s| s.auth.clone());
    let Some(auth) = auth.filter(|_| !is_open(req.path())) else {
        req.extensions_mut().insert(Principal::anonymous());
        return Ok(next.call(req).await?.map_into_left_body());
    };
    let header = req.headers().get(header::AUTHORIZATION).map(|h| h.to_str().unwrap_or("\u{0}"));
    let verdict = match basic_credentials(header) {
        Err(refusal) => Err(refusal),
        Ok((user, password)) => match auth.cached(&user, &password) {
            Some(p) => Ok(p),
            None => {
                let permit = auth.verifications.clone().acquire_owned().await;
                let auth = Arc::clone(&auth);
                web::block(move || {
                    let _permit = permit;
                    auth.verify(&user, &password)
                })
                .await
                .unwrap_or(Err(Refusal::BadCredentials))
            }
        },
    };
    let needed = Role::needed_for(req.method());
    let error = match verdict {
        Err(refusal) => ApiError::Unauthenticated(refusal.message()),
        Ok(p) if p.role < needed => {
            let message = format!(
                "User is denied operation {} on {}: user {:?} has role {}; this needs {}",
                operation(req.method()),
                req.path(),
                p.user,
                p.role.as_str(),
                needed.as_str()
            );
            if needed == Role::Admin {
                log::warn!(target: crate::audit::TARGET, "user={:?} action={} {} result=denied", p.user, req.method(), req.path());
            }
            ApiError::Forbidden(message)
        }
        Ok(p) => {
            req.extensions_mut().insert(p);
            return Ok(next.call(req).await?.map_into_left_body());
        }
    };
    Ok(req.into_response(error.error_response()).map_into_right_body())
}

fn operation(method: &Method) -> &'static str {
    match *method {
        Method::GET | Method::HEAD => "Read",
        Method::POST => "Write",
        Method::DELETE => "Delete",
        _ => "Alter",
    }
}

/// Who made this request (anonymous when auth is off).
pub fn principal(req: &actix_web::HttpRequest) -> Principal {
    req.extensions().get::<Principal>().cloned().unwrap_or_else(Principal::anonymous)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_of_hashes_roles_and_comments_parses() {
        let hash = hash_password("s3cret").unwrap();
        let text = format!("# admins\nalice: {hash},admin\n\n  bob : {hash},reader,writer\n");
        let entries = parse(&text).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!((entries[0].user.as_str(), entries[0].role), ("alice", Role::Admin));
        assert_eq!((entries[1].user.as_str(), entries[1].role), ("bob", Role::Writer));
        assert_eq!(entries[1].hash, hash);
    }

    #[test]
    fn plain_text_passwords_unknown_roles_and_duplicates_are_refused() {
        let e = parse("alice: letmein,admin\n").unwrap_err().to_string();
        assert!(e.contains("line 1") && e.contains("plain-text"), "{e}");
        let bcrypt = "alice: $2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW,admin";
        assert!(parse(bcrypt).unwrap_err().to_string().contains("argon2id"));
        let hash = hash_password("x").unwrap();
        let e = parse(&format!("alice: {hash},root")).unwrap_err().to_string();
        assert!(e.contains("unknown role"), "{e}");
        let e = parse(&format!("alice: {hash}")).unwrap_err().to_string();
        assert!(e.contains("no role"), "{e}");
        let e = parse(&format!("a: {hash},admin\na: {hash},reader")).unwrap_err().to_string();
        assert!(e.contains("line 2") && e.contains("twice"), "{e}");
        assert!(Authenticator::new(Vec::new()).is_err());
    }

    #[test]
    fn verification_succeeds_once_then_comes_from_the_cache() {
        let hash = hash_password("right").unwrap();
        let auth = Authenticator::new(parse(&format!("svc: {hash},writer")).unwrap()).unwrap();
        assert!(auth.cached("svc", "right").is_none());
        assert_eq!(auth.verify("svc", "wrong").unwrap_err(), Refusal::BadCredentials);
        assert!(auth.cached("svc", "wrong").is_none(), "failures are not cached");
        assert_eq!(auth.verify("nobody", "right").unwrap_err(), Refusal::BadCredentials);
        assert_eq!(auth.verify("svc", "right").unwrap().role, Role::Writer);
        assert_eq!(auth.cached("svc", "right").unwrap().user, "svc");
    }

    #[test]
    fn basic_headers_are_decoded() {
        let ok = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("u:p:with:colons"));
        assert_eq!(basic_credentials(Some(&ok)).unwrap(), ("u".into(), "p:with:colons".into()));
        assert_eq!(basic_credentials(None).unwrap_err(), Refusal::NoCredentials);
        assert!(matches!(basic_credentials(Some("Bearer abc")), Err(Refusal::Malformed(_))));
        assert!(matches!(basic_credentials(Some("Basic !!!")), Err(Refusal::Malformed(_))));
    }
}
