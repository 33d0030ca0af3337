//! The admin status page in a real browser (headless Chromium driven over the
//! DevTools protocol), `/ring` against the proxy's own routing, and the /status
//! fields the page reads.
//!
//! The browser test needs Debian's `chromium` (`apt-get install chromium`; or
//! `CHROMIUM_BIN=/path`): without it, it is skipped with a message, except under
//! `CI=true` where it fails. `RINGLEADER_SCREENSHOT=path` also writes its
//! screenshot there (how `docs/img/status.png` is made).
use crate::common::*;
use ringleader_proxy::{Config, DemoBackend};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::task::block_in_place;
use tokio_tungstenite::tungstenite::{self, Message, WebSocket};

/// Named backends, consistent hashing on a header, active checks every 100 ms
/// (rise 2, fall 2).
fn hashed_three(b: &[DemoBackend]) -> Config {
    hashed(b, "")
}

/// [`hashed_three`] with `extra` in `[upstream.app]` (a `hash_compat`).
fn hashed(b: &[DemoBackend], extra: &str) -> Config {
    let entries: Vec<String> = b
        .iter()
        .map(|b| format!("{{ addr = \"{}\", name = \"{}\" }}", b.addr(), b.name()))
        .collect();
    config_of(
        "",
        &entries,
        &format!("strategy = \"consistent_hash\"\nhash_key = \"header:x-user-id\"\n{extra}"),
        "[upstream.app.health]\npath = \"/healthz\"\ninterval = \"100ms\"\ntimeout = \"500ms\"\nrise = 2\nfall = 2\n",
    )
}

async fn named_backends(names: &[(&str, u64)]) -> Vec<DemoBackend> {
    let mut v = Vec::new();
    for (name, ms) in names {
        v.push(
            DemoBackend::start(name, Duration::from_millis(*ms))
                .await
                .unwrap(),
        );
    }
    v
}

/// `s` percent-encoded for a query string (unreserved characters kept, RFC 3986 §2.3).
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// GET /ring for `key` in upstream `app`: status and JSON.
async fn ring(admin: SocketAddr, upstream: &str, key: &str) -> (u16, Value) {
    let path = format!("/ring?upstream={}&key={}", encode(upstream), encode(key));
    let a = get(&client(), admin, &path).await;
    assert_eq!(a.headers["x-content-type-options"], "nosniff");
    assert_eq!(a.headers["content-type"], "application/json");
    (a.status.as_u16(), serde_json::from_str(&a.body).unwrap())
}

/// Keys of every kind: plain, with characters a query string escapes, non-ASCII.
fn key(i: usize) -> String {
    match i % 4 {
        0 => format!("user-{i}"),
        1 => format!("u {i}&x=1+2%"),
        2 => format!("ключ-{i}"),
        _ => format!("{i}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ring_agrees_with_the_proxys_routing_for_1000_keys() {
    ring_agrees_with_routing("", 1000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ring_agrees_with_routing_on_nginx_and_ketama_placements() {
    ring_agrees_with_routing("hash_compat = \"nginx\"", 300).await;
    ring_agrees_with_routing("hash_compat = \"ketama\"", 300).await;
}

/// For `keys` keys, the backend a request with the key reaches is /ring's owner;
/// then with one backend down, for a fifth of them, the next in their order.
async fn ring_agrees_with_routing(extra: &str, keys: usize) {
    let b = named_backends(&[("alpha", 0), ("beta", 0), ("gamma", 0), ("delta", 0)]).await;
    let s = start(hashed(&b, extra)).await;
    let (proxy, admin) = (s.proxy_addr(), s.admin_addr());
    let name_of: HashMap<String, &str> =
        b.iter().map(|b| (b.addr().to_string(), b.name())).collect();
    let c = client();
    let mut owners = HashMap::new();
    let mut per_backend: HashMap<&str, usize> = HashMap::new();
    for i in 0..keys {
        let k = key(i);
        let routed = send(&c, proxy, "GET", "/", &[("x-user-id", &k)], "").await;
        assert_eq!(routed.status, 200);
        let (status, r) = ring(admin, "app", &k).await;
        assert_eq!(status, 200, "{r}");
        assert_eq!(r["key"], k.as_str());
        let owner = r["owner"].as_str().unwrap().to_string();
        assert_eq!(
            Some(name_of[&owner]),
            routed.backend.as_deref(),
            "key {k:?}: /ring says {r}"
        );
        let order: Vec<String> = r["order"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap().to_string())
            .collect();
        assert_eq!(order.len(), 4, "every backend is in the order: {r}");
        assert_eq!(order[0], owner);
        *per_backend.entry(name_of[&owner]).or_default() += 1;
        owners.insert(k, order);
    }
    // The keys spread over all four (each gets a fair share, give or take).
    assert_eq!(per_backend.len(), 4, "{per_backend:?}");
    assert!(
        per_backend.values().all(|&n| n > keys / 10),
        "{extra}: {per_backend:?}"
    );

    // One backend down: its keys go to the next in their failover order, and /ring
    // says so; the others stay.
    b[1].kill();
    let dead = b[1].addr().to_string();
    wait_until(Duration::from_secs(10), "beta down", || async {
        health_of(admin, b[1].addr()).await.as_deref() == Some("down")
    })
    .await;
    for i in 0..keys / 5 {
        let k = key(i);
        let before = &owners[&k];
        let expect: Vec<&String> = before.iter().filter(|a| **a != dead).collect();
        let (_, r) = ring(admin, "app", &k).await;
        assert_eq!(r["owner"], expect[0].as_str(), "key {k:?}: {r}");
        assert_eq!(r["order"].as_array().unwrap().len(), 3, "{r}");
        let routed = send(&c, proxy, "GET", "/", &[("x-user-id", &k)], "").await;
        assert_eq!(
            routed.backend.as_deref(),
            Some(name_of[expect[0]]),
            "key {k:?}"
        );
        // Where the key lives on the ring does not change: all four, health shown.
        let placement: Vec<&str> = r["placement"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["addr"].as_str().unwrap())
            .collect();
        assert_eq!(
            placement,
            before.iter().map(String::as_str).collect::<Vec<_>>()
        );
    }
}

#[tokio::test]
async fn ring_answers_400_for_a_missing_parameter_and_404_for_other_upstreams() {
    let b = backends(2).await;
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n\
         [[route]]\npath_prefix = \"/rr\"\nupstream = \"rr\"\n\
         [[route]]\nupstream = \"app\"\n\
         [upstream.app]\nstrategy = \"consistent_hash\"\nhash_key = \"client_ip\"\nbackends = [{{ addr = \"{}\" }}]\n\
         [upstream.rr]\nbackends = [{{ addr = \"{}\" }}]\n",
        b[0].addr(),
        b[1].addr()
    );
    let s = start(Config::from_toml_str(&text, "t.toml").unwrap()).await;
    let admin = s.admin_addr();
    for path in ["/ring", "/ring?upstream=app", "/ring?key=1.2.3.4"] {
        let a = get(&client(), admin, path).await;
        assert_eq!(a.status, 400, "{path}");
        let v: Value = serde_json::from_str(&a.body).unwrap();
        assert!(v["error"].as_str().unwrap().contains("missing"), "{v}");
    }
    let (status, v) = ring(admin, "nope", "k").await;
    assert_eq!((status, v["error"].is_string()), (404, true), "{v}");
    let (status, v) = ring(admin, "rr", "k").await;
    assert_eq!(status, 404, "{v}");
    assert!(
        v["error"].as_str().unwrap().contains("not consistent_hash"),
        "{v}"
    );
    // client_ip: the key is an address in text form.
    let (status, v) = ring(admin, "app", "not an address").await;
    assert_eq!(status, 400, "{v}");
    let (status, v) = ring(admin, "app", "127.0.0.1").await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["owner"], b[0].addr().to_string());
    assert_eq!(v["hash_key"], "client_ip");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_reports_last_checks_reloads_and_listeners() {
    let b = named_backends(&[("alpha", 0), ("beta", 0)]).await;
    let s = start(hashed_three(&b)).await;
    let admin = s.admin_addr();
    let st = status(admin).await;
    assert_eq!(st["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(st["last_reload"], Value::Null);
    // The bound addresses, not the configured port 0.
    assert_eq!(st["listeners"]["admin"], admin.to_string());
    assert_eq!(st["listeners"]["listen"], s.proxy_addr().to_string());
    let app = &st["upstreams"]["app"];
    assert_eq!(app["hash_key"], "header:x-user-id");
    assert_eq!(
        app["retry_budget"],
        json!({ "percent": 20, "reserve": 100, "tokens": 100.0 })
    );
    // The checks' results appear.
    wait_until(
        Duration::from_secs(10),
        "a passed check of beta",
        || async {
            let b = backend_status(admin, b[1].addr()).await.unwrap();
            b["last_check"]["result"] == "200 OK" && b["last_check"]["ok"] == true
        },
    )
    .await;
    let be = backend_status(admin, b[1].addr()).await.unwrap();
    assert!(be["last_check"]["duration_ms"].as_f64().unwrap() >= 0.0);
    assert!(be["last_check"]["ago_ms"].as_f64().unwrap() < 10_000.0);
    assert_eq!(be["ejection_left_ms"], Value::Null);
    b[1].set_healthy(false);
    wait_until(
        Duration::from_secs(10),
        "a failed check of beta",
        || async {
            let b = backend_status(admin, b[1].addr()).await.unwrap();
            b["last_check"]["result"] == "503 Service Unavailable" && b["last_check"]["ok"] == false
        },
    )
    .await;
    // Reloads: applied, then rejected.
    s.proxy().reload(hashed_three(&b)).unwrap();
    let r = &status(admin).await["last_reload"];
    assert_eq!(
        (r["ok"].clone(), r["error"].clone()),
        (json!(true), Value::Null)
    );
    let missing = Path::new("/nonexistent/ringleader.toml");
    assert!(s.proxy().reload_file(missing).is_err());
    let r = &status(admin).await["last_reload"];
    assert_eq!(r["ok"], false);
    assert!(
        r["error"]
            .as_str()
            .unwrap()
            .contains("/nonexistent/ringleader.toml"),
        "{r}"
    );
}

// ---- the browser ----

/// Where Chromium is: `CHROMIUM_BIN`, else `chromium` on `PATH`.
fn chromium_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("CHROMIUM_BIN") {
        return Some(PathBuf::from(p)).filter(|p| p.is_file());
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join("chromium"))
        .find(|p| p.is_file())
}

/// A headless Chromium with a profile of its own, killed (by pid) when dropped.
struct Chromium {
    child: Child,
    profile: tempfile::TempDir,
}

impl Chromium {
    /// Start it, or `None` (with a loud message) when it is not installed; under
    /// `CI=true` a missing Chromium fails the test.
    fn start() -> Option<Chromium> {
        let Some(bin) = chromium_binary() else {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "chromium not found (CI=true): apt-get install chromium, or set CHROMIUM_BIN"
            );
            eprintln!(
                "\n*** SKIPPED: the status page browser test needs Chromium: \
                 apt-get install chromium (or set CHROMIUM_BIN) ***\n"
            );
            return None;
        };
        let profile = tempfile::tempdir().unwrap();
        let child = Command::new(bin)
            .args([
                "--headless=new",
                "--remote-debugging-port=0",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-extensions",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--mute-audio",
                "--disable-breakpad",
                "--disable-crash-reporter",
                "--hide-scrollbars",
                "--window-size=1200,900",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // A process group of its own, so its helper processes go with it.
            .process_group(0)
            .spawn()
            .expect("start chromium");
        Some(Chromium { child, profile })
    }

    /// The browser's DevTools WebSocket URL, from `DevToolsActivePort` in its
    /// profile (port on the first line, path on the second) once it is written.
    async fn devtools_url(&mut self) -> String {
        let file = self.profile.path().join("DevToolsActivePort");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(text) = std::fs::read_to_string(&file) {
                let mut lines = text.lines();
                if let (Some(port), Some(path)) = (lines.next(), lines.next()) {
                    return format!("ws://127.0.0.1:{}{}", port.trim(), path.trim());
                }
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("chromium exited at start: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "chromium wrote no DevToolsActivePort in 60 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Chromium {
    /// Kill the browser by its pid, then what is left of its process group (the
    /// renderer and zygote helpers it started), by the group's id.
    fn drop(&mut self) {
        let pid = self.child.id();
        // After Browser.close it exits by itself; give it a moment.
        let deadline = Instant::now() + Duration::from_secs(5);
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{pid}")])
            .stderr(Stdio::null())
            .status();
    }
}

/// A DevTools protocol connection to one page (a flat session on the browser's
/// socket). Blocking: call it inside [`tokio::task::block_in_place`].
struct Page {
    ws: WebSocket<std::net::TcpStream>,
    session: Option<String>,
    next_id: u64,
}

impl Page {
    /// Open a new tab in the browser whose DevTools socket is `browser_url` and attach to it.
    fn open(browser_url: &str) -> Page {
        let authority = browser_url
            .trim_start_matches("ws://")
            .split('/')
            .next()
            .unwrap();
        let stream = std::net::TcpStream::connect(authority).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let (ws, _) = tungstenite::client(browser_url, stream).expect("DevTools handshake");
        let mut p = Page {
            ws,
            session: None,
            next_id: 0,
        };
        let target = p.call("Target.createTarget", json!({ "url": "about:blank" }));
        let attached = p.call(
            "Target.attachToTarget",
            json!({ "targetId": target["targetId"], "flatten": true }),
        );
        p.session = Some(attached["sessionId"].as_str().unwrap().to_string());
        p
    }

    /// Send one command and wait for its answer (events in between are skipped; the
    /// socket's read timeout bounds the wait).
    fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({ "id": id, "method": method, "params": params });
        if let Some(s) = &self.session {
            msg["sessionId"] = json!(s);
        }
        self.ws.send(Message::text(msg.to_string())).unwrap();
        loop {
            let m = self
                .ws
                .read()
                .unwrap_or_else(|e| panic!("{method}: DevTools socket: {e}"));
            let Ok(text) = m.to_text() else { continue };
            let Ok(v) = serde_json::from_str::<Value>(text) else {
                continue;
            };
            if v["id"] == id {
                assert!(v.get("error").is_none(), "{method}: {v}");
                return v["result"].clone();
            }
        }
    }

    /// Ask the browser to exit (it then ends its helper processes itself).
    fn close_browser(&mut self) {
        self.session = None;
        self.call("Browser.close", json!({}));
    }

    /// Evaluate `expr` in the page; its value (promises awaited).
    fn eval(&mut self, expr: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({ "expression": expr, "returnByValue": true, "awaitPromise": true }),
        );
        assert!(r.get("exceptionDetails").is_none(), "{expr}: {r}");
        r["result"]["value"].clone()
    }

    /// Evaluate `expr` until `want` accepts its value (polled, with a deadline).
    fn eval_until(
        &mut self,
        expr: &str,
        limit: Duration,
        what: &str,
        want: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + limit;
        loop {
            let v = self.eval(expr);
            if want(&v) {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "timed out after {limit:?} waiting for {what}: last {v}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Decode standard base64 (what `Page.captureScreenshot` returns).
fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {c}"),
    };
    let bytes: Vec<u8> = s
        .bytes()
        .filter(|&c| c != b'=' && !c.is_ascii_whitespace())
        .collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &c)| n | u32::from(val(c)) << (18 - 6 * i));
        out.extend_from_slice(&n.to_be_bytes()[1..chunk.len()]);
    }
    out
}

/// Every backend badge's text, by address.
const BADGES: &str = "Object.fromEntries([...document.querySelectorAll('tr.backend')]\
    .map(r => [r.dataset.addr, r.querySelector('.badge').textContent]))";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_shows_a_backend_going_down_live_in_a_real_browser() {
    let Some(mut chromium) = Chromium::start() else {
        return;
    };
    let b = named_backends(&[("api-1", 2), ("api-2", 5), ("api-3", 9)]).await;
    let s = start(hashed_three(&b)).await;
    let (proxy, admin) = (s.proxy_addr(), s.admin_addr());
    // Some traffic, paced: 100 requests a second, keyed and not, until the end.
    let traffic = tokio::spawn(async move {
        let c = client();
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        for i in 0u64.. {
            tick.tick().await;
            let user = format!("user-{}", i % 97);
            let _ = send(&c, proxy, "GET", "/", &[("x-user-id", &user)], "").await;
        }
    });

    let url = chromium.devtools_url().await;
    let addrs: Vec<String> = b.iter().map(|b| b.addr().to_string()).collect();
    // A key api-2 owns, and where it goes when api-2 is down (from /ring), for the key box.
    let mut user = 0;
    let (key, order) = loop {
        let key = format!("user-{user}");
        let r = ring(admin, "app", &key).await.1;
        if r["owner"] == addrs[1].as_str() {
            break (key, r["order"].clone());
        }
        user += 1;
    };
    let mut page = block_in_place(|| {
        let mut page = Page::open(&url);
        page.call(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": 1200, "height": 640, "deviceScaleFactor": 1, "mobile": false }),
        );
        page.call(
            "Page.navigate",
            json!({ "url": format!("http://{admin}/") }),
        );
        let all_up = |v: &Value| addrs.iter().all(|a| v[a] == "up");
        page.eval_until(BADGES, Duration::from_secs(20), "three backends up", all_up);
        assert_eq!(
            page.eval("document.getElementById('conn').textContent"),
            "live"
        );
        assert_eq!(
            page.eval("document.getElementById('version').textContent"),
            env!("CARGO_PKG_VERSION")
        );
        // The page's CSP keeps it on its own listener: a fetch of another origin (the
        // proxy's listener) is refused by the browser as a connect-src violation.
        let violated = page.eval(&format!(
            "new Promise(done => {{ \
               document.addEventListener('securitypolicyviolation', \
                 e => done(e.violatedDirective), {{ once: true }}); \
               fetch('http://{proxy}/').then(() => done('fetched'), () => {{}}); \
               setTimeout(() => done('no violation in 5 s'), 5000); }})"
        ));
        assert_eq!(violated, "connect-src");
        // A mark that a reload of the page would lose.
        page.eval("window.__ringleaderMark = 17");

        // The key box answers with the proxy's placement.
        page.eval(&format!(
            "(() => {{ const s = document.querySelector('section[data-upstream=\"app\"]'); \
             s.querySelector('input.key').value = '{key}'; \
             s.querySelector('.keybox button').click(); }})()"
        ));
        page.eval_until(
            "document.querySelector('.keybox .owner')?.textContent ?? null",
            Duration::from_secs(10),
            "the key box's owner",
            |v| *v == order[0],
        );
        let shown = page.eval("[...document.querySelectorAll('.keybox ol.order li')].length");
        assert_eq!(shown, 3);
        page
    });

    // api-2 dies: its badge turns down (or ejected) without a reload of the page.
    b[1].kill();
    block_in_place(|| {
        let dead = &addrs[1];
        let gone = |v: &Value| v[dead] == "down" || v[dead] == "ejected";
        let badges = page.eval_until(BADGES, Duration::from_secs(10), "api-2's badge down", gone);
        assert_eq!(
            (&badges[&addrs[0]], &badges[&addrs[2]]),
            (&json!("up"), &json!("up"))
        );
        assert_eq!(
            page.eval("window.__ringleaderMark"),
            17,
            "the page was not reloaded"
        );
        page.eval_until(
            "document.querySelector('section[data-upstream=\"app\"] .head').textContent",
            Duration::from_secs(5),
            "2/3 available",
            |v| v.as_str().is_some_and(|t| t.contains("2/3 available")),
        );
        // The key box follows: the key fails over to the next in its order.
        page.eval_until(
            "document.querySelector('.keybox .owner').parentNode.textContent",
            Duration::from_secs(5),
            "the key box's new owner",
            |v| {
                v.as_str().is_some_and(|t| {
                    t.contains(order[1].as_str().unwrap()) && t.contains("api-2, is down")
                })
            },
        );
        // Names from the config are text in the page.
        let names = page.eval(
            "[...document.querySelectorAll('tr.backend td:first-child div:first-child')]\
             .map(d => d.textContent)",
        );
        assert_eq!(names, json!(["api-1", "api-2", "api-3"]));

        // Let the sparklines fill for the picture when one is asked for.
        if std::env::var_os("RINGLEADER_SCREENSHOT").is_some() {
            let start = Instant::now();
            page.eval_until("1", Duration::from_secs(60), "40 more polls", |_| {
                start.elapsed() > Duration::from_secs(40)
            });
        }
        let shot = page.call(
            "Page.captureScreenshot",
            json!({ "format": "png", "captureBeyondViewport": true }),
        );
        let png = base64_decode(shot["data"].as_str().unwrap());
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        let tmp =
            std::env::temp_dir().join(format!("ringleader-status-{}.png", std::process::id()));
        std::fs::write(&tmp, &png).unwrap();
        eprintln!("status page screenshot: {}", tmp.display());
        if let Some(path) = std::env::var_os("RINGLEADER_SCREENSHOT") {
            std::fs::write(&path, &png).unwrap();
            eprintln!(
                "status page screenshot written to {}",
                Path::new(&path).display()
            );
        }
    });

    // A reload shows in the header, and so does a setting it changed that waits for
    // a restart.
    let mut cfg = hashed_three(&b);
    cfg.server.listen = "127.0.0.1:1".parse().unwrap();
    s.proxy().reload(cfg).unwrap();
    block_in_place(|| {
        page.eval_until(
            "[document.getElementById('reload').textContent, \
              document.getElementById('restart').textContent]",
            Duration::from_secs(5),
            "the reload in the header",
            |v| {
                v[0].as_str().is_some_and(|t| t.starts_with("ok at "))
                    && v[1] == "restart required: server.listen"
            },
        );
        page.close_browser();
    });
    traffic.abort();
    drop(page);
    drop(chromium);
}

/// How many key boxes the page shows, and the sparkline histories it keeps (null
/// until the page's script has run).
const KEYBOXES: &str = "typeof ewmaHistory === 'undefined' ? null \
    : [document.querySelectorAll('.keybox').length, ewmaHistory.size]";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_switching_to_or_from_consistent_hash_adds_or_drops_the_key_box_live() {
    let Some(mut chromium) = Chromium::start() else {
        return;
    };
    let b = named_backends(&[("api-1", 0), ("api-2", 0), ("api-3", 0)]).await;
    let s = start(hashed_three(&b)).await;
    let admin = s.admin_addr();
    let url = chromium.devtools_url().await;
    let entries = |b: &[DemoBackend]| -> Vec<String> {
        b.iter()
            .map(|b| format!("{{ addr = \"{}\", name = \"{}\" }}", b.addr(), b.name()))
            .collect()
    };
    let mut page = block_in_place(|| {
        let mut page = Page::open(&url);
        page.call(
            "Page.navigate",
            json!({ "url": format!("http://{admin}/") }),
        );
        page.eval_until(KEYBOXES, Duration::from_secs(20), "one key box", |v| {
            *v == json!([1, 3])
        });
        page.eval("performance.setResourceTimingBufferSize(100000); window.__ringleaderMark = 17");
        // A lookup, so the box keeps its answer current on every poll.
        page.eval(
            "(() => { const s = document.querySelector('section[data-upstream=\"app\"]'); \
             s.querySelector('input.key').value = 'user-1'; \
             s.querySelector('.keybox button').click(); })()",
        );
        page.eval_until(
            "document.querySelector('.keybox .owner')?.textContent ?? null",
            Duration::from_secs(10),
            "the key box's owner",
            |v| v.is_string(),
        );
        page
    });

    // Round robin over two of the three: the box goes, and so does api-3's history.
    s.proxy()
        .reload(config_of("", &entries(&b[..2]), "", ""))
        .unwrap();
    block_in_place(|| {
        page.eval_until(KEYBOXES, Duration::from_secs(10), "no key box", |v| {
            *v == json!([0, 2])
        });
        // No more /ring lookups (they would get 404) while /status polls go on.
        const COUNTS: &str =
            "['/ring', '/status'].map(p => performance.getEntriesByType('resource')\
             .filter(e => new URL(e.name).pathname === p).length)";
        let before = page.eval(COUNTS);
        page.eval_until(COUNTS, Duration::from_secs(10), "three more polls", |v| {
            v[1].as_u64().unwrap() >= before[1].as_u64().unwrap() + 3
        });
        assert_eq!(
            page.eval(COUNTS)[0],
            before[0],
            "no /ring lookups after the switch"
        );
    });

    // Back to consistent_hash over the three: the box comes back.
    s.proxy().reload(hashed_three(&b)).unwrap();
    block_in_place(|| {
        page.eval_until(KEYBOXES, Duration::from_secs(10), "the key box back", |v| {
            *v == json!([1, 3])
        });
        assert_eq!(
            page.eval("window.__ringleaderMark"),
            17,
            "the page was not reloaded"
        );
        page.close_browser();
    });
    drop(page);
    drop(chromium);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_checks_counting_towards_fall() {
    let b = named_backends(&[("alpha", 0)]).await;
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n\
         [upstream.app]\nbackends = [{{ addr = \"{}\" }}]\n\
         [upstream.app.health]\npath = \"/healthz\"\ninterval = \"100ms\"\nrise = 2\nfall = 50\n",
        b[0].addr()
    );
    let s = start(Config::from_toml_str(&text, "t.toml").unwrap()).await;
    let admin = s.admin_addr();
    wait_until(Duration::from_secs(10), "a first check", || async {
        backend_status(admin, b[0].addr()).await.unwrap()["last_check"]["ok"] == true
    })
    .await;
    assert_eq!(
        backend_status(admin, b[0].addr()).await.unwrap()["check_progress"],
        Value::Null
    );
    // Failing checks count towards fall = 50 (about 5 s away): "going down n/50".
    b[0].set_healthy(false);
    wait_until(Duration::from_secs(4), "going down", || async {
        let p = &backend_status(admin, b[0].addr()).await.unwrap()["check_progress"];
        p["towards"] == "down" && p["count"].as_u64().is_some_and(|n| n >= 2) && p["of"] == 50
    })
    .await;
    b[0].set_healthy(true);
    wait_until(
        Duration::from_secs(4),
        "the count reset by a pass",
        || async {
            backend_status(admin, b[0].addr()).await.unwrap()["check_progress"] == Value::Null
        },
    )
    .await;
    assert_eq!(health_of(admin, b[0].addr()).await.as_deref(), Some("up"));
}
