//! One backend and its live statistics, all in atomics: in-flight, peak EWMA, counters, health.
use crate::clock::saturating_ns;
use crate::ewma::PeakEwma;
use crate::health::{Ejected, HealthCell};
use crate::table::{LoadTable, Slot};
use crate::{BackendSpec, BalancerConfig, Clock, EjectionPolicy, Health, HealthPolicy};
use parking_lot::Mutex;
use std::fmt;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use tracing::{debug, info};

/// A backend with its live statistics, shared by every snapshot that contains it.
///
/// All accessors are cheap lock-free reads. Backends are created by a
/// [`Balancer`](crate::Balancer) and keep their statistics across updates that keep their id.
///
/// ```
/// use ringleader_balancer::{Balancer, BalancerConfig, BackendSpec, Health, ManualClock, RequestCtx};
/// use std::{sync::Arc, time::Duration};
/// let clock = Arc::new(ManualClock::new());
/// let specs = vec![BackendSpec::new("10.0.0.1:80", 2)];
/// let lb = Balancer::with_clock(specs, BalancerConfig::default(), clock.clone())?;
/// let pick = lb.pick(&RequestCtx::new()).unwrap();
/// let b = pick.backend().clone();
/// assert_eq!((b.id(), b.weight(), b.in_flight()), ("10.0.0.1:80", 2, 1));
/// pick.success(Duration::from_millis(4));
/// assert_eq!((b.in_flight(), b.requests(), b.ewma()), (0, 1, Duration::from_millis(4)));
/// assert_eq!(b.health(), Health::Up);
/// clock.advance(Duration::from_secs(10)); // idle: the estimate decays by e^-1
/// assert!(b.ewma() < Duration::from_millis(2));
/// # Ok::<(), ringleader_balancer::Error>(())
/// ```
// `repr(C, align(64))`: the fields every least-* scan reads (in-flight, EWMA key,
// weight, availability) come first and share one cache line; the rest follows.
#[repr(C, align(64))]
pub struct Backend {
    // ---- hot line: 8 + 8 + 24 + 8 + 16 (health's atomic head) = 64 bytes ----
    /// Requests picked (started); in-flight is `requests - finished`, so a pick and its
    /// end cost one atomic add each.
    requests: AtomicU64,
    finished: AtomicU64,
    ewma: PeakEwma,
    weight: AtomicU32,
    health: HealthCell,
    // ---- cold ----
    id: String,
    addr: String,
    failures: AtomicU64,
    /// Failures that say nothing answers there: refused, failed or timed-out
    /// connections, and requests with no answer in time (see [`Self::liveness_failures`]).
    liveness_failures: AtomicU64,
    decay_bits: AtomicU64,
    clock: Arc<dyn Clock>,
    epoch: Instant,
    /// Place in the balancer's load table (`None` when the table was full).
    slot: Option<Slot>,
    /// `LRT_BIAS + EWMA key - ln(weight)` as `f64` bits: the part of the table cost
    /// that does not change with in-flight (see [`Self::refresh_lrt`]).
    lrt_base: AtomicU64,
    /// The last active check, as the caller described it (see [`Self::record_last_check`]).
    last_check: Mutex<Option<LastCheck>>,
}

/// One recorded active check.
#[derive(Debug)]
struct LastCheck {
    ok: bool,
    result: Box<str>,
    /// When it completed, in ns since the balancer's epoch.
    at_ns: u64,
    took: Duration,
}

impl fmt::Debug for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Backend")
            .field("id", &self.id)
            .field("addr", &self.addr)
            .field("weight", &self.weight())
            .field("in_flight", &self.in_flight())
            .field("ewma", &self.ewma())
            .field("health", &self.health())
            .finish()
    }
}

impl Backend {
    /// A fresh backend (no samples, `Up`) created at `created_ns` after `epoch`, the
    /// balancer's time origin.
    pub(crate) fn new(
        spec: &BackendSpec,
        config: &BalancerConfig,
        clock: Arc<dyn Clock>,
        epoch: Instant,
        created_ns: u64,
        slot: Option<Slot>,
    ) -> Self {
        let decay = decay_ns(config);
        let b = Self {
            requests: AtomicU64::new(0),
            finished: AtomicU64::new(0),
            ewma: PeakEwma::new(config.default_rtt.as_nanos() as f64, created_ns, decay),
            weight: AtomicU32::new(spec.weight),
            health: HealthCell::new(),
            id: spec.id.clone(),
            addr: spec.addr.clone(),
            failures: AtomicU64::new(0),
            liveness_failures: AtomicU64::new(0),
            decay_bits: AtomicU64::new(decay.to_bits()),
            clock,
            epoch,
            slot,
            lrt_base: AtomicU64::new(0),
            last_check: Mutex::new(None),
        };
        b.refresh_lrt_base();
        b
    }

    /// Apply a new weight and EWMA settings at `now_ns` (statistics are kept).
    pub(crate) fn reconfigure(&self, weight: u32, config: &BalancerConfig, now_ns: u64) {
        self.weight.store(weight, Relaxed);
        let (old, new) = (self.decay_ns(), decay_ns(config));
        let default = config.default_rtt.as_nanos() as f64;
        if old != new || !self.ewma.sampled() {
            self.ewma.reconfigure(now_ns, old, new, default);
            self.decay_bits.store(new.to_bits(), Relaxed);
        }
        self.refresh_lrt_base();
    }

    /// The stable id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The address to connect to.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The configured weight (at least 1).
    #[inline]
    pub fn weight(&self) -> u32 {
        self.weight.load(Relaxed)
    }

    /// Requests picked for this backend and not yet finished.
    #[inline]
    pub fn in_flight(&self) -> u64 {
        // `finished` first: it never passes `requests`, so a later `requests` is at least
        // as large; saturating anyway, as relaxed loads of two words may be reordered.
        let finished = self.finished.load(Relaxed);
        self.requests.load(Relaxed).saturating_sub(finished)
    }

    /// Peak-EWMA response time now (decayed since the last sample); zero before any sample.
    pub fn ewma(&self) -> Duration {
        if !self.ewma.sampled() {
            return Duration::ZERO;
        }
        Duration::from_nanos(self.ewma.estimate(self.now_ns(), self.decay_ns()).round() as u64)
    }

    /// Requests ever picked for this backend.
    pub fn requests(&self) -> u64 {
        self.requests.load(Relaxed)
    }

    /// Requests that finished with `failure()` or `connect_refused()`.
    pub fn failures(&self) -> u64 {
        self.failures.load(Relaxed)
    }

    /// Requests that failed for want of a live backend: a connection refused
    /// ([`Pick::connect_refused`](crate::Pick::connect_refused)), not opened or not
    /// answered in time ([`Pick::unreachable_after`](crate::Pick::unreachable_after)).
    /// A subset of [`Self::failures`]: an answer, even a 5xx, is not counted here. A
    /// failure detector's passive failures come from this count.
    ///
    /// ```
    /// use ringleader_balancer::{Balancer, BalancerConfig, BackendSpec, RequestCtx};
    /// use std::time::Duration;
    /// let lb = Balancer::new(vec![BackendSpec::new("a:1", 1)], BalancerConfig::default())?;
    /// lb.pick(&RequestCtx::new()).unwrap().failure_after(Duration::from_millis(5)); // a 5xx
    /// lb.pick(&RequestCtx::new()).unwrap().unreachable_after(Duration::from_secs(1));
    /// let b = &lb.backends()[0];
    /// assert_eq!((b.failures(), b.liveness_failures()), (2, 1));
    /// # Ok::<(), ringleader_balancer::Error>(())
    /// ```
    pub fn liveness_failures(&self) -> u64 {
        self.liveness_failures.load(Relaxed)
    }

    /// Times this backend was ejected by passive outlier detection.
    pub fn ejections(&self) -> u64 {
        self.health.ejections()
    }

    /// Current health. An active `Down` wins over an ejection.
    pub fn health(&self) -> Health {
        if !self.health.active_up() {
            return Health::Down;
        }
        let until = self.health.ejected_until_ns();
        if until != 0 && self.now_ns() < until {
            Health::Ejected {
                until: self.epoch + Duration::from_nanos(until),
            }
        } else {
            Health::Up
        }
    }

    /// Up and not ejected: may take traffic. Reads the clock only while an ejection is recorded.
    #[inline]
    pub fn is_available(&self) -> bool {
        if !self.health.active_up() {
            return false;
        }
        let until = self.health.ejected_until_ns();
        until == 0 || self.ejection_over(until)
    }

    #[cold]
    fn ejection_over(&self, until: u64) -> bool {
        let now = self.now_ns();
        if now < until {
            return false;
        }
        if self.health.expire(until, now) {
            info!(backend = %self.id, "backend returned from ejection");
        }
        true
    }

    /// Record the last active check of this backend for display: whether it passed,
    /// what it got (`"200 OK"`, `"connection refused"`, ...) and how long it took.
    /// It completed now (by the balancer's clock). Does not change the health: that
    /// is [`Balancer::report_check`](crate::Balancer::report_check)'s job.
    pub fn record_last_check(&self, ok: bool, result: &str, took: Duration) {
        let at_ns = self.now_ns();
        *self.last_check.lock() = Some(LastCheck {
            ok,
            result: result.into(),
            at_ns,
            took,
        });
    }

    /// The last active check recorded with [`Self::record_last_check`]: `(passed,
    /// result, how long ago it completed, how long it took)`; `None` before the first.
    ///
    /// ```
    /// use ringleader_balancer::{Balancer, BalancerConfig, BackendSpec, ManualClock};
    /// use std::{sync::Arc, time::Duration};
    /// let clock = Arc::new(ManualClock::new());
    /// let specs = vec![BackendSpec::new("10.0.0.1:80", 1)];
    /// let lb = Balancer::with_clock(specs, BalancerConfig::default(), clock.clone())?;
    /// let b = lb.backend("10.0.0.1:80").unwrap();
    /// assert!(b.last_check().is_none());
    /// b.record_last_check(false, "connection refused", Duration::from_millis(3));
    /// clock.advance(Duration::from_secs(2));
    /// let (ok, result, ago, took) = b.last_check().unwrap();
    /// assert_eq!((ok, result.as_str()), (false, "connection refused"));
    /// assert_eq!((ago, took), (Duration::from_secs(2), Duration::from_millis(3)));
    /// # Ok::<(), ringleader_balancer::Error>(())
    /// ```
    pub fn last_check(&self) -> Option<(bool, String, Duration, Duration)> {
        let last = self.last_check.lock();
        let c = last.as_ref()?;
        let ago = Duration::from_nanos(self.now_ns().saturating_sub(c.at_ns));
        Some((c.ok, c.result.to_string(), ago, c.took))
    }

    /// Progress of the active checks towards a change of state, `(passes, fails)` in
    /// a row: while the backend is up, `fails` counts towards `fall` ("going down
    /// 2/3"); while it is down, `passes` counts towards `rise` ("going up 1/2"). The
    /// other is 0, and both are 0 right after a change.
    ///
    /// ```
    /// use ringleader_balancer::{Balancer, BalancerConfig, BackendSpec, HealthPolicy};
    /// let config = BalancerConfig { health: HealthPolicy { rise: 2, fall: 3 }, ..Default::default() };
    /// let lb = Balancer::new(vec![BackendSpec::new("10.0.0.1:80", 1)], config)?;
    /// lb.report_check("10.0.0.1:80", false);
    /// lb.report_check("10.0.0.1:80", false);
    /// assert_eq!(lb.backend("10.0.0.1:80").unwrap().check_streak(), (0, 2));
    /// # Ok::<(), ringleader_balancer::Error>(())
    /// ```
    pub fn check_streak(&self) -> (u32, u32) {
        self.health.streak()
    }

    /// Time left of the current passive ejection (`None` when not ejected), by the
    /// balancer's clock.
    pub fn ejection_left(&self) -> Option<Duration> {
        let until = self.health.ejected_until_ns();
        let now = self.now_ns();
        (until != 0 && now < until).then(|| Duration::from_nanos(until - now))
    }

    // ---- crate-internal hot path ----

    /// Nanoseconds since the balancer's epoch.
    #[inline]
    pub(crate) fn now_ns(&self) -> u64 {
        saturating_ns(self.clock.now().saturating_duration_since(self.epoch))
    }

    #[inline]
    fn decay_ns(&self) -> f64 {
        f64::from_bits(self.decay_bits.load(Relaxed))
    }

    #[inline]
    pub(crate) fn start(&self) {
        self.requests.fetch_add(1, Relaxed);
    }

    #[inline]
    pub(crate) fn finish(&self) {
        self.finished.fetch_add(1, Relaxed);
    }

    /// `ln(peak EWMA now x (in-flight + 1) / weight)` up to a term shared by every
    /// backend of the balancer: compare, never read as a time. No clock read, no `exp`.
    /// `ln` is a [`LnTable`] (fetched once per pick by the scans).
    ///
    /// A backend never measured that has a request in flight costs [`UNMEASURED_BUSY`]
    /// (more than any measured one), as in Finagle's `PeakEwma`, whose load is a
    /// `Penalty` when there is no latency history yet and a request is pending: a new
    /// or never-answering backend is probed one request at a time instead of looking
    /// like the fastest (its default RTT) while requests pile up on it.
    #[inline]
    pub(crate) fn latency_cost(&self, ln: LnTable) -> f64 {
        let f = self.in_flight();
        if f != 0 && !self.ewma.sampled() {
            return UNMEASURED_BUSY;
        }
        self.ewma.key() + ln.ln(f + 1) - ln.ln(u64::from(self.weight()))
    }

    pub(crate) fn record_success(&self, latency: Duration) {
        self.ewma
            .observe(latency.as_nanos() as f64, self.now_ns(), self.decay_ns());
        self.health.record_success();
        self.refresh_lrt_base();
    }

    /// A request failed (after `latency`, if known): count it, and count it against
    /// the backend's latency estimate (see `PeakEwma::penalize`).
    /// Returns the consecutive-failure streak.
    pub(crate) fn record_failure(&self, latency: Option<Duration>) -> u32 {
        self.failures.fetch_add(1, Relaxed);
        self.ewma.penalize(
            latency.map(|l| l.as_nanos() as f64),
            self.now_ns(),
            self.decay_ns(),
            FAILURE_PENALTY_CAP.as_nanos() as f64,
        );
        self.refresh_lrt_base();
        self.health.record_failure()
    }

    /// Count a liveness failure (besides the failure itself, see [`Self::record_failure`]).
    pub(crate) fn record_unreachable(&self) {
        self.liveness_failures.fetch_add(1, Relaxed);
    }

    // ---- the load table (see `table.rs`) ----

    /// The table and slot, if this backend has one.
    #[inline]
    pub(crate) fn slot(&self) -> Option<(&Arc<LoadTable>, usize)> {
        self.slot.as_ref().map(Slot::at)
    }

    /// Count a least-connections pick of `amount` (`lcm / weight`) in the table.
    #[inline]
    pub(crate) fn lc_add(&self, amount: u32) {
        if let Some(s) = &self.slot {
            s.lc_add(amount);
        }
    }

    /// End a least-connections pick counted with [`Self::lc_add`].
    #[inline]
    pub(crate) fn lc_sub(&self, amount: u32) {
        if let Some(s) = &self.slot {
            s.lc_sub(amount);
        }
    }

    /// Rewrite the least-response-time word: `lrt_base + ln(in_flight + 1)`. A racing
    /// change of an input makes the writer that sees it write again, so once the
    /// backend is quiet the word is exact (bounded: a busy backend's word is rewritten
    /// by its next change anyway).
    #[inline]
    pub(crate) fn refresh_lrt(&self) {
        let Some(s) = &self.slot else { return };
        let ln = LnTable::get();
        for _ in 0..4 {
            let (base, f) = (self.lrt_base.load(Relaxed), self.in_flight());
            let sampled = self.ewma.sampled();
            // Same order as `latency_cost`, unmeasured-and-busy included. `sampled`
            // is re-checked too: a writer that read the new `lrt_base` but the old
            // `sampled` would otherwise leave UNMEASURED_BUSY on a measured backend
            // (the loom model in tests/loom.rs finds that interleaving).
            let cost = if f != 0 && !sampled {
                UNMEASURED_BUSY
            } else {
                f64::from_bits(base) + ln.ln(f + 1)
            };
            s.store_lrt(cost.to_bits());
            if self.lrt_base.load(Relaxed) == base
                && self.in_flight() == f
                && self.ewma.sampled() == sampled
            {
                return;
            }
        }
    }

    /// Recompute `lrt_base` after the EWMA or the weight changed, then the word.
    fn refresh_lrt_base(&self) {
        if self.slot.is_none() {
            return;
        }
        let ln = LnTable::get();
        for _ in 0..4 {
            let (key, w) = (self.ewma.key(), self.weight());
            // Positive (`ln(weight)` is at most 22.2), so the word's bits order like
            // the costs. Same order as `latency_cost`.
            let base = LRT_BIAS + key - ln.ln(u64::from(w));
            self.lrt_base.store(base.to_bits(), Relaxed);
            if self.ewma.key().to_bits() == key.to_bits() && self.weight() == w {
                break;
            }
        }
        self.refresh_lrt();
    }

    /// After a slow scan: clear this backend's "may be unavailable" flag if it is
    /// available again (its ejection ended), so scans go back to the table.
    pub(crate) fn sync_flag(&self) {
        if let Some(s) = &self.slot {
            if s.flagged() && self.is_available() {
                s.unflag_if(|| self.is_available());
            }
        }
    }

    fn flag(&self) {
        if let Some(s) = &self.slot {
            s.flag();
        }
    }

    pub(crate) fn is_ejected_now(&self) -> bool {
        let until = self.health.ejected_until_ns();
        until != 0 && self.now_ns() < until
    }

    /// Eject now (the caller checked the group allowance).
    pub(crate) fn eject(&self, policy: &EjectionPolicy, reason: &'static str) {
        if let Ejected::For(time) = self.health.eject(self.now_ns(), policy) {
            self.flag();
            // The proxy logs this at WARN with the backend's name and the failure.
            debug!(backend = %self.id, ?time, reason, "backend ejected");
        }
    }

    /// End an ejection early because the backend proved it serves (`why`); true if
    /// it was ejected. Clears its table flag when it is available again.
    pub(crate) fn uneject(&self, why: &'static str) -> bool {
        if !self.health.uneject(self.now_ns()) {
            return false;
        }
        info!(backend = %self.id, why, "backend returned from ejection");
        self.sync_flag();
        true
    }

    /// Apply an active check result; true if the active state changed.
    ///
    /// A passing check also ends an ejection, as Envoy does by default
    /// (`successful_active_health_check_uneject_host`): "a successful active health
    /// check unejects the host" (one pass when the host was not failing active
    /// checks; here, as there, a backend that is down needs `rise` passes first). A
    /// backend that serves again must not keep a slot of `max_percent` that the next
    /// backend to fail needs.
    pub(crate) fn report_check(&self, ok: bool, policy: &HealthPolicy) -> bool {
        let changed = match self.health.report_check(ok, policy) {
            Some(true) => {
                // The proxy logs transitions at WARN with the check that decided them.
                debug!(backend = %self.id, "backend up (active checks pass)");
                true
            }
            Some(false) => {
                self.flag();
                debug!(backend = %self.id, "backend down (active checks fail)");
                true
            }
            None => false,
        };
        if ok && self.health.active_up() {
            self.uneject("active check passed");
            if changed {
                self.sync_flag();
            }
        }
        changed
    }
}

/// Added to every table cost to keep it positive (see [`Backend::refresh_lrt`]).
pub(crate) const LRT_BIAS: f64 = 64.0;

/// Cost of a backend with no latency sample yet and a request in flight: above any
/// measured backend's (a key is `ln(ns) + t / decay`, far below 1e300 for any clock
/// a process sees), and its `f64` bits order above theirs as well.
pub(crate) const UNMEASURED_BUSY: f64 = 1e300;

/// A failure of unknown duration at most doubles the estimate up to this (a failure
/// that took longer counts what it took).
pub(crate) const FAILURE_PENALTY_CAP: Duration = Duration::from_secs(10);

fn decay_ns(config: &BalancerConfig) -> f64 {
    (config.ewma_decay.as_nanos() as f64).max(1.0)
}

/// `ln(n)` for `n >= 1`, from a table for small counts and weights (the common case
/// on the hot path). Copy it out once per pick: the `OnceLock` check is then not per backend.
#[derive(Clone, Copy)]
pub(crate) struct LnTable(&'static [f64; LN_TABLE]);

const LN_TABLE: usize = 1024;

impl LnTable {
    #[inline]
    pub(crate) fn get() -> Self {
        static LN: OnceLock<[f64; LN_TABLE]> = OnceLock::new();
        Self(LN.get_or_init(|| std::array::from_fn(|i| (i.max(1) as f64).ln())))
    }

    /// `ln(max(n, 1))`.
    #[inline]
    pub(crate) fn ln(self, n: u64) -> f64 {
        match self.0.get(n as usize) {
            Some(&v) => v,
            None => ln_large(n),
        }
    }
}

#[cold]
fn ln_large(n: u64) -> f64 {
    (n as f64).ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hot_fields_share_the_first_cache_line() {
        use std::mem::{align_of, offset_of};
        assert_eq!(align_of::<Backend>(), 64);
        assert_eq!(offset_of!(Backend, requests), 0);
        assert!(offset_of!(Backend, finished) + 8 <= 64);
        assert!(offset_of!(Backend, ewma) + 8 <= 64); // the key is the first word
        assert!(offset_of!(Backend, weight) + 4 <= 64);
        // ejected_until_ns, active_up, consecutive_failures
        assert!(offset_of!(Backend, health) + 16 <= 64);
    }

    #[test]
    fn ln_table_matches_ln() {
        let t = LnTable::get();
        for n in [0u64, 1, 2, 3, 1023, 1024, 5000, u64::MAX] {
            assert_eq!(t.ln(n), (n.max(1) as f64).ln(), "{n}");
        }
    }
}
