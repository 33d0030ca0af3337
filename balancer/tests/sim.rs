//! The simulator's headline results, on shortened scenarios so the debug test suite stays fast.
use ringleader_balancer::sim::{simulate, Scenario};
use ringleader_balancer::StrategyKind::{self, *};
use std::time::Duration;

#[test]
fn slow_backend_least_response_time_cuts_round_robin_p99_by_three() {
    let scenario = Scenario::slow_backend().with_duration(Duration::from_secs(12));
    let report = simulate(&scenario, &[RoundRobin, LeastResponseTime, PowerOfTwo]).unwrap();
    let rr = report.get(RoundRobin).unwrap();
    let lrt = report.get(LeastResponseTime).unwrap();
    assert!(lrt.p99_ms * 3.0 <= rr.p99_ms, "{}", report.to_table());
    // It gets there by sending the slow backend less than its round-robin share.
    assert!(lrt.shares[0] < 7.0, "{}", report.to_table());
    assert!((rr.shares[0] - 10.0).abs() < 0.5);
    // Power of two choices on peak EWMA avoids it as well.
    assert!(report.get(PowerOfTwo).unwrap().p99_ms * 3.0 <= rr.p99_ms);
}

#[test]
fn heterogeneous_weights_follow_capacity() {
    let scenario = Scenario::heterogeneous().with_duration(Duration::from_secs(4));
    let kinds: [StrategyKind; 3] = [RoundRobin, WeightedRoundRobin, LeastConnections];
    let report = simulate(&scenario, &kinds).unwrap();
    let wrr = report.get(WeightedRoundRobin).unwrap();
    // Shares follow weights 8,8,4,4,4,2,2,2,1,1 (of 36).
    for (share, b) in wrr.shares.iter().zip(&scenario.backends) {
        let expect = 100.0 * f64::from(b.weight) / 36.0;
        assert!((share - expect).abs() < 0.2, "{}", report.to_table());
    }
    // Round robin overloads the one-worker backends; weighting fixes that.
    let rr = report.get(RoundRobin).unwrap();
    assert!(wrr.p99_ms * 3.0 < rr.p99_ms, "{}", report.to_table());
    assert!(report.get(LeastConnections).unwrap().p99_ms * 3.0 < rr.p99_ms);
}
