//! The one error type of `ringleader-cluster`.
use std::time::Duration;

/// Everything that can go wrong talking to etcd, leasing worker ids or reading members.
///
/// ```
/// use ringleader_cluster::{ClusterConfig, Error};
///
/// let config = ClusterConfig { endpoints: vec![], ..ClusterConfig::default() };
/// assert!(matches!(config.validate(), Err(Error::InvalidConfig { .. })));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A [`ClusterConfig`](crate::ClusterConfig) value is unusable.
    #[error("invalid cluster config: {reason}")]
    InvalidConfig {
        /// What is wrong.
        reason: &'static str,
    },
    /// An endpoint is not a valid URL.
    #[error("invalid etcd endpoint {endpoint:?}")]
    Endpoint {
        /// The endpoint as given.
        endpoint: String,
        /// Why it was refused.
        #[source]
        source: tonic::transport::Error,
    },
    /// An etcd request failed.
    #[error("etcd {op} failed")]
    Etcd {
        /// What was being done, e.g. "txn (claim worker id)".
        op: &'static str,
        /// The client's error.
        #[source]
        source: etcdv3client::Error,
    },
    /// An etcd request got no answer in time (etcd down, partitioned or overloaded).
    #[error("etcd {op}: no answer within {after:?}")]
    Timeout {
        /// What was being done.
        op: &'static str,
        /// How long it waited.
        after: Duration,
    },
    /// Every worker id of the layout is held by a live lease in this namespace.
    #[error("all {count} worker ids of layout {layout} are taken in namespace {namespace:?} (each is held by a live lease; see `ringleader cluster ls`)")]
    AllWorkerIdsTaken {
        /// The layout's key name (`ts41-w10-seq12-tick1ms-epoch1288834974657`).
        layout: String,
        /// The namespace.
        namespace: String,
        /// How many worker ids the layout has.
        count: u64,
    },
    /// etcd answered with something this crate cannot use (an empty header, a bad key).
    #[error("unexpected answer from etcd: {what}")]
    Protocol {
        /// What was unexpected.
        what: &'static str,
    },
    /// Building the generator failed (its options, or its clock before the epoch).
    #[error("ID generator")]
    Idgen(#[from] ringleader_idgen::Error),
    /// The lease's background task is gone (it panicked, or the runtime shut down).
    #[error("the lease keeper task stopped")]
    KeeperStopped,
}

/// Run an etcd request with a timeout, naming it in the error.
pub(crate) async fn etcd<T>(
    op: &'static str,
    after: Duration,
    fut: impl std::future::Future<Output = Result<T, etcdv3client::Error>>,
) -> Result<T, Error> {
    match tokio::time::timeout(after, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(source)) => Err(Error::Etcd { op, source }),
        Err(_) => Err(Error::Timeout { op, after }),
    }
}
