//! Config files and reloads: the example config parses, a reload swaps backends keeping in-flight
//! requests and statistics, an invalid reload keeps the old config.
use crate::common::*;
use ringleader_proxy::Config;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_swaps_backends_keeps_in_flight_and_stats() {
    let b = backends(3).await;
    let s = start(config(
        "",
        &[(&b[0], 1), (&b[1], 1)],
        "strategy = \"round_robin\"",
        "",
    ))
    .await;
    let addr = s.proxy_addr();
    sequential(10, addr, &[]).await;
    assert_eq!((b[0].requests(), b[1].requests()), (5, 5));

    // Two slow requests in flight, one on each old backend.
    let slow: Vec<_> = (0..2)
        .map(|_| tokio::spawn(async move { get(&client(), addr, "/slow?ms=500").await }))
        .collect();
    wait_until(
        Duration::from_secs(5),
        "slow requests in flight",
        || async { b[0].requests() + b[1].requests() == 12 },
    )
    .await;
    s.proxy()
        .reload(config(
            "",
            &[(&b[1], 1), (&b[2], 1)],
            "strategy = \"round_robin\"",
            "",
        ))
        .unwrap();
    for t in slow {
        assert_eq!(
            t.await.unwrap().status,
            200,
            "in-flight request survived the reload"
        );
    }
    let st = status(s.admin_addr()).await;
    let list = st["upstreams"]["app"]["backends"].as_array().unwrap();
    let addrs: Vec<_> = list
        .iter()
        .map(|x| x["addr"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        addrs,
        vec![b[1].addr().to_string(), b[2].addr().to_string()]
    );
    assert_eq!(list[0]["requests"], 6, "kept backend keeps its stats");
    assert_eq!(list[1]["requests"], 0);

    let a_before = b[0].requests();
    let seen = sequential(10, addr, &[]).await;
    assert_eq!(b[0].requests(), a_before, "removed backend gets nothing");
    assert_eq!((seen["b1"], seen["b2"]), (5, 5));
}

#[tokio::test]
async fn invalid_reload_keeps_the_old_config() {
    let b = backends(2).await;
    let s = start(config("", &[(&b[0], 1)], "", "")).await;
    let dir = std::env::temp_dir().join(format!("ringleader-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bad.toml");
    std::fs::write(
        &path,
        format!(
            "[upstream.app]\nbackends = [{{ addr = \"{}\" }}]\nbogus = 1\n",
            b[1].addr()
        ),
    )
    .unwrap();
    let err = s.proxy().reload_file(&path).unwrap_err().to_string();
    assert!(err.contains("bad.toml:3:1"), "{err}");
    let c = client();
    for _ in 0..4 {
        let a = get(&c, s.proxy_addr(), "/").await;
        assert_eq!(a.backend.as_deref(), Some("b0"));
    }
    // And a valid file applies.
    std::fs::write(
        &path,
        format!("[server]\nlisten = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n[upstream.app]\nbackends = [{{ addr = \"{}\" }}]\n", b[1].addr()),
    )
    .unwrap();
    s.proxy().reload_file(&path).unwrap();
    assert_eq!(
        get(&c, s.proxy_addr(), "/").await.backend.as_deref(),
        Some("b1")
    );
    let m = get(&c, s.admin_addr(), "/metrics").await.body;
    assert!(m.contains("ringleader_reload_failures_total 1"), "{m}");
    assert!(m.contains("ringleader_reloads_total 1"), "{m}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn example_config_parses() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/ringleader.toml");
    let c = Config::load(std::path::Path::new(path)).unwrap();
    assert_eq!(c.routes.len(), 2);
    assert_eq!(c.upstreams.len(), 2);
}

#[tokio::test]
async fn a_reload_warns_about_settings_that_need_a_restart_and_applies_the_rest() {
    let (logs, _guard) = Logs::capture();
    let b = backends(2).await;
    let s = start(config("", &[(&b[0], 1)], "", "")).await;
    s.proxy()
        .reload(config(
            "workers = 3\nmax_connections = 50\nshutdown_grace = \"5s\"\nrequest_timeout = \"7s\"",
            &[(&b[1], 1)],
            "",
            "",
        ))
        .unwrap();
    // The rest applied: the new backend serves, the live setting is in effect.
    assert_eq!(sequential(2, s.proxy_addr(), &[]).await["b1"], 2);
    assert_eq!(
        s.proxy().config().server.request_timeout,
        Duration::from_secs(7)
    );
    for want in [
        "server.workers changed 0 -> 3 but is not applied by a reload; restart to apply",
        "server.max_connections changed 10000 -> 50 but is not applied by a reload; restart to apply",
        "server.shutdown_grace changed 30s -> 5s but is not applied by a reload; restart to apply",
    ] {
        let got = logs.lines_with(&[" WARN ", want]);
        assert_eq!(got.len(), 1, "{want}:\n{}", logs.text());
    }
    assert!(
        logs.lines_with(&["request_timeout"]).is_empty(),
        "applies live:\n{}",
        logs.text()
    );
    let pending = status(s.admin_addr()).await["restart_required"].clone();
    assert_eq!(
        pending,
        serde_json::json!([
            { "setting": "server.workers", "running": "0", "configured": "3" },
            { "setting": "server.max_connections", "running": "10000", "configured": "50" },
            { "setting": "server.shutdown_grace", "running": "30s", "configured": "5s" },
        ])
    );

    // Back to the running values: nothing waits for a restart any more.
    s.proxy().reload(config("", &[(&b[1], 1)], "", "")).unwrap();
    assert_eq!(
        status(s.admin_addr()).await["restart_required"],
        serde_json::json!([])
    );
    assert_eq!(logs.lines_with(&["restart to apply"]).len(), 3);
}
