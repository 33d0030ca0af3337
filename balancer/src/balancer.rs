//! The [`Balancer`]: an `ArcSwap` snapshot of backends + strategy, the [`Pick`] guard and failover [`Candidates`].
use crate::config::validate_specs;
use crate::strategy::{self, Acct, Built, Filter};
use crate::table::{LoadTable, MIN_SLOTS};
use crate::{Backend, BackendSpec, BalancerConfig, Clock, Error, StrategyKind, SystemClock};
use arc_swap::ArcSwap;
use parking_lot::Mutex;
use smallvec::SmallVec;
use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::{debug, info};

/// What a strategy may know about a request: for now, the consistent-hash key.
///
/// ```
/// use ringleader_balancer::RequestCtx;
/// assert_eq!(RequestCtx::new().key(), None);
/// assert_eq!(RequestCtx::with_key(b"user-42").key(), Some(&b"user-42"[..]));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestCtx<'a> {
    key: Option<&'a [u8]>,
}

impl<'a> RequestCtx<'a> {
    /// A request without a hash key.
    pub const fn new() -> Self {
        Self { key: None }
    }

    /// A request hashed by `key` (used by [`StrategyKind::ConsistentHash`]).
    pub const fn with_key(key: &'a [u8]) -> Self {
        Self { key: Some(key) }
    }

    /// The hash key, if any.
    pub const fn key(&self) -> Option<&'a [u8]> {
        self.key
    }
}

/// Source of balancer ids for the per-thread snapshot cache (never reused).
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Balancers whose current snapshot one thread keeps cached.
const CACHED: usize = 8;

/// A cached snapshot: the balancer's id, the generation it was loaded at, the snapshot.
type CacheEntry = (u64, u64, Arc<Snapshot>);

thread_local! {
    /// Per-thread snapshot cache (like `arc_swap::Cache`, shared by the balancers used
    /// on this thread): a hit costs one `Arc` increment instead of `load_full`'s
    /// debt-slot write, refcount increment and debt pay-back.
    static SNAPSHOTS: RefCell<Vec<CacheEntry>> = const { RefCell::new(Vec::new()) };
}

/// State that outlives snapshots.
struct Shared {
    clock: Arc<dyn Clock>,
    epoch: Instant,
    /// Serializes ejection decisions so concurrent failures cannot exceed `max_percent`.
    eject_lock: Mutex<()>,
    /// Serializes `update` calls (readers never take it).
    update_lock: Mutex<()>,
    /// Slots of the least-* strategies' load words (`table.rs`).
    table: Arc<LoadTable>,
    /// Picks made in panic mode (nothing was available).
    panic_picks: AtomicU64,
}

/// One immutable view: backends in config order, the strategy built for them, the config.
struct Snapshot {
    backends: Vec<Arc<Backend>>,
    by_id: HashMap<String, usize>,
    strategy: Built,
    config: BalancerConfig,
    shared: Arc<Shared>,
}

/// Why a backend is being ejected: statistics are held to `max_percent`, proof is not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cause {
    /// Consecutive failures: an outlier by statistics, within the group allowance.
    Outlier,
    /// The connection was refused: nothing listens there, whatever the others do.
    Refused,
}

impl Snapshot {
    /// Eject `backends[index]`: an outlier only if the group allowance permits, a
    /// refused connection regardless of it (unless ejection is off, `max_percent = 0`).
    ///
    /// The allowance exists so that statistics cannot empty a group (Envoy: "if the
    /// number of ejected hosts is above the threshold, the host is not ejected").
    /// A refused connection is not a statistic: the backend cannot serve, and sending
    /// it a share of the traffic only spends retries. Ejections of both kinds count
    /// toward the allowance of later outliers.
    fn try_eject(&self, index: usize, cause: Cause) {
        let policy = &self.config.ejection;
        let allowed = policy.max_ejected(self.backends.len());
        if allowed == 0 {
            return;
        }
        let _guard = self.shared.eject_lock.lock();
        let b = &self.backends[index];
        if b.is_ejected_now() {
            return;
        }
        let reason = match cause {
            Cause::Refused => "connection refused",
            Cause::Outlier => {
                let ejected = self.backends.iter().filter(|b| b.is_ejected_now()).count();
                if ejected >= allowed {
                    debug!(backend = %b.id(), ejected, allowed, "not ejecting: max_percent reached");
                    return;
                }
                "consecutive failures"
            }
        };
        b.eject(policy, reason);
    }

    #[inline]
    fn pick_index(&self, ctx: &RequestCtx<'_>) -> Option<(usize, Filter)> {
        match self.strategy.pick(&self.backends, ctx, Filter::Available) {
            Some(i) => Some((i, Filter::Available)),
            None => self.pick_any(ctx),
        }
    }

    /// Pick from `snap` and count the request in flight.
    #[inline]
    fn start(snap: &Arc<Snapshot>, ctx: &RequestCtx<'_>) -> Option<Pick> {
        let snap = Arc::clone(snap);
        let (index, filter) = snap.pick_index(ctx)?;
        Some(Pick::counted(snap, index, filter))
    }

    /// Nothing is available: every backend in panic mode (counted), else none.
    ///
    /// Panic mode is what nginx and Envoy do. nginx, when every server of an upstream
    /// has failed, resets their failure counts ("all peers failed, mark them as live
    /// for quick recovery", `ngx_http_upstream_round_robin.c`); Envoy, when fewer
    /// than its panic threshold (50 % by default) of the hosts are healthy,
    /// "disregards health status and balances amongst all hosts" (Envoy docs, "Panic
    /// threshold"). Here the threshold is zero: only when nothing is available.
    #[cold]
    fn pick_any(&self, ctx: &RequestCtx<'_>) -> Option<(usize, Filter)> {
        if !self.config.panic_mode {
            return None;
        }
        let i = self.strategy.pick(&self.backends, ctx, Filter::Any)?;
        self.shared.panic_picks.fetch_add(1, Relaxed);
        debug!(backend = %self.backends[i].id(), "panic mode: no backend available, trying all");
        Some((i, Filter::Any))
    }
}

/// A load balancer over a set of backends, safe to share between threads.
///
/// Reads (`pick`, `candidates`, `backends`) load the current snapshot without locks;
/// [`update`](Self::update) builds a new one off the hot path and swaps it whole.
///
/// ```
/// use ringleader_balancer::{Balancer, BalancerConfig, BackendSpec, RequestCtx, StrategyKind};
/// use std::time::Duration;
/// let specs = vec![BackendSpec::new("10.0.0.1:80", 1), BackendSpec::new("10.0.0.2:80", 1)];
/// let config = BalancerConfig { strategy: StrategyKind::RoundRobin, ..Default::default() };
/// let lb = Balancer::new(specs, config)?;
/// let first = lb.pick(&RequestCtx::new()).unwrap();
/// assert_eq!(first.backend().addr(), "10.0.0.1:80");
/// first.success(Duration::from_millis(2));
/// assert_eq!(lb.pick(&RequestCtx::new()).unwrap().backend().addr(), "10.0.0.2:80");
/// assert!(lb.backends().iter().all(|b| b.in_flight() == 0));
/// # Ok::<(), ringleader_balancer::Error>(())
/// ```
///
/// Each thread that picks caches the current snapshot of up to eight balancers it
/// used last (an `Arc` clone, refreshed when [`update`](Self::update) bumps the
/// generation), so a snapshot replaced by an update, or of a dropped balancer, may
/// stay alive in such a cache until that thread picks from this balancer again or
/// evicts the entry: memory only, statistics and in-flight counts are unaffected.
pub struct Balancer {
    shared: Arc<Shared>,
    snapshot: ArcSwap<Snapshot>,
    /// Unique id (the key of the per-thread snapshot cache).
    id: u64,
    /// Bumped after every snapshot swap.
    generation: AtomicU64,
}

impl fmt::Debug for Balancer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let snap = self.snapshot.load();
        f.debug_struct("Balancer")
            .field("strategy", &snap.config.strategy)
            .field("backends", &snap.backends)
            .finish()
    }
}

impl Balancer {
    /// A balancer on the system clock.
    pub fn new(specs: Vec<BackendSpec>, config: BalancerConfig) -> Result<Self, Error> {
        Self::with_clock(specs, config, Arc::new(SystemClock))
    }

    /// A balancer reading time from `clock` (a [`ManualClock`](crate::ManualClock) in tests).
    pub fn with_clock(
        specs: Vec<BackendSpec>,
        config: BalancerConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, Error> {
        validate_specs(&specs)?;
        config.validate()?;
        let epoch = clock.now();
        let shared = Arc::new(Shared {
            clock,
            epoch,
            eject_lock: Mutex::new(()),
            update_lock: Mutex::new(()),
            table: LoadTable::new(MIN_SLOTS.max(2 * specs.len())),
            panic_picks: AtomicU64::new(0),
        });
        let snap = build_snapshot(&shared, &specs, config, &HashMap::new(), None)?;
        Ok(Self {
            shared,
            snapshot: ArcSwap::from_pointee(snap),
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            generation: AtomicU64::new(0),
        })
    }

    /// The current snapshot, from this thread's cache when it is up to date
    /// (refreshes the cache on a miss).
    #[inline(never)]
    fn current(&self) -> Arc<Snapshot> {
        // Acquire pairs with the Release bump in `update`: a thread that sees generation
        // g also sees the snapshot stored before g was published.
        let generation = self.generation.load(Ordering::Acquire);
        SNAPSHOTS
            .try_with(|cache| {
                let mut cache = cache.try_borrow_mut().ok()?;
                if let Some(snap) = self.cached(&cache, generation) {
                    return Some(Arc::clone(snap));
                }
                Some(self.refresh(&mut cache, generation))
            })
            .ok()
            .flatten()
            .unwrap_or_else(|| self.snapshot.load_full())
    }

    /// This balancer's snapshot in `cache` if it is of `generation`.
    #[inline]
    fn cached<'c>(&self, cache: &'c [CacheEntry], generation: u64) -> Option<&'c Arc<Snapshot>> {
        cache
            .iter()
            .find(|e| e.0 == self.id && e.1 == generation)
            .map(|e| &e.2)
    }

    /// Load the snapshot into this thread's cache (replacing this balancer's entry, or
    /// evicting the oldest one).
    #[cold]
    fn refresh(&self, cache: &mut Vec<CacheEntry>, generation: u64) -> Arc<Snapshot> {
        let snap = self.snapshot.load_full();
        let entry = (self.id, generation, Arc::clone(&snap));
        match cache.iter_mut().find(|e| e.0 == self.id) {
            Some(e) => *e = entry,
            None => {
                if cache.len() >= CACHED {
                    cache.remove(0);
                }
                cache.push(entry);
            }
        }
        snap
    }

    /// Choose a backend for a request and count it in flight; `None` if no backend is
    /// available (and `panic_mode` is off).
    #[inline]
    pub fn pick(&self, ctx: &RequestCtx<'_>) -> Option<Pick> {
        // Acquire pairs with the Release bump in `update` (see `current`).
        let generation = self.generation.load(Ordering::Acquire);
        // Hit: pick on the cached snapshot by reference and clone it only for the guard.
        let hit = SNAPSHOTS.try_with(|cache| {
            let cache = cache.try_borrow().ok()?;
            Some(Snapshot::start(self.cached(&cache, generation)?, ctx))
        });
        match hit {
            Ok(Some(pick)) => pick,
            _ => Snapshot::start(&self.current(), ctx),
        }
    }

    /// Failover order: the first item is what [`pick`](Self::pick) would choose, then
    /// distinct available backends in the strategy's preference order. Each [`Pick`] is
    /// counted in flight when yielded. In panic mode (nothing available) every backend
    /// is a candidate.
    pub fn candidates(&self, ctx: &RequestCtx<'_>) -> Candidates {
        Candidates {
            // The per-thread cache: one `Arc` increment on a hit (the proxy calls this
            // once per request).
            snap: self.current(),
            key: ctx.key().map(Box::from),
            tried: SmallVec::new(),
            filter: Filter::Available,
        }
    }

    /// Apply an active health-check result for backend `id`; `false` if no such backend.
    pub fn report_check(&self, id: &str, ok: bool) -> bool {
        let snap = self.snapshot.load();
        match snap.by_id.get(id) {
            Some(&i) => {
                snap.backends[i].report_check(ok, &snap.config.health);
                true
            }
            None => false,
        }
    }

    /// Replace the backend set and config atomically. Backends whose id and address
    /// stay keep their statistics (in-flight, EWMA, counters, health, ejection); on
    /// error nothing changes.
    pub fn update(&self, specs: Vec<BackendSpec>, config: BalancerConfig) -> Result<(), Error> {
        validate_specs(&specs)?;
        config.validate()?;
        let _guard = self.shared.update_lock.lock();
        let old = self.snapshot.load_full();
        let keep: HashMap<&str, &Arc<Backend>> = old.backends.iter().map(|b| (b.id(), b)).collect();
        let snap = build_snapshot(&self.shared, &specs, config, &keep, Some(&old.config))?;
        let kept = snap
            .backends
            .iter()
            .filter(|b| keep.get(b.id()).is_some_and(|o| Arc::ptr_eq(o, b)))
            .count();
        info!(
            backends = snap.backends.len(),
            kept,
            strategy = %snap.config.strategy,
            "balancer updated"
        );
        self.snapshot.store(Arc::new(snap));
        // Release: publishes the store above to threads that see the new generation.
        self.generation.fetch_add(1, Ordering::Release);
        Ok(())
    }

    /// The current backends, in config order.
    pub fn backends(&self) -> Vec<Arc<Backend>> {
        self.snapshot.load().backends.clone()
    }

    /// The backend with this id in the current snapshot.
    pub fn backend(&self, id: &str) -> Option<Arc<Backend>> {
        let snap = self.snapshot.load();
        snap.by_id.get(id).map(|&i| snap.backends[i].clone())
    }

    /// The current configuration.
    pub fn config(&self) -> BalancerConfig {
        self.snapshot.load().config.clone()
    }

    /// The current strategy.
    pub fn strategy(&self) -> StrategyKind {
        self.snapshot.load().config.strategy
    }

    /// Number of backends.
    pub fn len(&self) -> usize {
        self.snapshot.load().backends.len()
    }

    /// Never true: a balancer has at least one backend. Here for API symmetry.
    pub fn is_empty(&self) -> bool {
        self.snapshot.load().backends.is_empty()
    }

    /// Number of backends available now.
    pub fn available(&self) -> usize {
        self.snapshot
            .load()
            .backends
            .iter()
            .filter(|b| b.is_available())
            .count()
    }

    /// Picks made in panic mode since the balancer was created: no backend was
    /// available (all down or ejected), so every backend was a candidate.
    ///
    /// ```
    /// use ringleader_balancer::{Balancer, BalancerConfig, BackendSpec, RequestCtx};
    /// let lb = Balancer::new(vec![BackendSpec::new("a:1", 1)], BalancerConfig::default())?;
    /// lb.pick(&RequestCtx::new()).unwrap().connect_refused(); // ejected
    /// assert_eq!(lb.available(), 0);
    /// assert!(lb.pick(&RequestCtx::new()).is_some()); // panic mode (the default)
    /// assert_eq!(lb.panic_picks(), 1);
    /// # Ok::<(), ringleader_balancer::Error>(())
    /// ```
    pub fn panic_picks(&self) -> u64 {
        self.shared.panic_picks.load(Relaxed)
    }

    /// Would a pick now be a panic pick (panic mode on and no backend available)?
    pub fn in_panic(&self) -> bool {
        let snap = self.snapshot.load();
        snap.config.panic_mode && !snap.backends.iter().any(|b| b.is_available())
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        // Free this thread's cached snapshot now (other threads evict theirs over time).
        let _ = SNAPSHOTS.try_with(|cache| {
            if let Ok(mut cache) = cache.try_borrow_mut() {
                cache.retain(|e| e.0 != self.id);
            }
        });
    }
}

fn build_snapshot(
    shared: &Arc<Shared>,
    specs: &[BackendSpec],
    config: BalancerConfig,
    keep: &HashMap<&str, &Arc<Backend>>,
    old_config: Option<&BalancerConfig>,
) -> Result<Snapshot, Error> {
    let now_ns = u64::try_from(
        shared
            .clock
            .now()
            .saturating_duration_since(shared.epoch)
            .as_nanos(),
    )
    .unwrap_or(u64::MAX);
    let backends: Vec<Arc<Backend>> = specs
        .iter()
        .map(|spec| match keep.get(spec.id.as_str()) {
            Some(old) if old.addr() == spec.addr => Arc::clone(old),
            _ => Arc::new(Backend::new(
                spec,
                &config,
                shared.clock.clone(),
                shared.epoch,
                now_ns,
                shared.table.alloc(),
            )),
        })
        .collect();
    // Kept backends take the new weight and EWMA settings before the strategy reads
    // them; if the strategy cannot be built they get their old settings back, so a
    // failed update leaves everything as it was.
    let previous: Vec<u32> = backends.iter().map(|b| b.weight()).collect();
    for (b, spec) in backends.iter().zip(specs) {
        b.reconfigure(spec.weight, &config, now_ns);
    }
    let strategy = match strategy::build(&backends, &config) {
        Ok(s) => s,
        Err(e) => {
            if let Some(old_config) = old_config {
                for (b, w) in backends.iter().zip(previous) {
                    if keep.get(b.id()).is_some_and(|o| Arc::ptr_eq(o, b)) {
                        b.reconfigure(w, old_config, now_ns);
                    }
                }
            }
            return Err(e);
        }
    };
    let by_id = specs
        .iter()
        .enumerate()
        .map(|(i, s)| (s.id.clone(), i))
        .collect();
    Ok(Snapshot {
        backends,
        by_id,
        strategy,
        config,
        shared: Arc::clone(shared),
    })
}

/// A chosen backend, counted in flight until this guard is consumed or dropped.
///
/// Finish it with [`success`](Self::success), [`failure`](Self::failure) or
/// [`connect_refused`](Self::connect_refused); dropping it (a cancelled request, or a
/// panic unwinding through the caller) only ends the in-flight count.
///
/// ```
/// use ringleader_balancer::{Balancer, BalancerConfig, BackendSpec, RequestCtx};
/// let lb = Balancer::new(vec![BackendSpec::new("a:1", 1)], BalancerConfig::default())?;
/// let pick = lb.pick(&RequestCtx::new()).unwrap();
/// let backend = pick.backend().clone();
/// pick.failure();
/// assert_eq!((backend.in_flight(), backend.failures()), (0, 1));
/// # Ok::<(), ringleader_balancer::Error>(())
/// ```
#[must_use = "a Pick counts a request in flight until it is finished or dropped"]
pub struct Pick {
    snap: Arc<Snapshot>,
    /// The index (low 32 bits) and the [`Acct`] (high 32 bits) in one word: a guard of
    /// two words (a pointer and an integer) is returned in registers; as a pointer and
    /// two `u32`s it went through memory, and a pick + drop measured much slower.
    packed: u64,
}

impl fmt::Debug for Pick {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pick")
            .field("backend", &self.backend().id())
            .field("index", &self.index())
            .finish()
    }
}

impl Pick {
    /// Count a request to `snap.backends[index]` in flight (and in the load table) and
    /// guard it. `index` fits in 32 bits: a snapshot holds at most `u32::MAX` backends
    /// (validated). `filter` is [`Filter::Any`] for a panic pick.
    #[inline]
    fn counted(snap: Arc<Snapshot>, index: usize, filter: Filter) -> Pick {
        let backend = &snap.backends[index];
        backend.start();
        let mut acct = snap.strategy.account(index, backend);
        if filter == Filter::Any {
            acct = acct.panic();
        }
        Pick {
            packed: index as u64 | u64::from(acct.bits()) << 32,
            snap,
        }
    }

    /// The chosen backend.
    #[inline]
    pub fn backend(&self) -> &Arc<Backend> {
        &self.snap.backends[self.index()]
    }

    /// Position of the backend in the snapshot it was picked from (config order).
    #[inline]
    pub fn index(&self) -> usize {
        self.packed as u32 as usize
    }

    /// Was this pick made in panic mode (no backend was available)?
    #[inline]
    pub fn is_panic(&self) -> bool {
        Acct::from_bits((self.packed >> 32) as u32).is_panic()
    }

    /// The request succeeded after `latency`: feeds the EWMA, resets the failure streak.
    /// A panic pick that succeeds was a probe the backend passed: its ejection ends.
    #[inline]
    pub fn success(self, latency: Duration) {
        self.backend().record_success(latency);
        if self.is_panic() {
            self.backend().uneject("served a request in panic mode");
        }
    }

    /// The request failed (e.g. 5xx or timeout), its duration unknown: counts toward
    /// passive ejection, and against the backend's latency estimate (doubled, up to
    /// 10 s), so the latency-aware strategies move traffic away from it.
    pub fn failure(self) {
        self.failed(None);
    }

    /// The request failed after `latency` (e.g. a timeout after `request_timeout`):
    /// as [`failure`](Self::failure), and the latency estimate counts at least the
    /// time the failure cost (as Finagle's and tower's peak EWMA record the round
    /// trip of every request, failed or not).
    ///
    /// ```
    /// use ringleader_balancer::{Balancer, BalancerConfig, BackendSpec, RequestCtx};
    /// use std::time::Duration;
    /// let lb = Balancer::new(vec![BackendSpec::new("a:1", 1)], BalancerConfig::default())?;
    /// lb.pick(&RequestCtx::new()).unwrap().failure_after(Duration::from_secs(2));
    /// assert!(lb.backends()[0].ewma() >= Duration::from_millis(1999));
    /// # Ok::<(), ringleader_balancer::Error>(())
    /// ```
    pub fn failure_after(self, latency: Duration) {
        self.failed(Some(latency));
    }

    /// The backend did not answer within `latency`: the connection failed or timed out, or no
    /// response came within the request timeout. As [`failure_after`](Self::failure_after),
    /// and it counts in [`Backend::liveness_failures`](crate::Backend::liveness_failures)
    /// (a 5xx answer does not: the backend is alive).
    pub fn unreachable_after(self, latency: Duration) {
        self.backend().record_unreachable();
        self.failed(Some(latency));
    }

    fn failed(self, latency: Option<Duration>) {
        let streak = self.backend().record_failure(latency);
        self.snap.strategy.as_dyn().on_failure(self.index());
        let need = self.snap.config.ejection.consecutive_failures;
        if need > 0 && streak >= need {
            self.snap.try_eject(self.index(), Cause::Outlier);
        }
    }

    /// The connection was refused: ejects at once, whatever `max_percent` allows
    /// (only `max_percent = 0` turns it off). A refused connection is proof that
    /// nothing serves there, not an outlier statistic.
    pub fn connect_refused(self) {
        self.backend().record_unreachable();
        self.backend().record_failure(None);
        self.snap.strategy.as_dyn().on_failure(self.index());
        self.snap.try_eject(self.index(), Cause::Refused);
    }
}

impl Drop for Pick {
    #[inline]
    fn drop(&mut self) {
        let backend = &self.snap.backends[self.index()];
        backend.finish();
        Acct::from_bits((self.packed >> 32) as u32).settle(backend);
    }
}

/// Failover iterator from [`Balancer::candidates`]: distinct backends in preference order.
pub struct Candidates {
    snap: Arc<Snapshot>,
    key: Option<Box<[u8]>>,
    /// Inline up to four (attempts are few): no allocation per request.
    tried: SmallVec<[usize; 4]>,
    filter: Filter,
}

impl fmt::Debug for Candidates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Candidates")
            .field("tried", &self.tried)
            .finish()
    }
}

impl Iterator for Candidates {
    type Item = Pick;

    fn next(&mut self) -> Option<Pick> {
        let snap = &self.snap;
        if self.tried.len() >= snap.backends.len() {
            return None;
        }
        let ctx = match &self.key {
            Some(k) => RequestCtx::with_key(k),
            None => RequestCtx::new(),
        };
        let index = if self.tried.is_empty() {
            let (i, filter) = snap.pick_index(&ctx)?;
            self.filter = filter;
            i
        } else {
            snap.strategy
                .as_dyn()
                .next_candidate(&snap.backends, &ctx, self.filter, &self.tried)?
        };
        self.tried.push(index);
        Some(Pick::counted(Arc::clone(snap), index, self.filter))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{HealthPolicy, ManualClock};

    /// Is `b`'s load-table slot flagged "may be unavailable"?
    fn flagged(b: &Backend) -> bool {
        let (table, slot) = b.slot().expect("a slot");
        table.any_flagged(slot, 1)
    }

    /// The table flag follows every way a backend leaves and rejoins the rotation:
    /// set by a refused connection (beyond the ejection cap) and by failed checks,
    /// cleared by a passing check that ends an ejection, by `rise` passes, and by a
    /// panic pick that serves.
    #[test]
    fn table_flags_follow_ejections_checks_and_panic_probes() {
        let clock = Arc::new(ManualClock::new());
        let specs: Vec<_> = (0..3)
            .map(|i| BackendSpec::new(format!("b{i}"), 1))
            .collect();
        let config = BalancerConfig {
            strategy: StrategyKind::LeastResponseTime,
            health: HealthPolicy { rise: 2, fall: 2 },
            ..BalancerConfig::default()
        };
        let lb = Balancer::with_clock(specs, config, clock.clone()).unwrap();
        let bs = lb.backends();
        let pick_of = |i: usize| {
            lb.candidates(&RequestCtx::new())
                .find(|p| p.index() == i)
                .unwrap()
        };
        assert!(bs.iter().all(|b| !flagged(b)));
        // Refused twice: both flagged, the cap (one of three) notwithstanding.
        pick_of(0).connect_refused();
        pick_of(1).connect_refused();
        assert!(flagged(&bs[0]) && flagged(&bs[1]) && !flagged(&bs[2]));
        // A passing check ends b0's ejection and clears its flag at once.
        lb.report_check("b0", true);
        assert!(bs[0].is_available() && !flagged(&bs[0]));
        assert!(flagged(&bs[1]));
        // b1's ejection runs out: the next flagged scan clears the flag.
        clock.advance(Duration::from_secs(31));
        let _ = lb.pick(&RequestCtx::new());
        assert!(!flagged(&bs[1]));
        // Down by checks: flagged; up after `rise` passes: cleared.
        lb.report_check("b2", false);
        lb.report_check("b2", false);
        assert!(flagged(&bs[2]) && !bs[2].is_available());
        lb.report_check("b2", true);
        assert!(flagged(&bs[2]));
        lb.report_check("b2", true);
        assert!(!flagged(&bs[2]) && bs[2].is_available());
        // Everything ejected: a panic pick that serves ends its backend's ejection
        // and clears its flag.
        for i in 0..3 {
            pick_of(i).connect_refused();
        }
        assert!(bs.iter().all(|b| flagged(b)));
        let p = lb.pick(&RequestCtx::new()).unwrap();
        assert!(p.is_panic());
        let i = p.index();
        p.success(Duration::from_millis(1));
        assert!(bs[i].is_available() && !flagged(&bs[i]));
        assert_eq!(lb.panic_picks(), 1);
        // Scans agree with the flags: the only available backend takes every pick.
        for _ in 0..5 {
            assert_eq!(lb.pick(&RequestCtx::new()).unwrap().index(), i);
        }
    }
}
