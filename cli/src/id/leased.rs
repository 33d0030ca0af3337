//! `ringleader id --etcd URL`: IDs under a worker id leased from etcd for the run.
//!
//! The lease is taken before the first ID and released (high-water stored, lease revoked)
//! after the last, also when standard output closes early. While the lease is not
//! confirmed the generator answers `Fenced` instead of an ID: the command waits for the
//! next renewal or reclaim, and gives up with an error after `--wait`.
use std::io::Write;
use std::time::Instant;

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
    let printed = issue(&rt, &leased, args, out);
    if let Err(e) = rt.block_on(leased.release()) {
        tracing::warn!(error = %chain(&e), "could not release the worker id; it is free again once its lease expires");
    }
    printed
}

/// Print `args.count` IDs from `leased`, waiting out fenced spells of at most `args.wait`.
fn issue(
    rt: &tokio::runtime::Runtime,
    leased: &LeasedGenerator,
    args: &IdArgs,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let mut status = leased.subscribe();
    let mut left = args.count;
    let mut fenced_since: Option<Instant> = None;
    while left > 0 {
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
