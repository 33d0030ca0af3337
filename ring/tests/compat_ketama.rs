//! `Ketama` against golden vectors made by an independent Python version of libketama (tests/data/ketama_golden.py).
use std::collections::BTreeMap;

use ringleader_ring::{Ketama, Placement};

const GOLDEN: &str = include_str!("data/ketama_golden.txt");

#[test]
fn ketama_agrees_with_the_independent_python_implementation() {
    // "# list A: host:port=weight host:port=weight ..." headers give the servers.
    let mut lists: BTreeMap<&str, Ketama<String>> = BTreeMap::new();
    let mut points: BTreeMap<&str, usize> = BTreeMap::new();
    for line in GOLDEN.lines().filter_map(|l| l.strip_prefix("# list ")) {
        let (name, rest) = line.split_once(": ").unwrap();
        if let Some(n) = rest.strip_suffix(" points") {
            points.insert(name, n.parse().unwrap());
            continue;
        }
        let servers = rest
            .split(' ')
            .map(|s| {
                let (addr, w) = s.rsplit_once('=').unwrap();
                (addr.to_string(), w.parse().unwrap())
            })
            .collect();
        lists.insert(name, Ketama::new(servers).unwrap());
    }
    assert_eq!(lists.len(), 3);
    for (name, k) in &lists {
        assert_eq!(k.point_count(), points[name], "list {name}: point count");
    }
    let mut checked = 0;
    for line in GOLDEN.lines().filter(|l| !l.starts_with('#')) {
        let mut f = line.split('\t');
        let (list, key, server) = (f.next().unwrap(), f.next().unwrap(), f.next().unwrap());
        let got = lists[list].locate(key.as_bytes()).unwrap();
        assert_eq!(got, server, "list {list}, key {key:?}");
        checked += 1;
    }
    assert_eq!(checked, 6000);
}
