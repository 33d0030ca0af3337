//! Where a generator's worker id comes from: explicit values, the environment, later a lease.
use std::fmt;

use crate::{Error, Layout};

/// The environment variable [`WorkerId::from_env`] reads.
pub const WORKER_ID_ENV: &str = "RINGLEADER_WORKER_ID";

/// A source of the worker id a [`Generator`](crate::Generator) stamps into its IDs.
///
/// Implemented for plain integers (explicit ids), [`WorkerId`] and [`EnvWorkerId`].
/// The generator calls [`acquire`](WorkerIdSource::acquire) once, at construction, and
/// range-checks the result against the layout. A lease from a coordination service (etcd,
/// ZooKeeper, a database row) plugs in by implementing this trait: `acquire` obtains the
/// lease for `layout.max_worker() + 1` slots and returns its slot, keeping the lease alive
/// for as long as the generator lives (the source owns the keep-alive).
///
/// ```
/// use ringleader_idgen::{Error, Generator, Layout, WorkerId, WorkerIdSource};
///
/// /// Worker id derived from a pod ordinal, e.g. `web-3` -> 3.
/// struct PodOrdinal(&'static str);
///
/// impl WorkerIdSource for PodOrdinal {
///     fn acquire(&self, _layout: &Layout) -> Result<WorkerId, Error> {
///         let ordinal = self.0.rsplit('-').next().unwrap_or_default();
///         ordinal.parse::<u32>().map(WorkerId::new).map_err(|_| Error::WorkerIdInvalid {
///             var: "pod name".into(),
///             value: self.0.into(),
///         })
///     }
/// }
///
/// let gen = Generator::new(Layout::TWITTER, PodOrdinal("web-3"))?;
/// assert_eq!(gen.worker(), 3);
/// # Ok::<(), Error>(())
/// ```
pub trait WorkerIdSource {
    /// The worker id to use with `layout`; the generator range-checks it afterwards.
    fn acquire(&self, layout: &Layout) -> Result<WorkerId, Error>;
}

/// A worker id (range-checked against a layout when a generator is built).
///
/// ```
/// use ringleader_idgen::WorkerId;
///
/// std::env::set_var("RINGLEADER_WORKER_ID", "17");
/// assert_eq!(WorkerId::from_env()?.get(), 17);
/// std::env::set_var("RINGLEADER_WORKER_ID", "seventeen");
/// assert!(WorkerId::from_env().is_err());
/// # std::env::remove_var("RINGLEADER_WORKER_ID");
/// # Ok::<(), ringleader_idgen::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WorkerId(u32);

impl WorkerId {
    /// An explicit worker id.
    pub const fn new(id: u32) -> WorkerId {
        WorkerId(id)
    }

    /// The id.
    pub const fn get(self) -> u32 {
        self.0
    }

    /// Read the worker id from `RINGLEADER_WORKER_ID`; a clear error when it is unset or
    /// not a non-negative integer. (Range checks against a layout happen when a generator
    /// is built.)
    pub fn from_env() -> Result<WorkerId, Error> {
        WorkerId::from_env_var(WORKER_ID_ENV)
    }

    /// `RINGLEADER_WORKER_ID` when it is set (an error when it is not a non-negative
    /// integer), `None` when it is unset: for a caller that falls back to a default and
    /// must say so, as a service that runs alone may (two processes that both fall back
    /// to the same worker id issue the same IDs).
    ///
    /// ```
    /// use ringleader_idgen::{WorkerId, WORKER_ID_ENV};
    ///
    /// std::env::remove_var(WORKER_ID_ENV);
    /// let worker = match WorkerId::from_env_if_set()? {
    ///     Some(worker) => worker,
    ///     None => {
    ///         tracing::warn!("{WORKER_ID_ENV} is not set: using worker id 0; replicas must each set their own");
    ///         WorkerId::new(0)
    ///     }
    /// };
    /// assert_eq!(worker, WorkerId::new(0));
    /// std::env::set_var(WORKER_ID_ENV, "x");
    /// assert!(WorkerId::from_env_if_set().is_err(), "set but invalid is never defaulted");
    /// # std::env::remove_var(WORKER_ID_ENV);
    /// # Ok::<(), ringleader_idgen::Error>(())
    /// ```
    pub fn from_env_if_set() -> Result<Option<WorkerId>, Error> {
        WorkerId::from_env_var_if_set(WORKER_ID_ENV)
    }

    /// [`from_env_if_set`](WorkerId::from_env_if_set) for the environment variable `var`.
    pub fn from_env_var_if_set(var: &str) -> Result<Option<WorkerId>, Error> {
        match WorkerId::from_env_var(var) {
            Ok(worker) => Ok(Some(worker)),
            Err(Error::WorkerIdMissing { .. }) => Ok(None),
            Err(invalid) => Err(invalid),
        }
    }

    /// Read the worker id from the environment variable `var`.
    pub fn from_env_var(var: &str) -> Result<WorkerId, Error> {
        let value =
            std::env::var_os(var).ok_or_else(|| Error::WorkerIdMissing { var: var.into() })?;
        let text = value.to_string_lossy();
        text.trim()
            .parse::<u32>()
            .map(WorkerId)
            .map_err(|_| Error::WorkerIdInvalid {
                var: var.into(),
                value: text.into_owned(),
            })
    }
}

impl fmt::Display for WorkerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl From<WorkerId> for u32 {
    fn from(w: WorkerId) -> u32 {
        w.0
    }
}

impl WorkerIdSource for WorkerId {
    fn acquire(&self, _layout: &Layout) -> Result<WorkerId, Error> {
        Ok(*self)
    }
}

/// Reads the worker id from an environment variable when the generator is built.
///
/// ```
/// use ringleader_idgen::{EnvWorkerId, Error, Generator, Layout};
///
/// std::env::set_var("MY_APP_WORKER", "2000");
/// let err = Generator::new(Layout::TWITTER, EnvWorkerId::new("MY_APP_WORKER")).unwrap_err();
/// assert!(matches!(err, Error::WorkerIdOutOfRange { worker: 2000, max: 1023 }));
/// std::env::remove_var("MY_APP_WORKER");
/// let err = Generator::new(Layout::TWITTER, EnvWorkerId::new("MY_APP_WORKER")).unwrap_err();
/// assert!(matches!(err, Error::WorkerIdMissing { .. }));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvWorkerId {
    var: String,
}

impl EnvWorkerId {
    /// Read from the variable `var`.
    pub fn new(var: impl Into<String>) -> EnvWorkerId {
        EnvWorkerId { var: var.into() }
    }
}

impl Default for EnvWorkerId {
    /// Reads `RINGLEADER_WORKER_ID`.
    fn default() -> EnvWorkerId {
        EnvWorkerId::new(WORKER_ID_ENV)
    }
}

impl WorkerIdSource for EnvWorkerId {
    fn acquire(&self, _layout: &Layout) -> Result<WorkerId, Error> {
        WorkerId::from_env_var(&self.var)
    }
}

macro_rules! int_sources {
    ($($t:ty),*) => {$(
        impl WorkerIdSource for $t {
            /// An explicit worker id; negative or too large values are an error.
            fn acquire(&self, layout: &Layout) -> Result<WorkerId, Error> {
                u32::try_from(*self).map(WorkerId).map_err(|_| Error::WorkerIdOutOfRange {
                    worker: i128::try_from(*self).unwrap_or(i128::MAX),
                    max: layout.max_worker(),
                })
            }
        }
    )*};
}

int_sources!(u8, u16, u32, u64, usize, i32, i64);

/// Check `worker` against `layout`.
pub(crate) fn checked(worker: WorkerId, layout: &Layout) -> Result<u32, Error> {
    if worker.0 > layout.max_worker() {
        Err(Error::WorkerIdOutOfRange {
            worker: i128::from(worker.0),
            max: layout.max_worker(),
        })
    } else {
        Ok(worker.0)
    }
}
