//! The proxy's shared state and [`Proxy`], its handle: an `ArcSwap` snapshot of routes and upstreams, swapped whole on reload.
use crate::config::Config;
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
        let state = build_state(config, None)?;
        let shared = Arc::new(Shared {
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
    /// statistics. Listener addresses, `workers` and `max_connections` need a
    /// restart; the other server settings apply to new connections.
    pub fn reload(&self, config: Config) -> Result<()> {
        let old = self.shared.state.load_full();
        if config.server.listen != old.config.server.listen
            || config.server.admin != old.config.server.admin
        {
            tracing::warn!("listen/admin addresses changed; they take effect after a restart");
        }
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
        Ok(())
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
