//! The summary `ringleader check` prints: what a config means, then the resolved
//! config with every default filled in.
use super::{Config, UpstreamProtocol};
use ringleader_balancer::StrategyKind;
use std::fmt::Write as _;

impl Config {
    /// A human-readable summary of what the config means, followed by the
    /// fully resolved config (every default filled in) as TOML.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        let s = &self.server;
        let _ = writeln!(
            out,
            "proxy listens on http://{}  (admin on http://{})",
            s.listen, s.admin
        );
        let h2 = &s.http2;
        // HTTP/2 is offered by ALPN on the TLS listener and, with `cleartext`, by prior
        // knowledge on the plain one: without either it is not served at all.
        let served = match (s.tls_listen.is_some(), h2.cleartext) {
            (true, true) => Some("over TLS (ALPN h2) and h2c on the plain listener"),
            (true, false) => Some("over TLS (ALPN h2) only; the plain listener speaks HTTP/1.1"),
            (false, true) => Some("h2c (prior knowledge) on the plain listener; no TLS listener"),
            (false, false) => None,
        };
        match served {
            Some(how) => {
                let _ = writeln!(
                    out,
                    "HTTP/2: {how}; {} streams per connection, PING every {} (timeout {})",
                    h2.max_concurrent_streams,
                    if h2.keepalive_interval.is_zero() {
                        "never".to_string()
                    } else {
                        humantime::format_duration(h2.keepalive_interval).to_string()
                    },
                    humantime::format_duration(h2.keepalive_timeout)
                );
            }
            None => {
                let _ = writeln!(
                    out,
                    "HTTP/2: not served (no tls_listen, and [server.http2] cleartext = false): HTTP/1.1 only"
                );
            }
        }
        if let Some(tls) = s.tls_listen {
            let _ = writeln!(
                out,
                "HTTPS on https://{tls} (TLS 1.2 and 1.3), certificates by SNI:"
            );
            for t in &s.tls {
                let hosts: Vec<&str> = t.hosts.iter().map(|h| h.get_ref().as_str()).collect();
                let _ = writeln!(
                    out,
                    "  - {} (key {}) for {}",
                    t.cert.get_ref().display(),
                    t.key.get_ref().display(),
                    if hosts.is_empty() {
                        "any other name (default)".to_string()
                    } else {
                        hosts.join(", ")
                    }
                );
            }
            if s.tls.iter().all(|t| !t.hosts.is_empty()) {
                let _ = writeln!(
                    out,
                    "  no default: other names get the TLS alert unrecognized_name"
                );
            }
        }
        if let Some(r) = s.redirect_listen {
            let port = s
                .redirect_port
                .or(s.tls_listen.map(|a| a.port()))
                .unwrap_or(443);
            let _ = writeln!(
                out,
                "redirect listener on http://{r}: every request -> https://HOST{}/... (301 GET/HEAD, 308 others)",
                if port == 443 { String::new() } else { format!(":{port}") }
            );
        }
        let workers = if s.workers == 0 {
            "one per core".to_string()
        } else {
            s.workers.to_string()
        };
        let _ = writeln!(
            out,
            "worker threads: {workers}; max {} connections",
            s.max_connections
        );
        if let Some(c) = &self.cluster {
            let endpoints: Vec<&str> = c.endpoints.iter().map(|e| e.get_ref().as_str()).collect();
            let _ = writeln!(
                out,
                "cluster: etcd at {}, namespace {:?} (keys under /ringleader/{}/); \
                 X-Request-Id worker id leased for {} (RINGLEADER_WORKER_ID ignored)",
                endpoints.join(", "),
                c.namespace.get_ref(),
                c.namespace.get_ref(),
                humantime::format_duration(c.lease_ttl)
            );
            let _ = match &c.health_quorum {
                Some(q) => writeln!(
                    out,
                    "  a backend is objectively down when {} live proxies say so",
                    q.get_ref()
                ),
                None => writeln!(
                    out,
                    "  a backend is objectively down when a majority of the live proxies say so"
                ),
            };
        }
        let _ = writeln!(out, "routes (first match wins):");
        for (i, r) in self.routes.iter().enumerate() {
            let host = r.host.as_deref().unwrap_or("*");
            let _ = writeln!(
                out,
                "  {}. host {host} path {}* -> upstream {}",
                i + 1,
                r.path_prefix,
                r.upstream.get_ref()
            );
        }
        for (name, u) in &self.upstreams {
            let over = match (&u.backends_from, &self.cluster) {
                (Some(_), Some(c)) => format!(
                    "the backends in etcd under /ringleader/{}/upstreams/{name}/backends/",
                    c.namespace.get_ref()
                ),
                _ => format!("{} backend(s)", u.backends.len()),
            };
            let _ = writeln!(
                out,
                "upstream {name}: {} over {over}; connect timeout {}, idle keep-alive {}",
                u.strategy,
                humantime::format_duration(u.connect_timeout),
                humantime::format_duration(u.idle_timeout)
            );
            match u.protocol {
                UpstreamProtocol::H2c => {
                    let _ = writeln!(
                        out,
                        "  protocol: HTTP/2 in cleartext (h2c, prior knowledge)"
                    );
                }
                UpstreamProtocol::H2 => {
                    let ca = u
                        .tls_ca
                        .as_ref()
                        .map_or_else(String::new, |c| c.get_ref().display().to_string());
                    let sni = u.tls_server_name.as_ref().map_or_else(
                        || "each backend's host".to_string(),
                        |n| n.get_ref().clone(),
                    );
                    let _ = writeln!(
                        out,
                        "  protocol: HTTP/2 over TLS (h2), certificates checked against {ca} for {sni}"
                    );
                }
                _ => {}
            }
            if u.strategy == StrategyKind::ConsistentHash {
                match &u.hash_key {
                    Some(k) => {
                        let _ = writeln!(out, "  hash key: {}", k.get_ref());
                    }
                    None => {
                        let _ = writeln!(out, "  hash key: client_ip");
                    }
                }
                if let Some(c) = &u.hash_compat {
                    let _ = writeln!(
                        out,
                        "  placement: compatible with {} (hash_compat = \"{}\")",
                        match c.get_ref() {
                            crate::HashCompat::Nginx => "nginx's `hash KEY consistent`",
                            crate::HashCompat::Ketama => "libketama",
                        },
                        c.get_ref()
                    );
                }
            }
            for b in &u.backends {
                let _ = match &b.name {
                    Some(n) => writeln!(
                        out,
                        "  - {} at {} (weight {})",
                        n.get_ref(),
                        b.addr.get_ref(),
                        b.weight
                    ),
                    None => writeln!(out, "  - {} (weight {})", b.addr.get_ref(), b.weight),
                };
            }
            match &u.health {
                Some(h) if h.grpc => {
                    let _ = writeln!(
                        out,
                        "  health: gRPC health service (grpc.health.v1.Health/Check) every {} (timeout {}), up after {} passes, down after {} failures",
                        humantime::format_duration(h.interval),
                        humantime::format_duration(h.timeout),
                        h.rise,
                        h.fall
                    );
                }
                Some(h) => {
                    let _ = writeln!(
                        out,
                        "  health: GET {} every {} (timeout {}), up after {} passes, down after {} failures",
                        h.path,
                        humantime::format_duration(h.interval),
                        humantime::format_duration(h.timeout),
                        h.rise,
                        h.fall
                    );
                }
                None => {
                    let _ = writeln!(out, "  health: no active checks (passive detection only)");
                }
            }
            if let Some(h) = u
                .health
                .as_ref()
                .filter(|h| h.detector == crate::DetectorKind::Accrual)
            {
                let _ = writeln!(
                    out,
                    "  detector: phi accrual (suspect above phi {}, min std dev {}), then {} probes {} apart before down",
                    h.phi_threshold,
                    humantime::format_duration(h.min_std_dev),
                    h.confirm,
                    humantime::format_duration(h.confirm_interval)
                );
            }
            let p = &u.passive;
            let cap = match p.max_ejection_percent {
                0 => "ejection off".to_string(),
                pct => format!("at most {pct}% ejected for failures"),
            };
            let _ = writeln!(
                out,
                "  passive: eject on a refused connection or {} failures in a row, for {} doubling up to {} ({cap}); {}",
                p.consecutive_failures,
                humantime::format_duration(p.ejection_time),
                humantime::format_duration(p.max_ejection_time),
                if p.panic_mode {
                    "none available: try all (panic mode)"
                } else {
                    "none available: 503"
                }
            );
            let on: Vec<&str> = u.retry.on.iter().map(|o| o.name()).collect();
            let _ = writeln!(
                out,
                "  retry: up to {} more tries on {} (budget {}%), idempotent requests only",
                u.retry.attempts,
                on.join(", "),
                u.retry.budget_percent
            );
        }
        out.push_str("\n# resolved config\n");
        match toml::to_string_pretty(self) {
            Ok(t) => out.push_str(&t),
            Err(e) => {
                let _ = writeln!(out, "# (cannot render: {e})");
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;
    use crate::error::Result;

    fn parse(s: &str) -> Result<Config> {
        Config::from_toml_str(s, "t.toml")
    }

    const MIN: &str = "[upstream.app]\nbackends = [{ addr = \"127.0.0.1:9101\" }]\n";

    #[test]
    fn passive_defaults_and_panic_mode_switch() {
        let c = parse(MIN).unwrap();
        let p = &c.upstreams["app"].passive;
        assert!(p.panic_mode);
        assert_eq!(p.max_ejection_percent, 50);
        assert!(c.describe().contains("panic mode"), "{}", c.describe());
        let c = parse(&format!(
            "{MIN}[upstream.app.passive]\npanic_mode = false\n"
        ))
        .unwrap();
        assert!(!c.upstreams["app"].passive.panic_mode);
        assert!(c.describe().contains("none available: 503"));
    }

    #[test]
    fn names_strategy_hash_key_and_retry_conditions() {
        let c = parse(&format!(
            "{MIN}[upstream.app.retry]\non = [\"5xx\", \"timeout\"]\n"
        ))
        .unwrap();
        let d = c.describe();
        assert!(
            d.contains("upstream app: round_robin over 1 backend(s)"),
            "{d}"
        );
        assert!(
            d.contains("retry: up to 2 more tries on 5xx, timeout (budget 20%)"),
            "{d}"
        );
        assert!(!d.contains("hash key"), "{d}");
        assert!(d.contains("strategy = \"round_robin\"\n"), "{d}");
        assert!(
            d.contains("on = [\n    \"5xx\",\n    \"timeout\",\n]")
                || d.contains("on = [\"5xx\", \"timeout\"]"),
            "{d}"
        );

        let c = parse(
            "[upstream.h]\nstrategy = \"consistent_hash\"\nbackends = [{ addr = \"x:1\" }]\n",
        )
        .unwrap();
        assert!(
            c.describe().contains("  hash key: client_ip\n"),
            "{}",
            c.describe()
        );
        let c = parse("[upstream.h]\nstrategy = \"consistent_hash\"\nhash_key = \"cookie:sid\"\nbackends = [{ addr = \"x:1\" }]\n").unwrap();
        assert!(
            c.describe().contains("  hash key: cookie:sid\n"),
            "{}",
            c.describe()
        );
        assert!(
            c.describe().contains("hash_key = \"cookie:sid\"\n"),
            "{}",
            c.describe()
        );
    }

    #[test]
    fn cluster_and_backends_from_are_described_and_round_trip() {
        let c = parse(
            "[cluster]\nendpoints = [\"http://127.0.0.1:2379\", \"http://10.0.0.2:2379\"]\nnamespace = \"prod\"\n\
             [upstream.app]\nstrategy = \"consistent_hash\"\nbackends_from = \"cluster\"\n",
        )
        .unwrap();
        let d = c.describe();
        assert!(
            d.contains("cluster: etcd at http://127.0.0.1:2379, http://10.0.0.2:2379, namespace \"prod\" (keys under /ringleader/prod/); X-Request-Id worker id leased for 10s"),
            "{d}"
        );
        assert!(
            d.contains("upstream app: consistent_hash over the backends in etcd under /ringleader/prod/upstreams/app/backends/;"),
            "{d}"
        );
        let resolved = &d[d.find("# resolved config").unwrap()..];
        assert!(resolved.contains("backends_from = \"cluster\"\n"), "{d}");
        assert!(resolved.contains("lease_ttl = \"10s\"\n"), "{d}");
        assert!(!resolved.contains("backends = "), "{d}");
        let again = Config::from_toml_str(resolved, "r.toml").unwrap();
        assert_eq!(again.cluster.unwrap().namespace.get_ref(), "prod");
        // Without a cluster, nothing about one.
        let c = parse(MIN).unwrap();
        assert!(!c.describe().contains("cluster"), "{}", c.describe());
    }

    #[test]
    fn listeners_tls_and_http2_are_described_and_round_trip() {
        let c = parse(MIN).unwrap();
        let d = c.describe();
        assert!(
            d.contains("HTTP/2: h2c (prior knowledge) on the plain listener; no TLS listener; 100 streams per connection, PING every 30s (timeout 10s)"),
            "{d}"
        );
        assert!(!d.contains("HTTPS on"), "{d}");
        let c = parse(&format!(
            "[server]\n[server.http2]\ncleartext = false\nmax_concurrent_streams = 8\nkeepalive_interval = \"0s\"\n{MIN}"
        ))
        .unwrap();
        let d = c.describe();
        assert!(
            d.contains("HTTP/2: not served (no tls_listen, and [server.http2] cleartext = false): HTTP/1.1 only\n"),
            "{d}"
        );
        let again =
            Config::from_toml_str(&d[d.find("# resolved config").unwrap()..], "r.toml").unwrap();
        assert!(!again.server.http2.cleartext);
        assert_eq!(again.server.http2.max_concurrent_streams, 8);
    }

    /// What `check` says about HTTP/2 follows the listeners: TLS (ALPN h2) only where a
    /// TLS listener exists, h2c only with `cleartext`, and "not served" with neither.
    #[test]
    fn http2_is_described_by_the_listeners_that_serve_it() {
        let line = |tls: bool, cleartext: bool| {
            let mut c = parse(MIN).unwrap();
            c.server.tls_listen = tls.then(|| "127.0.0.1:8443".parse().unwrap());
            c.server.http2.cleartext = cleartext;
            let d = c.describe();
            let l = d.lines().find(|l| l.starts_with("HTTP/2: ")).unwrap();
            l.split(';').next().unwrap().to_string()
        };
        assert_eq!(
            line(true, true),
            "HTTP/2: over TLS (ALPN h2) and h2c on the plain listener"
        );
        assert_eq!(line(true, false), "HTTP/2: over TLS (ALPN h2) only");
        assert_eq!(
            line(false, true),
            "HTTP/2: h2c (prior knowledge) on the plain listener"
        );
        assert_eq!(
            line(false, false),
            "HTTP/2: not served (no tls_listen, and [server.http2] cleartext = false): HTTP/1.1 only"
        );
    }

    #[test]
    fn backends_show_their_names() {
        let c = parse(
            "[upstream.app]\nbackends = [{ addr = \"127.0.0.1:9001\", name = \"alpha\" }, { addr = \"127.0.0.1:9002\", weight = 2 }]\n",
        )
        .unwrap();
        let d = c.describe();
        assert!(
            d.contains("  - alpha at 127.0.0.1:9001 (weight 1)\n"),
            "{d}"
        );
        assert!(d.contains("  - 127.0.0.1:9002 (weight 2)\n"), "{d}");
        // The resolved config keeps the name, and only where one was given.
        assert_eq!(d.matches("name = \"alpha\"").count(), 1, "{d}");
        assert_eq!(d.matches("name =").count(), 1, "{d}");
        let again =
            Config::from_toml_str(&d[d.find("# resolved config").unwrap()..], "r.toml").unwrap();
        assert_eq!(again.upstreams["app"].backends[0].label(), "alpha");
    }
}
