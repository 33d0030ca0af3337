//! Example: pick backends for requests, record outcomes, and watch least-response-time
//! steer away from a backend that turns slow — then come back to it once it recovers.
//!
//! Run: `cargo run --release --example balancer`
use ringleader::balancer::{
    BackendSpec, Balancer, BalancerConfig, ManualClock, Pick, RequestCtx, StrategyKind,
};
use std::sync::Arc;
use std::time::Duration;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let specs = vec![
        BackendSpec::new("10.0.0.1:8080", 1),
        BackendSpec::new("10.0.0.2:8080", 1),
        BackendSpec::new("10.0.0.3:8080", 1),
    ];
    let config = BalancerConfig {
        strategy: StrategyKind::LeastResponseTime,
        ..BalancerConfig::default()
    };
    // Virtual time so the example runs instantly and prints the same thing every time.
    let clock = Arc::new(ManualClock::new());
    let lb = Balancer::with_clock(specs, config, clock.clone())?;

    // One request every 2 ms; each backend answers in 10 ms, except 10.0.0.3, which takes
    // 150 ms during the second phase.
    let phases = [
        ("all fast", false),
        ("10.0.0.3 slow", true),
        ("recovered", false),
    ];
    let mut outstanding: Vec<(Duration, Duration, Pick)> = Vec::new();
    let mut now = Duration::ZERO;
    for (name, slow) in phases {
        let mut counts = [0u32; 3];
        for _ in 0..15_000 {
            now += Duration::from_millis(2);
            clock.set_elapsed(now);
            // Finish the requests whose responses have arrived, recording their latency.
            let (done, pending): (Vec<_>, Vec<_>) =
                outstanding.drain(..).partition(|(due, _, _)| *due <= now);
            outstanding = pending;
            for (_, latency, pick) in done {
                pick.success(latency);
            }
            let pick = lb.pick(&RequestCtx::new()).ok_or("no backend available")?;
            counts[pick.index()] += 1;
            let latency = Duration::from_millis(if slow && pick.index() == 2 { 150 } else { 10 });
            outstanding.push((now + latency, latency, pick));
        }
        println!("phase {name:<14} (30 s): requests per backend {counts:?}");
        for b in lb.backends() {
            println!(
                "    {}  ewma {:>6.1} ms  in flight {:>2}  requests {:>6}  {}",
                b.addr(),
                b.ewma().as_secs_f64() * 1e3,
                b.in_flight(),
                b.requests(),
                b.health()
            );
        }
    }
    Ok(())
}
