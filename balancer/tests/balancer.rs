//! Behaviour of the balancer through its public API: guards, health, ejection, updates, failover.
use ringleader_balancer::{
    BackendSpec, Balancer, BalancerConfig, EjectionPolicy, Error, Health, HealthPolicy,
    ManualClock, RequestCtx, StrategyKind,
};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Duration;

const EXPECTED_PANIC: &str = "caller panics while holding a pick";

fn specs(n: usize) -> Vec<BackendSpec> {
    (0..n)
        .map(|i| BackendSpec::new(format!("10.0.0.{i}:80"), 1))
        .collect()
}

fn config(strategy: StrategyKind) -> BalancerConfig {
    BalancerConfig {
        strategy,
        seed: Some(1),
        ..BalancerConfig::default()
    }
}

fn with_clock(n: usize, config: BalancerConfig) -> (Balancer, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new());
    (
        Balancer::with_clock(specs(n), config, clock.clone()).unwrap(),
        clock,
    )
}

#[test]
fn in_flight_returns_to_zero_on_every_path_including_panics() {
    // Keep the expected panics out of the test output; report any other panic as usual.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if info.payload().downcast_ref::<&str>() != Some(&EXPECTED_PANIC) {
            default_hook(info);
        }
    }));
    for kind in StrategyKind::ALL {
        let lb = Arc::new(Balancer::new(specs(4), config(kind)).unwrap());
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let lb = lb.clone();
                std::thread::spawn(move || {
                    for i in 0..2_000u32 {
                        let key = i.to_le_bytes();
                        let ctx = RequestCtx::with_key(&key);
                        match (i + t) % 6 {
                            0 => lb.pick(&ctx).unwrap().success(Duration::from_micros(50)),
                            1 => lb.pick(&ctx).unwrap().failure(),
                            2 => drop(lb.pick(&ctx).unwrap()),
                            3 => {
                                let r = catch_unwind(AssertUnwindSafe(|| {
                                    let _pick = lb.pick(&ctx).unwrap();
                                    std::panic::panic_any(EXPECTED_PANIC);
                                }));
                                assert!(r.is_err());
                            }
                            4 => {
                                for p in lb.candidates(&ctx).take(3) {
                                    drop(p);
                                }
                            }
                            _ => {
                                let held: Vec<_> = (0..3).filter_map(|_| lb.pick(&ctx)).collect();
                                assert!(
                                    lb.backends().iter().map(|b| b.in_flight()).sum::<u64>() >= 3
                                );
                                drop(held);
                            }
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        for b in lb.backends() {
            assert_eq!(b.in_flight(), 0, "{kind}: {b:?}");
        }
        let total: u64 = lb.backends().iter().map(|b| b.requests()).sum();
        assert!(total >= 4 * 2_000, "{kind}: {total}");
    }
}

#[test]
fn statistics_survive_an_update_for_kept_ids() {
    let lb = Balancer::new(specs(3), config(StrategyKind::RoundRobin)).unwrap();
    let held = lb.pick(&RequestCtx::new()).unwrap(); // backend 0, still in flight
    for _ in 0..5 {
        lb.pick(&RequestCtx::new())
            .unwrap()
            .success(Duration::from_millis(7));
    }
    let before: Vec<_> = lb
        .backends()
        .iter()
        .map(|b| (b.id().to_owned(), b.requests()))
        .collect();
    // Drop backend 2, add a new one, change backend 1's weight.
    let mut next = specs(2);
    next[1].weight = 4;
    next.push(BackendSpec::new("10.0.0.9:80", 1));
    lb.update(next, config(StrategyKind::LeastConnections))
        .unwrap();
    let after = lb.backends();
    assert_eq!(after.len(), 3);
    assert_eq!(after[0].requests(), before[0].1);
    assert_eq!(after[0].in_flight(), 1);
    assert_eq!(after[1].requests(), before[1].1);
    assert_eq!(after[1].weight(), 4);
    assert!(after[1].ewma() > Duration::ZERO);
    assert_eq!(after[2].requests(), 0);
    assert_eq!(lb.strategy(), StrategyKind::LeastConnections);
    // The guard picked before the update still decrements the same backend.
    drop(held);
    assert_eq!(after[0].in_flight(), 0);
    // A changed address is a different server: fresh statistics.
    let mut moved = specs(2);
    moved[0].addr = "10.1.1.1:80".into();
    lb.update(moved, config(StrategyKind::RoundRobin)).unwrap();
    assert_eq!(lb.backends()[0].requests(), 0);
    assert_eq!(lb.backends()[1].requests(), before[1].1);
}

#[test]
fn bad_input_is_an_error_and_a_failed_update_changes_nothing() {
    assert_eq!(
        Balancer::new(vec![], BalancerConfig::default()).unwrap_err(),
        Error::NoBackends
    );
    let mut zero = specs(2);
    zero[1].weight = 0;
    assert!(matches!(
        Balancer::new(zero.clone(), BalancerConfig::default()),
        Err(Error::ZeroWeight { .. })
    ));
    let mut dup = specs(2);
    dup[1].id = dup[0].id.clone();
    assert!(matches!(
        Balancer::new(dup.clone(), BalancerConfig::default()),
        Err(Error::DuplicateId { .. })
    ));

    let lb = Balancer::new(specs(2), config(StrategyKind::RoundRobin)).unwrap();
    assert!(lb.update(dup, BalancerConfig::default()).is_err());
    assert!(lb.update(zero, BalancerConfig::default()).is_err());
    let bad = BalancerConfig {
        health: HealthPolicy { rise: 0, fall: 1 },
        ..BalancerConfig::default()
    };
    assert!(matches!(
        lb.update(specs(2), bad),
        Err(Error::InvalidConfig {
            field: "health.rise",
            ..
        })
    ));
    assert_eq!(lb.len(), 2);
    assert_eq!(lb.strategy(), StrategyKind::RoundRobin);
}

#[test]
fn active_checks_take_a_backend_down_and_up() {
    let (lb, _clock) = with_clock(2, config(StrategyKind::RoundRobin));
    let id = "10.0.0.0:80";
    for _ in 0..2 {
        lb.report_check(id, false);
    }
    assert_eq!(lb.backend(id).unwrap().health(), Health::Up);
    lb.report_check(id, false);
    assert_eq!(lb.backend(id).unwrap().health(), Health::Down);
    for _ in 0..10 {
        assert_eq!(
            lb.pick(&RequestCtx::new()).unwrap().backend().id(),
            "10.0.0.1:80"
        );
    }
    lb.report_check(id, true);
    assert_eq!(lb.backend(id).unwrap().health(), Health::Down);
    lb.report_check(id, true);
    assert_eq!(lb.backend(id).unwrap().health(), Health::Up);
}

#[test]
fn consecutive_failures_eject_with_doubling_back_off() {
    let mut c = config(StrategyKind::RoundRobin);
    c.ejection = EjectionPolicy {
        consecutive_failures: 3,
        base_time: Duration::from_secs(10),
        max_time: Duration::from_secs(25),
        max_percent: 50,
    };
    let (lb, clock) = with_clock(2, c);
    let b = lb.backends()[0].clone();
    let fail_b0 = |n: usize| {
        for _ in 0..n {
            // Candidates start where the cursor is; take the b0 pick whichever it is.
            let p = lb
                .candidates(&RequestCtx::new())
                .find(|p| p.index() == 0)
                .unwrap();
            p.failure();
        }
    };
    fail_b0(2);
    // A success resets the streak.
    lb.candidates(&RequestCtx::new())
        .find(|p| p.index() == 0)
        .unwrap()
        .success(Duration::from_millis(1));
    fail_b0(2);
    assert_eq!(b.health(), Health::Up);
    fail_b0(1);
    let t0 = clock.now_for_test();
    assert_eq!(
        b.health(),
        Health::Ejected {
            until: t0 + Duration::from_secs(10)
        }
    );
    assert!(!b.is_available());
    assert_eq!(b.ejections(), 1);
    for _ in 0..5 {
        assert_eq!(lb.pick(&RequestCtx::new()).unwrap().index(), 1);
    }
    clock.advance(Duration::from_secs(10));
    assert!(b.is_available());
    assert_eq!(b.health(), Health::Up);
    // Ejected again: 20 s, then capped at 25 s.
    fail_b0(3);
    assert_eq!(
        b.health(),
        Health::Ejected {
            until: clock.now_for_test() + Duration::from_secs(20)
        }
    );
    clock.advance(Duration::from_secs(20));
    fail_b0(3);
    assert_eq!(
        b.health(),
        Health::Ejected {
            until: clock.now_for_test() + Duration::from_secs(25)
        }
    );
    assert_eq!(b.ejections(), 3);
}

#[test]
fn outliers_respect_max_percent_but_a_refused_connection_ejects_at_once() {
    let mut c = config(StrategyKind::RoundRobin); // 50 % of 4 = 2
    c.ejection.consecutive_failures = 1;
    let (lb, _clock) = with_clock(4, c);
    let pick_of = |i: usize| {
        lb.candidates(&RequestCtx::new())
            .find(|p| p.index() == i)
            .unwrap()
    };
    for i in 0..3 {
        pick_of(i).failure();
    }
    let ejected = lb.backends().iter().filter(|b| !b.is_available()).count();
    assert_eq!(ejected, 2, "failures eject within max_percent");
    assert!(lb.backends()[2].is_available());
    // Refused connections are proof, not statistics: out of rotation whatever the cap.
    pick_of(2).connect_refused();
    pick_of(3).connect_refused();
    assert_eq!(lb.available(), 0);
    assert!(lb.backends().iter().all(|b| b.ejections() == 1));
    // max_percent = 0 turns ejection off, refused connections included.
    let mut off = config(StrategyKind::RoundRobin);
    off.ejection.max_percent = 0;
    let (lb, _clock) = with_clock(2, off);
    lb.pick(&RequestCtx::new()).unwrap().connect_refused();
    assert_eq!(lb.available(), 2);
}

#[test]
fn no_pick_when_all_down_unless_panic_mode() {
    let off = BalancerConfig {
        panic_mode: false,
        ..config(StrategyKind::LeastConnections)
    };
    let (lb, _clock) = with_clock(2, off);
    for id in ["10.0.0.0:80", "10.0.0.1:80"] {
        for _ in 0..3 {
            lb.report_check(id, false);
        }
    }
    assert!(!lb.in_panic());
    assert!(lb.pick(&RequestCtx::new()).is_none());
    assert_eq!(lb.candidates(&RequestCtx::new()).count(), 0);
    assert_eq!(lb.panic_picks(), 0);
    // Panic mode is the default.
    assert!(BalancerConfig::default().panic_mode);
    lb.update(specs(2), config(StrategyKind::LeastConnections))
        .unwrap();
    assert!(lb.in_panic());
    let p = lb.pick(&RequestCtx::new()).unwrap();
    assert!(p.is_panic());
    drop(p);
    let all: Vec<_> = lb
        .candidates(&RequestCtx::new())
        .map(|p| {
            assert!(p.is_panic());
            p.index()
        })
        .collect();
    assert_eq!(all.len(), 2);
    // One panic pick per request: the pick, then the candidates' first.
    assert_eq!(lb.panic_picks(), 2);
    // A panic pick that succeeds does not bring a backend that is down up: only
    // active checks do.
    lb.pick(&RequestCtx::new())
        .unwrap()
        .success(Duration::from_millis(1));
    assert_eq!(lb.available(), 0);
}

#[test]
fn candidates_are_distinct_and_start_with_the_pick() {
    for kind in StrategyKind::ALL {
        let (lb, _clock) = with_clock(5, config(kind));
        let ctx = RequestCtx::with_key(b"k");
        let order: Vec<usize> = lb.candidates(&ctx).map(|p| p.index()).collect();
        let mut sorted = order.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted, vec![0, 1, 2, 3, 4], "{kind}: {order:?}");
    }
    // Least connections: the first candidate is the least loaded, the next the runner-up.
    let (lb, _clock) = with_clock(3, config(StrategyKind::LeastConnections));
    let _hold: Vec<_> = (0..5)
        .map(|_| {
            lb.candidates(&RequestCtx::new())
                .find(|p| p.index() == 0)
                .unwrap()
        })
        .chain((0..2).map(|_| {
            lb.candidates(&RequestCtx::new())
                .find(|p| p.index() == 2)
                .unwrap()
        }))
        .collect();
    let order: Vec<usize> = lb
        .candidates(&RequestCtx::new())
        .map(|p| p.index())
        .collect();
    assert_eq!(order, vec![1, 2, 0]);
    // Consistent hash: the first candidate is the key's owner every time.
    let (lb, _clock) = with_clock(5, config(StrategyKind::ConsistentHash));
    let ctx = RequestCtx::with_key(b"user-42");
    let owner = lb.pick(&ctx).unwrap().index();
    for _ in 0..3 {
        assert_eq!(lb.candidates(&ctx).next().unwrap().index(), owner);
    }
}

/// `Clock::now` through the trait object the test holds.
trait NowForTest {
    fn now_for_test(&self) -> std::time::Instant;
}

impl NowForTest for ManualClock {
    fn now_for_test(&self) -> std::time::Instant {
        ringleader_balancer::Clock::now(self)
    }
}

#[test]
fn a_thread_that_cached_a_snapshot_sees_updates_and_many_balancers_stay_apart() {
    // Each picking thread caches snapshots; an update on another thread must still be
    // seen by its next pick, and balancers sharing the thread's cache must not mix.
    let lb = Balancer::new(specs(2), config(StrategyKind::RoundRobin)).unwrap();
    let others: Vec<Balancer> = (0..12)
        .map(|i| {
            let spec = BackendSpec::new(format!("other-{i}:80"), 1);
            Balancer::new(vec![spec], config(StrategyKind::RoundRobin)).unwrap()
        })
        .collect();
    let (picked_tx, picked_rx) = std::sync::mpsc::channel::<()>();
    let (updated_tx, updated_rx) = std::sync::mpsc::channel::<()>();
    let (lb_ref, others_ref) = (&lb, &others);
    std::thread::scope(|s| {
        s.spawn(move || {
            let (lb, others) = (lb_ref, others_ref);
            let ids = |lb: &Balancer| {
                (0..4)
                    .map(|_| {
                        lb.pick(&RequestCtx::new())
                            .unwrap()
                            .backend()
                            .id()
                            .to_owned()
                    })
                    .collect::<Vec<_>>()
            };
            assert!(ids(lb).iter().all(|id| id.starts_with("10.0.0.")));
            for (i, o) in others.iter().enumerate() {
                assert_eq!(ids(o), vec![format!("other-{i}:80"); 4]);
            }
            assert!(ids(lb).iter().all(|id| id.starts_with("10.0.0.")));
            picked_tx.send(()).unwrap();
            updated_rx.recv().unwrap();
            assert_eq!(ids(lb), vec!["new:80"; 4]);
            assert_eq!(ids(&others[11]), vec!["other-11:80"; 4]);
        });
        picked_rx.recv().unwrap();
        lb.update(
            vec![BackendSpec::new("new:80", 1)],
            config(StrategyKind::RoundRobin),
        )
        .unwrap();
        updated_tx.send(()).unwrap();
    });
    assert!(lb.backends().iter().all(|b| b.in_flight() == 0));
}
