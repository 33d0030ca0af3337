//! The crate's one error enum, and the single place that maps proxy failures to HTTP status codes.
use http::StatusCode;
use std::path::PathBuf;

/// Everything that can go wrong in the proxy: loading a config, binding a
/// listener, or serving one request.
///
/// [`Error::status`] is the only place that decides which status code a
/// failure produces for the client.
///
/// ```
/// use ringleader_proxy::Error;
/// assert_eq!(Error::NoHealthyBackend.status().as_u16(), 503);
/// assert_eq!(Error::UpstreamTimeout.status().as_u16(), 504);
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The config file could not be parsed or is invalid; the position is 1-based.
    #[error("{file}:{line}:{column}: {message}")]
    Config {
        /// File name as given (or `<inline>`).
        file: String,
        /// 1-based line.
        line: usize,
        /// 1-based column (in characters).
        column: usize,
        /// What is wrong.
        message: String,
    },
    /// The config file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    ReadConfig {
        /// The path that was tried.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Any other I/O failure of the proxy itself (runtime, signals).
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// The balancer rejected a configuration.
    #[error("balancer: {0}")]
    Balancer(#[from] ringleader_balancer::Error),
    /// The request ID generator could not be set up.
    #[error("request id generator: {0}")]
    Idgen(#[from] ringleader_idgen::Error),
    /// A membership update names an upstream that does not take its backends from
    /// the cluster (or does not exist).
    #[error("upstream {upstream:?} does not take its backends from the cluster (backends_from = \"cluster\")")]
    NotClusterFed {
        /// The upstream named.
        upstream: String,
    },
    /// A membership update holds an unusable backend.
    #[error("membership of upstream {upstream:?}: {problem}")]
    InvalidBackend {
        /// The upstream.
        upstream: String,
        /// What is wrong (an address that is not host:port, weight 0, a duplicate).
        problem: String,
    },
    /// No route serves the request's host and path.
    #[error("no route for this host and path")]
    NoRoute,
    /// Every backend of the upstream is down or ejected.
    #[error("no healthy backend")]
    NoHealthyBackend,
    /// Connecting to the backend failed, or the connection broke before a response head arrived.
    #[error("upstream connection failed: {0}")]
    UpstreamConnect(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The backend answered with something that is not valid HTTP.
    #[error("upstream protocol error: {0}")]
    UpstreamProtocol(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The backend did not answer within `request_timeout`.
    #[error("upstream timed out")]
    UpstreamTimeout,
    /// No connection to the backend within `connect_timeout`: the request never
    /// reached it (504, as nginx's `proxy_connect_timeout`; UNAVAILABLE to gRPC).
    #[error("upstream connect timed out")]
    UpstreamConnectTimeout,
    /// Request headers exceed `max_header_bytes`.
    #[error("request headers too large")]
    HeadersTooLarge,
    /// The request line alone exceeds `max_header_bytes`.
    #[error("request line too long")]
    UriTooLong,
    /// The request uses a feature the proxy does not implement (a transfer coding
    /// other than chunked).
    #[error("not implemented: {0}")]
    NotImplemented(&'static str),
    /// The proxy does not forward this method (TRACE).
    #[error("method not allowed: {0}")]
    MethodNotAllowed(&'static str),
    /// The request is malformed (bad Host, absolute-form URI for a foreign host, ...).
    #[error("bad request: {0}")]
    BadRequest(&'static str),
    /// The client stopped sending its request body for `request_timeout`.
    #[error("client sent no request body for request_timeout")]
    ClientTimeout,
    /// The request body could not be read from the client.
    #[error("client body error: {0}")]
    ClientBody(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl Error {
    /// Status code the proxy answers with when this error ends a request.
    ///
    /// No healthy backend 503, connect or protocol failure 502, upstream
    /// timeout 504, headers too large 431, request line too long 414 (RFC 9112
    /// §3), malformed request 400, no route 404, a client that stalls while
    /// sending its body 408, an unknown transfer coding 501 (RFC 9112 §6.1).
    pub fn status(&self) -> StatusCode {
        match self {
            Error::NoHealthyBackend => StatusCode::SERVICE_UNAVAILABLE,
            Error::UpstreamConnect(_) | Error::UpstreamProtocol(_) => StatusCode::BAD_GATEWAY,
            Error::UpstreamTimeout | Error::UpstreamConnectTimeout => StatusCode::GATEWAY_TIMEOUT,
            Error::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Error::UriTooLong => StatusCode::URI_TOO_LONG,
            Error::NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
            Error::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Error::BadRequest(_) | Error::ClientBody(_) => StatusCode::BAD_REQUEST,
            Error::NoRoute => StatusCode::NOT_FOUND,
            Error::ClientTimeout => StatusCode::REQUEST_TIMEOUT,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_request_error_has_its_status() {
        assert_eq!(Error::NoHealthyBackend.status(), 503);
        assert_eq!(Error::UpstreamConnect("x".into()).status(), 502);
        assert_eq!(Error::UpstreamProtocol("x".into()).status(), 502);
        assert_eq!(Error::UpstreamTimeout.status(), 504);
        assert_eq!(Error::UpstreamConnectTimeout.status(), 504);
        assert_eq!(Error::HeadersTooLarge.status(), 431);
        assert_eq!(Error::UriTooLong.status(), 414);
        assert_eq!(Error::NotImplemented("x").status(), 501);
        assert_eq!(Error::MethodNotAllowed("TRACE").status(), 405);
        assert_eq!(Error::BadRequest("x").status(), 400);
        assert_eq!(Error::NoRoute.status(), 404);
        assert_eq!(Error::ClientTimeout.status(), 408);
    }

    #[test]
    fn upstream_failures_keep_their_cause() {
        use std::error::Error as _;
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let e = Error::UpstreamConnect(Box::new(refused));
        let cause = e.source().and_then(|s| s.downcast_ref::<std::io::Error>());
        assert_eq!(
            cause.map(std::io::Error::kind),
            Some(std::io::ErrorKind::ConnectionRefused)
        );
        assert_eq!(e.status(), 502);
    }
}
