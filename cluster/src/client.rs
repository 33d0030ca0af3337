//! The connection to etcd: a gRPC channel over the endpoints, requests with timeouts,
//! and the few key-value operations the rest of the crate shares.
use std::sync::Arc;
use std::time::Duration;

use etcdv3client::grpc::TonicClient;
use etcdv3client::pb;
use tonic::transport::{Channel, Endpoint};

use crate::error::etcd;
use crate::keys::{prefix_end, Keys};
use crate::{ClusterConfig, Error};

/// The etcd client ringleader uses (generated gRPC code shipped by `etcdv3client`).
pub(crate) type Client = etcdv3client::Client<TonicClient>;

/// A connection to an etcd cluster, for one namespace. Cheap to clone; clones share the
/// connection.
///
/// ```no_run
/// use ringleader_cluster::{Cluster, ClusterConfig};
///
/// # async fn run() -> Result<(), ringleader_cluster::Error> {
/// let cluster = Cluster::connect(&ClusterConfig::new(["http://127.0.0.1:2379"])).await?;
/// let listing = cluster.list().await?;
/// for (upstream, members) in &listing.upstreams {
///     tracing::info!(upstream, members = members.len(), "upstream");
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Cluster {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    config: ClusterConfig,
    keys: Keys,
    holder: String,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("endpoints", &self.inner.config.endpoints)
            .field("namespace", &self.inner.config.namespace)
            .finish_non_exhaustive()
    }
}

impl Cluster {
    /// Validate `config`, open a channel to its endpoints and check that etcd answers
    /// (one read, within `request_timeout`).
    pub async fn connect(config: &ClusterConfig) -> Result<Cluster, Error> {
        config.validate()?;
        let mut endpoints = Vec::with_capacity(config.endpoints.len());
        for url in &config.endpoints {
            let endpoint = Endpoint::from_shared(url.clone())
                .map_err(|source| Error::Endpoint {
                    endpoint: url.clone(),
                    source,
                })?
                .connect_timeout(config.request_timeout)
                .tcp_nodelay(true)
                // Notice a dead connection (etcd killed, host gone) without a request.
                .http2_keep_alive_interval(Duration::from_secs(5))
                .keep_alive_timeout(config.request_timeout)
                .keep_alive_while_idle(true);
            endpoints.push(endpoint);
        }
        let channel = Channel::balance_list(endpoints.into_iter());
        let client = etcdv3client::Client::with_service(TonicClient::new(channel));
        let cluster = Cluster {
            inner: Arc::new(Inner {
                client,
                keys: Keys::new(&config.namespace),
                holder: config.holder_name(),
                config: config.clone(),
            }),
        };
        let probe = pb::RangeRequest {
            key: b"/ringleader/".to_vec(),
            count_only: true,
            ..Default::default()
        };
        let mut kv = cluster.client().kv;
        etcd("connect", config.request_timeout, kv.range(probe)).await?;
        tracing::debug!(endpoints = ?config.endpoints, namespace = %config.namespace, "connected to etcd");
        Ok(cluster)
    }

    /// The config this cluster was connected with.
    pub fn config(&self) -> &ClusterConfig {
        &self.inner.config
    }

    /// Who this process is in the values it writes (`ClusterConfig::holder`).
    pub fn holder(&self) -> &str {
        &self.inner.holder
    }

    pub(crate) fn keys(&self) -> &Keys {
        &self.inner.keys
    }

    /// A handle on the shared channel (the client's methods take `&mut self`).
    pub(crate) fn client(&self) -> Client {
        self.inner.client.clone()
    }

    pub(crate) fn timeout(&self) -> Duration {
        self.inner.config.request_timeout
    }

    /// Every key-value under `prefix`, and the store's revision they were read at.
    pub(crate) async fn read_prefix(
        &self,
        op: &'static str,
        prefix: &str,
    ) -> Result<(Vec<pb::KeyValue>, i64), Error> {
        let req = pb::RangeRequest {
            key: prefix.as_bytes().to_vec(),
            range_end: prefix_end(prefix.as_bytes()),
            ..Default::default()
        };
        let mut kv = self.client().kv;
        let resp = etcd(op, self.timeout(), kv.range(req)).await?;
        let revision = resp.header.map(|h| h.revision).ok_or(Error::Protocol {
            what: "range response without a header",
        })?;
        Ok((resp.kvs, revision))
    }

    /// Grant a lease of the configured TTL; its id and the TTL etcd granted.
    pub(crate) async fn grant(&self, op: &'static str) -> Result<(i64, Duration), Error> {
        let mut lease = self.client().lease;
        let ttl = self.inner.config.ttl_secs();
        let req = pb::LeaseGrantRequest { ttl, id: 0 };
        let resp = etcd(op, self.timeout(), lease.lease_grant(req)).await?;
        let granted = Duration::from_secs(u64::try_from(resp.ttl).unwrap_or(0));
        Ok((resp.id, granted))
    }

    /// Revoke a lease (its keys are deleted with it). Errors are the caller's to log.
    pub(crate) async fn revoke(&self, lease_id: i64) -> Result<(), Error> {
        let mut lease = self.client().lease;
        let req = pb::LeaseRevokeRequest { id: lease_id };
        etcd("lease revoke", self.timeout(), lease.lease_revoke(req))
            .await
            .map(drop)
    }

    /// Seconds left on a lease (`None` when it has expired or does not exist).
    pub(crate) async fn ttl_left(&self, lease_id: i64) -> Result<Option<Duration>, Error> {
        let mut lease = self.client().lease;
        let resp = etcd(
            "lease time-to-live",
            self.timeout(),
            lease.lease_time_to_live(pb::LeaseTimeToLiveRequest {
                id: lease_id,
                keys: false,
            }),
        )
        .await?;
        Ok(u64::try_from(resp.ttl)
            .ok()
            .filter(|_| resp.ttl >= 0)
            .map(Duration::from_secs))
    }
}
