//! Property tests: compose/decode round-trip and order for random layouts; generated IDs
//! decode to the clock's tick and the generator's worker.
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use proptest::prelude::*;
use ringleader_idgen::{Generator, Id, Layout, ManualClock, Parts};

/// Random valid layouts (invalid combinations are filtered out by `Layout::new`).
fn layouts() -> impl Strategy<Value = Layout> {
    (
        1u8..=63,
        0u8..=32,
        0u8..=32,
        1u64..=10_000_000_000,
        0u64..=4_000_000_000_000,
    )
        .prop_filter_map("valid layout", |(ts, w, s, tick_ns, epoch_ms)| {
            let epoch = UNIX_EPOCH + Duration::from_millis(epoch_ms);
            Layout::new(ts, w, s, Duration::from_nanos(tick_ns), epoch).ok()
        })
}

fn parts_in(layout: Layout) -> impl Strategy<Value = Parts> {
    (
        0..=layout.max_timestamp(),
        0..=layout.max_worker(),
        0..=layout.max_sequence(),
    )
        .prop_map(|(timestamp, worker, sequence)| Parts {
            timestamp,
            worker,
            sequence,
        })
}

fn layout_and_two_parts() -> impl Strategy<Value = (Layout, Parts, Parts)> {
    layouts().prop_flat_map(|l| (Just(l), parts_in(l), parts_in(l)))
}

proptest! {
    #[test]
    fn compose_decode_round_trip((layout, a, b) in layout_and_two_parts()) {
        let id = layout.compose(a.timestamp, a.worker, a.sequence).unwrap();
        prop_assert_eq!(layout.decode(id).unwrap(), a);
        // IDs fit the layout's width and stay positive as i64.
        let width = u32::from(layout.timestamp_bits()) + u32::from(layout.worker_bits()) + u32::from(layout.sequence_bits());
        prop_assert!(width == 64 || id.as_u64() >> width == 0);
        prop_assert!(id.as_i64() >= 0);
        // Order of IDs is the order of (timestamp, worker, sequence).
        let id_b = layout.compose(b.timestamp, b.worker, b.sequence).unwrap();
        prop_assert_eq!(id.cmp(&id_b), a.cmp(&b));
    }

    #[test]
    fn decode_compose_round_trip(layout in layouts(), raw in any::<u64>()) {
        let width = u32::from(layout.timestamp_bits()) + u32::from(layout.worker_bits()) + u32::from(layout.sequence_bits());
        let raw = raw & ((1u64 << width) - 1);
        let id = Id::try_from(raw).unwrap();
        let p = layout.decode(id).unwrap();
        prop_assert_eq!(layout.compose(p.timestamp, p.worker, p.sequence).unwrap(), id);
        prop_assert_eq!(id.to_string().parse::<Id>().unwrap(), id);
    }

    #[test]
    fn generated_ids_decode_to_clock_tick_and_worker(
        (layout, p) in layouts().prop_flat_map(|l| (Just(l), parts_in(l))),
        offset in 0u64..1_000_000_000,
    ) {
        let start = layout.time_of(p.timestamp).unwrap() + Duration::from_nanos(offset % layout.tick().as_nanos() as u64);
        let clock = ManualClock::starting_at(start.duration_since(SystemTime::UNIX_EPOCH).unwrap());
        let gen = Generator::with_clock(layout, p.worker, clock).unwrap();
        let first = layout.decode(gen.next_id().unwrap()).unwrap();
        prop_assert_eq!(first, Parts { timestamp: p.timestamp, worker: p.worker, sequence: 0 });
        if p.timestamp < layout.max_timestamp() || layout.max_sequence() > 0 {
            let second = gen.next_id().unwrap();
            prop_assert!(layout.decode(second).unwrap() > first);
        }
    }

    #[test]
    fn timestamps_track_the_clock_across_tick_boundaries(
        tick_ns in 1u64..5_000_000,
        steps in proptest::collection::vec((0u64..3, 0usize..4), 1..60),
    ) {
        // 20 sequence bits: never exhausted here, so every ID's timestamp is the clock's tick.
        let epoch = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let layout = Layout::new(40, 2, 20, Duration::from_nanos(tick_ns), epoch).unwrap();
        let clock = ManualClock::starting_at(Duration::from_secs(1_700_000_000));
        let gen = Generator::with_clock(layout, 1, clock.clone()).unwrap();
        let mut since = 0u64;
        let mut prev = None;
        for (ticks, nudge) in steps {
            // Land on, just after and just before tick boundaries.
            since += ticks * tick_ns + [0, 1, tick_ns - 1, tick_ns / 2][nudge];
            clock.set(Duration::from_secs(1_700_000_000) + Duration::from_nanos(since));
            let id = gen.next_id().unwrap();
            prop_assert_eq!(layout.decode(id).unwrap().timestamp, since / tick_ns);
            prop_assert!(prev < Some(id));
            prev = Some(id);
        }
    }
}
