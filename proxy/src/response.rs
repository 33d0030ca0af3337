//! The response sent to the client: a backend's body streamed through, or one the proxy made (its error answers, admin pages).
use crate::error::Error;
use crate::headers::X_REQUEST_ID;
use crate::http1::{BackendBody, ClientError};
use crate::pool::Checkin;
use bytes::Bytes;
use http::header::{CONNECTION, CONTENT_TYPE};
use http::{HeaderValue, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Body of a response sent to the client.
#[derive(Debug)]
// `Upstream` is nearly every response; boxing it would cost an allocation each.
#[allow(clippy::large_enum_variant)]
pub(crate) enum ProxyBody {
    /// A backend's response body, streamed through; its connection returns
    /// to the pool when the body has been read to the end.
    Upstream {
        /// The backend's body.
        body: BackendBody,
        /// Returns the connection to its pool at the end of the body.
        checkin: Option<Checkin>,
    },
    /// A body the proxy made itself (errors, admin pages).
    Full(Full<Bytes>),
}

impl ProxyBody {
    /// A body from static or owned bytes.
    pub(crate) fn full(b: impl Into<Bytes>) -> ProxyBody {
        ProxyBody::Full(Full::new(b.into()))
    }

    /// A backend's body; `checkin` runs once it is read to the end
    /// (at once if it is complete already).
    pub(crate) fn upstream(mut body: BackendBody, checkin: Checkin) -> ProxyBody {
        if body.is_complete() {
            checkin.done(body.take_conn());
            return ProxyBody::Upstream {
                body,
                checkin: None,
            };
        }
        ProxyBody::Upstream {
            body,
            checkin: Some(checkin),
        }
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = ClientError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ClientError>>> {
        match &mut *self {
            ProxyBody::Upstream { body, checkin } => {
                let res = Pin::new(&mut *body).poll_frame(cx);
                match &res {
                    // The end, reported with the last frame or after it.
                    Poll::Ready(None) | Poll::Ready(Some(Ok(_))) if body.is_complete() => {
                        if let Some(c) = checkin.take() {
                            c.done(body.take_conn());
                        }
                    }
                    // An error: the connection is dropped with the body.
                    Poll::Ready(Some(Err(_))) => *checkin = None,
                    _ => {}
                }
                res
            }
            ProxyBody::Full(b) => Pin::new(b)
                .poll_frame(cx)
                .map(|f| f.map(|f| f.map_err(|never| match never {}))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ProxyBody::Upstream { body, .. } => body.is_end_stream(),
            ProxyBody::Full(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ProxyBody::Upstream { body, .. } => body.size_hint(),
            ProxyBody::Full(b) => b.size_hint(),
        }
    }
}

/// The response the proxy sends for a failure of its own (status from [`Error::status`]).
pub(crate) fn error_response(e: &Error, req_id: HeaderValue) -> Response<ProxyBody> {
    let status = e.status();
    let reason = match status {
        StatusCode::SERVICE_UNAVAILABLE => "no healthy backend\n",
        StatusCode::BAD_GATEWAY => "bad gateway\n",
        StatusCode::GATEWAY_TIMEOUT => "upstream timed out\n",
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => "request headers too large\n",
        StatusCode::URI_TOO_LONG => "request line too long\n",
        StatusCode::NOT_IMPLEMENTED => "not implemented\n",
        StatusCode::BAD_REQUEST => "bad request\n",
        StatusCode::NOT_FOUND => "no route\n",
        StatusCode::REQUEST_TIMEOUT => "request body timed out\n",
        _ => "proxy error\n",
    };
    let mut r = Response::new(ProxyBody::full(reason));
    *r.status_mut() = status;
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r.headers_mut().insert(X_REQUEST_ID.clone(), req_id);
    if matches!(status.as_u16(), 400 | 414 | 431 | 501) {
        // The request's head or framing was not understood: nothing after it on
        // this connection can be trusted to start a request.
        r.headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
    }
    r
}
