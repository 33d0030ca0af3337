//! Worker ids leased from etcd: claim (a transaction on `create_revision == 0`), the
//! keeper task (keep-alives, fencing, watching the own key, handover high-water, reclaim
//! after a loss) and the generator it fences.
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use etcdv3client::pb;
use ringleader_idgen::{
    Clock, Fence, Generator, GeneratorBuilder, Id, Layout, NextId, SystemClock,
};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::error::etcd;
use crate::keys::layout_name;
use crate::{Cluster, Error};

/// What a worker key's value holds (JSON).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct WorkerValue {
    /// Who holds it (`ClusterConfig::holder`).
    pub holder: String,
    /// The etcd lease it is attached to.
    pub lease: i64,
    /// The highest timestamp (layout ticks) the holder may issue up to: the fence limit
    /// it wrote before issuing under it, or, after a clean release, its last timestamp.
    pub high_water: u64,
}

/// Where a leased generator stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LeaseState {
    /// Lease confirmed; IDs are issued until `deadline`.
    Held,
    /// The last confirmed keep-alive is too old: no IDs until one is confirmed.
    Fenced,
    /// The lease is gone (expired, revoked, key deleted or taken): reclaiming.
    Lost,
    /// Released on request; the generator is sealed.
    Released,
}

/// A snapshot of a leased generator's lease, published on every change.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LeaseStatus {
    /// The worker id held (the last one, while `Lost`).
    pub worker: u32,
    /// The etcd lease id.
    pub lease: i64,
    /// Held, fenced, lost or released.
    pub state: LeaseState,
    /// When the last confirmed keep-alive (or the grant) was sent, on the generator's
    /// clock (time since the Unix epoch).
    pub confirmed_sent: Duration,
    /// The TTL etcd confirmed then.
    pub confirmed_ttl: Duration,
    /// The fence's limit: IDs have timestamps below it (layout ticks).
    pub limit: u64,
    /// The high-water last written to etcd (>= `limit`).
    pub high_water: u64,
    /// Keep-alives confirmed since the start.
    pub renewals: u64,
    /// Times the lease was lost and reclaimed.
    pub reclaims: u64,
}

/// A [`Generator`] whose worker id is leased from etcd and which stops issuing
/// ([`Error::Fenced`](ringleader_idgen::Error::Fenced)) whenever the lease is not
/// confirmed. A background task keeps the lease alive and reclaims it after a loss (the
/// same worker id when it is free, else the lowest free one; the generator is then
/// replaced, and IDs keep increasing).
///
/// Made by [`Cluster::lease_generator`]. Drop it or call
/// [`release`](LeasedGenerator::release) to give the worker id back.
pub struct LeasedGenerator<C: Clock + 'static = SystemClock> {
    current: Arc<ArcSwap<Generator<C>>>,
    status: watch::Receiver<LeaseStatus>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl<C: Clock + 'static> std::fmt::Debug for LeasedGenerator<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeasedGenerator")
            .field("status", &*self.status.borrow())
            .finish_non_exhaustive()
    }
}

impl<C: Clock + 'static> LeasedGenerator<C> {
    /// The next ID, or [`Fenced`](ringleader_idgen::Error::Fenced) while the lease is not
    /// confirmed. Blocks like [`Generator::next_id`] (at most a tick, or a tolerated clock
    /// step); async code uses [`try_next_id`](Self::try_next_id).
    #[inline]
    pub fn next_id(&self) -> Result<Id, ringleader_idgen::Error> {
        self.current.load().next_id()
    }

    /// [`Generator::try_next_id`] on the current generator: never blocks.
    #[inline]
    pub fn try_next_id(&self) -> Result<NextId, ringleader_idgen::Error> {
        self.current.load().try_next_id()
    }

    /// The generator now in use (replaced after a reclaim).
    pub fn generator(&self) -> Arc<Generator<C>> {
        self.current.load_full()
    }

    /// The worker id held now.
    pub fn worker(&self) -> u32 {
        self.status.borrow().worker
    }

    /// The lease's current status.
    pub fn status(&self) -> LeaseStatus {
        self.status.borrow().clone()
    }

    /// Status updates (each renewal, fence, loss and reclaim). Do not keep a borrow of
    /// it (e.g. the `Ref` that `wait_for` returns) across an await: it holds the lock the
    /// lease keeper needs to publish.
    pub fn subscribe(&self) -> watch::Receiver<LeaseStatus> {
        self.status.clone()
    }

    /// Seal the generator, write its last timestamp as the worker id's high-water, and
    /// revoke the lease (deleting the worker key), so the next holder starts at once.
    pub async fn release(mut self) -> Result<(), Error> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.task.take() {
            Some(task) => task.await.map_err(|_| Error::KeeperStopped),
            None => Ok(()),
        }
    }
}

impl<C: Clock + 'static> Drop for LeasedGenerator<C> {
    /// Stops issuing at once and lets the keeper release the lease in the background
    /// (if the runtime still runs; otherwise the lease expires after its TTL).
    fn drop(&mut self) {
        self.current.load().fence().close();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A claimed worker id, before its generator exists.
struct Claim {
    worker: u32,
    lease: i64,
    /// Revision of the txn that created the worker key (its create_revision).
    created: i64,
    /// The previous holders' high-water, if any.
    high_water: Option<u64>,
    /// When the grant was sent, and the TTL granted.
    sent: Instant,
    ttl: Duration,
}

impl Cluster {
    /// Lease a worker id for `layout` and build a generator on the system clock that
    /// issues only while the lease is confirmed. `prefer`: the id to take if it is free
    /// (the one this process held last), else the lowest free one; all taken is
    /// [`Error::AllWorkerIdsTaken`].
    ///
    /// ```no_run
    /// use ringleader_cluster::{Cluster, ClusterConfig};
    /// use ringleader_idgen::Layout;
    ///
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let cluster = Cluster::connect(&ClusterConfig::new(["http://127.0.0.1:2379"])).await?;
    /// let ids = cluster.lease_generator(Layout::TWITTER, None).await?;
    /// let id = ids.next_id()?; // Err(Fenced) while etcd cannot confirm the lease
    /// tracing::info!(%id, worker = ids.worker(), "issued");
    /// ids.release().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn lease_generator(
        &self,
        layout: Layout,
        prefer: Option<u32>,
    ) -> Result<LeasedGenerator, Error> {
        self.lease_generator_with(layout, prefer, move || Generator::builder(layout))
            .await
    }

    /// [`lease_generator`](Self::lease_generator) with the generator's options (clock,
    /// borrowing, tolerance) from `builder`, called again for each reclaim. The builder's
    /// layout must be `layout`; the lease adds the fence, the worker id and the handover
    /// floor.
    ///
    /// ```no_run
    /// use ringleader_cluster::{Cluster, ClusterConfig};
    /// use ringleader_idgen::{CoarseClock, Generator, Layout};
    /// use std::time::Duration;
    ///
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let cluster = Cluster::connect(&ClusterConfig::new(["http://127.0.0.1:2379"])).await?;
    /// let clock = CoarseClock::start(Duration::from_millis(1))?;
    /// let ids = cluster
    ///     .lease_generator_with(Layout::TWITTER, Some(3), move || {
    ///         Generator::builder(Layout::TWITTER).clock(clock.clone())
    ///     })
    ///     .await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn lease_generator_with<C, F>(
        &self,
        layout: Layout,
        prefer: Option<u32>,
        builder: F,
    ) -> Result<LeasedGenerator<C>, Error>
    where
        C: Clock + 'static,
        F: Fn() -> GeneratorBuilder<C> + Send + Sync + 'static,
    {
        let claim = self.claim(&layout, prefer).await?;
        let (gen, status) = match self.arm(&layout, &claim, claim.high_water, &builder).await {
            Ok(armed) => armed,
            Err(e) => {
                let _ = self.revoke(claim.lease).await;
                return Err(e);
            }
        };
        let current = Arc::new(ArcSwap::from_pointee(gen));
        let (status_tx, status_rx) = watch::channel(status);
        let (stop_tx, stop_rx) = oneshot::channel();
        let keeper = Keeper {
            cluster: self.clone(),
            layout,
            builder: Box::new(builder),
            current: Arc::clone(&current),
            status: status_tx,
            claim,
        };
        let task = tokio::spawn(keeper.run(stop_rx));
        Ok(LeasedGenerator {
            current,
            status: status_rx,
            stop: Some(stop_tx),
            task: Some(task),
        })
    }

    /// Grant a lease and take a worker id under it.
    async fn claim(&self, layout: &Layout, prefer: Option<u32>) -> Result<Claim, Error> {
        let sent = Instant::now();
        let (lease, ttl) = self.grant("lease grant (worker id)").await?;
        let ttl = ttl.min(self.config().lease_ttl);
        match self.take_free_id(layout, prefer, lease).await {
            Ok((worker, created, high_water)) => {
                tracing::info!(worker, lease = format_args!("{lease:x}"), layout = %layout_name(layout), "worker id leased");
                Ok(Claim {
                    worker,
                    lease,
                    created,
                    high_water,
                    sent,
                    ttl,
                })
            }
            Err(e) => {
                if let Err(revoke) = self.revoke(lease).await {
                    tracing::debug!(error = %revoke, "revoking an unused lease failed; it expires by itself");
                }
                Err(e)
            }
        }
    }

    /// Try `prefer`, then every free id from the lowest, each with a transaction that
    /// succeeds only if the key does not exist.
    async fn take_free_id(
        &self,
        layout: &Layout,
        prefer: Option<u32>,
        lease: i64,
    ) -> Result<(u32, i64, Option<u64>), Error> {
        let prefix = self.keys().workers_prefix(layout);
        let (kvs, _) = self.read_prefix("range (worker ids)", &prefix).await?;
        let taken: std::collections::BTreeSet<u32> = kvs
            .iter()
            .filter_map(|kv| std::str::from_utf8(kv.key.strip_prefix(prefix.as_bytes())?).ok())
            .filter_map(|id| id.parse().ok())
            .collect();
        let max = layout.max_worker();
        let preferred = prefer.filter(|&p| p <= max && !taken.contains(&p));
        let free = (0..=max).filter(|id| !taken.contains(id) && Some(*id) != preferred);
        for id in preferred.into_iter().chain(free) {
            if let Some((created, high_water)) = self.try_claim(layout, id, lease).await? {
                return Ok((id, created, high_water));
            }
        }
        Err(Error::AllWorkerIdsTaken {
            layout: layout_name(layout),
            namespace: self.config().namespace.clone(),
            count: u64::from(max) + 1,
        })
    }

    /// The claim transaction for one id: if `create_revision(key) == 0`, put the key under
    /// the lease and read the id's high-water. `None` when the id is taken.
    async fn try_claim(
        &self,
        layout: &Layout,
        id: u32,
        lease: i64,
    ) -> Result<Option<(i64, Option<u64>)>, Error> {
        let key = self.keys().worker(layout, id);
        let hw_key = self.keys().high_water(layout, id);
        let value = WorkerValue {
            holder: self.holder().to_owned(),
            lease,
            high_water: 0,
        };
        let txn = pb::TxnRequest {
            compare: vec![create_revision_is(&key, 0)],
            success: vec![put_op(&key, &value, lease), range_op(&hw_key)],
            failure: vec![],
        };
        let mut kv = self.client().kv;
        let resp = etcd("txn (claim worker id)", self.timeout(), kv.txn(txn)).await?;
        if !resp.succeeded {
            return Ok(None);
        }
        let created = resp.header.map(|h| h.revision).ok_or(Error::Protocol {
            what: "txn response without a header",
        })?;
        let high_water = resp.responses.into_iter().find_map(|r| match r.response {
            Some(pb::response_op::Response::ResponseRange(range)) => range
                .kvs
                .first()
                .and_then(|kv| std::str::from_utf8(&kv.value).ok()?.trim().parse().ok()),
            _ => None,
        });
        Ok(Some((created, high_water)))
    }

    /// Build the generator for a claim (issuing after `start_after`), write the first
    /// fence limit as the id's high-water, then open the fence.
    async fn arm<C: Clock + 'static>(
        &self,
        layout: &Layout,
        claim: &Claim,
        start_after: Option<u64>,
        builder: &(dyn Fn() -> GeneratorBuilder<C> + Send + Sync),
    ) -> Result<(Generator<C>, LeaseStatus), Error> {
        let mut b = builder().fence(Fence::new());
        if let Some(after) = start_after {
            b = b.start_after(after);
        }
        let gen = b.build(claim.worker)?;
        if gen.layout() != *layout {
            return Err(Error::InvalidConfig {
                reason: "the generator builder's layout differs from the leased layout",
            });
        }
        let deadline = claim.sent + claim.ttl.saturating_sub(self.config().safety_margin());
        let (limit, sent_clock) = limit_at(&gen, deadline, claim.sent)?;
        // Never lower the stored high-water (a predecessor's clock may run ahead of ours).
        let high_water = limit.max(claim.high_water.unwrap_or(0));
        if !self.write_high_water(layout, claim, high_water).await? {
            return Err(Error::Protocol {
                what: "the worker key changed right after it was claimed",
            });
        }
        gen.fence().allow_until(limit);
        let status = LeaseStatus {
            worker: claim.worker,
            lease: claim.lease,
            state: LeaseState::Held,
            confirmed_sent: sent_clock,
            confirmed_ttl: claim.ttl,
            limit,
            high_water,
            renewals: 0,
            reclaims: 0,
        };
        Ok((gen, status))
    }

    /// Store `high_water` in the worker key and the id's high-water key, if the worker key
    /// is still ours (same create revision). `false` when it is not.
    async fn write_high_water(
        &self,
        layout: &Layout,
        claim: &Claim,
        high_water: u64,
    ) -> Result<bool, Error> {
        let key = self.keys().worker(layout, claim.worker);
        let value = WorkerValue {
            holder: self.holder().to_owned(),
            lease: claim.lease,
            high_water,
        };
        let txn = pb::TxnRequest {
            compare: vec![create_revision_is(&key, claim.created)],
            success: vec![
                put_op(&key, &value, claim.lease),
                pb::PutRequest {
                    key: self.keys().high_water(layout, claim.worker).into_bytes(),
                    value: high_water.to_string().into_bytes(),
                    ..Default::default()
                }
                .into(),
            ],
            failure: vec![],
        };
        let mut kv = self.client().kv;
        let resp = etcd("txn (high-water)", self.timeout(), kv.txn(txn)).await?;
        Ok(resp.succeeded)
    }
}

/// The fence limit for a monotonic `deadline`, in the generator's layout ticks on its own
/// clock (re-derived at every renewal, so clock steps only matter between two renewals),
/// and `sent` on that clock.
fn limit_at<C: Clock>(
    gen: &Generator<C>,
    deadline: Instant,
    sent: Instant,
) -> Result<(u64, Duration), Error> {
    let now = Instant::now();
    let clock_now = gen.clock().now();
    let until = clock_now + deadline.saturating_duration_since(now);
    let until = until.saturating_sub(now.saturating_duration_since(deadline));
    let sent_clock = clock_now.saturating_sub(now.saturating_duration_since(sent));
    Ok((gen.layout().timestamp_at(until)?, sent_clock))
}

fn create_revision_is(key: &str, revision: i64) -> pb::Compare {
    pb::Compare {
        result: pb::compare::CompareResult::Equal as i32,
        target: pb::compare::CompareTarget::Create as i32,
        key: key.as_bytes().to_vec(),
        range_end: vec![],
        target_union: Some(pb::compare::TargetUnion::CreateRevision(revision)),
    }
}

fn put_op(key: &str, value: &WorkerValue, lease: i64) -> pb::RequestOp {
    pb::PutRequest {
        key: key.as_bytes().to_vec(),
        // A struct of a string and two integers always serialises.
        value: serde_json::to_vec(value).unwrap_or_default(),
        lease,
        ..Default::default()
    }
    .into()
}

fn range_op(key: &str) -> pb::RequestOp {
    pb::RangeRequest {
        key: key.as_bytes().to_vec(),
        ..Default::default()
    }
    .into()
}

/// Why the keeper's inner loop ended.
enum Exit {
    Stop,
    Lost(&'static str),
}

/// The background task of one leased generator.
struct Keeper<C: Clock + 'static> {
    cluster: Cluster,
    layout: Layout,
    builder: Box<dyn Fn() -> GeneratorBuilder<C> + Send + Sync>,
    current: Arc<ArcSwap<Generator<C>>>,
    status: watch::Sender<LeaseStatus>,
    claim: Claim,
}

impl<C: Clock + 'static> Keeper<C> {
    async fn run(mut self, mut stop: oneshot::Receiver<()>) {
        loop {
            match self.keep(&mut stop).await {
                Exit::Stop => {
                    tracing::debug!(worker = self.claim.worker, "releasing the worker id");
                    self.release().await;
                    return;
                }
                Exit::Lost(why) => {
                    let gen = self.current.load_full();
                    let issued = gen.seal();
                    tracing::warn!(
                        worker = self.claim.worker,
                        why,
                        "worker-id lease lost; no IDs until it is reclaimed"
                    );
                    self.status.send_modify(|s| s.state = LeaseState::Lost);
                    let _ = self.cluster.revoke(self.claim.lease).await;
                    if !self.reclaim(issued, &mut stop).await {
                        return;
                    }
                }
            }
        }
    }

    /// Keep the current claim alive until it is lost or a stop is asked for.
    async fn keep(&mut self, stop: &mut oneshot::Receiver<()>) -> Exit {
        let config = self.cluster.config().clone();
        let margin = config.safety_margin();
        let mut interval = tokio::time::interval(config.keepalive_interval());
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        interval.tick().await; // the first tick is immediate: the claim was just confirmed
        let mut stream: Option<KeepAlive> = None;
        let mut own_key: Option<OwnKeyWatch> = None;
        let mut deadline = self.claim.sent + self.claim.ttl.saturating_sub(margin);
        let mut fenced_logged = false;
        loop {
            if own_key.is_none() {
                own_key = OwnKeyWatch::start(&self.cluster, &self.layout, &self.claim)
                    .await
                    .map_err(|e| tracing::debug!(error = %e, "cannot watch the worker key yet"))
                    .ok();
            }
            tokio::select! {
                _ = &mut *stop => return Exit::Stop,
                _ = interval.tick() => {
                    match &mut stream {
                        // Opening sends the first keep-alive (etcd answers the call's
                        // headers with the first response).
                        None => {
                            stream = KeepAlive::open(&self.cluster, self.claim.lease)
                                .await
                                .map_err(|e| tracing::debug!(error = %e, "cannot open the keep-alive stream"))
                                .ok();
                        }
                        Some(s) => {
                            if !s.send(self.claim.lease) {
                                stream = None;
                            }
                        }
                    }
                }
                answer = recv_keepalive(&mut stream) => match answer {
                    Some((sent, ttl)) if ttl > 0 => {
                        let ttl = Duration::from_secs(ttl.unsigned_abs()).min(config.lease_ttl);
                        let new_deadline = sent + ttl.saturating_sub(margin);
                        if new_deadline <= deadline || new_deadline <= Instant::now() {
                            continue; // an old answer (e.g. queued during a partition)
                        }
                        match self.renew(sent, ttl, new_deadline).await {
                            Ok(true) => {
                                deadline = new_deadline;
                                fenced_logged = false;
                            }
                            Ok(false) => return Exit::Lost("the worker key is no longer ours"),
                            Err(e) => tracing::debug!(error = %e, "writing the high-water failed; the fence stays where it was"),
                        }
                    }
                    Some(_) => return Exit::Lost("keep-alive answered TTL 0: the lease expired"),
                    None => stream = None,
                },
                event = recv_own_key(&mut own_key) => match event {
                    Some(Ok(())) => {}
                    Some(Err(why)) => return Exit::Lost(why),
                    None => own_key = None,
                },
                _ = tokio::time::sleep_until(deadline.into()), if !fenced_logged => {
                    fenced_logged = true;
                    tracing::warn!(worker = self.claim.worker, "no keep-alive confirmed in time: IDs are fenced until etcd answers");
                    self.status.send_modify(|s| s.state = LeaseState::Fenced);
                }
            }
        }
    }

    /// A confirmed keep-alive: write the new limit as high-water, then extend the fence.
    async fn renew(
        &mut self,
        sent: Instant,
        ttl: Duration,
        deadline: Instant,
    ) -> Result<bool, Error> {
        let gen = self.current.load_full();
        let (limit, sent_clock) = limit_at(&gen, deadline, sent)?;
        let high_water = limit.max(self.claim.high_water.unwrap_or(0));
        // Bounded by the deadline too: a write answered after it must not extend anything.
        let write = self
            .cluster
            .write_high_water(&self.layout, &self.claim, high_water);
        let wrote = match tokio::time::timeout_at(deadline.into(), write).await {
            Ok(r) => r?,
            Err(_) => return Ok(true),
        };
        if !wrote {
            return Ok(false);
        }
        gen.fence().allow_until(limit);
        self.status.send_modify(|s| {
            s.state = LeaseState::Held;
            s.confirmed_sent = sent_clock;
            s.confirmed_ttl = ttl;
            s.limit = limit;
            s.high_water = high_water;
            s.renewals += 1;
        });
        Ok(true)
    }

    /// After a loss: claim again (the same id if free) until it works or a stop comes.
    async fn reclaim(&mut self, issued: Option<u64>, stop: &mut oneshot::Receiver<()>) -> bool {
        let retry = self.cluster.config().keepalive_interval();
        let last = self.claim.worker;
        let written = self.status.borrow().high_water;
        loop {
            let attempt = async {
                let claim = self.cluster.claim(&self.layout, Some(last)).await?;
                // Every other holder starts after the stored high-water and raises it
                // before issuing: if it still holds what this process wrote, nobody
                // issued with the id since, and issuing may go on right after this
                // process's own last ID (not after its fence limit, up to TTL ahead).
                let start_after = if claim.worker != last {
                    claim.high_water
                } else if claim.high_water == Some(written) {
                    issued.or(claim.high_water)
                } else {
                    claim.high_water.max(issued)
                };
                match self
                    .cluster
                    .arm(&self.layout, &claim, start_after, &*self.builder)
                    .await
                {
                    Ok((gen, status)) => Ok((claim, gen, status)),
                    Err(e) => {
                        let _ = self.cluster.revoke(claim.lease).await;
                        Err(e)
                    }
                }
            };
            tokio::select! {
                _ = &mut *stop => return false,
                result = attempt => match result {
                    Ok((claim, gen, status)) => {
                        tracing::info!(worker = claim.worker, previous = last, "worker-id lease reclaimed");
                        self.claim = claim;
                        self.current.store(Arc::new(gen));
                        let reclaims = self.status.borrow().reclaims + 1;
                        let renewals = self.status.borrow().renewals;
                        self.status.send_replace(LeaseStatus { reclaims, renewals, ..status });
                        return true;
                    }
                    Err(e) => tracing::warn!(error = %e, "reclaiming a worker id failed; retrying"),
                }
            }
            tokio::select! {
                _ = &mut *stop => return false,
                _ = tokio::time::sleep(retry) => {}
            }
        }
    }

    /// Clean release: seal, store the last issued timestamp, revoke the lease.
    async fn release(&mut self) {
        let gen = self.current.load_full();
        let issued = gen.seal();
        self.status.send_modify(|s| s.state = LeaseState::Released);
        let high_water = issued.unwrap_or(0).max(self.claim.high_water.unwrap_or(0));
        match self
            .cluster
            .write_high_water(&self.layout, &self.claim, high_water)
            .await
        {
            Ok(true) => {}
            Ok(false) => tracing::debug!("worker key already gone at release"),
            Err(e) => {
                tracing::warn!(error = %e, "could not store the high-water at release; the next holder waits for the last renewal's")
            }
        }
        if let Err(e) = self.cluster.revoke(self.claim.lease).await {
            tracing::warn!(error = %e, "could not revoke the lease at release; it expires after its TTL");
        }
        tracing::info!(worker = self.claim.worker, "worker-id lease released");
    }
}

/// The lease keep-alive stream, and the send times of the requests not yet answered.
pub(crate) struct KeepAlive {
    tx: mpsc::Sender<pb::LeaseKeepAliveRequest>,
    rx: tonic::Streaming<pb::LeaseKeepAliveResponse>,
    pending: VecDeque<Instant>,
}

impl KeepAlive {
    pub(crate) async fn open(cluster: &Cluster, lease: i64) -> Result<KeepAlive, Error> {
        let (tx, rx) = mpsc::channel(4);
        let mut pending = VecDeque::new();
        pending.push_back(Instant::now());
        let _ = tx.try_send(pb::LeaseKeepAliveRequest { id: lease });
        let mut client = cluster.client().lease;
        let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
        let rx = etcd(
            "lease keep-alive (open)",
            cluster.timeout(),
            client.lease_keep_alive(stream),
        )
        .await?;
        Ok(KeepAlive { tx, rx, pending })
    }

    /// The next answer's TTL (`None`: the stream ended).
    pub(crate) async fn ttl(&mut self) -> Option<i64> {
        self.rx.message().await.ok().flatten().map(|r| r.ttl)
    }

    /// Send one keep-alive, recording when; `false` when the stream is closed.
    fn send(&mut self, lease: i64) -> bool {
        let sent = Instant::now();
        match self.tx.try_send(pb::LeaseKeepAliveRequest { id: lease }) {
            Ok(()) => {
                self.pending.push_back(sent);
                true
            }
            // Full: etcd is not reading (frozen); the pending ones will answer or not.
            Err(mpsc::error::TrySendError::Full(_)) => true,
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }
}

/// The next keep-alive answer: when its request was sent and the TTL; `None` when the
/// stream ended (pending forever without a stream).
async fn recv_keepalive(stream: &mut Option<KeepAlive>) -> Option<(Instant, i64)> {
    let Some(s) = stream else {
        return std::future::pending().await;
    };
    match s.rx.message().await {
        Ok(Some(resp)) => {
            let sent = s.pending.pop_front()?;
            Some((sent, resp.ttl))
        }
        Ok(None) | Err(_) => None,
    }
}

/// A watch on the own worker key from just after the claim.
struct OwnKeyWatch {
    _tx: mpsc::Sender<pb::WatchRequest>,
    rx: tonic::Streaming<pb::WatchResponse>,
    lease: i64,
}

impl OwnKeyWatch {
    async fn start(
        cluster: &Cluster,
        layout: &Layout,
        claim: &Claim,
    ) -> Result<OwnKeyWatch, Error> {
        let key = cluster.keys().worker(layout, claim.worker);
        let (tx, rx) = mpsc::channel(1);
        let create = pb::WatchRequest {
            request_union: Some(pb::watch_request::RequestUnion::CreateRequest(
                pb::WatchCreateRequest {
                    key: key.into_bytes(),
                    start_revision: claim.created + 1,
                    ..Default::default()
                },
            )),
        };
        let _ = tx.try_send(create);
        let mut client = cluster.client().watch;
        let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
        let rx = etcd(
            "watch (worker key)",
            cluster.timeout(),
            client.watch(stream),
        )
        .await?;
        Ok(OwnKeyWatch {
            _tx: tx,
            rx,
            lease: claim.lease,
        })
    }
}

/// The next watch message on the own key: `Ok` when nothing is wrong, `Err(why)` when the
/// key was deleted or put under another lease, `None` when the watch ended (restart it).
async fn recv_own_key(watch: &mut Option<OwnKeyWatch>) -> Option<Result<(), &'static str>> {
    let Some(w) = watch else {
        return std::future::pending().await;
    };
    let resp = match w.rx.message().await {
        Ok(Some(resp)) => resp,
        Ok(None) | Err(_) => return None,
    };
    if resp.canceled || resp.compact_revision != 0 {
        return None;
    }
    for event in &resp.events {
        if event.r#type == pb::event::EventType::Delete as i32 {
            return Some(Err("the worker key was deleted"));
        }
        if event.kv.as_ref().is_some_and(|kv| kv.lease != w.lease) {
            return Some(Err("the worker key was put under another lease"));
        }
    }
    Some(Ok(()))
}
