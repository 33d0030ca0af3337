//! Active health checks: HTTP GET on a fresh connection per check, interval + jitter, timeout, rise/fall in the balancer.
use crate::config::HealthConfig;
use crate::http1::{self, BoxError, Conn, ReqBody};
use crate::upstream::Upstream;
use bytes::Bytes;
use http::header::{CONNECTION, HOST, USER_AGENT};
use http::{HeaderMap, HeaderValue, Method, Uri};
use http_body_util::{BodyExt, Empty};
use rand::{Rng, SeedableRng};
use ringleader_balancer::Balancer;
use std::sync::Arc;
use std::time::Duration;
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
        let outcome = tokio::time::timeout(h.timeout, check_once(&id, &h.path)).await;
        match &outcome {
            Ok(Ok(true)) => {}
            Ok(Ok(false)) => {
                tracing::debug!(upstream = %upstream, backend = %id, "active check failed: status not 2xx or 3xx");
            }
            Ok(Err(e)) => {
                tracing::debug!(upstream = %upstream, backend = %id, error = %e, "active check failed");
            }
            Err(_) => {
                tracing::debug!(upstream = %upstream, backend = %id, "active check timed out")
            }
        }
        let ok = matches!(outcome, Ok(Ok(true)));
        // The balancer logs up/down transitions.
        lb.report_check(&id, ok);
        tokio::time::sleep(h.interval + jitter(&mut rng, h.interval)).await;
    }
}

/// One check: connect, `GET path HTTP/1.1` with `Connection: close`, through the
/// proxy's own HTTP/1.1 client (the same head encoder and parser as proxied
/// requests). 2xx and 3xx pass; an answer that is not valid HTTP is an error.
pub(crate) async fn check_once(addr: &str, path: &str) -> Result<bool, BoxError> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let uri: Uri = path.parse()?;
    let mut headers = HeaderMap::with_capacity(3);
    headers.insert(HOST, HeaderValue::from_str(addr)?);
    headers.insert(USER_AGENT, HeaderValue::from_static("ringleader-health"));
    headers.insert(CONNECTION, HeaderValue::from_static("close"));
    let body = ReqBody::<Empty<Bytes>>::Empty;
    let resp = http1::exchange(Conn::new(stream), &Method::GET, &uri, &headers, body).await?;
    let pass = (200..400).contains(&resp.status().as_u16());
    // Read the rest (bounded) so closing does not reset the backend's socket.
    let drain = async {
        let mut body = resp.into_body();
        let mut left = 64 * 1024usize;
        while left > 0 {
            match body.frame().await {
                Some(Ok(f)) => left = left.saturating_sub(f.data_ref().map_or(0, Bytes::len)),
                _ => break,
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_millis(50), drain).await;
    Ok(pass)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A backend on 127.0.0.1:0 that answers one connection with `answer`, and
    /// hands back the request head it read.
    async fn backend(answer: &'static str) -> (String, tokio::task::JoinHandle<String>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let task = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut head = Vec::new();
            let mut buf = [0u8; 1024];
            while !head.ends_with(b"\r\n\r\n") {
                let n = s.read(&mut buf).await.unwrap();
                assert!(n > 0, "request head incomplete");
                head.extend_from_slice(&buf[..n]);
            }
            s.write_all(answer.as_bytes()).await.unwrap();
            String::from_utf8(head).unwrap()
        });
        (addr, task)
    }

    #[tokio::test]
    async fn checks_pass_on_2xx_and_3xx_and_fail_otherwise() {
        for (answer, pass) in [
            ("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", Some(true)),
            ("HTTP/1.0 302 Found\r\nLocation: /x\r\n\r\n", Some(true)),
            ("HTTP/1.1 204 No Content\r\n\r\n", Some(true)),
            (
                "HTTP/1.1 503 Unavailable\r\nContent-Length: 0\r\n\r\n",
                Some(false),
            ),
            (
                "HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
                Some(false),
            ),
            ("HTTP/2 200\r\n\r\n", None),
            ("HTTP/1.1 2x0 OK\r\n\r\n", None),
            ("SMTP ready\r\n\r\n", None),
        ] {
            let (addr, task) = backend(answer).await;
            let got = check_once(&addr, "/healthz?deep=1").await;
            assert_eq!(got.ok(), pass, "{answer:?}");
            let head = task.await.unwrap();
            assert!(
                head.starts_with("GET /healthz?deep=1 HTTP/1.1\r\n"),
                "{head:?}"
            );
            assert!(head.contains("connection: close\r\n"), "{head:?}");
            assert!(head.contains(&format!("host: {addr}\r\n")), "{head:?}");
        }
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
