//! The dashboard: a static page, its script and the vendored uPlot (MIT; from the npm registry),
//! all compiled in and served from here: no CDN. The page reads the read routes with a user
//! token from its URL fragment.

use actix_web::{web, HttpResponse};

const HTML: &str = include_str!("../static/dashboard.html");
const JS: &str = include_str!("../static/dashboard.js");
const CSS: &str = include_str!("../static/dashboard.css");
const UPLOT_JS: &str = include_str!("../static/vendor/uPlot.iife.min.js");
const UPLOT_CSS: &str = include_str!("../static/vendor/uPlot.min.css");

/// Only this origin's scripts, styles and API.
const CSP: &str = "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'";

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/dashboard", web::get().to(|| asset("text/html; charset=utf-8", HTML)))
        .route("/dashboard/dashboard.js", web::get().to(|| asset("text/javascript", JS)))
        .route("/dashboard/dashboard.css", web::get().to(|| asset("text/css", CSS)))
        .route("/dashboard/vendor/uPlot.iife.min.js", web::get().to(|| asset("text/javascript", UPLOT_JS)))
        .route("/dashboard/vendor/uPlot.min.css", web::get().to(|| asset("text/css", UPLOT_CSS)));
}

async fn asset(content_type: &'static str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header(("Content-Security-Policy", CSP))
        .insert_header(("Cache-Control", "no-cache"))
        .body(body)
}
