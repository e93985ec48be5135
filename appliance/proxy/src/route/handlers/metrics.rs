//! `http.handlers.metrics`: serves the engine's metrics in Prometheus text format, as the
//! `metrics` directive does on a site. The families are the engine's (`caddy_http_*` and
//! `zeroserve_access_log_dropped_total`); Go's runtime and process families have no
//! counterpart, and the OpenMetrics format is not offered.

use serde_json::{Map, Value};

use super::super::ctx::Ctx;
use super::super::Result;

/// promhttp's content type for the text format (client_golang 1.20+).
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8; escaping=underscores";

#[derive(Debug)]
pub struct Metrics;

impl Metrics {
    pub fn compile(_: &Map<String, Value>) -> Result<Metrics> {
        Ok(Metrics)
    }

    pub fn respond(&self, ctx: &mut Ctx<'_, '_>) {
        ctx.resp.headers.set("Content-Type", CONTENT_TYPE);
        ctx.resp.body = crate::observe::render_here(ctx).into_bytes();
        ctx.write_header(200);
    }
}
