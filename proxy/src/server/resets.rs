//! HTTP/2 streams a client resets before their answers: a connection doing it for most of its streams gets GOAWAY.
//!
//! hyper's h2 server bounds resets of streams it has not handed to the proxy yet
//! (`max_pending_accept_reset_streams`); a client that paces its resets gets each
//! stream taken up, forwarded to a backend and cancelled, at the cost of a backend
//! request each (rapid reset, CVE-2023-44487). Envoy's answer, followed here: once a
//! connection has opened enough streams, it is drained with GOAWAY when more than
//! half of them were reset early (Envoy: `overload.premature_reset_total_stream_count`,
//! 500, and the 50% rule, release 1.24.11). The proxy checks from 100 streams on,
//! since every stream it takes up costs a backend a request; "early" is before the
//! response head, where Envoy counts resets within a second.
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use tokio::sync::Notify;

/// Streams a connection must have opened before its resets are judged.
pub(super) const MIN_STREAMS: u64 = 100;

/// One connection's count of streams reset before their answers.
#[derive(Debug, Default)]
pub(super) struct PrematureResets {
    reset: AtomicU64,
    /// Notified once the connection crossed the line.
    abusive: Notify,
}

impl PrematureResets {
    /// Count one stream reset before its answer, out of `streams` opened so far.
    fn note(&self, streams: u64) {
        let reset = self.reset.fetch_add(1, Relaxed) + 1;
        if too_many(reset, streams) {
            self.abusive.notify_one();
        }
    }

    /// Resolves when the connection reset too many of its streams early.
    pub(super) async fn abusive(&self) {
        self.abusive.notified().await;
    }

    /// A guard for one stream's answer: dropped before [`Answering::answered`],
    /// it counts the stream as reset early.
    pub(super) fn answering<'a>(&'a self, streams: &'a AtomicU64) -> Answering<'a> {
        Answering {
            resets: self,
            streams,
            done: false,
        }
    }
}

/// Whether `reset` early resets out of `streams` streams is abuse.
fn too_many(reset: u64, streams: u64) -> bool {
    streams >= MIN_STREAMS && reset * 2 > streams
}

/// See [`PrematureResets::answering`].
pub(super) struct Answering<'a> {
    resets: &'a PrematureResets,
    streams: &'a AtomicU64,
    done: bool,
}

impl Answering<'_> {
    /// The answer is ready: the stream was not reset early.
    pub(super) fn answered(mut self) {
        self.done = true;
    }
}

impl Drop for Answering<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.resets.note(self.streams.load(Relaxed));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn more_than_half_reset_early_from_the_hundredth_stream_on() {
        assert!(!too_many(99, 99), "too few streams to judge");
        assert!(too_many(100, 100));
        assert!(!too_many(50, 100), "half is not more than half");
        assert!(too_many(51, 100));
        assert!(!too_many(400, 1000));
    }

    #[tokio::test]
    async fn a_dropped_answer_counts_and_an_answered_one_does_not() {
        let resets = PrematureResets::default();
        let streams = AtomicU64::new(MIN_STREAMS);
        for _ in 0..50 {
            resets.answering(&streams).answered();
            drop(resets.answering(&streams));
        }
        assert_eq!(resets.reset.load(Relaxed), 50);
        drop(resets.answering(&streams)); // 51 of 100
        tokio::time::timeout(std::time::Duration::from_secs(5), resets.abusive())
            .await
            .expect("notified");
    }
}
