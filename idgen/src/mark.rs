//! Keeping a generator's high-water mark ahead of it: the durably covered tick, and a
//! background thread that renews the mark before callers reach it, so that in steady state
//! no caller waits for the disk.
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use crate::persist::{HighWaterMark, Stored};
use crate::Error;

/// A locked mark file, the tick it durably covers, and its renewer thread.
///
/// `durable` is stored only under the `file` lock, after the write (fsync, rename, directory
/// fsync) has returned, and only ever increases; the generator issues no tick past it.
/// These atomics are plain `std` ones even under `cfg(loom)`: the renewer is a real thread,
/// and the loom model covers the generator's compare-exchange loop, not the file.
pub(crate) struct Mark {
    shared: Arc<Shared>,
    renewer: Option<JoinHandle<()>>,
}

struct Shared {
    file: Mutex<HighWaterMark>,
    /// Highest tick covered by the durable mark.
    durable: AtomicU64,
    /// The `durable` value a renewal was last requested for: one request per renewal.
    requested: AtomicU64,
    request: Mutex<Request>,
    wake: Condvar,
    /// A background write that failed, for the next non-blocking caller to report.
    failed: Mutex<Option<Error>>,
}

#[derive(Default)]
struct Request {
    /// `(new mark, clock tick now)` to write.
    want: Option<(u64, u64)>,
    stop: bool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding one of these locks leaves nothing half-done that matters:
    // `durable` only moves after a completed write.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Mark {
    /// Take ownership of a locked mark file and start its renewer thread (named
    /// `ringleader-idgen-mark`). If the thread cannot be spawned, every renewal is made in
    /// the foreground instead, by the caller that needs it.
    pub(crate) fn new(file: HighWaterMark) -> Mark {
        let shared = Arc::new(Shared {
            file: Mutex::new(file),
            durable: AtomicU64::new(0),
            requested: AtomicU64::new(0),
            request: Mutex::new(Request::default()),
            wake: Condvar::new(),
            failed: Mutex::new(None),
        });
        let for_thread = Arc::clone(&shared);
        let renewer = std::thread::Builder::new()
            .name("ringleader-idgen-mark".into())
            .spawn(move || renew_loop(&for_thread))
            .map_err(|e| {
                tracing::warn!(error = %e, "cannot start the high-water-mark renewer thread; renewing in the foreground");
            })
            .ok();
        Mark { shared, renewer }
    }

    /// The stored mark, if the file exists.
    pub(crate) fn load(&self) -> Result<Option<Stored>, Error> {
        lock(&self.shared.file).load()
    }

    /// Highest tick the durable mark covers. Acquire: pairs with the Release store made
    /// after the write returned (a reader that sees the value sees a completed write).
    #[inline]
    pub(crate) fn durable(&self) -> u64 {
        self.shared.durable.load(Ordering::Acquire)
    }

    /// Whether a background renewer runs (else [`request`](Self::request) does nothing).
    pub(crate) fn has_renewer(&self) -> bool {
        self.renewer.is_some()
    }

    /// Ask the renewer to write `mark` (`now` is the clock's tick, recorded in the file).
    /// Never blocks on the disk; only the first caller per durable value takes a lock.
    pub(crate) fn request(&self, mark: u64, now: u64) {
        if self.renewer.is_none() {
            return;
        }
        let durable = self.durable();
        // AcqRel is not needed for the data (the request travels under a mutex); this
        // only elects one requester per durable value.
        // (A load first: callers keep arriving here until the renewal lands, and a plain
        // read of a shared line is cheaper than a read-modify-write on it.)
        if self.shared.requested.load(Ordering::Relaxed) >= durable
            || self.shared.requested.fetch_max(durable, Ordering::Relaxed) >= durable
        {
            return;
        }
        let mut req = lock(&self.shared.request);
        req.want = Some(req.want.map_or((mark, now), |w| w.max((mark, now))));
        drop(req);
        self.shared.wake.notify_one();
    }

    /// Make the durable mark cover `covers`, writing `mark` (>= `covers`) if it does not:
    /// in the calling thread, waiting for the disk (and for a renewal already under way).
    pub(crate) fn persist(&self, covers: u64, mark: u64, now: u64) -> Result<(), Error> {
        let file = lock(&self.shared.file);
        if self.durable() >= covers {
            return Ok(());
        }
        file.store(mark, now)?;
        tracing::debug!(path = %file.path().display(), mark, "high-water mark advanced");
        self.shared.durable.store(mark, Ordering::Release);
        Ok(())
    }

    /// A failed background renewal, once.
    pub(crate) fn take_failure(&self) -> Option<Error> {
        lock(&self.shared.failed).take()
    }

    /// Stop and join the renewer (a write under way completes first).
    pub(crate) fn stop(&mut self) {
        lock(&self.shared.request).stop = true;
        self.shared.wake.notify_one();
        if let Some(handle) = self.renewer.take() {
            let _ = handle.join();
        }
    }

    /// At shutdown (renewer stopped, no ID issued any more): lower the mark to `issued`,
    /// the last tick really used, so the next start need not wait out the reservation.
    pub(crate) fn shrink(&self, issued: u64, now: u64) -> Result<(), Error> {
        let file = lock(&self.shared.file);
        file.store(issued, now)?;
        tracing::debug!(path = %file.path().display(), mark = issued, "high-water mark lowered to the last issued tick");
        Ok(())
    }

    pub(crate) fn path(&self) -> std::path::PathBuf {
        lock(&self.shared.file).path().to_owned()
    }
}

impl Drop for Mark {
    fn drop(&mut self) {
        self.stop();
    }
}

fn renew_loop(shared: &Shared) {
    loop {
        let (mark, now) = {
            let mut req = lock(&shared.request);
            loop {
                if req.stop {
                    return;
                }
                if let Some(want) = req.want.take() {
                    break want;
                }
                req = shared
                    .wake
                    .wait(req)
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
            }
        };
        let file = lock(&shared.file);
        if shared.durable.load(Ordering::Acquire) >= mark {
            continue;
        }
        match file.store(mark, now) {
            Ok(()) => {
                tracing::debug!(path = %file.path().display(), mark, "high-water mark renewed ahead");
                shared.durable.store(mark, Ordering::Release);
            }
            Err(e) => {
                tracing::warn!(error = %e, "renewing the high-water mark failed; callers retry when they reach it");
                *lock(&shared.failed) = Some(e);
                // Let the next caller past the threshold ask again.
                shared.requested.store(0, Ordering::Relaxed);
            }
        }
    }
}
