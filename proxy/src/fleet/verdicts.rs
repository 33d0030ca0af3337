//! Health verdicts of this proxy and of the fleet: the check tasks write their own
//! (subjective) verdict per backend here, the cluster link publishes them and writes
//! back what the fleet concluded (objective verdicts, quorum, the backends taken out of
//! a consistent-hash ring), for the state, /status and /metrics to read.
use parking_lot::Mutex;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use tokio::sync::watch;

/// A Prometheus label value, escaped (text format: backslash, quote, newline).
fn label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// (upstream, backend id) -> down?
pub(crate) type Own = BTreeMap<(String, String), bool>;

/// Where the objective verdicts come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Source {
    /// No `[cluster]`: only this proxy's verdicts, and placement never changes on them.
    #[default]
    Standalone,
    /// A quorum of the fleet's live proxies (etcd answers).
    Fleet,
    /// etcd unreachable: this proxy's own verdicts stand in for the fleet's.
    Local,
}

impl Source {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Source::Standalone => "standalone",
            Source::Fleet => "fleet",
            Source::Local => "local",
        }
    }
}

/// What the fleet concluded about one upstream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct UpstreamView {
    /// Live proxies (publishing verdicts on the upstream).
    pub live: usize,
    /// Down verdicts a backend needs to be objectively down.
    pub needed: u32,
    /// backend id -> proxy id -> down? (every proxy's subjective verdict)
    pub by_proxy: BTreeMap<String, BTreeMap<String, bool>>,
    /// Backends objectively down.
    pub down: BTreeSet<String>,
}

/// The fleet's side, as last computed.
#[derive(Debug, Clone, Default)]
pub(crate) struct FleetView {
    pub source: Source,
    /// This proxy's id in the verdict keys (none before its lease).
    pub proxy_id: Option<String>,
    /// The quorum setting: `None` = a majority of the live proxies.
    pub quorum: Option<u32>,
    pub upstreams: BTreeMap<String, UpstreamView>,
}

/// This proxy's verdicts and the fleet's conclusions.
#[derive(Debug)]
pub(crate) struct Verdicts {
    own: watch::Sender<Own>,
    /// Backends taken out of each consistent-hash upstream's ring (objectively down).
    excluded: Mutex<BTreeMap<String, BTreeSet<String>>>,
    view: Mutex<FleetView>,
}

impl Default for Verdicts {
    fn default() -> Verdicts {
        Verdicts {
            own: watch::Sender::new(Own::new()),
            excluded: Mutex::new(BTreeMap::new()),
            view: Mutex::new(FleetView::default()),
        }
    }
}

impl Verdicts {
    /// Record this proxy's verdict on a backend (a check task, after each check).
    pub(crate) fn set_own(&self, upstream: &str, backend: &str, down: bool) {
        self.own.send_if_modified(|own| {
            let key = (upstream.to_string(), backend.to_string());
            let changed = own.get(&key) != Some(&down);
            if changed {
                own.insert(key, down);
            }
            changed
        });
    }

    /// This proxy's verdict on a backend, if it checked it.
    pub(crate) fn own_verdict(&self, upstream: &str, backend: &str) -> Option<bool> {
        self.own
            .borrow()
            .get(&(upstream.to_string(), backend.to_string()))
            .copied()
    }

    /// Forget verdicts on backends of `upstream` not in `keep` (no longer configured).
    pub(crate) fn retain(&self, upstream: &str, keep: &BTreeSet<&str>) {
        self.own.send_if_modified(|own| {
            let before = own.len();
            own.retain(|(u, b), _| u != upstream || keep.contains(b.as_str()));
            own.len() != before
        });
    }

    /// All of this proxy's verdicts.
    pub(crate) fn own(&self) -> Own {
        self.own.borrow().clone()
    }

    /// Wakes on each change of this proxy's verdicts.
    pub(crate) fn subscribe(&self) -> watch::Receiver<Own> {
        self.own.subscribe()
    }

    /// The backends out of `upstream`'s ring.
    pub(crate) fn excluded(&self, upstream: &str) -> BTreeSet<String> {
        self.excluded
            .lock()
            .get(upstream)
            .cloned()
            .unwrap_or_default()
    }

    /// All exclusions (for building a state snapshot).
    pub(crate) fn all_excluded(&self) -> BTreeMap<String, BTreeSet<String>> {
        self.excluded.lock().clone()
    }

    /// Set `upstream`'s exclusions; whether they changed.
    pub(crate) fn set_excluded(&self, upstream: &str, set: BTreeSet<String>) -> bool {
        let mut ex = self.excluded.lock();
        let old = ex.get(upstream).cloned().unwrap_or_default();
        if old == set {
            return false;
        }
        if set.is_empty() {
            ex.remove(upstream);
        } else {
            ex.insert(upstream.to_string(), set);
        }
        true
    }

    pub(crate) fn view(&self) -> FleetView {
        self.view.lock().clone()
    }

    pub(crate) fn set_view(&self, view: FleetView) {
        *self.view.lock() = view;
    }

    /// `/status`: per upstream, the source, quorum, live proxies and each backend's
    /// verdicts (this proxy's, every proxy's, the objective one, in the ring or not).
    pub(crate) fn status(&self, upstream: &str, checked: bool) -> serde_json::Value {
        if !checked {
            return serde_json::Value::Null;
        }
        let view = self.view.lock().clone();
        let own = self.own.borrow().clone();
        let excluded = self.excluded(upstream);
        let up = view.upstreams.get(upstream).cloned().unwrap_or_default();
        let mut backends = serde_json::Map::new();
        let ids: BTreeSet<&String> = own
            .keys()
            .filter(|(u, _)| u == upstream)
            .map(|(_, b)| b)
            .chain(up.by_proxy.keys())
            .collect();
        let word = |down: bool| if down { "down" } else { "up" };
        for id in ids {
            let mine = own.get(&(upstream.to_string(), id.clone())).copied();
            let objective = match view.source {
                Source::Standalone => None,
                _ => Some(up.down.contains(id)),
            };
            backends.insert(
                id.clone(),
                serde_json::json!({
                    "subjective": mine.map(word),
                    "objective": objective.map(word),
                    "in_ring": !excluded.contains(id),
                    "proxies": up.by_proxy.get(id).map(|m| m
                        .iter()
                        .map(|(p, d)| (p.clone(), serde_json::json!(word(*d))))
                        .collect::<serde_json::Map<_, _>>()),
                }),
            );
        }
        serde_json::json!({
            "source": view.source.as_str(),
            "quorum": match view.source { Source::Standalone => None, _ => Some(up.needed) },
            "live_proxies": up.live,
            "backends": backends,
        })
    }

    /// `/metrics` lines: each backend's subjective and objective verdict, the quorum,
    /// the live proxies, and whether the verdicts are local. Backends are labelled as
    /// in every per-backend family: `backend` is `name_of(upstream, id)` (its name, else
    /// its address) and `addr` its address (the id).
    pub(crate) fn metrics(&self, out: &mut String, name_of: impl Fn(&str, &str) -> String) {
        let view = self.view.lock().clone();
        let own = self.own.borrow().clone();
        let _ = writeln!(
            out,
            "# HELP ringleader_backend_subjective_down This proxy's own verdict on a backend (1 = down).\n\
             # TYPE ringleader_backend_subjective_down gauge"
        );
        for ((u, b), down) in &own {
            let _ = writeln!(
                out,
                "ringleader_backend_subjective_down{{upstream=\"{}\",backend=\"{}\",addr=\"{}\"}} {}",
                label(u),
                label(&name_of(u, b)),
                label(b),
                u8::from(*down)
            );
        }
        if view.source == Source::Standalone {
            return;
        }
        let _ = writeln!(
            out,
            "# HELP ringleader_backend_objective_down The fleet's verdict on a backend: 1 when a quorum of live proxies says down.\n\
             # TYPE ringleader_backend_objective_down gauge"
        );
        for (u, b) in own.keys() {
            let down = view.upstreams.get(u).is_some_and(|v| v.down.contains(b));
            let _ = writeln!(
                out,
                "ringleader_backend_objective_down{{upstream=\"{}\",backend=\"{}\",addr=\"{}\"}} {}",
                label(u),
                label(&name_of(u, b)),
                label(b),
                u8::from(down)
            );
        }
        let _ = writeln!(
            out,
            "# HELP ringleader_health_quorum Down verdicts a backend needs to be objectively down.\n\
             # TYPE ringleader_health_quorum gauge"
        );
        for (u, v) in &view.upstreams {
            let _ = writeln!(
                out,
                "ringleader_health_quorum{{upstream=\"{}\"}} {}",
                label(u),
                v.needed
            );
        }
        let _ = writeln!(
            out,
            "# HELP ringleader_health_live_proxies Proxies publishing verdicts on an upstream.\n\
             # TYPE ringleader_health_live_proxies gauge"
        );
        for (u, v) in &view.upstreams {
            let _ = writeln!(
                out,
                "ringleader_health_live_proxies{{upstream=\"{}\"}} {}",
                label(u),
                v.live
            );
        }
        let _ = writeln!(
            out,
            "# HELP ringleader_health_verdicts_local 1 while etcd is unreachable and this proxy's own verdicts stand in for the fleet's.\n\
             # TYPE ringleader_health_verdicts_local gauge\n\
             ringleader_health_verdicts_local {}",
            u8::from(view.source == Source::Local)
        );
    }
}
