//! `ringleader serve`, `check` and `demo`: the proxy's own subcommands.
use crate::CliError;
use ringleader_proxy::{Config, DemoBackend, Server};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Arguments of `ringleader serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Config file (TOML).
    #[arg(short, long, default_value = "ringleader.toml")]
    pub config: PathBuf,
}

/// Arguments of `ringleader check`.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// Config file (TOML).
    #[arg(short, long, default_value = "ringleader.toml")]
    pub config: PathBuf,
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
    let config = Config::load(&args.config)?;
    let rt = runtime(config.server.workers)?;
    rt.block_on(async move {
        let server = Server::bind(config).await?;
        run_until_signal(server, Some(&args.config)).await
    })
}

/// Serve until SIGTERM/SIGINT (then drain); SIGHUP reloads `config_path`.
pub async fn run_until_signal(server: Server, config_path: Option<&Path>) -> Result<(), CliError> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hup = signal(SignalKind::hangup())?;
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        loop {
            tokio::select! {
                _ = hup.recv() => match config_path {
                    Some(p) => {
                        tracing::info!(config = %p.display(), "SIGHUP: reloading");
                        // Errors are logged by reload_file; the old config keeps serving.
                        let _ = server.proxy().reload_file(p);
                    }
                    None => tracing::warn!("SIGHUP ignored: no config file to reload"),
                },
                _ = term.recv() => break,
                _ = int.recv() => break,
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = config_path;
        tokio::signal::ctrl_c().await?;
    }
    let grace = server.proxy().config().server.shutdown_grace;
    tracing::info!(grace = %humantime::format_duration(grace), "shutting down: no new connections, draining");
    server.shutdown().await;
    Ok(())
}

/// Run `ringleader check`.
pub fn check(args: CheckArgs) -> Result<(), CliError> {
    let config = Config::load(&args.config)?;
    println!("{}: OK\n", args.config.display());
    print!("{}", config.describe());
    Ok(())
}

/// The demo's config for three backends.
pub fn demo_config(
    listen: SocketAddr,
    admin: SocketAddr,
    backends: &[SocketAddr],
) -> Result<Config, ringleader_proxy::Error> {
    let list: Vec<String> = backends
        .iter()
        .map(|a| format!("{{ addr = \"{a}\" }}"))
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

async fn bind_demo(mut config: Config) -> Result<Server, ringleader_proxy::Error> {
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
pub fn demo(args: DemoArgs) -> Result<(), CliError> {
    let rt = runtime(0)?;
    rt.block_on(async move {
        let alpha = DemoBackend::start("alpha", Duration::ZERO).await?;
        let bravo = DemoBackend::start("bravo", Duration::ZERO).await?;
        let charlie = DemoBackend::start("charlie", Duration::from_millis(80)).await?;
        let config = demo_config(args.listen, args.admin, &[alpha.addr(), bravo.addr(), charlie.addr()])?;
        let server = bind_demo(config).await?;
        let p = server.proxy_addr();
        let a = server.admin_addr();
        println!(
            r#"ringleader demo
  proxy    http://{p}/
  admin    http://{a}/status   http://{a}/metrics
  backends alpha http://{}  bravo http://{}  charlie http://{} (80 ms slower)
  strategy power_of_two (peak EWMA), active checks every 1s, retries on connect_error/timeout/5xx

Try:
  curl -i http://{p}/                                   # x-backend says who answered
  for i in $(seq 20); do curl -s http://{p}/; done | sort | uniq -c   # charlie (slow) gets fewer
  curl -s http://{a}/status                              # health, in-flight, EWMA per backend
  curl -s http://{a}/metrics | grep ringleader_

Watch failover:
  watch -n 0.5 curl -s http://{a}/status                 # in a second terminal
  curl -X POST 'http://{}/_demo/down?secs=15'            # bravo refuses connections for 15 s
  for i in $(seq 20); do curl -s -o /dev/null -w '%{{http_code}}\n' http://{p}/; done | sort | uniq -c
                                                         # all 200: refused connects are retried elsewhere;
                                                         # bravo shows "ejected"/"down", then "up" again
Ctrl-C stops the demo."#,
            alpha.addr(),
            bravo.addr(),
            charlie.addr(),
            bravo.addr(),
        );
        run_until_signal(server, None).await
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_config_is_valid() {
        let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let c = demo_config(
            a,
            a,
            &[
                a,
                "127.0.0.1:2".parse().unwrap(),
                "127.0.0.1:3".parse().unwrap(),
            ],
        )
        .unwrap();
        assert_eq!(c.upstreams["demo"].backends.len(), 3);
    }
}
