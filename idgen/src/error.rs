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
    /// The clock is behind the last issued ID by more than the configured tolerance.
    #[error("clock moved backwards by {behind:?}, more than the configured tolerance")]
    ClockMovedBackwards {
        /// How far the clock is behind the generator's last issued timestamp
        /// (beyond any ticks borrowed on purpose).
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
    /// The high-water-mark file exists but is not valid for this generator.
    #[error("high-water mark {path} is unusable: {reason} (refusing to start rather than risk duplicate IDs)")]
    HighWaterMarkCorrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}
