//! `NginxHash` against a real nginx: `hash $arg_k consistent` over several server lists must pick the same server for every key.
//!
//! Needs `nginx` (`apt-get install -y nginx`; `NGINX_BIN` overrides the
//! path). Without it the test is skipped loudly, and fails under `CI=true`.
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ringleader_ring::{NginxHash, NginxPick};

fn nginx_binary() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("NGINX_BIN") {
        return Some(PathBuf::from(p)).filter(|p| p.exists());
    }
    let default = PathBuf::from("/usr/sbin/nginx");
    if default.exists() {
        return Some(default);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("nginx"))
            .find(|p| p.exists())
    })
}

fn skip_or_fail() {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!(
            "nginx not found and CI=true: install it (apt-get install -y nginx) or set NGINX_BIN"
        );
    }
    eprintln!(
        "\n*** SKIPPED compat_nginx: nginx not found. Install it with `apt-get install -y nginx` \
         (or set NGINX_BIN) to check NginxHash against real nginx. ***\n"
    );
}

/// Free loopback ports (bound to port 0, then released).
fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}

/// A running nginx, killed (by its pid) when dropped, pass or fail.
struct Nginx {
    child: Child,
    dir: tempfile::TempDir,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Nginx {
    fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }
}

/// One server line of the upstream.
struct Server {
    host: String,
    port: u16,
    weight: u32,
    down: bool,
}

impl Server {
    fn name(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

fn start_nginx(bin: &Path, front: u16, servers: &[Server]) -> Nginx {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let mut upstream = String::from("    upstream app {\n        hash $arg_k consistent;\n");
    let mut listens = String::new();
    for s in servers {
        upstream.push_str(&format!(
            "        server {} weight={}{};\n",
            s.name(),
            s.weight,
            if s.down { " down" } else { "" }
        ));
        listens.push_str(&format!("        listen {};\n", s.name()));
    }
    upstream.push_str("        keepalive 8;\n    }\n");
    let conf = format!(
        "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\n\
         error_log {d}/error.log warn;\n\
         events {{ worker_connections 256; }}\n\
         http {{\n    access_log off;\n\
         client_body_temp_path {d}/body;\n    proxy_temp_path {d}/proxy;\n\
         fastcgi_temp_path {d}/fastcgi;\n    uwsgi_temp_path {d}/uwsgi;\n    scgi_temp_path {d}/scgi;\n\
         {upstream}\
         server {{\n        listen 127.0.0.1:{front};\n        keepalive_requests 100000;\n\
                 location / {{\n            proxy_pass http://app;\n            proxy_http_version 1.1;\n\
                 proxy_set_header Connection \"\";\n        }}\n    }}\n\
         server {{\n{listens}        keepalive_requests 100000;\n        return 200 \"$server_addr:$server_port\";\n    }}\n\
         }}\n"
    );
    let conf_path = dir.path().join("nginx.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let child = Command::new(bin)
        .arg("-p")
        .arg(dir.path())
        .arg("-e")
        .arg(dir.path().join("error.log"))
        .arg("-c")
        .arg(&conf_path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start nginx");
    let mut nginx = Nginx { child, dir };
    // Wait until the front and every backend port accept connections.
    let deadline = Instant::now() + Duration::from_secs(10);
    let addrs: Vec<String> = std::iter::once(format!("127.0.0.1:{front}"))
        .chain(servers.iter().map(Server::name))
        .collect();
    for port in addrs {
        loop {
            if TcpStream::connect(port.as_str()).is_ok() {
                break;
            }
            if let Ok(Some(status)) = nginx.child.try_wait() {
                panic!("nginx exited ({status}): {}", nginx.error_log());
            }
            assert!(
                Instant::now() < deadline,
                "nginx did not listen on {port}: {}",
                nginx.error_log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    nginx
}

/// Send `GET /?k=<key>` for every key over one keep-alive connection
/// (pipelined in batches) and return the backend (`addr:port`) each answer names.
fn ask(front: u16, keys: &[String]) -> Vec<String> {
    let stream = TcpStream::connect(("127.0.0.1", front)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    let mut out = Vec::with_capacity(keys.len());
    for batch in keys.chunks(64) {
        let mut req = String::new();
        for k in batch {
            req.push_str(&format!("GET /?k={k} HTTP/1.1\r\nHost: test\r\n\r\n"));
        }
        writer.write_all(req.as_bytes()).unwrap();
        for k in batch {
            let mut status = String::new();
            reader.read_line(&mut status).unwrap();
            assert!(status.starts_with("HTTP/1.1 200"), "key {k}: {status:?}");
            let mut len = None;
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                let line = line.trim_end();
                if line.is_empty() {
                    break;
                }
                if let Some((name, value)) = line.split_once(':') {
                    if name.eq_ignore_ascii_case("content-length") {
                        len = Some(value.trim().parse::<usize>().unwrap());
                    }
                }
            }
            let mut body = vec![0; len.expect("content-length")];
            reader.read_exact(&mut body).unwrap();
            out.push(String::from_utf8(body).unwrap());
        }
    }
    out
}

/// 10,000 keys of several shapes; nginx hashes `$arg_k` raw (not
/// percent-decoded), so encoded bytes are part of the key.
fn keys() -> Vec<String> {
    (0..10_000)
        .map(|i| match i % 5 {
            0 => format!("user-{i}"),
            1 => format!("{i}"),
            2 => format!("session%3A{i:08x}"),
            3 => format!("a+b.{i}_X~"),
            _ => format!("k{}", i * 7919),
        })
        .collect()
}

fn check(bin: &Path, weights: &[u32], down: &[usize]) {
    let ports = free_ports(weights.len() + 1);
    let front = ports[0];
    let servers: Vec<Server> = weights
        .iter()
        .zip(&ports[1..])
        .enumerate()
        .map(|(i, (&weight, &port))| Server {
            host: "127.0.0.1".into(),
            port,
            weight,
            down: down.contains(&i),
        })
        .collect();
    let nginx = start_nginx(bin, front, &servers);
    let keys = keys();
    let answers = ask(front, &keys);
    drop(nginx);

    let placement = NginxHash::new(servers.iter().map(|s| (s.name(), s.weight)).collect()).unwrap();
    let down_names: Vec<String> = servers
        .iter()
        .filter(|s| s.down)
        .map(Server::name)
        .collect();
    let mut agree = 0;
    let mut first_mismatch = None;
    for (k, got) in keys.iter().zip(&answers) {
        let expect = match placement.pick(k.as_bytes(), |n| !down_names.contains(n)) {
            NginxPick::Hashed(n) => n.clone(),
            NginxPick::RoundRobin => panic!("key {k}: no usable server within 21 points"),
        };
        if expect == *got {
            agree += 1;
        } else if first_mismatch.is_none() {
            first_mismatch = Some((k.clone(), expect, got.clone()));
        }
    }
    assert_eq!(
        agree,
        keys.len(),
        "weights {weights:?}, down {down:?}: {agree}/{} keys agree; first mismatch {first_mismatch:?}",
        keys.len()
    );
    // Every server that is up got keys (the test is not vacuous).
    for s in servers.iter().filter(|s| !s.down) {
        assert!(
            answers.contains(&s.name()),
            "server {} got no keys",
            s.name()
        );
    }
}

#[test]
fn nginx_hash_consistent_picks_the_same_servers() {
    let Some(bin) = nginx_binary() else {
        skip_or_fail();
        return;
    };
    check(&bin, &[1, 1, 1], &[]);
    check(&bin, &[1, 2, 3, 1, 5], &[]);
    check(&bin, &[1, 1, 2, 2, 3, 1, 1, 4, 1, 2], &[]);
    // Down servers keep their points; nginx walks on to the next points.
    check(&bin, &[1, 2, 3, 1, 5], &[2]);
    check(&bin, &[1, 1, 2, 2, 3, 1, 1, 4, 1, 2], &[0, 7]);
}

/// The 160 points of one server, re-derived here from nginx's rule
/// (CRC32 of host, NUL, port, then the previous point's little-endian bytes).
fn points_of(host: &str, port: u16) -> Vec<u32> {
    let mut base = crc32fast::Hasher::new();
    base.update(host.as_bytes());
    base.update(&[0]);
    base.update(port.to_string().as_bytes());
    let mut prev = 0u32;
    (0..160)
        .map(|_| {
            let mut h = base.clone();
            h.update(&prev.to_le_bytes());
            prev = h.finalize();
            prev
        })
        .collect()
}

/// Two servers with one equal point: nginx keeps one of them (its qsort, then
/// "keep the first of equal hashes"); ringleader keeps the one listed first.
/// The pair is found at run time (a birthday search over loopback hosts
/// 127.0.y.z on one free port: about 600 hosts until two share a point).
#[test]
fn nginx_and_ringleader_resolve_an_equal_point_the_same_way() {
    let Some(bin) = nginx_binary() else {
        skip_or_fail();
        return;
    };
    let ports = free_ports(2);
    let (front, port) = (ports[0], ports[1]);
    let mut owner_of: std::collections::HashMap<u32, String> = std::collections::HashMap::new();
    let mut found = None;
    'search: for y in 0..=255u32 {
        for z in 1..=254u32 {
            let host = format!("127.0.{y}.{z}");
            for p in points_of(&host, port) {
                match owner_of.get(&p) {
                    Some(other) if *other != host => {
                        found = Some((other.clone(), host, p));
                        break 'search;
                    }
                    _ => {
                        owner_of.insert(p, host.clone());
                    }
                }
            }
        }
    }
    let (host_a, host_b, shared) = found.expect("two loopback hosts sharing a point");
    let points: Vec<u32> = {
        let mut all = points_of(&host_a, port);
        all.extend(points_of(&host_b, port));
        all.sort_unstable();
        all.dedup();
        all
    };
    // Keys whose CRC32 falls in (previous point, shared point]: the shared point's.
    let at = points.binary_search(&shared).unwrap();
    let owned = |h: u32| {
        if at == 0 {
            h <= shared || h > *points.last().unwrap()
        } else {
            h > points[at - 1] && h <= shared
        }
    };
    let mut keys: Vec<String> = (0u64..)
        .map(|i| format!("tie-{i}"))
        .filter(|k| owned(ringleader_ring::nginx_crc32(k.as_bytes())))
        .take(8)
        .collect();
    keys.extend((0..500).map(|i| format!("user-{i}")));
    let server = |host: &str| Server {
        host: host.to_string(),
        port,
        weight: 1,
        down: false,
    };
    for servers in [
        vec![server(&host_a), server(&host_b)],
        vec![server(&host_b), server(&host_a)],
    ] {
        let nginx = start_nginx(&bin, front, &servers);
        let answers = ask(front, &keys);
        drop(nginx);
        let placement =
            NginxHash::new(servers.iter().map(|s| (s.name(), s.weight)).collect()).unwrap();
        for (k, got) in keys.iter().zip(&answers) {
            assert_eq!(
                Some(got),
                placement.get(k.as_bytes()),
                "key {k} (point {shared:#x} shared by {host_a} and {host_b} on port {port}), order {:?}",
                servers.iter().map(Server::name).collect::<Vec<_>>()
            );
        }
        // The keys of the shared point all went to the server listed first.
        assert!(answers[..8].iter().all(|a| *a == servers[0].name()));
    }
}

/// nginx walks at most 20 points past a key's own before giving up to round
/// robin: with a heavy `down` server, keys whose first usable point is within
/// 21 points get it, and the others get round robin, not the first usable
/// point further on. nginx's round robin here is its smooth weighted round
/// robin over the two up servers of weight 1, which alternates first, second,
/// first... over the requests that fall back to it (a hashed pick leaves its
/// weights as they were), so every answer is predicted exactly.
#[test]
fn nginx_walks_twenty_points_then_round_robin() {
    let Some(bin) = nginx_binary() else {
        skip_or_fail();
        return;
    };
    let ports = free_ports(4);
    let front = ports[0];
    let servers: Vec<Server> = [
        (ports[1], 1, false),
        (ports[2], 40, true),
        (ports[3], 1, false),
    ]
    .into_iter()
    .map(|(port, weight, down)| Server {
        host: "127.0.0.1".into(),
        port,
        weight,
        down,
    })
    .collect();
    let down = servers[1].name();
    let (up_a, up_c) = (servers[0].name(), servers[2].name());
    let keys: Vec<String> = (0..3000).map(|i| format!("walk-{i}")).collect();
    let nginx = start_nginx(&bin, front, &servers);
    let answers = ask(front, &keys);
    drop(nginx);
    let h = NginxHash::new(servers.iter().map(|s| (s.name(), s.weight)).collect()).unwrap();
    let (mut far_hashed, mut rr, mut rr_as_if_walked) = (0, 0, 0);
    for (k, got) in keys.iter().zip(&answers) {
        match h.pick(k.as_bytes(), |n| *n != down) {
            NginxPick::Hashed(n) => {
                assert_eq!(got, n, "key {k}");
                let at = h.tries(k.as_bytes()).position(|t| *t != down).unwrap();
                if at >= 10 {
                    far_hashed += 1;
                }
            }
            NginxPick::RoundRobin => {
                let expect = if rr % 2 == 0 { &up_a } else { &up_c };
                assert_eq!(got, expect, "key {k}: round robin turn {rr}");
                rr += 1;
                // Where an unbounded walk would have gone.
                let walked = h.candidates(k.as_bytes()).find(|n| **n != down).unwrap();
                if got == walked {
                    rr_as_if_walked += 1;
                }
            }
        }
    }
    assert!(
        far_hashed > 50,
        "{far_hashed} keys found a server 10-20 points on"
    );
    assert!(rr > 200, "{rr} keys fell back to round robin");
    assert!(
        rr_as_if_walked < rr * 9 / 10,
        "{rr_as_if_walked} of {rr} round-robin keys went where a longer walk would"
    );
}
