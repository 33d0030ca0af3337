//! The `/status` fields the status page needs beyond the counters: last check, rise/fall progress, ejection time left, retry budget, hash key, last reload, listeners.
use crate::config::HealthConfig;
use crate::state::{BoundAddrs, LastReload, Running};
use crate::upstream::Upstream;
use ringleader_balancer::{Backend, Health};
use serde_json::{json, Value};
use std::time::{Duration, UNIX_EPOCH};

/// Milliseconds as a JSON number (fractional: a loopback check takes well under 1 ms).
fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// `{"ok", "result", "ago_ms", "duration_ms"}` of the backend's last active check;
/// `null` before the first (or without active checks).
pub(crate) fn last_check(b: &Backend) -> Value {
    match b.last_check() {
        Some((ok, result, ago, took)) => json!({
            "ok": ok,
            "result": result,
            "ago_ms": ms(ago),
            "duration_ms": ms(took),
        }),
        None => Value::Null,
    }
}

/// Progress of the active checks towards a change of state: `{"towards": "down",
/// "count": 2, "of": 3}` while an up backend is failing checks (2 of `fall` = 3),
/// `{"towards": "up", "count": 1, "of": 2}` while a down backend is passing them;
/// `null` when no change is under way or the upstream has no active checks.
pub(crate) fn check_progress(b: &Backend, health: Option<&HealthConfig>) -> Value {
    let Some(h) = health else {
        return Value::Null;
    };
    let (passes, fails) = b.check_streak();
    match b.health() {
        Health::Down if passes > 0 => json!({ "towards": "up", "count": passes, "of": h.rise }),
        Health::Down => Value::Null,
        _ if fails > 0 => json!({ "towards": "down", "count": fails, "of": h.fall }),
        _ => Value::Null,
    }
}

/// Time left of the backend's current passive ejection in ms (`null`: not ejected).
pub(crate) fn ejection_left_ms(b: &Backend) -> Value {
    b.ejection_left().map_or(Value::Null, |d| json!(ms(d)))
}

/// The upstream's retry budget: `{"percent", "reserve"}` (retries may add `percent`
/// of the requests; the balance starts at and is capped by `reserve` tokens).
pub(crate) fn retry_budget(up: &Upstream) -> Value {
    json!({
        "percent": up.config.retry.budget_percent,
        "reserve": crate::upstream::RetryBudget::RESERVE,
        "tokens": up.budget.tokens(),
    })
}

/// What a `consistent_hash` upstream hashes on, as configured (`"header:x-user-id"`);
/// `null` for other strategies.
pub(crate) fn hash_key(up: &Upstream) -> Value {
    up.hash_key
        .as_ref()
        .map_or(Value::Null, |k| Value::String(k.to_string()))
}

/// `{"ok", "error", "unix_ms", "ago_ms"}` of the last reload attempt; `null` before the first.
pub(crate) fn last_reload(last: Option<&LastReload>) -> Value {
    let Some(r) = last else {
        return Value::Null;
    };
    let unix_ms =
        r.at.duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    json!({
        "ok": r.error.is_none(),
        "error": r.error,
        "unix_ms": unix_ms,
        "ago_ms": ms(r.since.elapsed()),
    })
}

/// The listeners the process started with (a reload does not move them): the bound
/// addresses when known (a port 0 shows as the port picked), else as configured.
pub(crate) fn listeners(running: &Running) -> Value {
    let b = running.bound.get().copied().unwrap_or(BoundAddrs {
        listen: running.listen,
        admin: running.admin,
        tls_listen: running.tls_listen,
        redirect_listen: running.redirect_listen,
    });
    json!({
        "listen": b.listen.to_string(),
        "admin": b.admin.to_string(),
        "tls_listen": b.tls_listen.map(|a| a.to_string()),
        "redirect_listen": b.redirect_listen.map(|a| a.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use ringleader_balancer::{
        BackendSpec, Balancer, BalancerConfig, EjectionPolicy, HealthPolicy, ManualClock,
        RequestCtx,
    };
    use std::sync::Arc;
    use std::time::{Instant, SystemTime};

    fn health(rise: u32, fall: u32) -> HealthConfig {
        HealthConfig {
            rise,
            fall,
            ..HealthConfig::default()
        }
    }

    fn one_backend(clock: Arc<ManualClock>) -> (Balancer, Arc<Backend>) {
        let config = BalancerConfig {
            health: HealthPolicy { rise: 2, fall: 3 },
            ejection: EjectionPolicy {
                consecutive_failures: 1,
                base_time: Duration::from_secs(30),
                max_time: Duration::from_secs(300),
                max_percent: 100,
            },
            panic_mode: false,
            ..BalancerConfig::default()
        };
        let lb =
            Balancer::with_clock(vec![BackendSpec::new("10.0.0.1:80", 1)], config, clock).unwrap();
        let b = lb.backend("10.0.0.1:80").unwrap();
        (lb, b)
    }

    #[test]
    fn last_check_reports_result_age_and_duration() {
        let clock = Arc::new(ManualClock::new());
        let (_lb, b) = one_backend(clock.clone());
        assert_eq!(last_check(&b), Value::Null);
        b.record_last_check(true, "200 OK", Duration::from_micros(1500));
        clock.advance(Duration::from_millis(250));
        assert_eq!(
            last_check(&b),
            json!({ "ok": true, "result": "200 OK", "ago_ms": 250.0, "duration_ms": 1.5 })
        );
        b.record_last_check(false, "connection refused", Duration::from_millis(2));
        let v = last_check(&b);
        assert_eq!(
            (v["ok"].clone(), v["ago_ms"].clone()),
            (json!(false), json!(0.0))
        );
        assert_eq!(v["result"], "connection refused");
    }

    #[test]
    fn check_progress_counts_towards_fall_then_rise() {
        let clock = Arc::new(ManualClock::new());
        let (lb, b) = one_backend(clock);
        let h = health(2, 3);
        assert_eq!(check_progress(&b, Some(&h)), Value::Null);
        lb.report_check(b.id(), false);
        lb.report_check(b.id(), false);
        assert_eq!(
            check_progress(&b, Some(&h)),
            json!({ "towards": "down", "count": 2, "of": 3 })
        );
        assert_eq!(check_progress(&b, None), Value::Null, "no active checks");
        lb.report_check(b.id(), false);
        assert_eq!(b.health(), Health::Down);
        assert_eq!(
            check_progress(&b, Some(&h)),
            Value::Null,
            "down, no pass yet"
        );
        lb.report_check(b.id(), true);
        assert_eq!(
            check_progress(&b, Some(&h)),
            json!({ "towards": "up", "count": 1, "of": 2 })
        );
        lb.report_check(b.id(), true);
        assert_eq!(b.health(), Health::Up);
        assert_eq!(check_progress(&b, Some(&h)), Value::Null);
    }

    #[test]
    fn ejection_left_counts_down() {
        let clock = Arc::new(ManualClock::new());
        let (lb, b) = one_backend(clock.clone());
        assert_eq!(ejection_left_ms(&b), Value::Null);
        // One failure ejects (consecutive_failures = 1) for the base time, 30 s.
        lb.pick(&RequestCtx::new()).unwrap().failure();
        assert!(matches!(b.health(), Health::Ejected { .. }));
        assert_eq!(ejection_left_ms(&b), json!(30_000.0));
        clock.advance(Duration::from_secs(10));
        assert_eq!(ejection_left_ms(&b), json!(20_000.0));
        clock.advance(Duration::from_secs(20));
        assert_eq!(ejection_left_ms(&b), Value::Null, "over");
    }

    #[test]
    fn last_reload_reports_success_and_rejection() {
        assert_eq!(last_reload(None), Value::Null);
        let at = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        let ok = LastReload {
            at,
            since: Instant::now(),
            error: None,
        };
        let v = last_reload(Some(&ok));
        assert_eq!(
            (v["ok"].clone(), v["error"].clone()),
            (json!(true), Value::Null)
        );
        assert_eq!(v["unix_ms"], 1_700_000_000_123u64);
        assert!(v["ago_ms"].as_f64().unwrap() >= 0.0);
        let err = Config::from_toml_str("[server]\nlisten = 80\n", "bad.toml").unwrap_err();
        let bad = LastReload {
            at: SystemTime::now(),
            since: Instant::now(),
            error: Some(err.to_string()),
        };
        let v = last_reload(Some(&bad));
        assert_eq!(v["ok"], false);
        assert!(
            v["error"].as_str().unwrap().starts_with("bad.toml:2:10:"),
            "{v}"
        );
    }

    #[test]
    fn listeners_hash_key_and_budget_come_from_the_config() {
        let cfg = Config::from_toml_str(
            r#"
            [server]
            listen = "127.0.0.1:8080"
            admin = "127.0.0.1:9090"
            [[route]]
            upstream = "app"
            [upstream.app]
            strategy = "consistent_hash"
            hash_key = "header:X-User-Id"
            backends = [{ addr = "127.0.0.1:9101" }]
            [upstream.app.retry]
            budget_percent = 15
            [upstream.rr]
            backends = [{ addr = "127.0.0.1:9102" }]
            "#,
            "t.toml",
        )
        .unwrap();
        let running = Running {
            config: cfg.server.clone(),
            bound: std::sync::OnceLock::new(),
        };
        assert_eq!(
            listeners(&running),
            json!({ "listen": "127.0.0.1:8080", "admin": "127.0.0.1:9090",
                    "tls_listen": null, "redirect_listen": null })
        );
        running
            .bound
            .set(BoundAddrs {
                listen: "127.0.0.1:40001".parse().unwrap(),
                admin: "127.0.0.1:40002".parse().unwrap(),
                tls_listen: None,
                redirect_listen: Some("127.0.0.1:40003".parse().unwrap()),
            })
            .unwrap();
        assert_eq!(
            listeners(&running),
            json!({ "listen": "127.0.0.1:40001", "admin": "127.0.0.1:40002",
                    "tls_listen": null, "redirect_listen": "127.0.0.1:40003" })
        );
        let app = Upstream::build("app", &cfg.upstreams["app"], None).unwrap();
        let rr = Upstream::build("rr", &cfg.upstreams["rr"], None).unwrap();
        assert_eq!(hash_key(&app), json!("header:x-user-id"));
        assert_eq!(hash_key(&rr), Value::Null);
        assert_eq!(
            retry_budget(&app),
            json!({ "percent": 15, "reserve": 100, "tokens": 100.0 })
        );
    }
}
