//! What a process needs to join a cluster: etcd endpoints, a namespace, the lease TTL.
use std::time::Duration;

use crate::Error;

/// Where etcd is and how leases behave; the `[cluster]` table of the proxy's config.
///
/// ```
/// use ringleader_cluster::ClusterConfig;
/// use std::time::Duration;
///
/// let config = ClusterConfig {
///     endpoints: vec!["http://127.0.0.1:2379".into()],
///     namespace: "staging".into(),
///     lease_ttl: Duration::from_secs(10),
///     ..ClusterConfig::default()
/// };
/// config.validate()?;
/// // Keep-alives every TTL/3; IDs stop TTL/5 before the lease could expire.
/// assert_eq!(config.keepalive_interval(), Duration::from_secs(10) / 3);
/// assert_eq!(config.safety_margin(), Duration::from_secs(2));
/// # Ok::<(), ringleader_cluster::Error>(())
/// ```
/// Not `#[non_exhaustive]`: build it with `..ClusterConfig::default()`, as above.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// etcd client URLs (`http://host:port`); requests are balanced over them.
    pub endpoints: Vec<String>,
    /// Keys live under `/ringleader/<namespace>/`: clusters sharing one etcd stay apart.
    pub namespace: String,
    /// TTL of the leases that hold worker ids and registered backends (whole seconds, at
    /// least 1 s; default 10 s). etcd grants at least its own minimum (1.5 x its election
    /// timeout, 1.5 s by default), and the longer TTL it grants only delays expiry.
    pub lease_ttl: Duration,
    /// Longest wait for one etcd request (default 3 s); a keep-alive answer has until the
    /// fencing deadline instead.
    pub request_timeout: Duration,
    /// Who holds a lease, as `cluster ls` shows it (default `<hostname>:<pid>`).
    pub holder: Option<String>,
}

impl Default for ClusterConfig {
    fn default() -> ClusterConfig {
        ClusterConfig {
            endpoints: vec!["http://127.0.0.1:2379".into()],
            namespace: "default".into(),
            lease_ttl: Duration::from_secs(10),
            request_timeout: Duration::from_secs(3),
            holder: None,
        }
    }
}

impl ClusterConfig {
    /// The defaults with these endpoints.
    pub fn new(endpoints: impl IntoIterator<Item = impl Into<String>>) -> ClusterConfig {
        ClusterConfig {
            endpoints: endpoints.into_iter().map(Into::into).collect(),
            ..ClusterConfig::default()
        }
    }

    /// The same config in namespace `namespace`.
    pub fn with_namespace(mut self, namespace: impl Into<String>) -> ClusterConfig {
        self.namespace = namespace.into();
        self
    }

    /// The same config with lease TTL `ttl`.
    pub fn with_lease_ttl(mut self, ttl: Duration) -> ClusterConfig {
        self.lease_ttl = ttl;
        self
    }

    /// Check the values: endpoints given, a namespace without `/`, a TTL of at least 1 s.
    pub fn validate(&self) -> Result<(), Error> {
        let invalid = |reason| Err(Error::InvalidConfig { reason });
        if self.endpoints.is_empty() {
            return invalid("no etcd endpoints");
        }
        if self.namespace.is_empty() || self.namespace.contains('/') {
            return invalid("the namespace must be non-empty and contain no '/'");
        }
        if self.lease_ttl < Duration::from_secs(1) {
            return invalid("lease_ttl must be at least 1s");
        }
        if self.request_timeout.is_zero() {
            return invalid("request_timeout must be positive");
        }
        Ok(())
    }

    /// How often a lease is kept alive: a third of the TTL, so two keep-alives may be lost
    /// before the fence closes.
    pub fn keepalive_interval(&self) -> Duration {
        self.lease_ttl / 3
    }

    /// How long before the lease could expire a generator stops issuing: TTL/5, at least
    /// 100 ms. The deadline is `time the last confirmed keep-alive was SENT + TTL - margin`
    /// (etcd restarts the TTL when it *receives* the keep-alive, later than the send, so
    /// the lease lives at least until send + TTL). The margin covers what that bound does
    /// not: the rate difference between this host's monotonic clock and etcd's, the
    /// conversion of the deadline to the generator's wall clock (re-done on every renewal),
    /// and a thread that passed the fence check just before the deadline and returns its
    /// ID a little later. IDs themselves never collide across holders either way: each
    /// holder writes its limit to etcd before issuing under it, and the next holder starts
    /// after it.
    pub fn safety_margin(&self) -> Duration {
        (self.lease_ttl / 5).max(Duration::from_millis(100))
    }

    /// The lease TTL in whole seconds, as etcd grants it (rounded up).
    pub(crate) fn ttl_secs(&self) -> i64 {
        let secs = self.lease_ttl.as_secs() + u64::from(self.lease_ttl.subsec_nanos() > 0);
        i64::try_from(secs.max(1)).unwrap_or(i64::MAX)
    }

    /// `holder`, or `<hostname>:<pid>`.
    pub(crate) fn holder_name(&self) -> String {
        if let Some(holder) = &self.holder {
            return holder.clone();
        }
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
            .or_else(|| std::env::var("HOSTNAME").ok())
            .unwrap_or_else(|| "unknown-host".into());
        format!("{host}:{}", std::process::id())
    }
}
