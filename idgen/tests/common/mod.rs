//! Helpers shared by the high-water-mark tests: temporary directories and reading a mark file.
#![allow(dead_code)] // each test file uses its own subset

use std::path::Path;
use std::time::{Duration, Instant};

/// A fresh, empty directory for one test, removed on drop.
pub fn temp_dir(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("ringleader-idgen-{name}-"))
        .tempdir()
        .unwrap()
}

/// The tick stored in a mark file.
pub fn stored_tick(path: &Path) -> u64 {
    let text = std::fs::read_to_string(path).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("tick "))
        .unwrap()
        .parse()
        .unwrap()
}

/// Wait for `cond` to hold, re-checking whenever the scheduler runs us again; panics with
/// `what` after 10 s (a bound for a broken build, not a timing assumption).
pub fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "gave up waiting: {what}");
        std::thread::yield_now();
    }
}
