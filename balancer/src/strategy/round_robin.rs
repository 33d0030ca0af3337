//! Round robin: an atomic cursor over the backend list.
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
}
