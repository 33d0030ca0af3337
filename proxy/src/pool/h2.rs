//! HTTP/2 to backends (`protocol = "h2c"` or `"h2"`): one multiplexed hyper connection per backend, TLS with ALPN `h2`.
//!
//! HTTP/2 multiplexes requests on one connection (RFC 9113 §5), so a backend needs
//! one, not a pool: it is opened on first use, shared by every request (hyper's
//! `SendRequest` is a cheap handle), and replaced when it closes (GOAWAY, reset).
use super::SendError;
use crate::http1::{BoxError, ReqBody};
use bytes::Bytes;
use http::header::HOST;
use http::uri::{Authority, Scheme};
use http::{HeaderMap, HeaderValue, Method, Request, Response, Uri};
use http_body::Body;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use parking_lot::Mutex;
use rustls_pki_types::ServerName;
use std::time::Duration;
use tokio::net::TcpStream;

/// TLS to a backend (`protocol = "h2"`): the client config (roots from `tls_ca`,
/// ALPN `h2`) and the name its certificate is checked against (and sent as SNI).
#[derive(Clone)]
pub(crate) struct TlsTo {
    pub(crate) connector: tokio_rustls::TlsConnector,
    pub(crate) name: ServerName<'static>,
}

impl std::fmt::Debug for TlsTo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TlsTo({:?})", self.name)
    }
}

/// How a backend is spoken to over HTTP/2.
#[derive(Debug, Clone)]
pub(crate) struct H2Target {
    /// `host:port`.
    pub(crate) addr: String,
    /// `None`: cleartext with prior knowledge (h2c, RFC 9113 §3.3).
    pub(crate) tls: Option<TlsTo>,
}

/// The request body as hyper's HTTP/2 client takes it: frames (trailers too) pass as they come.
pub(crate) type H2Body = UnsyncBoxBody<Bytes, BoxError>;

/// A request body for hyper's HTTP/2 client.
pub(crate) fn h2_body<S>(b: ReqBody<S>) -> H2Body
where
    S: Body<Data = Bytes> + Send + Unpin + 'static,
    S::Error: Into<BoxError> + Send,
{
    match b {
        ReqBody::Empty => Empty::new().map_err(|n| match n {}).boxed_unsync(),
        ReqBody::Full(b) => Full::new(b).map_err(|n| match n {}).boxed_unsync(),
        ReqBody::Stream(s) => s.map_err(Into::into).boxed_unsync(),
    }
}

/// Open a TCP connection (TLS on top for `h2`) and do the HTTP/2 handshake; the
/// connection runs in a task of its own until it closes.
pub(crate) async fn connect(
    t: &H2Target,
    connect_timeout: Duration,
) -> Result<SendRequest<H2Body>, SendError> {
    let tcp = tokio::time::timeout(connect_timeout, TcpStream::connect(t.addr.as_str()))
        .await
        .map_err(|_| SendError::ConnectTimeout)?
        .map_err(SendError::Connect)?;
    let _ = tcp.set_nodelay(true);
    let mut b = hyper::client::conn::http2::Builder::new(TokioExecutor::new());
    b.timer(TokioTimer::new())
        // A ping when idle notices a backend that went away without a word.
        .keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(10));
    let sender = match &t.tls {
        None => {
            let (s, conn) = b
                .handshake(TokioIo::new(tcp))
                .await
                .map_err(SendError::H2)?;
            tokio::spawn(conn);
            s
        }
        Some(tls) => {
            let stream = tokio::time::timeout(
                connect_timeout,
                tls.connector.connect(tls.name.clone(), tcp),
            )
            .await
            .map_err(|_| SendError::ConnectTimeout)?
            .map_err(SendError::Tls)?;
            if stream.get_ref().1.alpn_protocol() != Some(b"h2") {
                return Err(SendError::Tls(std::io::Error::other(NoH2)));
            }
            let (s, conn) = b
                .handshake(TokioIo::new(stream))
                .await
                .map_err(SendError::H2)?;
            tokio::spawn(conn);
            s
        }
    };
    Ok(sender)
}

/// The backend did not agree to HTTP/2 in the TLS handshake.
#[derive(Debug, thiserror::Error)]
#[error("the backend did not select ALPN h2")]
struct NoH2;

/// The one shared HTTP/2 connection of a backend.
#[derive(Debug, Default)]
pub(crate) struct H2Conn {
    sender: Mutex<Option<SendRequest<H2Body>>>,
    /// Held while a connection is being opened, so that concurrent requests wait
    /// for it instead of each opening one.
    opening: tokio::sync::Mutex<()>,
}

impl H2Conn {
    async fn sender(
        &self,
        t: &H2Target,
        connect_timeout: Duration,
    ) -> Result<SendRequest<H2Body>, SendError> {
        let live = || {
            self.sender
                .lock()
                .as_ref()
                .filter(|s| !s.is_closed())
                .cloned()
        };
        if let Some(s) = live() {
            return Ok(s);
        }
        let _opening = self.opening.lock().await;
        if let Some(s) = live() {
            return Ok(s);
        }
        let s = connect(t, connect_timeout).await?;
        *self.sender.lock() = Some(s.clone());
        Ok(s)
    }

    /// Send one request on the backend's connection (opened if need be).
    pub(crate) async fn send(
        &self,
        t: &H2Target,
        connect_timeout: Duration,
        (method, uri, headers): (&Method, &Uri, &HeaderMap),
        body: H2Body,
    ) -> Result<Response<Incoming>, SendError> {
        let mut s = self.sender(t, connect_timeout).await?;
        s.ready().await.map_err(SendError::H2)?;
        let req = request(t, method, uri, headers, body)?;
        s.send_request(req).await.map_err(SendError::H2)
    }
}

/// The request as HTTP/2 sends it: an absolute URI whose authority is the client's
/// Host (RFC 9113 §8.3.1: `:authority` in place of `Host`), else the backend's address.
pub(crate) fn request(
    t: &H2Target,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: H2Body,
) -> Result<Request<H2Body>, SendError> {
    let mut headers = headers.clone();
    let authority = headers
        .remove(HOST)
        .and_then(|h| Authority::try_from(h.as_bytes()).ok())
        .or_else(|| Authority::try_from(t.addr.as_str()).ok());
    let mut parts = http::uri::Parts::default();
    parts.scheme = Some(if t.tls.is_some() {
        Scheme::HTTPS
    } else {
        Scheme::HTTP
    });
    parts.authority = authority;
    parts.path_and_query = uri.path_and_query().cloned();
    let uri = Uri::from_parts(parts).map_err(|e| SendError::Request(e.into()))?;
    let mut req = Request::new(body);
    *req.method_mut() = method.clone();
    *req.uri_mut() = uri;
    *req.version_mut() = http::Version::HTTP_2;
    *req.headers_mut() = headers;
    Ok(req)
}

/// Whether `v` (a `TE` field value) names `trailers`.
pub(crate) fn te_trailers(v: &HeaderValue) -> bool {
    v.as_bytes()
        .split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"trailers"))
}
