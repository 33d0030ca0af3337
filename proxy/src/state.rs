//! The proxy's shared state and [`Proxy`], its handle: an `ArcSwap` snapshot of routes and upstreams, swapped whole on reload.
use crate::config::{Config, ServerConfig};
use crate::error::{Error, Result};
use crate::health;
use crate::metrics::Metrics;
use crate::upstream::Upstream;
use arc_swap::ArcSwap;
use parking_lot::Mutex;
use ringleader_idgen::{Generator, WorkerId};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Instant;
use tokio::task::JoinHandle;

/// One route of the snapshot.
#[derive(Debug)]
pub(crate) struct Route {
    host: Option<Box<str>>,
    prefix: Box<str>,
    pub(crate) upstream: Arc<Upstream>,
}

/// Everything a request needs, swapped whole on reload.
#[derive(Debug)]
pub(crate) struct State {
    pub(crate) config: Arc<Config>,
    routes: Vec<Route>,
    pub(crate) upstreams: BTreeMap<String, Arc<Upstream>>,
}

impl State {
    pub(crate) fn route(&self, host: Option<&str>, path: &str, absolute: bool) -> Option<&Route> {
        self.routes.iter().find(|r| {
            let host_ok = match &r.host {
                Some(h) => host.is_some_and(|x| x.eq_ignore_ascii_case(h)),
                // An absolute-form request must name a host a route serves explicitly.
                None => !absolute,
            };
            host_ok && path.starts_with(&*r.prefix)
        })
    }
}

#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) state: ArcSwap<State>,
    pub(crate) metrics: Metrics,
    pub(crate) ids: Generator,
    /// `RINGLEADER_WORKER_ID` was unset and the request-ID worker defaulted to 0.
    pub(crate) worker_defaulted: bool,
    health_tasks: Mutex<Vec<JoinHandle<()>>>,
    pub(crate) started: Instant,
    /// The `[server]` settings the process started with: those a reload cannot
    /// change ([`restart_settings`]) keep these values until a restart.
    pub(crate) running: ServerConfig,
}

/// A `[server]` setting that a reload changed but that applies only after a restart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PendingRestart {
    /// `server.NAME`.
    pub setting: &'static str,
    /// The value in effect.
    pub running: String,
    /// The value in the config now loaded.
    pub configured: String,
}

/// The `[server]` settings fixed at start (read once by [`crate::Server::bind`] or by the
/// binary before the runtime exists) whose value in `new` differs from the running one.
/// The others (`header_read_timeout`, `request_timeout`, `max_header_bytes`,
/// `access_log`) are read per connection or per request and apply live.
pub(crate) fn restart_settings(running: &ServerConfig, new: &ServerConfig) -> Vec<PendingRestart> {
    let grace = |d| humantime::format_duration(d).to_string();
    [
        (
            "server.listen",
            running.listen.to_string(),
            new.listen.to_string(),
        ),
        (
            "server.admin",
            running.admin.to_string(),
            new.admin.to_string(),
        ),
        (
            "server.workers",
            running.workers.to_string(),
            new.workers.to_string(),
        ),
        (
            "server.max_connections",
            running.max_connections.to_string(),
            new.max_connections.to_string(),
        ),
        (
            "server.shutdown_grace",
            grace(running.shutdown_grace),
            grace(new.shutdown_grace),
        ),
    ]
    .into_iter()
    .filter(|(_, old, new)| old != new)
    .map(|(setting, running, configured)| PendingRestart {
        setting,
        running,
        configured,
    })
    .collect()
}

/// A handle on a running proxy's state: reload it, read its status and metrics.
/// Cheap to clone.
///
/// ```no_run
/// # async fn f(cfg: ringleader_proxy::Config) -> Result<(), ringleader_proxy::Error> {
/// let server = ringleader_proxy::Server::bind(cfg).await?;
/// let proxy = server.proxy().clone();
/// proxy.reload_file(std::path::Path::new("ringleader.toml"))?; // what SIGHUP does
/// println!("{}", proxy.status_json());
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Proxy {
    pub(crate) shared: Arc<Shared>,
}

fn build_state(config: Config, prev: Option<&State>) -> Result<State> {
    // Dry-run every balancer first so a failure leaves the running state untouched.
    for up in config.upstreams.values() {
        Upstream::check(up)?;
    }
    let mut upstreams = BTreeMap::new();
    for (name, cfg) in &config.upstreams {
        let old = prev.and_then(|p| p.upstreams.get(name)).map(|u| &**u);
        upstreams.insert(name.clone(), Arc::new(Upstream::build(name, cfg, old)?));
    }
    let routes = config
        .routes
        .iter()
        .filter_map(|r| {
            Some(Route {
                host: r.host.as_deref().map(Into::into),
                prefix: r.path_prefix.as_str().into(),
                upstream: upstreams.get(r.upstream.get_ref())?.clone(),
            })
        })
        .collect();
    Ok(State {
        config: Arc::new(config),
        routes,
        upstreams,
    })
}

/// Worker id of the request-ID generator: `RINGLEADER_WORKER_ID`, or 0 with a
/// warning when it is unset (replicas that all default issue the same IDs), and
/// whether it was defaulted (shown in /status).
fn worker_id() -> Result<(WorkerId, bool)> {
    Ok(match WorkerId::from_env_if_set()? {
        Some(w) => (w, false),
        None => {
            tracing::warn!(
                "{} is not set: X-Request-Id uses worker id 0, and proxies that all do so \
                 issue the same request IDs; give each proxy its own worker id",
                ringleader_idgen::WORKER_ID_ENV
            );
            (WorkerId::new(0), true)
        }
    })
}
impl Proxy {
    /// Build the proxy state from a validated config and start its health
    /// checks. Must be called inside a tokio runtime.
    pub fn new(config: Config) -> Result<Proxy> {
        let (worker, worker_defaulted) = worker_id()?;
        let ids = Generator::new(ringleader_idgen::Layout::TWITTER, worker)?;
        let running = config.server.clone();
        let state = build_state(config, None)?;
        let shared = Arc::new(Shared {
            running,
            state: ArcSwap::from_pointee(state),
            metrics: Metrics::default(),
            ids,
            worker_defaulted,
            health_tasks: Mutex::new(Vec::new()),
            started: Instant::now(),
        });
        let p = Proxy { shared };
        p.restart_health();
        Ok(p)
    }

    fn restart_health(&self) {
        let state = self.shared.state.load_full();
        let mut tasks = self.shared.health_tasks.lock();
        for t in tasks.drain(..) {
            t.abort();
        }
        for up in state.upstreams.values() {
            tasks.extend(health::spawn_checks(up));
        }
    }

    /// Swap in a new config: routes and upstreams change atomically, requests
    /// in flight finish on the old ones, backends still configured keep their
    /// statistics. `listen`, `admin`, `workers`, `max_connections` and
    /// `shutdown_grace` need a restart: a reload that changes them applies the rest,
    /// logs a warning per setting and lists them in /status (`restart_required`);
    /// the other server settings apply to new connections.
    pub fn reload(&self, config: Config) -> Result<()> {
        let old = self.shared.state.load_full();
        let pending = restart_settings(&self.shared.running, &config.server);
        let state = match build_state(config, Some(&old)) {
            Ok(s) => s,
            Err(e) => {
                self.shared.metrics.reload_failures.fetch_add(1, Relaxed);
                return Err(e);
            }
        };
        self.shared.state.store(Arc::new(state));
        self.restart_health();
        self.shared.metrics.reloads.fetch_add(1, Relaxed);
        tracing::info!("config reloaded");
        for p in &pending {
            tracing::warn!(
                setting = p.setting,
                running = %p.running,
                configured = %p.configured,
                "{} changed {} -> {} but is not applied by a reload; restart to apply",
                p.setting,
                p.running,
                p.configured
            );
        }
        Ok(())
    }

    /// `[server]` settings of the loaded config that differ from the running ones
    /// and wait for a restart.
    pub(crate) fn pending_restart(&self) -> Vec<PendingRestart> {
        restart_settings(
            &self.shared.running,
            &self.shared.state.load().config.server,
        )
    }

    /// Load, validate and apply a config file; on any error the old config
    /// keeps serving and the error is logged and returned.
    pub fn reload_file(&self, path: &Path) -> Result<()> {
        let res = Config::load(path).and_then(|c| self.reload(c));
        if let Err(e) = &res {
            if matches!(e, Error::Config { .. } | Error::ReadConfig { .. }) {
                self.shared.metrics.reload_failures.fetch_add(1, Relaxed);
            }
            tracing::warn!(error = %e, "reload rejected; the previous config keeps serving");
        }
        res
    }

    /// The config currently serving.
    pub fn config(&self) -> Arc<Config> {
        self.shared.state.load().config.clone()
    }

    /// Proxy-wide counters.
    pub fn metrics(&self) -> &Metrics {
        &self.shared.metrics
    }

    /// Stop the health checks (done by [`crate::Server`] on shutdown).
    pub fn stop_health(&self) {
        for t in self.shared.health_tasks.lock().drain(..) {
            t.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_fixed_at_start_are_the_ones_reported() {
        let running = ServerConfig::default();
        let mut new = running.clone();
        // Applied live: not reported.
        new.header_read_timeout = std::time::Duration::from_secs(1);
        new.request_timeout = std::time::Duration::from_secs(1);
        new.max_header_bytes = 1024;
        new.access_log = true;
        assert_eq!(restart_settings(&running, &new), []);
        new.listen = "127.0.0.1:1".parse().unwrap();
        new.admin = "127.0.0.1:2".parse().unwrap();
        new.workers = 2;
        new.max_connections = 5;
        new.shutdown_grace = std::time::Duration::from_millis(1500);
        let got: Vec<String> = restart_settings(&running, &new)
            .iter()
            .map(|p| format!("{} {} -> {}", p.setting, p.running, p.configured))
            .collect();
        assert_eq!(
            got,
            [
                "server.listen 127.0.0.1:8080 -> 127.0.0.1:1",
                "server.admin 127.0.0.1:9090 -> 127.0.0.1:2",
                "server.workers 0 -> 2",
                "server.max_connections 10000 -> 5",
                "server.shutdown_grace 30s -> 1s 500ms",
            ]
        );
    }
}
