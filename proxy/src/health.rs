//! Active health checks: HTTP GET on a fresh connection per check, interval + jitter, timeout, rise/fall in the balancer.
use crate::config::HealthConfig;
use crate::upstream::Upstream;
use rand::{Rng, SeedableRng};
use ringleader_balancer::Balancer;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

/// Spawn one check task per backend of `up` (none when it has no `[health]` table).
pub fn spawn_checks(up: &Upstream) -> Vec<JoinHandle<()>> {
    let Some(h) = up.config.health.clone() else {
        return Vec::new();
    };
    let h = Arc::new(h);
    up.authorities
        .iter()
        .map(|(id, _)| {
            let lb = up.lb.clone();
            let h = h.clone();
            let id = id.clone();
            let upstream = up.name.clone();
            tokio::spawn(check_loop(lb, h, id, upstream))
        })
        .collect()
}

/// Up to 10% of the interval, so checks of many backends do not align.
fn jitter(rng: &mut impl Rng, interval: Duration) -> Duration {
    let max = (interval.as_micros() / 10).min(u128::from(u64::MAX)) as u64;
    Duration::from_micros(if max == 0 {
        0
    } else {
        rng.random_range(0..=max)
    })
}

async fn check_loop(lb: Arc<Balancer>, h: Arc<HealthConfig>, id: String, upstream: String) {
    let mut rng = rand::rngs::SmallRng::from_rng(&mut rand::rng());
    // The first check comes soon (within the jitter) so a fresh proxy learns the state quickly.
    tokio::time::sleep(jitter(&mut rng, h.interval)).await;
    loop {
        let ok = matches!(
            tokio::time::timeout(h.timeout, check_once(&id, &h.path)).await,
            Ok(Ok(true))
        );
        if !ok {
            tracing::debug!(upstream = %upstream, backend = %id, "active check failed");
        }
        // The balancer logs up/down transitions.
        lb.report_check(&id, ok);
        tokio::time::sleep(h.interval + jitter(&mut rng, h.interval)).await;
    }
}

/// One check: connect, `GET path HTTP/1.1` with `Connection: close`, and
/// read the status line. 2xx and 3xx pass.
pub async fn check_once(addr: &str, path: &str) -> std::io::Result<bool> {
    let mut s = TcpStream::connect(addr).await?;
    s.set_nodelay(true)?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: ringleader-health\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await?;
    let mut buf = [0u8; 64];
    let mut n = 0;
    while n < 12 {
        let r = s.read(&mut buf[n..]).await?;
        if r == 0 {
            break;
        }
        n += r;
    }
    let pass = parse_status(&buf[..n]).is_some_and(|code| (200..400).contains(&code));
    // Read the rest (bounded) so closing does not reset the backend's socket.
    let drain = async {
        let mut left = 64 * 1024usize;
        while left > 0 {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(r) => left = left.saturating_sub(r),
            }
        }
    };
    let _ = tokio::time::timeout(std::time::Duration::from_millis(50), drain).await;
    Ok(pass)
}

/// Status code of an `HTTP/1.x NNN` status line.
fn parse_status(line: &[u8]) -> Option<u16> {
    let rest = line.strip_prefix(b"HTTP/1.")?;
    let code = rest.get(2..5)?;
    if rest.get(1) != Some(&b' ') || !code.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(code).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines() {
        assert_eq!(parse_status(b"HTTP/1.1 200 OK\r\n"), Some(200));
        assert_eq!(parse_status(b"HTTP/1.0 503 x"), Some(503));
        assert_eq!(parse_status(b"HTTP/2 200"), None);
        assert_eq!(parse_status(b"HTTP/1.1 2x0"), None);
        assert_eq!(parse_status(b"HTTP/1.1"), None);
    }

    #[test]
    fn jitter_is_bounded() {
        let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
        for _ in 0..1000 {
            assert!(jitter(&mut rng, Duration::from_secs(2)) <= Duration::from_millis(200));
        }
        assert_eq!(jitter(&mut rng, Duration::ZERO), Duration::ZERO);
    }
}
