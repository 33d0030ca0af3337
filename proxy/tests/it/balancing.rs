//! How each balancing strategy spreads requests over real demo backends.
use crate::common::*;
use http::StatusCode;
use std::collections::HashMap;
use std::time::Duration;

/// `workers` concurrent clients sending `per_worker` GETs each; returns statuses seen.
async fn concurrent(
    workers: usize,
    per_worker: usize,
    addr: std::net::SocketAddr,
) -> Vec<StatusCode> {
    let mut tasks = Vec::new();
    for _ in 0..workers {
        tasks.push(tokio::spawn(async move {
            let c = client();
            let mut v = Vec::new();
            for _ in 0..per_worker {
                v.push(get(&c, addr, "/").await.status);
            }
            v
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all
}

#[tokio::test]
async fn round_robin_spreads_evenly() {
    let b = backends(3).await;
    let s = start(equal_three(&b, "strategy = \"round_robin\"", "")).await;
    let seen = sequential(30, s.proxy_addr(), &[]).await;
    assert_eq!(
        seen.values().copied().collect::<Vec<_>>(),
        vec![10, 10, 10],
        "{seen:?}"
    );
}

#[tokio::test]
async fn weighted_round_robin_follows_weights() {
    let b = backends(3).await;
    let s = start(config(
        "",
        &[(&b[0], 1), (&b[1], 2), (&b[2], 3)],
        "strategy = \"weighted_round_robin\"",
        "",
    ))
    .await;
    let seen = sequential(60, s.proxy_addr(), &[]).await;
    assert_eq!(
        (seen["b0"], seen["b1"], seen["b2"]),
        (10, 20, 30),
        "{seen:?}"
    );
}

#[tokio::test]
async fn random_reaches_every_backend() {
    let b = backends(3).await;
    let s = start(equal_three(&b, "strategy = \"random\"", "")).await;
    let seen = sequential(90, s.proxy_addr(), &[]).await;
    // Binomial(90, 1/3): fewer than 10 or more than 55 is a >4 sigma event.
    for name in ["b0", "b1", "b2"] {
        let n = seen.get(name).copied().unwrap_or(0);
        assert!((10..=55).contains(&n), "{seen:?}");
    }
}

#[tokio::test]
async fn consistent_hash_keeps_a_key_on_one_backend() {
    let b = backends(3).await;
    let s = start(equal_three(
        &b,
        "strategy = \"consistent_hash\"\nhash_key = \"header:x-user-id\"",
        "",
    ))
    .await;
    let c = client();
    let mut owners = HashMap::new();
    for round in 0..3 {
        for user in 0..20 {
            let id = format!("user-{user}");
            let a = send(&c, s.proxy_addr(), "GET", "/", &[("x-user-id", &id)], "").await;
            let backend = a.backend.unwrap();
            let owner = owners.entry(id.clone()).or_insert_with(|| backend.clone());
            assert_eq!(*owner, backend, "{id} moved in round {round}");
        }
    }
    let distinct: std::collections::HashSet<_> = owners.values().collect();
    assert!(
        distinct.len() >= 2,
        "20 keys all on one backend: {owners:?}"
    );
}

/// Load-aware strategies send less to a backend that is 60 ms slower.
async fn slow_backend_gets_less(strategy: &str, concurrency: usize) {
    let b = backends(3).await;
    b[0].set_delay(Duration::from_millis(60));
    let s = start(equal_three(&b, &format!("strategy = \"{strategy}\""), "")).await;
    let statuses = concurrent(concurrency, 30, s.proxy_addr()).await;
    assert!(statuses.iter().all(|s| *s == 200));
    let total = (concurrency * 30) as u64;
    let slow = b[0].requests();
    assert_eq!(slow + b[1].requests() + b[2].requests(), total);
    assert!(
        slow * 6 < total,
        "{strategy}: slow backend got {slow} of {total}"
    );
}

#[tokio::test]
async fn least_response_time_tries_every_backend() {
    let b = backends(3).await;
    let s = start(equal_three(&b, "strategy = \"least_response_time\"", "")).await;
    let seen = sequential(30, s.proxy_addr(), &[]).await;
    assert_eq!(
        seen.len(),
        3,
        "an unmeasured backend must get traffic: {seen:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn least_connections_avoids_the_slow_backend() {
    slow_backend_gets_less("least_connections", 4).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn least_response_time_avoids_the_slow_backend() {
    slow_backend_gets_less("least_response_time", 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn power_of_two_avoids_the_slow_backend() {
    slow_backend_gets_less("power_of_two", 4).await;
}
