//! Round robin: a shared cursor (relaxed load and store) over the backend list.
use super::{first_from, Cursor, Filter, Strategy};
use crate::{Backend, RequestCtx, StrategyKind};
use std::sync::Arc;

/// Each backend in turn; an unavailable one is skipped for the next available.
#[derive(Debug)]
pub struct RoundRobin {
    cursor: Cursor,
}

impl RoundRobin {
    /// A round robin over `n` backends, starting at the first.
    pub fn new(n: usize) -> Self {
        Self {
            cursor: Cursor::new(n),
        }
    }
}

impl Strategy for RoundRobin {
    fn kind(&self) -> StrategyKind {
        StrategyKind::RoundRobin
    }

    #[inline]
    fn pick(&self, backends: &[Arc<Backend>], _: &RequestCtx<'_>, filter: Filter) -> Option<usize> {
        let i = self.cursor.next();
        if filter.admits(backends.get(i)?) {
            return Some(i);
        }
        first_from(backends, i + 1, filter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::testing::backends;

    #[test]
    fn cycles_and_skips_unavailable() {
        let (bs, _clock) = backends(&[1, 1, 1]);
        let rr = RoundRobin::new(bs.len());
        let ctx = RequestCtx::new();
        let seq: Vec<_> = (0..6)
            .map(|_| rr.pick(&bs, &ctx, Filter::Available).unwrap())
            .collect();
        assert_eq!(seq, vec![0, 1, 2, 0, 1, 2]);
        let p = crate::HealthPolicy { rise: 1, fall: 1 };
        bs[1].report_check(false, &p);
        let seq: Vec<_> = (0..4)
            .map(|_| rr.pick(&bs, &ctx, Filter::Available).unwrap())
            .collect();
        assert_eq!(seq, vec![0, 2, 2, 0]);
        bs[0].report_check(false, &p);
        bs[2].report_check(false, &p);
        assert_eq!(rr.pick(&bs, &ctx, Filter::Available), None);
        assert!(rr.pick(&bs, &ctx, Filter::Any).is_some());
    }

    #[test]
    fn racing_threads_stay_in_range_and_even() {
        // The cursor advances without a locked RMW: racing threads may share a turn,
        // but every position stays in range and the shares stay even.
        let (bs, _clock) = backends(&[1, 1, 1]);
        let rr = RoundRobin::new(bs.len());
        let counts: Vec<[usize; 3]> = std::thread::scope(|s| {
            let workers: Vec<_> = (0..2)
                .map(|_| {
                    s.spawn(|| {
                        let mut c = [0usize; 3];
                        for _ in 0..100_000 {
                            c[rr.pick(&bs, &RequestCtx::new(), Filter::Available).unwrap()] += 1;
                        }
                        c
                    })
                })
                .collect();
            workers.into_iter().map(|w| w.join().unwrap()).collect()
        });
        for i in 0..3 {
            let share = (counts[0][i] + counts[1][i]) as f64 / 200_000.0;
            assert!((share - 1.0 / 3.0).abs() < 0.05, "{counts:?}");
        }
    }
}
