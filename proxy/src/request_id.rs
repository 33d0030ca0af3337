//! X-Request-Id values: Snowflake IDs from a local worker id or from one leased in the
//! cluster, and a random UUID, logged and counted, whenever no Snowflake ID can be issued.
use crate::metrics::Metrics;
use arc_swap::ArcSwapOption;
use http::HeaderValue;
use ringleader_cluster::LeasedGenerator;
use ringleader_idgen::{Generator, NextId};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

/// Where request IDs come from.
#[derive(Debug)]
enum Source {
    /// A worker id of this process: `RINGLEADER_WORKER_ID`, or 0 (`defaulted`).
    Local { ids: Generator, defaulted: bool },
    /// A worker id leased from the cluster; `None` until the lease is taken.
    Leased(ArcSwapOption<LeasedGenerator>),
}

/// The proxy's request-ID issuer.
///
/// When no Snowflake ID can be issued (the cluster lease is not taken yet or not
/// confirmed: the generator is fenced, or the generator failed), the request gets a
/// random version-4 UUID instead (RFC 9562 §5.4: 122 random bits, what Envoy puts in
/// `x-request-id`), never a Snowflake ID that another proxy may also issue and never a
/// constant. The switch to and from UUIDs is logged once each way and every UUID is
/// counted (`ringleader_request_id_fallbacks_total`).
#[derive(Debug)]
pub(crate) struct RequestIds {
    source: Source,
    /// UUIDs are being issued (for the log lines on each switch).
    falling_back: AtomicBool,
}

/// What /status says about request IDs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IdStatus {
    /// The Snowflake worker id, when one is held.
    pub worker: Option<u32>,
    /// `env`, `default` (worker 0: RINGLEADER_WORKER_ID unset) or `cluster`.
    pub source: &'static str,
    /// UUIDs are being issued now.
    pub fallback: bool,
    /// The cluster lease's state (`held`, `fenced`, `lost`), when there is one.
    pub lease: Option<String>,
}

impl RequestIds {
    /// IDs from a local generator; `defaulted`: its worker id was not configured.
    pub fn local(ids: Generator, defaulted: bool) -> RequestIds {
        RequestIds {
            source: Source::Local { ids, defaulted },
            falling_back: AtomicBool::new(false),
        }
    }

    /// IDs from a worker id leased in the cluster, once [`RequestIds::set_leased`] gives it.
    pub fn leased() -> RequestIds {
        RequestIds {
            source: Source::Leased(ArcSwapOption::empty()),
            falling_back: AtomicBool::new(false),
        }
    }

    /// Issue from `g` from now on (ignored for a local source).
    pub fn set_leased(&self, g: LeasedGenerator) {
        if let Source::Leased(slot) = &self.source {
            slot.store(Some(std::sync::Arc::new(g)));
        }
    }

    /// Give the leased worker id back (on shutdown): the next holder may start at once.
    pub async fn release(&self) {
        if let Source::Leased(slot) = &self.source {
            if let Some(g) = slot.swap(None) {
                match std::sync::Arc::try_unwrap(g) {
                    Ok(g) => {
                        if let Err(e) = g.release().await {
                            tracing::warn!(error = %e, "could not release the request-ID worker lease; it expires after its TTL");
                        }
                    }
                    // A request still holds it: dropping the last reference releases it.
                    Err(g) => drop(g),
                }
            }
        }
    }

    /// The next X-Request-Id: a Snowflake ID when one can be issued, else a random UUID.
    /// Never blocks the runtime's thread: when the generator must wait (sequence
    /// exhausted, clock stepped back within its tolerance), the task sleeps.
    pub async fn next(&self, metrics: &Metrics) -> HeaderValue {
        let issued = match &self.source {
            Source::Local { ids, .. } => snowflake(|| ids.try_next_id()).await,
            Source::Leased(slot) => match slot.load_full() {
                Some(g) => snowflake(|| g.try_next_id()).await,
                None => Err(Why::NoLease),
            },
        };
        match issued {
            Ok(id) => {
                if self.falling_back.swap(false, Relaxed) {
                    tracing::info!("X-Request-Id is a Snowflake ID again");
                }
                HeaderValue::from(id)
            }
            Err(why) => {
                metrics.request_id_fallbacks.fetch_add(1, Relaxed);
                if !self.falling_back.swap(true, Relaxed) {
                    tracing::warn!(
                        reason = %why,
                        "no Snowflake request ID can be issued ({why}): X-Request-Id is a random \
                         UUID until one can (counted in ringleader_request_id_fallbacks_total)"
                    );
                }
                uuid_v4(rand::random())
            }
        }
    }

    /// Worker id, source and fallback state, for /status.
    pub fn status(&self) -> IdStatus {
        let fallback = self.falling_back.load(Relaxed);
        match &self.source {
            Source::Local { ids, defaulted } => IdStatus {
                worker: Some(ids.worker()),
                source: if *defaulted { "default" } else { "env" },
                fallback,
                lease: None,
            },
            Source::Leased(slot) => {
                let g = slot.load();
                IdStatus {
                    worker: g.as_ref().map(|g| g.worker()),
                    source: "cluster",
                    fallback,
                    lease: g
                        .as_ref()
                        .map(|g| format!("{:?}", g.status().state).to_lowercase()),
                }
            }
        }
    }
}

/// Why no Snowflake ID was issued.
#[derive(Debug)]
enum Why {
    /// The cluster lease is not taken (yet).
    NoLease,
    /// The generator refused (fenced: lease not confirmed; or a clock problem).
    Refused(ringleader_idgen::Error),
}

impl std::fmt::Display for Why {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Why::NoLease => f.write_str("the worker id lease is not taken yet"),
            Why::Refused(e) => write!(f, "{e}"),
        }
    }
}

/// Poll `try_next` until it issues, sleeping while it asks to wait.
async fn snowflake(
    try_next: impl Fn() -> Result<NextId, ringleader_idgen::Error>,
) -> Result<u64, Why> {
    loop {
        match try_next().map_err(Why::Refused)? {
            NextId::Ready(id) => return Ok(u64::from(id)),
            NextId::Wait(d) => tokio::time::sleep(d).await,
        }
    }
}

/// `bits` as a version-4 UUID (RFC 9562 §5.4: version 0b0100 in bits 48-51, variant
/// 0b10 in bits 64-65), hyphenated lowercase hex.
fn uuid_v4(bits: u128) -> HeaderValue {
    let v = (bits & !(0xF << 76) & !(0b11 << 62)) | (0x4 << 76) | (0b10 << 62);
    let h = format!("{v:032x}");
    let s = format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    );
    HeaderValue::from_str(&s).unwrap_or(HeaderValue::from_static(
        "00000000-0000-4000-8000-000000000000",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringleader_idgen::{Layout, WorkerId};
    use std::collections::HashSet;

    #[test]
    fn uuid_has_version_4_and_the_rfc_variant() {
        assert_eq!(uuid_v4(0), "00000000-0000-4000-8000-000000000000");
        assert_eq!(uuid_v4(u128::MAX), "ffffffff-ffff-4fff-bfff-ffffffffffff");
        let u = uuid_v4(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef);
        assert_eq!(u, "01234567-89ab-4def-8123-456789abcdef");
    }

    #[tokio::test]
    async fn a_fenced_generator_falls_back_to_distinct_uuids_then_recovers() {
        let ids = RequestIds::local(
            Generator::new(Layout::TWITTER, WorkerId::new(3)).unwrap(),
            false,
        );
        let m = Metrics::default();
        let first = ids.next(&m).await;
        assert!(first.to_str().unwrap().parse::<u64>().is_ok(), "{first:?}");
        assert!(!ids.status().fallback);

        let Source::Local { ids: g, .. } = &ids.source else {
            unreachable!()
        };
        g.fence().close();
        let mut seen = HashSet::new();
        for _ in 0..1000 {
            let v = ids.next(&m).await;
            let s = v.to_str().unwrap();
            assert_eq!((s.len(), &s[14..15]), (36, "4"), "{s}");
            assert!(seen.insert(s.to_string()), "duplicate request id {s}");
        }
        assert_eq!(m.request_id_fallbacks.load(Relaxed), 1000);
        assert!(ids.status().fallback);

        g.fence().allow_until(u64::MAX);
        let again = ids.next(&m).await;
        assert!(
            again.to_str().unwrap().parse::<u64>().unwrap()
                > first.to_str().unwrap().parse().unwrap()
        );
        assert_eq!(
            ids.status(),
            IdStatus {
                worker: Some(3),
                source: "env",
                fallback: false,
                lease: None
            }
        );
    }

    #[tokio::test]
    async fn without_a_lease_ids_are_uuids() {
        let ids = RequestIds::leased();
        let m = Metrics::default();
        let a = ids.next(&m).await;
        let b = ids.next(&m).await;
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(
            ids.status(),
            IdStatus {
                worker: None,
                source: "cluster",
                fallback: true,
                lease: None
            }
        );
    }
}
