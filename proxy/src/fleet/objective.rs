//! Objective down across a fleet (issue #16): publish this proxy's own verdicts, watch
//! every proxy's, and take a backend that a quorum of the live proxies holds down out
//! of each consistent-hash ring, on every proxy at once. While etcd is unreachable, the
//! fleet's last verdicts stand for up to the lease TTL (a member restart or a short
//! break changes nothing), then each proxy's own verdicts stand in for the fleet's (one
//! WARN, `"source": "local"`).
use super::verdicts::{FleetView, Own, Source, UpstreamView};
use super::{chain, RETRY};
use crate::state::{Proxy, State};
use ringleader_balancer::StrategyKind;
use ringleader_cluster::{
    live_proxies, objective, Cluster, OwnVerdicts, Quorum, UpstreamVerdicts, VerdictPublisher,
    VerdictWatch,
};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// Longest wait between two looks at the fleet (the watch and this proxy's verdicts
/// wake the loop at once; this bounds noticing that etcd went away).
const POLL: Duration = Duration::from_millis(250);

/// Whether the fleet's verdicts apply: while the watch is connected, and for `grace`
/// (the cluster's lease TTL) after it broke, the last fleet view is kept, so a short
/// break (an etcd member restart, a brief partition) does not make every proxy rebuild
/// its rings from its own verdicts and back a second later: the very disagreement
/// objective down exists to prevent. A proxy's verdicts expire with its lease after the
/// same TTL, so the last view is no staler than the fleet's own rule allows.
#[derive(Debug)]
struct Grace {
    grace: Duration,
    /// When the watch was first seen broken (`None` while connected).
    broken_since: Option<Instant>,
}

impl Grace {
    fn new(grace: Duration) -> Grace {
        Grace {
            grace,
            broken_since: None,
        }
    }

    /// Whether the fleet's verdicts apply at `now`: `connected`, the watch's state;
    /// `had_fleet`, whether they applied until now (a proxy that never had a fleet
    /// view, or already fell back, has no last view to keep).
    fn fleet(&mut self, connected: bool, had_fleet: bool, now: Instant) -> bool {
        if connected {
            self.broken_since = None;
            return true;
        }
        let since = *self.broken_since.get_or_insert(now);
        had_fleet && now.saturating_duration_since(since) < self.grace
    }
}

/// Run the fleet's verdicts for `proxy` until aborted.
pub(crate) async fn run(
    proxy: Proxy,
    ccfg: ringleader_cluster::ClusterConfig,
    quorum: Option<u32>,
) {
    let verdicts = proxy.shared.verdicts.clone();
    let mut own_rx = verdicts.subscribe();
    let mut reloads = proxy.shared.reloaded.subscribe();
    let quorum_rule = quorum.map_or(Quorum::Majority, Quorum::Fixed);
    let mut cluster: Option<Cluster> = None;
    let mut publisher: Option<VerdictPublisher> = None;
    let mut watch: Option<VerdictWatch> = None;
    let mut source = Source::Standalone;
    let mut all_down_warned: BTreeSet<String> = BTreeSet::new();
    let mut grace = Grace::new(ccfg.lease_ttl);
    loop {
        // Connect, lease, watch: whatever is missing (each attempt is bounded by the
        // request timeout).
        if cluster.is_none() {
            cluster = Cluster::connect(&ccfg).await.ok();
        }
        if let Some(c) = &cluster {
            if publisher.is_none() {
                match c.publish_verdicts().await {
                    Ok(p) => publisher = Some(p),
                    Err(e) => {
                        tracing::debug!(error = %chain(&e), "cannot take the verdicts' lease yet")
                    }
                }
            }
            if watch.is_none() {
                match c.watch_verdicts().await {
                    Ok(w) => watch = Some(w),
                    Err(e) => tracing::debug!(error = %chain(&e), "cannot watch the verdicts yet"),
                }
            }
        }
        let state = proxy.shared.state.load_full();
        let own = verdicts.own();
        if let Some(p) = &publisher {
            p.publish(publishable(&state, &own));
        }
        // The watch keeps its last verdicts while it is broken: they stand for the grace.
        let connected = watch.as_ref().is_some_and(VerdictWatch::is_connected);
        let keep = grace.fleet(
            connected,
            source == Source::Fleet,
            tokio::time::Instant::now().into_std(),
        );
        if !connected && keep && source == Source::Fleet {
            tracing::debug!("etcd unreachable: the fleet's last verdicts stand for now");
        }
        let fleet = watch.as_ref().filter(|_| keep);
        let now = if fleet.is_some() {
            Source::Fleet
        } else {
            Source::Local
        };
        if now != source {
            match now {
                Source::Local => tracing::warn!(
                    endpoints = ?ccfg.endpoints,
                    "etcd unreachable: health verdicts are this proxy's own until it answers \
                     (a backend it sees down leaves its consistent-hash rings)"
                ),
                _ if source == Source::Local => {
                    tracing::info!("etcd answers: health verdicts are the fleet's again")
                }
                _ => {}
            }
            source = now;
        }
        let fleet_verdicts = fleet.map(|w| w.verdicts());
        let mut view = FleetView {
            source,
            proxy_id: publisher.as_ref().map(VerdictPublisher::proxy_id),
            quorum,
            upstreams: BTreeMap::new(),
        };
        for (name, up) in &state.upstreams {
            if up.config.health.is_none() {
                continue;
            }
            let me = view.proxy_id.clone().unwrap_or_else(|| "self".into());
            let uv: UpstreamVerdicts = match &fleet_verdicts {
                Some(v) => v.upstreams.get(name).cloned().unwrap_or_default(),
                // Local: this proxy's own verdicts, as a fleet of one.
                None => own
                    .iter()
                    .filter(|((u, _), _)| u == name)
                    .map(|((_, b), d)| (b.clone(), BTreeMap::from([(me.clone(), *d)])))
                    .collect(),
            };
            let live = live_proxies(&uv);
            let rule = if fleet_verdicts.is_some() {
                quorum_rule
            } else {
                Quorum::Majority
            };
            let o = objective(&uv, &live, rule);
            let configured: BTreeSet<String> =
                up.authorities.iter().map(|(id, _)| id.clone()).collect();
            let down: BTreeSet<String> = o.down.intersection(&configured).cloned().collect();
            let (out, all_down) = out_of_ring(up.strategy, &down, &configured);
            if !all_down {
                all_down_warned.remove(name);
            } else if all_down_warned.insert(name.clone()) {
                tracing::warn!(upstream = %name, "every backend is objectively down: the ring keeps them all");
            }
            let before = verdicts.excluded(name);
            if before != out {
                for b in out.difference(&before) {
                    tracing::warn!(upstream = %name, backend = %b, live = o.live.len(), quorum = o.needed, source = source.as_str(),
                        "backend {b} objectively down ({} of {} live proxies agree): out of the ring on every proxy", o.needed, o.live.len());
                }
                for b in before.difference(&out) {
                    tracing::info!(upstream = %name, backend = %b, source = source.as_str(), "backend {b} no longer objectively down: back in the ring");
                }
                if let Err(e) = proxy.set_excluded(name, out) {
                    tracing::warn!(upstream = %name, error = %e, "objective verdicts not applied");
                }
            }
            view.upstreams.insert(
                name.clone(),
                UpstreamView {
                    live: o.live.len(),
                    needed: o.needed,
                    by_proxy: uv,
                    down,
                },
            );
        }
        // Upstreams gone or no longer checked: nothing out of their rings.
        for name in state.upstreams.keys() {
            if !view.upstreams.contains_key(name) && !verdicts.excluded(name).is_empty() {
                let _ = proxy.set_excluded(name, BTreeSet::new());
            }
        }
        verdicts.set_view(view);
        let missing = cluster.is_none() || publisher.is_none() || watch.is_none();
        tokio::select! {
            r = own_rx.changed() => if r.is_err() { return },
            r = reloads.changed() => if r.is_err() { return },
            _ = changed(&mut watch) => {}
            _ = tokio::time::sleep(if missing { RETRY } else { POLL }) => {}
        }
    }
}

/// The backends to take out of an upstream's balancer: the objectively down ones of a
/// consistent-hash upstream (every proxy must agree on key -> backend; other strategies
/// never change their set on verdicts), but none when that would be all of them (no
/// ring at all: it keeps them all, and `true` says so).
fn out_of_ring(
    strategy: StrategyKind,
    down: &BTreeSet<String>,
    configured: &BTreeSet<String>,
) -> (BTreeSet<String>, bool) {
    let out: BTreeSet<String> = down.intersection(configured).cloned().collect();
    if strategy != StrategyKind::ConsistentHash || out.is_empty() {
        (BTreeSet::new(), false)
    } else if out.len() == configured.len() {
        (BTreeSet::new(), true)
    } else {
        (out, false)
    }
}

/// The next change of the fleet's verdicts (never, without a watch).
async fn changed(watch: &mut Option<VerdictWatch>) {
    match watch {
        Some(w) => {
            if w.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending().await,
    }
}

/// This proxy's verdicts on backends still configured in checked upstreams.
fn publishable(state: &State, own: &Own) -> OwnVerdicts {
    own.iter()
        .filter(|((u, b), _)| {
            state
                .upstreams
                .get(u)
                .is_some_and(|up| up.config.health.is_some() && up.index_of(b).is_some())
        })
        .map(|(k, d)| (k.clone(), *d))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(v: &[&str]) -> BTreeSet<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_short_etcd_break_keeps_the_fleets_verdicts_for_the_grace() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut g = Grace::new(s(5));
        assert!(g.fleet(true, false, t0));
        // Broken: the last fleet view stands for the grace...
        assert!(g.fleet(false, true, t0 + s(1)));
        assert!(g.fleet(false, true, t0 + s(5)));
        // ...then this proxy's own verdicts, until the watch is back.
        assert!(!g.fleet(false, true, t0 + s(6)));
        assert!(!g.fleet(false, false, t0 + s(7)));
        assert!(g.fleet(true, false, t0 + s(8)));
        // A new break counts from its own start.
        assert!(g.fleet(false, true, t0 + s(20)));
        assert!(g.fleet(false, true, t0 + s(24)));
        assert!(!g.fleet(false, true, t0 + s(25)));
        // Never connected: no fleet view to keep.
        let mut g = Grace::new(s(5));
        assert!(!g.fleet(false, false, t0));
    }

    #[test]
    fn only_consistent_hash_rings_lose_backends_and_never_all_of_them() {
        let all = set(&["a", "b", "c"]);
        let ch = StrategyKind::ConsistentHash;
        assert_eq!(out_of_ring(ch, &set(&["b"]), &all), (set(&["b"]), false));
        assert_eq!(out_of_ring(ch, &set(&[]), &all), (set(&[]), false));
        // Every backend down: the ring keeps them all, and says so.
        assert_eq!(out_of_ring(ch, &all, &all), (set(&[]), true));
        // Verdicts on backends no longer configured are ignored.
        assert_eq!(
            out_of_ring(ch, &set(&["b", "gone"]), &all),
            (set(&["b"]), false)
        );
        assert_eq!(
            out_of_ring(ch, &set(&["gone"]), &set(&[])),
            (set(&[]), false)
        );
        for other in [StrategyKind::RoundRobin, StrategyKind::LeastConnections] {
            assert_eq!(out_of_ring(other, &set(&["b"]), &all), (set(&[]), false));
        }
    }
}
