//! Golden vectors: placement must never change across versions, processes
//! or platforms. If one of these fails, every deployed ring would remap keys.
use ringleader_ring::{hash_key, hash_slot, hash_vnode, jump_hash, HashRing, Jump};

#[test]
fn xxh3_inputs_are_pinned() {
    // XXH3_64("") with seed 0 is the reference value from the xxHash project.
    assert_eq!(hash_key(b""), 0x2D06_8005_38D3_94C2);
    assert_eq!(hash_key(b"hello"), 0x9555_E855_5C62_DCFD);
    // Vnode naming: node bytes followed by the index as u32 little-endian.
    assert_eq!(hash_vnode(b"node-a", 0), 0x71A4_AFB0_796E_0179);
    assert_eq!(
        hash_vnode(b"node-a", 7),
        hash_key(b"node-a\x07\x00\x00\x00")
    );
}

#[test]
fn hash_ring_placement_is_pinned() {
    let nodes = vec![
        ("cache-a".to_string(), 1),
        ("cache-b".to_string(), 1),
        ("cache-c".to_string(), 2),
    ];
    let ring = HashRing::from_nodes(nodes.clone(), 160).unwrap();
    let expected = [
        ("user:1", ["cache-c", "cache-b", "cache-a"]),
        ("user:2", ["cache-a", "cache-b", "cache-c"]),
        ("user:3", ["cache-a", "cache-b", "cache-c"]),
        ("user:42", ["cache-c", "cache-a", "cache-b"]),
        ("session:abc", ["cache-b", "cache-c", "cache-a"]),
        ("", ["cache-a", "cache-b", "cache-c"]),
        ("orders/2026/11", ["cache-c", "cache-b", "cache-a"]),
    ];
    // Same answers whatever the insertion order.
    let mut reversed = nodes;
    reversed.reverse();
    let reversed = HashRing::from_nodes(reversed, 160).unwrap();
    for r in [&ring, &reversed] {
        for (key, want) in expected {
            assert_eq!(
                r.get(key.as_bytes()).map(String::as_str),
                Some(want[0]),
                "{key}"
            );
            let reps: Vec<&str> = r
                .replicas(key.as_bytes(), 3)
                .into_iter()
                .map(String::as_str)
                .collect();
            assert_eq!(reps, want, "{key}");
        }
    }
}

#[test]
fn jump_matches_the_published_vectors() {
    // Vectors shared by the reference implementations of Lamping & Veach
    // (Go, C, Python, Elixir ports all test these).
    for (key, buckets, bucket) in [
        (1u64, 1u32, 0u32),
        (42, 57, 43),
        (0xDEAD10CC, 1, 0),
        (0xDEAD10CC, 666, 361),
        (256, 1024, 520),
        (1, 128, 55),
        (129, 128, 120),
        (128, 100_000_000, 38_172_097),
        (u64::MAX, 128, 92),
    ] {
        assert_eq!(
            jump_hash(key, buckets),
            bucket,
            "jump_hash({key}, {buckets})"
        );
    }
    assert_eq!(jump_hash(7, 0), 0);
}

#[test]
fn jump_placement_over_names_is_pinned() {
    let jump = Jump::new((0..10).map(|i| format!("node-{i}")).collect());
    assert_eq!(jump.get(b"user:1").map(String::as_str), Some("node-1"));
    assert_eq!(jump.get(b"user:2").map(String::as_str), Some("node-9"));
    assert_eq!(jump.get(b"user:42").map(String::as_str), Some("node-1"));
}

#[test]
fn slots_are_pinned() {
    assert_eq!(hash_slot(b"user:{42}:cart", 16384), hash_slot(b"42", 16384));
    assert_eq!(hash_slot(b"42", 16384), (hash_key(b"42") % 16384) as u32);
}

#[test]
fn compatible_placements_are_pinned() {
    // nginx's `hash $key consistent` over these server lines (the same answers
    // real nginx 1.22.1 gives is what tests/compat_nginx.rs checks, with nginx).
    let nginx = ringleader_ring::NginxHash::new(vec![
        ("127.0.0.1:8081".to_string(), 1),
        ("127.0.0.1:8082".to_string(), 2),
        ("backend.example:80".to_string(), 1),
    ])
    .unwrap();
    let expected = [
        "backend.example:80",
        "backend.example:80",
        "127.0.0.1:8082",
        "127.0.0.1:8081",
        "127.0.0.1:8082",
        "127.0.0.1:8082",
        "127.0.0.1:8081",
        "127.0.0.1:8082",
        "127.0.0.1:8082",
        "127.0.0.1:8081",
        "127.0.0.1:8082",
        "127.0.0.1:8081",
    ];
    for (i, want) in expected.iter().enumerate() {
        let key = format!("key-{i}");
        assert_eq!(nginx.get(key.as_bytes()).unwrap(), want, "{key}");
    }
    // Redis Cluster: CLUSTER KEYSLOT answers.
    let slots: Vec<u16> = ["foo", "bar", "{user1}.a", "a{}b", "123456789"]
        .iter()
        .map(|k| ringleader_ring::redis_slot(k.as_bytes()))
        .collect();
    assert_eq!(slots, vec![12182, 5061, 8106, 13694, 12739]);
}
