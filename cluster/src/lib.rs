//! Makes ringleader a fleet, on etcd: worker ids for [`ringleader_idgen`] leased with
//! self-fencing, and backend membership shared by proxies.
//!
//! - [`Cluster::lease_generator`] claims a worker id for a layout (a transaction that only
//!   succeeds if the key `/ringleader/<ns>/idgen/<layout>/workers/<id>` does not exist,
//!   attached to a lease), keeps the lease alive every TTL/3 and fences the generator:
//!   it returns [`ringleader_idgen::Error::Fenced`] instead of an ID past `time the last
//!   confirmed keep-alive was sent + TTL - margin` ([`ClusterConfig::safety_margin`]), at
//!   once on a keep-alive answer with TTL 0, and at once when its key is deleted or taken.
//!   Each holder writes its fence limit to the id's high-water key before issuing under
//!   it; the next holder of the id starts strictly after it, whatever its clock says.
//! - [`Cluster::watch_members`] publishes an upstream's members
//!   (`/ringleader/<ns>/upstreams/<name>/backends/<id>` = `{"addr": .., "weight": ..}`) as
//!   whole [`Snapshot`]s; [`Cluster::register_backend`] keeps a backend's key alive for as
//!   long as a sidecar runs; [`Cluster::list`] is what `ringleader cluster ls` shows.
//! - [`Cluster::publish_verdicts`] publishes a proxy's own health verdicts under its
//!   lease (`/ringleader/<ns>/health/<upstream>/<backend>/<proxy>`),
//!   [`Cluster::watch_verdicts`] watches every proxy's, and [`objective`] tells which
//!   backends a quorum of the live proxies holds down.
//!
//! What each failure does:
//!
//! | failure | generators | membership watchers |
//! |---|---|---|
//! | etcd unreachable or frozen | issue until the deadline, then `Fenced`; resume on the first confirmed keep-alive (or reclaim if the lease expired meanwhile) | keep publishing the last snapshot, [`MembershipWatch::is_connected`] is false; resume from the last revision when etcd returns |
//! | lease expired (keep-alive answers TTL 0) | fenced at once, then the id is reclaimed (the same one if free, else the lowest free; IDs keep increasing) | - |
//! | own worker key deleted or put under another lease | fenced at once, then reclaimed as above | - |
//! | every worker id taken | [`Error::AllWorkerIdsTaken`] from `lease_generator` | - |
//! | missed revisions compacted | - | the whole prefix is re-read ([`MembershipWatch::resyncs`]) |
//! | a backend value is not valid JSON | - | that backend is left out, with a warning |
//! | process killed | its worker id is free once its lease expires (TTL); the next holder starts after its high-water | a registered backend disappears after the TTL |
//!
//! Verdicts ([`Cluster::publish_verdicts`], [`Cluster::watch_verdicts`]): while etcd is
//! unreachable a [`VerdictWatch`] keeps the last verdicts and says it is not connected
//! (the proxy then falls back to its own), and a [`VerdictPublisher`] retries; a lease
//! that expired meanwhile is replaced (a new proxy id) and every verdict written again;
//! a killed publisher's verdicts disappear with its lease, after the TTL.
//!
//! The client is `etcdv3client`, which ships its generated gRPC code: building needs no
//! `protoc`. etcd 3.5 or later is the production minimum (3.4 is end-of-life; the tests
//! also run against Debian's 3.4).
//!
//! ```no_run
//! use ringleader_cluster::{Cluster, ClusterConfig};
//! use ringleader_idgen::Layout;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = ClusterConfig::new(["http://127.0.0.1:2379"]).with_namespace("prod");
//! let cluster = Cluster::connect(&config).await?;
//! let ids = cluster.lease_generator(Layout::TWITTER, None).await?;
//! let id = ids.next_id()?;
//! let members = cluster.watch_members("app").await?;
//! let snapshot = members.snapshot();
//! # let _ = (id, snapshot);
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]

mod client;
mod config;
mod error;
mod keys;
mod members;
mod prefix;
mod verdicts;
mod worker;

pub use client::Cluster;
pub use config::ClusterConfig;
pub use error::Error;
pub use keys::layout_name;
pub use members::{
    BackendSpec, Listing, Member, MembershipWatch, Registration, Snapshot, WorkerLeaseInfo,
};
pub use verdicts::{
    live_proxies, objective, Objective, OwnVerdicts, Quorum, UpstreamVerdicts, VerdictPublisher,
    VerdictWatch, Verdicts,
};
pub use worker::{LeaseState, LeaseStatus, LeasedGenerator, WorkerValue};
