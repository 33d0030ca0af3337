//! Backend names: /status and /metrics call a backend by its name (its address when it has
//! none), and a reload that renames a backend keeps its statistics and shows the new name.
use crate::common::*;
use ringleader_proxy::DemoBackend;

/// Backend entries with the names given (`None` = no name).
fn named(backends: &[(&DemoBackend, Option<&str>)]) -> Vec<String> {
    backends
        .iter()
        .map(|(b, n)| match n {
            Some(n) => format!("{{ addr = \"{}\", name = \"{n}\" }}", b.addr()),
            None => format!("{{ addr = \"{}\" }}", b.addr()),
        })
        .collect()
}

/// `(name, addr, requests)` of each backend of upstream `app` in /status.
async fn listed(admin: std::net::SocketAddr) -> Vec<(String, String, u64)> {
    status(admin).await["upstreams"]["app"]["backends"]
        .as_array()
        .expect("backends")
        .iter()
        .map(|b| {
            (
                b["name"].as_str().expect("name").to_string(),
                b["addr"].as_str().expect("addr").to_string(),
                b["requests"].as_u64().expect("requests"),
            )
        })
        .collect()
}

#[tokio::test]
async fn status_and_metrics_show_names_and_a_rename_keeps_stats() {
    let b = backends(2).await;
    let (a0, a1) = (b[0].addr().to_string(), b[1].addr().to_string());
    let s = start(config_of(
        "",
        &named(&[(&b[0], Some("alpha")), (&b[1], None)]),
        "strategy = \"round_robin\"",
        "",
    ))
    .await;
    let admin = s.admin_addr();
    sequential(4, s.proxy_addr(), &[]).await;
    assert_eq!(
        listed(admin).await,
        [("alpha".into(), a0.clone(), 2), (a1.clone(), a1.clone(), 2)]
    );
    let text = get(&client(), admin, "/metrics").await.body;
    for line in [
        format!("ringleader_backend_requests_total{{upstream=\"app\",backend=\"alpha\",addr=\"{a0}\"}} 2"),
        format!("ringleader_backend_requests_total{{upstream=\"app\",backend=\"{a1}\",addr=\"{a1}\"}} 2"),
        format!("ringleader_backend_up{{upstream=\"app\",backend=\"alpha\",addr=\"{a0}\"}} 1"),
    ] {
        assert!(text.contains(&line), "no {line} in\n{text}");
    }

    // Same addresses, new names: the statistics stay, the names change.
    s.proxy()
        .reload(config_of(
            "",
            &named(&[(&b[0], Some("bravo")), (&b[1], Some("charlie"))]),
            "strategy = \"round_robin\"",
            "",
        ))
        .unwrap();
    assert_eq!(
        listed(admin).await,
        [
            ("bravo".into(), a0.clone(), 2),
            ("charlie".into(), a1.clone(), 2)
        ]
    );
    let text = get(&client(), admin, "/metrics").await.body;
    let line = format!(
        "ringleader_backend_requests_total{{upstream=\"app\",backend=\"bravo\",addr=\"{a0}\"}} 2"
    );
    assert!(text.contains(&line), "no {line} in\n{text}");
    assert!(!text.contains("\"alpha\""), "old name gone:\n{text}");
}

#[tokio::test]
async fn an_ejection_is_logged_with_the_backends_name_and_address() {
    let (logs, _guard) = Logs::capture();
    let b = backends(1).await;
    let gone = closed_addr();
    let entries = vec![
        format!("{{ addr = \"{gone}\", name = \"bravo\" }}"),
        format!("{{ addr = \"{}\", name = \"alpha\" }}", b[0].addr()),
    ];
    let s = start(config_of("", &entries, "strategy = \"round_robin\"", "")).await;
    // Round robin sends one of the first two requests to the closed port: refused,
    // ejected at once, retried on alpha.
    sequential(2, s.proxy_addr(), &[]).await;
    let want = format!("backend bravo ({gone}) ejected (ejection 1; consecutive_failures = 5, ejection_time = 30s), last: ");
    let got = logs.lines_with(&[" WARN ", &want]);
    assert_eq!(got.len(), 1, "{}", logs.text());
    assert!(
        got[0].ends_with(&format!("upstream=app backend=bravo addr={gone}")),
        "{}",
        got[0]
    );
    let retried = logs.lines_with(&[
        "DEBUG ",
        &format!("attempt 1 on bravo ({gone}) failed"),
        "retrying on another backend",
    ]);
    assert_eq!(retried.len(), 1, "{}", logs.text());
}
