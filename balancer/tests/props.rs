//! Property tests: in-flight accounting, availability and weighted shares hold for any input.
use proptest::prelude::*;
use ringleader_balancer::{
    BackendSpec, Balancer, BalancerConfig, HealthPolicy, ManualClock, Pick, RequestCtx,
    StrategyKind,
};
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Clone)]
enum Op {
    Pick(u16),
    Candidates(u16, usize),
    Success(usize, u16),
    Failure(usize),
    Refused(usize),
    Drop(usize),
    Check(usize, bool),
    Advance(u16),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => any::<u16>().prop_map(Op::Pick),
        1 => (any::<u16>(), 1usize..4).prop_map(|(k, n)| Op::Candidates(k, n)),
        2 => (any::<usize>(), 1u16..500).prop_map(|(i, ms)| Op::Success(i, ms)),
        1 => any::<usize>().prop_map(Op::Failure),
        1 => any::<usize>().prop_map(Op::Refused),
        1 => any::<usize>().prop_map(Op::Drop),
        1 => (any::<usize>(), any::<bool>()).prop_map(|(i, ok)| Op::Check(i, ok)),
        1 => (0u16..60_000).prop_map(Op::Advance),
    ]
}

fn kind() -> impl Strategy<Value = StrategyKind> {
    prop::sample::select(StrategyKind::ALL.to_vec())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn in_flight_matches_held_guards(
        weights in prop::collection::vec(1u32..6, 1..7),
        kind in kind(),
        panic_mode in any::<bool>(),
        ops in prop::collection::vec(op(), 1..120),
    ) {
        let specs: Vec<_> = weights.iter().enumerate()
            .map(|(i, &w)| BackendSpec::new(format!("b{i}"), w)).collect();
        let config = BalancerConfig {
            strategy: kind,
            panic_mode,
            health: HealthPolicy { rise: 1, fall: 1 },
            seed: Some(5),
            ..BalancerConfig::default()
        };
        let clock = Arc::new(ManualClock::new());
        let lb = Balancer::with_clock(specs, config, clock.clone()).unwrap();
        let mut held: Vec<Pick> = Vec::new();
        let take = |held: &mut Vec<Pick>, i: usize| {
            if held.is_empty() { None } else { let n = held.len(); Some(held.swap_remove(i % n)) }
        };
        let ejected_now = |lb: &Balancer| lb.backends().iter()
            .filter(|b| matches!(b.health(), ringleader_balancer::Health::Ejected { .. }))
            .count();
        let cap = BalancerConfig::default().ejection.max_ejected(weights.len());
        for op in ops {
            let before = ejected_now(&lb);
            let outlier = matches!(op, Op::Failure(_));
            match op {
                Op::Pick(k) => {
                    let key = k.to_le_bytes();
                    let any_available = lb.backends().iter().any(|b| b.is_available());
                    match lb.pick(&RequestCtx::with_key(&key)) {
                        Some(p) => {
                            prop_assert!(p.backend().is_available() || (panic_mode && !any_available));
                            prop_assert_eq!(p.is_panic(), !any_available);
                            held.push(p);
                        }
                        None => prop_assert!(!any_available && !panic_mode),
                    }
                }
                Op::Candidates(k, n) => {
                    let key = k.to_le_bytes();
                    let got: Vec<Pick> = lb.candidates(&RequestCtx::with_key(&key)).take(n).collect();
                    let mut ids: Vec<usize> = got.iter().map(|p| p.index()).collect();
                    ids.sort_unstable();
                    ids.dedup();
                    prop_assert_eq!(ids.len(), got.len());
                    held.extend(got);
                }
                Op::Success(i, ms) => if let Some(p) = take(&mut held, i) {
                    p.success(Duration::from_millis(u64::from(ms)));
                },
                Op::Failure(i) => if let Some(p) = take(&mut held, i) { p.failure() },
                Op::Refused(i) => if let Some(p) = take(&mut held, i) {
                    let b = p.backend().clone();
                    p.connect_refused();
                    // Out of rotation at once, whatever the ejection cap says.
                    prop_assert!(!b.is_available());
                },
                Op::Drop(i) => drop(take(&mut held, i)),
                Op::Check(i, ok) => {
                    let id = format!("b{}", i % weights.len());
                    prop_assert!(lb.report_check(&id, ok));
                }
                Op::Advance(ms) => clock.advance(Duration::from_millis(u64::from(ms))),
            }
            for (i, b) in lb.backends().iter().enumerate() {
                let expect = held.iter().filter(|p| p.index() == i).count() as u64;
                prop_assert_eq!(b.in_flight(), expect);
            }
            // Consecutive failures never eject beyond the policy's allowance (refused
            // connections may).
            if outlier {
                prop_assert!(ejected_now(&lb) <= before.max(cap));
            }
        }
        drop(held);
        prop_assert!(lb.backends().iter().all(|b| b.in_flight() == 0));
    }

    #[test]
    fn weighted_round_robin_shares_are_exact_per_cycle(
        weights in prop::collection::vec(1u32..12, 1..9),
        cycles in 1usize..4,
    ) {
        let specs: Vec<_> = weights.iter().enumerate()
            .map(|(i, &w)| BackendSpec::new(format!("b{i}"), w)).collect();
        let config = BalancerConfig { strategy: StrategyKind::WeightedRoundRobin, ..BalancerConfig::default() };
        let lb = Balancer::new(specs, config).unwrap();
        let total: u32 = weights.iter().sum();
        let mut counts = vec![0u32; weights.len()];
        for _ in 0..(total as usize * cycles) {
            counts[lb.pick(&RequestCtx::new()).unwrap().index()] += 1;
        }
        let expect: Vec<u32> = weights.iter().map(|w| w * cycles as u32).collect();
        prop_assert_eq!(counts, expect);
    }
}
