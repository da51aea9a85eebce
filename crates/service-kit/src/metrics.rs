//! The Prometheus registry of a service and its `/metrics` answer.

use actix_web::HttpResponse;
use prometheus::core::Collector;
use prometheus::Registry;

/// The text exposition format's content type.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4";

/// A registry whose every metric name starts with `prefix_` (`ingest_`, `processor_`,
/// `schema_registry_`).
pub fn registry(prefix: &str) -> Registry {
    Registry::new_custom(Some(prefix.into()), None).expect("a metric prefix is a valid name")
}

/// Registers each collector once; a second registration of the same name is a bug at start-up.
pub fn register_all(registry: &Registry, collectors: Vec<Box<dyn Collector>>) {
    for c in collectors {
        registry.register(c).expect("each metric is registered once");
    }
}

/// Everything `registry` holds, in the text format.
pub fn render(registry: &Registry) -> String {
    prometheus::TextEncoder::new().encode_to_string(&registry.gather()).unwrap_or_default()
}

/// The `/metrics` answer.
pub fn response(registry: &Registry) -> HttpResponse {
    HttpResponse::Ok().content_type(CONTENT_TYPE).body(render(registry))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_answer_holds_every_registered_metric_under_the_prefix() {
        let registry = registry("demo");
        let counter = prometheus::IntCounter::new("things_total", "Things").unwrap();
        register_all(&registry, vec![Box::new(counter.clone())]);
        counter.inc_by(3);
        let text = render(&registry);
        assert!(text.contains("demo_things_total 3"), "{text}");
        let res = response(&registry);
        assert_eq!(res.headers().get("content-type").unwrap(), CONTENT_TYPE);
    }
}
