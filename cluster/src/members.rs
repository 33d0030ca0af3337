//! Backend membership in etcd: a watcher that publishes whole snapshots of an upstream's
//! members (read at revision R, watch from R+1, re-read after a compaction), the
//! registration a backend's sidecar keeps alive, and the listing `cluster ls` prints.
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use etcdv3client::pb;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::error::etcd;
use crate::keys::prefix_end;
use crate::worker::{KeepAlive, WorkerValue};
use crate::{Cluster, Error};

/// A backend's value in etcd: `{"addr": "127.0.0.1:9101", "weight": 2}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackendSpec {
    /// `host:port` the proxy connects to.
    pub addr: String,
    /// Relative weight (default 1).
    #[serde(default = "one")]
    pub weight: u32,
}

fn one() -> u32 {
    1
}

/// One member of an upstream: its id (the last key segment) and its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The key's last segment, `.../backends/<id>`: what identifies the backend across
    /// changes (a proxy keeps a backend's statistics while its id and address stay).
    pub id: String,
    /// Address and weight.
    pub spec: BackendSpec,
}

/// An upstream's whole membership as of one etcd revision, ordered by id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// The etcd revision it reflects.
    pub revision: i64,
    /// The members, sorted by id.
    pub members: Vec<Member>,
}

/// Watches one upstream's members and publishes each change as a full [`Snapshot`],
/// for a proxy to apply like a reload. Made by [`Cluster::watch_members`]. While etcd is
/// unreachable the last snapshot stays published ([`is_connected`](Self::is_connected)
/// says so); on return the watcher catches up (re-reading everything if the revisions
/// it missed were compacted). Dropping it stops the watcher.
#[derive(Debug)]
pub struct MembershipWatch {
    snapshots: watch::Receiver<Arc<Snapshot>>,
    state: Arc<WatchState>,
    task: JoinHandle<()>,
}

#[derive(Debug, Default)]
struct WatchState {
    connected: AtomicBool,
    resyncs: AtomicU64,
}

impl MembershipWatch {
    /// The latest snapshot.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshots.borrow().clone()
    }

    /// A receiver of snapshots (`changed().await` wakes on each new one).
    pub fn subscribe(&self) -> watch::Receiver<Arc<Snapshot>> {
        self.snapshots.clone()
    }

    /// Whether the watch stream to etcd is up (false: serving the last known snapshot).
    pub fn is_connected(&self) -> bool {
        // Relaxed: a status flag; nothing is published through it.
        self.state.connected.load(Ordering::Relaxed)
    }

    /// Full re-reads after the first (each compaction of missed revisions, or
    /// reconnection that could not resume).
    pub fn resyncs(&self) -> u64 {
        self.state.resyncs.load(Ordering::Relaxed)
    }
}

impl Drop for MembershipWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Cluster {
    /// Read `upstream`'s members now and watch them from there.
    ///
    /// ```no_run
    /// use ringleader_cluster::{Cluster, ClusterConfig};
    ///
    /// # async fn run() -> Result<(), ringleader_cluster::Error> {
    /// let cluster = Cluster::connect(&ClusterConfig::new(["http://127.0.0.1:2379"])).await?;
    /// let members = cluster.watch_members("app").await?;
    /// let mut updates = members.subscribe();
    /// while updates.changed().await.is_ok() {
    ///     let snapshot = updates.borrow_and_update().clone();
    ///     // apply snapshot.members like a reload
    ///     tracing::info!(revision = snapshot.revision, n = snapshot.members.len(), "membership");
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn watch_members(&self, upstream: &str) -> Result<MembershipWatch, Error> {
        let prefix = self.keys().backends_prefix(upstream);
        let (kvs, revision) = self.read_prefix("range (members)", &prefix).await?;
        let snapshot = snapshot_of(&prefix, &kvs, revision);
        Ok(self.spawn_watcher(prefix, snapshot))
    }

    /// Watch `upstream` from an earlier snapshot (e.g. the last one a previous watcher
    /// published): changes after `since.revision` are applied to it; if etcd compacted
    /// them away, the whole prefix is read again. Publishes `since` until then.
    pub async fn watch_members_from(
        &self,
        upstream: &str,
        since: Snapshot,
    ) -> Result<MembershipWatch, Error> {
        let prefix = self.keys().backends_prefix(upstream);
        Ok(self.spawn_watcher(prefix, since))
    }

    fn spawn_watcher(&self, prefix: String, snapshot: Snapshot) -> MembershipWatch {
        let (tx, rx) = watch::channel(Arc::new(snapshot.clone()));
        let state = Arc::new(WatchState::default());
        let watcher = Watcher {
            cluster: self.clone(),
            prefix,
            members: snapshot
                .members
                .into_iter()
                .map(|m| (m.id, m.spec))
                .collect(),
            revision: snapshot.revision,
            tx,
            state: Arc::clone(&state),
        };
        let task = tokio::spawn(watcher.run());
        MembershipWatch {
            snapshots: rx,
            state,
            task,
        }
    }

    /// Register a backend of `upstream` under a lease for as long as the returned
    /// [`Registration`] lives (a sidecar): the key disappears when the lease is revoked
    /// ([`Registration::deregister`], or drop) or expires (the process died). If the
    /// lease is lost while running, it is granted again and the key re-put.
    ///
    /// ```no_run
    /// use ringleader_cluster::{BackendSpec, Cluster, ClusterConfig};
    ///
    /// # async fn run() -> Result<(), ringleader_cluster::Error> {
    /// let cluster = Cluster::connect(&ClusterConfig::new(["http://127.0.0.1:2379"])).await?;
    /// let spec = BackendSpec { addr: "127.0.0.1:9101".into(), weight: 2 };
    /// let registration = cluster.register_backend("app", "127.0.0.1:9101", &spec).await?;
    /// // ... until SIGTERM:
    /// registration.deregister().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn register_backend(
        &self,
        upstream: &str,
        id: &str,
        spec: &BackendSpec,
    ) -> Result<Registration, Error> {
        if id.is_empty() || id.contains('/') {
            return Err(Error::InvalidConfig {
                reason: "a backend id must be non-empty and contain no '/'",
            });
        }
        let key = format!("{}{id}", self.keys().backends_prefix(upstream));
        let value = serde_json::to_vec(spec).unwrap_or_default();
        let lease = self.put_under_new_lease(&key, &value).await?;
        let (stop_tx, stop_rx) = oneshot::channel();
        let (lease_tx, lease_rx) = watch::channel(lease);
        let task = tokio::spawn(keep_registered(
            self.clone(),
            key.clone(),
            value,
            lease,
            lease_tx,
            stop_rx,
        ));
        Ok(Registration {
            key,
            lease: lease_rx,
            stop: Some(stop_tx),
            task: Some(task),
        })
    }

    async fn put_under_new_lease(&self, key: &str, value: &[u8]) -> Result<i64, Error> {
        let (lease, _) = self.grant("lease grant (backend)").await?;
        let put = pb::PutRequest {
            key: key.as_bytes().to_vec(),
            value: value.to_vec(),
            lease,
            ..Default::default()
        };
        let mut kv = self.client().kv;
        etcd("put (backend)", self.timeout(), kv.put(put)).await?;
        Ok(lease)
    }

    /// Every upstream's members and every worker-id lease in the namespace.
    pub async fn list(&self) -> Result<Listing, Error> {
        let prefix = self.keys().upstreams_prefix();
        let (kvs, _) = self.read_prefix("range (upstreams)", &prefix).await?;
        let mut upstreams: BTreeMap<String, Vec<Member>> = BTreeMap::new();
        for kv in &kvs {
            let Some(rest) = kv.key.strip_prefix(prefix.as_bytes()) else {
                continue;
            };
            let Ok(rest) = std::str::from_utf8(rest) else {
                continue;
            };
            let Some((upstream, id)) = rest.split_once("/backends/") else {
                continue;
            };
            match serde_json::from_slice::<BackendSpec>(&kv.value) {
                Ok(spec) => upstreams
                    .entry(upstream.to_owned())
                    .or_default()
                    .push(Member {
                        id: id.to_owned(),
                        spec,
                    }),
                Err(e) => {
                    tracing::warn!(key = %String::from_utf8_lossy(&kv.key), error = %e, "ignoring a backend with an invalid value")
                }
            }
        }
        let prefix = self.keys().idgen_prefix();
        let (kvs, _) = self.read_prefix("range (worker ids)", &prefix).await?;
        let mut workers = Vec::new();
        for kv in &kvs {
            let Some(rest) = kv.key.strip_prefix(prefix.as_bytes()) else {
                continue;
            };
            let Ok(rest) = std::str::from_utf8(rest) else {
                continue;
            };
            let Some((layout, id)) = rest.split_once("/workers/") else {
                continue;
            };
            let Ok(worker) = id.parse::<u32>() else {
                continue;
            };
            let value = serde_json::from_slice::<WorkerValue>(&kv.value).ok();
            let ttl_left = if kv.lease != 0 {
                self.ttl_left(kv.lease).await.unwrap_or(None)
            } else {
                None
            };
            workers.push(WorkerLeaseInfo {
                layout: layout.to_owned(),
                worker,
                holder: value.as_ref().map(|v| v.holder.clone()),
                lease: kv.lease,
                ttl_left,
                high_water: value.map(|v| v.high_water),
            });
        }
        workers.sort_by(|a, b| (&a.layout, a.worker).cmp(&(&b.layout, b.worker)));
        Ok(Listing { upstreams, workers })
    }
}

/// What [`Cluster::list`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Listing {
    /// Members per upstream name, sorted by id.
    pub upstreams: BTreeMap<String, Vec<Member>>,
    /// Held worker ids, by layout then id.
    pub workers: Vec<WorkerLeaseInfo>,
}

/// One held worker id.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct WorkerLeaseInfo {
    /// The layout's key name (`ts41-w10-seq12-tick1ms-epoch1288834974657`).
    pub layout: String,
    /// The worker id.
    pub worker: u32,
    /// Who holds it (`None` if the value is not ringleader's).
    pub holder: Option<String>,
    /// The etcd lease id.
    pub lease: i64,
    /// Time left on the lease (`None`: expired or unknown).
    pub ttl_left: Option<Duration>,
    /// The holder's high-water timestamp (layout ticks).
    pub high_water: Option<u64>,
}

/// A backend registered by [`Cluster::register_backend`]; dropping it revokes the lease
/// in the background (or it expires after the TTL).
#[derive(Debug)]
pub struct Registration {
    key: String,
    lease: watch::Receiver<i64>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Registration {
    /// The backend's key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The lease it is registered under now.
    pub fn lease(&self) -> i64 {
        *self.lease.borrow()
    }

    /// Revoke the lease, deleting the key, and wait for it.
    pub async fn deregister(mut self) -> Result<(), Error> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.task.take() {
            Some(task) => task.await.map_err(|_| Error::KeeperStopped),
            None => Ok(()),
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn keep_registered(
    cluster: Cluster,
    key: String,
    value: Vec<u8>,
    mut lease: i64,
    lease_tx: watch::Sender<i64>,
    mut stop: oneshot::Receiver<()>,
) {
    let mut interval = tokio::time::interval(cluster.config().keepalive_interval());
    interval.tick().await;
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = interval.tick() => {
                let alive = match KeepAlive::open(&cluster, lease).await {
                    Ok(mut ka) => match tokio::time::timeout(cluster.timeout(), ka.ttl()).await {
                        Ok(Some(ttl)) => ttl > 0,
                        _ => true, // no answer: try again next tick
                    },
                    Err(e) => {
                        tracing::debug!(error = %e, "backend keep-alive failed; retrying");
                        true
                    }
                };
                if !alive {
                    tracing::warn!(key, "backend lease expired; registering again");
                    match cluster.put_under_new_lease(&key, &value).await {
                        Ok(new) => {
                            lease = new;
                            let _ = lease_tx.send(new);
                        }
                        Err(e) => tracing::warn!(error = %e, "re-registering failed; retrying"),
                    }
                }
            }
        }
    }
    if let Err(e) = cluster.revoke(lease).await {
        tracing::warn!(error = %e, key, "could not revoke the backend's lease; it expires after its TTL");
    }
}

fn snapshot_of(prefix: &str, kvs: &[pb::KeyValue], revision: i64) -> Snapshot {
    let mut members = BTreeMap::new();
    for kv in kvs {
        apply_put(prefix, &mut members, kv);
    }
    Snapshot {
        revision,
        members: to_vec(&members),
    }
}

fn member_id<'a>(prefix: &str, key: &'a [u8]) -> Option<&'a str> {
    let id = std::str::from_utf8(key.strip_prefix(prefix.as_bytes())?).ok()?;
    (!id.is_empty() && !id.contains('/')).then_some(id)
}

fn apply_put(prefix: &str, members: &mut BTreeMap<String, BackendSpec>, kv: &pb::KeyValue) {
    let Some(id) = member_id(prefix, &kv.key) else {
        return;
    };
    match serde_json::from_slice::<BackendSpec>(&kv.value) {
        Ok(spec) => {
            members.insert(id.to_owned(), spec);
        }
        Err(e) => {
            // Operator input: skipped, never a panic; a later valid put replaces it.
            tracing::warn!(key = %String::from_utf8_lossy(&kv.key), error = %e, "ignoring a backend with an invalid value");
            members.remove(id);
        }
    }
}

fn to_vec(members: &BTreeMap<String, BackendSpec>) -> Vec<Member> {
    members
        .iter()
        .map(|(id, spec)| Member {
            id: id.clone(),
            spec: spec.clone(),
        })
        .collect()
}

struct Watcher {
    cluster: Cluster,
    prefix: String,
    members: BTreeMap<String, BackendSpec>,
    revision: i64,
    tx: watch::Sender<Arc<Snapshot>>,
    state: Arc<WatchState>,
}

/// How one watch stream ended.
enum Ended {
    /// The revisions after ours were compacted: read everything again.
    Compacted,
    /// The stream broke (etcd gone): resume from our revision once it answers.
    Broken,
}

impl Watcher {
    async fn run(mut self) {
        let retry = self
            .cluster
            .config()
            .keepalive_interval()
            .min(Duration::from_secs(1));
        let mut needs_read = false;
        loop {
            if needs_read {
                match self
                    .cluster
                    .read_prefix("range (members)", &self.prefix)
                    .await
                {
                    Ok((kvs, revision)) => {
                        let snapshot = snapshot_of(&self.prefix, &kvs, revision);
                        self.members = snapshot
                            .members
                            .iter()
                            .map(|m| (m.id.clone(), m.spec.clone()))
                            .collect();
                        self.revision = revision;
                        self.state.resyncs.fetch_add(1, Ordering::Relaxed);
                        tracing::info!(prefix = %self.prefix, revision, "membership re-read in full");
                        self.publish();
                        needs_read = false;
                    }
                    Err(e) => {
                        self.state.connected.store(false, Ordering::Relaxed);
                        tracing::debug!(error = %e, "re-reading members failed; retrying");
                        tokio::time::sleep(retry).await;
                        continue;
                    }
                }
            }
            match self.watch().await {
                Ended::Compacted => needs_read = true,
                Ended::Broken => {
                    self.state.connected.store(false, Ordering::Relaxed);
                    tokio::time::sleep(retry).await;
                }
            }
        }
    }

    fn publish(&self) {
        let snapshot = Snapshot {
            revision: self.revision,
            members: to_vec(&self.members),
        };
        self.tx.send_replace(Arc::new(snapshot));
    }

    /// One watch stream from `revision + 1`, applying events until it ends.
    async fn watch(&mut self) -> Ended {
        let (req_tx, req_rx) = mpsc::channel(1);
        let create = pb::WatchRequest {
            request_union: Some(pb::watch_request::RequestUnion::CreateRequest(
                pb::WatchCreateRequest {
                    key: self.prefix.as_bytes().to_vec(),
                    range_end: prefix_end(self.prefix.as_bytes()),
                    start_revision: self.revision + 1,
                    ..Default::default()
                },
            )),
        };
        let _ = req_tx.try_send(create);
        let mut client = self.cluster.client().watch;
        let stream = tokio_stream::wrappers::ReceiverStream::new(req_rx);
        let mut rx = match etcd(
            "watch (members)",
            self.cluster.timeout(),
            client.watch(stream),
        )
        .await
        {
            Ok(rx) => rx,
            Err(e) => {
                tracing::debug!(error = %e, "cannot start the membership watch");
                return Ended::Broken;
            }
        };
        loop {
            let resp = match rx.message().await {
                Ok(Some(resp)) => resp,
                Ok(None) | Err(_) => return Ended::Broken,
            };
            if resp.compact_revision != 0 {
                tracing::info!(prefix = %self.prefix, compacted = resp.compact_revision, from = self.revision + 1, "membership watch fell behind a compaction");
                return Ended::Compacted;
            }
            if resp.canceled {
                return Ended::Broken;
            }
            if resp.created {
                // The watch is up: the published snapshot is current again.
                self.state.connected.store(true, Ordering::Relaxed);
            }
            if resp.events.is_empty() {
                continue;
            }
            for event in &resp.events {
                let Some(kv) = &event.kv else { continue };
                if event.r#type == pb::event::EventType::Delete as i32 {
                    if let Some(id) = member_id(&self.prefix, &kv.key) {
                        self.members.remove(id);
                    }
                } else {
                    apply_put(&self.prefix, &mut self.members, kv);
                }
                self.revision = self.revision.max(kv.mod_revision);
            }
            if let Some(header) = &resp.header {
                self.revision = self.revision.max(header.revision);
            }
            self.publish();
        }
    }
}
