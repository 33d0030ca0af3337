//! The TOML config file: the typed schema with its defaults (enums deserialised directly,
//! so a bad name is an error located at its file, line and column), and parsing.
use crate::error::{Error, Result};
use ringleader_balancer::StrategyKind;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;
use toml::Spanned;

mod describe;
mod validate;

pub(crate) use validate::{backend_name_problem, backends_problem, is_host_port};

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
    /// `[cluster]`: the etcd cluster that leases the X-Request-Id worker id and
    /// holds the members of upstreams with `backends_from = "cluster"`; absent =
    /// no cluster (worker id from `RINGLEADER_WORKER_ID`, backends from this file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterConfig>,
}

/// `[cluster]`: where etcd is, the namespace of this fleet's keys, the lease TTL.
///
/// ```
/// let cfg = ringleader_proxy::Config::from_toml_str(r#"
///     [cluster]
///     endpoints = ["http://127.0.0.1:2379"]
///     [upstream.app]
///     backends_from = "cluster"
/// "#, "inline.toml").unwrap();
/// let cluster = cfg.cluster.as_ref().unwrap();
/// assert_eq!(cluster.namespace.get_ref(), "default");
/// assert_eq!(cluster.lease_ttl, std::time::Duration::from_secs(10));
/// assert!(cfg.upstreams["app"].backends.is_empty()); // they come from etcd
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// etcd client URLs, `http://host:port` (at least one); requests are balanced
    /// over them. etcd 3.5 or later in production.
    pub endpoints: Vec<Spanned<String>>,
    /// Keys live under `/ringleader/<namespace>/`, so fleets can share one etcd:
    /// 1 to 64 characters of `[A-Za-z0-9._-]`. Default `default`.
    #[serde(default = "default_namespace")]
    pub namespace: Spanned<String>,
    /// TTL of the lease that holds this proxy's X-Request-Id worker id: whole
    /// seconds, 1s to 1h. A proxy that dies frees its worker id this long after;
    /// one cut off from etcd stops issuing Snowflake request IDs a fifth of it
    /// before then. Default `10s`.
    #[serde(default = "default_lease_ttl", with = "dur")]
    pub lease_ttl: Duration,
    /// How many live proxies must say a backend is down (their subjective
    /// verdicts, published under their leases) before it is objectively down:
    /// removed from consistent-hash rings on every proxy at once. Absent = a
    /// majority of the live proxies (Redis Sentinel's rule); at least 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_quorum: Option<Spanned<u32>>,
}

fn default_namespace() -> Spanned<String> {
    Spanned::new(0..0, "default".to_string())
}

fn default_lease_ttl() -> Duration {
    Duration::from_secs(10)
}

/// Where an upstream's backends come from, when not from a `backends` list.
///
/// ```
/// use ringleader_proxy::BackendsFrom;
/// assert_eq!(BackendsFrom::Cluster.to_string(), "cluster");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BackendsFrom {
    /// etcd, under `/ringleader/<namespace>/upstreams/<name>/backends/<id>`, each
    /// `{"addr": "host:port", "weight": N}`; needs a `[cluster]` table.
    Cluster,
}

impl<'de> Deserialize<'de> for BackendsFrom {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<BackendsFrom, D::Error> {
        by_name(d, "a backends source", |s| match s {
            "cluster" => Ok(BackendsFrom::Cluster),
            _ => Err(format!("unknown backends_from {s:?}; expected \"cluster\"")),
        })
    }
}

impl fmt::Display for BackendsFrom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BackendsFrom::Cluster => f.write_str("cluster"),
        }
    }
}

impl Serialize for BackendsFrom {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// `[server]`: listeners, limits, timeouts.
///
/// Listeners work as in nginx (`listen 80; listen 443 ssl;`) or HAProxy (one
/// `bind` per port, `ssl crt ...` on the TLS one): `listen` is plain HTTP
/// (HTTP/1.1, and HTTP/2 with prior knowledge unless `http2.cleartext = false`),
/// `tls_listen` is HTTPS with the `[[server.tls]]` certificates (ALPN `h2` and
/// `http/1.1`), and `redirect_listen` answers every request with a redirect to
/// the HTTPS listener. Both extra listeners are optional; all share the limits.
///
/// ```
/// let err = ringleader_proxy::Config::from_toml_str(r#"
///     [server]
///     listen = "127.0.0.1:8080"
///     tls_listen = "127.0.0.1:8443"
///     [[server.tls]]                     # the default certificate (no hosts)
///     cert = "/etc/ringleader/default.pem"
///     key = "/etc/ringleader/default.key"
///     [[server.tls]]
///     cert = "/etc/ringleader/api.pem"
///     key = "/etc/ringleader/api.key"
///     hosts = ["api.example.com", "*.api.example.com"]
///     [upstream.app]
///     backends = [{ addr = "127.0.0.1:9101" }]
/// "#, "inline.toml").unwrap_err();
/// // The files are read when the config is checked: these do not exist here.
/// assert_eq!(
///     err.to_string(),
///     "inline.toml:6:12: cannot read /etc/ringleader/default.pem: No such file or directory (os error 2)"
/// );
/// ```
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Proxy listener: plain HTTP/1.1, and h2c (HTTP/2 with prior knowledge).
    pub listen: SocketAddr,
    /// HTTPS listener (TLS 1.2 and 1.3, ALPN `h2` then `http/1.1`), serving the
    /// `[[server.tls]]` certificates; absent = no TLS. Requests from it carry
    /// `X-Forwarded-Proto: https`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_listen: Option<SocketAddr>,
    /// A plain-HTTP listener that redirects every request to the same host and
    /// target on `tls_listen` (301 for GET and HEAD, 308 for other methods, so
    /// they keep their method and body); needs `tls_listen`. Absent = none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redirect_listen: Option<SocketAddr>,
    /// The port the redirects name (`https://host:PORT/...`, omitted when 443):
    /// absent = `tls_listen`'s port. Set it when clients reach the TLS listener
    /// through another port (a NAT, a load balancer).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redirect_port: Option<u16>,
    /// Admin listener (`/metrics`, `/status`); loopback by default.
    pub admin: SocketAddr,
    /// Tokio worker threads; 0 = one per core, 1 = a single-threaded runtime.
    pub workers: usize,
    /// A client must send a complete request head within this time (a new
    /// connection its first request); also bounds how long an idle keep-alive
    /// connection stays open (HTTP/2: one that starts no stream for 1 to 2 times
    /// this gets GOAWAY; its open streams finish).
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
    /// Log one line per request (target `ringleader::access`, level info):
    /// `false` (default), `true` or `"text"` (key=value text), `"json"` (one JSON
    /// object a line).
    pub access_log: AccessLog,
    /// HTTP/2 to clients (over TLS by ALPN, and h2c on `listen`).
    pub http2: Http2Config,
    /// `[[server.tls]]`: the certificates of `tls_listen`, chosen by SNI (see
    /// [`TlsCertConfig`]). Read again on reload (SIGHUP): new handshakes get the
    /// new certificates, open connections keep theirs; files that fail to load
    /// keep the old ones serving.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tls: Vec<TlsCertConfig>,
}

/// `[[server.tls]]`: one certificate chain and its key, for the host names it
/// serves.
///
/// SNI picks the certificate: an exact host first, then a wildcard
/// `*.example.com` (one label, as RFC 6125 §6.4.3 matches it), then the default
/// entry, the one without `hosts` (at most one). A client whose name matches no
/// entry, with no default, gets the TLS alert `unrecognized_name` (RFC 6066 §3).
/// `ringleader check` reads the files: a PEM that does not parse, a key that does
/// not match its certificate, or a certificate outside its validity dates is an
/// error naming the file.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TlsCertConfig {
    /// PEM file: the certificate first, then its intermediates. A relative path is
    /// relative to the config file's directory.
    pub cert: Spanned<std::path::PathBuf>,
    /// PEM file of the private key (PKCS#8, PKCS#1 RSA or SEC1 EC).
    pub key: Spanned<std::path::PathBuf>,
    /// Host names this certificate serves (`api.example.com`, `*.example.com`);
    /// absent or empty = the default certificate.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<Spanned<String>>,
}

impl TlsCertConfig {
    /// The files and names, as the TLS module loads them.
    pub(crate) fn files(&self) -> crate::tls::CertFiles<'_> {
        crate::tls::CertFiles {
            cert: self.cert.get_ref(),
            key: self.key.get_ref(),
            hosts: self.hosts.iter().map(|h| h.get_ref().as_str()).collect(),
        }
    }
}

/// `[server.http2]`: HTTP/2 with clients.
///
/// The header list a client may send is `server.max_header_bytes`
/// (SETTINGS_MAX_HEADER_LIST_SIZE, RFC 9113 §6.5.2). Streams a client resets
/// before the proxy took them up are bounded per connection (more than 20 and
/// the connection is closed with GOAWAY `ENHANCE_YOUR_CALM`, the rapid-reset
/// defence of CVE-2023-44487); on shutdown, clients get GOAWAY and open streams
/// finish within `shutdown_grace`.
///
/// ```
/// let h = ringleader_proxy::Http2Config::default();
/// assert_eq!((h.cleartext, h.max_concurrent_streams), (true, 100));
/// assert_eq!(h.keepalive_interval, std::time::Duration::from_secs(30));
/// ```
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Http2Config {
    /// Accept HTTP/2 with prior knowledge (h2c) on `listen`. Default `true`.
    pub cleartext: bool,
    /// Streams a client may have open at once on one connection
    /// (SETTINGS_MAX_CONCURRENT_STREAMS). Default 100, as nginx's
    /// `http2_max_concurrent_streams`.
    pub max_concurrent_streams: u32,
    /// Send a PING after this long without a frame from the client; "0s" = never.
    /// Default `30s`.
    #[serde(with = "dur")]
    pub keepalive_interval: Duration,
    /// Close the connection when a PING is not answered within this. Default `10s`.
    #[serde(with = "dur")]
    pub keepalive_timeout: Duration,
}

impl Default for Http2Config {
    fn default() -> Self {
        Http2Config {
            cleartext: true,
            max_concurrent_streams: 100,
            keepalive_interval: Duration::from_secs(30),
            keepalive_timeout: Duration::from_secs(10),
        }
    }
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
            access_log: AccessLog::Off,
            tls_listen: None,
            redirect_listen: None,
            redirect_port: None,
            http2: Http2Config::default(),
            tls: Vec::new(),
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
    /// Balancing strategy, by its `snake_case` name ([`StrategyKind::ALL`] lists them);
    /// [`UpstreamConfig::DEFAULT_STRATEGY`] when absent.
    #[serde(default = "default_strategy", deserialize_with = "strategy_by_name")]
    pub strategy: StrategyKind,
    /// `consistent_hash` only: what it hashes on (absent = the client's IP).
    #[serde(default)]
    pub hash_key: Option<Spanned<HashKey>>,
    /// `consistent_hash` only: place keys exactly as another system does, so
    /// switching to ringleader moves no key: `"nginx"` (`hash KEY consistent`;
    /// backends are named by their `addr`, as nginx's `server` lines) or
    /// `"ketama"` (libketama, as memcached clients use it). Absent = ringleader's
    /// own ring.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hash_compat: Option<Spanned<HashCompat>>,
    /// How the proxy talks to the backends: `"http1"` (default), `"h2c"` (HTTP/2
    /// in cleartext, prior knowledge) or `"h2"` (HTTP/2 over TLS, ALPN `h2`).
    #[serde(default)]
    pub protocol: UpstreamProtocol,
    /// `protocol = "h2"` only, and required there: PEM file of the CA
    /// certificate(s) the backends' certificates must chain to (backends behind a
    /// proxy usually have a private CA, and the proxy carries no built-in root
    /// store). A relative path is relative to the config file's directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_ca: Option<Spanned<std::path::PathBuf>>,
    /// `protocol = "h2"` only: the name the backends' certificates are checked
    /// against (and sent as SNI); absent = the host part of each backend's `addr`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_server_name: Option<Spanned<String>>,
    /// TCP connect timeout to a backend.
    #[serde(default = "default_connect_timeout", with = "dur")]
    pub connect_timeout: Duration,
    /// Pooled keep-alive connections idle longer than this are not reused
    /// (keep it below the backends' own keep-alive timeout).
    #[serde(default = "default_idle_timeout", with = "dur")]
    pub idle_timeout: Duration,
    /// The backends: at least one, unless `backends_from` names where they come from.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backends: Vec<BackendConfig>,
    /// `"cluster"`: take the backends from etcd (`[cluster]`) instead of a
    /// `backends` list (exactly one of the two). Each proxy applies every change
    /// of the membership like a reload; backends that stay keep their statistics.
    /// Until the first membership arrives, or while it is empty, the upstream has
    /// no backends and answers 503.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backends_from: Option<Spanned<BackendsFrom>>,
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

impl UpstreamConfig {
    /// The strategy of an upstream that names none: round robin, as the README's
    /// config reference documents. It differs on purpose from the balancer
    /// library's own default (`StrategyKind::default()`, least response time),
    /// whose tests, docs and simulations rely on it; this constant is the
    /// proxy's one default.
    pub const DEFAULT_STRATEGY: StrategyKind = StrategyKind::RoundRobin;
}

fn default_strategy() -> StrategyKind {
    UpstreamConfig::DEFAULT_STRATEGY
}

/// `strategy`: one of the balancer's names (exactly; no kebab-case spelling), else an
/// error that lists them all.
fn strategy_by_name<'de, D: Deserializer<'de>>(
    d: D,
) -> std::result::Result<StrategyKind, D::Error> {
    by_name(d, "a strategy name", |name| {
        StrategyKind::ALL
            .into_iter()
            .find(|k| k.name() == name)
            .ok_or_else(|| {
                let names: Vec<&str> = StrategyKind::ALL.iter().map(|k| k.name()).collect();
                format!(
                    "unknown strategy {name:?}; expected one of {}",
                    names.join(", ")
                )
            })
    })
}

/// Deserialise a value from its config name with `parse`. The name is parsed inside the
/// deserializer, so toml locates an error at the value itself, also inside an array.
fn by_name<'de, D: Deserializer<'de>, T>(
    d: D,
    expecting: &'static str,
    parse: fn(&str) -> std::result::Result<T, String>,
) -> std::result::Result<T, D::Error> {
    struct ByName<T> {
        expecting: &'static str,
        parse: fn(&str) -> std::result::Result<T, String>,
    }
    impl<T> serde::de::Visitor<'_> for ByName<T> {
        type Value = T;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.expecting)
        }

        fn visit_str<E: serde::de::Error>(self, v: &str) -> std::result::Result<T, E> {
            (self.parse)(v).map_err(E::custom)
        }
    }
    d.deserialize_str(ByName { expecting, parse })
}

/// `protocol` of an upstream: how the proxy talks to its backends.
///
/// ```
/// use ringleader_proxy::UpstreamProtocol;
/// assert_eq!(UpstreamProtocol::default(), UpstreamProtocol::Http1);
/// assert_eq!(UpstreamProtocol::H2c.to_string(), "h2c");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum UpstreamProtocol {
    /// HTTP/1.1 over TCP, pooled keep-alive connections (the default).
    #[default]
    Http1,
    /// HTTP/2 over TCP with prior knowledge (RFC 9113 §3.3), one multiplexed
    /// connection per backend.
    H2c,
    /// HTTP/2 over TLS (ALPN `h2`), checked against `tls_ca`.
    H2,
}

impl UpstreamProtocol {
    /// The name used in configs.
    pub const fn name(self) -> &'static str {
        match self {
            UpstreamProtocol::Http1 => "http1",
            UpstreamProtocol::H2c => "h2c",
            UpstreamProtocol::H2 => "h2",
        }
    }

    /// Whether this is HTTP/2 (either form).
    pub const fn is_h2(self) -> bool {
        matches!(self, UpstreamProtocol::H2c | UpstreamProtocol::H2)
    }
}

impl fmt::Display for UpstreamProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// `hash_compat`: a consistent-hash placement compatible with another system.
///
/// ```
/// use ringleader_proxy::HashCompat;
/// assert_eq!(HashCompat::Nginx.to_string(), "nginx");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum HashCompat {
    /// nginx's `hash KEY consistent` (CRC32 points from each `server` address).
    Nginx,
    /// libketama (MD5 points of `host:port-i`), as memcached clients use it.
    Ketama,
}

impl HashCompat {
    /// The name used in configs.
    pub const fn name(self) -> &'static str {
        match self {
            HashCompat::Nginx => "nginx",
            HashCompat::Ketama => "ketama",
        }
    }
}

impl fmt::Display for HashCompat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// `health.detector`: how check results turn into up and down.
///
/// ```
/// use ringleader_proxy::DetectorKind;
/// assert_eq!(DetectorKind::default(), DetectorKind::RiseFall);
/// assert_eq!(DetectorKind::Accrual.to_string(), "accrual");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum DetectorKind {
    /// `fall` failed checks in a row mark a backend down, `rise` passes up (HAProxy).
    #[default]
    RiseFall,
    /// Phi-accrual suspicion over the check history (Hayashibara et al., 2004),
    /// confirmed by `confirm` quick probes.
    Accrual,
}

impl DetectorKind {
    /// The name used in configs.
    pub const fn name(self) -> &'static str {
        match self {
            DetectorKind::RiseFall => "rise_fall",
            DetectorKind::Accrual => "accrual",
        }
    }
}

impl fmt::Display for DetectorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// `server.access_log`: off, a text line or a JSON object per request.
///
/// ```
/// use ringleader_proxy::AccessLog;
/// assert_eq!(AccessLog::default(), AccessLog::Off);
/// assert!(AccessLog::Json.is_on());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum AccessLog {
    /// No access log (`false`).
    #[default]
    Off,
    /// One `key=value` text line per request (`true` or `"text"`).
    Text,
    /// One JSON object per line (`"json"`).
    Json,
}

impl AccessLog {
    /// Whether requests are logged at all.
    pub const fn is_on(self) -> bool {
        !matches!(self, AccessLog::Off)
    }
}

impl<'de> Deserialize<'de> for AccessLog {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = AccessLog;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("false, true, \"text\" or \"json\"")
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> std::result::Result<AccessLog, E> {
                Ok(if v { AccessLog::Text } else { AccessLog::Off })
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> std::result::Result<AccessLog, E> {
                match v {
                    "text" => Ok(AccessLog::Text),
                    "json" => Ok(AccessLog::Json),
                    "off" => Ok(AccessLog::Off),
                    _ => Err(E::custom(format!(
                        "invalid access_log {v:?}; expected false, true, \"text\" or \"json\""
                    ))),
                }
            }
        }
        d.deserialize_any(V)
    }
}

impl Serialize for AccessLog {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            AccessLog::Off => s.serialize_bool(false),
            AccessLog::Text => s.serialize_str("text"),
            AccessLog::Json => s.serialize_str("json"),
        }
    }
}

fn default_idle_timeout() -> Duration {
    Duration::from_secs(30)
}

fn default_connect_timeout() -> Duration {
    Duration::from_secs(1)
}

/// One backend: `{ addr = "host:port", weight = 1, name = "alpha" }`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BackendConfig {
    /// `host:port` of the backend.
    pub addr: Spanned<String>,
    /// Relative weight (>= 1).
    #[serde(default = "default_weight")]
    pub weight: u32,
    /// A name for status, metrics and logs (`[A-Za-z0-9._:-]`, unique in its
    /// upstream); absent = the backend is called by its address. Statistics
    /// follow the address, so renaming a backend on reload keeps them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<Spanned<String>>,
}

impl BackendConfig {
    /// What status, metrics and logs call the backend: its name, else its address.
    ///
    /// ```
    /// let c = ringleader_proxy::Config::from_toml_str(
    ///     "[upstream.app]\nbackends = [{ addr = \"127.0.0.1:9001\", name = \"alpha\" }, { addr = \"127.0.0.1:9002\" }]\n",
    ///     "inline.toml",
    /// ).unwrap();
    /// let b = &c.upstreams["app"].backends;
    /// assert_eq!((b[0].label(), b[1].label()), ("alpha", "127.0.0.1:9002"));
    /// ```
    pub fn label(&self) -> &str {
        self.name.as_ref().unwrap_or(&self.addr).get_ref()
    }
}

impl BackendConfig {
    /// A backend at `addr` (`host:port`) with `weight` and an optional name, as
    /// [`Proxy::set_backends`](crate::Proxy::set_backends) takes them.
    ///
    /// ```
    /// let b = ringleader_proxy::BackendConfig::new("127.0.0.1:9001", 2, Some("alpha"));
    /// assert_eq!((b.label(), b.weight), ("alpha", 2));
    /// ```
    pub fn new(addr: impl Into<String>, weight: u32, name: Option<&str>) -> BackendConfig {
        BackendConfig {
            addr: Spanned::new(0..0, addr.into()),
            weight,
            name: name.map(|n| Spanned::new(0..0, n.to_string())),
        }
    }
}

fn default_weight() -> u32 {
    1
}

/// `[upstream.NAME.health]`: active HTTP checks on a fresh connection.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthConfig {
    /// Path requested with GET; 2xx/3xx passes. Default `/`, which any HTTP server
    /// answers; point it at the backends' health endpoint when they have one.
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
    /// Check with the standard gRPC health service (`grpc.health.v1.Health/Check`,
    /// overall server status) instead of `GET path`; passes on `SERVING`. Needs
    /// `protocol = "h2c"` or `"h2"`. Default `false`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub grpc: bool,
    /// How check results become up and down: `"rise_fall"` (default: `fall`
    /// failures in a row mark it down, `rise` passes up) or `"accrual"` (a
    /// phi-accrual detector over the history of check intervals and latencies,
    /// confirmed by quick probes; recovery still needs `rise` passes).
    pub detector: DetectorKind,
    /// `accrual` only: the suspicion level (phi) above which the backend is
    /// suspected; phi = 8 means about a 1e-8 chance the silence is normal. Default 8.
    pub phi_threshold: f64,
    /// `accrual` only: the smallest standard deviation assumed of the check
    /// intervals, so a perfectly regular history is not hair-trigger. Default `100ms`.
    #[serde(with = "dur")]
    pub min_std_dev: Duration,
    /// `accrual` only: quick probes sent once suspected; all must fail to mark the
    /// backend down, one pass clears the suspicion. Default 3.
    pub confirm: u32,
    /// `accrual` only: the time between confirmation probes. Default `250ms`.
    #[serde(with = "dur")]
    pub confirm_interval: Duration,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            // "/" as HAProxy (`option httpchk`: "<uri> ... defaults to "/" which is
            // accessible by default on almost any server", configuration manual 4.2)
            // and nginx (`health_check`: sends "/" requests, ngx_http_upstream_hc_module)
            // do: a backend without a health endpoint, such as `python3 -m http.server`,
            // answers 404 to "/healthz" and would go down.
            path: "/".to_string(),
            interval: Duration::from_secs(2),
            timeout: Duration::from_secs(1),
            rise: 2,
            fall: 3,
            grpc: false,
            // Akka's defaults for its phi-accrual detector (threshold 8,
            // min-std-deviation 100 ms, akka/remote reference.conf).
            detector: DetectorKind::RiseFall,
            phi_threshold: 8.0,
            min_std_dev: Duration::from_millis(100),
            // 3 probes 250 ms apart: the setting `ringleader sim detect` measured
            // (ringleader_balancer::AccrualConfig's defaults).
            confirm: 3,
            confirm_interval: Duration::from_millis(250),
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
    pub on: Vec<RetryOn>,
    /// Request bodies up to this size are kept so the request can be retried;
    /// larger bodies stream and are retried only if no byte was sent yet.
    pub max_body_bytes: usize,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            attempts: 2,
            budget_percent: 20,
            on: vec![RetryOn::ConnectError, RetryOn::Timeout],
            max_body_bytes: 64 * 1024,
        }
    }
}

/// Duration fields as human-readable strings ("250ms", "2s").
mod dur {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s).map_err(|e| {
            serde::de::Error::custom(format!(
                "invalid duration {s:?}: {e} (write e.g. \"250ms\" or \"2s\")"
            ))
        })
    }

    pub(super) fn serialize<S: Serializer>(v: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*v).to_string())
    }
}

/// Convert a byte offset in `src` to a 1-based (line, column in characters).
pub(crate) fn line_col(src: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(src.len());
    let before = src.get(..offset).unwrap_or(src);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

/// The text being parsed and its name, to locate errors.
struct Ctx<'a> {
    src: &'a str,
    file: &'a str,
}

impl Ctx<'_> {
    /// An error at `span` (line 1, column 1 when unknown or defaulted).
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
}

impl Config {
    /// Read, parse and validate a config file.
    pub fn load(path: &Path) -> Result<Config> {
        let src = std::fs::read_to_string(path).map_err(|source| Error::ReadConfig {
            path: path.to_path_buf(),
            source,
        })?;
        Config::parse(&src, &path.display().to_string(), path.parent())
    }

    /// Make the relative file paths in the config (certificates, keys, CAs)
    /// relative to `dir`, the config file's directory, as the docs promise.
    fn resolve_paths(&mut self, dir: &Path) {
        let fix = |p: &mut std::path::PathBuf| {
            if p.is_relative() {
                *p = dir.join(&*p);
            }
        };
        for t in &mut self.server.tls {
            fix(t.cert.get_mut());
            fix(t.key.get_mut());
        }
        for up in self.upstreams.values_mut() {
            if let Some(ca) = &mut up.tls_ca {
                fix(ca.get_mut());
            }
        }
    }

    /// Parse and validate config text; `file` names it in errors.
    /// Relative file paths in it (certificates, keys) are relative to the current
    /// directory; [`Config::load`] makes them relative to the file's directory.
    pub fn from_toml_str(src: &str, file: &str) -> Result<Config> {
        Config::parse(src, file, None)
    }

    /// Parse, make relative paths relative to `dir`, validate.
    fn parse(src: &str, file: &str, dir: Option<&Path>) -> Result<Config> {
        let ctx = Ctx { src, file };
        let mut cfg: Config = toml::from_str(src).map_err(|e| {
            let msg = e.message().trim_end().to_string();
            ctx.err(e.span(), msg)
        })?;
        if let Some(dir) = dir.filter(|d| !d.as_os_str().is_empty()) {
            cfg.resolve_paths(dir);
        }
        cfg.validate(&ctx)?;
        Ok(cfg)
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
    /// Parse `client_ip` | `header:NAME` | `cookie:NAME` | `path` | `query:NAME`
    /// (a header name is lowercased).
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
    /// Every condition, in documentation order.
    pub const ALL: [RetryOn; 3] = [RetryOn::ConnectError, RetryOn::Timeout, RetryOn::Status5xx];

    /// The name used in configs.
    pub const fn name(self) -> &'static str {
        match self {
            RetryOn::ConnectError => "connect_error",
            RetryOn::Timeout => "timeout",
            RetryOn::Status5xx => "5xx",
        }
    }

    /// Parse `connect_error` | `timeout` | `5xx`.
    pub fn parse(s: &str) -> Option<RetryOn> {
        RetryOn::ALL.into_iter().find(|o| o.name() == s)
    }
}

impl<'de> Deserialize<'de> for RetryOn {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<RetryOn, D::Error> {
        by_name(d, "a retry condition", |s| {
            RetryOn::parse(s).ok_or_else(|| {
                format!("unknown retry condition {s:?}; expected connect_error, timeout or 5xx")
            })
        })
    }
}

impl fmt::Display for RetryOn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for RetryOn {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for HashKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<HashKey, D::Error> {
        by_name(d, "a hash key", HashKey::parse)
    }
}

/// The config form: `client_ip`, `header:NAME`, ...
impl fmt::Display for HashKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HashKey::ClientIp => f.write_str("client_ip"),
            HashKey::Header(n) => write!(f, "header:{n}"),
            HashKey::Cookie(n) => write!(f, "cookie:{n}"),
            HashKey::Path => f.write_str("path"),
            HashKey::Query(n) => write!(f, "query:{n}"),
        }
    }
}

impl Serialize for HashKey {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
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
        assert_eq!(up.strategy, UpstreamConfig::DEFAULT_STRATEGY);
        assert_eq!(up.retry.on, [RetryOn::ConnectError, RetryOn::Timeout]);
        assert_eq!(up.backends[0].weight, 1);
        assert_eq!(up.retry.attempts, 2);
        assert!(up.health.is_none());
        assert_eq!(c.routes[0].upstream.get_ref(), "app");
    }

    #[test]
    fn health_checks_default_to_the_root_path() {
        let c = parse(&format!("{MIN}[upstream.app.health]\nfall = 2\n")).unwrap();
        let h = c.upstreams["app"].health.as_ref().unwrap();
        assert_eq!((h.path.as_str(), h.rise, h.fall), ("/", 2, 2));
        assert!(
            c.describe().contains("  health: GET / every 2s"),
            "{}",
            c.describe()
        );
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
        assert_eq!(
            err.to_string(),
            "t.toml:2:12: unknown strategy \"fastest\"; expected one of round_robin, \
             weighted_round_robin, least_connections, least_response_time, power_of_two, \
             random, consistent_hash"
        );
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
    fn every_balancer_strategy_is_a_config_name() {
        for kind in StrategyKind::ALL {
            let c = parse(&format!(
                "[upstream.a]\nstrategy = \"{kind}\"\nbackends = [{{ addr = \"x:1\" }}]\n"
            ))
            .unwrap();
            assert_eq!(c.upstreams["a"].strategy, kind);
        }
        // Only the config spelling: the command line's kebab-case is not a config name.
        let err =
            parse("[upstream.a]\nstrategy = \"power-of-two\"\nbackends = [{ addr = \"x:1\" }]\n")
                .unwrap_err();
        assert!(err.to_string().contains("unknown strategy"), "{err}");
    }

    #[test]
    fn the_default_strategy_is_the_documented_one() {
        let readme = include_str!("../../../README.md");
        let documented = format!("{} (default)", UpstreamConfig::DEFAULT_STRATEGY);
        assert!(
            readme.contains(&documented),
            "README does not say {documented:?}"
        );
        assert_eq!(UpstreamConfig::DEFAULT_STRATEGY, StrategyKind::RoundRobin);
    }

    #[test]
    fn hash_key_and_retry_on_are_typed_and_located() {
        let c = parse(
            "[upstream.app]\nstrategy = \"consistent_hash\"\nhash_key = \"header:X-User-Id\"\n\
             backends = [{ addr = \"127.0.0.1:9101\" }]\n[upstream.app.retry]\non = [\"5xx\"]\n",
        )
        .unwrap();
        let up = &c.upstreams["app"];
        let key = up.hash_key.as_ref().map(|k| k.get_ref().clone());
        assert_eq!(
            key,
            Some(HashKey::Header(http::HeaderName::from_static("x-user-id")))
        );
        assert_eq!(up.retry.on, [RetryOn::Status5xx]);

        let err = parse(
            "[upstream.app]\nstrategy = \"consistent_hash\"\nhash_key = \"body\"\n\
             backends = [{ addr = \"127.0.0.1:9101\" }]\n",
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("t.toml:3:12: invalid hash_key \"body\""),
            "{err}"
        );

        let err = parse(&format!(
            "{MIN}[upstream.app.retry]\non = [\"timeout\", \"4xx\"]\n"
        ))
        .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("t.toml:4:18: unknown retry condition \"4xx\"; expected"),
            "{err}"
        );
    }

    #[test]
    fn typed_values_render_in_config_form() {
        for s in [
            "client_ip",
            "header:x-user-id",
            "cookie:sid",
            "path",
            "query:u",
        ] {
            assert_eq!(HashKey::parse(s).unwrap().to_string(), s);
        }
        for o in RetryOn::ALL {
            assert_eq!(RetryOn::parse(&o.to_string()), Some(o));
        }
    }

    #[test]
    fn line_col_counts_characters() {
        assert_eq!(line_col("ab\ncdé\nx", 8), (3, 1));
        assert_eq!(line_col("ab\ncdé", 5), (2, 3));
        assert_eq!(line_col("", 10), (1, 1));
    }

    #[test]
    fn example_config_is_valid() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/ringleader.toml");
        let c = Config::load(Path::new(path)).unwrap();
        assert!(!c.routes.is_empty());
        assert!(c.describe().contains("# resolved config"));
    }
}
