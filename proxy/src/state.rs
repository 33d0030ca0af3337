//! The proxy's shared state and [`Proxy`], its handle: an `ArcSwap` snapshot of routes and upstreams, swapped whole on reload.
use crate::config::{backends_problem, BackendConfig, ClusterConfig, Config, ServerConfig};
use crate::error::{Error, Result};
use crate::fleet::status::FleetStatus;
use crate::fleet::verdicts::Verdicts;
use crate::health;
use crate::metrics::Metrics;
use crate::request_id::RequestIds;
use crate::upstream::Upstream;
use arc_swap::ArcSwap;
use parking_lot::Mutex;
use ringleader_idgen::{Generator, WorkerId};
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, OnceLock};
use std::time::{Instant, SystemTime};
use tokio::sync::watch;

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
    /// The route for a request to `host` (the absolute-form authority, else `Host`)
    /// and `path`. An absolute-form request is routed as its host would be in
    /// `Host`: RFC 9112 §3.2.2, "A server MUST accept the absolute-form in requests";
    /// it goes to a configured upstream either way, never to the host it names.
    pub(crate) fn route(&self, host: Option<&str>, path: &str) -> Option<&Route> {
        self.routes.iter().find(|r| {
            let host_ok = match &r.host {
                Some(h) => host.is_some_and(|x| x.eq_ignore_ascii_case(h)),
                None => true,
            };
            host_ok && path.starts_with(&*r.prefix)
        })
    }
}

#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) state: ArcSwap<State>,
    pub(crate) metrics: Metrics,
    /// X-Request-Id values.
    pub(crate) ids: RequestIds,
    /// The cluster link's state (with a `[cluster]` table at start).
    pub(crate) fleet: Option<Arc<FleetStatus>>,
    /// This proxy's health verdicts, the fleet's, and the backends out of a ring.
    pub(crate) verdicts: Arc<Verdicts>,
    /// Bumped by each applied reload (the cluster link starts and stops watchers).
    pub(crate) reloaded: watch::Sender<u64>,
    /// The `[cluster]` table the process started with (changes need a restart).
    pub(crate) running_cluster: Option<ClusterConfig>,
    /// Health-check tasks per upstream.
    pub(crate) health_tasks: Mutex<BTreeMap<String, health::Checks>>,
    /// Serialises the read-modify-write of `state` by reloads and membership updates.
    apply: Mutex<()>,
    /// The last membership applied per cluster-fed upstream: a reload re-applies it.
    membership: Mutex<BTreeMap<String, Vec<BackendConfig>>>,
    pub(crate) started: Instant,
    /// The `[server]` settings the process started with: those a reload cannot
    /// change ([`restart_settings`]) keep these values until a restart.
    pub(crate) running: Running,
    /// The last reload attempt (none yet: `None`), for /status and the status page.
    pub(crate) last_reload: Mutex<Option<LastReload>>,
}

/// The `[server]` settings the process started with (it derefs to them), and the
/// addresses its listeners are bound to.
#[derive(Debug)]
pub(crate) struct Running {
    pub(crate) config: ServerConfig,
    /// Set by `Server::bind` once bound (a port 0 shows here as the port picked);
    /// unset for a `Proxy` without a server.
    pub(crate) bound: OnceLock<BoundAddrs>,
}

impl std::ops::Deref for Running {
    type Target = ServerConfig;
    fn deref(&self) -> &ServerConfig {
        &self.config
    }
}

/// The addresses `Server::bind` bound, for `/status` `listeners`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BoundAddrs {
    pub(crate) listen: SocketAddr,
    pub(crate) admin: SocketAddr,
    pub(crate) tls_listen: Option<SocketAddr>,
    pub(crate) redirect_listen: Option<SocketAddr>,
}

/// When the last reload was attempted and how it ended.
#[derive(Debug, Clone)]
pub(crate) struct LastReload {
    /// Wall-clock time, for display.
    pub(crate) at: SystemTime,
    /// The same instant on the monotonic clock, for "how long ago".
    pub(crate) since: Instant,
    /// Why it was rejected (`None`: applied).
    pub(crate) error: Option<String>,
}

impl LastReload {
    fn now(error: Option<&Error>) -> LastReload {
        LastReload {
            at: SystemTime::now(),
            since: Instant::now(),
            error: error.map(ToString::to_string),
        }
    }
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
    // Unset optional settings show as "none". `[server.http2]` and the certificates of
    // `[[server.tls]]` are read per connection from the live config: not listed.
    let opt = |v: Option<String>| v.unwrap_or_else(|| "none".to_string());
    let addr = |a: Option<SocketAddr>| opt(a.map(|a| a.to_string()));
    [
        (
            "server.listen",
            running.listen.to_string(),
            new.listen.to_string(),
        ),
        (
            "server.tls_listen",
            addr(running.tls_listen),
            addr(new.tls_listen),
        ),
        (
            "server.redirect_listen",
            addr(running.redirect_listen),
            addr(new.redirect_listen),
        ),
        (
            // The port the redirects name is fixed when the redirect listener starts.
            "server.redirect_port",
            opt(running.redirect_port.map(|p| p.to_string())),
            opt(new.redirect_port.map(|p| p.to_string())),
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

/// `excluded`: per upstream, backends left out of its balancer (objectively down).
fn build_state(
    config: Config,
    prev: Option<&State>,
    excluded: &BTreeMap<String, BTreeSet<String>>,
) -> Result<State> {
    // Dry-run every balancer first so a failure leaves the running state untouched.
    for up in config.upstreams.values() {
        Upstream::check(up)?;
    }
    let mut upstreams = BTreeMap::new();
    for (name, cfg) in &config.upstreams {
        let old = prev.and_then(|p| p.upstreams.get(name)).map(|u| &**u);
        let up = match excluded.get(name) {
            Some(out) => Upstream::build_excluding(name, cfg, old, Some(out))?,
            None => Upstream::build(name, cfg, old)?,
        };
        upstreams.insert(name.clone(), Arc::new(up));
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
    ///
    /// With a `[cluster]` table, X-Request-Id takes its worker id from a lease in the
    /// cluster (`RINGLEADER_WORKER_ID` is ignored), once [`crate::Server::bind`] has
    /// connected; until then, and whenever the lease is not confirmed, request IDs are
    /// random UUIDs.
    pub fn new(config: Config) -> Result<Proxy> {
        let ids = if config.cluster.is_some() {
            if std::env::var_os(ringleader_idgen::WORKER_ID_ENV).is_some() {
                tracing::info!(
                    "{} is ignored: with [cluster], the X-Request-Id worker id is leased from etcd",
                    ringleader_idgen::WORKER_ID_ENV
                );
            }
            RequestIds::leased()
        } else {
            let (worker, defaulted) = worker_id()?;
            RequestIds::local(
                Generator::new(ringleader_idgen::Layout::TWITTER, worker)?,
                defaulted,
            )
        };
        let fleet = config
            .cluster
            .is_some()
            .then(|| Arc::new(FleetStatus::default()));
        let running_cluster = config.cluster.clone();
        let running = Running {
            config: config.server.clone(),
            bound: OnceLock::new(),
        };
        let state = build_state(config, None, &BTreeMap::new())?;
        let shared = Arc::new(Shared {
            running,
            state: ArcSwap::from_pointee(state),
            metrics: Metrics::default(),
            ids,
            fleet,
            verdicts: Arc::new(Verdicts::default()),
            reloaded: watch::Sender::new(0),
            running_cluster,
            health_tasks: Mutex::new(BTreeMap::new()),
            apply: Mutex::new(()),
            membership: Mutex::new(BTreeMap::new()),
            started: Instant::now(),
            last_reload: Mutex::new(None),
        });
        let p = Proxy { shared };
        p.restart_health(None);
        Ok(p)
    }

    /// Bring the health checks of every upstream, or of `only` that one, in line with
    /// the state: tasks of unchanged backends keep running (and counting), see
    /// [`health::sync_checks`]; those of upstreams gone stop.
    fn restart_health(&self, only: Option<&str>) {
        let state = self.shared.state.load_full();
        let mut tasks = self.shared.health_tasks.lock();
        tasks.retain(|name, ts| {
            let gone = only.is_none_or(|o| o == name) && !state.upstreams.contains_key(name);
            if gone {
                ts.abort_all();
            }
            !gone
        });
        for (name, up) in &state.upstreams {
            if only.is_none_or(|o| o == name) {
                let checks = tasks.entry(name.clone()).or_default();
                health::sync_checks(up, &self.shared.verdicts, checks);
            }
        }
    }

    /// Swap in a new config: routes and upstreams change atomically, requests
    /// in flight finish on the old ones, backends still configured keep their
    /// statistics. `listen`, `admin`, `workers`, `max_connections` and
    /// `shutdown_grace` need a restart: a reload that changes them applies the rest,
    /// logs a warning per setting and lists them in /status (`restart_required`);
    /// the other server settings apply to new connections.
    ///
    /// Upstreams with `backends_from = "cluster"` keep the last membership applied
    /// to them by [`Proxy::set_backends`] (none yet: no backends).
    pub fn reload(&self, mut config: Config) -> Result<()> {
        let _apply = self.shared.apply.lock();
        let old = self.shared.state.load_full();
        let pending = self.pending_for(&config);
        {
            let membership = self.shared.membership.lock();
            for (name, up) in &mut config.upstreams {
                if up.backends_from.is_some() {
                    up.backends = membership.get(name).cloned().unwrap_or_default();
                }
            }
        }
        let excluded = self.shared.verdicts.all_excluded();
        let state = match build_state(config, Some(&old), &excluded) {
            Ok(s) => s,
            Err(e) => {
                self.shared.metrics.reload_failures.fetch_add(1, Relaxed);
                self.note_reload(Some(&e));
                return Err(e);
            }
        };
        self.shared.state.store(Arc::new(state));
        self.restart_health(None);
        self.shared.reloaded.send_modify(|n| *n += 1);
        self.shared.metrics.reloads.fetch_add(1, Relaxed);
        self.note_reload(None);
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

    /// Replace the backends of `upstream`, one with `backends_from = "cluster"`,
    /// with `backends` (its membership, as the cluster watcher sees it): the next
    /// snapshot is built and swapped in exactly as a reload does, so backends that
    /// stay (same address) keep their statistics (in flight, EWMA, health,
    /// ejections) and warm connections; requests in flight finish on the old
    /// snapshot. An empty list leaves the upstream without backends (503). The
    /// membership is kept, and a later reload re-applies it.
    ///
    /// ```no_run
    /// # fn f(proxy: &ringleader_proxy::Proxy) -> Result<(), ringleader_proxy::Error> {
    /// use ringleader_proxy::BackendConfig;
    /// proxy.set_backends("app", vec![
    ///     BackendConfig::new("127.0.0.1:9101", 1, Some("alpha")),
    ///     BackendConfig::new("127.0.0.1:9102", 2, None),
    /// ])?;
    /// # Ok(()) }
    /// ```
    pub fn set_backends(&self, upstream: &str, backends: Vec<BackendConfig>) -> Result<()> {
        if let Some((_, problem)) = backends_problem(&backends) {
            return Err(Error::InvalidBackend {
                upstream: upstream.to_string(),
                problem: problem.to_string(),
            });
        }
        let _apply = self.shared.apply.lock();
        let old = self.shared.state.load_full();
        let mut config = Config::clone(&old.config);
        let Some(up) = config
            .upstreams
            .get_mut(upstream)
            .filter(|u| u.backends_from.is_some())
        else {
            return Err(Error::NotClusterFed {
                upstream: upstream.to_string(),
            });
        };
        up.backends = backends.clone();
        let n = backends.len();
        let state = build_state(config, Some(&old), &self.shared.verdicts.all_excluded())?;
        self.shared
            .membership
            .lock()
            .insert(upstream.to_string(), backends);
        self.shared.state.store(Arc::new(state));
        self.restart_health(Some(upstream));
        self.shared.metrics.membership_updates.fetch_add(1, Relaxed);
        tracing::info!(upstream, backends = n, "membership applied");
        Ok(())
    }

    /// Leave `excluded` (backends the fleet holds objectively down) out of `upstream`'s
    /// balancer, and put back those no longer in it: the snapshot is rebuilt as a
    /// membership change does (backends that stay keep their statistics), and the
    /// health checks go on, of every configured backend. Whether anything changed.
    pub(crate) fn set_excluded(&self, upstream: &str, excluded: BTreeSet<String>) -> Result<bool> {
        let _apply = self.shared.apply.lock();
        let before = self.shared.verdicts.excluded(upstream);
        if !self.shared.verdicts.set_excluded(upstream, excluded) {
            return Ok(false);
        }
        let old = self.shared.state.load_full();
        let all = self.shared.verdicts.all_excluded();
        match build_state(Config::clone(&old.config), Some(&old), &all) {
            Ok(state) => {
                // Backends put back start fresh (up): this proxy's own down verdict
                // applies to them at once, not at their next check.
                let now = self.shared.verdicts.excluded(upstream);
                let readded: BTreeSet<String> = before.difference(&now).cloned().collect();
                if let Some(up) = state.upstreams.get(upstream) {
                    health::apply_own_verdicts(up, &self.shared.verdicts, &readded);
                }
                self.shared.state.store(Arc::new(state));
                Ok(true)
            }
            Err(e) => {
                self.shared.verdicts.set_excluded(upstream, before);
                Err(e)
            }
        }
    }

    /// `[server]` settings of the loaded config that differ from the running ones
    /// and wait for a restart.
    pub(crate) fn pending_restart(&self) -> Vec<PendingRestart> {
        self.pending_for(&self.shared.state.load().config)
    }

    /// The settings of `config` that differ from the running ones and need a restart:
    /// [`restart_settings`], and the `[cluster]` table.
    fn pending_for(&self, config: &Config) -> Vec<PendingRestart> {
        let mut pending = restart_settings(&self.shared.running, &config.server);
        if config.cluster != self.shared.running_cluster {
            pending.push(PendingRestart {
                setting: "cluster",
                running: describe_cluster(&self.shared.running_cluster),
                configured: describe_cluster(&config.cluster),
            });
        }
        pending
    }

    /// Record a reload attempt for /status (`error`: why it was rejected).
    fn note_reload(&self, error: Option<&Error>) {
        *self.shared.last_reload.lock() = Some(LastReload::now(error));
    }

    /// Drop the membership kept for `upstream` (no longer fed from the cluster).
    pub(crate) fn forget_membership(&self, upstream: &str) {
        self.shared.membership.lock().remove(upstream);
    }

    /// Load, validate and apply a config file; on any error the old config
    /// keeps serving and the error is logged and returned.
    pub fn reload_file(&self, path: &Path) -> Result<()> {
        self.reload_file_with(path, |_| {})
    }

    /// [`Proxy::reload_file`], with `adjust` applied to the loaded config before it
    /// is applied: the settings a command line overrides (`ringleader serve --listen`)
    /// stay overridden across reloads, so they do not show as `restart_required`.
    /// Logged and counted in `ringleader_reload_failures_total` as `reload_file` is.
    ///
    /// ```no_run
    /// # fn f(proxy: &ringleader_proxy::Proxy) -> Result<(), ringleader_proxy::Error> {
    /// let listen = "127.0.0.1:8081".parse().unwrap();
    /// proxy.reload_file_with(std::path::Path::new("fleet.toml"), |c| c.server.listen = listen)?;
    /// # Ok(()) }
    /// ```
    pub fn reload_file_with(&self, path: &Path, adjust: impl FnOnce(&mut Config)) -> Result<()> {
        let res = Config::load(path).and_then(|mut c| {
            adjust(&mut c);
            self.reload(c)
        });
        if let Err(e) = &res {
            if matches!(e, Error::Config { .. } | Error::ReadConfig { .. }) {
                self.shared.metrics.reload_failures.fetch_add(1, Relaxed);
            }
            self.note_reload(Some(e));
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

    /// Shutdown of the upgraded connections (WebSocket and other tunnels), which
    /// outlive the client connections hyper serves: let them finish for up to the
    /// running `shutdown_grace`, then close the rest. Returns how many were closed.
    /// [`crate::Server`] runs it beside the drain of its connections.
    pub(crate) async fn drain_tunnels(&self) -> u64 {
        let n = self
            .shared
            .metrics
            .tunnels
            .drain(self.shared.running.shutdown_grace)
            .await;
        if n > 0 {
            tracing::warn!(
                "shutdown grace elapsed with {n} upgraded connections open: closed them"
            );
        }
        n
    }

    /// Stop the health checks (done by [`crate::Server`] on shutdown).
    pub fn stop_health(&self) {
        for (_, mut ts) in std::mem::take(&mut *self.shared.health_tasks.lock()) {
            ts.abort_all();
        }
    }
}

/// `[cluster]` as `restart_required` shows it: every setting a reload does not apply.
fn describe_cluster(c: &Option<ClusterConfig>) -> String {
    match c {
        None => "none".to_string(),
        Some(c) => format!(
            "{} namespace {} lease_ttl {} health_quorum {}",
            c.endpoints
                .iter()
                .map(|e| e.get_ref().as_str())
                .collect::<Vec<_>>()
                .join(","),
            c.namespace.get_ref(),
            humantime::format_duration(c.lease_ttl),
            c.health_quorum
                .as_ref()
                .map_or_else(|| "majority".to_string(), |q| q.get_ref().to_string()),
        ),
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
        new.access_log = crate::AccessLog::Text;
        // Read per connection: applied live too.
        new.http2.cleartext = false;
        new.http2.max_concurrent_streams = 7;
        new.http2.keepalive_interval = std::time::Duration::from_secs(2);
        new.http2.keepalive_timeout = std::time::Duration::from_secs(3);
        assert_eq!(restart_settings(&running, &new), []);
        new.listen = "127.0.0.1:1".parse().unwrap();
        new.admin = "127.0.0.1:2".parse().unwrap();
        new.tls_listen = Some("127.0.0.1:3".parse().unwrap());
        new.redirect_listen = Some("127.0.0.1:4".parse().unwrap());
        new.redirect_port = Some(8443);
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
                "server.tls_listen none -> 127.0.0.1:3",
                "server.redirect_listen none -> 127.0.0.1:4",
                "server.redirect_port none -> 8443",
                "server.admin 127.0.0.1:9090 -> 127.0.0.1:2",
                "server.workers 0 -> 2",
                "server.max_connections 10000 -> 5",
                "server.shutdown_grace 30s -> 1s 500ms",
            ]
        );
    }

    #[test]
    fn a_changed_health_quorum_shows_in_the_cluster_restart_line() {
        let cluster = |quorum: &str| {
            let text = format!(
                "[cluster]\nendpoints = [\"http://127.0.0.1:2379\"]\n{quorum}\n\
                 [upstream.app]\nbackends = [{{ addr = \"127.0.0.1:1\" }}]\n"
            );
            crate::Config::from_toml_str(&text, "t.toml")
                .unwrap()
                .cluster
        };
        let majority = cluster("");
        let two = cluster("health_quorum = 2");
        assert_ne!(majority, two, "a reload compares the whole [cluster]");
        assert_eq!(
            describe_cluster(&majority),
            "http://127.0.0.1:2379 namespace default lease_ttl 10s health_quorum majority"
        );
        assert_eq!(
            describe_cluster(&two),
            "http://127.0.0.1:2379 namespace default lease_ttl 10s health_quorum 2"
        );
        assert_eq!(describe_cluster(&None), "none");
    }
}
