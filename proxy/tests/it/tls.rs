//! TLS termination: HTTPS through the proxy, certificates chosen by SNI, reloads that
//! change the certificate for new connections only, `check`'s certificate errors, and
//! the redirect listener. Certificates are made at test time (rcgen), signed by a test CA
//! that the clients trust.
use crate::common::*;
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
};
use ringleader_proxy::{Config, Server};
use rustls::pki_types::{CertificateDer, ServerName};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// A test CA writing certificates and keys into a temporary directory.
pub struct Pki {
    ca: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
    pub dir: tempfile::TempDir,
}

/// A certificate written by [`Pki::leaf`]: its files and its DER.
pub struct Leaf {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub der: CertificateDer<'static>,
}

impl Pki {
    pub fn new() -> Pki {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name
            .push(DnType::CommonName, "ringleader test CA");
        let key = KeyPair::generate().unwrap();
        let ca = p.self_signed(&key).unwrap();
        Pki {
            ca: ca.der().clone(),
            issuer: Issuer::new(p, key),
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// A certificate for `names`, valid from 1975 to 4096 (rcgen's defaults)
    /// unless `dates` (notBefore, notAfter as year, month, day) says otherwise,
    /// written as `<file>.pem` and `<file>.key`.
    pub fn leaf_dated(
        &self,
        file: &str,
        names: &[&str],
        dates: Option<[(i32, u8, u8); 2]>,
    ) -> Leaf {
        let mut p = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .unwrap();
        p.distinguished_name.push(DnType::CommonName, names[0]);
        p.extended_key_usages
            .push(ExtendedKeyUsagePurpose::ServerAuth);
        if let Some([(y0, m0, d0), (y1, m1, d1)]) = dates {
            p.not_before = rcgen::date_time_ymd(y0, m0, d0);
            p.not_after = rcgen::date_time_ymd(y1, m1, d1);
        }
        let key = KeyPair::generate().unwrap();
        let cert = p.signed_by(&key, &self.issuer).unwrap();
        let leaf = Leaf {
            cert: self.dir.path().join(format!("{file}.pem")),
            key: self.dir.path().join(format!("{file}.key")),
            der: cert.der().clone(),
        };
        std::fs::write(&leaf.cert, cert.pem()).unwrap();
        std::fs::write(&leaf.key, key.serialize_pem()).unwrap();
        leaf
    }

    pub fn leaf(&self, file: &str, names: &[&str]) -> Leaf {
        self.leaf_dated(file, names, None)
    }

    /// A client config trusting the CA, offering `alpn`.
    pub fn client(&self, alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca.clone()).unwrap();
        let mut c = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        c.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(c)
    }
}

/// `[[server.tls]]` for `leaf` serving `hosts` (none: the default certificate).
pub fn tls_entry(leaf: &Leaf, hosts: &[&str]) -> String {
    let hosts: Vec<String> = hosts.iter().map(|h| format!("{h:?}")).collect();
    format!(
        "[[server.tls]]\ncert = {:?}\nkey = {:?}\nhosts = [{}]\n",
        leaf.cert.display().to_string(),
        leaf.key.display().to_string(),
        hosts.join(", ")
    )
}

/// The proxy's config text: port-0 listeners with TLS, one upstream over `backends`.
pub fn tls_config_text(extra_server: &str, backends: &[SocketAddr], tail: &str) -> String {
    let entries: Vec<String> = backends
        .iter()
        .map(|a| format!("{{ addr = \"{a}\" }}"))
        .collect();
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\ntls_listen = \"127.0.0.1:0\"\n{extra_server}\n\
         {tail}\n[upstream.app]\nbackends = [{}]\n[upstream.app.passive]\nmax_ejection_percent = 0\n",
        entries.join(", ")
    )
}

/// A TLS connection to `addr` asking for `sni`.
pub async fn tls_connect(
    addr: SocketAddr,
    sni: &str,
    cfg: Arc<rustls::ClientConfig>,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from(sni.to_string()).unwrap();
    tokio_rustls::TlsConnector::from(cfg)
        .connect(name, tcp)
        .await
}

/// The certificate the server showed on `s`.
pub fn peer_cert(s: &TlsStream<TcpStream>) -> CertificateDer<'static> {
    s.get_ref().1.peer_certificates().unwrap()[0].clone()
}

/// An HTTP/1.1 client connection over `io`.
pub async fn h1_over<I>(io: I) -> hyper::client::conn::http1::SendRequest<Full<Bytes>>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .unwrap();
    tokio::spawn(conn);
    send
}

/// A request for `uri` (absolute for HTTP/2, a path plus `Host` for HTTP/1.1).
pub fn request(method: &str, uri: &str, host: &str, body: &'static str) -> Request<Full<Bytes>> {
    let mut b = Request::builder().method(method).uri(uri);
    if !uri.starts_with("http") {
        b = b.header("host", host);
    }
    b.body(Full::new(Bytes::from_static(body.as_bytes())))
        .unwrap()
}

/// Status and body of a response.
pub async fn answer(
    r: hyper::Result<http::Response<hyper::body::Incoming>>,
) -> (StatusCode, String) {
    let r = r.expect("response");
    let status = r.status();
    let body = r.into_body().collect().await.expect("body").to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

async fn bind_text(text: &str) -> Server {
    let cfg = Config::from_toml_str(text, "tls.toml").unwrap_or_else(|e| panic!("{e}\n{text}"));
    Server::bind(cfg).await.unwrap()
}

#[tokio::test]
async fn https_get_and_post_reach_the_backend_with_forwarded_proto_https() {
    let pki = Pki::new();
    let leaf = pki.leaf("site", &["a.test"]);
    let b = backends(1).await;
    let s = bind_text(&tls_config_text("", &[b[0].addr()], &tls_entry(&leaf, &[]))).await;
    let tls = tls_connect(s.tls_addr().unwrap(), "a.test", pki.client(&[b"http/1.1"]))
        .await
        .unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let mut c = h1_over(tls).await;
    let (status, body) = answer(
        c.send_request(request("GET", "/echo-headers", "a.test", ""))
            .await,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let seen: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(seen["x-forwarded-proto"], "https", "{seen}");
    assert_eq!(seen["host"], "a.test", "{seen}");
    let (status, body) = answer(
        c.send_request(request("POST", "/echo", "a.test", "over tls"))
            .await,
    )
    .await;
    assert_eq!((status.as_u16(), body.as_str()), (200, "over tls"));
    assert_eq!(b[0].posts(), 1);
    // A client cannot claim https on the plain listener.
    let plain = send(
        &client(),
        s.proxy_addr(),
        "GET",
        "/echo-headers",
        &[("x-forwarded-proto", "https")],
        "",
    )
    .await;
    let seen: serde_json::Value = serde_json::from_str(&plain.body).unwrap();
    assert_eq!(seen["x-forwarded-proto"], "http", "{seen}");
}

#[tokio::test]
async fn sni_picks_the_exact_then_wildcard_then_default_certificate() {
    let pki = Pki::new();
    let default = pki.leaf("default", &["other.test", "127.0.0.1"]);
    let a = pki.leaf("a", &["a.test"]);
    let wild = pki.leaf("wild", &["*.b.test"]);
    let b = backends(1).await;
    let entries = format!(
        "{}{}{}",
        tls_entry(&a, &["a.test"]),
        tls_entry(&default, &[]),
        tls_entry(&wild, &["*.b.test"]),
    );
    let s = bind_text(&tls_config_text("", &[b[0].addr()], &entries)).await;
    let addr = s.tls_addr().unwrap();
    let cfg = pki.client(&[b"http/1.1"]);
    for (sni, want) in [
        ("a.test", &a.der),
        ("A.TEST", &a.der),
        ("x.b.test", &wild.der),
        ("other.test", &default.der),
        // No SNI at all (an IP address is never sent as SNI): the default.
        ("127.0.0.1", &default.der),
    ] {
        let tls = tls_connect(addr, sni, cfg.clone())
            .await
            .unwrap_or_else(|e| panic!("{sni}: {e}"));
        assert!(peer_cert(&tls) == *want, "{sni} got another certificate");
        let mut c = h1_over(tls).await;
        let (status, _) = answer(c.send_request(request("GET", "/", sni, "")).await).await;
        assert_eq!(status, 200, "{sni}");
    }
    // The wildcard covers one label only: y.x.b.test falls to the default, whose
    // names do not include it, so the client rejects it.
    let err = tls_connect(addr, "y.x.b.test", cfg.clone())
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("certificate not valid for name"),
        "{err}"
    );
    drop(s);

    // Without a default, a name nobody serves gets the alert unrecognized_name.
    let s = bind_text(&tls_config_text(
        "",
        &[b[0].addr()],
        &tls_entry(&a, &["a.test"]),
    ))
    .await;
    let err = tls_connect(s.tls_addr().unwrap(), "nope.test", cfg.clone())
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("fatal alert: UnrecognisedName"),
        "{err}"
    );
    let tls = tls_connect(s.tls_addr().unwrap(), "a.test", cfg)
        .await
        .unwrap();
    assert!(peer_cert(&tls) == a.der);
}

/// Write the config file of the reload test.
fn write_config(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

#[tokio::test]
async fn a_reload_changes_the_certificate_for_new_connections_and_a_bad_one_keeps_the_old() {
    let pki = Pki::new();
    let first = pki.leaf("site", &["a.test"]);
    let b = backends(1).await;
    let path = pki.dir.path().join("ringleader.toml");
    // Relative paths: from the config file's directory.
    let text = tls_config_text(
        "",
        &[b[0].addr()],
        "[[server.tls]]\ncert = \"site.pem\"\nkey = \"site.key\"\n",
    );
    write_config(&path, &text);
    let s = Server::bind(Config::load(&path).unwrap()).await.unwrap();
    let addr = s.tls_addr().unwrap();
    let cfg = pki.client(&[b"http/1.1"]);

    let open = tls_connect(addr, "a.test", cfg.clone()).await.unwrap();
    assert!(peer_cert(&open) == first.der);
    let mut open = h1_over(open).await;
    assert_eq!(
        answer(open.send_request(request("GET", "/", "a.test", "")).await)
            .await
            .0,
        200
    );

    // New files under the same names, then a reload.
    let second = pki.leaf("site", &["a.test"]);
    assert!(second.der != first.der);
    s.proxy().reload_file(&path).unwrap();
    let fresh = tls_connect(addr, "a.test", cfg.clone()).await.unwrap();
    assert!(
        peer_cert(&fresh) == second.der,
        "a new connection gets the new certificate"
    );
    // The open connection was not dropped and still works.
    assert_eq!(
        answer(open.send_request(request("GET", "/", "a.test", "")).await)
            .await
            .0,
        200
    );

    // A broken certificate file: the reload is rejected, naming the file, and the
    // certificate serving stays the second one.
    std::fs::write(
        pki.dir.path().join("site.pem"),
        "-----BEGIN CERTIFICATE-----\nnot base64!\n",
    )
    .unwrap();
    let err = s.proxy().reload_file(&path).unwrap_err().to_string();
    assert!(err.contains("site.pem"), "{err}");
    let again = tls_connect(addr, "a.test", cfg.clone()).await.unwrap();
    assert!(
        peer_cert(&again) == second.der,
        "the old certificate keeps serving"
    );
    let mut again = h1_over(again).await;
    assert_eq!(
        answer(again.send_request(request("GET", "/", "a.test", "")).await)
            .await
            .0,
        200
    );
    assert_eq!(
        answer(open.send_request(request("GET", "/", "a.test", "")).await)
            .await
            .0,
        200
    );
}

#[tokio::test]
async fn check_reports_bad_pem_mismatched_keys_and_dates_with_the_file() {
    let pki = Pki::new();
    let good = pki.leaf("good", &["a.test"]);
    let other = pki.leaf("other", &["a.test"]);
    let past = Some([(2019, 1, 1), (2020, 1, 1)]);
    let expired = pki.leaf_dated("expired", &["a.test"], past);
    let future = Some([(2999, 1, 1), (3000, 1, 1)]);
    let early = pki.leaf_dated("early", &["a.test"], future);
    let garbage = pki.dir.path().join("garbage.pem");
    std::fs::write(
        &garbage,
        "-----BEGIN CERTIFICATE-----\n@@@@\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let empty = pki.dir.path().join("empty.pem");
    std::fs::write(&empty, "no PEM here\n").unwrap();
    let missing = pki.dir.path().join("missing.pem");
    let entry = |cert: &Path, key: &Path| {
        format!(
            "[[server.tls]]\ncert = {:?}\nkey = {:?}\n",
            cert.display().to_string(),
            key.display().to_string()
        )
    };
    let cases = [
        (
            entry(&garbage, &good.key),
            garbage.clone(),
            "is not valid PEM",
        ),
        (
            entry(&empty, &good.key),
            empty.clone(),
            "holds no CERTIFICATE PEM block",
        ),
        (
            entry(&good.cert, &empty),
            empty.clone(),
            "holds no PRIVATE KEY PEM block",
        ),
        (entry(&missing, &good.key), missing.clone(), "cannot read"),
        (
            entry(&good.cert, &other.key),
            other.key.clone(),
            "does not match certificate",
        ),
        (
            entry(&expired.cert, &expired.key),
            expired.cert.clone(),
            "expired on 2020-01-01T00:00:00Z",
        ),
        (
            entry(&early.cert, &early.key),
            early.cert.clone(),
            "is not valid before 2999-01-01T00:00:00Z",
        ),
    ];
    for (tls, file, reason) in cases {
        let text = tls_config_text("", &["127.0.0.1:9".parse().unwrap()], &tls);
        let err = Config::from_toml_str(&text, "check.toml")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("check.toml:"), "{err}");
        assert!(err.contains(&file.display().to_string()), "{err}");
        assert!(err.contains(reason), "{reason}: {err}");
    }
    let text = tls_config_text(
        "",
        &["127.0.0.1:9".parse().unwrap()],
        &entry(&good.cert, &good.key),
    );
    let c = Config::from_toml_str(&text, "check.toml").unwrap();
    // check's summary names the listener and the files; the resolved config parses again.
    let d = c.describe();
    assert!(
        d.contains("HTTPS on https://127.0.0.1:0 (TLS 1.2 and 1.3), certificates by SNI:"),
        "{d}"
    );
    let line = format!(
        "  - {} (key {}) for any other name (default)",
        good.cert.display(),
        good.key.display()
    );
    assert!(d.contains(&line), "{d}");
    let again =
        Config::from_toml_str(&d[d.find("# resolved config").unwrap()..], "r.toml").unwrap();
    assert_eq!(again.server.tls.len(), 1);
    let text = tls_config_text(
        "redirect_listen = \"127.0.0.1:0\"\nredirect_port = 8443",
        &["127.0.0.1:9".parse().unwrap()],
        &tls_entry(&good, &["a.test", "*.a.test"]),
    );
    let d = Config::from_toml_str(&text, "check.toml")
        .unwrap()
        .describe();
    assert!(
        d.contains(
            " for a.test, *.a.test\n  no default: other names get the TLS alert unrecognized_name"
        ),
        "{d}"
    );
    assert!(d.contains("redirect listener on http://127.0.0.1:0: every request -> https://HOST:8443/... (301 GET/HEAD, 308 others)"), "{d}");
}

#[tokio::test]
async fn the_redirect_listener_sends_clients_to_https() {
    let pki = Pki::new();
    let leaf = pki.leaf("site", &["a.test"]);
    let b = backends(1).await;
    let s = bind_text(&tls_config_text(
        "redirect_listen = \"127.0.0.1:0\"",
        &[b[0].addr()],
        &tls_entry(&leaf, &[]),
    ))
    .await;
    let port = s.tls_addr().unwrap().port();
    let r = s.redirect_addr().unwrap();
    let out = raw(
        r,
        b"GET /a/b?c=d HTTP/1.1\r\nHost: a.test:8080\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(out.starts_with("HTTP/1.1 301 "), "{out}");
    assert!(
        out.to_ascii_lowercase()
            .contains(&format!("\r\nlocation: https://a.test:{port}/a/b?c=d\r\n")),
        "{out}"
    );
    let out = raw(
        r,
        b"POST /form HTTP/1.1\r\nHost: a.test\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc",
    )
    .await;
    assert!(out.starts_with("HTTP/1.1 308 "), "{out}");
    assert!(
        out.to_ascii_lowercase()
            .contains(&format!("\r\nlocation: https://a.test:{port}/form\r\n")),
        "{out}"
    );
    // No host, an empty one (RFC 9110 §4.2.2: no https URI with an empty host), and
    // the asterisk form (no resource to redirect to): 400, as nginx answers.
    for bad in [
        &b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nHost: \r\nConnection: close\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: :8080\r\nConnection: close\r\n\r\n",
        b"OPTIONS * HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n",
    ] {
        let out = raw(r, bad).await;
        assert!(
            out.starts_with("HTTP/1.1 400 "),
            "{}\n{out}",
            String::from_utf8_lossy(bad)
        );
    }
    assert_eq!(b[0].requests(), 0, "a redirect never reaches a backend");
    // The port named can differ from the listener's (a NAT in front).
    let s2 = bind_text(&tls_config_text(
        "redirect_listen = \"127.0.0.1:0\"\nredirect_port = 443",
        &[b[0].addr()],
        &tls_entry(&leaf, &[]),
    ))
    .await;
    let out = raw(
        s2.redirect_addr().unwrap(),
        b"HEAD /x HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(
        out.to_ascii_lowercase()
            .contains("\r\nlocation: https://a.test/x\r\n"),
        "{out}"
    );
}

/// `check` on a PEM file cut short names the missing end line as text; with the
/// certificate and key in one file, a certificate problem points at `cert`'s line
/// and a key problem at `key`'s (the file alone cannot tell them apart).
#[tokio::test]
async fn check_names_a_cut_pem_block_and_the_right_line_of_a_combined_file() {
    let pki = Pki::new();
    let good = pki.leaf("good", &["a.test"]);
    let other = pki.leaf("other", &["a.test"]);
    let expired = pki.leaf_dated("expired", &["a.test"], Some([(2019, 1, 1), (2020, 1, 1)]));
    let read = |p: &Path| std::fs::read_to_string(p).unwrap();
    let write = |name: &str, text: String| {
        let p = pki.dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let entry = |cert: &Path, key: &Path| {
        format!(
            "[[server.tls]]\ncert = {:?}\nkey = {:?}\n",
            cert.display().to_string(),
            key.display().to_string()
        )
    };
    let check = |tls: String| {
        let text = tls_config_text("", &["127.0.0.1:9".parse().unwrap()], &tls);
        let err = Config::from_toml_str(&text, "check.toml")
            .unwrap_err()
            .to_string();
        let line_of = |field: &str| {
            1 + text
                .lines()
                .position(|l| l.starts_with(field))
                .unwrap_or_else(|| panic!("{field} in {text}"))
        };
        (err, line_of("cert = "), line_of("key = "))
    };

    let full = read(&good.cert);
    let cut = write(
        "cut.pem",
        full[..full.find("-----END").unwrap()].to_string(),
    );
    let (err, _, _) = check(entry(&cut, &good.key));
    assert!(
        err.contains("no line \"-----END CERTIFICATE-----\""),
        "{err}"
    );

    let both = write(
        "expired-both.pem",
        read(&expired.cert) + &read(&expired.key),
    );
    let (err, cert_line, _) = check(entry(&both, &both));
    assert!(err.contains("expired on 2020-01-01"), "{err}");
    assert!(
        err.starts_with(&format!("check.toml:{cert_line}:")),
        "{err}"
    );

    let mismatched = write("mismatched-both.pem", read(&good.cert) + &read(&other.key));
    let (err, _, key_line) = check(entry(&mismatched, &mismatched));
    assert!(err.contains("does not match certificate"), "{err}");
    assert!(err.starts_with(&format!("check.toml:{key_line}:")), "{err}");
}
