//! ingest-api: the command side. It validates a device's sync while the caller is connected and
//! publishes it to Kafka; it never writes to the database.

pub mod auth;
pub mod command;
pub mod config;
pub mod dashboard;
pub mod erasure;
pub mod example;
pub mod export;
pub mod live;
pub mod metrics;
pub mod openapi;
pub mod problem;
pub mod publisher;
pub mod rate_limit;
pub mod reads;
pub mod routes;
pub mod watermark_feed;

use std::net::TcpListener;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{Server, ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::{from_fn, Next};
use actix_web::{web, App, HttpMessage, HttpServer};
use anyhow::Context;
use service_kit::trace::TraceContext;
use service_kit::CancellationToken;

use crate::config::Settings;
use crate::metrics::Metrics;
use crate::publisher::Publisher;

pub struct AppState {
    pub settings: Settings,
    /// Verifies bearer tokens (ours and the identity provider's); see crate::auth.
    pub verifier: auth::Verifier,
    pub publisher: Arc<Publisher>,
    pub metrics: Metrics,
    pub read_pool: reads::queries::ReadPool,
    /// Token buckets per device and per user, checked right after authentication.
    pub rate_limits: rate_limit::RateLimiters,
    /// The processor's watermarks, pushed by its commits; waiting reads wait on it.
    pub watermarks: Arc<watermark_feed::WatermarkFeed>,
    /// The open live event streams, fed by the watermark listener.
    pub live: Arc<live::LiveHub>,
    /// Places for exports, which hold a read connection while they stream.
    pub exports: export::ExportSlots,
    /// Successful requests seen, for sampling the access log.
    pub served: AtomicU64,
}

/// Who a request is, for logs and for the records it produces.
#[derive(Debug, Clone)]
pub struct RequestContext {
    /// `X-Request-Id` when the caller sent one, else a new UUID.
    pub correlation_id: String,
    /// The caller's `traceparent` continued by a span of this request, or a new trace.
    pub trace: TraceContext,
}

impl RequestContext {
    /// The context `observe` put on the request (a new one if a route runs without it).
    pub fn of(req: &actix_web::HttpRequest) -> Self {
        req.extensions().get::<Self>().cloned().unwrap_or_else(|| Self {
            correlation_id: uuid::Uuid::new_v4().to_string(),
            trace: TraceContext::new_root(),
        })
    }
}

pub struct Application {
    port: u16,
    server: Server,
    publisher: Arc<Publisher>,
    live: Arc<live::LiveHub>,
    /// Stops the watermark listener's thread when the application ends or is dropped: a stopped
    /// or dropped application (tests spawn many) leaves no thread holding a connection.
    _listener: watermark_feed::ListenerHandle,
}

impl Application {
    /// Binds the listener and creates the producer; the schema is registered in the background
    /// (retrying) and `/readyz` says when it is done.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let metrics = Metrics::new();
        let publisher = Arc::new(Publisher::new(&settings, metrics.clone())?);
        tokio::spawn(publisher.clone().warm_up());
        let listener =
            TcpListener::bind(&settings.listen_addr).with_context(|| format!("binding {}", settings.listen_addr))?;
        let port = listener.local_addr()?.port();
        let watermarks = watermark_feed::WatermarkFeed::new(
            &settings.topic,
            settings.read_max_waiters,
            settings.read_max_waiters_per_user,
            &metrics.registry,
        );
        let live = live::LiveHub::new(settings.live.clone(), &metrics.registry);
        let rate_limits = rate_limit::RateLimiters::new(&settings.rate_limits, &metrics)?;
        rate_limits.spawn_sweeper(settings.rate_limits.sweep_interval);
        let read_pool = reads::queries::pool(&settings.read_database_url, settings.read_pool_size, &metrics.pools);
        let state = web::Data::new(AppState {
            rate_limits,
            watermarks,
            live: live.clone(),
            exports: export::ExportSlots::new(settings.export_max_concurrent),
            verifier: auth::Verifier::new(&settings)?,
            publisher: publisher.clone(),
            metrics,
            read_pool,
            served: AtomicU64::new(0),
            settings,
        });
        // Started last: every step that can fail is behind it, so a failed build leaves no thread.
        let watermark_listener =
            state.watermarks.spawn_listener(state.settings.read_database_url.clone(), live.clone());
        let workers = match state.settings.workers {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            n => n,
        };
        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .wrap(from_fn(auth::authenticate))
                .wrap(from_fn(observe))
                .configure(routes::configure)
                .configure(reads::configure)
                .configure(erasure::configure)
                .configure(export::configure)
                .configure(live::configure)
                .configure(dashboard::configure)
                .default_service(web::to(problem::no_route))
        })
        .workers(workers)
        .listen(listener)?
        // Signals are the caller's (`run_until_stopped`): actix's own stop at once on Ctrl-C.
        .disable_signals()
        .shutdown_timeout(30)
        .run();
        Ok(Self { port, server, publisher, live, _listener: watermark_listener })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until `shutdown` is cancelled: then it stops accepting, ends live streams,
    /// finishes in-flight requests (up to 30 s), and flushes the producer so nothing acknowledged or queued is lost.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        // Live streams never end by themselves: they end when the drain starts, not 30 s later.
        let live = self.live.clone();
        let stopping = shutdown.clone();
        tokio::spawn(async move {
            stopping.cancelled().await;
            live.close();
        });
        service_kit::http::serve_until_cancelled(self.server, shutdown).await?;
        drop(self._listener);
        let publisher = self.publisher;
        tokio::task::spawn_blocking(move || publisher.flush(routes::FLUSH_TIMEOUT))
            .await?
            .map_err(|e| anyhow::anyhow!("flushing the producer at shutdown: {e}"))?;
        log::info!("stopped; producer flushed");
        Ok(())
    }
}

/// Every error gets an access-log line; successes one in `access_log_every`.
fn should_log(state: &AppState, success: bool) -> bool {
    sampled(state.settings.access_log_every, &state.served, success)
}

/// Is this request's access-log line written? Errors always; one success in `every` (0: none),
/// counted in `served`.
fn sampled(every: u64, served: &AtomicU64, success: bool) -> bool {
    if !success {
        return true;
    }
    match every {
        0 => false,
        1 => true,
        n => served.fetch_add(1, Ordering::Relaxed).is_multiple_of(n),
    }
}

/// An access-log line per request (sampled, see [`should_log`]) with its correlation id, and the
/// request metrics.
async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let correlation = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128)
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let trace = TraceContext::continue_from(
        // One name on the HTTP request and on the Kafka record (W3C Trace Context).
        req.headers().get(events::headers::TRACEPARENT).and_then(|v| v.to_str().ok()),
    );
    req.extensions_mut().insert(RequestContext { correlation_id: correlation.clone(), trace: trace.clone() });
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let route = req.match_pattern().unwrap_or_else(|| "unmatched".into());
    let (method, path) = (req.method().to_string(), req.path().to_owned());
    if let Some(s) = &state {
        s.metrics.in_flight.inc();
    }
    let result = next.call(req).await;
    if let Some(s) = &state {
        s.metrics.in_flight.dec();
    }
    let mut res = result?;
    let status = res.status();
    let elapsed = started.elapsed();
    if let Some(s) = &state {
        s.metrics.requests.with_label_values(&[route.as_str(), status.as_str()]).inc();
        s.metrics.request_seconds.with_label_values(&[route.as_str(), status.as_str()]).observe(elapsed.as_secs_f64());
    }
    if state.as_ref().is_none_or(|s| should_log(s, status.is_success())) {
        log::info!(
            target: "ingest_api::access",
            trace_id = trace.trace_id(), span_id = trace.span_id();
            "{method} {path} {} {:.1}ms request_id={correlation}", status.as_u16(), elapsed.as_secs_f64() * 1000.0
        );
    }
    if let Ok(v) = HeaderValue::from_str(&correlation) {
        res.headers_mut().insert(HeaderName::from_static("x-request-id"), v);
    }
    // The request's own span (Trace Context Level 2's `traceresponse`), so a caller without a
    // tracer can still find the trace in the logs.
    if let Ok(v) = HeaderValue::from_str(trace.header()) {
        res.headers_mut().insert(HeaderName::from_static("traceresponse"), v);
    }
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_access_log_keeps_every_error_and_one_success_in_n() {
        let served = AtomicU64::new(0);
        let logged = (0..100).filter(|_| sampled(10, &served, true)).count();
        assert_eq!(logged, 10);
        assert!((0..5).all(|_| sampled(10, &served, false)), "errors are always logged");
        assert!((0..5).all(|_| sampled(1, &served, true)));
        assert!(!(0..5).any(|_| sampled(0, &served, true)));
        assert!(sampled(0, &served, false));
    }
}
