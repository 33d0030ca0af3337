//! `ringleader id --etcd URL`: IDs under a worker id leased from etcd for the run.
//!
//! The lease is taken before the first ID and released (high-water stored, lease revoked)
//! after the last, also when standard output closes early. While the lease is not
//! confirmed the generator answers `Fenced` instead of an ID: the command waits for the
//! next renewal or reclaim, and gives up with an error after `--wait`. SIGINT or SIGTERM
//! stops the printing between two batches and releases the id too.
use std::io::Write;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ringleader_cluster::{LeaseState, LeasedGenerator};

use super::IdArgs;
use crate::cluster::{chain, connect};
use crate::CliError;

/// Lease a worker id, print `args.count` IDs, release the id.
pub fn generate(args: &IdArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let config = args.cluster.config()?;
    let layout = args.layout.layout();
    // The lease keeper runs on the runtime's thread while this one prints (and may block
    // on a slow reader): a lease is never starved by its own output.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .thread_name("ringleader-lease")
        .build()?;
    let leased = rt.block_on(async {
        let cluster = connect(&config).await?;
        cluster
            .lease_generator(layout, None)
            .await
            .map_err(|e| CliError::from(format!("cannot lease a worker id: {}", chain(&e))))
    })?;
    tracing::debug!(
        worker = leased.worker(),
        "printing IDs under a leased worker id"
    );
    let stage = Arc::new(AtomicU8::new(PRINTING));
    watch_signals(&rt, Arc::clone(&stage))?;
    let printed = issue(&rt, &leased, args, &stage, out);
    // Relaxed: the flag only tells the signal task not to cut the release short.
    stage.store(RELEASING, Ordering::Relaxed);
    if let Err(e) = rt.block_on(leased.release()) {
        tracing::warn!(error = %chain(&e), "could not release the worker id; it is free again once its lease expires");
    }
    printed
}

/// Where the run is, for the signal task.
const PRINTING: u8 = 0;
const INTERRUPTED: u8 = 1;
const RELEASING: u8 = 2;

/// How long after SIGINT/SIGTERM the printing thread has to reach the release before the
/// process exits anyway (it may be blocked writing to a reader that stopped reading). The
/// id is then free once its lease expires; the next holder starts after its high-water.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// On SIGINT or SIGTERM: ask the printing loop to stop (it then releases the id), and exit
/// after [`STOP_GRACE`] if it has not got to the release by then.
fn watch_signals(rt: &tokio::runtime::Runtime, stage: Arc<AtomicU8>) -> std::io::Result<()> {
    let _in_runtime = rt.enter();
    let stop = crate::cluster::stop_signal()?;
    rt.spawn(async move {
        stop.await;
        let _ = stage.compare_exchange(PRINTING, INTERRUPTED, Ordering::Relaxed, Ordering::Relaxed);
        tokio::time::sleep(STOP_GRACE).await;
        if stage.load(Ordering::Relaxed) != RELEASING {
            tracing::warn!("stopped while blocked on output: the worker id is free again once its lease expires");
            std::process::exit(1);
        }
    });
    Ok(())
}

/// Print `args.count` IDs from `leased`, waiting out fenced spells of at most `args.wait`.
fn issue(
    rt: &tokio::runtime::Runtime,
    leased: &LeasedGenerator,
    args: &IdArgs,
    stage: &AtomicU8,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let mut status = leased.subscribe();
    let mut left = args.count;
    let mut fenced_since: Option<Instant> = None;
    while left > 0 {
        if stage.load(Ordering::Relaxed) == INTERRUPTED {
            out.flush()?;
            return Err(format!(
                "interrupted: printed {} of {} IDs",
                args.count - left,
                args.count
            )
            .into());
        }
        // Seen before trying: a renewal after this point wakes the wait below.
        status.borrow_and_update();
        let gen = leased.generator();
        let n = left.min(gen.max_batch());
        match gen.next_ids(n) {
            Ok(ids) => {
                fenced_since = None;
                for id in ids {
                    writeln!(out, "{id}")?;
                }
                left -= n;
            }
            Err(ringleader_idgen::Error::Fenced) => {
                let since = *fenced_since.get_or_insert_with(|| {
                    tracing::warn!(
                        worker = gen.worker(),
                        "the worker-id lease is not confirmed (etcd unreachable?): waiting"
                    );
                    Instant::now()
                });
                let left_to_wait = args.wait.saturating_sub(since.elapsed());
                let woke = rt
                    .block_on(async { tokio::time::timeout(left_to_wait, status.changed()).await });
                match woke {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => return Err("the worker-id lease keeper stopped".into()),
                    Err(_) => {
                        let state = status.borrow().state;
                        return Err(format!(
                            "no IDs for {}: the worker-id lease is {} (etcd at {} does not \
                             confirm it); printed {} of {} IDs",
                            humantime::format_duration(args.wait),
                            describe(state),
                            args.cluster.endpoints()?.join(","),
                            args.count - left,
                            args.count
                        )
                        .into());
                    }
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

fn describe(state: LeaseState) -> &'static str {
    match state {
        LeaseState::Held => "held but not renewed in time",
        LeaseState::Fenced => "fenced",
        LeaseState::Lost => "lost and not reclaimed",
        LeaseState::Released => "released",
        _ => "not confirmed",
    }
}
