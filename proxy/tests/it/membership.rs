//! Membership from the cluster, fed directly (no etcd): an upstream with `backends_from =
//! "cluster"` answers 503 until its first membership, each membership is applied like a
//! reload (backends that stay keep their statistics and ejections), a file reload keeps
//! the last membership, and an unusable membership changes nothing.
use crate::common::*;
use ringleader_proxy::{BackendConfig, Config, Error, Server};
use std::net::SocketAddr;

/// A config whose upstream `app` takes its backends from a cluster at an address
/// nothing listens on (the cluster is never reached: memberships are fed directly).
pub fn cluster_config(upstream_extra: &str, tail: &str) -> Config {
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n\
         [cluster]\nendpoints = [\"http://{}\"]\n\
         [upstream.app]\nbackends_from = \"cluster\"\n{upstream_extra}\n{tail}\n",
        closed_addr()
    );
    Config::from_toml_str(&text, "test.toml").unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn member(addr: SocketAddr) -> BackendConfig {
    BackendConfig::new(addr.to_string(), 1, None)
}

/// `(addr, requests, ejections)` of upstream `app`'s backends in /status, in order.
async fn listed(s: &Server) -> Vec<(String, u64, u64)> {
    status(s.admin_addr()).await["upstreams"]["app"]["backends"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["addr"].as_str().unwrap().to_string(),
                b["requests"].as_u64().unwrap(),
                b["ejections"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_backends_until_the_first_membership_then_it_serves() {
    let b = backends(2).await;
    let s = start(cluster_config("strategy = \"round_robin\"", "")).await;
    let c = client();
    assert_eq!(get(&c, s.proxy_addr(), "/").await.status, 503);
    assert_eq!(listed(&s).await, []);

    s.proxy()
        .set_backends("app", vec![member(b[0].addr()), member(b[1].addr())])
        .unwrap();
    let seen = sequential(4, s.proxy_addr(), &[]).await;
    assert_eq!((seen["b0"], seen["b1"]), (2, 2));

    // An empty membership: no backends again.
    s.proxy().set_backends("app", vec![]).unwrap();
    assert_eq!(get(&c, s.proxy_addr(), "/").await.status, 503);
    assert_eq!(
        metric(s.admin_addr(), "ringleader_membership_updates_total ").await,
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_kept_across_memberships_keeps_its_statistics_and_ejection() {
    let b = backends(3).await;
    let dead = closed_addr();
    let s = start(cluster_config("strategy = \"round_robin\"", "")).await;
    let p = s.proxy();
    p.set_backends("app", vec![member(dead), member(b[0].addr())])
        .unwrap();
    // The dead backend refuses its first request: ejected at once, retried on b0.
    let seen = sequential(6, s.proxy_addr(), &[]).await;
    assert_eq!(seen["b0"], 6);
    let before = listed(&s).await;
    assert_eq!(before[0].0, dead.to_string());
    assert_eq!(before[0].2, 1, "dead backend ejected once: {before:?}");
    assert_eq!(before[1], (b[0].addr().to_string(), 6, 0));

    // A backend joins: the two that stay keep their counters and the ejection.
    p.set_backends(
        "app",
        vec![member(dead), member(b[0].addr()), member(b[1].addr())],
    )
    .unwrap();
    let after = listed(&s).await;
    assert_eq!(
        after[..2],
        before[..],
        "kept backends keep their statistics"
    );
    assert_eq!(after[2], (b[1].addr().to_string(), 0, 0));
    let dead_entry = backend_status(s.admin_addr(), dead).await.unwrap();
    assert_eq!(
        dead_entry["available"], false,
        "still ejected: {dead_entry}"
    );

    // One leaves (and is renamed by its member id): b0 keeps going from 6.
    p.set_backends(
        "app",
        vec![
            BackendConfig::new(b[0].addr().to_string(), 1, Some("zero")),
            member(b[1].addr()),
        ],
    )
    .unwrap();
    sequential(2, s.proxy_addr(), &[]).await;
    let st = backend_status(s.admin_addr(), b[0].addr()).await.unwrap();
    assert_eq!(
        (st["requests"].as_u64(), st["name"].as_str()),
        (Some(7), Some("zero"))
    );
    assert!(backend_status(s.admin_addr(), dead).await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_reload_keeps_the_last_membership() {
    let b = backends(2).await;
    let s = start(cluster_config("strategy = \"round_robin\"", "")).await;
    let p = s.proxy();
    p.set_backends("app", vec![member(b[0].addr()), member(b[1].addr())])
        .unwrap();
    sequential(4, s.proxy_addr(), &[]).await;
    let before = listed(&s).await;

    // The file changes something else of the upstream: the members stay, with their stats.
    p.reload(cluster_config(
        "strategy = \"round_robin\"\nconnect_timeout = \"2s\"",
        "",
    ))
    .unwrap();
    assert_eq!(listed(&s).await, before);
    assert_eq!(p.config().upstreams["app"].backends.len(), 2);
    let seen = sequential(4, s.proxy_addr(), &[]).await;
    assert_eq!((seen["b0"], seen["b1"]), (2, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unusable_membership_changes_nothing() {
    let b = backends(1).await;
    let s = start(cluster_config("", "")).await;
    let p = s.proxy();
    p.set_backends("app", vec![member(b[0].addr())]).unwrap();
    let before = listed(&s).await;
    for (upstream, members, want) in [
        (
            "nope",
            vec![member(b[0].addr())],
            "upstream \"nope\" does not take its backends from the cluster",
        ),
        (
            "app",
            vec![BackendConfig::new("no-port", 1, None)],
            "membership of upstream \"app\": backend addr \"no-port\" must be host:port",
        ),
        (
            "app",
            vec![BackendConfig::new("x:1", 0, None)],
            "backend weight must be at least 1",
        ),
        (
            "app",
            vec![member(b[0].addr()), member(b[0].addr())],
            "is listed twice",
        ),
    ] {
        let err = p.set_backends(upstream, members).unwrap_err();
        assert!(
            matches!(
                err,
                Error::NotClusterFed { .. } | Error::InvalidBackend { .. }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains(want), "{err}");
    }
    assert_eq!(listed(&s).await, before);

    // A file-fed upstream is not the cluster's to change.
    let s2 = start(config("", &[(&b[0], 1)], "", "")).await;
    let err = s2.proxy().set_backends("app", vec![]).unwrap_err();
    assert!(matches!(err, Error::NotClusterFed { .. }), "{err:?}");
}
