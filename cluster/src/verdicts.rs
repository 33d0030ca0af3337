//! Health verdicts shared by a fleet: each proxy publishes its own (subjective) verdict on
//! every backend it checks under a lease of its own, every proxy watches them all, and a
//! backend is objectively down when a quorum of the live proxies says so ([`objective`]),
//! as Redis Sentinel tells SDOWN from ODOWN.
//!
//! Keys: `/ringleader/<ns>/health/<upstream>/<backend>/<proxy>` = `{"down": bool}`, under
//! the publishing proxy's lease, so a proxy that dies stops counting after the TTL (one
//! that stops cleanly revokes its lease: at once).
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use etcdv3client::pb;
use serde::{Deserialize, Serialize};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use crate::error::etcd;
use crate::prefix::PrefixWatch;
use crate::worker::KeepAlive;
use crate::{Cluster, Error};

/// How many proxies must say "down" for a backend to be objectively down.
///
/// ```
/// use ringleader_cluster::Quorum;
/// assert_eq!(Quorum::Majority.needed(1), 1);
/// assert_eq!(Quorum::Majority.needed(2), 2);
/// assert_eq!(Quorum::Majority.needed(3), 2);
/// assert_eq!(Quorum::Fixed(2).needed(5), 2);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Quorum {
    /// More than half of the live proxies (`live / 2 + 1`).
    #[default]
    Majority,
    /// This many proxies, however many are live. With fewer live proxies than that,
    /// nothing can be objectively down (Sentinel's rule: the quorum is never lowered).
    Fixed(u32),
}

impl Quorum {
    /// Down verdicts needed among `live` proxies.
    pub fn needed(self, live: usize) -> u32 {
        match self {
            Quorum::Majority => u32::try_from(live / 2 + 1).unwrap_or(u32::MAX),
            Quorum::Fixed(n) => n.max(1),
        }
    }
}

/// One upstream's verdicts: backend id -> proxy id -> down?
pub type UpstreamVerdicts = BTreeMap<String, BTreeMap<String, bool>>;

/// What the fleet concludes about one upstream ([`objective`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Objective {
    /// The live proxies: those publishing a verdict on any backend of the upstream.
    pub live: BTreeSet<String>,
    /// Down verdicts needed.
    pub needed: u32,
    /// The backends objectively down.
    pub down: BTreeSet<String>,
}

/// The live proxies of an upstream: every proxy that published a verdict on any of its
/// backends (a proxy publishes every backend's verdict, up or down, so one that sees all
/// of them up counts too).
pub fn live_proxies(verdicts: &UpstreamVerdicts) -> BTreeSet<String> {
    verdicts
        .values()
        .flat_map(|by_proxy| by_proxy.keys().cloned())
        .collect()
}

/// The objective verdict on one upstream's backends: a backend is down when at least
/// `quorum.needed(live.len())` of the `live` proxies say down (verdicts of proxies not
/// in `live` do not count). With fewer live proxies than the quorum nothing is down; one
/// live proxy with the default majority decides alone.
///
/// ```
/// use ringleader_cluster::{objective, Quorum, UpstreamVerdicts};
/// use std::collections::BTreeMap;
///
/// let mut v = UpstreamVerdicts::new();
/// v.insert("b1".into(), BTreeMap::from([("p1".into(), true), ("p2".into(), true), ("p3".into(), false)]));
/// v.insert("b2".into(), BTreeMap::from([("p1".into(), true), ("p2".into(), false), ("p3".into(), false)]));
/// let live = ringleader_cluster::live_proxies(&v);
/// let o = objective(&v, &live, Quorum::Majority);
/// assert_eq!(o.needed, 2);
/// assert_eq!(o.down.into_iter().collect::<Vec<_>>(), ["b1"]);
/// ```
pub fn objective(
    verdicts: &UpstreamVerdicts,
    live: &BTreeSet<String>,
    quorum: Quorum,
) -> Objective {
    let needed = quorum.needed(live.len());
    let down = verdicts
        .iter()
        .filter(|(_, by_proxy)| {
            let downs = by_proxy
                .iter()
                .filter(|(proxy, down)| **down && live.contains(*proxy))
                .count();
            u32::try_from(downs).unwrap_or(u32::MAX) >= needed
        })
        .map(|(backend, _)| backend.clone())
        .collect();
    Objective {
        live: live.clone(),
        needed,
        down,
    }
}

/// A verdict's value in etcd.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Value {
    down: bool,
}

/// Every proxy's verdicts, per upstream, as of one etcd revision.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verdicts {
    /// The etcd revision.
    pub revision: i64,
    /// upstream -> backend -> proxy -> down?
    pub upstreams: BTreeMap<String, UpstreamVerdicts>,
}

/// Watches every proxy's verdicts (made by [`Cluster::watch_verdicts`]). While etcd is
/// unreachable the last ones stay published and [`is_connected`](Self::is_connected)
/// is false. Dropping it stops the watcher.
#[derive(Debug)]
pub struct VerdictWatch {
    inner: PrefixWatch,
}

impl VerdictWatch {
    /// The latest verdicts.
    pub fn verdicts(&self) -> Verdicts {
        parse(&self.inner.snapshots.borrow())
    }

    /// Wait for the next change (`Err` when the watcher stopped).
    pub async fn changed(&mut self) -> Result<(), Error> {
        self.inner
            .snapshots
            .changed()
            .await
            .map_err(|_| Error::KeeperStopped)
    }

    /// Whether the watch stream to etcd is up.
    pub fn is_connected(&self) -> bool {
        self.inner.is_connected()
    }

    /// Full re-reads after the first.
    pub fn resyncs(&self) -> u64 {
        self.inner.resyncs()
    }
}

fn parse(snap: &crate::prefix::PrefixSnapshot) -> Verdicts {
    let mut upstreams: BTreeMap<String, UpstreamVerdicts> = BTreeMap::new();
    for (key, value) in &snap.kvs {
        let mut parts = key.splitn(3, '/');
        let (Some(up), Some(backend), Some(proxy)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if proxy.contains('/') || up.is_empty() || backend.is_empty() || proxy.is_empty() {
            continue;
        }
        // Each segment is percent-encoded (see `Keys::verdict`).
        let (Some(up), Some(backend), Some(proxy)) = (
            crate::keys::decode_segment(up),
            crate::keys::decode_segment(backend),
            crate::keys::decode_segment(proxy),
        ) else {
            tracing::debug!(key, "ignoring a verdict key with a bad encoding");
            continue;
        };
        let Ok(v) = serde_json::from_slice::<Value>(value) else {
            tracing::debug!(key, "ignoring a verdict with an invalid value");
            continue;
        };
        upstreams
            .entry(up)
            .or_default()
            .entry(backend)
            .or_default()
            .insert(proxy, v.down);
    }
    Verdicts {
        revision: snap.revision,
        upstreams,
    }
}

/// (upstream, backend id) -> down?
pub type OwnVerdicts = BTreeMap<(String, String), bool>;

/// Publishes this process's verdicts under a lease of its own (made by
/// [`Cluster::publish_verdicts`]): [`publish`](Self::publish) hands it the whole set, a
/// task writes what changed, deletes what went, keeps the lease alive every TTL/3 and,
/// when the lease is lost, takes a new one (a new proxy id) and writes everything again.
/// Dropping it revokes the lease, deleting its verdicts.
#[derive(Debug)]
pub struct VerdictPublisher {
    desired: watch::Sender<Arc<OwnVerdicts>>,
    id: watch::Receiver<String>,
    connected: Arc<AtomicBool>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl VerdictPublisher {
    /// Replace the verdicts to publish.
    pub fn publish(&self, verdicts: OwnVerdicts) {
        self.desired.send_if_modified(|d| {
            let changed = **d != verdicts;
            if changed {
                *d = Arc::new(verdicts);
            }
            changed
        });
    }

    /// This proxy's id in the keys: `<holder>-<lease id in hex>` (new with each lease).
    pub fn proxy_id(&self) -> String {
        self.id.borrow().clone()
    }

    /// Whether the last write and keep-alive reached etcd.
    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    /// Revoke the lease (deleting the verdicts) and wait for it.
    pub async fn withdraw(mut self) -> Result<(), Error> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.task.take() {
            Some(task) => task.await.map_err(|_| Error::KeeperStopped),
            None => Ok(()),
        }
    }
}

impl Drop for VerdictPublisher {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A key segment from a holder name (no `/`).
fn segment(s: &str) -> String {
    s.chars().map(|c| if c == '/' { '_' } else { c }).collect()
}

impl Cluster {
    /// Watch every proxy's verdicts in the namespace.
    ///
    /// ```no_run
    /// use ringleader_cluster::{live_proxies, objective, Cluster, ClusterConfig, Quorum};
    ///
    /// # async fn run() -> Result<(), ringleader_cluster::Error> {
    /// let cluster = Cluster::connect(&ClusterConfig::new(["http://127.0.0.1:2379"])).await?;
    /// let mut verdicts = cluster.watch_verdicts().await?;
    /// loop {
    ///     for (upstream, v) in &verdicts.verdicts().upstreams {
    ///         let o = objective(v, &live_proxies(v), Quorum::Majority);
    ///         tracing::info!(upstream, down = ?o.down, "objective verdicts");
    ///     }
    ///     verdicts.changed().await?;
    /// }
    /// # }
    /// ```
    pub async fn watch_verdicts(&self) -> Result<VerdictWatch, Error> {
        let prefix = self.keys().health_prefix();
        Ok(VerdictWatch {
            inner: PrefixWatch::start(self, "range (verdicts)", prefix).await?,
        })
    }

    /// Take a lease and publish this process's verdicts under it.
    ///
    /// ```no_run
    /// use ringleader_cluster::{Cluster, ClusterConfig, OwnVerdicts};
    ///
    /// # async fn run() -> Result<(), ringleader_cluster::Error> {
    /// let cluster = Cluster::connect(&ClusterConfig::new(["http://127.0.0.1:2379"])).await?;
    /// let publisher = cluster.publish_verdicts().await?;
    /// let mut mine = OwnVerdicts::new();
    /// mine.insert(("app".into(), "127.0.0.1:9101".into()), false);
    /// publisher.publish(mine);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn publish_verdicts(&self) -> Result<VerdictPublisher, Error> {
        let (lease, _) = self.grant("lease grant (verdicts)").await?;
        let id = format!("{}-{lease:x}", segment(self.holder()));
        let (desired, desired_rx) = watch::channel(Arc::new(OwnVerdicts::new()));
        let (id_tx, id_rx) = watch::channel(id);
        let connected = Arc::new(AtomicBool::new(true));
        let (stop, stop_rx) = oneshot::channel();
        let keeper = Keeper {
            cluster: self.clone(),
            lease,
            id: id_tx,
            desired: desired_rx,
            written: OwnVerdicts::new(),
            connected: Arc::clone(&connected),
        };
        Ok(VerdictPublisher {
            desired,
            id: id_rx,
            connected,
            stop: Some(stop),
            task: Some(tokio::spawn(keeper.run(stop_rx))),
        })
    }
}

struct Keeper {
    cluster: Cluster,
    /// The lease (0: none; take one).
    lease: i64,
    id: watch::Sender<String>,
    desired: watch::Receiver<Arc<OwnVerdicts>>,
    /// What etcd holds under the current lease.
    written: OwnVerdicts,
    connected: Arc<AtomicBool>,
}

impl Keeper {
    async fn run(mut self, mut stop: oneshot::Receiver<()>) {
        let config = self.cluster.config().clone();
        let mut keepalive = tokio::time::interval(config.keepalive_interval());
        keepalive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        keepalive.tick().await;
        let retry = config.keepalive_interval().min(Duration::from_secs(1));
        let mut dirty = true;
        loop {
            if dirty {
                dirty = match self.sync().await {
                    Ok(()) => {
                        self.connected.store(true, Ordering::Relaxed);
                        false
                    }
                    Err(e) => {
                        self.connected.store(false, Ordering::Relaxed);
                        tracing::debug!(error = %e, "publishing verdicts failed; retrying");
                        true
                    }
                };
            }
            tokio::select! {
                _ = &mut stop => break,
                r = self.desired.changed() => {
                    if r.is_err() { break }
                    dirty = true;
                }
                _ = keepalive.tick() => {
                    if self.lease != 0 && !self.keep_alive().await {
                        tracing::info!(proxy = %*self.id.borrow(), "the verdicts' lease expired: publishing them again under a new one");
                        self.lease = 0;
                        self.written.clear();
                        dirty = true;
                    }
                }
                _ = tokio::time::sleep(retry), if dirty => {}
            }
        }
        if self.lease != 0 {
            if let Err(e) = self.cluster.revoke(self.lease).await {
                tracing::debug!(error = %e, "could not revoke the verdicts' lease; it expires after its TTL");
            }
        }
    }

    /// One keep-alive; false when etcd says the lease is gone (an unanswered one is
    /// not a loss: the next tick tries again, and a write would find out).
    async fn keep_alive(&mut self) -> bool {
        match KeepAlive::open(&self.cluster, self.lease).await {
            Ok(mut ka) => match tokio::time::timeout(self.cluster.timeout(), ka.ttl()).await {
                Ok(Some(ttl)) => {
                    self.connected.store(true, Ordering::Relaxed);
                    ttl > 0
                }
                _ => {
                    self.connected.store(false, Ordering::Relaxed);
                    true
                }
            },
            Err(_) => {
                self.connected.store(false, Ordering::Relaxed);
                true
            }
        }
    }

    /// Make etcd hold exactly the desired verdicts under the lease.
    async fn sync(&mut self) -> Result<(), Error> {
        if self.lease == 0 {
            let (lease, _) = self.cluster.grant("lease grant (verdicts)").await?;
            self.lease = lease;
            self.id
                .send_replace(format!("{}-{lease:x}", segment(self.cluster.holder())));
        }
        let desired = self.desired.borrow_and_update().clone();
        let id = self.id.borrow().clone();
        let keys = self.cluster.keys().clone();
        let mut kv = self.cluster.client().kv;
        let timeout = self.cluster.timeout();
        for ((up, backend), down) in desired.iter() {
            if self.written.get(&(up.clone(), backend.clone())) == Some(down) {
                continue;
            }
            let put = pb::PutRequest {
                key: keys.verdict(up, backend, &id).into_bytes(),
                value: serde_json::to_vec(&Value { down: *down }).unwrap_or_default(),
                lease: self.lease,
                ..Default::default()
            };
            if let Err(e) = etcd("put (verdict)", timeout, kv.put(put)).await {
                // The lease is gone (etcd answers "requested lease not found"): take a
                // new one and write everything under it.
                if matches!(e, Error::Etcd { .. })
                    && matches!(self.cluster.ttl_left(self.lease).await, Ok(None))
                {
                    self.lease = 0;
                    self.written.clear();
                }
                return Err(e);
            }
            self.written.insert((up.clone(), backend.clone()), *down);
        }
        let gone: Vec<(String, String)> = self
            .written
            .keys()
            .filter(|k| !desired.contains_key(*k))
            .cloned()
            .collect();
        for k in gone {
            let del = pb::DeleteRangeRequest {
                key: keys.verdict(&k.0, &k.1, &id).into_bytes(),
                ..Default::default()
            };
            etcd("delete (verdict)", timeout, kv.delete_range(del)).await?;
            self.written.remove(&k);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdicts(rows: &[(&str, &[(&str, bool)])]) -> UpstreamVerdicts {
        rows.iter()
            .map(|(b, by)| {
                (
                    b.to_string(),
                    by.iter().map(|(p, d)| (p.to_string(), *d)).collect(),
                )
            })
            .collect()
    }

    fn down(o: &Objective) -> Vec<&str> {
        o.down.iter().map(String::as_str).collect()
    }

    #[test]
    fn verdict_keys_round_trip_names_with_slashes() {
        let keys = crate::keys::Keys::new("prod");
        let prefix = keys.health_prefix();
        let key = keys.verdict("api/v1", "[::1]:80", "p-1");
        assert_eq!(key, "/ringleader/prod/health/api%2Fv1/[::1]:80/p-1");
        let snap = crate::prefix::PrefixSnapshot {
            revision: 7,
            kvs: [(key[prefix.len()..].to_owned(), br#"{"down":true}"#.to_vec())].into(),
        };
        let v = parse(&snap);
        assert!(v.upstreams["api/v1"]["[::1]:80"]["p-1"]);
    }

    #[test]
    fn one_proxy_decides_alone_with_the_default_majority() {
        let v = verdicts(&[("a", &[("p1", true)]), ("b", &[("p1", false)])]);
        let live = live_proxies(&v);
        let o = objective(&v, &live, Quorum::Majority);
        assert_eq!((o.live.len(), o.needed), (1, 1));
        assert_eq!(down(&o), ["a"]);
    }

    #[test]
    fn two_proxies_need_both() {
        let v = verdicts(&[
            ("a", &[("p1", true), ("p2", false)]),
            ("b", &[("p1", true), ("p2", true)]),
        ]);
        let o = objective(&v, &live_proxies(&v), Quorum::Majority);
        assert_eq!(o.needed, 2);
        assert_eq!(down(&o), ["b"]);
    }

    #[test]
    fn three_proxies_need_two_and_one_is_only_subjective() {
        let v = verdicts(&[
            ("a", &[("p1", true), ("p2", false), ("p3", false)]),
            ("b", &[("p1", true), ("p2", true), ("p3", false)]),
            ("c", &[("p1", false), ("p2", false), ("p3", false)]),
        ]);
        let o = objective(&v, &live_proxies(&v), Quorum::Majority);
        assert_eq!(o.needed, 2);
        assert_eq!(down(&o), ["b"]);
        // Four proxies: a majority is three.
        let v = verdicts(&[(
            "a",
            &[("p1", true), ("p2", true), ("p3", false), ("p4", false)],
        )]);
        let o = objective(&v, &live_proxies(&v), Quorum::Majority);
        assert_eq!(o.needed, 3);
        assert!(o.down.is_empty());
    }

    #[test]
    fn a_quorum_larger_than_the_live_proxies_marks_nothing_down() {
        let v = verdicts(&[("a", &[("p1", true), ("p2", true)])]);
        let live = live_proxies(&v);
        assert!(objective(&v, &live, Quorum::Fixed(3)).down.is_empty());
        assert_eq!(down(&objective(&v, &live, Quorum::Fixed(2))), ["a"]);
        // A fixed quorum of one: any proxy decides (an explicit choice).
        let v = verdicts(&[("a", &[("p1", true), ("p2", false), ("p3", false)])]);
        assert_eq!(
            down(&objective(&v, &live_proxies(&v), Quorum::Fixed(1))),
            ["a"]
        );
        // Zero is read as one: a backend nobody says is down is never down.
        let v = verdicts(&[("a", &[("p1", false)])]);
        assert!(objective(&v, &live_proxies(&v), Quorum::Fixed(0))
            .down
            .is_empty());
    }

    #[test]
    fn proxies_that_see_everything_up_count_as_live_and_dead_ones_do_not() {
        // p2 and p3 publish only "up": still live, so p1 alone is not a majority.
        let v = verdicts(&[
            ("a", &[("p1", true)]),
            ("b", &[("p2", false), ("p3", false)]),
        ]);
        let o = objective(&v, &live_proxies(&v), Quorum::Majority);
        assert_eq!((o.live.len(), o.needed), (3, 2));
        assert!(o.down.is_empty());
        // Verdicts of proxies outside the live set do not count.
        let v = verdicts(&[("a", &[("p1", true), ("ghost", true), ("p2", false)])]);
        let live: BTreeSet<String> = ["p1".to_string(), "p2".to_string()].into();
        let o = objective(&v, &live, Quorum::Majority);
        assert_eq!(o.needed, 2);
        assert!(o.down.is_empty());
        // No verdicts at all: nothing live, nothing down.
        let o = objective(&UpstreamVerdicts::new(), &BTreeSet::new(), Quorum::Majority);
        assert_eq!((o.live.len(), o.needed), (0, 1));
        assert!(o.down.is_empty());
    }

    #[test]
    fn keys_parse_into_verdicts_and_bad_ones_are_skipped() {
        let mut kvs = BTreeMap::new();
        kvs.insert(
            "app/127.0.0.1:1/p1".to_string(),
            br#"{"down":true}"#.to_vec(),
        );
        kvs.insert(
            "app/127.0.0.1:1/p2".to_string(),
            br#"{"down":false}"#.to_vec(),
        );
        kvs.insert("app/127.0.0.1:2/p1".to_string(), b"not json".to_vec());
        kvs.insert(
            "app/too/many/parts".to_string(),
            br#"{"down":true}"#.to_vec(),
        );
        kvs.insert("app/short".to_string(), br#"{"down":true}"#.to_vec());
        let v = parse(&crate::prefix::PrefixSnapshot { revision: 5, kvs });
        assert_eq!(v.revision, 5);
        assert_eq!(
            v.upstreams["app"],
            verdicts(&[("127.0.0.1:1", &[("p1", true), ("p2", false)])])
        );
        assert_eq!(segment("host/x:1"), "host_x:1");
    }
}
