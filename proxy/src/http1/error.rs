//! Why an exchange with a backend failed.

/// An error of a request body the proxy streams (the client's side failed).
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why an exchange with a backend failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum ClientError {
    /// Reading or writing the backend's socket failed.
    #[error("{0}")]
    Io(#[source] std::io::Error),
    /// The backend closed the connection before any byte of a response.
    #[error("connection closed before a response")]
    Closed,
    /// The connection failed (reset, broken pipe) before any byte of a response.
    #[error("connection failed before a response: {0}")]
    Unanswered(#[source] std::io::Error),
    /// The backend's answer is not valid HTTP/1.x.
    #[error("invalid response: {0}")]
    Protocol(&'static str),
    /// The client's request body failed while it was being sent.
    #[error("client request body: {0}")]
    ClientBody(#[source] BoxError),
    /// The client's request body is longer or shorter than its `Content-Length`.
    #[error("request body length differs from its content-length ({declared})")]
    ClientBodyLength {
        /// The length the client declared.
        declared: u64,
    },
    /// An HTTP/2 backend's response body failed (stream reset, connection lost).
    #[error("http/2 response body: {0}")]
    Http2(#[source] hyper::Error),
    /// The backend sent nothing for the idle timeout in the middle of a body.
    #[error("backend sent nothing mid-body for the timeout")]
    BodyTimeout,
}

impl ClientError {
    /// The backend closed or reset the connection without sending any byte of a
    /// response: on a reused connection, the request may be sent again (RFC 9112 §9.3.1).
    pub(crate) fn is_unanswered(&self) -> bool {
        matches!(self, ClientError::Closed | ClientError::Unanswered(_))
    }

    /// The client's request body failed, not the backend.
    pub(crate) fn is_client_body(&self) -> bool {
        matches!(
            self,
            ClientError::ClientBody(_) | ClientError::ClientBodyLength { .. }
        )
    }
}
