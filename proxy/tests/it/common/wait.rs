//! Waiting on events with a deadline (never a fixed sleep), and client load that runs until stopped.
use super::http::{client, get};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

/// Poll `cond` every 10 ms until it is true; panic with `what` after `limit`.
pub async fn wait_until<F, Fut>(limit: Duration, what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !cond().await {
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// `workers` clients sending GETs of `/` back to back until stopped.
pub struct Load {
    done: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Load {
    /// Start the clients against `addr`.
    pub fn start(addr: SocketAddr, workers: usize) -> Load {
        let done = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = (0..workers)
            .map(|_| {
                let (done, failed, stop) = (done.clone(), failed.clone(), stop.clone());
                tokio::spawn(async move {
                    let c = client();
                    while !stop.load(Relaxed) {
                        if get(&c, addr, "/").await.status != 200 {
                            failed.fetch_add(1, Relaxed);
                        }
                        done.fetch_add(1, Relaxed);
                    }
                })
            })
            .collect();
        Load {
            done,
            failed,
            stop,
            tasks,
        }
    }

    /// Requests done so far.
    pub fn done(&self) -> u64 {
        self.done.load(Relaxed)
    }

    /// Wait until `n` more requests are done (10 s at most; `what` names the wait).
    pub async fn more(&self, n: u64, what: &str) {
        let target = self.done() + n;
        let done = self.done.clone();
        wait_until(Duration::from_secs(10), what, || {
            let d = done.load(Relaxed);
            async move { d >= target }
        })
        .await;
    }

    /// Stop the clients; (requests, failed).
    pub async fn finish(self) -> (u64, u64) {
        self.stop.store(true, Relaxed);
        for t in self.tasks {
            t.await.unwrap();
        }
        (self.done.load(Relaxed), self.failed.load(Relaxed))
    }
}

/// Wait until connections to `addr` are refused (5 s at most): a killed backend's listener is gone.
pub async fn until_refused(addr: SocketAddr) {
    wait_until(
        Duration::from_secs(5),
        "backend refuses connections",
        || async move { tokio::net::TcpStream::connect(addr).await.is_err() },
    )
    .await;
}
