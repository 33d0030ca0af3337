//! The proxy's side of a cluster (`[cluster]`): connect to etcd, feed each cluster-fed
//! upstream's membership into [`Proxy::set_backends`] from a watcher of its own, lease
//! the X-Request-Id worker id, and share health verdicts (`objective`: a backend a
//! quorum of the live proxies holds down leaves every proxy's consistent-hash ring).
use crate::config::{
    backend_name_problem, backends_problem, is_host_port, BackendConfig, ClusterConfig,
};
use crate::state::Proxy;
use ringleader_cluster::{Cluster, MembershipWatch, Snapshot};
use std::collections::BTreeMap;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

mod objective;
pub(crate) mod status;
pub(crate) mod verdicts;

use status::Feed;

/// Time between two attempts to reach etcd while it does not answer.
const RETRY: Duration = Duration::from_secs(1);

/// How often a feeder looks at its watch's connection, to log an outage once.
const POLL: Duration = Duration::from_millis(250);

/// Longest wait in [`crate::Server::bind`] for the first memberships before serving.
pub(crate) const START_WAIT: Duration = Duration::from_secs(3);

/// How the start of the cluster link went, for [`crate::Server::bind`] to wait on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Startup {
    /// Connecting and reading the first memberships.
    Pending,
    /// The first memberships are applied.
    Ready,
}

/// The cluster crate's config for a `[cluster]` table.
pub(crate) fn cluster_config(c: &ClusterConfig) -> ringleader_cluster::ClusterConfig {
    ringleader_cluster::ClusterConfig::new(c.endpoints.iter().map(|e| e.get_ref().clone()))
        .with_namespace(c.namespace.get_ref().clone())
        .with_lease_ttl(c.lease_ttl)
}

/// An error and its sources, `a: b: c`, for a log line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// A task aborted when its handle is dropped.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Start the cluster link of `proxy` (whose config has a `[cluster]` table); the task
/// runs until aborted (by [`crate::Server::shutdown`]).
pub(crate) fn spawn(
    proxy: Proxy,
    cfg: ClusterConfig,
    startup: watch::Sender<Startup>,
) -> JoinHandle<()> {
    tokio::spawn(run(proxy, cfg, startup))
}

async fn run(proxy: Proxy, cfg: ClusterConfig, startup: watch::Sender<Startup>) {
    let Some(status) = proxy.shared.fleet.clone() else {
        return;
    };
    let ccfg = cluster_config(&cfg);
    let quorum = cfg.health_quorum.as_ref().map(|q| *q.get_ref());
    let _verdicts = AbortOnDrop(tokio::spawn(objective::run(
        proxy.clone(),
        ccfg.clone(),
        quorum,
    )));
    let cluster = connect(&ccfg).await;
    status.reached.store(true, Relaxed);
    let _lease = AbortOnDrop(tokio::spawn(lease_worker(proxy.clone(), cluster.clone())));
    let mut reloads = proxy.shared.reloaded.subscribe();
    let mut feeders: BTreeMap<String, AbortOnDrop> = BTreeMap::new();
    loop {
        let config = proxy.config();
        let wanted: Vec<String> = config
            .upstreams
            .iter()
            .filter(|(_, u)| u.backends_from.is_some())
            .map(|(n, _)| n.clone())
            .collect();
        // Upstreams no longer fed from the cluster: stop their watchers.
        feeders.retain(|name, _| {
            let keep = wanted.contains(name);
            if !keep {
                proxy.forget_membership(name);
                status.upstreams.lock().remove(name);
            }
            keep
        });
        for name in wanted {
            if feeders.contains_key(&name) {
                continue;
            }
            status
                .upstreams
                .lock()
                .insert(name.clone(), Feed::default());
            // The first membership is read here, so the proxy starts with it.
            let first = match cluster.watch_members(&name).await {
                Ok(w) => Some(w),
                Err(e) => {
                    tracing::warn!(upstream = %name, error = %chain(&e), "cannot read the upstream's members from etcd; retrying");
                    None
                }
            };
            let task = tokio::spawn(feed(proxy.clone(), cluster.clone(), name.clone(), first));
            feeders.insert(name, AbortOnDrop(task));
        }
        startup.send_replace(Startup::Ready);
        if reloads.changed().await.is_err() {
            return;
        }
    }
}

/// Connect to etcd, retrying every [`RETRY`] while it does not answer (one WARN).
async fn connect(ccfg: &ringleader_cluster::ClusterConfig) -> Cluster {
    let mut warned = false;
    loop {
        match Cluster::connect(ccfg).await {
            Ok(c) => {
                if warned {
                    tracing::info!(endpoints = ?ccfg.endpoints, "etcd answers: cluster-fed upstreams get their members");
                }
                return c;
            }
            Err(e) => {
                if !warned {
                    tracing::warn!(
                        endpoints = ?ccfg.endpoints,
                        error = %chain(&e),
                        "cannot reach etcd: upstreams with backends_from = \"cluster\" have no backends (503) \
                         and X-Request-Id is a random UUID until it answers; retrying every {}s",
                        RETRY.as_secs()
                    );
                    warned = true;
                }
                tokio::time::sleep(RETRY).await;
            }
        }
    }
}

/// Lease the X-Request-Id worker id (retrying every lease TTL while it cannot, one
/// WARN); the lease keeps itself alive and is reclaimed after a loss by the cluster crate.
async fn lease_worker(proxy: Proxy, cluster: Cluster) {
    let mut warned = false;
    loop {
        match cluster
            .lease_generator(ringleader_idgen::Layout::TWITTER, None)
            .await
        {
            Ok(g) => {
                tracing::info!(
                    worker = g.worker(),
                    "X-Request-Id worker id leased from the cluster"
                );
                proxy.shared.ids.set_leased(g);
                return;
            }
            Err(e) => {
                if !warned {
                    tracing::warn!(error = %chain(&e), "cannot lease an X-Request-Id worker id: request IDs are random UUIDs until one is leased; retrying");
                    warned = true;
                }
                tokio::time::sleep(cluster.config().lease_ttl).await;
            }
        }
    }
}

/// Apply `name`'s memberships as they change; log an etcd outage once (the last
/// membership keeps serving) and the return.
async fn feed(proxy: Proxy, cluster: Cluster, name: String, first: Option<MembershipWatch>) {
    let Some(status) = proxy.shared.fleet.clone() else {
        return;
    };
    let watch = match first {
        Some(w) => w,
        None => loop {
            tokio::time::sleep(RETRY).await;
            if let Ok(w) = cluster.watch_members(&name).await {
                tracing::info!(upstream = %name, "etcd answers: reading the upstream's members");
                break w;
            }
        },
    };
    let mut snapshots = watch.subscribe();
    let mut connected = true;
    let mut applied: Option<i64> = None;
    loop {
        let snap = snapshots.borrow_and_update().clone();
        if applied != Some(snap.revision) {
            let (backends, ignored) = backends_of(&name, &snap);
            let members = backends.len();
            match proxy.set_backends(&name, backends) {
                Ok(()) => {
                    applied = Some(snap.revision);
                    let mut ups = status.upstreams.lock();
                    let f = ups.entry(name.clone()).or_default();
                    (f.revision, f.members, f.ignored) = (snap.revision, members, ignored);
                }
                // A reload just stopped feeding it from the cluster: this task ends soon.
                Err(e @ crate::error::Error::NotClusterFed { .. }) => {
                    tracing::debug!(upstream = %name, error = %e, "membership not applied");
                }
                Err(e) => tracing::warn!(upstream = %name, error = %e, "membership not applied"),
            }
        }
        tokio::select! {
            r = snapshots.changed() => if r.is_err() { return },
            _ = tokio::time::sleep(POLL) => {}
        }
        let now = watch.is_connected();
        if now != connected {
            if now {
                tracing::info!(upstream = %name, "etcd answers again: membership is current");
            } else {
                let members = status.upstreams.lock().get(&name).map_or(0, |f| f.members);
                tracing::warn!(
                    upstream = %name,
                    members,
                    "etcd unreachable: serving the last known {members} member(s) until it answers"
                );
            }
            connected = now;
        }
        if let Some(f) = status.upstreams.lock().get_mut(&name) {
            f.connected = now;
        }
    }
}

/// The backends of a membership, in member-id order (so every proxy that sees the same
/// membership builds the same placement), each named by its member id when that is a
/// usable name; unusable members are skipped (one WARN each) and counted.
pub(crate) fn backends_of(upstream: &str, snap: &Snapshot) -> (Vec<BackendConfig>, usize) {
    let mut out: Vec<BackendConfig> = Vec::with_capacity(snap.members.len());
    let mut ignored = 0;
    for m in &snap.members {
        let addr = &m.spec.addr;
        let why = if !is_host_port(addr) {
            Some("its addr is not host:port")
        } else if m.spec.weight == 0 {
            Some("its weight is 0")
        } else if out.iter().any(|b| b.addr.get_ref() == addr) {
            Some("another member has its addr")
        } else {
            None
        };
        if let Some(why) = why {
            tracing::warn!(upstream, member = %m.id, addr = %addr, "ignoring member {}: {why}", m.id);
            ignored += 1;
            continue;
        }
        let name =
            (m.id != *addr && backend_name_problem(&m.id).is_none()).then_some(m.id.as_str());
        out.push(BackendConfig::new(addr.clone(), m.spec.weight, name));
    }
    // A member id that is another member's address: call them all by address.
    if backends_problem(&out).is_some() {
        for b in &mut out {
            b.name = None;
        }
    }
    (out, ignored)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringleader_cluster::{BackendSpec, Member};

    fn snap(members: &[(&str, &str, u32)]) -> Snapshot {
        Snapshot {
            revision: 7,
            members: members
                .iter()
                .map(|(id, addr, weight)| Member {
                    id: id.to_string(),
                    spec: BackendSpec {
                        addr: addr.to_string(),
                        weight: *weight,
                    },
                })
                .collect(),
        }
    }

    fn shown(b: &[BackendConfig]) -> Vec<String> {
        b.iter()
            .map(|b| format!("{} {} {}", b.label(), b.addr.get_ref(), b.weight))
            .collect()
    }

    #[test]
    fn members_become_backends_named_by_id_and_unusable_ones_are_skipped() {
        let (b, ignored) = backends_of(
            "app",
            &snap(&[
                ("alpha", "127.0.0.1:9001", 2),
                ("bad addr", "127.0.0.1:9002", 1),
                ("bravo", "nohost", 1),
                ("charlie", "127.0.0.1:9003", 0),
                ("delta", "127.0.0.1:9001", 1),
                ("127.0.0.1:9004", "127.0.0.1:9004", 1),
            ]),
        );
        assert_eq!(
            shown(&b),
            [
                "alpha 127.0.0.1:9001 2",
                "127.0.0.1:9002 127.0.0.1:9002 1",
                "127.0.0.1:9004 127.0.0.1:9004 1",
            ]
        );
        assert_eq!(ignored, 3);
        assert!(backends_problem(&b).is_none());
        // An id that is another member's address: everyone by address.
        let (b, _) = backends_of(
            "app",
            &snap(&[
                ("127.0.0.1:9002", "127.0.0.1:9001", 1),
                ("x y", "127.0.0.1:9002", 1),
            ]),
        );
        assert_eq!(
            shown(&b),
            [
                "127.0.0.1:9001 127.0.0.1:9001 1",
                "127.0.0.1:9002 127.0.0.1:9002 1"
            ]
        );
    }
}
