//! The access log: one event per request on the target `ringleader::access`, as
//! `key=value` fields (`access_log = "text"`) or as one JSON object (`"json"`).
//!
//! The JSON form is the event's whole message, with no other field, so that any
//! formatter shows it on one line, and the `ringleader` binary's formatter prints it
//! bare: one JSON object per line, whatever `--log-format` the process logs in.
use crate::config::AccessLog;
use http::{HeaderMap, HeaderValue, Method};
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

/// The target of access log events.
pub(crate) const TARGET: &str = "ringleader::access";

/// What the access log says about one request.
#[derive(Debug)]
pub(crate) struct Entry<'a> {
    /// When the request's head arrived.
    pub start: SystemTime,
    /// `None` for an answer hyper or the server wrote itself (no request was read).
    pub request_id: Option<&'a HeaderValue>,
    /// `None` for an answer hyper or the server wrote itself (no request was read).
    pub method: Option<&'a Method>,
    /// Path only: the query is left out (it may carry secrets). Empty for an answer
    /// hyper or the server wrote itself.
    pub path: &'a str,
    /// The host it was routed by (the absolute-form authority, else `Host`).
    pub host: Option<&'a str>,
    pub status: u16,
    /// `None` when no route matched (or the request was refused before routing).
    pub upstream: Option<&'a str>,
    /// The backend that answered: its name (else its address) and its address.
    pub backend: Option<(&'a str, &'a str)>,
    /// Sends to backends (0 when none was reached: no route, no backend, bad request).
    pub attempts: u32,
    /// Request body bytes as the client declared them (`None`: streamed, length unknown).
    pub bytes_in: Option<u64>,
    /// Response body bytes as declared (`None`: streamed, length unknown).
    pub bytes_out: Option<u64>,
    /// From the request's head to the response's head.
    pub duration: Duration,
    pub client: SocketAddr,
}

impl Entry<'_> {
    /// The entry of an answer hyper or the server wrote itself to a request head it
    /// could not read (hyper's 400 for a malformed head, its 431, the 414 in its
    /// place): no request ID, method or path.
    pub(crate) fn unread(status: u16, client: SocketAddr) -> Entry<'static> {
        Entry {
            start: SystemTime::now(),
            request_id: None,
            method: None,
            path: "",
            host: None,
            status,
            upstream: None,
            backend: None,
            attempts: 0,
            bytes_in: None,
            bytes_out: Some(0),
            duration: Duration::ZERO,
            client,
        }
    }

    /// The JSON object of this entry (one line, no trailing newline), fields in the
    /// documented order.
    pub(crate) fn json(&self) -> String {
        #[derive(serde::Serialize)]
        struct Line<'a> {
            time: String,
            request_id: Option<std::borrow::Cow<'a, str>>,
            method: Option<&'a str>,
            path: &'a str,
            host: Option<&'a str>,
            status: u16,
            upstream: Option<&'a str>,
            backend: Option<&'a str>,
            addr: Option<&'a str>,
            attempts: u32,
            bytes_in: Option<u64>,
            bytes_out: Option<u64>,
            duration_us: u64,
            client: String,
        }
        let line = Line {
            // RFC 3339 in UTC, with microseconds.
            time: humantime::format_rfc3339_micros(self.start).to_string(),
            request_id: self
                .request_id
                .map(|id| String::from_utf8_lossy(id.as_bytes())),
            method: self.method.map(Method::as_str),
            path: self.path,
            host: self.host,
            status: self.status,
            upstream: self.upstream,
            backend: self.backend.map(|b| b.0),
            addr: self.backend.map(|b| b.1),
            attempts: self.attempts,
            bytes_in: self.bytes_in,
            bytes_out: self.bytes_out,
            duration_us: u64::try_from(self.duration.as_micros()).unwrap_or(u64::MAX),
            client: self.client.to_string(),
        };
        // Serialising plain strings and numbers cannot fail.
        serde_json::to_string(&line).unwrap_or_default()
    }

    /// Log this entry in the form `kind` asks for (nothing when it is off).
    pub(crate) fn emit(&self, kind: AccessLog) {
        match kind {
            AccessLog::Json => tracing::info!(target: TARGET, "{}", self.json()),
            AccessLog::Text => tracing::info!(
                target: TARGET,
                method = %self.method.map_or("-", Method::as_str),
                path = %self.path,
                status = self.status,
                upstream = %self.upstream.unwrap_or("-"),
                backend = self.backend.map_or("-", |b| b.0),
                addr = self.backend.map_or("-", |b| b.1),
                latency_us = u64::try_from(self.duration.as_micros()).unwrap_or(u64::MAX),
                request_id = self.request_id.and_then(|id| id.to_str().ok()).unwrap_or("-"),
                attempts = self.attempts,
                client = %self.client,
            ),
            _ => {}
        }
    }
}

/// The body length a message declares: 0 when it has none, its `Content-Length`,
/// else `None` (chunked, or HTTP/2 without the field).
pub(crate) fn declared_length(headers: &HeaderMap, no_body: bool) -> Option<u64> {
    if no_body {
        return Some(0);
    }
    headers
        .get(http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_entry_has_every_field() {
        let id = HeaderValue::from_static("42");
        let e = Entry {
            start: SystemTime::UNIX_EPOCH + Duration::from_micros(1_700_000_000_123_456),
            request_id: Some(&id),
            method: Some(&Method::PUT),
            path: "/a\"b",
            host: Some("example.com"),
            status: 201,
            upstream: Some("app"),
            backend: Some(("b1", "127.0.0.1:9")),
            attempts: 2,
            bytes_in: Some(5),
            bytes_out: None,
            duration: Duration::from_micros(1500),
            client: "127.0.0.1:4000".parse().unwrap(),
        };
        let v: serde_json::Value = serde_json::from_str(&e.json()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "time": "2023-11-14T22:13:20.123456Z",
                "request_id": "42", "method": "PUT", "path": "/a\"b", "host": "example.com",
                "status": 201, "upstream": "app", "backend": "b1", "addr": "127.0.0.1:9",
                "attempts": 2, "bytes_in": 5, "bytes_out": null, "duration_us": 1500,
                "client": "127.0.0.1:4000",
            })
        );
        assert!(!e.json().contains('\n'));
        // In the documented order.
        assert!(e.json().starts_with("{\"time\":"), "{}", e.json());
        assert!(
            e.json().ends_with("\"client\":\"127.0.0.1:4000\"}"),
            "{}",
            e.json()
        );
    }

    #[test]
    fn an_unread_request_has_no_id_method_or_path() {
        let e = Entry::unread(400, "127.0.0.1:4000".parse().unwrap());
        let v: serde_json::Value = serde_json::from_str(&e.json()).unwrap();
        assert_eq!(
            (&v["request_id"], &v["method"], &v["path"], &v["status"]),
            (
                &serde_json::Value::Null,
                &serde_json::Value::Null,
                &serde_json::json!(""),
                &serde_json::json!(400)
            )
        );
        assert_eq!(v["client"], "127.0.0.1:4000");
    }

    #[test]
    fn declared_lengths() {
        let mut h = HeaderMap::new();
        assert_eq!(declared_length(&h, true), Some(0));
        assert_eq!(declared_length(&h, false), None);
        h.insert(http::header::CONTENT_LENGTH, HeaderValue::from_static("12"));
        assert_eq!(declared_length(&h, false), Some(12));
    }
}
