//! `ringleader cluster register` and `cluster ls`: a backend's sidecar registration in etcd,
//! and what a fleet's etcd holds (upstream members, worker-id leases).
use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ringleader_cluster::{BackendSpec, Cluster, ClusterConfig, Listing};

use crate::CliError;

/// The environment variable `--etcd` falls back to (same syntax: comma-separated URLs).
pub const ETCD_ENV: &str = "RINGLEADER_ETCD";

/// Time between two attempts to reach etcd while it does not answer.
const RETRY: Duration = Duration::from_secs(1);

/// Where etcd is: the options every etcd-backed subcommand shares.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct EtcdArgs {
    /// etcd client URL (`http://host:port`, or `host:port`); repeat it or separate URLs
    /// with commas for several members [default: $RINGLEADER_ETCD].
    #[arg(long = "etcd", value_name = "URL", value_delimiter = ',')]
    pub etcd: Vec<String>,
    /// Namespace of the fleet's keys (`/ringleader/<namespace>/...`).
    #[arg(long, value_name = "NS", default_value = "default")]
    pub namespace: String,
}

impl EtcdArgs {
    /// Whether an endpoint was given, on the command line or in `RINGLEADER_ETCD`.
    pub fn given(&self) -> bool {
        !self.etcd.is_empty() || std::env::var_os(ETCD_ENV).is_some_and(|v| !v.is_empty())
    }

    /// The endpoints: `--etcd`, else `RINGLEADER_ETCD`; a bare `host:port` gets `http://`.
    pub fn endpoints(&self) -> Result<Vec<String>, CliError> {
        let env;
        let given: Vec<&str> = if self.etcd.is_empty() {
            env = std::env::var(ETCD_ENV).unwrap_or_default();
            env.split(',').collect()
        } else {
            self.etcd.iter().map(String::as_str).collect()
        };
        let endpoints = normalise_endpoints(&given);
        if endpoints.is_empty() {
            return Err(crate::usage(
                "--etcd",
                format!("no etcd endpoint: pass --etcd URL or set {ETCD_ENV}"),
            ));
        }
        Ok(endpoints)
    }

    /// The cluster crate's config for these options (default lease TTL and timeouts).
    pub fn config(&self) -> Result<ClusterConfig, CliError> {
        let config = ClusterConfig::new(self.endpoints()?).with_namespace(self.namespace.clone());
        config
            .validate()
            .map_err(|e| crate::usage("--etcd/--namespace", chain(&e)))?;
        Ok(config)
    }
}

/// Trim, drop empty entries, and give a bare `host:port` the `http://` scheme.
pub fn normalise_endpoints(given: &[&str]) -> Vec<String> {
    given
        .iter()
        .map(|e| e.trim())
        .filter(|e| !e.is_empty())
        .map(|e| {
            if e.contains("://") {
                e.to_owned()
            } else {
                format!("http://{e}")
            }
        })
        .collect()
}

/// An error and its sources, `a: b: c` (the binary prints only the outer `Display`).
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let next = c.to_string();
        if !s.ends_with(&next) {
            s.push_str(": ");
            s.push_str(&next);
        }
        cur = c.source();
    }
    s
}

/// Connect to etcd, or a clear error naming the endpoints.
pub async fn connect(config: &ClusterConfig) -> Result<Cluster, CliError> {
    Cluster::connect(config).await.map_err(|e| {
        format!(
            "cannot reach etcd at {}: {}",
            config.endpoints.join(","),
            chain(&e)
        )
        .into()
    })
}

/// `ringleader cluster ...`.
#[derive(Debug, clap::Subcommand)]
pub enum ClusterCommand {
    /// Register a backend in etcd for as long as this runs (a sidecar); SIGTERM or Ctrl-C
    /// removes it.
    Register(RegisterArgs),
    /// List upstream members and worker-id leases.
    Ls(LsArgs),
}

/// Arguments of `ringleader cluster register`.
#[derive(Debug, clap::Args)]
pub struct RegisterArgs {
    /// Where etcd is.
    #[command(flatten)]
    pub etcd: EtcdArgs,
    /// Upstream the backend serves (an upstream with `backends_from = "cluster"`).
    #[arg(long, value_name = "NAME")]
    pub upstream: String,
    /// `host:port` proxies connect to.
    #[arg(long, value_name = "HOST:PORT")]
    pub addr: String,
    /// Relative weight.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub weight: u32,
    /// The backend's id (its key's last segment; proxies show it as the backend's name)
    /// [default: the address].
    #[arg(long)]
    pub id: Option<String>,
}

/// Output format of `cluster ls`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LsFormat {
    /// Two aligned tables: members, then worker leases.
    Table,
    /// One JSON object: `{"namespace", "members": [...], "workers": [...]}`.
    Json,
}

/// Arguments of `ringleader cluster ls`.
#[derive(Debug, clap::Args)]
pub struct LsArgs {
    /// Where etcd is.
    #[command(flatten)]
    pub etcd: EtcdArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t = LsFormat::Table)]
    pub format: LsFormat,
}

/// Run `ringleader cluster ...`.
pub fn run(command: ClusterCommand) -> Result<(), CliError> {
    match command {
        ClusterCommand::Register(args) => register(args),
        ClusterCommand::Ls(args) => ls(args),
    }
}

/// Whether `addr` is `host:port` with a non-empty host and a port number.
fn is_host_port(addr: &str) -> bool {
    addr.rsplit_once(':').is_some_and(|(host, port)| {
        !host.is_empty() && !host.contains('/') && port.parse::<u16>().is_ok_and(|p| p > 0)
    })
}

fn register(args: RegisterArgs) -> Result<(), CliError> {
    if !is_host_port(&args.addr) {
        return Err(crate::usage(
            "--addr",
            format!("{:?} is not host:port", args.addr),
        ));
    }
    if args.upstream.is_empty() || args.upstream.contains('/') {
        return Err(crate::usage(
            "--upstream",
            "must be non-empty and contain no '/'",
        ));
    }
    let id = args.id.clone().unwrap_or_else(|| args.addr.clone());
    if id.is_empty() || id.contains('/') {
        return Err(crate::usage("--id", "must be non-empty and contain no '/'"));
    }
    let config = args.etcd.config()?;
    let spec = BackendSpec {
        addr: args.addr.clone(),
        weight: args.weight,
    };
    let rt = crate::serve::runtime(1)?;
    rt.block_on(async move {
        let stop = stop_signal()?;
        tokio::pin!(stop);
        let mut failures = 0u32;
        let (cluster, registration) = loop {
            let attempt = async {
                let cluster = Cluster::connect(&config).await?;
                let registration = cluster.register_backend(&args.upstream, &id, &spec).await?;
                Ok::<_, ringleader_cluster::Error>((cluster, registration))
            };
            tokio::select! {
                _ = &mut stop => {
                    tracing::info!("stopped before the backend could be registered");
                    return Ok(());
                }
                result = attempt => match result {
                    Ok(done) => break done,
                    Err(e) => {
                        failures += 1;
                        if failures == 1 {
                            tracing::warn!(etcd = %config.endpoints.join(","), error = %chain(&e), "cannot register the backend in etcd; retrying every second until it answers");
                        } else {
                            tracing::debug!(error = %chain(&e), "registering failed again");
                        }
                    }
                }
            }
            tokio::select! {
                _ = &mut stop => return Ok(()),
                _ = tokio::time::sleep(RETRY) => {}
            }
        };
        tracing::info!(
            key = registration.key(),
            lease = format_args!("{:x}", registration.lease()),
            upstream = %args.upstream,
            addr = %spec.addr,
            weight = spec.weight,
            "backend registered; SIGTERM or Ctrl-C removes it"
        );
        // The upstream's membership watch says whether etcd is reachable: one WARN when it
        // is lost (the registration keeps retrying meanwhile), one INFO when it is back.
        let mut watch = None;
        let mut connected = true;
        let mut ticks = tokio::time::interval(RETRY);
        loop {
            tokio::select! {
                _ = &mut stop => break,
                _ = ticks.tick() => {}
            }
            let now = match &watch {
                None => tokio::select! {
                    _ = &mut stop => break,
                    w = cluster.watch_members(&args.upstream) => match w {
                        Ok(w) => { watch = Some(w); true }
                        Err(_) => false,
                    },
                },
                Some(w) => w.is_connected(),
            };
            if now != connected {
                connected = now;
                if now {
                    tracing::info!("etcd answers again; the backend stays registered");
                } else {
                    tracing::warn!(etcd = %config.endpoints.join(","), "lost the connection to etcd; retrying (the registration lapses if etcd stays away longer than the lease TTL, and is renewed when it answers)");
                }
            }
        }
        drop(watch);
        let key = registration.key().to_owned();
        match registration.deregister().await {
            Ok(()) => tracing::info!(key, "backend deregistered"),
            Err(e) => tracing::warn!(key, error = %chain(&e), "could not deregister; the key expires with its lease"),
        }
        Ok(())
    })
}

/// A future that completes on SIGTERM or SIGINT (Ctrl-C elsewhere); registered now, so a
/// signal sent from here on is never the default "die at once".
pub(crate) fn stop_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        Ok(async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        })
    }
    #[cfg(not(unix))]
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}

fn ls(args: LsArgs) -> Result<(), CliError> {
    let config = args.etcd.config()?;
    let rt = crate::serve::runtime(1)?;
    let listing = rt.block_on(async {
        let cluster = connect(&config).await?;
        cluster
            .list()
            .await
            .map_err(|e| CliError::from(format!("listing the cluster: {}", chain(&e))))
    })?;
    crate::out::stdout(|out| match args.format {
        LsFormat::Table => write_table(&config.namespace, &listing, out),
        LsFormat::Json => {
            let json = listing_json(&config.namespace, &listing);
            writeln!(out, "{}", serde_json::to_string_pretty(&json)?)?;
            Ok(())
        }
    })
}

/// A worker key's layout segment (`ts41-w10-seq12-tick1ms-epoch1288834974657`) read back:
/// its tick and epoch, for showing a high-water as a time.
pub fn layout_tick_epoch(layout: &str) -> Option<(Duration, SystemTime)> {
    let mut tick = None;
    let mut epoch = None;
    for part in layout.split('-') {
        if let Some(t) = part.strip_prefix("tick") {
            tick = humantime::parse_duration(t).ok();
        } else if let Some(e) = part.strip_prefix("epoch") {
            epoch = e
                .parse::<u64>()
                .ok()
                .map(|ms| UNIX_EPOCH + Duration::from_millis(ms));
        }
    }
    Some((tick?, epoch?))
}

/// A high-water timestamp (layout ticks) as an RFC 3339 time.
pub fn high_water_time(layout: &str, high_water: u64) -> Option<String> {
    let (tick, epoch) = layout_tick_epoch(layout)?;
    let nanos = tick.as_nanos().checked_mul(u128::from(high_water))?;
    let since = Duration::from_nanos(u64::try_from(nanos).ok()?);
    let time = epoch.checked_add(since)?;
    Some(humantime::format_rfc3339_millis(time).to_string())
}

/// What `cluster ls --format json` prints.
pub fn listing_json(namespace: &str, listing: &Listing) -> serde_json::Value {
    let members: Vec<serde_json::Value> = listing
        .upstreams
        .iter()
        .flat_map(|(upstream, members)| {
            members.iter().map(move |m| {
                serde_json::json!({
                    "upstream": upstream,
                    "id": m.id,
                    "addr": m.spec.addr,
                    "weight": m.spec.weight,
                })
            })
        })
        .collect();
    let workers: Vec<serde_json::Value> = listing
        .workers
        .iter()
        .map(|w| {
            serde_json::json!({
                "layout": w.layout,
                "worker": w.worker,
                "holder": w.holder,
                "lease": format!("{:x}", w.lease),
                "ttl_left_secs": w.ttl_left.map(|d| d.as_secs()),
                "high_water": w.high_water,
                "high_water_time": w.high_water.and_then(|hw| high_water_time(&w.layout, hw)),
            })
        })
        .collect();
    serde_json::json!({
        "namespace": namespace,
        "members": members,
        "workers": workers,
    })
}

/// Rows as columns padded to the widest cell (the last column unpadded).
fn write_rows(out: &mut dyn Write, rows: &[Vec<String>]) -> std::io::Result<()> {
    let cols = rows.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..cols)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            if c + 1 == cols {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}  ", w = widths[c]));
            }
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

/// What `cluster ls` prints by default.
pub fn write_table(
    namespace: &str,
    listing: &Listing,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    writeln!(out, "namespace {namespace}\n")?;
    if listing.upstreams.values().all(Vec::is_empty) {
        writeln!(out, "no upstream members")?;
    } else {
        let mut rows = vec![vec![
            "UPSTREAM".to_owned(),
            "ID".to_owned(),
            "ADDR".to_owned(),
            "WEIGHT".to_owned(),
        ]];
        for (upstream, members) in &listing.upstreams {
            for m in members {
                rows.push(vec![
                    upstream.clone(),
                    m.id.clone(),
                    m.spec.addr.clone(),
                    m.spec.weight.to_string(),
                ]);
            }
        }
        write_rows(out, &rows)?;
    }
    writeln!(out)?;
    if listing.workers.is_empty() {
        writeln!(out, "no worker leases")?;
    } else {
        let mut rows = vec![vec![
            "LAYOUT".to_owned(),
            "WORKER".to_owned(),
            "HOLDER".to_owned(),
            "LEASE".to_owned(),
            "TTL LEFT".to_owned(),
            "HIGH-WATER".to_owned(),
        ]];
        for w in &listing.workers {
            let high_water = match w.high_water {
                Some(hw) => high_water_time(&w.layout, hw).unwrap_or_else(|| hw.to_string()),
                None => "-".to_owned(),
            };
            rows.push(vec![
                w.layout.clone(),
                w.worker.to_string(),
                w.holder.clone().unwrap_or_else(|| "-".to_owned()),
                format!("{:x}", w.lease),
                w.ttl_left
                    .map_or_else(|| "expired".to_owned(), |d| format!("{}s", d.as_secs())),
                high_water,
            ]);
        }
        write_rows(out, &rows)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_get_a_scheme_and_lose_blanks() {
        assert_eq!(
            normalise_endpoints(&["127.0.0.1:2379", " http://10.0.0.2:2379 ", ""]),
            ["http://127.0.0.1:2379", "http://10.0.0.2:2379"]
        );
    }

    #[test]
    fn high_water_reads_as_a_time_of_the_layout() {
        let twitter = ringleader_cluster::layout_name(&ringleader_idgen::Layout::TWITTER);
        // 2022-06-28T16:07:40.105Z in ms since the Twitter epoch.
        let hw = 1_656_432_460_105 - 1_288_834_974_657;
        assert_eq!(
            high_water_time(&twitter, hw).as_deref(),
            Some("2022-06-28T16:07:40.105Z")
        );
        let sonyflake = ringleader_cluster::layout_name(&ringleader_idgen::Layout::SONYFLAKE);
        assert_eq!(
            high_water_time(&sonyflake, 100).as_deref(),
            Some("2014-09-01T00:00:01.000Z")
        );
        assert_eq!(high_water_time("not-a-layout", 1), None);
    }

    #[test]
    fn the_table_aligns_members_and_says_when_there_are_no_leases() {
        let mut listing = Listing::default();
        let member = |id: &str, addr: &str, weight| ringleader_cluster::Member {
            id: id.into(),
            spec: BackendSpec {
                addr: addr.into(),
                weight,
            },
        };
        listing.upstreams.insert(
            "app".into(),
            vec![
                member("alpha", "127.0.0.1:9101", 1),
                member("bravo-long-id", "10.0.0.2:80", 12),
            ],
        );
        let mut out = Vec::new();
        write_table("prod", &listing, &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "namespace prod\n\n\
             UPSTREAM  ID             ADDR            WEIGHT\n\
             app       alpha          127.0.0.1:9101  1\n\
             app       bravo-long-id  10.0.0.2:80     12\n\n\
             no worker leases\n"
        );
        let json = listing_json("prod", &listing);
        assert_eq!(
            json["members"][1],
            serde_json::json!({"upstream": "app", "id": "bravo-long-id", "addr": "10.0.0.2:80", "weight": 12})
        );
        assert_eq!(json["workers"], serde_json::json!([]));
        let mut out = Vec::new();
        write_table("prod", &Listing::default(), &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "namespace prod\n\nno upstream members\n\nno worker leases\n"
        );
    }

    #[test]
    fn host_port() {
        assert!(is_host_port("127.0.0.1:9101"));
        assert!(is_host_port("backend.local:80"));
        assert!(is_host_port("[::1]:80"));
        assert!(!is_host_port("127.0.0.1"));
        assert!(!is_host_port(":80"));
        assert!(!is_host_port("a:0"));
        assert!(!is_host_port("http://a:80"));
    }
}
