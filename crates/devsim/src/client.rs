//! Posting SyncDevice commands to ingest-api with device tokens.

use std::io::Write;
use std::time::Duration;

use anyhow::Context;
use ingest_api::auth::TokenSigner;
use ingest_api::config::Secret;
use reqwest::header::{HeaderValue, CONTENT_ENCODING, CONTENT_TYPE, RETRY_AFTER};

/// How long device tokens minted by the simulator live.
pub const TOKEN_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// The answer to one POST.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostOutcome {
    pub status: u16,
    /// `Retry-After` in seconds, when the server sent one.
    pub retry_after: Option<Duration>,
    /// The start of the body of an answer that is not 202 (a problem+json document).
    pub problem: Option<String>,
}

#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    signer: TokenSigner,
    gzip: bool,
}

/// Checks an ingest-api base URL and returns it without a trailing slash.
pub fn base_url(url: &str) -> anyhow::Result<String> {
    let parsed = reqwest::Url::parse(url).with_context(|| format!("--url {url:?} is not a valid URL"))?;
    anyhow::ensure!(
        matches!(parsed.scheme(), "http" | "https") && parsed.host().is_some(),
        "--url {url:?} must be an http:// or https:// URL with a host, like http://127.0.0.1:8080"
    );
    Ok(url.trim_end_matches('/').to_owned())
}

impl Client {
    pub fn new(url: &str, secret: &Secret, timeout: Duration, pool: usize, gzip: bool) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(5).min(timeout))
            .pool_max_idle_per_host(pool)
            .build()
            .context("creating the HTTP client")?;
        Ok(Self { http, base: base_url(url)?, signer: TokenSigner::new(secret), gzip })
    }

    /// A device token for `device` of `user`.
    pub fn token(&self, user: &str, device: &str) -> String {
        self.signer.mint(user, Some(device), TOKEN_TTL)
    }

    /// A user token for `user` (the live event stream takes it).
    pub fn user_token(&self, user: &str) -> String {
        self.signer.mint(user, None, TOKEN_TTL)
    }

    /// ingest-api's base URL, without a trailing slash.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Whether bodies go gzip-compressed (see [`encode`](Self::encode)).
    pub fn gzips(&self) -> bool {
        self.gzip
    }

    /// The body as it goes on the wire (gzip-compressed when asked).
    pub fn encode(&self, json: Vec<u8>) -> Vec<u8> {
        if !self.gzip {
            return json;
        }
        let mut enc = flate2::write::GzEncoder::new(Vec::with_capacity(json.len() / 4), flate2::Compression::fast());
        enc.write_all(&json).and_then(|_| enc.finish()).expect("gzip into memory cannot fail")
    }

    /// POSTs an encoded body (see [`encode`](Self::encode)) to the device's sync route.
    pub async fn post_sync(&self, device: &str, token: &str, body: Vec<u8>) -> Result<PostOutcome, reqwest::Error> {
        let mut req = self
            .http
            .post(format!("{}/v1/devices/{device}/syncs", self.base))
            .bearer_auth(token)
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if self.gzip {
            req = req.header(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        let res = req.body(body).send().await?;
        let status = res.status().as_u16();
        let retry_after = res
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        // Read the whole body so the connection goes back to the pool.
        let bytes = res.bytes().await?;
        let problem = (status != 202).then(|| String::from_utf8_lossy(&bytes[..bytes.len().min(600)]).into_owned());
        Ok(PostOutcome { status, retry_after, problem })
    }
}
