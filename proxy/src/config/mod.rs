//! The TOML config file: types with defaults, parsing with file/line/column errors, validation.
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;
use toml::Spanned;

/// Strategy names the `strategy` key accepts (the balancer's `StrategyKind` names).
pub const STRATEGIES: &[&str] = &[
    "round_robin",
    "weighted_round_robin",
    "least_connections",
    "least_response_time",
    "power_of_two",
    "random",
    "consistent_hash",
];

/// A whole config file.
///
/// ```
/// let cfg = ringleader_proxy::Config::from_toml_str(
///     "[upstream.app]\nbackends = [{ addr = \"127.0.0.1:9101\" }]\n",
///     "inline.toml",
/// ).unwrap();
/// assert_eq!(cfg.routes.len(), 1); // one upstream and no routes: "/" goes to it
/// assert_eq!(cfg.server.listen.port(), 8080);
/// ```
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Listeners, limits and timeouts.
    #[serde(default)]
    pub server: ServerConfig,
    /// Routes, first match wins.
    #[serde(default, rename = "route")]
    pub routes: Vec<RouteConfig>,
    /// Upstreams by name.
    #[serde(default, rename = "upstream")]
    pub upstreams: BTreeMap<String, UpstreamConfig>,
}

/// `[server]`: listeners, limits, timeouts.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Proxy listener.
    pub listen: SocketAddr,
    /// Admin listener (`/metrics`, `/status`); loopback by default.
    pub admin: SocketAddr,
    /// Tokio worker threads; 0 = one per core, 1 = a single-threaded runtime.
    pub workers: usize,
    /// A client must send a complete request head within this time; also
    /// bounds how long an idle keep-alive connection stays open.
    #[serde(with = "dur")]
    pub header_read_timeout: Duration,
    /// Per attempt: time from the end of the request body to the backend's
    /// response head (504). A client that sends nothing for this long while
    /// the backend waits for more of its body gets 408.
    #[serde(with = "dur")]
    pub request_timeout: Duration,
    /// Maximum size of a request head (request line + headers); larger gets 431.
    pub max_header_bytes: usize,
    /// Maximum concurrent client connections; more wait in the kernel backlog.
    pub max_connections: usize,
    /// On SIGTERM/SIGINT, how long in-flight requests may take to finish.
    #[serde(with = "dur")]
    pub shutdown_grace: Duration,
    /// Log one line per request (target `ringleader::access`, level info).
    pub access_log: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            admin: SocketAddr::from(([127, 0, 0, 1], 9090)),
            workers: 0,
            header_read_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_header_bytes: 65536,
            max_connections: 10_000,
            shutdown_grace: Duration::from_secs(30),
            access_log: false,
        }
    }
}

/// `[[route]]`: host (optional) + path prefix -> upstream.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Host to match (case-insensitive, port ignored); absent = any host.
    #[serde(default)]
    pub host: Option<String>,
    /// Path prefix to match (plain byte prefix, like nginx `location /prefix`).
    #[serde(default = "default_prefix")]
    pub path_prefix: String,
    /// Name of the upstream that serves the route.
    pub upstream: Spanned<String>,
}

fn default_prefix() -> String {
    "/".to_string()
}

/// `[upstream.NAME]`: a set of backends with a strategy.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// Balancing strategy (see [`STRATEGIES`]).
    #[serde(default = "default_strategy")]
    pub strategy: Spanned<String>,
    /// `consistent_hash` only: `client_ip` | `header:NAME` | `cookie:NAME` | `path` | `query:NAME`.
    #[serde(default)]
    pub hash_key: Option<Spanned<String>>,
    /// TCP connect timeout to a backend.
    #[serde(default = "default_connect_timeout", with = "dur")]
    pub connect_timeout: Duration,
    /// Pooled keep-alive connections idle longer than this are not reused
    /// (keep it below the backends' own keep-alive timeout).
    #[serde(default = "default_idle_timeout", with = "dur")]
    pub idle_timeout: Duration,
    /// The backends (required, at least one).
    pub backends: Vec<BackendConfig>,
    /// Active health checks; absent = only passive outlier detection.
    #[serde(default)]
    pub health: Option<HealthConfig>,
    /// Passive outlier detection.
    #[serde(default)]
    pub passive: PassiveConfig,
    /// Retries.
    #[serde(default)]
    pub retry: RetryConfig,
}

fn default_strategy() -> Spanned<String> {
    Spanned::new(0..0, "round_robin".to_string())
}

fn default_idle_timeout() -> Duration {
    Duration::from_secs(30)
}

fn default_connect_timeout() -> Duration {
    Duration::from_secs(1)
}

/// One backend: `{ addr = "host:port", weight = 1 }`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BackendConfig {
    /// `host:port` of the backend.
    pub addr: Spanned<String>,
    /// Relative weight (>= 1).
    #[serde(default = "default_weight")]
    pub weight: u32,
}

fn default_weight() -> u32 {
    1
}

/// `[upstream.NAME.health]`: active HTTP checks on a fresh connection.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthConfig {
    /// Path requested with GET; 2xx/3xx passes.
    pub path: String,
    /// Time between checks (plus up to 10% jitter).
    #[serde(with = "dur")]
    pub interval: Duration,
    /// A check that takes longer fails.
    #[serde(with = "dur")]
    pub timeout: Duration,
    /// Consecutive passes to mark a backend up.
    pub rise: u32,
    /// Consecutive failures to mark a backend down.
    pub fall: u32,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            path: "/healthz".to_string(),
            interval: Duration::from_secs(2),
            timeout: Duration::from_secs(1),
            rise: 2,
            fall: 3,
        }
    }
}

/// `[upstream.NAME.passive]`: outlier detection from live traffic.
///
/// ```
/// let p = ringleader_proxy::PassiveConfig::default();
/// assert_eq!((p.consecutive_failures, p.max_ejection_percent, p.panic_mode), (5, 50, true));
/// ```
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PassiveConfig {
    /// Consecutive failures (errors, timeouts, 5xx) that eject a backend; 0 = never.
    /// A refused connection ejects at once.
    pub consecutive_failures: u32,
    /// First ejection time; doubles per repeated ejection, and the doubling is undone
    /// one step per `ejection_time` the backend stays healthy. A passing active
    /// check ends an ejection early.
    #[serde(with = "dur")]
    pub ejection_time: Duration,
    /// Cap of the doubling ejection time.
    #[serde(with = "dur")]
    pub max_ejection_time: Duration,
    /// Never eject more than this share of the upstream's backends for consecutive
    /// failures (a refused connection ejects regardless; 0 = never eject at all).
    pub max_ejection_percent: u32,
    /// When no backend is available (all down or ejected), try them all anyway
    /// instead of answering 503 (nginx and Envoy do the same); counted in
    /// `ringleader_upstream_panic_picks_total`.
    pub panic_mode: bool,
}

impl Default for PassiveConfig {
    fn default() -> Self {
        PassiveConfig {
            consecutive_failures: 5,
            ejection_time: Duration::from_secs(30),
            max_ejection_time: Duration::from_secs(300),
            max_ejection_percent: 50,
            panic_mode: true,
        }
    }
}

/// `[upstream.NAME.retry]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    /// Retries after the first try, each on a different backend.
    pub attempts: u32,
    /// Retries may add at most this share of the upstream's requests (0 = no retries).
    pub budget_percent: u32,
    /// What triggers a retry: `connect_error`, `timeout`, `5xx`.
    pub on: Vec<Spanned<String>>,
    /// Request bodies up to this size are kept so the request can be retried;
    /// larger bodies stream and are retried only if no byte was sent yet.
    pub max_body_bytes: usize,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            attempts: 2,
            budget_percent: 20,
            on: vec![
                Spanned::new(0..0, "connect_error".to_string()),
                Spanned::new(0..0, "timeout".to_string()),
            ],
            max_body_bytes: 64 * 1024,
        }
    }
}

/// Duration fields as human-readable strings ("250ms", "2s").
mod dur {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s).map_err(|e| {
            serde::de::Error::custom(format!(
                "invalid duration {s:?}: {e} (write e.g. \"250ms\" or \"2s\")"
            ))
        })
    }

    pub fn serialize<S: Serializer>(v: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*v).to_string())
    }
}

/// Convert a byte offset in `src` to a 1-based (line, column in characters).
pub fn line_col(src: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(src.len());
    let before = src.get(..offset).unwrap_or(src);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

struct Ctx<'a> {
    src: &'a str,
    file: &'a str,
}

impl Ctx<'_> {
    fn err(&self, span: Option<std::ops::Range<usize>>, message: impl Into<String>) -> Error {
        let (line, column) = match span {
            Some(s) if s.end > 0 => line_col(self.src, s.start),
            _ => (1, 1),
        };
        Error::Config {
            file: self.file.to_string(),
            line,
            column,
            message: message.into(),
        }
    }

    /// Position of `[upstream.NAME]` (best effort, for errors on defaulted fields).
    fn upstream_span(&self, name: &str) -> Option<std::ops::Range<usize>> {
        let needle = format!("[upstream.{name}");
        self.src.find(&needle).map(|i| i..i + needle.len())
    }
}

impl Config {
    /// Read, parse and validate a config file.
    pub fn load(path: &Path) -> Result<Config> {
        let src = std::fs::read_to_string(path).map_err(|source| Error::ReadConfig {
            path: path.to_path_buf(),
            source,
        })?;
        Config::from_toml_str(&src, &path.display().to_string())
    }

    /// Parse and validate config text; `file` names it in errors.
    pub fn from_toml_str(src: &str, file: &str) -> Result<Config> {
        let ctx = Ctx { src, file };
        let mut cfg: Config = toml::from_str(src).map_err(|e| {
            let msg = e.message().trim_end().to_string();
            ctx.err(e.span(), msg)
        })?;
        cfg.validate(&ctx)?;
        Ok(cfg)
    }

    fn validate(&mut self, ctx: &Ctx<'_>) -> Result<()> {
        let s = &self.server;
        if s.max_header_bytes < 256 {
            return Err(ctx.err(None, "server.max_header_bytes must be at least 256"));
        }
        if s.max_connections == 0 || s.max_connections > 1_000_000 {
            return Err(ctx.err(None, "server.max_connections must be between 1 and 1000000"));
        }
        if s.workers > 1024 {
            return Err(ctx.err(
                None,
                "server.workers must be at most 1024 (0 = one per core)",
            ));
        }
        for (what, d) in [
            ("header_read_timeout", s.header_read_timeout),
            ("request_timeout", s.request_timeout),
        ] {
            if d.is_zero() {
                return Err(ctx.err(None, format!("server.{what} must be greater than zero")));
            }
        }
        if self.upstreams.is_empty() {
            return Err(ctx.err(
                None,
                "no upstream: add an [upstream.NAME] table with backends",
            ));
        }
        for (name, up) in &self.upstreams {
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
        for route in &mut self.routes {
            let up = route.upstream.get_ref();
            if !self.upstreams.contains_key(up) {
                return Err(ctx.err(
                    Some(route.upstream.span()),
                    format!("route refers to unknown upstream {up:?}"),
                ));
            }
            if !route.path_prefix.starts_with('/') {
                return Err(ctx.err(
                    Some(route.upstream.span()),
                    format!("path_prefix {:?} must start with '/'", route.path_prefix),
                ));
            }
            if let Some(h) = &mut route.host {
                let host = strip_port(h).to_ascii_lowercase();
                if host.is_empty() || host.bytes().any(|b| b.is_ascii_whitespace() || b == b'/') {
                    return Err(ctx.err(
                        Some(route.upstream.span()),
                        format!("route host {h:?} is not a host name"),
                    ));
                }
                *h = host;
            }
        }
        Ok(())
    }

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
            let _ = writeln!(
                out,
                "upstream {name}: {} over {} backend(s); connect timeout {}, idle keep-alive {}",
                u.strategy.get_ref(),
                u.backends.len(),
                humantime::format_duration(u.connect_timeout),
                humantime::format_duration(u.idle_timeout)
            );
            if u.strategy.get_ref() == "consistent_hash" {
                let key = u
                    .hash_key
                    .as_ref()
                    .map_or("client_ip", |k| k.get_ref().as_str());
                let _ = writeln!(out, "  hash key: {key}");
            }
            for b in &u.backends {
                let _ = writeln!(out, "  - {} (weight {})", b.addr.get_ref(), b.weight);
            }
            match &u.health {
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
            let on: Vec<&str> = u.retry.on.iter().map(|o| o.get_ref().as_str()).collect();
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

fn validate_upstream(ctx: &Ctx<'_>, name: &str, up: &UpstreamConfig) -> Result<()> {
    let strategy = up.strategy.get_ref();
    if !STRATEGIES.contains(&strategy.as_str()) {
        return Err(ctx.err(
            Some(up.strategy.span()),
            format!(
                "unknown strategy {strategy:?}; expected one of {}",
                STRATEGIES.join(", ")
            ),
        ));
    }
    if let Some(k) = &up.hash_key {
        if strategy != "consistent_hash" {
            return Err(ctx.err(
                Some(k.span()),
                "hash_key only applies to strategy = \"consistent_hash\"",
            ));
        }
        HashKey::parse(k.get_ref()).map_err(|m| ctx.err(Some(k.span()), m))?;
    }
    if up.backends.is_empty() {
        return Err(ctx.err(
            ctx.upstream_span(name),
            format!("upstream {name:?} has no backends"),
        ));
    }
    if up.idle_timeout.is_zero() {
        return Err(ctx.err(
            ctx.upstream_span(name),
            "idle_timeout must be greater than zero",
        ));
    }
    if up.connect_timeout.is_zero() {
        return Err(ctx.err(
            ctx.upstream_span(name),
            "connect_timeout must be greater than zero",
        ));
    }
    let mut seen = std::collections::HashSet::new();
    for b in &up.backends {
        let addr = b.addr.get_ref();
        let ok = addr
            .parse::<http::uri::Authority>()
            .ok()
            .filter(|a| a.port_u16().is_some() && !a.as_str().contains('@'))
            .is_some();
        if !ok {
            return Err(ctx.err(
                Some(b.addr.span()),
                format!("backend addr {addr:?} must be host:port"),
            ));
        }
        if b.weight == 0 {
            return Err(ctx.err(Some(b.addr.span()), "backend weight must be at least 1"));
        }
        if !seen.insert(addr.as_str()) {
            return Err(ctx.err(
                Some(b.addr.span()),
                format!("backend {addr:?} is listed twice"),
            ));
        }
    }
    if let Some(h) = &up.health {
        if !h.path.starts_with('/') {
            return Err(ctx.err(
                ctx.upstream_span(name),
                format!("health path {:?} must start with '/'", h.path),
            ));
        }
        if h.rise == 0 || h.fall == 0 {
            return Err(ctx.err(
                ctx.upstream_span(name),
                "health rise and fall must be at least 1",
            ));
        }
        if h.interval.is_zero() || h.timeout.is_zero() {
            return Err(ctx.err(
                ctx.upstream_span(name),
                "health interval and timeout must be greater than zero",
            ));
        }
    }
    let p = &up.passive;
    if p.max_ejection_percent > 100 {
        return Err(ctx.err(
            ctx.upstream_span(name),
            "passive.max_ejection_percent must be at most 100",
        ));
    }
    if p.max_ejection_time < p.ejection_time {
        return Err(ctx.err(
            ctx.upstream_span(name),
            "passive.max_ejection_time must be at least ejection_time",
        ));
    }
    let r = &up.retry;
    if r.budget_percent > 100 {
        return Err(ctx.err(
            ctx.upstream_span(name),
            "retry.budget_percent must be at most 100",
        ));
    }
    if r.attempts > 16 {
        return Err(ctx.err(ctx.upstream_span(name), "retry.attempts must be at most 16"));
    }
    for on in &r.on {
        if RetryOn::parse(on.get_ref()).is_none() {
            return Err(ctx.err(
                Some(on.span()),
                format!(
                    "unknown retry condition {:?}; expected connect_error, timeout or 5xx",
                    on.get_ref()
                ),
            ));
        }
    }
    Ok(())
}

fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.split_inclusive(']').next().unwrap_or(host);
    }
    match host.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') && p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

/// What a consistent-hash upstream hashes on.
///
/// ```
/// use ringleader_proxy::HashKey;
/// assert_eq!(HashKey::parse("cookie:session"), Ok(HashKey::Cookie("session".into())));
/// assert!(HashKey::parse("body").is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum HashKey {
    /// The client's IP address.
    ClientIp,
    /// The value of a request header.
    Header(http::HeaderName),
    /// The value of a cookie.
    Cookie(String),
    /// The request path.
    Path,
    /// The value of a query parameter.
    Query(String),
}

impl HashKey {
    /// Parse `client_ip` | `header:NAME` | `cookie:NAME` | `path` | `query:NAME`.
    pub fn parse(s: &str) -> std::result::Result<HashKey, String> {
        let bad = || {
            format!("invalid hash_key {s:?}; expected client_ip, header:NAME, cookie:NAME, path or query:NAME")
        };
        match s.split_once(':') {
            None if s == "client_ip" => Ok(HashKey::ClientIp),
            None if s == "path" => Ok(HashKey::Path),
            Some(("header", n)) if !n.is_empty() => http::HeaderName::from_bytes(n.as_bytes())
                .map(HashKey::Header)
                .map_err(|_| bad()),
            Some(("cookie", n)) if !n.is_empty() => Ok(HashKey::Cookie(n.to_string())),
            Some(("query", n)) if !n.is_empty() => Ok(HashKey::Query(n.to_string())),
            _ => Err(bad()),
        }
    }
}

/// A retry condition of `retry.on`.
///
/// ```
/// use ringleader_proxy::RetryOn;
/// assert_eq!(RetryOn::parse("5xx"), Some(RetryOn::Status5xx));
/// assert_eq!(RetryOn::parse("4xx"), None);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RetryOn {
    /// Transport failure before a response head: connect refused/timed out, connection reset.
    ConnectError,
    /// No response head within `request_timeout`.
    Timeout,
    /// The backend answered 5xx.
    Status5xx,
}

impl RetryOn {
    /// Parse `connect_error` | `timeout` | `5xx`.
    pub fn parse(s: &str) -> Option<RetryOn> {
        match s {
            "connect_error" => Some(RetryOn::ConnectError),
            "timeout" => Some(RetryOn::Timeout),
            "5xx" => Some(RetryOn::Status5xx),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Config> {
        Config::from_toml_str(s, "t.toml")
    }

    const MIN: &str = "[upstream.app]\nbackends = [{ addr = \"127.0.0.1:9101\" }]\n";

    #[test]
    fn defaults_fill_everything_but_backends() {
        let c = parse(MIN).unwrap();
        assert_eq!(c.server.header_read_timeout, Duration::from_secs(10));
        assert_eq!(c.server.max_header_bytes, 65536);
        let up = &c.upstreams["app"];
        assert_eq!(up.strategy.get_ref(), "round_robin");
        assert_eq!(up.backends[0].weight, 1);
        assert_eq!(up.retry.attempts, 2);
        assert!(up.health.is_none());
        assert_eq!(c.routes[0].upstream.get_ref(), "app");
    }

    #[test]
    fn durations_are_human_readable() {
        let c = parse(&format!(
            "[server]\nheader_read_timeout = \"250ms\"\nshutdown_grace = \"2s\"\n{MIN}"
        ))
        .unwrap();
        assert_eq!(c.server.header_read_timeout, Duration::from_millis(250));
        assert_eq!(c.server.shutdown_grace, Duration::from_secs(2));
    }

    #[test]
    fn unknown_key_names_line_and_column() {
        let err = parse(&format!(
            "[server]\nlisten = \"127.0.0.1:1\"\n  bogus = 1\n{MIN}"
        ))
        .unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("t.toml:3:3: "), "{msg}");
        assert!(msg.contains("bogus"), "{msg}");
    }

    #[test]
    fn bad_duration_is_located() {
        let err = parse(&format!("[server]\nrequest_timeout = \"soon\"\n{MIN}")).unwrap_err();
        assert!(err.to_string().starts_with("t.toml:2:19: "), "{err}");
        assert!(err.to_string().contains("invalid duration"), "{err}");
    }

    #[test]
    fn unknown_upstream_in_route_is_located() {
        let err = parse(&format!("{MIN}[[route]]\nupstream = \"nope\"\n")).unwrap_err();
        assert!(err.to_string().starts_with("t.toml:4:12: "), "{err}");
    }

    #[test]
    fn unknown_strategy_and_bad_addr() {
        let err = parse("[upstream.a]\nstrategy = \"fastest\"\nbackends = [{ addr = \"x:1\" }]\n")
            .unwrap_err();
        assert!(err.to_string().contains("unknown strategy"), "{err}");
        let err = parse("[upstream.a]\nbackends = [{ addr = \"nohost\" }]\n").unwrap_err();
        assert!(err.to_string().starts_with("t.toml:2:22: "), "{err}");
    }

    #[test]
    fn several_upstreams_need_routes() {
        let err = parse("[upstream.a]\nbackends = [{ addr = \"x:1\" }]\n[upstream.b]\nbackends = [{ addr = \"y:1\" }]\n")
            .unwrap_err();
        assert!(err.to_string().contains("no [[route]]"), "{err}");
    }

    #[test]
    fn hash_key_forms() {
        assert_eq!(HashKey::parse("client_ip"), Ok(HashKey::ClientIp));
        assert_eq!(
            HashKey::parse("cookie:sid"),
            Ok(HashKey::Cookie("sid".into()))
        );
        assert!(HashKey::parse("header:").is_err());
        assert!(HashKey::parse("body").is_err());
        let err = parse("[upstream.a]\nhash_key = \"path\"\nbackends = [{ addr = \"x:1\" }]\n")
            .unwrap_err();
        assert!(err.to_string().contains("only applies"), "{err}");
    }

    #[test]
    fn route_host_is_normalised() {
        let c = parse(&format!(
            "{MIN}[[route]]\nhost = \"API.Example.com:8080\"\nupstream = \"app\"\n"
        ))
        .unwrap();
        assert_eq!(c.routes[0].host.as_deref(), Some("api.example.com"));
    }

    #[test]
    fn strategy_names_match_the_balancer() {
        let names: Vec<&str> = ringleader_balancer::StrategyKind::ALL
            .iter()
            .map(|k| k.name())
            .collect();
        assert_eq!(names, STRATEGIES);
    }

    #[test]
    fn line_col_counts_characters() {
        assert_eq!(line_col("ab\ncdé\nx", 8), (3, 1));
        assert_eq!(line_col("ab\ncdé", 5), (2, 3));
        assert_eq!(line_col("", 10), (1, 1));
    }

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
    fn example_config_is_valid() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/ringleader.toml");
        let c = Config::load(Path::new(path)).unwrap();
        assert!(!c.routes.is_empty());
        assert!(c.describe().contains("# resolved config"));
    }
}
