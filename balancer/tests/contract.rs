//! The API contract the proxy codes against (CONTRACTS.md), compiled and run as written.
use ringleader_balancer::{
    Backend, BackendSpec, Balancer, BalancerConfig, Clock, EjectionPolicy, Error, Health,
    HealthPolicy, ManualClock, Pick, RequestCtx, StrategyKind, SystemClock,
};
use std::{sync::Arc, time::Duration};

#[test]
fn contract_compiles_and_behaves() -> Result<(), Error> {
    let specs = vec![
        BackendSpec {
            id: "127.0.0.1:9101".into(),
            addr: "127.0.0.1:9101".into(),
            weight: 5,
        },
        BackendSpec {
            id: "127.0.0.1:9102".into(),
            addr: "127.0.0.1:9102".into(),
            weight: 1,
        },
    ];
    let config = BalancerConfig {
        strategy: StrategyKind::LeastResponseTime,
        health: HealthPolicy { rise: 2, fall: 3 },
        ejection: EjectionPolicy {
            consecutive_failures: 5,
            base_time: Duration::from_secs(30),
            max_time: Duration::from_secs(300),
            max_percent: 50,
        },
        panic_mode: false,
        ..BalancerConfig::default()
    };
    let lb = Balancer::new(specs.clone(), config.clone())?;
    let _lb2 = Balancer::with_clock(specs.clone(), config.clone(), Arc::new(SystemClock))?;
    let clock = Arc::new(ManualClock::new());
    let _lb3 = Balancer::with_clock(specs.clone(), config.clone(), clock.clone())?;
    clock.advance(Duration::from_secs(1));
    let _now = clock.now();
    let kind: StrategyKind = "least_response_time".parse()?;
    assert_eq!(kind, StrategyKind::LeastResponseTime);

    let _ctx = RequestCtx::new();
    let ctx = RequestCtx::with_key(b"user-42");
    let pick: Option<Pick> = lb.pick(&ctx);
    drop(pick);
    let mut seen = Vec::new();
    for pick in lb.candidates(&ctx).take(3) {
        seen.push(pick.backend().id().to_owned());
    }
    assert_eq!(seen.len(), 2);
    assert_ne!(seen[0], seen[1]);
    let p = lb.pick(&ctx).unwrap();
    let b: &Arc<Backend> = p.backend();
    let b = b.clone();
    p.success(Duration::from_millis(3));
    assert!(lb.report_check("127.0.0.1:9101", true));
    assert!(!lb.report_check("nope", true));
    lb.update(specs[..1].to_vec(), config)?;
    let all: Vec<Arc<Backend>> = lb.backends();
    assert_eq!(all.len(), 1);
    let _: (&str, &str, u32) = (b.id(), b.addr(), b.weight());
    let _: u64 = b.in_flight();
    let _: Duration = b.ewma();
    let _: (u64, u64, u64) = (b.requests(), b.failures(), b.ejections());
    let h: Health = b.health();
    assert_eq!(h.to_string(), "up");
    assert!(b.is_available());
    Ok(())
}
