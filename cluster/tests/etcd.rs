//! Integration tests against a real etcd and real processes: eight generator processes
//! claim distinct worker ids and a ninth is refused; a frozen etcd fences generators
//! before their leases could expire; a killed holder's id is taken over without reissue;
//! membership snapshots follow puts, deletes and a compaction.
mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ringleader_cluster::{BackendSpec, Cluster, ClusterConfig, Error, LeaseState};
use ringleader_idgen::{Clock, Generator, Layout, NextId, SystemClock};

const CHILD_ENV: &str = "RINGLEADER_CLUSTER_TEST_CHILD";

/// 3 worker bits (8 ids); 4 sequence bits keep a busy generator at 16 IDs/ms.
fn small_layout() -> Layout {
    Layout::new(41, 3, 4, Duration::from_millis(1), Layout::TWITTER.epoch()).unwrap()
}

fn unix_nanos(d: Duration) -> u128 {
    d.as_nanos()
}

// ---------------------------------------------------------------- child processes

/// The entry point of child processes (a no-op in a normal test run): the test binary
/// runs itself with `CHILD_ENV` set and `--exact child_process`.
#[test]
fn child_process() {
    let Ok(mode) = std::env::var(CHILD_ENV) else {
        return;
    };
    let url = std::env::var("ETCD_URL").unwrap();
    let ns = std::env::var("NS").unwrap();
    let ttl = Duration::from_millis(std::env::var("TTL_MS").unwrap().parse().unwrap());
    let config = ClusterConfig {
        request_timeout: Duration::from_secs(1),
        ..ClusterConfig::new([url])
            .with_namespace(ns)
            .with_lease_ttl(ttl)
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    match mode.as_str() {
        "claim" => rt.block_on(child_claim(config)),
        "issue" => rt.block_on(child_issue(config)),
        other => panic!("unknown child mode {other}"),
    }
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "CHILD {line}").unwrap();
    out.flush().unwrap();
}

/// Wait for stdin to close (the parent's signal to stop), off the runtime.
async fn stdin_closed() {
    tokio::task::spawn_blocking(|| {
        let mut sink = Vec::new();
        let _ = std::io::stdin().read_to_end(&mut sink);
    })
    .await
    .unwrap();
}

async fn child_claim(config: ClusterConfig) {
    let cluster = Cluster::connect(&config).await.unwrap();
    match cluster.lease_generator(small_layout(), None).await {
        Ok(ids) => {
            ids.next_id().unwrap();
            say(&format!("worker {}", ids.worker()));
            stdin_closed().await;
            ids.release().await.unwrap();
            say("released");
        }
        Err(Error::AllWorkerIdsTaken { count, .. }) => say(&format!("taken {count}")),
        Err(e) => panic!("claim failed: {e}"),
    }
}

/// The system clock set `behind` back.
#[derive(Clone)]
struct Behind(Duration);

impl Clock for Behind {
    fn now(&self) -> Duration {
        SystemClock.now() - self.0
    }
    fn sleep(&self, d: Duration) {
        std::thread::sleep(d)
    }
}

/// Issue IDs as fast as the layout allows, writing them to `IDS_FILE`; report the lease's
/// renewals and the fenced/resumed transitions on stdout.
async fn child_issue(config: ClusterConfig) {
    let behind =
        Duration::from_millis(std::env::var("BEHIND_MS").map_or(0, |v| v.parse().unwrap()));
    let prefer = std::env::var("PREFER").ok().map(|v| v.parse().unwrap());
    let path = std::env::var("IDS_FILE").unwrap();
    let cluster = Cluster::connect(&config).await.unwrap();
    let layout = small_layout();
    let ids = cluster
        .lease_generator_with(layout, prefer, move || {
            Generator::builder(layout).clock(Behind(behind))
        })
        .await
        .unwrap();
    say(&format!("worker {}", ids.worker()));
    let mut status = ids.subscribe();
    let report = tokio::spawn(async move {
        let mut renewals = u64::MAX;
        loop {
            let s = status.borrow_and_update().clone();
            if s.renewals != renewals {
                renewals = s.renewals;
                say(&format!(
                    "renew {} {} {}",
                    unix_nanos(s.confirmed_sent),
                    s.confirmed_ttl.as_nanos(),
                    s.worker
                ));
            }
            if s.state == LeaseState::Released || status.changed().await.is_err() {
                return;
            }
        }
    });
    let ids = Arc::new(ids);
    let stop = Arc::new(AtomicBool::new(false));
    let issuer = {
        let (ids, stop) = (Arc::clone(&ids), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
            let mut fenced = false;
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                match ids.try_next_id() {
                    Ok(NextId::Ready(id)) => {
                        if fenced {
                            fenced = false;
                            say(&format!("resumed {}", SystemClock.now().as_nanos()));
                        }
                        file.write_all(&id.as_u64().to_le_bytes()).unwrap();
                        n += 1;
                        if n % 64 == 0 {
                            file.flush().unwrap(); // a SIGKILL loses at most 64 IDs
                        }
                    }
                    Ok(NextId::Wait(d)) => std::thread::sleep(d),
                    Err(ringleader_idgen::Error::Fenced) => {
                        if !fenced {
                            fenced = true;
                            say(&format!("fenced {}", SystemClock.now().as_nanos()));
                        }
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    // A clock behind the handover floor: wait for it to catch up.
                    Err(ringleader_idgen::Error::ClockMovedBackwards { .. }) => {
                        std::thread::sleep(Duration::from_millis(1))
                    }
                    Err(e) => panic!("next_id: {e}"),
                }
            }
            file.flush().unwrap();
        })
    };
    stdin_closed().await;
    stop.store(true, Ordering::Relaxed);
    issuer.join().unwrap();
    let ids = Arc::into_inner(ids).expect("issuer joined");
    ids.release().await.unwrap();
    let _ = report.await;
    say("released");
}

// ---------------------------------------------------------------- parent side

/// A child process and the `CHILD` lines it printed (read by a thread).
struct Proc {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

fn spawn(mode: &str, etcd: &common::Etcd, ns: &str, ttl: Duration, env: &[(&str, String)]) -> Proc {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "child_process",
        "--exact",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(CHILD_ENV, mode)
    .env("ETCD_URL", &etcd.url)
    .env("NS", ns)
    .env("TTL_MS", ttl.as_millis().to_string())
    .stdin(Stdio::piped())
    .stdout(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            // libtest prints "test child_process ... " before the first line, unterminated.
            if let Some(at) = line.find("CHILD ") {
                let rest = &line[at + "CHILD ".len()..];
                if tx.send(rest.to_owned()).is_err() {
                    return;
                }
            }
        }
    });
    Proc {
        stdin: child.stdin.take(),
        child,
        lines,
        seen: Vec::new(),
    }
}

impl Proc {
    /// The first line (from now or already seen) starting with `prefix`, waiting up to `within`.
    fn wait_line(&mut self, prefix: &str, within: Duration) -> String {
        if let Some(l) = self.seen.iter().find(|l| l.starts_with(prefix)) {
            return l.clone();
        }
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.starts_with(prefix) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "child {} printed no {prefix:?} line within {within:?}; saw {:?}",
                    self.child.id(),
                    self.seen
                ),
            }
        }
    }

    /// A line starting with `prefix` printed after the first `skip` such lines.
    fn wait_nth(&mut self, prefix: &str, n: usize, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            let found: Vec<_> = self
                .seen
                .iter()
                .filter(|l| l.starts_with(prefix))
                .cloned()
                .collect();
            if found.len() > n {
                return found[n].clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(_) => panic!(
                    "child printed fewer than {} {prefix:?} lines; saw {:?}",
                    n + 1,
                    self.seen
                ),
            }
        }
    }

    /// Close stdin (the signal to release and exit), drain its output, wait for it.
    fn finish(mut self) -> Vec<String> {
        drop(self.stdin.take());
        let status = self.child.wait().unwrap();
        self.seen.extend(self.lines.try_iter());
        // The reader thread ends at EOF; collect what is left.
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
            self.seen.push(line);
        }
        assert!(
            status.success(),
            "child failed: {status}; said {:?}",
            self.seen
        );
        self.seen
    }
}

fn read_ids(path: &std::path::Path) -> Vec<u64> {
    let bytes = std::fs::read(path).unwrap_or_default();
    bytes
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

fn unix_ms_of(id: u64) -> u128 {
    let layout = small_layout();
    let ts = layout.decode(id.try_into().unwrap()).unwrap().timestamp;
    layout
        .time_of(ts)
        .unwrap()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis()
}

fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis()
}

#[test]
fn eight_processes_claim_distinct_ids_and_a_ninth_is_refused() {
    common::logs();
    let Some(etcd) = common::etcd() else { return };
    let ttl = Duration::from_secs(5);
    let mut procs: Vec<Proc> = (0..8)
        .map(|_| spawn("claim", &etcd, "eight", ttl, &[]))
        .collect();
    let mut workers: Vec<u32> = procs
        .iter_mut()
        .map(|p| {
            let line = p.wait_line("worker ", Duration::from_secs(30));
            line["worker ".len()..].parse().unwrap()
        })
        .collect();
    workers.sort_unstable();
    assert_eq!(
        workers,
        (0..8).collect::<Vec<u32>>(),
        "eight distinct ids of 3 bits"
    );

    let mut ninth = spawn("claim", &etcd, "eight", ttl, &[]);
    assert_eq!(ninth.wait_line("", Duration::from_secs(30)), "taken 8");
    ninth.finish();
    for p in procs {
        let said = p.finish();
        assert!(said.iter().any(|l| l == "released"), "{said:?}");
    }
    // Released cleanly: the ids are free again at once (no TTL to wait out).
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let cluster = Cluster::connect(&etcd.config("eight", ttl)).await.unwrap();
        assert!(cluster.list().await.unwrap().workers.is_empty());
        let ids = cluster
            .lease_generator(small_layout(), Some(5))
            .await
            .unwrap();
        assert_eq!(ids.worker(), 5, "the preferred id when free");
        ids.release().await.unwrap();
    });
}

/// `renew <sent_ns> <ttl_ns> <worker>` lines: (sent + ttl) in ms.
fn lease_ends_ms(lines: &[String]) -> Vec<(u128, u128)> {
    lines
        .iter()
        .filter_map(|l| l.strip_prefix("renew "))
        .map(|rest| {
            let mut it = rest.split(' ').map(|v| v.parse::<u128>().unwrap());
            let (sent, ttl) = (it.next().unwrap(), it.next().unwrap());
            (sent / 1_000_000, (sent + ttl) / 1_000_000)
        })
        .collect()
}

#[test]
fn a_frozen_etcd_fences_generators_before_their_leases_could_expire() {
    common::logs();
    let Some(etcd) = common::etcd() else { return };
    let ttl = Duration::from_secs(2);
    let dir = tempfile::tempdir().unwrap();
    let files: Vec<_> = (0..2)
        .map(|i| dir.path().join(format!("ids-{i}")))
        .collect();
    let mut procs: Vec<Proc> = files
        .iter()
        .map(|f| {
            spawn(
                "issue",
                &etcd,
                "partition",
                ttl,
                &[("IDS_FILE", f.display().to_string())],
            )
        })
        .collect();
    for p in &mut procs {
        p.wait_line("worker ", Duration::from_secs(30));
        p.wait_nth("renew ", 1, Duration::from_secs(30)); // the grant, then a keep-alive
    }
    let frozen_at = now_ms();
    etcd.freeze();
    for p in &mut procs {
        p.wait_line("fenced ", Duration::from_secs(15));
    }
    let thawed_at = now_ms();
    etcd.thaw();
    for p in &mut procs {
        p.wait_line("resumed ", Duration::from_secs(30));
    }
    let mut all = Vec::new();
    for (p, file) in procs.into_iter().zip(&files) {
        let said = p.finish();
        let ids = read_ids(file);
        assert!(!ids.is_empty());
        // The latest lease end etcd could have granted from a keep-alive sent before the freeze.
        let ends = lease_ends_ms(&said);
        let lease_end = ends
            .iter()
            .filter(|(sent, _)| *sent < frozen_at)
            .map(|&(_, end)| end)
            .max()
            .unwrap();
        let fenced_ms = said
            .iter()
            .find_map(|l| l.strip_prefix("fenced "))
            .map(|v| v.parse::<u128>().unwrap() / 1_000_000)
            .unwrap();
        assert!(
            fenced_ms < lease_end,
            "fenced at {fenced_ms}, lease could end at {lease_end}"
        );
        let before_thaw: Vec<u128> = ids
            .iter()
            .map(|&id| unix_ms_of(id))
            .filter(|&ms| ms < thawed_at)
            .collect();
        let last = *before_thaw.iter().max().unwrap();
        assert!(
            last < lease_end,
            "an ID at {last} ms was issued while etcd was frozen, past the lease's possible end {lease_end} ms"
        );
        assert!(
            ids.iter().any(|&id| unix_ms_of(id) > thawed_at),
            "issuing resumed after the thaw"
        );
        all.extend(ids);
    }
    let n = all.len();
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), n, "every ID from every process is unique");
}

#[test]
fn a_killed_holders_id_is_taken_over_without_reissue_by_a_clock_behind() {
    common::logs();
    let Some(etcd) = common::etcd() else { return };
    let ttl = Duration::from_secs(2);
    let dir = tempfile::tempdir().unwrap();
    let (file_a, file_b) = (dir.path().join("a"), dir.path().join("b"));
    let mut a = spawn(
        "issue",
        &etcd,
        "handover",
        ttl,
        &[("IDS_FILE", file_a.display().to_string())],
    );
    let line = a.wait_line("worker ", Duration::from_secs(30));
    let worker: u32 = line["worker ".len()..].parse().unwrap();
    a.wait_nth("renew ", 1, Duration::from_secs(30));
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(common::eventually(
        "A issued IDs",
        Duration::from_secs(20),
        || {
            let n = read_ids(&file_a).len();
            async move { n >= 1000 }
        },
    ));
    a.child.kill().unwrap(); // SIGKILL: no release, the key stays until the lease expires
    a.child.wait().unwrap();
    let cluster = rt
        .block_on(Cluster::connect(&etcd.config("handover", ttl)))
        .unwrap();
    rt.block_on(common::eventually(
        "A's lease expired",
        Duration::from_secs(20),
        || {
            let cluster = cluster.clone();
            async move { cluster.list().await.unwrap().workers.is_empty() }
        },
    ));
    let mut b = spawn(
        "issue",
        &etcd,
        "handover",
        ttl,
        &[
            ("IDS_FILE", file_b.display().to_string()),
            ("PREFER", worker.to_string()),
            ("BEHIND_MS", "3000".into()), // B's clock is 3 s behind A's
        ],
    );
    assert_eq!(
        b.wait_line("worker ", Duration::from_secs(30)),
        format!("worker {worker}")
    );
    rt.block_on(common::eventually(
        "B issued IDs",
        Duration::from_secs(30),
        || {
            let n = read_ids(&file_b).len();
            async move { n >= 1000 }
        },
    ));
    b.finish();
    let (ids_a, ids_b) = (read_ids(&file_a), read_ids(&file_b));
    let max_a = *ids_a.iter().max().unwrap();
    let min_b = *ids_b.iter().min().unwrap();
    assert!(
        min_b > max_a,
        "B issued {min_b} (at {} ms) <= A's {max_a} (at {} ms)",
        unix_ms_of(min_b),
        unix_ms_of(max_a)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn membership_snapshots_follow_puts_deletes_and_a_compaction() {
    common::logs();
    let Some(etcd) = common::etcd() else { return };
    let config = etcd.config("members", Duration::from_secs(5));
    let cluster = Cluster::connect(&config).await.unwrap();
    let watch = cluster.watch_members("app").await.unwrap();
    assert!(watch.snapshot().members.is_empty());
    let mut updates = watch.subscribe();
    let wait_for = |updates: &mut tokio::sync::watch::Receiver<_>,
                    want: Vec<(&'static str, &'static str)>| {
        let mut updates = updates.clone();
        async move {
            let reached = tokio::time::timeout(
                Duration::from_secs(10),
                updates.wait_for(|s: &Arc<ringleader_cluster::Snapshot>| {
                    s.members
                        .iter()
                        .map(|m| (m.id.as_str(), m.spec.addr.as_str()))
                        .collect::<Vec<_>>()
                        == want
                }),
            )
            .await
            .is_ok();
            assert!(reached, "membership never became {want:?}");
        }
    };
    let a = cluster
        .register_backend(
            "app",
            "a",
            &BackendSpec {
                addr: "127.0.0.1:9101".into(),
                weight: 2,
            },
        )
        .await
        .unwrap();
    let b = cluster
        .register_backend(
            "app",
            "b",
            &BackendSpec {
                addr: "127.0.0.1:9102".into(),
                weight: 1,
            },
        )
        .await
        .unwrap();
    wait_for(
        &mut updates,
        vec![("a", "127.0.0.1:9101"), ("b", "127.0.0.1:9102")],
    )
    .await;
    assert_eq!(watch.snapshot().members[0].spec.weight, 2);
    a.deregister().await.unwrap();
    wait_for(&mut updates, vec![("b", "127.0.0.1:9102")]).await;
    assert!(watch.is_connected());

    // A raw client, as an operator's etcdctl would be.
    let mut raw = etcdv3client::Client::new(vec![etcd.url.as_str()], None)
        .await
        .unwrap();
    raw.put("/ringleader/members/upstreams/app/backends/bad", "not json")
        .await
        .unwrap();
    raw.put(
        "/ringleader/members/upstreams/app/backends/c",
        r#"{"addr":"127.0.0.1:9103"}"#,
    )
    .await
    .unwrap();
    wait_for(
        &mut updates,
        vec![("b", "127.0.0.1:9102"), ("c", "127.0.0.1:9103")],
    )
    .await;
    assert_eq!(
        watch.snapshot().members[1].spec.weight,
        1,
        "weight defaults to 1"
    );

    // Compaction during a watch: a watcher resuming from an old snapshot whose later
    // revisions were compacted must re-read the prefix, losing nothing.
    let old = (*watch.snapshot()).clone();
    drop(watch);
    raw.put(
        "/ringleader/members/upstreams/app/backends/d",
        r#"{"addr":"127.0.0.1:9104","weight":3}"#,
    )
    .await
    .unwrap();
    raw.delete("/ringleader/members/upstreams/app/backends/c")
        .await
        .unwrap();
    b.deregister().await.unwrap();
    let (_, revision) = {
        let resp = raw
            .kv
            .range(etcdv3client::pb::RangeRequest {
                key: b"/".to_vec(),
                count_only: true,
                ..Default::default()
            })
            .await
            .unwrap();
        ((), resp.header.unwrap().revision)
    };
    raw.kv
        .compact(etcdv3client::pb::CompactionRequest {
            revision,
            physical: true,
        })
        .await
        .unwrap();
    let resumed = cluster.watch_members_from("app", old).await.unwrap();
    let mut updates = resumed.subscribe();
    wait_for(&mut updates, vec![("d", "127.0.0.1:9104")]).await;
    assert_eq!(
        resumed.resyncs(),
        1,
        "one full re-read after the compaction"
    );
    assert_eq!(resumed.snapshot().members[0].spec.weight, 3);

    // Without a compaction, resuming applies the missed events (no re-read).
    let old = (*resumed.snapshot()).clone();
    drop(resumed);
    raw.put(
        "/ringleader/members/upstreams/app/backends/e",
        r#"{"addr":"127.0.0.1:9105"}"#,
    )
    .await
    .unwrap();
    let resumed = cluster.watch_members_from("app", old).await.unwrap();
    let mut updates = resumed.subscribe();
    wait_for(
        &mut updates,
        vec![("d", "127.0.0.1:9104"), ("e", "127.0.0.1:9105")],
    )
    .await;
    assert_eq!(resumed.resyncs(), 0);

    let listing = cluster.list().await.unwrap();
    assert_eq!(listing.upstreams["app"].len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_worker_key_fences_at_once_and_the_id_is_reclaimed() {
    common::logs();
    let Some(etcd) = common::etcd() else { return };
    let config = etcd.config("reclaim", Duration::from_secs(5));
    let cluster = Cluster::connect(&config).await.unwrap();
    let ids = cluster
        .lease_generator(small_layout(), Some(4))
        .await
        .unwrap();
    assert_eq!(ids.worker(), 4);
    let before = ids.next_id().unwrap();
    let listing = cluster.list().await.unwrap();
    assert_eq!(listing.workers.len(), 1);
    let info = &listing.workers[0];
    assert_eq!(
        (info.worker, info.holder.as_deref()),
        (4, Some(cluster.holder()))
    );
    assert!(info.ttl_left.is_some() && info.high_water.unwrap() > 0);

    let mut status = ids.subscribe();
    let mut raw = etcdv3client::Client::new(vec![etcd.url.as_str()], None)
        .await
        .unwrap();
    let key = format!(
        "/ringleader/reclaim/idgen/{}/workers/4",
        ringleader_cluster::layout_name(&small_layout())
    );
    raw.delete(key).await.unwrap();
    // (`is_ok()` at once: the Ref that wait_for returns holds the channel's lock.)
    let reclaimed = tokio::time::timeout(
        Duration::from_secs(10),
        status.wait_for(|s| s.reclaims == 1),
    )
    .await
    .is_ok();
    assert!(reclaimed, "reclaimed after the delete");
    assert_eq!(ids.worker(), 4, "the same id, free again");
    let after = loop {
        match ids.next_id() {
            Ok(id) => break id,
            Err(ringleader_idgen::Error::ClockMovedBackwards { .. }) => {
                tokio::task::yield_now().await
            }
            Err(e) => panic!("{e}"),
        }
    };
    assert!(after > before, "IDs keep increasing across the reclaim");
    ids.release().await.unwrap();
}

/// Lease acquisition time (grant + claim txn + high-water txn), over 50 claims and
/// releases: `cargo test -p ringleader-cluster --test etcd -- --ignored --nocapture lease_acquisition`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement, not a test"]
async fn lease_acquisition_time() {
    common::logs();
    let Some(etcd) = common::etcd() else { return };
    let cluster = Cluster::connect(&etcd.config("measure", Duration::from_secs(10)))
        .await
        .unwrap();
    let mut times = Vec::new();
    for _ in 0..50 {
        let start = Instant::now();
        let ids = cluster
            .lease_generator(Layout::TWITTER, None)
            .await
            .unwrap();
        times.push(start.elapsed());
        ids.release().await.unwrap();
    }
    times.sort_unstable();
    println!(
        "lease acquisition over {} claims: median {:?}, p90 {:?}, max {:?}",
        times.len(),
        times[times.len() / 2],
        times[times.len() * 9 / 10],
        times[times.len() - 1]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verdicts_are_published_under_a_lease_watched_and_withdrawn() {
    use ringleader_cluster::{live_proxies, objective, OwnVerdicts, Quorum};
    common::logs();
    let Some(etcd) = common::etcd() else { return };
    let config = etcd.config("verdicts", Duration::from_secs(5));
    let cluster = Cluster::connect(&config).await.unwrap();
    let mut watch = cluster.watch_verdicts().await.unwrap();
    assert!(watch.verdicts().upstreams.is_empty());
    let (p1, p2) = (
        cluster.publish_verdicts().await.unwrap(),
        cluster.publish_verdicts().await.unwrap(),
    );
    assert_ne!(p1.proxy_id(), p2.proxy_id(), "one id per lease");
    let mine = |rows: &[(&str, bool)]| -> OwnVerdicts {
        rows.iter()
            .map(|(b, d)| (("app".to_string(), b.to_string()), *d))
            .collect()
    };
    p1.publish(mine(&[("b1", true), ("b2", false)]));
    p2.publish(mine(&[("b1", true), ("b2", false)]));
    let down_now = |watch: &ringleader_cluster::VerdictWatch| {
        let v = watch.verdicts();
        let up = v.upstreams.get("app").cloned().unwrap_or_default();
        let o = objective(&up, &live_proxies(&up), Quorum::Majority);
        (o.live.len(), o.down.into_iter().collect::<Vec<_>>())
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while down_now(&watch) != (2, vec!["b1".to_string()]) {
        assert!(Instant::now() < deadline, "got {:?}", down_now(&watch));
        let _ = tokio::time::timeout(Duration::from_secs(1), watch.changed()).await;
    }
    // p2 changes its mind: b1 is down for p1 only, not a majority of two.
    p2.publish(mine(&[("b1", false), ("b2", false)]));
    while down_now(&watch) != (2, vec![]) {
        assert!(Instant::now() < deadline, "got {:?}", down_now(&watch));
        let _ = tokio::time::timeout(Duration::from_secs(1), watch.changed()).await;
    }
    // p2 withdraws (its lease revoked): p1 alone is live and decides.
    p2.withdraw().await.unwrap();
    while down_now(&watch) != (1, vec!["b1".to_string()]) {
        assert!(Instant::now() < deadline, "got {:?}", down_now(&watch));
        let _ = tokio::time::timeout(Duration::from_secs(1), watch.changed()).await;
    }
    // A backend p1 stops checking is deleted.
    p1.publish(mine(&[("b2", false)]));
    while down_now(&watch) != (1, vec![]) {
        assert!(Instant::now() < deadline, "got {:?}", down_now(&watch));
        let _ = tokio::time::timeout(Duration::from_secs(1), watch.changed()).await;
    }
    assert_eq!(watch.verdicts().upstreams["app"].len(), 1);
    assert!(watch.is_connected() && p1.is_connected());
    p1.withdraw().await.unwrap();
}
