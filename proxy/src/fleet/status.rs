//! What the cluster link reports: whether etcd answers, and each cluster-fed upstream's
//! membership as last applied (read by /status and /metrics).
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

/// The cluster as /status and /metrics show it.
#[derive(Debug, Default)]
pub(crate) struct FleetStatus {
    /// etcd answered the connection (a feeder's watch may still be down).
    pub reached: AtomicBool,
    /// Per cluster-fed upstream.
    pub upstreams: Mutex<BTreeMap<String, Feed>>,
}

impl FleetStatus {
    /// etcd reached and every watch up: memberships are current.
    pub fn connected(&self) -> bool {
        self.reached.load(Relaxed) && self.upstreams.lock().values().all(|f| f.connected)
    }
}

/// One cluster-fed upstream's membership, as last applied.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Feed {
    /// Its watch is up (false: serving the last known members).
    pub connected: bool,
    /// The etcd revision of the membership applied (0: none yet).
    pub revision: i64,
    /// Members applied.
    pub members: usize,
    /// Members skipped as unusable (bad address, weight 0, duplicate address).
    pub ignored: usize,
}
