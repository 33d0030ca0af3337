//! The redirect listener: every request gets a redirect to the same host and
//! target over HTTPS (301 for GET and HEAD, 308 otherwise).
use super::Watched;
use crate::headers;
use crate::response::ProxyBody;
use http::header::{CONNECTION, CONTENT_LENGTH, HOST, LOCATION};
use http::{HeaderValue, Method, Request, Response, StatusCode, Version};
use hyper::body::Incoming;
use std::convert::Infallible;
use std::future::{ready, Ready};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

/// The redirect service of one connection: `https://host[:port]/target`.
#[derive(Clone)]
pub(super) struct Redirect {
    /// The HTTPS port named in `Location` (omitted when 443).
    port: u16,
    /// HTTP/2 requests on this connection so far.
    h2_requests: Arc<AtomicU64>,
}

impl Redirect {
    pub(super) fn new(port: u16) -> Redirect {
        Redirect {
            port,
            h2_requests: Arc::default(),
        }
    }
}

impl Watched for Redirect {
    fn h2_requests(&self) -> u64 {
        self.h2_requests.load(Relaxed)
    }
}

/// Where a request to `host` (a valid Host value) for `target` goes over HTTPS.
pub(super) fn location(host: &str, port: u16, target: &str) -> String {
    let host = headers::host_without_port(host);
    if port == 443 {
        format!("https://{host}{target}")
    } else {
        format!("https://{host}:{port}{target}")
    }
}

/// The status of a redirect: 301 keeps GET and HEAD; 308 (RFC 9110 §15.4.9)
/// also keeps any other method and its body, where a 301 lets clients turn a
/// POST into a GET (RFC 9110 §15.4.2).
pub(super) fn status(method: &Method) -> StatusCode {
    if method == Method::GET || method == Method::HEAD {
        StatusCode::MOVED_PERMANENTLY
    } else {
        StatusCode::PERMANENT_REDIRECT
    }
}

impl hyper::service::Service<Request<Incoming>> for Redirect {
    type Response = Response<ProxyBody>;
    type Error = Infallible;
    type Future = Ready<Result<Response<ProxyBody>, Infallible>>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        if req.version() == Version::HTTP_2 {
            self.h2_requests.fetch_add(1, Relaxed);
        }
        let host = match req.uri().authority() {
            Some(a) => Some(a.as_str().to_string()),
            None => {
                let mut hosts = req.headers().get_all(HOST).iter();
                match (hosts.next(), hosts.next()) {
                    (Some(h), None) => h.to_str().ok().map(str::to_string),
                    _ => None,
                }
            }
        }
        // Never an empty host (`Host: `, `Host: :8080`): RFC 9110 §4.2.2, "A sender
        // MUST NOT generate an "https" URI with an empty host identifier"; a 400.
        .filter(|h| headers::is_valid_host(h.as_bytes()));
        let target = req
            .uri()
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_string();
        // The asterisk form (`OPTIONS *`, RFC 9112 §3.2.4) names no resource to
        // redirect to: a 400, as nginx answers, not a Location ending in `*`.
        let host = host.filter(|_| target.starts_with('/'));
        let mut res = Response::new(ProxyBody::full(bytes::Bytes::new()));
        let loc = host
            .map(|h| location(&h, self.port, &target))
            .and_then(|l| HeaderValue::from_str(&l).ok());
        match loc {
            Some(l) => {
                *res.status_mut() = status(req.method());
                res.headers_mut().insert(LOCATION, l);
            }
            None => *res.status_mut() = StatusCode::BAD_REQUEST,
        }
        res.headers_mut()
            .insert(CONTENT_LENGTH, HeaderValue::from_static("0"));
        // A request body is not read: the connection cannot be reused after one.
        let has_body = req.headers().contains_key(CONTENT_LENGTH)
            || req.headers().contains_key(http::header::TRANSFER_ENCODING);
        if has_body && req.version() != Version::HTTP_2 {
            res.headers_mut()
                .insert(CONNECTION, HeaderValue::from_static("close"));
        }
        ready(Ok(res))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn location_names_the_https_port_unless_443() {
        assert_eq!(
            location("example.com:8080", 8443, "/a?b=c"),
            "https://example.com:8443/a?b=c"
        );
        assert_eq!(location("example.com", 443, "/"), "https://example.com/");
        assert_eq!(location("[::1]:80", 443, "/x"), "https://[::1]/x");
        assert_eq!(status(&Method::GET), StatusCode::MOVED_PERMANENTLY);
        assert_eq!(status(&Method::HEAD), StatusCode::MOVED_PERMANENTLY);
        assert_eq!(status(&Method::POST), StatusCode::PERMANENT_REDIRECT);
        assert_eq!(status(&Method::DELETE), StatusCode::PERMANENT_REDIRECT);
    }
}
