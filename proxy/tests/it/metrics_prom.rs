//! /metrics read by a real Prometheus text parser: every line parses, every family has
//! HELP and TYPE, counters end in `_total`; health as one 0/1 series per state, responses
//! by `code` class per proxy and per backend, build info, process start, active checks.
use crate::common::*;
use prometheus_parse::{LineInfo, Sample, Scrape, Value};
use ringleader_proxy::{Config, DemoBackend, Server};
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Scrape /metrics; check the format on the way (strictly: the parser skips what it
/// does not understand, so every line is checked to be a comment or a sample).
async fn scrape(admin: SocketAddr) -> Scrape {
    let a = get(&client(), admin, "/metrics").await;
    assert_eq!(a.status, 200);
    let ctype = a.headers["content-type"].to_str().unwrap();
    assert!(ctype.starts_with("text/plain; version=0.0.4"), "{ctype}");
    let mut help = HashSet::new();
    let mut types: HashMap<String, String> = HashMap::new();
    for line in a.body.lines() {
        assert!(!line.starts_with(' '), "indented line: {line:?}");
        match LineInfo::parse(line) {
            LineInfo::Doc { metric_name, .. } => {
                assert!(help.insert(metric_name.to_string()), "HELP twice: {line}");
            }
            LineInfo::Type {
                metric_name,
                metric_alias,
                ..
            } => {
                let family = metric_alias.unwrap_or(metric_name);
                let kind = line.rsplit(' ').next().unwrap().to_string();
                assert!(help.contains(&family), "TYPE before HELP: {line}");
                if kind == "counter" {
                    assert!(family.ends_with("_total"), "counter {family}");
                }
                assert!(types.insert(family, kind).is_none(), "TYPE twice: {line}");
            }
            LineInfo::Sample { metric_name, .. } => {
                let family = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|s| {
                        let f = metric_name.strip_suffix(s)?;
                        (types.get(f).map(String::as_str) == Some("histogram")).then_some(f)
                    })
                    .unwrap_or(metric_name);
                assert!(types.contains_key(family), "sample without TYPE: {line}");
            }
            LineInfo::Empty | LineInfo::Ignored => panic!("not a metric line: {line:?}"),
        }
    }
    Scrape::parse(a.body.lines().map(|l| Ok(l.to_string()))).unwrap()
}

fn value(s: &Sample) -> f64 {
    match &s.value {
        Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
        other => panic!("{} is {other:?}", s.metric),
    }
}

/// The samples of `metric` whose labels include every pair of `labels`.
fn samples<'a>(sc: &'a Scrape, metric: &str, labels: &[(&str, &str)]) -> Vec<&'a Sample> {
    sc.samples
        .iter()
        .filter(|s| s.metric == metric && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .collect()
}

/// The one sample of `metric` with `labels`.
fn one(sc: &Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    let found = samples(sc, metric, labels);
    assert_eq!(found.len(), 1, "{metric} {labels:?}: {found:?}");
    value(found[0])
}

/// Two upstreams: `app` with active checks over a live backend and a dead one (`dead`,
/// name given), `edge` without checks over a refused port and a live backend.
async fn two_upstreams() -> (Server, Vec<DemoBackend>, SocketAddr) {
    let b = backends(3).await;
    let refused = closed_addr();
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n\
         [[route]]\npath_prefix = \"/edge\"\nupstream = \"edge\"\n\
         [[route]]\npath_prefix = \"/\"\nupstream = \"app\"\n\
         [upstream.app]\nstrategy = \"round_robin\"\n\
         backends = [{{ addr = \"{}\" }}, {{ addr = \"{}\", name = \"dead\" }}]\n\
         {FAST_HEALTH}\
         [upstream.edge]\nstrategy = \"round_robin\"\n\
         backends = [{{ addr = \"{refused}\" }}, {{ addr = \"{}\" }}]\n",
        b[0].addr(),
        b[1].addr(),
        b[2].addr()
    );
    let cfg = Config::from_toml_str(&text, "test.toml").unwrap();
    (start(cfg).await, b, refused)
}

#[tokio::test]
async fn every_backend_has_all_three_health_series_one_of_them_1() {
    let (s, b, refused) = two_upstreams().await;
    b[1].kill();
    let admin = s.admin_addr();
    wait_until(Duration::from_secs(5), "dead goes down", || async {
        health_of(admin, b[1].addr()).await.as_deref() == Some("down")
    })
    .await;
    // Round robin over edge: the refused port is tried once and ejected at once.
    for _ in 0..2 {
        assert_eq!(get(&client(), s.proxy_addr(), "/edge").await.status, 200);
    }
    let sc = scrape(admin).await;
    let want = [
        ("app", b[0].addr().to_string(), "up"),
        ("app", b[1].addr().to_string(), "down"),
        ("edge", refused.to_string(), "ejected"),
        ("edge", b[2].addr().to_string(), "up"),
    ];
    for (up, addr, now) in &want {
        let mut ones = 0;
        for state in ["up", "down", "ejected"] {
            let v = one(
                &sc,
                "ringleader_backend_health",
                &[("upstream", up), ("addr", addr), ("state", state)],
            );
            assert!(v == 0.0 || v == 1.0, "{v}");
            if v == 1.0 {
                assert_eq!(state, *now, "{up} {addr}");
                ones += 1;
            }
        }
        assert_eq!(ones, 1, "{up} {addr}");
    }
    assert_eq!(samples(&sc, "ringleader_backend_health", &[]).len(), 4 * 3);
    // `backend` is the name where one is given.
    assert_eq!(
        one(
            &sc,
            "ringleader_backend_health",
            &[("backend", "dead"), ("state", "down")]
        ),
        1.0
    );
    // The last active check: passed on the live backend, failed on the dead one, none
    // on an upstream without checks.
    let last = |addr: &str| {
        one(
            &sc,
            "ringleader_backend_check_last_success",
            &[("upstream", "app"), ("addr", addr)],
        )
    };
    assert_eq!(last(&b[0].addr().to_string()), 1.0);
    assert_eq!(last(&b[1].addr().to_string()), 0.0);
    let took = samples(&sc, "ringleader_backend_check_last_duration_seconds", &[]);
    assert_eq!(took.len(), 2, "app's two backends: {took:?}");
    assert!(
        took.iter().all(|s| (0.0..1.0).contains(&value(s))),
        "{took:?}"
    );
    assert!(samples(
        &sc,
        "ringleader_backend_check_last_success",
        &[("upstream", "edge")]
    )
    .is_empty());
    assert_eq!(
        one(
            &sc,
            "ringleader_upstream_ejections_active",
            &[("upstream", "edge")]
        ),
        1.0
    );
    assert_eq!(
        one(
            &sc,
            "ringleader_upstream_ejections_active",
            &[("upstream", "app")]
        ),
        0.0
    );
}

#[tokio::test]
async fn responses_by_code_class_per_proxy_and_per_backend() {
    let (s, b, _) = two_upstreams().await;
    let c = client();
    for _ in 0..4 {
        assert_eq!(get(&c, s.proxy_addr(), "/").await.status, 200);
    }
    b[0].set_failing(Some(http::StatusCode::NOT_FOUND));
    b[1].set_failing(Some(http::StatusCode::NOT_FOUND));
    for _ in 0..2 {
        assert_eq!(get(&c, s.proxy_addr(), "/").await.status, 404);
    }
    let sc = scrape(s.admin_addr()).await;
    for (code, n) in [
        ("1xx", 0.0),
        ("2xx", 4.0),
        ("3xx", 0.0),
        ("4xx", 2.0),
        ("5xx", 0.0),
    ] {
        assert_eq!(
            one(&sc, "ringleader_http_responses_total", &[("code", code)]),
            n
        );
        // The name and label of before stay.
        assert_eq!(
            one(&sc, "ringleader_responses_total", &[("class", code)]),
            n
        );
    }
    // Per backend: what each relayed (round robin: half each), all five classes listed.
    for x in &b[..2] {
        let addr = x.addr().to_string();
        let l = |code| [("upstream", "app"), ("addr", addr.as_str()), ("code", code)];
        assert_eq!(
            one(&sc, "ringleader_backend_http_responses_total", &l("2xx")),
            2.0
        );
        assert_eq!(
            one(&sc, "ringleader_backend_http_responses_total", &l("4xx")),
            1.0
        );
        assert_eq!(
            one(&sc, "ringleader_backend_http_responses_total", &l("5xx")),
            0.0
        );
    }
    assert_eq!(
        samples(
            &sc,
            "ringleader_backend_http_responses_total",
            &[("upstream", "edge")]
        )
        .len(),
        2 * 5
    );
    // Requests took keep-alive connections that went back to the pool.
    let idle: f64 = samples(
        &sc,
        "ringleader_backend_idle_connections",
        &[("upstream", "app")],
    )
    .iter()
    .map(|s| value(s))
    .sum();
    assert!(idle >= 1.0, "{idle}");
}

#[tokio::test]
async fn build_info_and_process_start_time() {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let (s, _b, _) = two_upstreams().await;
    let sc = scrape(s.admin_addr()).await;
    assert_eq!(
        one(
            &sc,
            "ringleader_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        1.0
    );
    // The process (this test binary) started before this test, and not long before.
    let started = one(&sc, "process_start_time_seconds", &[]);
    assert!(
        started <= now,
        "started {started} after the test began at {now}"
    );
    assert!(now - started < 3600.0, "started {started}, now {now}");
    assert!(
        samples(&sc, "ringleader_uptime_seconds_total", &[]).is_empty(),
        "the uptime counter is gone"
    );
}

#[tokio::test]
async fn active_checks_counted_per_backend_with_their_duration() {
    let (s, b, refused) = two_upstreams().await;
    b[1].kill();
    let admin = s.admin_addr();
    wait_until(Duration::from_secs(5), "dead goes down", || async {
        health_of(admin, b[1].addr()).await.as_deref() == Some("down")
    })
    .await;
    let sc = scrape(admin).await;
    let (live, dead) = (b[0].addr().to_string(), b[1].addr().to_string());
    let l = |a: &str| [("upstream", "app"), ("addr", a)].map(|(k, v)| (k, v.to_string()));
    let get = |metric: &str, a: &str| {
        let l = l(a);
        let l: Vec<(&str, &str)> = l.iter().map(|(k, v)| (*k, v.as_str())).collect();
        one(&sc, metric, &l)
    };
    let dead_checks = get("ringleader_backend_checks_total", &dead);
    assert!(dead_checks >= 2.0, "{dead_checks}");
    assert!(get("ringleader_backend_check_failures_total", &dead) >= 2.0);
    assert!(get("ringleader_backend_checks_total", &live) >= 1.0);
    assert_eq!(get("ringleader_backend_check_failures_total", &live), 0.0);
    // The histogram counts every check.
    let hist = samples(
        &sc,
        "ringleader_backend_check_duration_seconds",
        &[("upstream", "app"), ("addr", &dead)],
    );
    assert_eq!(hist.len(), 1, "{hist:?}");
    let Value::Histogram(buckets) = &hist[0].value else {
        panic!("{hist:?}")
    };
    let inf = buckets.iter().find(|b| b.less_than.is_infinite()).unwrap();
    let count = one(
        &sc,
        "ringleader_backend_check_duration_seconds_count",
        &[("upstream", "app"), ("addr", &dead)],
    );
    assert_eq!(inf.count, count);
    assert!(count >= dead_checks, "{count} {dead_checks}");
    // `edge` has no [health] table: no check series for it.
    assert!(samples(
        &sc,
        "ringleader_backend_checks_total",
        &[("addr", &refused.to_string())]
    )
    .is_empty());
}
