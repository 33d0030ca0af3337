//! An upstream: its balancer (kept across reloads), keep-alive connection pools, retry policy and budget.
use crate::config::{HashKey, RetryOn, UpstreamConfig, UpstreamProtocol};
use crate::error::{Error, Result};
use crate::pool::{BackendConns, H2Target, TlsTo};
use http::uri::Authority;
use ringleader_balancer::{
    BackendSpec, Balancer, BalancerConfig, EjectionPolicy, HealthPolicy, StrategyKind,
};
use rustls_pki_types::ServerName;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicI64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

/// How a log message names a backend: `alpha (127.0.0.1:9001)`, or only its address
/// when it has no name.
pub(crate) struct Named<'a> {
    /// Its name, else its address.
    pub label: &'a str,
    /// Its address.
    pub addr: &'a str,
}

impl std::fmt::Display for Named<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.label == self.addr {
            f.write_str(self.addr)
        } else {
            write!(f, "{} ({})", self.label, self.addr)
        }
    }
}

/// When and how often to retry.
#[derive(Debug, Clone)]
pub(crate) struct RetryPolicy {
    /// Retries after the first try.
    pub attempts: u32,
    /// Retry on transport failures before a response head.
    pub on_connect_error: bool,
    /// Retry when no response head came within `request_timeout`.
    pub on_timeout: bool,
    /// Retry on a 5xx answer.
    pub on_5xx: bool,
    /// Largest request body kept in memory for a retry.
    pub max_body_bytes: usize,
}

/// Retry budget: every request deposits `percent / 100` of a token, every
/// retry takes a whole one. The balance starts full at [`RetryBudget::RESERVE`]
/// tokens and never exceeds it, so a quiet proxy can still retry a little
/// and a retry storm is held to `percent` of the traffic (the token-bucket
/// form of Finagle's RetryBudget / Envoy's retry budgets).
#[derive(Debug)]
pub(crate) struct RetryBudget {
    /// Balance in thousandths of a token.
    milli: AtomicI64,
    deposit: i64,
}

impl RetryBudget {
    /// Tokens the budget starts with, and its cap.
    pub const RESERVE: i64 = 100;

    /// A budget that lets retries add `percent` of the request rate (0 = no retries).
    pub fn new(percent: u32) -> RetryBudget {
        let deposit = i64::from(percent) * 10;
        let start = if deposit == 0 {
            0
        } else {
            Self::RESERVE * 1000
        };
        RetryBudget {
            milli: AtomicI64::new(start),
            deposit,
        }
    }

    /// Count one original request.
    pub fn deposit(&self) {
        // Read first: in steady state the bucket is full and this stays a plain load.
        if self.deposit == 0 || self.milli.load(Relaxed) >= Self::RESERVE * 1000 {
            return;
        }
        let _ = self.milli.fetch_update(Relaxed, Relaxed, |b| {
            Some((b + self.deposit).min(Self::RESERVE * 1000))
        });
    }

    /// Whole retry tokens in the budget now (at most [`RetryBudget::RESERVE`]).
    pub fn tokens(&self) -> f64 {
        self.milli.load(Relaxed) as f64 / 1000.0
    }

    /// Take one retry token; `false` when the budget is spent.
    pub fn try_withdraw(&self) -> bool {
        self.deposit > 0
            && self
                .milli
                .fetch_update(Relaxed, Relaxed, |b| (b >= 1000).then_some(b - 1000))
                .is_ok()
    }
}

/// One configured upstream, as the request path sees it.
#[derive(Debug)]
pub(crate) struct Upstream {
    /// Its name in the config.
    pub name: String,
    /// The balancer; the same `Arc` survives reloads and membership changes so
    /// backend stats do too. `None` while the upstream has no backends (one fed
    /// from the cluster before its first membership, or with no members): it
    /// answers 503.
    pub lb: Option<Arc<Balancer>>,
    /// Keep-alive connection pools, aligned with `authorities`.
    pub conns: Vec<Arc<BackendConns>>,
    /// Retry policy.
    pub retry: RetryPolicy,
    /// Retry budget (kept across reloads).
    pub budget: Arc<RetryBudget>,
    /// What `consistent_hash` hashes on.
    pub hash_key: Option<HashKey>,
    /// `(backend id, authority)` in config order.
    pub authorities: Vec<(String, Authority)>,
    /// What status, metrics and logs call each backend (its name, else its
    /// address), aligned with `authorities`.
    pub labels: Vec<Box<str>>,
    /// Strategy name.
    pub strategy: StrategyKind,
    /// The config it was built from.
    pub config: UpstreamConfig,
}

/// The TLS client config of a `protocol = "h2"` upstream: the roots of its `tls_ca`
/// (no built-in roots: backends behind a proxy usually have a private CA), TLS 1.2
/// and 1.3, ALPN `h2` only (RFC 9113 §3.2).
fn tls_client(cfg: &UpstreamConfig) -> Result<Option<tokio_rustls::TlsConnector>> {
    if cfg.protocol != UpstreamProtocol::H2 {
        return Ok(None);
    }
    let ca = cfg.tls_ca.as_ref().map(|c| c.get_ref());
    let read_err = |source: std::io::Error| Error::ReadConfig {
        path: ca.cloned().unwrap_or_default(),
        source,
    };
    // Validation requires `tls_ca` with "h2"; without one no certificate is
    // trusted (fail closed), never a fall back to cleartext.
    let roots = match ca {
        Some(ca) => crate::tls::load_ca(ca).map_err(|problem| {
            read_err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                problem.to_string(),
            ))
        })?,
        None => rustls::RootCertStore::empty(),
    };
    let mut tls = rustls::ClientConfig::builder_with_provider(crate::tls::provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| read_err(std::io::Error::other(e)))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Some(tokio_rustls::TlsConnector::from(Arc::new(tls))))
}

/// How HTTP/2 reaches the backend at `addr` (`None` for `protocol = "http1"`).
fn h2_target(
    cfg: &UpstreamConfig,
    addr: &str,
    tls: Option<&tokio_rustls::TlsConnector>,
) -> Option<H2Target> {
    if !cfg.protocol.is_h2() {
        return None;
    }
    let tls = match tls {
        None => None,
        Some(connector) => {
            let host = cfg.tls_server_name.as_ref().map_or_else(
                || crate::headers::host_without_port(addr).trim_matches(['[', ']']),
                |n| n.get_ref().as_str(),
            );
            let name = ServerName::try_from(host.to_string()).ok()?;
            Some(TlsTo {
                connector: connector.clone(),
                name,
            })
        }
    };
    Some(H2Target {
        addr: addr.to_string(),
        tls,
    })
}

/// Backend specs and balancer config for an upstream config.
pub(crate) fn balancer_parts(
    cfg: &UpstreamConfig,
) -> Result<(Vec<BackendSpec>, BalancerConfig, StrategyKind)> {
    let strategy = cfg.strategy;
    let specs = cfg
        .backends
        .iter()
        .map(|b| BackendSpec {
            id: b.addr.get_ref().clone(),
            addr: b.addr.get_ref().clone(),
            weight: b.weight,
        })
        .collect();
    let health = cfg.health.clone().unwrap_or_default();
    let p = &cfg.passive;
    // hash_compat: backends placed by address and weight as nginx / libketama do
    // (issue #18); the balancer's type is named by the same lowercase names.
    let hash_compat = match &cfg.hash_compat {
        Some(c) => Some(
            c.get_ref()
                .name()
                .parse()
                .map_err(|e| Error::Balancer(ringleader_balancer::Error::Ring(format!("{e}"))))?,
        ),
        None => None,
    };
    let config = BalancerConfig {
        strategy,
        hash_compat,
        health: HealthPolicy {
            rise: health.rise,
            fall: health.fall,
        },
        ejection: EjectionPolicy {
            consecutive_failures: p.consecutive_failures,
            base_time: p.ejection_time,
            max_time: p.max_ejection_time,
            max_percent: p.max_ejection_percent,
        },
        panic_mode: p.panic_mode,
        // An unsampled backend counts as fast while idle, so latency-aware
        // strategies try every backend once (one request at a time until it
        // answers: the balancer penalizes an unmeasured backend with a request
        // in flight); with the balancer's 30 ms default a proxy whose backends
        // answer in well under 30 ms would send everything to the first
        // backend it measured and never learn about the others.
        default_rtt: Duration::from_micros(1),
        ..BalancerConfig::default()
    };
    Ok((specs, config, strategy))
}

impl Upstream {
    /// Build from config. With `prev` (the same upstream in the config being
    /// replaced) the balancer is updated in place, keeping backend stats.
    ///
    /// Call [`Upstream::check`] for every upstream first: `update` is applied
    /// here and is not undone if a later upstream fails.
    pub fn build(name: &str, cfg: &UpstreamConfig, prev: Option<&Upstream>) -> Result<Upstream> {
        Upstream::build_excluding(name, cfg, prev, None)
    }

    /// [`Upstream::build`], with the backends in `excluded` (objectively down) still
    /// configured (pools, health checks) but out of the balancer, unless that would
    /// leave it empty.
    pub fn build_excluding(
        name: &str,
        cfg: &UpstreamConfig,
        prev: Option<&Upstream>,
        excluded: Option<&BTreeSet<String>>,
    ) -> Result<Upstream> {
        let (mut specs, bconfig, strategy) = balancer_parts(cfg)?;
        if let Some(ex) = excluded.filter(|ex| specs.iter().any(|s| !ex.contains(&s.id))) {
            specs.retain(|s| !ex.contains(&s.id));
        }
        let budget = match prev {
            Some(p) if p.config.retry.budget_percent == cfg.retry.budget_percent => {
                p.budget.clone()
            }
            _ => Arc::new(RetryBudget::new(cfg.retry.budget_percent)),
        };
        let lb = match prev.and_then(|p| p.lb.as_ref()) {
            _ if specs.is_empty() => None,
            Some(lb) => {
                lb.update(specs, bconfig)?;
                Some(lb.clone())
            }
            None => Some(Arc::new(Balancer::new(specs, bconfig)?)),
        };
        let tls = tls_client(cfg)?;
        let mut authorities = Vec::with_capacity(cfg.backends.len());
        let mut conns = Vec::with_capacity(cfg.backends.len());
        let mut labels = Vec::with_capacity(cfg.backends.len());
        for b in &cfg.backends {
            let addr = b.addr.get_ref();
            let Ok(a) = addr.parse::<Authority>() else {
                continue;
            };
            // Warm connections of backends that stay are kept; with new timeouts or
            // protocol, a new pool still counts the tunnels open to the backend.
            let old = prev.and_then(|p| p.index_of(addr).map(|i| &p.conns[i]));
            let same_protocol = prev.is_some_and(|p| {
                p.config.protocol == cfg.protocol
                    && p.config.tls_ca == cfg.tls_ca
                    && p.config.tls_server_name == cfg.tls_server_name
            });
            let pool = match old {
                Some(c)
                    if same_protocol
                        && c.connect_timeout() == cfg.connect_timeout
                        && c.idle_timeout() == cfg.idle_timeout =>
                {
                    c.clone()
                }
                Some(c) => Arc::new(
                    BackendConns::succeeding(c, cfg.connect_timeout, cfg.idle_timeout)
                        .with_h2(h2_target(cfg, addr, tls.as_ref())),
                ),
                None => Arc::new(
                    BackendConns::new(addr, cfg.connect_timeout, cfg.idle_timeout)
                        .with_h2(h2_target(cfg, addr, tls.as_ref())),
                ),
            };
            authorities.push((addr.clone(), a));
            labels.push(b.label().into());
            conns.push(pool);
        }
        let on = |o: RetryOn| cfg.retry.on.contains(&o);
        let retry = RetryPolicy {
            attempts: cfg.retry.attempts,
            on_connect_error: on(RetryOn::ConnectError),
            on_timeout: on(RetryOn::Timeout),
            on_5xx: on(RetryOn::Status5xx),
            max_body_bytes: cfg.retry.max_body_bytes,
        };
        let hash_key = match (&cfg.hash_key, cfg.strategy) {
            (Some(k), _) => Some(k.get_ref().clone()),
            (None, StrategyKind::ConsistentHash) => Some(HashKey::ClientIp),
            _ => None,
        };
        Ok(Upstream {
            name: name.to_string(),
            lb,
            conns,
            retry,
            budget,
            hash_key,
            authorities,
            labels,
            strategy,
            config: cfg.clone(),
        })
    }

    /// Dry run of [`Upstream::build`]: would the balancer accept this config?
    pub fn check(cfg: &UpstreamConfig) -> Result<()> {
        tls_client(cfg)?;
        let (specs, bconfig, _) = balancer_parts(cfg)?;
        if !specs.is_empty() {
            Balancer::new(specs, bconfig)?;
        }
        Ok(())
    }

    /// The backends in the balancer's order (none without a balancer).
    pub fn backends(&self) -> Vec<Arc<ringleader_balancer::Backend>> {
        self.lb.as_ref().map(|lb| lb.backends()).unwrap_or_default()
    }

    /// Index of a backend id in [`Upstream::authorities`].
    pub fn index_of(&self, id: &str) -> Option<usize> {
        self.authorities.iter().position(|(i, _)| i == id)
    }

    /// What status, metrics and logs call backend `id` (its name, else its address).
    pub fn label_of<'a>(&'a self, id: &'a str) -> &'a str {
        self.index_of(id).map_or(id, |i| &self.labels[i])
    }

    /// How log messages name the backend at `idx` of [`Upstream::authorities`].
    pub fn named(&self, idx: usize) -> Named<'_> {
        Named {
            label: &self.labels[idx],
            addr: &self.authorities[idx].0,
        }
    }

    /// Index of a picked backend in [`Upstream::authorities`]: its snapshot
    /// position when that still names it (always, unless a reload raced).
    pub fn index_of_pick(&self, pick: &ringleader_balancer::Pick) -> Option<usize> {
        let i = pick.index();
        match self.authorities.get(i) {
            Some((id, _)) if id == pick.backend().id() => Some(i),
            _ => self.index_of(pick.backend().id()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_h2_upstreams_ca_file_is_read_and_a_bad_one_named() {
        let cfg = crate::Config::from_toml_str(
            "[upstream.app]\nbackends = [{ addr = \"127.0.0.1:9101\" }]\n",
            "t.toml",
        )
        .unwrap();
        let mut up = cfg.upstreams["app"].clone();
        assert!(tls_client(&up).unwrap().is_none(), "http1: no TLS");
        up.protocol = UpstreamProtocol::H2;
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("ca.pem");
        std::fs::write(&bad, "not a certificate").unwrap();
        for path in [bad.clone(), dir.path().join("missing.pem")] {
            up.tls_ca = Some(toml::Spanned::new(0..0, path.clone()));
            match tls_client(&up) {
                Err(Error::ReadConfig { path: p, .. }) => assert_eq!(p, path),
                Err(e) => panic!("{e}"),
                Ok(_) => panic!("{} was accepted", path.display()),
            }
        }
        // No tls_ca (validation requires one): TLS all the same, trusting nothing.
        up.tls_ca = None;
        assert!(tls_client(&up).unwrap().is_some());
        let target = h2_target(&up, "127.0.0.1:9101", tls_client(&up).unwrap().as_ref());
        assert!(target.unwrap().tls.is_some(), "never cleartext for h2");
    }

    #[test]
    fn hash_compat_reaches_the_balancer() {
        let toml = |compat: &str| {
            format!(
                "[upstream.app]\nstrategy = \"consistent_hash\"\nhash_key = \"query:k\"\n{compat}\
                 backends = [{{ addr = \"127.0.0.1:9101\" }}, {{ addr = \"127.0.0.1:9102\", weight = 2 }}]\n"
            )
        };
        for (line, want) in [
            ("hash_compat = \"nginx\"\n", Some("nginx")),
            ("hash_compat = \"ketama\"\n", Some("ketama")),
            ("", None),
        ] {
            let cfg = crate::Config::from_toml_str(&toml(line), "t.toml").unwrap();
            let (specs, b, _) = balancer_parts(&cfg.upstreams["app"]).unwrap();
            assert_eq!(b.hash_compat.map(|c| c.to_string()).as_deref(), want);
            // Placed by the server address as written, with its weight.
            assert_eq!(specs[1].addr, "127.0.0.1:9102");
            assert_eq!(specs[1].weight, 2);
        }
    }

    #[test]
    fn budget_limits_retries_to_share_of_requests() {
        let b = RetryBudget::new(20);
        let mut reserve = 0;
        while b.try_withdraw() {
            reserve += 1;
        }
        assert_eq!(reserve, RetryBudget::RESERVE);
        // After the reserve is spent: 100 requests allow 20 retries.
        for _ in 0..100 {
            b.deposit();
        }
        let mut n = 0;
        while b.try_withdraw() {
            n += 1;
        }
        assert_eq!(n, 20);
    }

    #[test]
    fn zero_budget_never_retries() {
        let b = RetryBudget::new(0);
        b.deposit();
        assert!(!b.try_withdraw());
    }

    #[test]
    fn tokens_show_what_is_left() {
        let b = RetryBudget::new(20);
        assert_eq!(b.tokens(), RetryBudget::RESERVE as f64);
        assert!(b.try_withdraw());
        assert_eq!(b.tokens(), RetryBudget::RESERVE as f64 - 1.0);
        b.deposit();
        assert!((b.tokens() - (RetryBudget::RESERVE as f64 - 0.8)).abs() < 1e-9);
    }

    #[test]
    fn budget_is_capped() {
        let b = RetryBudget::new(100);
        for _ in 0..1000 {
            b.deposit();
        }
        let mut n = 0;
        while b.try_withdraw() {
            n += 1;
        }
        assert_eq!(n, RetryBudget::RESERVE);
    }

    #[test]
    fn ten_requests_at_20_percent_earn_two_retries() {
        let b = RetryBudget::new(20);
        while b.try_withdraw() {} // spend the reserve
        for _ in 0..10 {
            b.deposit(); // ten requests ...
        }
        assert!(b.try_withdraw()); // ... earn two retries
        assert!(b.try_withdraw());
        assert!(!b.try_withdraw());
    }
}
