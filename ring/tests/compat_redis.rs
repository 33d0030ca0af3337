//! `redis_slot` against a real `redis-server`: `CLUSTER KEYSLOT` must agree for 10,000 keys, hash tags included.
//!
//! Needs `redis-server` (`apt-get install -y redis-server`; `REDIS_SERVER_BIN`
//! overrides the path). Without it the test is skipped loudly, and fails
//! under `CI=true`.
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ringleader_ring::{crc16_xmodem, redis_slot};

fn redis_binary() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("REDIS_SERVER_BIN") {
        return Some(PathBuf::from(p)).filter(|p| p.exists());
    }
    ["/usr/bin/redis-server", "/usr/local/bin/redis-server"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .or_else(|| {
            std::env::var_os("PATH").and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|d| d.join("redis-server"))
                    .find(|p| p.exists())
            })
        })
}

/// A running redis-server, killed (by its pid) when dropped, pass or fail.
struct Redis {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_redis(bin: &PathBuf) -> (Redis, u16) {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let dir = tempfile::tempdir().unwrap();
    let child = Command::new(bin)
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--cluster-enabled", "yes", "--cluster-config-file"])
        .arg(dir.path().join("nodes.conf"))
        .args(["--save", "", "--appendonly", "no", "--dir"])
        .arg(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start redis-server");
    let mut redis = Redis { child, _dir: dir };
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = redis.child.try_wait() {
            panic!("redis-server exited ({status})");
        }
        assert!(
            Instant::now() < deadline,
            "redis-server did not listen on {port}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    (redis, port)
}

/// `CLUSTER KEYSLOT` for every key, pipelined in batches over one connection.
fn keyslots(port: u16, keys: &[Vec<u8>]) -> Vec<u16> {
    let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    let mut out = Vec::with_capacity(keys.len());
    for batch in keys.chunks(256) {
        let mut req = Vec::new();
        for k in batch {
            req.extend_from_slice(b"*3\r\n$7\r\nCLUSTER\r\n$7\r\nKEYSLOT\r\n");
            req.extend_from_slice(format!("${}\r\n", k.len()).as_bytes());
            req.extend_from_slice(k);
            req.extend_from_slice(b"\r\n");
        }
        writer.write_all(&req).unwrap();
        for k in batch {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let n = line
                .strip_prefix(':')
                .unwrap_or_else(|| panic!("key {k:?}: reply {line:?}"));
            out.push(n.trim_end().parse().unwrap());
        }
    }
    out
}

/// 10,000 keys: plain, hash-tagged in every shape the spec discusses, and
/// arbitrary bytes (SplitMix64-derived, so the set is fixed).
fn keys() -> Vec<Vec<u8>> {
    let fixed: [&[u8]; 14] = [
        b"{user1}.a",
        b"{user1}.b",
        b"a{}b",
        b"{}{x}",
        b"a{b{c}d}",
        b"foo{}{bar}",
        b"foo{{bar}}zap",
        b"foo{bar}{zap}",
        b"{",
        b"}",
        b"{}",
        b"no}tag{",
        b"",
        b"123456789",
    ];
    let mut keys: Vec<Vec<u8>> = fixed.iter().map(|k| k.to_vec()).collect();
    let mut state = 0x5eed_u64;
    let mut next = || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let mut i = 0u64;
    while keys.len() < 10_000 {
        let r = next();
        let key = match i % 6 {
            0 => format!("user:{r}").into_bytes(),
            1 => format!("{{user{}}}.field{}", r % 1000, i).into_bytes(),
            2 => format!("a{{b{{{}}}c}}", r % 97).into_bytes(),
            3 => format!("x{{}}{{{}}}", r % 50).into_bytes(),
            4 => (0..(r % 24))
                .map(|j| (r >> (j % 8 * 8)) as u8 ^ j as u8)
                .collect(),
            _ => format!("{{{}}}", r % 13).into_bytes(),
        };
        keys.push(key);
        i += 1;
    }
    keys
}

#[test]
fn crc16_is_the_spec_check_value() {
    assert_eq!(crc16_xmodem(b"123456789"), 0x31C3);
}

#[test]
fn redis_slot_matches_cluster_keyslot() {
    let Some(bin) = redis_binary() else {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("redis-server not found and CI=true: apt-get install -y redis-server");
        }
        eprintln!(
            "\n*** SKIPPED compat_redis: redis-server not found. Install it with \
             `apt-get install -y redis-server` (or set REDIS_SERVER_BIN). ***\n"
        );
        return;
    };
    let (redis, port) = start_redis(&bin);
    let keys = keys();
    let slots = keyslots(port, &keys);
    drop(redis);
    let mismatches: Vec<(String, u16, u16)> = keys
        .iter()
        .zip(&slots)
        .filter(|(k, &s)| redis_slot(k) != s)
        .map(|(k, &s)| (String::from_utf8_lossy(k).into_owned(), redis_slot(k), s))
        .collect();
    assert!(
        mismatches.is_empty(),
        "{} of {} keys differ, first: {:?}",
        mismatches.len(),
        keys.len(),
        &mismatches[..mismatches.len().min(5)]
    );
}
