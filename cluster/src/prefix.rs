//! A watcher of every key under one prefix, published as whole maps (read at revision R,
//! watch from R+1, read again after a compaction or a broken stream).
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use etcdv3client::pb;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::error::etcd;
use crate::keys::prefix_end;
use crate::Cluster;

/// The keys under a prefix (the part after the prefix) and their raw values, as of one
/// etcd revision.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct PrefixSnapshot {
    pub revision: i64,
    pub kvs: BTreeMap<String, Vec<u8>>,
}

/// Shared between the watcher task and its handle.
#[derive(Debug, Default)]
pub(crate) struct PrefixState {
    connected: AtomicBool,
    resyncs: AtomicU64,
}

/// A running prefix watcher; dropping it stops the task.
#[derive(Debug)]
pub(crate) struct PrefixWatch {
    pub snapshots: watch::Receiver<Arc<PrefixSnapshot>>,
    state: Arc<PrefixState>,
    task: JoinHandle<()>,
}

impl PrefixWatch {
    /// Read `prefix` now and watch it from there.
    pub(crate) async fn start(
        cluster: &Cluster,
        op: &'static str,
        prefix: String,
    ) -> Result<PrefixWatch, crate::Error> {
        let (kvs, revision) = cluster.read_prefix(op, &prefix).await?;
        let first = snapshot_of(&prefix, &kvs, revision);
        let (tx, rx) = watch::channel(Arc::new(first.clone()));
        let state = Arc::new(PrefixState::default());
        state.connected.store(true, Ordering::Relaxed);
        let watcher = Watcher {
            cluster: cluster.clone(),
            op,
            prefix,
            current: first,
            tx,
            state: Arc::clone(&state),
        };
        Ok(PrefixWatch {
            snapshots: rx,
            state,
            task: tokio::spawn(watcher.run()),
        })
    }

    /// Whether the watch stream is up (false: the last snapshot may be stale).
    pub(crate) fn is_connected(&self) -> bool {
        // Relaxed: a status flag; nothing is published through it.
        self.state.connected.load(Ordering::Relaxed)
    }

    /// Full re-reads after the first.
    pub(crate) fn resyncs(&self) -> u64 {
        self.state.resyncs.load(Ordering::Relaxed)
    }
}

impl Drop for PrefixWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn snapshot_of(prefix: &str, kvs: &[pb::KeyValue], revision: i64) -> PrefixSnapshot {
    let mut map = BTreeMap::new();
    for kv in kvs {
        if let Some(k) = suffix(prefix, &kv.key) {
            map.insert(k.to_owned(), kv.value.clone());
        }
    }
    PrefixSnapshot { revision, kvs: map }
}

fn suffix<'a>(prefix: &str, key: &'a [u8]) -> Option<&'a str> {
    let k = std::str::from_utf8(key.strip_prefix(prefix.as_bytes())?).ok()?;
    (!k.is_empty()).then_some(k)
}

struct Watcher {
    cluster: Cluster,
    op: &'static str,
    prefix: String,
    current: PrefixSnapshot,
    tx: watch::Sender<Arc<PrefixSnapshot>>,
    state: Arc<PrefixState>,
}

impl Watcher {
    async fn run(mut self) {
        let retry = self
            .cluster
            .config()
            .keepalive_interval()
            .min(Duration::from_secs(1));
        loop {
            let compacted = self.watch().await;
            self.state.connected.store(false, Ordering::Relaxed);
            if !compacted {
                tokio::time::sleep(retry).await;
            }
            // Read everything again: after a compaction nothing else works, and after a
            // broken stream it is as cheap as resuming (the prefixes are small).
            loop {
                match self.cluster.read_prefix(self.op, &self.prefix).await {
                    Ok((kvs, revision)) => {
                        self.current = snapshot_of(&self.prefix, &kvs, revision);
                        self.state.resyncs.fetch_add(1, Ordering::Relaxed);
                        self.tx.send_replace(Arc::new(self.current.clone()));
                        break;
                    }
                    Err(e) => {
                        tracing::debug!(prefix = %self.prefix, error = %e, "re-reading failed; retrying");
                        tokio::time::sleep(retry).await;
                    }
                }
            }
        }
    }

    /// One watch stream from `revision + 1`, applying events until it ends; true when
    /// it ended because the revisions after ours were compacted.
    async fn watch(&mut self) -> bool {
        let (req_tx, req_rx) = mpsc::channel(1);
        let create = pb::WatchRequest {
            request_union: Some(pb::watch_request::RequestUnion::CreateRequest(
                pb::WatchCreateRequest {
                    key: self.prefix.as_bytes().to_vec(),
                    range_end: prefix_end(self.prefix.as_bytes()),
                    start_revision: self.current.revision + 1,
                    ..Default::default()
                },
            )),
        };
        let _ = req_tx.try_send(create);
        let mut client = self.cluster.client().watch;
        let stream = tokio_stream::wrappers::ReceiverStream::new(req_rx);
        let mut rx = match etcd(self.op, self.cluster.timeout(), client.watch(stream)).await {
            Ok(rx) => rx,
            Err(e) => {
                tracing::debug!(prefix = %self.prefix, error = %e, "cannot start the watch");
                return false;
            }
        };
        loop {
            let resp = match rx.message().await {
                Ok(Some(resp)) => resp,
                Ok(None) | Err(_) => return false,
            };
            if resp.compact_revision != 0 {
                return true;
            }
            if resp.canceled {
                return false;
            }
            if resp.created {
                self.state.connected.store(true, Ordering::Relaxed);
            }
            if resp.events.is_empty() {
                continue;
            }
            for event in &resp.events {
                let Some(kv) = &event.kv else { continue };
                if let Some(k) = suffix(&self.prefix, &kv.key) {
                    if event.r#type == pb::event::EventType::Delete as i32 {
                        self.current.kvs.remove(k);
                    } else {
                        self.current.kvs.insert(k.to_owned(), kv.value.clone());
                    }
                }
                self.current.revision = self.current.revision.max(kv.mod_revision);
            }
            if let Some(header) = &resp.header {
                self.current.revision = self.current.revision.max(header.revision);
            }
            self.tx.send_replace(Arc::new(self.current.clone()));
        }
    }
}
