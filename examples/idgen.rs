//! Example: application code sharing one static Snowflake generator between threads.
//!
//! Run with `cargo run --example idgen` (optionally `RINGLEADER_WORKER_ID=7`).
use std::sync::LazyLock;
use std::thread;

use ringleader::idgen::{Error, Generator, Id, Layout, WorkerId};

/// One generator per process: the worker id comes from `RINGLEADER_WORKER_ID`
/// (each process/pod gets its own), defaulting to 0 for this demo.
static IDS: LazyLock<Generator> = LazyLock::new(|| {
    let worker = match WorkerId::from_env() {
        Ok(worker) => Ok(worker),
        Err(Error::WorkerIdMissing { .. }) => Ok(WorkerId::new(0)),
        Err(invalid) => Err(invalid), // set but not a number: refuse rather than guess
    };
    worker
        .and_then(|w| Generator::new(Layout::TWITTER, w))
        .unwrap_or_else(|e| {
            eprintln!("cannot start the ID generator: {e}");
            std::process::exit(2)
        })
});

/// What an application would do: give every new record an ID.
fn create_order(item: &str) -> Result<(Id, String), Error> {
    Ok((IDS.next_id()?, item.to_owned()))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let handles: Vec<_> = (0..4)
        .map(|t| {
            thread::spawn(move || {
                (0..25_000)
                    .map(|i| create_order(&format!("item-{t}-{i}")).map(|(id, _)| id))
                    .collect::<Result<Vec<Id>, _>>()
            })
        })
        .collect();
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.join().map_err(|_| "worker thread panicked")??);
    }
    let n = all.len();
    all.sort_unstable();
    all.dedup();
    println!("{n} IDs from 4 threads, {} distinct", all.len());

    // Bulk inserts: reserve a batch in one compare-exchange.
    let batch: Vec<Id> = IDS.next_ids(1000)?.collect();
    println!(
        "batch of {} IDs: {} ..= {}",
        batch.len(),
        batch[0],
        batch[999]
    );

    let last = all[all.len() - 1];
    let parts = Layout::TWITTER.decode(last)?;
    println!(
        "last ID {last}: time {}, worker {}, sequence {}",
        humantime_like(Layout::TWITTER.time_of(parts.timestamp)?),
        parts.worker,
        parts.sequence
    );
    Ok(())
}

/// Seconds since the Unix epoch with millisecond precision (no extra dependency).
fn humantime_like(t: std::time::SystemTime) -> String {
    let d = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    format!(
        "{}.{:03}s after the Unix epoch",
        d.as_secs(),
        d.subsec_millis()
    )
}
