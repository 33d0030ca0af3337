//! Bit layout of an ID: timestamp, worker and sequence widths, tick length and epoch.
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::{Error, Id};

/// How the 63 usable bits of an ID are split, and what a timestamp tick means.
///
/// An ID is `timestamp | worker | sequence`, most significant first, so IDs
/// sort by time, then worker, then sequence. At most 63 bits are used, so
/// IDs are positive as `i64` too.
///
/// ```
/// use ringleader_idgen::Layout;
/// use std::time::{Duration, UNIX_EPOCH};
///
/// let twitter = Layout::TWITTER;
/// assert_eq!((twitter.timestamp_bits(), twitter.worker_bits(), twitter.sequence_bits()), (41, 10, 12));
/// let id = twitter.compose(1_000, 7, 3)?;
/// let parts = twitter.decode(id)?;
/// assert_eq!((parts.timestamp, parts.worker, parts.sequence), (1_000, 7, 3));
///
/// // A custom layout: 10 ms ticks for 348 years, 256 workers, 1024 IDs per tick and worker.
/// let custom = Layout::new(40, 8, 10, Duration::from_millis(10), UNIX_EPOCH + Duration::from_secs(1_700_000_000))?;
/// assert_eq!(custom.max_worker(), 255);
/// # Ok::<(), ringleader_idgen::Error>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Layout {
    timestamp_bits: u8,
    worker_bits: u8,
    sequence_bits: u8,
    tick_nanos: u64,
    epoch_nanos: u64,
}

/// The three parts of a decoded ID.
///
/// ```
/// use ringleader_idgen::{Layout, Parts};
///
/// let id = Layout::TWITTER.compose(5, 1, 2)?;
/// assert_eq!(Layout::TWITTER.decode(id)?, Parts { timestamp: 5, worker: 1, sequence: 2 });
/// # Ok::<(), ringleader_idgen::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Parts {
    /// Ticks since the layout's epoch.
    pub timestamp: u64,
    /// The worker that issued the ID.
    pub worker: u32,
    /// The sequence number within the tick.
    pub sequence: u32,
}

const NANOS_PER_MILLI: u64 = 1_000_000;

impl Layout {
    /// Twitter's original Snowflake: 41 bits of milliseconds since 2010-11-04T01:42:54.657Z
    /// (epoch 1288834974657, from Twitter's snowflake source), 10 worker bits, 12 sequence bits.
    ///
    /// Capacity: 1024 workers, 4,096,000 IDs/s per worker, until 2080-07-10.
    pub const TWITTER: Layout = Layout::preset(41, 10, 12, NANOS_PER_MILLI, 1_288_834_974_657);

    /// Sony's sonyflake widths: 39 bits of 10 ms since 2014-09-01T00:00:00Z (sonyflake's
    /// default start time), 16 machine bits, 8 sequence bits.
    ///
    /// Capacity: 65,536 workers, 25,600 IDs/s per worker, for 174 years (until 2188).
    /// Only the widths, tick and epoch match sonyflake: ringleader always orders the fields
    /// `timestamp | worker | sequence`, while sonyflake stores `time | sequence | machine`,
    /// so the two produce different bits.
    pub const SONYFLAKE: Layout =
        Layout::preset(39, 16, 8, 10 * NANOS_PER_MILLI, 1_409_529_600_000);

    /// IDs below 2^53, exact in JavaScript's `Number` (and JSON parsers that use doubles):
    /// 41 bits of milliseconds since 2024-01-01T00:00:00Z, 5 worker bits, 7 sequence bits.
    ///
    /// Capacity: 32 workers, 128,000 IDs/s per worker, until 2093-09-06 (69.7 years).
    pub const JS_SAFE: Layout = Layout::preset(41, 5, 7, NANOS_PER_MILLI, 1_704_067_200_000);

    const fn preset(ts: u8, worker: u8, seq: u8, tick_nanos: u64, epoch_millis: u64) -> Layout {
        Layout {
            timestamp_bits: ts,
            worker_bits: worker,
            sequence_bits: seq,
            tick_nanos,
            epoch_nanos: epoch_millis * NANOS_PER_MILLI,
        }
    }

    /// A validated layout.
    ///
    /// Rules: `timestamp_bits >= 1`, `worker_bits <= 32`, `sequence_bits <= 32`, all three
    /// together at most 63; `tick` at least 1 ns and at most `u64::MAX` ns; `epoch` not before
    /// 1970; and the layout must end (epoch + tick × 2^timestamp_bits) before the year 2554,
    /// where nanoseconds since 1970 stop fitting in a `u64`.
    pub fn new(
        timestamp_bits: u8,
        worker_bits: u8,
        sequence_bits: u8,
        tick: Duration,
        epoch: SystemTime,
    ) -> Result<Layout, Error> {
        let invalid = |reason: String| Err(Error::InvalidLayout { reason });
        if timestamp_bits == 0 {
            return invalid("timestamp_bits must be at least 1".into());
        }
        if worker_bits > 32 || sequence_bits > 32 {
            return invalid(format!(
                "worker_bits ({worker_bits}) and sequence_bits ({sequence_bits}) must each be at most 32"
            ));
        }
        let total = u32::from(timestamp_bits) + u32::from(worker_bits) + u32::from(sequence_bits);
        if total > 63 {
            return invalid(format!(
                "{timestamp_bits}+{worker_bits}+{sequence_bits} = {total} bits; at most 63 so IDs stay positive as i64"
            ));
        }
        let tick_nanos = match u64::try_from(tick.as_nanos()) {
            Ok(0) | Err(_) => {
                return invalid(format!("tick {tick:?} must be between 1ns and u64::MAX ns"))
            }
            Ok(n) => n,
        };
        let epoch_nanos = match epoch
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_nanos()))
        {
            Ok(Ok(n)) => n,
            _ => return invalid("epoch must be between 1970 and 2554".into()),
        };
        let end = u128::from(epoch_nanos) + (u128::from(tick_nanos) << timestamp_bits);
        if end > u128::from(u64::MAX) {
            return invalid(format!(
                "epoch + tick x 2^{timestamp_bits} reaches past the year 2554; use fewer timestamp bits or a shorter tick"
            ));
        }
        Ok(Layout {
            timestamp_bits,
            worker_bits,
            sequence_bits,
            tick_nanos,
            epoch_nanos,
        })
    }

    /// Bits of the timestamp field.
    pub const fn timestamp_bits(&self) -> u8 {
        self.timestamp_bits
    }

    /// Bits of the worker field.
    pub const fn worker_bits(&self) -> u8 {
        self.worker_bits
    }

    /// Bits of the sequence field.
    pub const fn sequence_bits(&self) -> u8 {
        self.sequence_bits
    }

    /// Length of one timestamp tick.
    pub const fn tick(&self) -> Duration {
        Duration::from_nanos(self.tick_nanos)
    }

    /// The time that timestamp 0 stands for.
    pub fn epoch(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_nanos(self.epoch_nanos)
    }

    /// Largest timestamp (in ticks since the epoch).
    pub const fn max_timestamp(&self) -> u64 {
        mask(self.timestamp_bits)
    }

    /// Largest worker id.
    pub const fn max_worker(&self) -> u32 {
        // worker_bits <= 32, so the mask fits a u32.
        mask(self.worker_bits) as u32
    }

    /// Largest sequence number within one tick.
    pub const fn max_sequence(&self) -> u32 {
        mask(self.sequence_bits) as u32
    }

    /// How many IDs one worker can issue per second at most (`2^sequence_bits / tick`).
    pub fn ids_per_second_per_worker(&self) -> f64 {
        (1u64 << self.sequence_bits) as f64 * 1e9 / self.tick_nanos as f64
    }

    /// The last moment the layout can represent (after it, generators return
    /// [`Error::TimestampOverflow`]).
    pub fn end(&self) -> SystemTime {
        UNIX_EPOCH + self.end_since_unix()
    }

    pub(crate) fn end_since_unix(&self) -> Duration {
        // Validated in `new` (and for presets in tests) to fit a u64 of nanoseconds.
        Duration::from_nanos(self.epoch_nanos + (self.tick_nanos << self.timestamp_bits))
    }

    /// The timestamp (ticks since the layout's epoch) a clock reading falls in; `since_unix`
    /// is time since the Unix epoch, as [`Clock::now`](crate::Clock::now) returns it.
    ///
    /// ```
    /// use ringleader_idgen::Layout;
    /// use std::time::{Duration, UNIX_EPOCH};
    ///
    /// let epoch = Layout::TWITTER.epoch().duration_since(UNIX_EPOCH).unwrap();
    /// assert_eq!(Layout::TWITTER.timestamp_at(epoch + Duration::from_millis(5))?, 5);
    /// assert!(Layout::TWITTER.timestamp_at(Duration::ZERO).is_err());
    /// # Ok::<(), ringleader_idgen::Error>(())
    /// ```
    pub fn timestamp_at(&self, since_unix: Duration) -> Result<u64, Error> {
        let nanos = u64::try_from(since_unix.as_nanos()).unwrap_or(u64::MAX);
        let since = nanos
            .checked_sub(self.epoch_nanos)
            .ok_or(Error::ClockBeforeEpoch)?;
        Ok(since / self.tick_nanos)
    }

    pub(crate) const fn tick_nanos(&self) -> u64 {
        self.tick_nanos
    }

    pub(crate) const fn epoch_nanos(&self) -> u64 {
        self.epoch_nanos
    }

    /// The wall-clock time a timestamp (ticks since the epoch) stands for.
    ///
    /// ```
    /// use ringleader_idgen::Layout;
    /// use std::time::{Duration, UNIX_EPOCH};
    ///
    /// let t = Layout::TWITTER.time_of(1)?;
    /// assert_eq!(t, UNIX_EPOCH + Duration::from_millis(1_288_834_974_658));
    /// # Ok::<(), ringleader_idgen::Error>(())
    /// ```
    pub fn time_of(&self, timestamp: u64) -> Result<SystemTime, Error> {
        self.check("timestamp", timestamp, self.max_timestamp())?;
        Ok(UNIX_EPOCH + Duration::from_nanos(self.epoch_nanos + timestamp * self.tick_nanos))
    }

    /// Put an ID together from its parts; each part is range-checked.
    pub fn compose(&self, timestamp: u64, worker: u32, sequence: u32) -> Result<Id, Error> {
        self.check("timestamp", timestamp, self.max_timestamp())?;
        self.check("worker", u64::from(worker), u64::from(self.max_worker()))?;
        self.check(
            "sequence",
            u64::from(sequence),
            u64::from(self.max_sequence()),
        )?;
        Ok(Id::from_raw_unchecked(
            self.compose_raw(timestamp, worker, sequence),
        ))
    }

    /// Take an ID apart. Fails when the ID has bits set above the layout's width
    /// (it cannot have come from this layout).
    pub fn decode(&self, id: Id) -> Result<Parts, Error> {
        let raw = id.as_u64();
        let width = u32::from(self.timestamp_bits)
            + u32::from(self.worker_bits)
            + u32::from(self.sequence_bits);
        self.check("id", raw, mask_u32(width))?;
        let seq_bits = u32::from(self.sequence_bits);
        let worker_bits = u32::from(self.worker_bits);
        Ok(Parts {
            timestamp: raw >> (seq_bits + worker_bits),
            worker: ((raw >> seq_bits) & mask(self.worker_bits)) as u32,
            sequence: (raw & mask(self.sequence_bits)) as u32,
        })
    }

    /// Compose without range checks (callers guarantee the ranges).
    pub(crate) const fn compose_raw(&self, timestamp: u64, worker: u32, sequence: u32) -> u64 {
        let seq_bits = self.sequence_bits as u32;
        let worker_bits = self.worker_bits as u32;
        (timestamp << (seq_bits + worker_bits)) | ((worker as u64) << seq_bits) | sequence as u64
    }

    fn check(&self, what: &'static str, value: u64, max: u64) -> Result<(), Error> {
        if value > max {
            Err(Error::OutOfRange { what, value, max })
        } else {
            Ok(())
        }
    }
}

const fn mask(bits: u8) -> u64 {
    mask_u32(bits as u32)
}

const fn mask_u32(bits: u32) -> u64 {
    if bits >= 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    }
}

impl fmt::Debug for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Layout")
            .field("timestamp_bits", &self.timestamp_bits)
            .field("worker_bits", &self.worker_bits)
            .field("sequence_bits", &self.sequence_bits)
            .field("tick", &self.tick())
            .field("epoch_unix_ms", &(self.epoch_nanos / NANOS_PER_MILLI))
            .finish()
    }
}

impl fmt::Display for Layout {
    /// `41/10/12 bits, tick 1ms, epoch 1288834974657 ms`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}/{} bits, tick {:?}, epoch {} ms",
            self.timestamp_bits,
            self.worker_bits,
            self.sequence_bits,
            self.tick(),
            self.epoch_nanos / NANOS_PER_MILLI
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_are_valid_layouts() {
        for preset in [Layout::TWITTER, Layout::SONYFLAKE, Layout::JS_SAFE] {
            let rebuilt = Layout::new(
                preset.timestamp_bits(),
                preset.worker_bits(),
                preset.sequence_bits(),
                preset.tick(),
                preset.epoch(),
            )
            .expect("preset validates");
            assert_eq!(rebuilt, preset);
        }
    }

    #[test]
    fn js_safe_ids_stay_below_2_pow_53() {
        let l = Layout::JS_SAFE;
        let max = l
            .compose(l.max_timestamp(), l.max_worker(), l.max_sequence())
            .unwrap();
        assert!(max.as_u64() < 1u64 << 53);
        assert_eq!(max.as_u64(), (1u64 << 53) - 1);
        // "decades": the layout lasts more than 60 years past its 2024 epoch.
        let years = l.end().duration_since(l.epoch()).unwrap().as_secs() / (365 * 86_400);
        assert!(years >= 60, "{years}");
    }

    #[test]
    fn twitter_capacity_is_4096000_per_second() {
        assert_eq!(Layout::TWITTER.ids_per_second_per_worker(), 4_096_000.0);
        assert_eq!(Layout::SONYFLAKE.ids_per_second_per_worker(), 25_600.0);
    }

    #[test]
    fn rejects_bad_layouts() {
        let e = UNIX_EPOCH;
        let ms = Duration::from_millis(1);
        assert!(Layout::new(0, 10, 12, ms, e).is_err());
        assert!(Layout::new(41, 11, 12, ms, e).is_err()); // 64 bits
        assert!(Layout::new(20, 33, 0, ms, e).is_err());
        assert!(Layout::new(41, 10, 12, Duration::ZERO, e).is_err());
        assert!(Layout::new(41, 10, 12, ms, e - Duration::from_secs(1)).is_err());
        assert!(Layout::new(63, 0, 0, ms, e).is_err()); // past 2554
        assert!(Layout::new(30, 1, 32, Duration::from_nanos(1), e).is_ok());
    }

    #[test]
    fn decode_rejects_ids_wider_than_the_layout() {
        let id = Id::try_from(1u64 << 53).unwrap();
        assert!(matches!(
            Layout::JS_SAFE.decode(id),
            Err(Error::OutOfRange { what: "id", .. })
        ));
        assert!(Layout::TWITTER.decode(id).is_ok());
    }

    #[test]
    fn compose_range_checks_each_part() {
        let l = Layout::TWITTER;
        assert!(l.compose(l.max_timestamp() + 1, 0, 0).is_err());
        assert!(l.compose(0, 1024, 0).is_err());
        assert!(l.compose(0, 0, 4096).is_err());
        assert_eq!(l.compose(1, 0, 0).unwrap().as_u64(), 1 << 22);
        assert_eq!(l.compose(0, 1, 0).unwrap().as_u64(), 1 << 12);
    }

    #[test]
    fn time_of_is_epoch_plus_ticks() {
        let l = Layout::SONYFLAKE;
        assert_eq!(l.time_of(0).unwrap(), l.epoch());
        assert_eq!(l.time_of(100).unwrap(), l.epoch() + Duration::from_secs(1));
    }
}
