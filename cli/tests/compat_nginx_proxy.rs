//! `hash_compat = "nginx"` end to end: `ringleader serve` and a real nginx (`hash $arg_k consistent`) in front of the same backends send every key to the same backend.
//!
//! Needs `nginx` (`apt-get install -y nginx`; `NGINX_BIN` overrides the
//! path). Without it the test is skipped loudly, and fails under `CI=true`.
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_ringleader");

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

/// A child process killed (by its pid) and reaped when dropped, pass or fail.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}

/// Wait until every port accepts, or the child exits, or 15 s pass.
fn wait_listening(child: &mut Child, ports: &[u16], what: &str, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(15);
    for &port in ports {
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "{what} exited ({status}): {}",
                    std::fs::read_to_string(log).unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < deadline,
                "{what} did not listen on {port}: {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// `GET /?k=<key>` for every key over one keep-alive connection; the port each answer names.
fn ask(front: u16, keys: &[String]) -> Vec<u16> {
    let stream = TcpStream::connect(("127.0.0.1", front)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    keys.iter()
        .map(|k| {
            writer
                .write_all(format!("GET /?k={k} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes())
                .unwrap();
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
            String::from_utf8(body).unwrap().parse().unwrap()
        })
        .collect()
}

#[test]
fn ringleader_with_hash_compat_nginx_routes_keys_as_nginx_does() {
    let Some(nginx) = nginx_binary() else {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("nginx not found and CI=true: install it (apt-get install -y nginx) or set NGINX_BIN");
        }
        eprintln!(
            "\n*** SKIPPED compat_nginx_proxy: nginx not found. Install it with \
             `apt-get install -y nginx` (or set NGINX_BIN). ***\n"
        );
        return;
    };
    let weights = [1u32, 3, 1, 2, 1];
    let ports = free_ports(weights.len() + 3);
    let (nginx_front, listen, admin) = (ports[0], ports[1], ports[2]);
    let backends = &ports[3..];
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();

    // nginx: the hashing front and, in other server blocks, the backends.
    let mut upstream = String::new();
    let mut listens = String::new();
    let mut rl_backends = Vec::new();
    for (port, w) in backends.iter().zip(weights) {
        upstream.push_str(&format!("        server 127.0.0.1:{port} weight={w};\n"));
        listens.push_str(&format!("        listen 127.0.0.1:{port};\n"));
        rl_backends.push(format!("{{ addr = \"127.0.0.1:{port}\", weight = {w} }}"));
    }
    let conf = format!(
        "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\n\
         error_log {d}/error.log warn;\nevents {{ worker_connections 256; }}\n\
         http {{\n    access_log off;\n    client_body_temp_path {d}/body;\n    proxy_temp_path {d}/proxy;\n\
         fastcgi_temp_path {d}/fastcgi;\n    uwsgi_temp_path {d}/uwsgi;\n    scgi_temp_path {d}/scgi;\n\
         upstream app {{\n        hash $arg_k consistent;\n{upstream}    }}\n\
         server {{\n        listen 127.0.0.1:{nginx_front};\n        keepalive_requests 100000;\n        location / {{\n            proxy_pass http://app;\n\
                 proxy_http_version 1.1;\n            proxy_set_header Connection \"\";\n        }}\n    }}\n\
         server {{\n{listens}        keepalive_requests 100000;\n        return 200 \"$server_port\";\n    }}\n}}\n"
    );
    std::fs::write(dir.path().join("nginx.conf"), conf).unwrap();
    let nginx_log = dir.path().join("error.log");
    let mut nginx = KillOnDrop(
        Command::new(&nginx)
            .arg("-p")
            .arg(dir.path())
            .arg("-e")
            .arg(&nginx_log)
            .arg("-c")
            .arg(dir.path().join("nginx.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nginx"),
    );
    let mut all = vec![nginx_front];
    all.extend_from_slice(backends);
    wait_listening(&mut nginx.0, &all, "nginx", &nginx_log);

    // ringleader: the same backends, by the same addresses and weights.
    let cfg = format!(
        "[server]\nlisten = \"127.0.0.1:{listen}\"\nadmin = \"127.0.0.1:{admin}\"\nworkers = 1\n\
         [upstream.app]\nstrategy = \"consistent_hash\"\nhash_key = \"query:k\"\nhash_compat = \"nginx\"\n\
         backends = [{}]\n",
        rl_backends.join(", ")
    );
    let cfg_path = dir.path().join("ringleader.toml");
    std::fs::write(&cfg_path, cfg).unwrap();
    let rl_log = dir.path().join("ringleader.log");
    let mut ringleader = KillOnDrop(
        Command::new(BIN)
            .args(["--log", "warn", "serve", "-c"])
            .arg(&cfg_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&rl_log).unwrap())
            .spawn()
            .expect("start ringleader"),
    );
    wait_listening(&mut ringleader.0, &[listen], "ringleader", &rl_log);

    // Raw query values, as nginx's $arg_k hashes them (not percent-decoded).
    let keys: Vec<String> = (0..3000)
        .map(|i| match i % 3 {
            0 => format!("user-{i}"),
            1 => format!("s%3A{i:06x}"),
            _ => format!("{}", i * 7919),
        })
        .collect();
    let via_nginx = ask(nginx_front, &keys);
    let via_ringleader = ask(listen, &keys);
    drop(ringleader);
    drop(nginx);
    let agree = via_nginx
        .iter()
        .zip(&via_ringleader)
        .filter(|(a, b)| a == b)
        .count();
    let first = keys
        .iter()
        .zip(via_nginx.iter().zip(&via_ringleader))
        .find(|(_, (a, b))| a != b);
    assert_eq!(agree, keys.len(), "first difference: {first:?}");
    for port in backends {
        assert!(via_nginx.contains(port), "backend {port} got no keys");
    }
}
