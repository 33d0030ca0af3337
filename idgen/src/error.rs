//! The one error type of `ringleader-idgen`.
use std::path::PathBuf;
use std::time::Duration;

/// Everything that can go wrong when laying out, generating, parsing or persisting IDs.
///
/// ```
/// use ringleader_idgen::{Error, Generator, Layout};
///
/// // Worker ids are range-checked against the layout (TWITTER has 10 worker bits).
/// let err = Generator::new(Layout::TWITTER, 5000).unwrap_err();
/// assert!(matches!(err, Error::WorkerIdOutOfRange { worker: 5000, max: 1023 }));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The bit widths, tick or epoch of a [`Layout`](crate::Layout) are unusable.
    #[error("invalid ID layout: {reason}")]
    InvalidLayout {
        /// What is wrong with it.
        reason: String,
    },
    /// The worker id does not fit in the layout's worker bits.
    #[error("worker id {worker} is out of range: this layout allows 0..={max}")]
    WorkerIdOutOfRange {
        /// The worker id that was asked for (negative values are shown as such).
        worker: i128,
        /// The largest worker id the layout can hold.
        max: u32,
    },
    /// The environment variable that should name the worker id is not set.
    #[error("worker id: environment variable {var} is not set")]
    WorkerIdMissing {
        /// The variable's name, e.g. `RINGLEADER_WORKER_ID`.
        var: String,
    },
    /// The environment variable that should name the worker id is not a non-negative integer.
    #[error("worker id: environment variable {var}={value:?} is not a non-negative integer")]
    WorkerIdInvalid {
        /// The variable's name.
        var: String,
        /// Its value.
        value: String,
    },
    /// The clock is behind the last issued ID (or, at start, behind the time the stored
    /// high-water mark was written) by more than the configured tolerance.
    #[error("clock moved backwards by {behind:?}, more than the configured tolerance")]
    ClockMovedBackwards {
        /// How far the clock is behind the generator's last issued timestamp (beyond any
        /// ticks borrowed on purpose), or behind the stored mark's write time.
        behind: Duration,
    },
    /// The clock reads a time before the layout's epoch.
    #[error("clock reads a time before the layout's epoch")]
    ClockBeforeEpoch,
    /// The layout's timestamp bits are used up (the clock or the generator is past its end).
    #[error("the layout's timestamp range is exhausted (it ends {end:?} after the Unix epoch)")]
    TimestampOverflow {
        /// Where the layout ends, as time since the Unix epoch.
        end: Duration,
    },
    /// A part of an ID (timestamp, worker or sequence) does not fit in its bits,
    /// or an ID has bits set outside the layout.
    #[error("{what} {value} does not fit: at most {max}")]
    OutOfRange {
        /// Which part: "timestamp", "worker", "sequence" or "id".
        what: &'static str,
        /// The value given.
        value: u64,
        /// The largest value allowed.
        max: u64,
    },
    /// A string is not a valid ID (a decimal integer in `0..=i64::MAX`).
    #[error("invalid ID {input:?}: expected a decimal integer in 0..=9223372036854775807")]
    ParseId {
        /// The rejected input.
        input: String,
    },
    /// `next_ids(n)` asked for more IDs than one reservation may hold.
    #[error("batch of {requested} IDs is too large: at most {max} per call with this layout")]
    BatchTooLarge {
        /// How many were asked for.
        requested: u64,
        /// The most one call may reserve (`2^sequence_bits * (max_borrow + 1)`).
        max: u64,
    },
    /// Reading or writing the high-water-mark file failed.
    #[error("high-water mark {path}: {source}")]
    HighWaterMarkIo {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Another generator, in this process or another, holds the high-water-mark file
    /// (its advisory lock, `<path>.lock`, is taken for as long as a generator lives).
    #[error("high-water mark {path} is in use by another generator ({}): one worker id and mark file must have one generator at a time", holder(.pid))]
    HighWaterMarkLocked {
        /// The mark file.
        path: PathBuf,
        /// The process holding it, as it recorded itself in the lock file (`None` when it
        /// could not be read).
        pid: Option<u32>,
    },
    /// On start, the stored mark is further ahead of the clock than this generator waits
    /// for (its `reserve_ahead` plus `backwards_tolerance`): the run that wrote it reserved
    /// further ahead, with a larger `reserve_ahead`, and did not stop cleanly (a generator
    /// dropped normally lowers the mark to what it issued). Not a clock step: that is
    /// [`ClockMovedBackwards`](Error::ClockMovedBackwards), reported when the clock reads
    /// before the time the mark was written.
    #[error("high-water mark {path} reserves IDs {ahead:?} ahead of the clock, longer than this generator waits at start ({max_wait:?}: its reserve_ahead plus backwards_tolerance); {}", ahead_cause(.clock_checked))]
    HighWaterMarkAhead {
        /// The mark file.
        path: PathBuf,
        /// How far the stored mark is ahead of the clock.
        ahead: Duration,
        /// The longest this generator waits for the clock to pass a stored mark.
        max_wait: Duration,
        /// Whether the file recorded when it was written, so a backwards clock step could
        /// be ruled out (files written before that was recorded cannot tell the two apart).
        clock_checked: bool,
    },
    /// The generator's [`Fence`](crate::Fence) does not allow this timestamp: its
    /// worker-id lease is not confirmed (etcd unreachable past the safety deadline, or the
    /// lease lost), or the generator was [sealed](crate::Generator::seal). No ID is issued;
    /// calls succeed again once the lease is renewed.
    #[error("worker id fenced: its lease is not confirmed, so no ID is issued (try again once the lease is renewed)")]
    Fenced,
    /// The high-water-mark file exists but is not valid for this generator.
    #[error("high-water mark {path} is unusable: {reason} (refusing to start rather than risk duplicate IDs)")]
    HighWaterMarkCorrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

fn holder(pid: &Option<u32>) -> String {
    match pid {
        Some(pid) => format!("held by process {pid}"),
        None => "holder's pid unknown".to_owned(),
    }
}

fn ahead_cause(clock_checked: &bool) -> &'static str {
    if *clock_checked {
        "the clock has not moved back since it was written: the run that wrote it reserved further ahead (a larger reserve_ahead) and did not stop cleanly. Start with a reserve_ahead at least that long, or wait until the clock passes the mark"
    } else {
        "this file does not record when it was written, so either the run that wrote it reserved further ahead (a larger reserve_ahead) or the clock moved backwards since"
    }
}
