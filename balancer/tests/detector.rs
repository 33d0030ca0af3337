//! Property tests of the failure detectors on generated traces: φ grows with silence, stays bounded on a regular history, crashes are caught, false suspicions are cleared.
use proptest::prelude::*;
use ringleader_balancer::detector::{
    phi, Accrual, AccrualConfig, Action, Detector, RiseFall, RiseFallConfig,
};
use std::time::{Duration, Instant};

const MS: Duration = Duration::from_millis(1);

/// Drive `d` against a backend: `answer(t)` is `Some(latency)` when a check sent at
/// `t` is answered, `None` when it never is. Returns the mark-down instants.
fn drive(
    d: &mut dyn Detector,
    from: Instant,
    until: Instant,
    answer: &dyn Fn(Instant) -> Option<Duration>,
) -> Vec<Instant> {
    let mut now = from;
    let mut downs = Vec::new();
    while now < until {
        match d.next_action(now) {
            Action::Wait(t) => {
                assert!(t > now, "a wait must move time forward");
                now = t;
            }
            Action::Check { timeout, .. } => match answer(now) {
                Some(l) if l <= timeout => {
                    now += l;
                    d.on_check(true, l, now);
                }
                _ => {
                    now += timeout;
                    d.on_check(false, timeout, now);
                }
            },
            Action::MarkDown => downs.push(now),
            Action::MarkUp => {}
        }
    }
    downs
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// φ never decreases while the silence grows, whatever the statistics.
    #[test]
    fn phi_is_monotone_in_silence(
        mean_ms in 1u64..10_000,
        sd_ms in 1u64..5_000,
        mut silences in prop::collection::vec(0u64..60_000, 2..50),
    ) {
        silences.sort_unstable();
        let (mean, sd) = (Duration::from_millis(mean_ms), Duration::from_millis(sd_ms));
        let phis: Vec<f64> = silences.iter().map(|s| phi(Duration::from_millis(*s), mean, sd)).collect();
        for w in phis.windows(2) {
            prop_assert!(w[0] <= w[1], "{phis:?}");
        }
        prop_assert!(phis.iter().all(|p| p.is_finite() && *p >= 0.0));
    }

    /// A detector's φ grows between heartbeats, on any history of answered checks.
    #[test]
    fn detector_phi_grows_with_silence(
        latencies in prop::collection::vec(0u64..300, 5..200),
        probes in prop::collection::vec(0u64..20_000, 2..30),
    ) {
        let t0 = Instant::now();
        let mut d = Accrual::new(AccrualConfig::default(), t0, 3);
        let mut i = 0usize;
        let mut now = t0;
        while i < latencies.len() {
            match d.next_action(now) {
                Action::Wait(t) => now = t,
                Action::Check { .. } => {
                    let l = Duration::from_millis(latencies[i]);
                    i += 1;
                    now += l;
                    d.on_check(true, l, now);
                }
                a => prop_assert!(false, "{a:?} on a healthy backend"),
            }
        }
        let mut probes = probes;
        probes.sort_unstable();
        let phis: Vec<f64> = probes.iter().map(|p| d.phi(now + Duration::from_millis(*p))).collect();
        for w in phis.windows(2) {
            prop_assert!(w[0] <= w[1], "{phis:?}");
        }
    }

    /// On a regular history (checks every interval plus any jitter up to 10%), a
    /// healthy backend is never suspected, and φ at the next expected arrival stays
    /// low thanks to the minimum standard deviation.
    #[test]
    fn regular_history_keeps_phi_bounded(
        seed in any::<u64>(),
        latency_ms in 0u64..50,
        jitter_ms in 0u64..200,
    ) {
        let t0 = Instant::now();
        let config = AccrualConfig { jitter: Duration::from_millis(jitter_ms), ..AccrualConfig::default() };
        let mut d = Accrual::new(config, t0, seed);
        let lat = Duration::from_millis(latency_ms);
        let end = t0 + Duration::from_secs(1800);
        let (mut now, mut last_pass) = (t0, t0);
        while now < end {
            match d.next_action(now) {
                Action::Wait(t) => now = t,
                Action::Check { .. } => {
                    now += lat;
                    d.on_check(true, lat, now);
                    last_pass = now;
                }
                a => prop_assert!(false, "{a:?} on a healthy backend"),
            }
        }
        prop_assert_eq!(d.stats().suspicions, 0);
        prop_assert!(d.is_up());
        // The next heartbeat is due within interval + jitter + latency of the last;
        // the floor of 100 ms on the deviation keeps the suspicion point more than
        // half a second (8 for phi = 8 is 5.6 deviations) after the mean interval,
        // however regular the history, and phi at the mean low.
        let mean = config.interval + config.jitter / 2 + lat;
        let at = d.suspect_at().unwrap();
        prop_assert!(at > last_pass + mean + Duration::from_millis(450), "{:?}", at - last_pass);
        prop_assert!(d.phi(last_pass + mean) < 1.0, "{}", d.phi(last_pass + mean));
    }

    /// A crash at any time, silent or refusing, is marked down, by both detectors,
    /// and accrual catches it sooner than rise/fall with its defaults.
    #[test]
    fn a_crash_is_detected(
        seed in any::<u64>(),
        crash_s in 30u64..600,
        crash_ms in 0u64..1000,
        refused in any::<bool>(),
    ) {
        let t0 = Instant::now();
        let crash = t0 + Duration::from_secs(crash_s) + Duration::from_millis(crash_ms);
        let answer = move |t: Instant| {
            if t < crash { Some(2 * MS) } else if refused { Some(Duration::MAX) } else { None }
        };
        // A refused connection fails at once: model it as a check that "answers" with
        // a failure immediately.
        let fail_fast = move |d: &mut dyn Detector| {
            let mut now = t0;
            let until = crash + Duration::from_secs(60);
            while now < until {
                match d.next_action(now) {
                    Action::Wait(t) => now = t,
                    Action::Check { timeout, .. } => match answer(now) {
                        Some(l) if l <= timeout => { now += l; d.on_check(true, l, now); }
                        Some(_) => { now += MS; d.on_check(false, MS, now); }
                        None => { now += timeout; d.on_check(false, timeout, now); }
                    },
                    Action::MarkDown => return Some(now),
                    Action::MarkUp => {}
                }
            }
            None
        };
        let mut acc = Accrual::new(AccrualConfig::default(), t0, seed);
        let mut rf = RiseFall::new(RiseFallConfig::default(), t0, seed);
        let a = fail_fast(&mut acc).expect("accrual marks the crash down");
        let r = fail_fast(&mut rf).expect("rise/fall marks the crash down");
        prop_assert!(a > crash && r > crash);
        prop_assert!(a - crash < Duration::from_secs(6), "{:?}", a - crash);
        prop_assert!(r - crash >= Duration::from_secs(4), "{:?}", r - crash);
    }

    /// A pause shorter than the regular timeout plus the confirmation probes is
    /// suspected at most, never marked down: the probes that pass clear it.
    #[test]
    fn confirmation_probes_cancel_false_suspicions(
        seed in any::<u64>(),
        pause_start_ms in 60_000u64..120_000,
        pause_ms in 200u64..2000,
    ) {
        let t0 = Instant::now();
        let start = t0 + Duration::from_millis(pause_start_ms);
        let end = start + Duration::from_millis(pause_ms);
        // A GC-like pause: a check sent during it is answered when it ends.
        let answer = move |t: Instant| {
            Some(if t >= start && t < end { end - t + MS } else { MS })
        };
        let mut d = Accrual::new(AccrualConfig::default(), t0, seed);
        let downs = drive(&mut d, t0, t0 + Duration::from_secs(180), &answer);
        prop_assert!(downs.is_empty(), "{:?}", d.stats());
        prop_assert!(d.is_up());
    }
}

/// Passive failures make the detector probe at once; when the probes fail it is
/// down long before φ alone would have suspected it.
#[test]
fn passive_failures_raise_suspicion() {
    let t0 = Instant::now();
    let mut d = Accrual::new(AccrualConfig::default(), t0, 9);
    let healthy = t0 + Duration::from_secs(120);
    drive(&mut d, t0, healthy, &|_| Some(MS));
    // A little after the last pass (right after one, a failed request is outweighed).
    let healthy = healthy + Duration::from_millis(300);
    let phi_before = d.phi(healthy);
    let suspect_at = d.suspect_at().unwrap();
    // Live traffic now fails: the backend hangs.
    d.on_passive_failure(healthy);
    assert_eq!(d.stats().suspicions, 1);
    assert!(matches!(
        d.next_action(healthy),
        Action::Check { confirm: true, .. }
    ));
    let downs = drive(&mut d, healthy, healthy + Duration::from_secs(30), &|_| {
        None
    });
    assert!(phi_before < 8.0);
    assert!(downs[0] < suspect_at, "{:?} vs {:?}", downs[0], suspect_at);
    // Rise/fall ignores passive signals (the balancer's passive ejection handles them).
    let mut rf = RiseFall::new(RiseFallConfig::default(), t0, 9);
    rf.on_passive_failure(t0);
    assert_eq!(rf.stats().suspicions, 0);
}
