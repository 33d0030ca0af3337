//! Validation of a parsed config: the checks serde cannot make (ranges, references
//! between tables, cross-field rules), each error located in the file.
use super::{
    BackendConfig, ClusterConfig, Config, Ctx, RouteConfig, ServerConfig, UpstreamConfig,
    UpstreamProtocol,
};
use crate::error::Result;
use crate::headers::host_without_port;
use crate::tls;
use ringleader_balancer::StrategyKind;
use std::ops::Range;
use std::time::Duration;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

impl Ctx<'_> {
    /// Where the value at `path` is written: keys from the top of the file, an
    /// array's element by its index (`["route", "0", "host"]`); `None` when the
    /// file does not write it. The text is parsed again (it parsed once already),
    /// which costs only when an error is being made.
    fn value_at(&self, path: &[&str]) -> Option<Range<usize>> {
        match self.locate(path)? {
            (span, true) => Some(span),
            (_, false) => None,
        }
    }

    /// Where to point an error about the value at `path`: the value itself, or
    /// when it is defaulted the nearest table on its path that the file writes
    /// (the `[upstream.app.health]` header, or `passive` of `passive.rise = 1`).
    fn at(&self, path: &[&str]) -> Option<Range<usize>> {
        self.locate(path).map(|(span, _)| span)
    }

    /// The span of the deepest value along `path` the file writes, and whether
    /// that is the whole path.
    fn locate(&self, path: &[&str]) -> Option<(Range<usize>, bool)> {
        let doc = DeTable::parse(self.src).ok()?;
        let mut table: &DeTable<'_> = doc.get_ref();
        let mut found: Option<Range<usize>> = None;
        let mut steps = path.iter().peekable();
        while let Some(key) = steps.next() {
            let Some(mut value) = table.get(*key) else {
                return found.map(|s| (s, false));
            };
            // An array of tables: the next step is an index.
            while let DeValue::Array(items) = value.get_ref() {
                let Some(item) = steps
                    .peek()
                    .and_then(|i| i.parse::<usize>().ok())
                    .and_then(|i| items.get(i))
                else {
                    break;
                };
                steps.next();
                value = item;
            }
            found = Some(value.span());
            match value.get_ref() {
                DeValue::Table(t) => table = t,
                _ => return found.map(|s| (s, steps.peek().is_none())),
            }
        }
        found.map(|s| (s, true))
    }
}

impl Config {
    /// The checks serde cannot make: ranges, references between tables, and the
    /// implied route of a single upstream. Route hosts are normalised (lowercase,
    /// port removed).
    pub(super) fn validate(&mut self, ctx: &Ctx<'_>) -> Result<()> {
        let s = &self.server;
        if s.max_header_bytes < 256 {
            return Err(ctx.err(
                ctx.at(&["server", "max_header_bytes"]),
                "server.max_header_bytes must be at least 256",
            ));
        }
        if s.max_connections == 0 || s.max_connections > 1_000_000 {
            return Err(ctx.err(
                ctx.at(&["server", "max_connections"]),
                "server.max_connections must be between 1 and 1000000",
            ));
        }
        if s.workers > 1024 {
            return Err(ctx.err(
                ctx.at(&["server", "workers"]),
                "server.workers must be at most 1024 (0 = one per core)",
            ));
        }
        for (what, d) in [
            ("header_read_timeout", s.header_read_timeout),
            ("request_timeout", s.request_timeout),
        ] {
            if d.is_zero() {
                return Err(ctx.err(
                    ctx.at(&["server", what]),
                    format!("server.{what} must be greater than zero"),
                ));
            }
        }
        validate_listeners(ctx, s)?;
        if let Some(c) = &self.cluster {
            validate_cluster(ctx, c)?;
        }
        if self.upstreams.is_empty() {
            return Err(ctx.err(
                None,
                "no upstream: add an [upstream.NAME] table with backends",
            ));
        }
        for (name, up) in &self.upstreams {
            // An upstream's name goes where a backend's does (status, metrics, log
            // lines, `check`'s output, etcd keys): the same rule, at its header.
            if let Some(why) = backend_name_problem(name) {
                return Err(ctx.err(
                    ctx.at(&["upstream", name]),
                    format!("upstream name {name:?} {why}"),
                ));
            }
            if let Some(from) = &up.backends_from {
                if !up.backends.is_empty() {
                    return Err(ctx.err(
                        Some(from.span()),
                        format!(
                            "upstream {name:?} has both backends and backends_from; \
                             give one of the two"
                        ),
                    ));
                }
                if self.cluster.is_none() {
                    return Err(ctx.err(
                        Some(from.span()),
                        format!(
                            "upstream {name:?} takes its backends from the cluster, \
                             but there is no [cluster] table"
                        ),
                    ));
                }
            }
            validate_upstream(ctx, name, up)?;
        }
        if self.routes.is_empty() {
            if self.upstreams.len() == 1 {
                let name = self.upstreams.keys().next().cloned().unwrap_or_default();
                self.routes.push(RouteConfig {
                    host: None,
                    path_prefix: "/".to_string(),
                    upstream: Spanned::new(0..0, name),
                });
            } else {
                return Err(ctx.err(
                    None,
                    "no [[route]]: with several upstreams, routes must say which serves what",
                ));
            }
        }
        for (i, route) in self.routes.iter_mut().enumerate() {
            let nth = i.to_string();
            let up = route.upstream.get_ref();
            if !self.upstreams.contains_key(up) {
                return Err(ctx.err(
                    Some(route.upstream.span()),
                    format!("route refers to unknown upstream {up:?}"),
                ));
            }
            if !route.path_prefix.starts_with('/') {
                return Err(ctx.err(
                    ctx.at(&["route", &nth, "path_prefix"]),
                    format!("path_prefix {:?} must start with '/'", route.path_prefix),
                ));
            }
            if !is_request_path(&route.path_prefix) {
                return Err(ctx.err(
                    ctx.at(&["route", &nth, "path_prefix"]),
                    format!(
                        "path_prefix {:?} is not a request path (no spaces, quotes or control characters)",
                        route.path_prefix
                    ),
                ));
            }
            if let Some(h) = &mut route.host {
                let host = host_without_port(h).to_ascii_lowercase();
                let bad = |b: u8| {
                    b.is_ascii_whitespace()
                        || b.is_ascii_control()
                        || matches!(b, b'/' | b'"' | b'\\')
                };
                if host.is_empty() || host.bytes().any(bad) {
                    return Err(ctx.err(
                        ctx.at(&["route", &nth, "host"]),
                        format!("route host {h:?} is not a host name"),
                    ));
                }
                *h = host;
            }
        }
        Ok(())
    }
}

fn validate_upstream(ctx: &Ctx<'_>, name: &str, up: &UpstreamConfig) -> Result<()> {
    // Where a key of this upstream is (its table's header when the key is defaulted).
    let at = |path: &[&str]| {
        let mut full = vec!["upstream", name];
        full.extend_from_slice(path);
        ctx.at(&full)
    };
    if let Some(k) = &up.hash_key {
        if up.strategy != StrategyKind::ConsistentHash {
            return Err(ctx.err(
                Some(k.span()),
                "hash_key only applies to strategy = \"consistent_hash\"",
            ));
        }
    }
    if let Some(c) = &up.hash_compat {
        if up.strategy != StrategyKind::ConsistentHash {
            return Err(ctx.err(
                Some(c.span()),
                "hash_compat only applies to strategy = \"consistent_hash\"",
            ));
        }
    }
    if up.backends.is_empty() && up.backends_from.is_none() {
        return Err(ctx.err(
            at(&[]),
            format!(
                "upstream {name:?} has no backends: list them (backends = [...]) \
                 or take them from etcd (backends_from = \"cluster\")"
            ),
        ));
    }
    if up.idle_timeout.is_zero() {
        return Err(ctx.err(
            at(&["idle_timeout"]),
            "idle_timeout must be greater than zero",
        ));
    }
    if up.connect_timeout.is_zero() {
        return Err(ctx.err(
            at(&["connect_timeout"]),
            "connect_timeout must be greater than zero",
        ));
    }
    if let Some((b, problem)) = backends_problem(&up.backends) {
        let span = match problem {
            BackendProblem::Name(_) | BackendProblem::NameTaken(_) => b.name.as_ref(),
            _ => None,
        }
        .map_or(b.addr.span(), Spanned::span);
        let msg = match problem {
            BackendProblem::Name(why) => {
                format!(
                    "backend name {:?} {why}",
                    b.name.as_ref().map_or("", |n| n.get_ref())
                )
            }
            BackendProblem::NameTaken(what) | BackendProblem::AddrTaken(what) => format!(
                "backend name {:?} {what} of upstream {name:?}; names must be unique",
                b.label()
            ),
            other => other.to_string(),
        };
        return Err(ctx.err(Some(span), msg));
    }
    validate_protocol(ctx, name, up)?;
    if let Some(h) = &up.health {
        if h.grpc && !up.protocol.is_h2() {
            return Err(ctx.err(
                at(&["health", "grpc"]),
                format!(
                    "upstream {name:?}: health.grpc needs protocol = \"h2c\" or \"h2\" \
                     (gRPC runs over HTTP/2), not \"{}\"",
                    up.protocol
                ),
            ));
        }
        if !h.path.starts_with('/') {
            return Err(ctx.err(
                at(&["health", "path"]),
                format!("health path {:?} must start with '/'", h.path),
            ));
        }
        if !is_request_path(&h.path) {
            return Err(ctx.err(
                at(&["health", "path"]),
                format!(
                    "health path {:?} is not a request path (no spaces, quotes or control characters)",
                    h.path
                ),
            ));
        }
        for (what, n) in [("rise", h.rise), ("fall", h.fall)] {
            if n == 0 {
                return Err(ctx.err(
                    at(&["health", what]),
                    format!("health.{what} must be at least 1"),
                ));
            }
        }
        for (what, d) in [
            ("interval", h.interval),
            ("timeout", h.timeout),
            ("min_std_dev", h.min_std_dev),
            ("confirm_interval", h.confirm_interval),
        ] {
            if d.is_zero() {
                return Err(ctx.err(
                    at(&["health", what]),
                    format!("health.{what} must be greater than zero"),
                ));
            }
        }
        if !(h.phi_threshold.is_finite() && h.phi_threshold > 0.0) {
            return Err(ctx.err(
                at(&["health", "phi_threshold"]),
                format!(
                    "health.phi_threshold must be a number greater than zero, not {}",
                    h.phi_threshold
                ),
            ));
        }
        if h.confirm > 16 {
            return Err(ctx.err(
                at(&["health", "confirm"]),
                "health.confirm must be at most 16",
            ));
        }
    }
    let p = &up.passive;
    if p.max_ejection_percent > 100 {
        return Err(ctx.err(
            at(&["passive", "max_ejection_percent"]),
            "passive.max_ejection_percent must be at most 100",
        ));
    }
    if p.max_ejection_time < p.ejection_time {
        // At max_ejection_time when the file sets it, else at the ejection_time that
        // exceeds its default.
        let span = ctx
            .value_at(&["upstream", name, "passive", "max_ejection_time"])
            .or_else(|| at(&["passive", "ejection_time"]));
        return Err(ctx.err(
            span,
            "passive.max_ejection_time must be at least ejection_time",
        ));
    }
    let r = &up.retry;
    if r.budget_percent > 100 {
        return Err(ctx.err(
            at(&["retry", "budget_percent"]),
            "retry.budget_percent must be at most 100",
        ));
    }
    if r.attempts > 16 {
        return Err(ctx.err(
            at(&["retry", "attempts"]),
            "retry.attempts must be at most 16",
        ));
    }
    Ok(())
}

/// The listeners of `[server]`: TLS needs both a listener and certificates, a
/// redirect needs the TLS listener, no two listeners share an address; HTTP/2
/// limits in range; every `[[server.tls]]` entry loads (the files are read now:
/// a bad PEM, a key that is not the certificate's, or a certificate outside its
/// dates is an error naming the file).
fn validate_listeners(ctx: &Ctx<'_>, s: &ServerConfig) -> Result<()> {
    match (s.tls_listen, s.tls.is_empty()) {
        (Some(_), true) => {
            return Err(ctx.err(
                ctx.at(&["server", "tls_listen"]),
                "server.tls_listen needs certificates: add a [[server.tls]] entry with cert and key",
            ))
        }
        (None, false) => {
            return Err(ctx.err(
                ctx.at(&["server", "tls"]),
                "[[server.tls]] certificates need a TLS listener: set server.tls_listen (e.g. \"0.0.0.0:443\")",
            ))
        }
        _ => {}
    }
    if s.redirect_listen.is_some() && s.tls_listen.is_none() {
        return Err(ctx.err(
            ctx.at(&["server", "redirect_listen"]),
            "server.redirect_listen redirects to HTTPS: it needs server.tls_listen",
        ));
    }
    if s.redirect_port.is_some() && s.redirect_listen.is_none() {
        return Err(ctx.err(
            ctx.at(&["server", "redirect_port"]),
            "server.redirect_port only applies with server.redirect_listen",
        ));
    }
    let listeners = [
        ("listen", Some(s.listen)),
        ("admin", Some(s.admin)),
        ("tls_listen", s.tls_listen),
        ("redirect_listen", s.redirect_listen),
    ];
    for (i, (a, x)) in listeners.iter().enumerate() {
        for (b, y) in &listeners[i + 1..] {
            if let (Some(x), Some(y)) = (x, y) {
                if x == y && x.port() != 0 {
                    // At the second of the two, unless only the first is written.
                    let span = ctx
                        .value_at(&["server", b])
                        .or_else(|| ctx.at(&["server", a]));
                    return Err(ctx.err(
                        span,
                        format!("server.{a} and server.{b} are the same address {x}"),
                    ));
                }
            }
        }
    }
    let h2 = &s.http2;
    if h2.max_concurrent_streams == 0 {
        return Err(ctx.err(
            ctx.at(&["server", "http2", "max_concurrent_streams"]),
            "server.http2.max_concurrent_streams must be at least 1",
        ));
    }
    if h2.keepalive_timeout.is_zero() {
        return Err(ctx.err(
            ctx.at(&["server", "http2", "keepalive_timeout"]),
            "server.http2.keepalive_timeout must be greater than zero",
        ));
    }
    let mut hosts = std::collections::HashSet::new();
    let mut default_seen = false;
    for t in &s.tls {
        if t.hosts.is_empty() {
            if default_seen {
                return Err(ctx.err(
                    Some(t.cert.span()),
                    "two [[server.tls]] entries without hosts: only one can be the default certificate",
                ));
            }
            default_seen = true;
        }
        for h in &t.hosts {
            let Some(p) = tls::host_pattern(h.get_ref()) else {
                return Err(ctx.err(
                    Some(h.span()),
                    format!(
                        "TLS host {:?} is not a host name or a wildcard *.example.com",
                        h.get_ref()
                    ),
                ));
            };
            if !hosts.insert(p) {
                return Err(ctx.err(
                    Some(h.span()),
                    format!(
                        "TLS host {:?} is listed twice (a name picks one certificate)",
                        h.get_ref()
                    ),
                ));
            }
        }
    }
    let provider = tls::provider();
    let now = std::time::SystemTime::now();
    for t in &s.tls {
        if let Err(problem) = tls::load_entry(&t.files(), &provider, now) {
            // By the kind of problem: `cert` and `key` may name one file.
            let key = match problem {
                tls::CertProblem::Read(..) => {
                    problem.path() == t.key.get_ref().as_path()
                        && problem.path() != t.cert.get_ref().as_path()
                }
                _ => problem.is_key(),
            };
            let span = if key { t.key.span() } else { t.cert.span() };
            return Err(ctx.err(Some(span), problem.to_string()));
        }
    }
    Ok(())
}

/// `protocol`: `tls_ca` and `tls_server_name` belong to `"h2"`, which needs a CA;
/// a server name must be a DNS name or an IP address.
fn validate_protocol(ctx: &Ctx<'_>, name: &str, up: &UpstreamConfig) -> Result<()> {
    let h2 = up.protocol == UpstreamProtocol::H2;
    if !h2 {
        let stray = up
            .tls_ca
            .as_ref()
            .map(|c| ("tls_ca", c.span()))
            .or_else(|| {
                up.tls_server_name
                    .as_ref()
                    .map(|n| ("tls_server_name", n.span()))
            });
        if let Some((what, span)) = stray {
            return Err(ctx.err(
                Some(span),
                format!(
                    "upstream {name:?}: {what} only applies to protocol = \"h2\" (TLS to the backends), not \"{}\"",
                    up.protocol
                ),
            ));
        }
        return Ok(());
    }
    if up.tls_ca.is_none() {
        return Err(ctx.err(
            ctx.at(&["upstream", name, "protocol"]),
            format!(
                "upstream {name:?} has protocol = \"h2\" but no tls_ca: name the PEM file of \
                 the CA that signs the backends' certificates"
            ),
        ));
    }
    if let Some(n) = &up.tls_server_name {
        if rustls_pki_types::ServerName::try_from(n.get_ref().as_str()).is_err() {
            return Err(ctx.err(
                Some(n.span()),
                format!(
                    "upstream {name:?}: tls_server_name {:?} is not a DNS name or IP address",
                    n.get_ref()
                ),
            ));
        }
    }
    // The CA file is read now (as [[server.tls]] files are): `ringleader check` and a
    // reload reject a missing or unusable one, located at its tls_ca line.
    if let Some(ca) = &up.tls_ca {
        if let Err(problem) = tls::load_ca(ca.get_ref()) {
            return Err(ctx.err(
                Some(ca.span()),
                format!("upstream {name:?}: tls_ca: {problem}"),
            ));
        }
    }
    Ok(())
}

/// What is wrong with one backend of a list (a file's, or a membership from etcd).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BackendProblem {
    /// The address is not `host:port`.
    Addr(String),
    /// Weight 0.
    Weight,
    /// The address is listed twice.
    Twice(String),
    /// The name is unusable (why).
    Name(&'static str),
    /// The name is another backend's label (how).
    NameTaken(&'static str),
    /// The address is another backend's name.
    AddrTaken(&'static str),
}

impl std::fmt::Display for BackendProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BackendProblem::Addr(a) => write!(f, "backend addr {a:?} must be host:port"),
            BackendProblem::Weight => f.write_str("backend weight must be at least 1"),
            BackendProblem::Twice(a) => write!(f, "backend {a:?} is listed twice"),
            BackendProblem::Name(why) => write!(f, "backend name {why}"),
            BackendProblem::NameTaken(what) | BackendProblem::AddrTaken(what) => {
                write!(f, "backend name {what}; names must be unique")
            }
        }
    }
}

/// The first backend of `backends` that is unusable, and why: its address is not
/// `host:port`, its weight 0, its address listed twice, its name invalid, or its
/// label (name, else address) another's.
pub(crate) fn backends_problem(
    backends: &[BackendConfig],
) -> Option<(&BackendConfig, BackendProblem)> {
    let mut seen = std::collections::HashSet::new();
    for b in backends {
        let addr = b.addr.get_ref();
        if !is_host_port(addr) {
            return Some((b, BackendProblem::Addr(addr.clone())));
        }
        if b.weight == 0 {
            return Some((b, BackendProblem::Weight));
        }
        if !seen.insert(addr.as_str()) {
            return Some((b, BackendProblem::Twice(addr.clone())));
        }
        if let Some(why) = b
            .name
            .as_ref()
            .and_then(|n| backend_name_problem(n.get_ref()))
        {
            return Some((b, BackendProblem::Name(why)));
        }
    }
    // A backend's label (name, else address) names it in status, metrics and logs:
    // two backends of an upstream must not share one.
    let mut labels = std::collections::HashMap::new();
    for b in backends {
        if let Some(other) = labels.insert(b.label(), b) {
            let problem = match (&b.name, &other.name) {
                (Some(_), Some(_)) => BackendProblem::NameTaken("is used by two backends"),
                (Some(_), None) => BackendProblem::NameTaken("is the address of another backend"),
                (None, _) => BackendProblem::AddrTaken("is the name of another backend"),
            };
            return Some((b, problem));
        }
    }
    None
}

/// Whether `addr` is `host:port` (no user info).
pub(crate) fn is_host_port(addr: &str) -> bool {
    addr.parse::<http::uri::Authority>()
        .ok()
        .filter(|a| a.port_u16().is_some() && !a.as_str().contains('@'))
        .is_some()
}

/// Whether `path` can be a request's path (and query): the `http` crate parses it
/// (so a health check can send it: no spaces or control characters), and it holds no
/// `"` or `\\`, which would need quoting in log lines and `check`'s output.
fn is_request_path(path: &str) -> bool {
    path.parse::<http::uri::PathAndQuery>().is_ok() && !path.contains(['"', '\\'])
}

/// The longest backend name accepted.
const MAX_BACKEND_NAME: usize = 64;

/// A backend name goes into metric label values and log fields: non-empty, short,
/// and only `[A-Za-z0-9._:-]`, so it needs no quoting anywhere. `None` when it is fine.
/// Upstream names follow the same rule, for the same reasons.
pub(crate) fn backend_name_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        Some("must not be empty")
    } else if name.len() > MAX_BACKEND_NAME {
        Some("is longer than 64 characters")
    } else if !name
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b':' | b'-'))
    {
        Some("may hold only letters, digits and . _ : -")
    } else {
        None
    }
}

/// The longest namespace accepted.
const MAX_NAMESPACE: usize = 64;

/// The lease TTLs accepted: etcd grants whole seconds; an hour keeps a dead proxy's
/// worker id for at most that long.
const LEASE_TTL: std::ops::RangeInclusive<Duration> =
    Duration::from_secs(1)..=Duration::from_secs(3600);

/// `[cluster]`: endpoints `http://host:port` (at least one, none twice), a namespace
/// that is one etcd key segment, a TTL in whole seconds within [`LEASE_TTL`].
fn validate_cluster(ctx: &Ctx<'_>, c: &ClusterConfig) -> Result<()> {
    if c.endpoints.is_empty() {
        return Err(ctx.err(
            ctx.at(&["cluster", "endpoints"]),
            "cluster.endpoints is empty: list at least one etcd URL, e.g. \"http://127.0.0.1:2379\"",
        ));
    }
    let mut seen = std::collections::HashSet::new();
    for e in &c.endpoints {
        let url = e.get_ref();
        let ok = url
            .parse::<http::Uri>()
            .ok()
            .filter(|u| u.scheme_str() == Some("http"))
            .filter(|u| matches!(u.path(), "" | "/") && u.query().is_none())
            .and_then(|u| u.authority().cloned())
            .is_some_and(|a| is_host_port(a.as_str()));
        if !ok {
            return Err(ctx.err(
                Some(e.span()),
                format!("cluster endpoint {url:?} must be an etcd client URL http://host:port"),
            ));
        }
        if !seen.insert(url.trim_end_matches('/')) {
            return Err(ctx.err(
                Some(e.span()),
                format!("cluster endpoint {url:?} is listed twice"),
            ));
        }
    }
    let ns = c.namespace.get_ref();
    let ns_ok = !ns.is_empty()
        && ns.len() <= MAX_NAMESPACE
        && ns
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if !ns_ok {
        return Err(ctx.err(
            ctx.at(&["cluster", "namespace"]),
            format!(
                "cluster namespace {ns:?} must be 1 to 64 characters of letters, digits and . _ -"
            ),
        ));
    }
    if let Some(q) = &c.health_quorum {
        if *q.get_ref() == 0 {
            return Err(ctx.err(
                Some(q.span()),
                "cluster.health_quorum must be at least 1 (absent = a majority of the live proxies)",
            ));
        }
    }
    if !LEASE_TTL.contains(&c.lease_ttl) || c.lease_ttl.subsec_nanos() != 0 {
        return Err(ctx.err(
            ctx.at(&["cluster", "lease_ttl"]),
            format!(
                "cluster.lease_ttl {} must be whole seconds from 1s to 1h (etcd grants leases in seconds)",
                humantime::format_duration(c.lease_ttl)
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::config::Config;
    use crate::error::Result;

    fn parse(s: &str) -> Result<Config> {
        Config::from_toml_str(s, "t.toml")
    }

    const MIN: &str = "[upstream.app]\nbackends = [{ addr = \"127.0.0.1:9101\" }]\n";

    fn route_host(host: &str) -> Option<String> {
        let c = parse(&format!(
            "{MIN}[[route]]\nhost = \"{host}\"\nupstream = \"app\"\n"
        ))
        .unwrap();
        c.routes[0].host.clone()
    }

    #[test]
    fn route_host_is_normalised() {
        assert_eq!(
            route_host("API.Example.com:8080").as_deref(),
            Some("api.example.com")
        );
        assert_eq!(
            route_host("api.example.com").as_deref(),
            Some("api.example.com")
        );
    }

    #[test]
    fn ipv6_route_host_keeps_its_address() {
        // Bracketed with a port: the port goes, the brackets stay (as a Host header has them).
        assert_eq!(
            route_host("[2001:DB8::1]:8080").as_deref(),
            Some("[2001:db8::1]")
        );
        assert_eq!(route_host("[::1]").as_deref(), Some("[::1]"));
        // Bare: there is no port to remove; the address stays whole.
        assert_eq!(route_host("2001:db8::1").as_deref(), Some("2001:db8::1"));
    }

    #[test]
    fn backend_names_are_checked_and_located() {
        let c = parse(
            "[upstream.app]\nbackends = [{ addr = \"127.0.0.1:9001\", name = \"alpha-1.eu:a_b\" }]\n",
        )
        .unwrap();
        assert_eq!(c.upstreams["app"].backends[0].label(), "alpha-1.eu:a_b");
        for (entries, at, msg) in [
            (
                "{ addr = \"x:1\", name = \"\" }",
                "t.toml:2:36: ",
                "backend name \"\" must not be empty",
            ),
            (
                "{ addr = \"x:1\", name = \"a b\" }",
                "t.toml:2:36: ",
                "may hold only letters, digits and . _ : -",
            ),
            (
                "{ addr = \"x:1\", name = \"a\\\"\" }",
                "t.toml:2:36: ",
                "may hold only",
            ),
            (
                "{ addr = \"x:1\", name = \"a\" }, { addr = \"x:2\", name = \"a\" }",
                "t.toml:2:66: ",
                "backend name \"a\" is used by two backends of upstream \"app\"",
            ),
            (
                "{ addr = \"x:1\", name = \"x:2\" }, { addr = \"x:2\" }",
                "t.toml:2:54: ",
                "\"x:2\" is the name of another backend",
            ),
            (
                "{ addr = \"x:2\" }, { addr = \"x:1\", name = \"x:2\" }",
                "t.toml:2:54: ",
                "\"x:2\" is the address of another backend",
            ),
        ] {
            let err = parse(&format!("[upstream.app]\nbackends = [{entries}]\n"))
                .unwrap_err()
                .to_string();
            assert!(err.starts_with(at), "{entries}: {err}");
            assert!(err.contains(msg), "{entries}: {err}");
        }
        let long = "n".repeat(65);
        let err = parse(&format!(
            "[upstream.app]\nbackends = [{{ addr = \"x:1\", name = \"{long}\" }}]\n"
        ))
        .unwrap_err();
        assert!(err.to_string().contains("longer than 64"), "{err}");
    }

    const CLUSTER: &str = "[cluster]\nendpoints = [\"http://127.0.0.1:2379\"]\n";

    #[test]
    fn cluster_table_is_typed_with_defaults() {
        let c = parse(&format!(
            "{CLUSTER}[upstream.app]\nbackends_from = \"cluster\"\n"
        ))
        .unwrap();
        let cl = c.cluster.as_ref().unwrap();
        assert_eq!(cl.endpoints[0].get_ref(), "http://127.0.0.1:2379");
        assert_eq!(cl.namespace.get_ref(), "default");
        assert_eq!(cl.lease_ttl, std::time::Duration::from_secs(10));
        let up = &c.upstreams["app"];
        assert_eq!(
            up.backends_from.as_ref().map(|f| *f.get_ref()),
            Some(crate::config::BackendsFrom::Cluster)
        );
        assert!(up.backends.is_empty());
        // A cluster may also serve only the request-ID lease, beside file backends.
        let c = parse(&format!("{CLUSTER}{MIN}")).unwrap();
        assert!(c.cluster.is_some() && c.upstreams["app"].backends_from.is_none());
    }

    #[test]
    fn cluster_errors_are_located() {
        for (text, at, msg) in [
            (
                "[cluster]\nendpoints = []\n".to_string(),
                "t.toml:2:13: ",
                "cluster.endpoints is empty",
            ),
            (
                "[cluster]\nendpoints = [\"http://127.0.0.1:2379\", \"127.0.0.1:2379\"]\n"
                    .to_string(),
                "t.toml:2:39: ",
                "\"127.0.0.1:2379\" must be an etcd client URL http://host:port",
            ),
            (
                "[cluster]\nendpoints = [\"https://etcd:2379\"]\n".to_string(),
                "t.toml:2:14: ",
                "must be an etcd client URL",
            ),
            (
                "[cluster]\nendpoints = [\"http://etcd\"]\n".to_string(),
                "t.toml:2:14: ",
                "must be an etcd client URL",
            ),
            (
                "[cluster]\nendpoints = [\"http://etcd:2379/v3\"]\n".to_string(),
                "t.toml:2:14: ",
                "must be an etcd client URL",
            ),
            (
                "[cluster]\nendpoints = [\"http://a:1\", \"http://a:1/\"]\n".to_string(),
                "t.toml:2:28: ",
                "is listed twice",
            ),
            (
                format!("{CLUSTER}namespace = \"a/b\"\n"),
                "t.toml:3:13: ",
                "cluster namespace \"a/b\" must be 1 to 64 characters",
            ),
            (
                format!("{CLUSTER}namespace = \"\"\n"),
                "t.toml:3:13: ",
                "must be 1 to 64 characters",
            ),
            (
                format!("{CLUSTER}lease_ttl = \"500ms\"\n"),
                "t.toml:3:13: ",
                "cluster.lease_ttl 500ms must be whole seconds from 1s to 1h",
            ),
            (
                format!("{CLUSTER}lease_ttl = \"1s 500ms\"\n"),
                "t.toml:3:13: ",
                "must be whole seconds",
            ),
            (
                format!("{CLUSTER}lease_ttl = \"2h\"\n"),
                "t.toml:3:13: ",
                "from 1s to 1h",
            ),
            (
                format!("{CLUSTER}bogus = 1\n"),
                "t.toml:3:1: ",
                "unknown field `bogus`",
            ),
        ] {
            let err = parse(&format!("{text}{MIN}")).unwrap_err().to_string();
            assert!(err.starts_with(at), "{text}: {err}");
            assert!(err.contains(msg), "{text}: {err}");
        }
    }

    #[test]
    fn backends_from_is_exclusive_and_needs_a_cluster() {
        let err = parse("[upstream.app]\nbackends_from = \"cluster\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("t.toml:2:17: upstream \"app\" takes its backends from the cluster, but there is no [cluster] table"),
            "{err}"
        );
        let err = parse(&format!(
            "{CLUSTER}[upstream.app]\nbackends_from = \"cluster\"\nbackends = [{{ addr = \"x:1\" }}]\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("t.toml:4:17: upstream \"app\" has both backends and backends_from"),
            "{err}"
        );
        let err = parse(&format!(
            "{CLUSTER}[upstream.app]\nbackends_from = \"file\"\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("t.toml:4:17: unknown backends_from \"file\"; expected \"cluster\""),
            "{err}"
        );
        let err = parse("[upstream.app]\nstrategy = \"random\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("has no backends: list them (backends = [...]) or take them from etcd (backends_from = \"cluster\")"),
            "{err}"
        );
    }
}

#[cfg(test)]
mod protocol_tests {
    use crate::config::{Config, UpstreamProtocol};

    fn parse(s: &str) -> crate::error::Result<Config> {
        Config::from_toml_str(s, "t.toml")
    }

    const UP: &str = "[upstream.app]\nbackends = [{ addr = \"127.0.0.1:9101\" }]\n";

    /// Write a CA certificate (self-signed, made now) to `path`.
    fn write_ca(path: &std::path::Path) {
        let ca = rcgen::generate_simple_self_signed(vec!["test-ca".to_string()]).unwrap();
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).unwrap();
        }
        std::fs::write(path, ca.cert.pem()).unwrap();
    }

    #[test]
    fn protocol_defaults_to_http1_and_parses_lowercase() {
        let c = parse(UP).unwrap();
        assert_eq!(c.upstreams["app"].protocol, UpstreamProtocol::Http1);
        assert!(!c.describe().contains("protocol:"), "{}", c.describe());
        let c = parse(&format!("{UP}protocol = \"h2c\"\n")).unwrap();
        assert_eq!(c.upstreams["app"].protocol, UpstreamProtocol::H2c);
        assert!(c
            .describe()
            .contains("  protocol: HTTP/2 in cleartext (h2c"));
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        write_ca(&ca);
        let c = parse(&format!(
            "{UP}protocol = \"h2\"\ntls_ca = \"{}\"\ntls_server_name = \"api.internal\"\n",
            ca.display()
        ))
        .unwrap();
        let up = &c.upstreams["app"];
        assert_eq!(up.protocol, UpstreamProtocol::H2);
        assert_eq!(up.tls_ca.as_ref().unwrap().get_ref(), &ca);
        let d = c.describe();
        assert!(
            d.contains(&format!(
                "  protocol: HTTP/2 over TLS (h2), certificates checked against {} for api.internal",
                ca.display()
            )),
            "{d}"
        );
        // The resolved config round-trips.
        let again = parse(&d[d.find("# resolved config").unwrap()..]).unwrap();
        assert_eq!(again.upstreams["app"].protocol, UpstreamProtocol::H2);
        let err = parse(&format!("{UP}protocol = \"HTTP2\"\n")).unwrap_err();
        assert!(
            err.to_string().starts_with(
                "t.toml:3:12: unknown variant `HTTP2`, expected one of `http1`, `h2c`, `h2`"
            ),
            "{err}"
        );
    }

    #[test]
    fn protocol_errors_are_located() {
        for (extra, at, msg) in [
            ("protocol = \"h2\"\n", "t.toml:3:12: ", "has protocol = \"h2\" but no tls_ca"),
            ("tls_ca = \"ca.pem\"\n", "t.toml:3:10: ", "tls_ca only applies to protocol = \"h2\""),
            (
                "protocol = \"h2c\"\ntls_server_name = \"x\"\n",
                "t.toml:4:19: ",
                "tls_server_name only applies to protocol = \"h2\" (TLS to the backends), not \"h2c\"",
            ),
            (
                "protocol = \"h2\"\ntls_ca = \"ca.pem\"\ntls_server_name = \"not a name\"\n",
                "t.toml:5:19: ",
                "tls_server_name \"not a name\" is not a DNS name or IP address",
            ),
            (
                "[upstream.app.health]\ngrpc = true\n",
                "t.toml:4:8: ",
                "health.grpc needs protocol = \"h2c\" or \"h2\" (gRPC runs over HTTP/2), not \"http1\"",
            ),
        ] {
            let err = parse(&format!("{UP}{extra}")).unwrap_err().to_string();
            assert!(err.starts_with(at), "{extra}: {err}");
            assert!(err.contains(msg), "{extra}: {err}");
        }
    }

    #[test]
    fn grpc_health_is_parsed_and_described() {
        let c = parse(&format!(
            "{UP}protocol = \"h2c\"\n[upstream.app.health]\ngrpc = true\n"
        ))
        .unwrap();
        assert!(c.upstreams["app"].health.as_ref().unwrap().grpc);
        let d = c.describe();
        assert!(
            d.contains("  health: gRPC health service (grpc.health.v1.Health/Check) every 2s"),
            "{d}"
        );
        assert!(d.contains("grpc = true"), "{d}");
        let c = parse(&format!("{UP}[upstream.app.health]\n")).unwrap();
        assert!(!c.upstreams["app"].health.as_ref().unwrap().grpc);
        assert!(!c.describe().contains("grpc ="));
    }

    #[test]
    fn relative_ca_paths_follow_the_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.toml");
        std::fs::write(
            &path,
            format!("{UP}protocol = \"h2\"\ntls_ca = \"certs/ca.pem\"\n"),
        )
        .unwrap();
        write_ca(&dir.path().join("certs/ca.pem"));
        let c = Config::load(&path).unwrap();
        assert_eq!(
            c.upstreams["app"].tls_ca.as_ref().unwrap().get_ref(),
            &dir.path().join("certs/ca.pem")
        );
    }

    #[test]
    fn a_bad_tls_ca_is_an_error_at_its_line_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let not_pem = dir.path().join("not-pem.pem");
        std::fs::write(&not_pem, "not a certificate\n").unwrap();
        let garbage = dir.path().join("garbage.pem");
        std::fs::write(
            &garbage,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let missing = dir.path().join("missing.pem");
        for (path, why) in [
            (&missing, "cannot read"),
            (&not_pem, "holds no CERTIFICATE PEM block"),
            (&garbage, "is not an X.509 certificate"),
        ] {
            let err = parse(&format!(
                "{UP}protocol = \"h2\"\ntls_ca = \"{}\"\n",
                path.display()
            ))
            .unwrap_err()
            .to_string();
            assert!(err.starts_with("t.toml:4:10: "), "{err}");
            assert!(err.contains("upstream \"app\": tls_ca: "), "{err}");
            assert!(err.contains(&path.display().to_string()), "{err}");
            assert!(err.contains(why), "{err}");
        }
    }
}

#[cfg(test)]
mod listener_tests {
    use crate::config::Config;

    const UP: &str = "[upstream.app]\nbackends = [{ addr = \"127.0.0.1:9101\" }]\n";

    fn err(server: &str) -> String {
        Config::from_toml_str(&format!("[server]\n{server}\n{UP}"), "t.toml")
            .unwrap_err()
            .to_string()
    }

    const CERT: &str =
        "[[server.tls]]\ncert = \"/nonexistent/c.pem\"\nkey = \"/nonexistent/c.key\"\n";

    #[test]
    fn listener_rules_are_checked_before_any_file_is_read() {
        for (server, want) in [
            (
                "tls_listen = \"127.0.0.1:8443\"",
                "t.toml:2:14: server.tls_listen needs certificates",
            ),
            (
                CERT,
                "t.toml:2:1: [[server.tls]] certificates need a TLS listener",
            ),
            (
                "redirect_listen = \"127.0.0.1:8081\"",
                "server.redirect_listen redirects to HTTPS: it needs server.tls_listen",
            ),
            (
                "redirect_port = 443",
                "server.redirect_port only applies with server.redirect_listen",
            ),
            (
                "listen = \"127.0.0.1:80\"\nadmin = \"127.0.0.1:80\"",
                "server.listen and server.admin are the same address 127.0.0.1:80",
            ),
            (
                "[server.http2]\nmax_concurrent_streams = 0",
                "max_concurrent_streams must be at least 1",
            ),
            (
                "[server.http2]\nkeepalive_timeout = \"0s\"",
                "keepalive_timeout must be greater than zero",
            ),
            (
                &format!("tls_listen = \"127.0.0.1:8443\"\n{CERT}{CERT}"),
                "t.toml:7:8: two [[server.tls]] entries without hosts",
            ),
            (
                &format!(
                    "tls_listen = \"127.0.0.1:8443\"\n{CERT}hosts = [\"a.test\", \"A.test\"]\n"
                ),
                "t.toml:6:20: TLS host \"A.test\" is listed twice (a name picks one certificate)",
            ),
            (
                &format!("tls_listen = \"127.0.0.1:8443\"\n{CERT}hosts = [\"a.*.test\"]\n"),
                "TLS host \"a.*.test\" is not a host name or a wildcard *.example.com",
            ),
            (
                &format!("tls_listen = \"127.0.0.1:8443\"\n{CERT}"),
                "t.toml:4:8: cannot read /nonexistent/c.pem",
            ),
        ] {
            let e = err(server);
            assert!(e.contains(want), "{server}: {e}");
        }
    }
}

#[cfg(test)]
mod field_tests {
    use crate::config::Config;
    use crate::{AccessLog, DetectorKind, HashCompat};

    fn parse(s: &str) -> crate::error::Result<Config> {
        Config::from_toml_str(s, "t.toml")
    }

    const CH: &str =
        "[upstream.app]\nstrategy = \"consistent_hash\"\nbackends = [{ addr = \"127.0.0.1:1\" }]\n";

    #[test]
    fn access_log_takes_a_bool_or_a_format_name() {
        let log = |v: &str| {
            parse(&format!("[server]\naccess_log = {v}\n{CH}")).map(|c| c.server.access_log)
        };
        assert_eq!(log("false").unwrap(), AccessLog::Off);
        assert_eq!(log("true").unwrap(), AccessLog::Text);
        assert_eq!(log("\"text\"").unwrap(), AccessLog::Text);
        assert_eq!(log("\"json\"").unwrap(), AccessLog::Json);
        let e = log("\"xml\"").unwrap_err().to_string();
        assert!(e.contains("t.toml:2:") && e.contains("\"xml\""), "{e}");
        let c = parse(&format!("[server]\naccess_log = \"json\"\n{CH}")).unwrap();
        assert!(
            c.describe().contains("access_log = \"json\""),
            "{}",
            c.describe()
        );
    }

    #[test]
    fn hash_compat_is_typed_and_only_for_consistent_hash() {
        let c = parse(&format!("{CH}hash_compat = \"nginx\"\n")).unwrap();
        assert_eq!(
            c.upstreams["app"]
                .hash_compat
                .as_ref()
                .map(|h| *h.get_ref()),
            Some(HashCompat::Nginx)
        );
        assert!(
            c.describe().contains("compatible with nginx"),
            "{}",
            c.describe()
        );
        let e = parse(&format!("{CH}hash_compat = \"memcached\"\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("t.toml:4:") && e.contains("ketama"), "{e}");
        let e = parse(
            "[upstream.app]\nhash_compat = \"ketama\"\nbackends = [{ addr = \"127.0.0.1:1\" }]\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("t.toml:2:") && e.contains("consistent_hash"),
            "{e}"
        );
    }

    #[test]
    fn accrual_settings_have_defaults_and_ranges() {
        let c = parse(&format!(
            "{CH}[upstream.app.health]\ndetector = \"accrual\"\n"
        ))
        .unwrap();
        let h = c.upstreams["app"].health.clone().unwrap();
        assert_eq!(h.detector, DetectorKind::Accrual);
        assert_eq!((h.phi_threshold, h.confirm), (8.0, 3));
        assert!(
            c.describe().contains("detector: phi accrual"),
            "{}",
            c.describe()
        );
        let plain = parse(&format!("{CH}[upstream.app.health]\n")).unwrap();
        assert_eq!(
            plain.upstreams["app"].health.as_ref().unwrap().detector,
            DetectorKind::RiseFall
        );
        for bad in [
            "phi_threshold = 0.0",
            "phi_threshold = -1.0",
            "confirm = 17",
            "min_std_dev = \"0s\"",
        ] {
            let e = parse(&format!("{CH}[upstream.app.health]\n{bad}\n"));
            assert!(e.is_err(), "{bad} accepted");
        }
        assert!(parse(&format!(
            "{CH}[upstream.app.health]\ndetector = \"gossip\"\n"
        ))
        .is_err());
    }

    #[test]
    fn health_quorum_is_at_least_one() {
        let up = "[upstream.app]\nbackends_from = \"cluster\"\n";
        let c = parse(&format!(
            "[cluster]\nendpoints = [\"http://127.0.0.1:2379\"]\nhealth_quorum = 2\n{up}"
        ))
        .unwrap();
        assert_eq!(
            c.cluster
                .as_ref()
                .unwrap()
                .health_quorum
                .as_ref()
                .map(|q| *q.get_ref()),
            Some(2)
        );
        assert!(
            c.describe().contains("when 2 live proxies say so"),
            "{}",
            c.describe()
        );
        let e = parse(&format!(
            "[cluster]\nendpoints = [\"http://127.0.0.1:2379\"]\nhealth_quorum = 0\n{up}"
        ))
        .unwrap_err()
        .to_string();
        assert!(e.contains("t.toml:3:") && e.contains("at least 1"), "{e}");
    }
}

#[cfg(test)]
mod value_location_tests {
    use crate::config::{line_col, Config};

    const UP: &str = "[upstream.app]\nbackends = [{ addr = \"127.0.0.1:9101\" }]\n";

    /// `t.toml:LINE:COL: ` of `value`, the first one from where `line` first is in `text`.
    fn position(text: &str, line: &str, value: &str) -> String {
        let start = text.find(line).expect("the line is in the text");
        let offset = start + text[start..].find(value).expect("the value follows");
        let (l, c) = line_col(text, offset);
        format!("t.toml:{l}:{c}: ")
    }

    /// `text` is refused with `msg`, located at `value` (see [`position`]).
    fn assert_located(text: &str, line: &str, value: &str, msg: &str) {
        let err = Config::from_toml_str(text, "t.toml")
            .unwrap_err()
            .to_string();
        let at = position(text, line, value);
        assert!(err.starts_with(&at), "{text}\nwant {at}, got: {err}");
        assert!(err.contains(msg), "{text}\n{err}");
    }

    #[test]
    fn value_errors_point_at_the_value_not_its_table() {
        let two_routes = format!(
            "{UP}[[route]]\nupstream = \"app\"\npath_prefix = \"/a\"\n\
             [[route]]\nupstream = \"app\"\npath_prefix = \"b\"\n"
        );
        for (text, line, value, msg) in [
            (
                format!("{UP}[upstream.app.health]\npath = \"/\"\ninterval = \"0s\"\n"),
                "interval = \"0s\"",
                "\"0s\"",
                "health.interval must be greater than zero",
            ),
            (
                format!("{UP}[upstream.app.health]\nfall = 2\nrise = 0\n"),
                "rise = 0",
                "0",
                "health.rise must be at least 1",
            ),
            (
                format!("{UP}health.fall = 0\n"),
                "health.fall = 0",
                "0",
                "health.fall must be at least 1",
            ),
            (
                format!("[server]\nworkers = 2\nmax_header_bytes = 0\n{UP}"),
                "max_header_bytes = 0",
                "0",
                "server.max_header_bytes must be at least 256",
            ),
            (
                format!("[server]\nworkers = 2\nrequest_timeout = \"0s\"\n{UP}"),
                "request_timeout = \"0s\"",
                "\"0s\"",
                "server.request_timeout must be greater than zero",
            ),
            (
                format!("server.max_connections = 0\n{UP}"),
                "max_connections = 0",
                "0",
                "server.max_connections must be between 1 and 1000000",
            ),
            (
                format!("[server.http2]\ncleartext = true\nmax_concurrent_streams = 0\n{UP}"),
                "max_concurrent_streams = 0",
                "0",
                "max_concurrent_streams must be at least 1",
            ),
            (
                format!(
                    "{UP}[upstream.app.passive]\nejection_time = \"10s\"\nmax_ejection_time = \"5s\"\n"
                ),
                "max_ejection_time = \"5s\"",
                "\"5s\"",
                "passive.max_ejection_time must be at least ejection_time",
            ),
            (
                // Only ejection_time is written: it is the one past the default cap.
                format!("{UP}[upstream.app.passive]\nconsecutive_failures = 3\nejection_time = \"1h\"\n"),
                "ejection_time = \"1h\"",
                "\"1h\"",
                "passive.max_ejection_time must be at least ejection_time",
            ),
            (
                format!("{UP}idle_timeout = \"0s\"\n"),
                "idle_timeout = \"0s\"",
                "\"0s\"",
                "idle_timeout must be greater than zero",
            ),
            (
                format!("{UP}[upstream.app.retry]\nattempts = 17\n"),
                "attempts = 17",
                "17",
                "retry.attempts must be at most 16",
            ),
            (
                // The second route, not the first.
                two_routes.clone(),
                "path_prefix = \"b\"",
                "\"b\"",
                "path_prefix \"b\" must start with '/'",
            ),
            (
                "[cluster]\nendpoints = [\"http://127.0.0.1:2379\"]\nlease_ttl = \"2h\"\n\
                 [upstream.app]\nbackends_from = \"cluster\"\n"
                    .to_string(),
                "lease_ttl = \"2h\"",
                "\"2h\"",
                "cluster.lease_ttl 2h must be whole seconds",
            ),
            (
                // A defaulted key is located at its own table's header, not at the
                // first header that begins the same way ([upstream.apple]).
                "[upstream.apple]\nbackends = [{ addr = \"x:1\" }]\n[upstream.app]\nstrategy = \"random\"\n"
                    .to_string(),
                "[upstream.app]",
                "[upstream.app]",
                "upstream \"app\" has no backends",
            ),
        ] {
            assert_located(&text, line, value, msg);
        }
    }

    #[test]
    fn names_and_paths_that_would_break_logs_are_rejected_where_written() {
        let route = |field: &str| format!("{UP}[[route]]\nupstream = \"app\"\n{field}\n");
        for (text, line, value, msg) in [
            (
                "[upstream.\"nl\\nup\"]\nbackends = [{ addr = \"x:1\" }]\n".to_string(),
                "[upstream.",
                "[upstream.",
                "upstream name \"nl\\nup\" may hold only letters, digits and . _ : -",
            ),
            (
                "[server]\nworkers = 1\n[upstream.\"ha\\\"sh\\\\up\"]\nbackends = [{ addr = \"x:1\" }]\n"
                    .to_string(),
                "[upstream.",
                "[upstream.",
                "upstream name \"ha\\\"sh\\\\up\" may hold only",
            ),
            (
                "[upstream.\"\"]\nbackends = [{ addr = \"x:1\" }]\n".to_string(),
                "[upstream.",
                "[upstream.",
                "upstream name \"\" must not be empty",
            ),
            (
                // Inline: at the table that the name opens.
                "upstream = { \"a b\" = { backends = [{ addr = \"x:1\" }] } }\n".to_string(),
                "{ backends",
                "{ backends",
                "upstream name \"a b\" may hold only",
            ),
            (
                route("host = \"a\\u0001b.test\""),
                "host = ",
                "\"a",
                "route host \"a\\u{1}b.test\" is not a host name",
            ),
            (
                route("host = \"a\\\"b.test\""),
                "host = ",
                "\"a",
                "is not a host name",
            ),
            (
                route("path_prefix = \"/a b\""),
                "path_prefix = ",
                "\"/a b\"",
                "path_prefix \"/a b\" is not a request path",
            ),
            (
                format!("{UP}[upstream.app.health]\npath = \"/h\\r\\nX: y\"\n"),
                "path = ",
                "\"/h",
                "health path \"/h\\r\\nX: y\" is not a request path",
            ),
            (
                format!("{UP}[upstream.app.health]\npath = \"/h\\\\z\"\n"),
                "path = ",
                "\"/h",
                "is not a request path",
            ),
        ] {
            assert_located(&text, line, value, msg);
        }
        // The names and paths users write still pass.
        let c = Config::from_toml_str(
            "[upstream.\"api-v2.eu_1:x\"]\nbackends = [{ addr = \"x:1\" }]\n\
             [upstream.\"api-v2.eu_1:x\".health]\npath = \"/healthz?full=1\"\n\
             [[route]]\nhost = \"[::1]:8080\"\npath_prefix = \"/api/v2%20x\"\nupstream = \"api-v2.eu_1:x\"\n",
            "t.toml",
        )
        .unwrap();
        assert_eq!(c.routes[0].host.as_deref(), Some("[::1]"));
    }
}
