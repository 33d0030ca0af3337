//! Property tests: consistency on add/remove, distinct replicas, weights,
//! range-map invariants and minimum-move slot rebalancing.
use std::collections::HashMap;

use proptest::prelude::*;
use ringleader_ring::{hash_slot, jump_hash, HashRing, Maglev, RangeMap, Rendezvous, SlotMap};

fn names(n: usize) -> Vec<(String, u32)> {
    (0..n).map(|i| (format!("node-{i}"), 1)).collect()
}

fn key(i: u32) -> Vec<u8> {
    format!("key-{i}").into_bytes()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn ring_add_moves_keys_only_to_the_new_node(n in 1usize..12, vnodes in 1u32..40, w in 1u32..4) {
        let ring = HashRing::from_nodes(names(n), vnodes).unwrap();
        let bigger = ring.with_node("newcomer".to_string(), w).unwrap();
        for i in 0..400 {
            let (a, b) = (ring.get(&key(i)).unwrap(), bigger.get(&key(i)).unwrap());
            prop_assert!(a == b || b == "newcomer", "key {i} moved {a} -> {b}");
        }
    }

    #[test]
    fn ring_remove_moves_only_the_removed_nodes_keys(n in 2usize..12, vnodes in 1u32..40, victim in 0usize..12) {
        let victim = format!("node-{}", victim % n);
        let ring = HashRing::from_nodes(names(n), vnodes).unwrap();
        let smaller = ring.without_node(victim.as_bytes()).unwrap();
        for i in 0..400 {
            let (a, b) = (ring.get(&key(i)).unwrap(), smaller.get(&key(i)).unwrap());
            prop_assert!(a == b || *a == victim, "key {i} moved {a} -> {b}");
            prop_assert_ne!(b, &victim);
        }
    }

    #[test]
    fn ring_replicas_never_repeat(n in 1usize..20, vnodes in 1u32..30, want in 0usize..25, k in any::<u32>()) {
        let ring = HashRing::from_nodes(names(n), vnodes).unwrap();
        let reps = ring.replicas(&key(k), want);
        prop_assert_eq!(reps.len(), want.min(n));
        let mut seen = reps.clone();
        seen.sort();
        seen.dedup();
        prop_assert_eq!(seen.len(), reps.len());
        if want > 0 {
            prop_assert_eq!(Some(reps[0]), ring.get(&key(k)));
        }
    }

    #[test]
    fn rendezvous_add_moves_keys_only_to_the_new_node(n in 1usize..12, w in 1u32..5) {
        let before = Rendezvous::new(names(n)).unwrap();
        let mut after = before.clone();
        after.add("newcomer".to_string(), w).unwrap();
        for i in 0..300 {
            let (a, b) = (before.get(&key(i)).unwrap(), after.get(&key(i)).unwrap());
            prop_assert!(a == b || b == "newcomer");
        }
    }

    #[test]
    fn jump_grows_monotonically(k in any::<u64>(), n in 1u32..2000) {
        let (a, b) = (jump_hash(k, n), jump_hash(k, n + 1));
        prop_assert!(a < n);
        prop_assert!(a == b || b == n);
    }

    #[test]
    fn hash_tags_share_a_slot(tag in "[a-z0-9]{1,12}", a in "[a-z:]{0,8}", b in "[a-z:]{0,8}") {
        let k1 = format!("{a}{{{tag}}}x");
        let k2 = format!("{b}{{{tag}}}y");
        prop_assert_eq!(hash_slot(k1.as_bytes(), 16384), hash_slot(k2.as_bytes(), 16384));
    }

    #[test]
    fn range_map_stays_total_and_gap_free(ops in proptest::collection::vec((0u8..3, any::<u16>(), 0u8..4), 1..60)) {
        let mut map: RangeMap<u16, u8> = RangeMap::new(0);
        let mut version = 0;
        for (op, k, owner) in ops {
            let changed = match op {
                0 => map.split(k).is_ok(),
                1 => {
                    // Merge the range holding k with its right neighbour (owners
                    // must match; align them first so merges do happen).
                    let ids: Vec<_> = map.iter().map(|r| r.id).collect();
                    let i = ids.iter().position(|&id| id == map.range_of(&k).id).unwrap();
                    if i + 1 < ids.len() {
                        let left_owner = *map.range(ids[i]).unwrap().owner;
                        let realigned = map.set_owner(ids[i + 1], left_owner).is_ok();
                        version += u64::from(realigned);
                        map.merge(ids[i], ids[i + 1]).is_ok()
                    } else {
                        prop_assert!(map.merge(ids[i], ids[i]).is_err());
                        false
                    }
                }
                _ => {
                    let id = map.range_of(&k).id;
                    map.set_owner(id, owner).is_ok()
                }
            };
            version += u64::from(changed);
            prop_assert_eq!(map.version(), version);
            // Total and gap-free: unbounded ends, each end is the next start.
            let ranges: Vec<_> = map.iter().collect();
            prop_assert!(ranges[0].start.is_none());
            prop_assert!(ranges[ranges.len() - 1].end.is_none());
            for w in ranges.windows(2) {
                prop_assert_eq!(w[0].end, w[1].start);
                prop_assert!(w[0].end.is_some());
            }
            // Every key lies in exactly one range, and get agrees with it.
            for probe in [0u16, k, k.wrapping_add(1), u16::MAX] {
                let holding: Vec<_> = ranges.iter().filter(|r| r.contains(&probe)).collect();
                prop_assert_eq!(holding.len(), 1);
                prop_assert_eq!(holding[0].owner, map.get(&probe));
            }
        }
    }

    #[test]
    fn slot_rebalance_moves_the_minimum(
        before in proptest::collection::vec(1u32..4, 1..6),
        keep in proptest::collection::vec(any::<bool>(), 6),
        added in proptest::collection::vec(1u32..4, 0..3),
        slots in 8usize..300,
    ) {
        let old: Vec<(String, u32)> = before.iter().enumerate().map(|(i, &w)| (format!("n{i}"), w)).collect();
        let map = SlotMap::new(old.clone(), slots).unwrap();
        let mut new: Vec<(String, u32)> = old.iter().zip(&keep).filter(|(_, &k)| k).map(|(n, _)| n.clone()).collect();
        new.extend(added.iter().enumerate().map(|(i, &w)| (format!("m{i}"), w)));
        prop_assume!(!new.is_empty());
        let plan = map.rebalance(new.clone()).unwrap();
        // The plan is exactly the difference between the two maps.
        let changed = (0..slots as u32).filter(|&s| map.owner_of_slot(s) != plan.map.owner_of_slot(s)).count();
        prop_assert_eq!(changed, plan.moves.len());
        // Balanced: each node holds floor or ceil of its weighted share.
        let total_w: u32 = new.iter().map(|(_, w)| w).sum();
        let counts = plan.map.slot_counts();
        for ((_, w), &c) in new.iter().zip(&counts) {
            let exact = slots as f64 * f64::from(*w) / f64::from(total_w);
            prop_assert!(c as f64 >= exact.floor() && c as f64 <= exact.ceil(), "{c} vs {exact}");
        }
        // Minimum: brute force over every balanced target (which nodes get
        // the leftover slots) the number of slots that must leave their node.
        let held: HashMap<&str, usize> = old.iter().map(|(n, _)| (n.as_str(), map.slots_of(n.as_bytes()).unwrap().len())).collect();
        let floors: Vec<usize> = new.iter().map(|(_, w)| slots * *w as usize / total_w as usize).collect();
        let extra = slots - floors.iter().sum::<usize>();
        let removed: usize = old.iter().filter(|(n, _)| !new.iter().any(|(m, _)| m == n)).map(|(n, _)| held[n.as_str()]).sum();
        let mut best = usize::MAX;
        let fractional: Vec<bool> = new.iter().map(|(_, w)| (slots * *w as usize) % total_w as usize != 0).collect();
        for mask in 0u32..(1 << new.len()) {
            if mask.count_ones() as usize != extra || (0..new.len()).any(|j| (mask >> j) & 1 == 1 && !fractional[j]) {
                continue;
            }
            let surplus: usize = new.iter().enumerate().map(|(j, (n, _))| {
                let t = floors[j] + ((mask >> j) & 1) as usize;
                held.get(n.as_str()).copied().unwrap_or(0).saturating_sub(t)
            }).sum();
            best = best.min(removed + surplus);
        }
        prop_assert_eq!(plan.moves.len(), best);
    }
}

/// (measured share, weight share) per node.
type Shares = Vec<(f64, f64)>;

/// Share of 60,000 keys per node against the weight share.
fn shares<F: Fn(&[u8]) -> String>(get: F, weights: &[(String, u32)]) -> Shares {
    let mut count: HashMap<String, u64> = HashMap::new();
    let keys = 60_000;
    for i in 0..keys {
        *count.entry(get(&key(i))).or_default() += 1;
    }
    let total_w: u32 = weights.iter().map(|(_, w)| w).sum();
    weights
        .iter()
        .map(|(n, w)| {
            (
                count.get(n).copied().unwrap_or(0) as f64 / f64::from(keys),
                f64::from(*w) / f64::from(total_w),
            )
        })
        .collect()
}

fn weighted() -> Vec<(String, u32)> {
    vec![
        ("a".into(), 1),
        ("b".into(), 2),
        ("c".into(), 3),
        ("d".into(), 4),
    ]
}

#[test]
fn weights_shift_load_in_proportion() {
    let ring = HashRing::from_nodes(weighted(), 160).unwrap();
    let hrw = Rendezvous::new(weighted()).unwrap();
    let maglev = Maglev::new(weighted()).unwrap();
    let slots = SlotMap::new(weighted(), 16384).unwrap();
    let cases: Vec<(&str, Shares, f64)> = vec![
        // Tolerance relative to the expected share; the ring's is wider
        // because 160 points per unit of weight leave a few % of noise.
        (
            "ring",
            shares(|k| ring.get(k).unwrap().clone(), &weighted()),
            0.12,
        ),
        (
            "rendezvous",
            shares(|k| hrw.get(k).unwrap().clone(), &weighted()),
            0.05,
        ),
        (
            "maglev",
            shares(|k| maglev.get(k).unwrap().clone(), &weighted()),
            0.05,
        ),
        (
            "slots",
            shares(|k| slots.get(k).unwrap().clone(), &weighted()),
            0.05,
        ),
    ];
    for (name, got, tol) in cases {
        for (share, expected) in got {
            assert!(
                (share - expected).abs() <= tol * expected,
                "{name}: share {share:.4} vs expected {expected:.4}"
            );
        }
    }
}

#[test]
fn doubling_a_weight_only_moves_keys_to_that_node() {
    let ring = HashRing::from_nodes(names(6), 100).unwrap();
    let heavier = ring.with_weight(b"node-3", 2).unwrap();
    let mut moved = 0;
    for i in 0..5000 {
        let (a, b) = (ring.get(&key(i)).unwrap(), heavier.get(&key(i)).unwrap());
        if a != b {
            assert_eq!(b, "node-3");
            moved += 1;
        }
    }
    // Share goes from 1/6 to 2/7: about 11.9% of keys move.
    assert!((400..800).contains(&moved), "{moved}");
}
