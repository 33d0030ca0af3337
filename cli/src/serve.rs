//! `ringleader serve`, `check` and `demo`: the proxy's own subcommands.
use crate::CliError;
use ringleader_proxy::{Config, DemoBackend, Server};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The config file `serve` and `check` read without `-c`, in the current directory.
pub const DEFAULT_CONFIG: &str = "ringleader.toml";

/// `ringleader serve --help`'s closing paragraph: the signals.
const SIGNALS_HELP: &str = "\
Signals: SIGHUP reloads the config file (an invalid one is logged and the old one keeps
serving). SIGTERM or SIGINT stops accepting and drains open requests for up to
server.shutdown_grace, then exits with status 0; a second SIGTERM or SIGINT during the
drain ends it at once: open connections are dropped and the exit status is 1.";

/// Arguments of `ringleader serve`.
#[derive(Debug, clap::Args)]
#[command(after_help = SIGNALS_HELP)]
pub struct ServeArgs {
    /// Config file (TOML) [default: ./ringleader.toml].
    #[arg(short, long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Proxy listener, instead of the file's server.listen (also across SIGHUP reloads):
    /// several proxies can share one config file.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Admin listener, instead of the file's server.admin (also across SIGHUP reloads).
    #[arg(long, value_name = "ADDR")]
    pub admin: Option<SocketAddr>,
}

/// The `[server]` settings given on `serve`'s command line, applied over the file's
/// at start and on every reload.
#[derive(Debug, Clone, Copy, Default)]
pub struct Overrides {
    /// `--listen`.
    pub listen: Option<SocketAddr>,
    /// `--admin`.
    pub admin: Option<SocketAddr>,
}

impl Overrides {
    /// Set the overridden settings in `config`.
    pub fn apply(&self, config: &mut Config) {
        if let Some(a) = self.listen {
            config.server.listen = a;
        }
        if let Some(a) = self.admin {
            config.server.admin = a;
        }
    }
}

/// Arguments of `ringleader check`.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// Config file (TOML) [default: ./ringleader.toml].
    #[arg(short, long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// Load the config of `ringleader <subcommand>`: `-c FILE`, else [`DEFAULT_CONFIG`]. A
/// missing file is reported with the path looked for (as given and absolute) and, for the
/// default, how to point at the repository's annotated example instead.
pub fn load_config(subcommand: &str, given: Option<&Path>) -> Result<(PathBuf, Config), CliError> {
    let path = given.unwrap_or(Path::new(DEFAULT_CONFIG)).to_path_buf();
    match Config::load(&path) {
        Ok(config) => Ok((path, config)),
        Err(ringleader_proxy::Error::ReadConfig { source, .. })
            if source.kind() == std::io::ErrorKind::NotFound =>
        {
            Err(missing_config(subcommand, &path, given.is_none()).into())
        }
        Err(e) => Err(e.into()),
    }
}

/// The message for a config file that does not exist: the absolute path looked for, the
/// path as given when it differs, and for the default how to name one.
fn missing_config(subcommand: &str, path: &Path, is_default: bool) -> String {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut msg = format!("no config file at {}", absolute.display());
    if !is_default {
        if absolute != path {
            msg += &format!(" (-c {})", path.display());
        }
        return msg;
    }
    msg += &format!(" (without -c, `ringleader {subcommand}` reads ./{DEFAULT_CONFIG})");
    let example = Path::new("examples").join(DEFAULT_CONFIG);
    if example.is_file() {
        msg += &format!("; try `ringleader {subcommand} -c {}`", example.display());
    } else {
        msg += &format!(
            "; pass -c FILE, e.g. ringleader's annotated example: \
             `ringleader {subcommand} -c examples/{DEFAULT_CONFIG}` from the repository's root"
        );
    }
    msg
}

/// Arguments of `ringleader demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Proxy listener (a free port is used if this one is taken).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Admin listener (a free port is used if this one is taken).
    #[arg(long, default_value = "127.0.0.1:9090")]
    pub admin: SocketAddr,
    /// A fleet instead: start etcd (it must be on PATH), register the demo backends in
    /// it and run two proxies fed from it (the second on the next ports).
    #[arg(long)]
    pub cluster: bool,
}

/// A tokio runtime with `workers` threads: 0 = one per core, 1 = single-threaded.
pub fn runtime(workers: usize) -> std::io::Result<tokio::runtime::Runtime> {
    let mut b = if workers == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        if workers > 1 {
            b.worker_threads(workers);
        }
        b
    };
    b.enable_all().thread_name("ringleader").build()
}

/// Run `ringleader serve`.
pub fn serve(args: ServeArgs) -> Result<(), CliError> {
    let (path, mut config) = load_config("serve", args.config.as_deref())?;
    let overrides = Overrides {
        listen: args.listen,
        admin: args.admin,
    };
    overrides.apply(&mut config);
    if overrides.listen.is_some() || overrides.admin.is_some() {
        if config.server.listen == config.server.admin {
            return Err(format!(
                "the proxy and admin listeners are both {}: give them different addresses",
                config.server.listen
            )
            .into());
        }
        tracing::info!(
            listen = ?overrides.listen,
            admin = ?overrides.admin,
            "listeners from the command line override the config file's (also on reload)"
        );
    }
    let rt = runtime(config.server.workers)?;
    rt.block_on(async move {
        let signals = Signals::new()?;
        let server = Server::bind(config).await?;
        run_until_signal(signals, server, Some(&path), overrides).await
    })
}

/// The signals a running proxy obeys, registered before it starts so that none sent once
/// it is up can kill the process instead of stopping it cleanly.
#[derive(Debug)]
pub struct Signals {
    #[cfg(unix)]
    hup: tokio::signal::unix::Signal,
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
}

impl Signals {
    /// Register SIGHUP, SIGTERM and SIGINT handlers (Ctrl-C elsewhere). Call inside a runtime.
    pub fn new() -> std::io::Result<Signals> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Ok(Signals {
                hup: signal(SignalKind::hangup())?,
                term: signal(SignalKind::terminate())?,
                int: signal(SignalKind::interrupt())?,
            })
        }
        #[cfg(not(unix))]
        Ok(Signals {})
    }

    /// Serve until SIGTERM/SIGINT (then drain); SIGHUP reloads `config_path`.
    pub async fn run_until(
        self,
        server: Server,
        config_path: Option<&Path>,
    ) -> Result<(), CliError> {
        run_until_signal(self, server, config_path, Overrides::default()).await
    }
}

/// Serve until SIGTERM/SIGINT; SIGHUP reloads `config_path` with `overrides` applied.
///
/// The first SIGTERM or SIGINT drains for up to `shutdown_grace`; a second one during the
/// drain ends it at once ([`DrainCutShort`]): an operator who pressed Ctrl-C twice, or a
/// supervisor that escalates, does not wait out a request that never ends.
async fn run_until_signal(
    signals: Signals,
    server: Server,
    config_path: Option<&Path>,
    overrides: Overrides,
) -> Result<(), CliError> {
    #[cfg(unix)]
    let Signals {
        mut hup,
        mut term,
        mut int,
    } = signals;
    #[cfg(unix)]
    loop {
        tokio::select! {
            _ = hup.recv() => match config_path {
                Some(p) => {
                    tracing::info!(config = %p.display(), "SIGHUP: reloading");
                    // Errors are logged by reload_file; the old config keeps serving.
                    let _ = server.proxy().reload_file_with(p, |c| overrides.apply(c));
                }
                None => tracing::warn!("SIGHUP ignored: no config file to reload"),
            },
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (signals, config_path, overrides);
        tokio::signal::ctrl_c().await?;
    }
    let grace = server.proxy().config().server.shutdown_grace;
    tracing::info!(
        grace = %humantime::format_duration(grace),
        "shutting down: no new connections, draining (a second SIGTERM or SIGINT ends the drain at once)"
    );
    #[cfg(unix)]
    let second = async {
        tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        }
    };
    #[cfg(not(unix))]
    let second = async {
        let _ = tokio::signal::ctrl_c().await;
        "Ctrl-C"
    };
    tokio::select! {
        () = server.shutdown() => Ok(()),
        signal = second => {
            tracing::warn!(
                signal,
                "second signal during the drain: drain cut short, open connections dropped"
            );
            Err(DrainCutShort { signal }.into())
        }
    }
}

/// A second SIGTERM or SIGINT ended the drain before `shutdown_grace`: the connections
/// still open were dropped, so the process exits with status 1.
#[derive(Debug)]
pub struct DrainCutShort {
    /// The signal that cut it short.
    pub signal: &'static str,
}

impl std::fmt::Display for DrainCutShort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "shutdown drain cut short by a second {}: connections still open were dropped",
            self.signal
        )
    }
}

impl std::error::Error for DrainCutShort {}

/// Run `ringleader check`.
pub fn check(args: CheckArgs) -> Result<(), CliError> {
    let (path, config) = load_config("check", args.config.as_deref())?;
    crate::out::stdout(|out| {
        writeln!(out, "{}: OK\n", path.display())?;
        write!(out, "{}", config.describe())?;
        Ok(())
    })
}

/// The demo's config: `backends` are (name, address) pairs, shown by name in /status,
/// the metrics and the logs.
pub fn demo_config(
    listen: SocketAddr,
    admin: SocketAddr,
    backends: &[(&str, SocketAddr)],
) -> Result<Config, ringleader_proxy::Error> {
    let list: Vec<String> = backends
        .iter()
        .map(|(name, a)| format!("{{ addr = \"{a}\", name = \"{name}\" }}"))
        .collect();
    let text = format!(
        r#"[server]
listen = "{listen}"
admin = "{admin}"
shutdown_grace = "2s"
access_log = true

[upstream.demo]
strategy = "power_of_two"
connect_timeout = "250ms"
backends = [{}]

[upstream.demo.health]
path = "/healthz"
interval = "1s"
timeout = "500ms"
rise = 2
fall = 2

[upstream.demo.passive]
consecutive_failures = 3
ejection_time = "5s"

[upstream.demo.retry]
attempts = 2
on = ["connect_error", "timeout", "5xx"]
"#,
        list.join(", ")
    );
    Config::from_toml_str(&text, "<demo>")
}

/// Bind a demo proxy; a taken listen or admin address is replaced by a free port.
pub(crate) async fn bind_demo(mut config: Config) -> Result<Server, ringleader_proxy::Error> {
    match Server::bind(config.clone()).await {
        Err(ringleader_proxy::Error::Bind { addr, .. }) => {
            tracing::warn!(%addr, "address taken; using a free port instead");
            if config.server.listen == addr {
                config.server.listen.set_port(0);
            } else {
                config.server.admin.set_port(0);
            }
            Box::pin(bind_demo(config)).await
        }
        other => other,
    }
}

/// Run `ringleader demo`.
///
/// The banner is best-effort: with standard output closed the demo is not lost, it logs
/// that the banner was not shown and keeps serving until Ctrl-C or SIGTERM.
pub fn demo(args: DemoArgs) -> Result<(), CliError> {
    if args.cluster {
        return crate::demo_cluster::run(args);
    }
    let rt = runtime(0)?;
    rt.block_on(async move {
        let signals = Signals::new()?;
        let alpha = DemoBackend::start("alpha", Duration::ZERO).await?;
        let bravo = DemoBackend::start("bravo", Duration::ZERO).await?;
        let charlie = DemoBackend::start("charlie", Duration::from_millis(80)).await?;
        let backends = [alpha.addr(), bravo.addr(), charlie.addr()];
        let named = [
            ("alpha", backends[0]),
            ("bravo", backends[1]),
            ("charlie", backends[2]),
        ];
        let config = demo_config(args.listen, args.admin, &named)?;
        let server = bind_demo(config).await?;
        let (p, a) = (server.proxy_addr(), server.admin_addr());
        let text = banner(p, a, backends);
        match crate::out::stdout(|out| Ok(out.write_all(text.as_bytes())?)) {
            Err(e) if crate::out::is_stdout_closed(&*e) => {
                tracing::info!("standard output is closed: the demo's banner is not shown");
            }
            other => other?,
        }
        tracing::info!(proxy = %p, admin = %a, "demo ready; Ctrl-C stops it");
        signals.run_until(server, None).await
    })
}

/// The demo's banner: where everything listens and commands to try.
pub fn banner(p: SocketAddr, a: SocketAddr, [alpha, bravo, charlie]: [SocketAddr; 3]) -> String {
    format!(
        r#"ringleader demo
  proxy    http://{p}/
  admin    http://{a}/status   http://{a}/metrics
  backends alpha http://{alpha}  bravo http://{bravo}  charlie http://{charlie} (80 ms slower)
  strategy power_of_two (peak EWMA), active checks every 1s, retries on connect_error/timeout/5xx

Try:
  curl -i http://{p}/                                   # x-backend says who answered
  for i in $(seq 20); do curl -s http://{p}/; done | sort | uniq -c   # charlie (slow) gets fewer
  curl -s http://{a}/status                              # health, in-flight, EWMA per backend
  curl -s http://{a}/metrics | grep ringleader_

Watch failover:
  watch -n 0.5 curl -s http://{a}/status                 # in a second terminal
  curl -X POST 'http://{bravo}/_demo/down?secs=15'            # bravo refuses connections for 15 s
  for i in $(seq 20); do curl -s -o /dev/null -w '%{{http_code}}\n' http://{p}/; done | sort | uniq -c
                                                         # all 200: refused connects are retried elsewhere;
                                                         # bravo shows "ejected"/"down", then "up" again
Ctrl-C stops the demo.
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn demo_config_is_valid() {
        let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
        // The admin listener differs from the proxy's (a config with both on one address
        // is refused).
        let c = demo_config(
            "127.0.0.1:8".parse().unwrap(),
            "127.0.0.1:9".parse().unwrap(),
            &[
                ("alpha", a),
                ("bravo", "127.0.0.1:2".parse().unwrap()),
                ("charlie", "127.0.0.1:3".parse().unwrap()),
            ],
        )
        .unwrap();
        let labels: Vec<&str> = c.upstreams["demo"]
            .backends
            .iter()
            .map(|b| b.label())
            .collect();
        assert_eq!(labels, ["alpha", "bravo", "charlie"]);
    }

    /// One HTTP/1.1 exchange on a fresh connection: status and the raw response text.
    async fn http(addr: SocketAddr, method: &str, path: &str) -> std::io::Result<(u16, String)> {
        let mut s = tokio::net::TcpStream::connect(addr).await?;
        let req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await?;
        let mut buf = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf)).await??;
        let text = String::from_utf8_lossy(&buf).into_owned();
        let status = text
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        Ok((status, text))
    }

    /// Poll `cond` every 20 ms until it holds, for at most `limit`.
    async fn wait_for<F, Fut>(limit: Duration, what: &str, mut cond: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        let deadline = Instant::now() + limit;
        while !cond().await {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A backend's `"health"` in the admin's /status text (the object naming it).
    fn health_of(status: &str, name: &str) -> Option<String> {
        // The body after the head; backends are objects with nested ones (last_check).
        let body = &status[status.find("\r\n\r\n").map_or(0, |i| i + 4)..];
        let v: serde_json::Value = serde_json::from_str(body).ok()?;
        v["upstreams"].as_object()?.values().find_map(|up| {
            up["backends"]
                .as_array()?
                .iter()
                .find(|b| b["name"] == name)
                .and_then(|b| b["health"].as_str().map(str::to_string))
        })
    }

    /// What the demo's banner tells a user to try is what happens: the proxy answers with
    /// x-backend, /status and /metrics call the backends alpha, bravo and charlie, and while
    /// bravo refuses connections every request still gets 200 and bravo's health leaves "up".
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_demo_banner_hints_hold_and_status_names_the_backends() {
        let alpha = DemoBackend::start("alpha", Duration::ZERO).await.unwrap();
        let bravo = DemoBackend::start("bravo", Duration::ZERO).await.unwrap();
        let charlie = DemoBackend::start("charlie", Duration::from_millis(80))
            .await
            .unwrap();
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let named = [
            ("alpha", alpha.addr()),
            ("bravo", bravo.addr()),
            ("charlie", charlie.addr()),
        ];
        let server = bind_demo(demo_config(any, any, &named).unwrap())
            .await
            .unwrap();
        let (p, a) = (server.proxy_addr(), server.admin_addr());
        let text = banner(p, a, [alpha.addr(), bravo.addr(), charlie.addr()]);
        assert!(text.contains(&format!("curl -i http://{p}/")), "{text}");
        assert!(
            text.contains(&format!(
                "curl -X POST 'http://{}/_demo/down?secs=15'",
                bravo.addr()
            )),
            "{text}"
        );

        let (status, resp) = http(p, "GET", "/").await.unwrap();
        assert_eq!(status, 200, "{resp}");
        let lower = resp.to_ascii_lowercase();
        assert!(
            ["alpha", "bravo", "charlie"]
                .iter()
                .any(|n| lower.contains(&format!("x-backend: {n}"))),
            "{resp}"
        );

        let (status, s) = http(a, "GET", "/status").await.unwrap();
        assert_eq!(status, 200, "{s}");
        for name in ["alpha", "bravo", "charlie"] {
            assert_eq!(health_of(&s, name).as_deref(), Some("up"), "{name} in {s}");
        }
        assert!(
            s.contains("\"in_flight\"") && s.contains("\"ewma_ms\""),
            "{s}"
        );
        let (status, m) = http(a, "GET", "/metrics").await.unwrap();
        assert_eq!(status, 200);
        assert!(m.contains("ringleader_"), "{m}");
        assert!(m.contains("backend=\"bravo\""), "{m}");

        // Watch failover: bravo refuses connections for 2 s.
        let (status, d) = http(bravo.addr(), "POST", "/_demo/down?secs=2")
            .await
            .unwrap();
        assert_eq!(status, 200, "{d}");
        let b = bravo.addr();
        wait_for(
            Duration::from_secs(5),
            "bravo to refuse connections",
            || async move { tokio::net::TcpStream::connect(b).await.is_err() },
        )
        .await;
        for _ in 0..20 {
            let (status, r) = http(p, "GET", "/").await.unwrap();
            assert_eq!(status, 200, "while bravo is down: {r}");
        }
        wait_for(
            Duration::from_secs(10),
            "bravo to leave \"up\" in /status",
            || async move {
                let (_, s) = http(a, "GET", "/status").await.unwrap();
                matches!(health_of(&s, "bravo").as_deref(), Some("down" | "ejected"))
            },
        )
        .await;
        wait_for(
            Duration::from_secs(15),
            "bravo to be \"up\" again",
            || async move {
                let (_, s) = http(a, "GET", "/status").await.unwrap();
                health_of(&s, "bravo").as_deref() == Some("up")
            },
        )
        .await;
        server.shutdown().await;
    }
}
