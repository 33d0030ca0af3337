//! Property test: the load-table scans answer what the per-backend scans answer, for any weights, in-flight counts, EWMAs and health.
//!
//! [`Balancer::pick`] scans the balancer's load table (`src/table.rs`) when its backends
//! sit in consecutive slots and none is flagged, and the per-backend scan otherwise.
//! [`LeastConnections::new`] and [`LeastResponseTime::new`] build the strategies with
//! no table: always the per-backend scan. The state is driven through the public API
//! only (isolating a backend by taking the others down, then picking it: samples with
//! `success`, in-flight with held picks, ejections with `connect_refused`, down with
//! failing checks, some ejections left to run out so their flags are stale), so every
//! table word and flag is the one the real paths wrote.
//!
//! Both scans start at a cursor that counts picks, so with the same start they must
//! give the same answer, ties included: least connections exactly (integer words on
//! both sides); least response time exactly unless two costs are equal up to `f64`
//! rounding (the table adds a bias and sums in another order), and then the two
//! answers must cost the same.
use proptest::prelude::*;
use ringleader_balancer::{
    BackendSpec, Balancer, BalancerConfig, EjectionPolicy, Filter, HealthPolicy, LeastConnections,
    LeastResponseTime, ManualClock, Pick, RequestCtx, StrategyKind,
};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone)]
struct Backend {
    weight: u32,
    /// Latencies (ms) of the successes it served, oldest first; none: never measured.
    samples: Vec<u16>,
    in_flight: usize,
    down: bool,
    ejected: bool,
}

#[derive(Debug, Clone)]
struct Case {
    kind: StrategyKind,
    backends: Vec<Backend>,
    /// Let the ejections run out (the backends are available again, still flagged).
    expire: bool,
    /// This backend stays up and not ejected (no panic mode, which has its own scan).
    clean: usize,
}

fn backend() -> impl Strategy<Value = Backend> {
    (
        prop_oneof![3 => 1u32..=4, 1 => 1u32..=20],
        prop::collection::vec(1u16..500, 0..3),
        0usize..4,
        prop::bool::weighted(0.15),
        prop::bool::weighted(0.2),
    )
        .prop_map(|(weight, samples, in_flight, down, ejected)| Backend {
            weight,
            samples,
            in_flight,
            down,
            ejected,
        })
}

fn case() -> impl Strategy<Value = Case> {
    (
        prop_oneof![
            Just(StrategyKind::LeastConnections),
            Just(StrategyKind::LeastResponseTime)
        ],
        prop::collection::vec(backend(), 1..10),
        any::<bool>(),
        any::<prop::sample::Index>(),
    )
        .prop_map(|(kind, mut backends, expire, clean)| {
            let clean = clean.index(backends.len());
            backends[clean].down = false;
            backends[clean].ejected = false;
            Case {
                kind,
                backends,
                expire,
                clean,
            }
        })
}

/// Drives a balancer into the state a [`Case`] describes, counting its picks.
struct Driver {
    lb: Balancer,
    clock: Arc<ManualClock>,
    ids: Vec<String>,
    picks: usize,
    held: Vec<Pick>,
    /// Each backend's EWMA (ns) before the clock ran out the ejections: the decay since
    /// is the same factor for every backend, so it does not change their order, but it
    /// can round the public `Duration` to nothing.
    ewma_ns: Vec<f64>,
}

impl Driver {
    /// Pick backend `i`, the only available one: the others that are `up` go down for
    /// the pick and come back after it.
    fn pick_only(&mut self, i: usize, up: &[bool]) -> Pick {
        let others: Vec<usize> = (0..self.ids.len()).filter(|&k| k != i && up[k]).collect();
        for &k in &others {
            self.lb.report_check(&self.ids[k], false);
        }
        let p = self.lb.pick(&RequestCtx::new()).expect("one available");
        self.picks += 1;
        assert_eq!(p.index(), i);
        for &k in &others {
            self.lb.report_check(&self.ids[k], true);
        }
        p
    }
}

fn drive(case: &Case) -> Driver {
    let n = case.backends.len();
    let ids: Vec<String> = (0..n).map(|i| format!("b{i}")).collect();
    let specs = case
        .backends
        .iter()
        .zip(&ids)
        .map(|(b, id)| BackendSpec::new(id.clone(), b.weight))
        .collect();
    let config = BalancerConfig {
        strategy: case.kind,
        health: HealthPolicy { rise: 1, fall: 1 },
        ejection: EjectionPolicy {
            max_percent: 100,
            ..EjectionPolicy::default()
        },
        seed: Some(7),
        ..BalancerConfig::default()
    };
    let clock = Arc::new(ManualClock::new());
    let lb = Balancer::with_clock(specs, config, clock.clone()).unwrap();
    let mut d = Driver {
        lb,
        clock,
        ids,
        picks: 0,
        held: Vec::new(),
        ewma_ns: Vec::new(),
    };
    let mut up = vec![true; n];
    let mut elapsed = Duration::ZERO;
    for (i, b) in case.backends.iter().enumerate() {
        for &ms in &b.samples {
            d.pick_only(i, &up)
                .success(Duration::from_millis(u64::from(ms)));
            d.clock.advance(Duration::from_millis(u64::from(ms)));
            elapsed += Duration::from_millis(u64::from(ms));
        }
        for _ in 0..b.in_flight {
            let p = d.pick_only(i, &up);
            d.held.push(p);
        }
    }
    for (i, b) in case.backends.iter().enumerate() {
        if b.ejected {
            d.pick_only(i, &up).connect_refused();
            up[i] = false;
            assert!(!d.lb.backends()[i].is_available());
        }
    }
    for (i, b) in case.backends.iter().enumerate() {
        if b.down {
            d.lb.report_check(&d.ids[i], false);
        }
    }
    // A backend never measured reports no EWMA; its estimate is the default RTT decayed
    // since it was created at 0 (unknown if a refused connection penalised it).
    let config = d.lb.config();
    let decayed = (-(elapsed.as_nanos() as f64) / config.ewma_decay.as_nanos() as f64).exp();
    let default = config.default_rtt.as_nanos() as f64 * decayed;
    d.ewma_ns = (d.lb.backends().iter().zip(&case.backends))
        .map(|(b, c)| match (c.samples.is_empty(), c.ejected) {
            (false, _) => b.ewma().as_nanos() as f64,
            (true, false) => default,
            (true, true) => f64::NAN,
        })
        .collect();
    if case.expire {
        d.clock.advance(EjectionPolicy::default().max_time);
    }
    d
}

/// Least response time's cost from the public statistics (log space), as `latency_cost`.
fn lrt_cost(b: &ringleader_balancer::Backend, ewma_ns: f64, sampled: bool) -> f64 {
    let f = b.in_flight();
    if f != 0 && !sampled {
        return f64::INFINITY;
    }
    ewma_ns.ln() + ((f + 1) as f64).ln() - f64::from(b.weight()).ln()
}

fn check(case: &Case) -> Result<(), TestCaseError> {
    let mut d = drive(case);
    let n = case.backends.len();
    let bs = d.lb.backends();
    let fallback: Box<dyn ringleader_balancer::Strategy> = match case.kind {
        StrategyKind::LeastConnections => Box::new(LeastConnections::new(n)),
        _ => Box::new(LeastResponseTime::new(n)),
    };
    // Same start: the balancer's cursor has advanced once per pick.
    for _ in 0..d.picks % n {
        fallback.pick(&bs, &RequestCtx::new(), Filter::Any);
    }
    prop_assert!(bs[case.clean].is_available());
    // Two rounds: the first clears stale flags (ejections that ran out), so the second
    // scans the table unless a backend is still unavailable.
    for round in 0..2 * n {
        let want = fallback.pick(&bs, &RequestCtx::new(), Filter::Available);
        let pick = d.lb.pick(&RequestCtx::new()).expect("one available");
        d.picks += 1;
        let got = pick.index();
        drop(pick);
        prop_assert!(
            bs[got].is_available(),
            "round {}: {} unavailable",
            round,
            got
        );
        let Some(want) = want else {
            return Err(TestCaseError::fail("per-backend scan found none"));
        };
        if case.kind == StrategyKind::LeastConnections || got == want {
            prop_assert_eq!(got, want, "round {}", round);
        } else {
            let sampled = |i: usize| !case.backends[i].samples.is_empty();
            let cost = |i: usize| lrt_cost(&bs[i], d.ewma_ns[i], sampled(i));
            let (cg, cw) = (cost(got), cost(want));
            prop_assert!(
                (cg - cw).abs() < 1e-5,
                "round {}: table {} ({}) vs per-backend {} ({})",
                round,
                got,
                cg,
                want,
                cw
            );
        }
    }
    d.held.clear();
    prop_assert!(bs.iter().all(|b| b.in_flight() == 0));
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn table_scan_agrees_with_per_backend_scan(case in case()) {
        check(&case)?;
    }
}
