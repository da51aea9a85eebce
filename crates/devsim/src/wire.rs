//! The connections of `devsim load`: hyper's HTTP/1.1 client connections, pooled by hand, so that
//! the load generator costs the machine as little as possible. Per request there is no URL to
//! parse and no header to format: each device's path and headers are built once ([`Target`]),
//! the body is shared in (a retry sends the same bytes without copying them), and only the
//! answer's status is kept, with `Retry-After` when the server asks to come back later. reqwest, a general client on the
//! same hyper, spent 15 to 24 µs per request on its pool, URL and redirect handling; this about
//! 16 µs at ingest saturation. `devsim run` keeps using reqwest ([`crate::client`]).

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{HeaderMap, HeaderName, HeaderValue, HOST};
use hyper::{Method, Request, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Keep-alive connections to one server, and how long a request may take.
pub struct Wire {
    addr: SocketAddr,
    host: HeaderValue,
    /// The base URL's path, without a trailing slash: requests' paths go after it.
    prefix: String,
    idle: Mutex<Vec<SendRequest<Full<Bytes>>>>,
    timeout: Duration,
}

/// Where one kind of request goes, and its headers, built once.
#[derive(Clone)]
pub struct Target {
    uri: Uri,
    headers: HeaderMap,
}

/// The answer to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    /// `Retry-After` in whole seconds, read on 429 and 503 answers only.
    pub retry_after: Option<Duration>,
}

/// How one request failed.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Http(#[from] hyper::Error),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
}

impl Wire {
    /// A client for the `http://host:port[/prefix]` base URL (resolved once, here).
    pub async fn new(base: &str, timeout: Duration) -> anyhow::Result<Self> {
        let url = reqwest::Url::parse(base).with_context(|| format!("--url {base:?} is not a valid URL"))?;
        anyhow::ensure!(url.scheme() == "http", "devsim load speaks plain http://, not {}", url.scheme());
        let host = url.host_str().context("the URL has no host")?.to_owned();
        let port = url.port_or_known_default().unwrap_or(80);
        let addr = tokio::net::lookup_host((host.as_str(), port))
            .await
            .with_context(|| format!("resolving {host}"))?
            .next()
            .with_context(|| format!("{host} has no address"))?;
        let host = HeaderValue::from_str(&format!("{host}:{port}")).context("the URL's host is not a header value")?;
        let prefix = url.path().trim_end_matches('/').to_owned();
        Ok(Self { addr, host, prefix, idle: Mutex::new(Vec::new()), timeout })
    }

    /// The target `path` (after the base URL's own path) with these headers.
    pub fn target(&self, path: &str, headers: &[(&str, &str)]) -> anyhow::Result<Target> {
        let uri: Uri = format!("{}{path}", self.prefix).parse().with_context(|| format!("{path:?} is not a path"))?;
        let mut map = HeaderMap::with_capacity(headers.len() + 1);
        map.insert(HOST, self.host.clone());
        for (name, value) in headers {
            map.insert(HeaderName::from_bytes(name.as_bytes())?, HeaderValue::from_str(value)?);
        }
        Ok(Target { uri, headers: map })
    }

    /// POSTs `body` to `target` and returns the answer's status, once the answer is read whole
    /// (so that its connection can serve the next request).
    pub async fn post(&self, target: &Target, body: Bytes) -> Result<Reply, WireError> {
        match tokio::time::timeout(self.timeout, self.exchange(target, body)).await {
            Ok(answer) => answer,
            Err(_) => Err(WireError::Timeout(self.timeout)),
        }
    }

    async fn exchange(&self, target: &Target, body: Bytes) -> Result<Reply, WireError> {
        let mut sender = match self.take_idle() {
            Some(s) => s,
            None => self.connect().await?,
        };
        let mut request = Request::new(Full::new(body));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = target.uri.clone();
        *request.headers_mut() = target.headers.clone();
        let response = sender.send_request(request).await?;
        let status = response.status().as_u16();
        let retry_after = if status == 429 || status == 503 {
            response
                .headers()
                .get(hyper::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs)
        } else {
            None
        };
        // Read the answer to its end, keeping none of it.
        let mut body = response.into_body();
        while let Some(frame) = body.frame().await {
            frame?;
        }
        if !sender.is_closed() {
            self.idle.lock().expect("pool lock").push(sender);
        }
        Ok(Reply { status, retry_after })
    }

    fn take_idle(&self) -> Option<SendRequest<Full<Bytes>>> {
        let mut idle = self.idle.lock().expect("pool lock");
        while let Some(sender) = idle.pop() {
            if !sender.is_closed() {
                return Some(sender);
            }
        }
        None
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, WireError> {
        let stream = TcpStream::connect(self.addr).await?;
        stream.set_nodelay(true)?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        // The connection's I/O runs on its own task until the server or the pool drops it.
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(sender)
    }
}
