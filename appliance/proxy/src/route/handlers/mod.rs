//! Request handlers (`http.handlers.*`), one file each, provisioned at compile time.

pub mod authentication;
pub mod browse;
pub mod cache;
pub mod encode;
pub mod error;
pub mod file_server;
pub mod headers;
pub mod intercept;
pub mod invoke;
pub mod log_append;
pub mod map;
pub mod metrics;
pub mod request_body;
pub mod reverse_proxy;
pub mod rewrite;
pub mod static_response;
pub mod subroute;
pub mod templates;
pub mod vars;

use serde_json::Value;

use super::{err, Result};

/// One provisioned handler.
#[derive(Debug)]
pub enum Handler {
    StaticResponse(static_response::StaticResponse),
    Subroute(subroute::Subroute),
    Headers(headers::Headers),
    Rewrite(rewrite::Rewrite),
    Vars(vars::Vars),
    Error(error::StaticError),
    Map(map::MapHandler),
    FileServer(file_server::FileServer),
    RequestBody(request_body::RequestBody),
    Invoke(invoke::Invoke),
    LogAppend(log_append::LogAppend),
    Metrics(metrics::Metrics),
    Encode(encode::Encode),
    Authentication(authentication::Authentication),
    Intercept(intercept::Intercept),
    ReverseProxy(Box<reverse_proxy::ReverseProxy>),
    CopyResponse(reverse_proxy::CopyResponse),
    CopyResponseHeaders(reverse_proxy::CopyResponseHeaders),
    Cache(cache::Cache),
    Templates(templates::Templates),
}

/// Compiles one handler object by its `handler` name.
pub fn compile(v: &Value) -> Result<Handler> {
    let Value::Object(m) = v else {
        return err("handler: expected a JSON object");
    };
    let Some(name) = m.get("handler").and_then(Value::as_str) else {
        return err("module name not specified with key 'handler'");
    };
    Ok(match name {
        "static_response" => Handler::StaticResponse(static_response::StaticResponse::compile(m)?),
        "subroute" => Handler::Subroute(subroute::Subroute::compile(m)?),
        "headers" => Handler::Headers(headers::Headers::compile(m)?),
        "rewrite" => Handler::Rewrite(rewrite::Rewrite::compile(m)?),
        "vars" => Handler::Vars(vars::Vars::compile(m)?),
        "error" => Handler::Error(error::StaticError::compile(m)?),
        "map" => Handler::Map(map::MapHandler::compile(m)?),
        "file_server" => Handler::FileServer(file_server::FileServer::compile(m)?),
        "request_body" => Handler::RequestBody(request_body::RequestBody::compile(m)?),
        "invoke" => Handler::Invoke(invoke::Invoke::compile(m)?),
        "log_append" => Handler::LogAppend(log_append::LogAppend::compile(m)?),
        "metrics" => Handler::Metrics(metrics::Metrics::compile(m)?),
        "encode" => Handler::Encode(encode::Encode::compile(m)?),
        "authentication" => Handler::Authentication(authentication::Authentication::compile(m)?),
        "intercept" => Handler::Intercept(intercept::Intercept::compile(m)?),
        "reverse_proxy" => {
            Handler::ReverseProxy(Box::new(reverse_proxy::ReverseProxy::compile(m)?))
        }
        "copy_response" => Handler::CopyResponse(reverse_proxy::CopyResponse::compile(m)?),
        "copy_response_headers" => {
            Handler::CopyResponseHeaders(reverse_proxy::CopyResponseHeaders::compile(m)?)
        }
        "cache" => Handler::Cache(cache::Cache::compile(m)?),
        "templates" => Handler::Templates(templates::Templates::compile(m)?),
        other => return err(format!("unknown module: http.handlers.{other}")),
    })
}
