//! Header rewriting and reading: hop-by-hop stripping (both ways), X-Forwarded-*, request IDs, idempotency, hosts.
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::Method;

/// `X-Request-Id`.
pub(crate) static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// `X-Forwarded-For`.
pub(crate) static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
/// `X-Forwarded-Proto`.
pub(crate) static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
/// `X-Forwarded-Host`.
pub(crate) static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
/// `Idempotency-Key`: makes any method retryable.
pub(crate) static IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");

static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");
static HTTP2_SETTINGS: HeaderName = HeaderName::from_static("http2-settings");

/// Hop-by-hop headers of RFC 9110 §7.6.1 plus the non-standard
/// `Proxy-Connection` and `Keep-Alive`, and `HTTP2-Settings`, which RFC 7540 §3.2.1
/// calls "a connection-specific header field" (it goes with `Upgrade: h2c`, which
/// the proxy never forwards); they describe one connection and are never forwarded.
fn fixed_hop_by_hop() -> [&'static HeaderName; 10] {
    [
        &header::CONNECTION,
        &KEEP_ALIVE,
        &PROXY_CONNECTION,
        &header::PROXY_AUTHENTICATE,
        &header::PROXY_AUTHORIZATION,
        &header::TE,
        &header::TRAILER,
        &header::TRANSFER_ENCODING,
        &header::UPGRADE,
        &HTTP2_SETTINGS,
    ]
}

/// Whether a field `name` of `headers` lists `token` (ASCII case-insensitive), its
/// field lines read as one comma-separated list (RFC 9110 §5.3, §5.6.1).
pub(crate) fn has_token(headers: &HeaderMap, name: &HeaderName, token: &[u8]) -> bool {
    headers
        .get_all(name)
        .iter()
        .flat_map(|v| v.as_bytes().split(|&b| b == b','))
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
}

/// Remove hop-by-hop headers, including every header the `Connection`
/// header names.
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    strip(headers, false);
}

/// [`strip_hop_by_hop`] for a client's request: its `Connection` header never
/// removes a header the proxy needs or sets itself (`Host`, `X-Forwarded-*`,
/// `X-Request-Id`). RFC 9110 §7.6.1 has a client list only hop-by-hop fields
/// there; `Connection: host` would make the proxy lose the host it routed by.
pub(crate) fn strip_request_hop_by_hop(headers: &mut HeaderMap) {
    strip(headers, true);
}

/// Headers of a request that a client's `Connection` list never removes.
fn proxy_owned(name: &HeaderName) -> bool {
    name == header::HOST
        || name == X_FORWARDED_FOR
        || name == X_FORWARDED_PROTO
        || name == X_FORWARDED_HOST
        || name == X_REQUEST_ID
}

fn strip(headers: &mut HeaderMap, keep_proxy_owned: bool) {
    // One pass over the (few) names, noting which hop-by-hop names are present;
    // then only those are removed (every `remove` hashes its name). Most requests
    // carry none; most responses carry only `Connection: keep-alive`.
    let hop = fixed_hop_by_hop();
    let mut present = 0u16;
    let mut disguised = false;
    for k in headers.keys() {
        if let Some(i) = hop_index(k) {
            present |= 1 << i;
        }
        disguised |= keep_proxy_owned && k.as_str().contains('_');
    }
    if disguised {
        remove_disguised(headers);
    }
    if present == 0 {
        return;
    }
    if present & 1 != 0 && !only_close_or_keep_alive(headers) {
        // Only allocates when the Connection header names extra headers.
        let named: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|t| !t.eq_ignore_ascii_case("close") && !t.eq_ignore_ascii_case("keep-alive"))
            .filter_map(|t| HeaderName::from_bytes(t.as_bytes()).ok())
            .filter(|n| !(keep_proxy_owned && proxy_owned(n)))
            .collect();
        for name in named {
            headers.remove(name);
        }
    }
    for (i, name) in hop.into_iter().enumerate() {
        if present & (1 << i) != 0 {
            headers.remove(name);
        }
    }
}

/// Remove a client's fields whose names, with `_` read as `-`, are fields the proxy
/// sets or frames by (`X_Forwarded_For`, `Transfer_Encoding`, ...): CGI, WSGI and PHP
/// backends map both characters to one name, so such a field would pose as the
/// proxy's own (nginx drops every name with `_` by default, `underscores_in_headers`;
/// other names with `_` pass here).
fn remove_disguised(headers: &mut HeaderMap) {
    let disguised: Vec<HeaderName> = headers
        .keys()
        .filter(|k| {
            let n = k.as_str();
            n.contains('_')
                && matches!(
                    n.replace('_', "-").as_str(),
                    "x-forwarded-for"
                        | "x-forwarded-proto"
                        | "x-forwarded-host"
                        | "x-request-id"
                        | "x-real-ip"
                        | "forwarded"
                        | "host"
                        | "content-length"
                        | "transfer-encoding"
                        | "connection"
                )
        })
        .cloned()
        .collect();
    for name in disguised {
        headers.remove(name);
    }
}

/// Position of `name` in [`fixed_hop_by_hop`] (`Connection` is 0).
fn hop_index(name: &HeaderName) -> Option<usize> {
    Some(match name.as_str() {
        "connection" => 0,
        "keep-alive" => 1,
        "proxy-connection" => 2,
        "proxy-authenticate" => 3,
        "proxy-authorization" => 4,
        "te" => 5,
        "trailer" => 6,
        "transfer-encoding" => 7,
        "upgrade" => 8,
        "http2-settings" => 9,
        _ => return None,
    })
}

/// Every `Connection` value is just `keep-alive` or `close` (names no other header).
fn only_close_or_keep_alive(headers: &HeaderMap) -> bool {
    headers.get_all(header::CONNECTION).iter().all(|v| {
        let v = v.as_bytes();
        v.eq_ignore_ascii_case(b"keep-alive") || v.eq_ignore_ascii_case(b"close")
    })
}

/// The scheme the client used on its connection to the proxy, for
/// `X-Forwarded-Proto`: a property of the listener, passed with each request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scheme {
    /// A plain listener (HTTP/1.1 or h2c).
    Http,
    /// The TLS listener.
    Https,
}

impl Scheme {
    fn value(self) -> HeaderValue {
        HeaderValue::from_static(match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        })
    }
}

/// Set `X-Forwarded-For` (appending the client), `X-Forwarded-Proto` (the
/// client's `scheme`) and
/// `X-Forwarded-Host` (the original host; removed when there is none, as for an
/// HTTP/1.0 request without `Host`). Proto and Host are always the proxy's own
/// values, never a client's; `X-Forwarded-For` keeps what the client sent in
/// front of the address the proxy saw (only that last entry is the proxy's word).
pub(crate) fn set_forwarded(
    headers: &mut HeaderMap,
    client_ip: &HeaderValue,
    scheme: Scheme,
    host: Option<HeaderValue>,
) {
    // Several field lines are one list (RFC 9110 §5.3): every entry stays, in order.
    let mut v = Vec::new();
    for prev in headers.get_all(&X_FORWARDED_FOR) {
        if !prev.is_empty() {
            v.extend_from_slice(prev.as_bytes());
            v.extend_from_slice(b", ");
        }
    }
    let xff = if v.is_empty() {
        client_ip.clone()
    } else {
        v.extend_from_slice(client_ip.as_bytes());
        HeaderValue::from_maybe_shared(bytes::Bytes::from(v)).unwrap_or_else(|_| client_ip.clone())
    };
    headers.insert(X_FORWARDED_FOR.clone(), xff);
    headers.insert(X_FORWARDED_PROTO.clone(), scheme.value());
    match host {
        Some(host) => {
            headers.insert(X_FORWARDED_HOST.clone(), host);
        }
        None => {
            headers.remove(&X_FORWARDED_HOST);
        }
    }
}

/// Join an HTTP/2 request's `cookie` fields into one, as RFC 9113 §8.2.3 asks: "If
/// there are multiple cookie header fields after decompression, these MUST be
/// concatenated into a single octet string using the two-octet delimiter of 0x3b,
/// 0x20 ("; ") before being passed into a non-HTTP/2 context, such as an HTTP/1.1
/// connection". (HTTP/2 clients such as browsers send each cookie as a field of its own.)
pub(crate) fn join_cookies(headers: &mut HeaderMap) {
    let mut values = headers.get_all(header::COOKIE).iter();
    if values.next().is_none() || values.next().is_none() {
        return;
    }
    let joined: Vec<&[u8]> = headers
        .get_all(header::COOKIE)
        .iter()
        .map(HeaderValue::as_bytes)
        .collect();
    if let Ok(v) = HeaderValue::from_bytes(&joined.join(&b"; "[..])) {
        headers.insert(header::COOKIE, v);
    }
}

/// Whether `v` is a valid `Host` field value or request-target authority without
/// userinfo: `uri-host [ ":" port ]` (RFC 9110 §7.2, RFC 3986 §3.2.2-3.2.3):
/// an IP literal in brackets, or a reg-name of unreserved characters,
/// percent-encodings and sub-delims (an IPv4 address is one), then digits.
pub(crate) fn is_valid_host(v: &[u8]) -> bool {
    let (host, port) = if v.first() == Some(&b'[') {
        let Some(end) = v.iter().position(|&b| b == b']') else {
            return false;
        };
        if !is_ip_literal(&v[1..end]) {
            return false;
        }
        match &v[end + 1..] {
            [] => return true,
            // The literal was checked: nothing of the host is left to check.
            [b':', port @ ..] => return port.iter().all(u8::is_ascii_digit),
            _ => return false,
        }
    } else {
        match v.iter().rposition(|&b| b == b':') {
            Some(i) => (&v[..i], &v[i + 1..]),
            None => (v, &[][..]),
        }
    };
    // RFC 9110 §4.2.1: an http URI "with an empty host identifier" is invalid, and a
    // recipient "MUST reject it" (nginx answers 400 to `Host:` and `Host: :80`).
    !host.is_empty() && port.iter().all(u8::is_ascii_digit) && is_reg_name(host)
}

/// `reg-name = *( unreserved / pct-encoded / sub-delims )` (RFC 3986 §3.2.2).
fn is_reg_name(v: &[u8]) -> bool {
    let mut i = 0;
    while i < v.len() {
        match v[i] {
            b'%' => {
                if !v
                    .get(i + 1..i + 3)
                    .is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit))
                {
                    return false;
                }
                i += 3;
                continue;
            }
            b if b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=".contains(&b) => {}
            _ => return false,
        }
        i += 1;
    }
    true
}

/// Inside the brackets of an `IP-literal`: an IPv6 address or
/// `IPvFuture = "v" 1*HEXDIG "." 1*( unreserved / sub-delims / ":" )` (RFC 3986 §3.2.2).
fn is_ip_literal(v: &[u8]) -> bool {
    if let [b'v' | b'V', rest @ ..] = v {
        let Some(dot) = rest.iter().position(|&b| b == b'.') else {
            return false;
        };
        let (ver, tail) = (&rest[..dot], &rest[dot + 1..]);
        return !ver.is_empty()
            && ver.iter().all(u8::is_ascii_hexdigit)
            && !tail.is_empty()
            && tail
                .iter()
                .all(|&b| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:".contains(&b));
    }
    std::str::from_utf8(v).is_ok_and(|s| s.parse::<std::net::Ipv6Addr>().is_ok())
}

/// Whether a request may be retried: an idempotent method (RFC 9110 §9.2.2)
/// or an `Idempotency-Key` header.
pub(crate) fn is_idempotent(method: &Method, headers: &HeaderMap) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE
    ) || headers.contains_key(&IDEMPOTENCY_KEY)
}

/// Host part of a `Host` header value, URI authority or backend address: the
/// port removed, IPv6 brackets kept. The crate's one host-port parser. A bare
/// IPv6 address (several colons, no brackets) has no port to remove (RFC 3986
/// §3.2.2: an IPv6 literal in an authority is always in brackets).
pub(crate) fn host_without_port(host: &str) -> &str {
    if host.starts_with('[') {
        return match host.find(']') {
            Some(i) => &host[..=i],
            None => host,
        };
    }
    match host.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') && p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_fixed_and_named() {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("connection", "close, X-Named"),
            ("x-named", "1"),
            ("te", "trailers"),
            ("transfer-encoding", "chunked"),
            ("proxy-authorization", "Basic x"),
            ("upgrade", "websocket"),
            ("host", "a"),
        ] {
            h.append(HeaderName::from_static(k), HeaderValue::from_static(v));
        }
        strip_hop_by_hop(&mut h);
        assert_eq!(
            h.keys().map(|k| k.as_str()).collect::<Vec<_>>(),
            vec!["host"]
        );
    }

    #[test]
    fn strips_every_fixed_name_and_keeps_the_rest() {
        let names = [
            "connection",
            "keep-alive",
            "proxy-connection",
            "proxy-authenticate",
            "proxy-authorization",
            "te",
            "trailer",
            "transfer-encoding",
            "upgrade",
        ];
        for name in names {
            let mut h = HeaderMap::new();
            h.insert(
                HeaderName::from_static(name),
                HeaderValue::from_static("keep-alive"),
            );
            h.insert("x-kept", HeaderValue::from_static("1"));
            strip_hop_by_hop(&mut h);
            assert_eq!(
                h.keys().map(|k| k.as_str()).collect::<Vec<_>>(),
                vec!["x-kept"],
                "{name}"
            );
        }
        // A Connection header that is only keep-alive/close names nothing else.
        let mut h = HeaderMap::new();
        h.append("connection", HeaderValue::from_static("Keep-Alive"));
        h.append("connection", HeaderValue::from_static("close"));
        h.insert("close", HeaderValue::from_static("kept"));
        strip_hop_by_hop(&mut h);
        assert_eq!(
            h.keys().map(|k| k.as_str()).collect::<Vec<_>>(),
            vec!["close"]
        );
    }

    #[test]
    fn xff_appends() {
        let ip = HeaderValue::from_static("10.0.0.9");
        let mut h = HeaderMap::new();
        let host = Some(HeaderValue::from_static("example.com"));
        set_forwarded(&mut h, &ip, Scheme::Https, host);
        assert_eq!(h[&X_FORWARDED_FOR], "10.0.0.9");
        assert_eq!(h[&X_FORWARDED_PROTO], "https");
        assert_eq!(h[&X_FORWARDED_HOST], "example.com");
        h.insert(&X_FORWARDED_FOR, HeaderValue::from_static("1.2.3.4"));
        set_forwarded(&mut h, &ip, Scheme::Http, None);
        assert_eq!(h[&X_FORWARDED_FOR], "1.2.3.4, 10.0.0.9");
        assert_eq!(h[&X_FORWARDED_PROTO], "http");
    }

    #[test]
    fn a_clients_connection_list_never_removes_what_the_proxy_sets() {
        let mut h = HeaderMap::new();
        h.insert(
            "connection",
            HeaderValue::from_static(
                "Host, X-Forwarded-For, x-forwarded-proto, x-forwarded-host, x-request-id, x-gone",
            ),
        );
        for k in [
            "host",
            "x-forwarded-for",
            "x-forwarded-proto",
            "x-forwarded-host",
            "x-request-id",
            "x-gone",
        ] {
            h.insert(HeaderName::from_static(k), HeaderValue::from_static("v"));
        }
        let mut response = h.clone();
        strip_request_hop_by_hop(&mut h);
        assert_eq!(h.len(), 5);
        assert!(!h.contains_key("x-gone") && !h.contains_key("connection"));
        // A backend's Connection list is obeyed as it is.
        strip_hop_by_hop(&mut response);
        assert!(response.is_empty(), "{response:?}");
    }

    #[test]
    fn forwarded_host_is_never_the_clients() {
        let ip = HeaderValue::from_static("10.0.0.9");
        let mut h = HeaderMap::new();
        h.insert(&X_FORWARDED_HOST, HeaderValue::from_static("spoofed"));
        h.insert(&X_FORWARDED_PROTO, HeaderValue::from_static("https"));
        set_forwarded(&mut h, &ip, Scheme::Http, None);
        assert!(!h.contains_key(&X_FORWARDED_HOST));
        assert_eq!(h[&X_FORWARDED_PROTO], "http");
    }

    #[test]
    fn hosts_follow_the_uri_host_grammar() {
        for ok in [
            "a",
            "api.example.com",
            "api.example.com:8080",
            "host:",
            "127.0.0.1:80",
            "[::1]",
            "[2001:db8::1]:443",
            "[v1.fe80::a+en1]",
            "xn--bcher-kva.example",
            "a%2Db",
            "!$&'()*+,;=-._~",
        ] {
            assert!(is_valid_host(ok.as_bytes()), "{ok:?}");
        }
        for bad in [
            "",
            ":80",
            "a b",
            " a",
            "a/b",
            "evil@good.example",
            "a:b",
            "a:80:80",
            "a?b",
            "a#b",
            "a\\b",
            "[::1",
            "[::1]x",
            "[::1]:x",
            "[zz]",
            "[v.x]",
            "[v1.]",
            "a%2",
            "a%zz",
            "a\"b",
            "\u{e9}",
        ] {
            assert!(!is_valid_host(bad.as_bytes()), "{bad:?}");
        }
    }

    #[test]
    fn host_port_is_removed() {
        assert_eq!(host_without_port("a.example:8080"), "a.example");
        assert_eq!(host_without_port("a.example"), "a.example");
        assert_eq!(host_without_port("[::1]:80"), "[::1]");
    }

    #[test]
    fn strip_hop_by_hop_removes_what_connection_names() {
        let mut h = HeaderMap::new();
        h.insert("connection", "x-secret, keep-alive".parse().unwrap());
        h.insert("x-secret", "1".parse().unwrap());
        h.insert("keep-alive", "timeout=5".parse().unwrap());
        h.insert("x-kept", "1".parse().unwrap());
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-kept"));
    }

    #[test]
    fn request_connection_lists_never_remove_proxy_owned_headers() {
        let mut h = HeaderMap::new();
        h.insert("connection", "host, x-secret".parse().unwrap());
        h.insert("host", "api.example".parse().unwrap());
        h.insert("x-secret", "1".parse().unwrap());
        strip_request_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert_eq!(h["host"], "api.example");
    }

    #[test]
    fn valid_hosts_are_host_and_port_without_userinfo() {
        assert!(is_valid_host(b"api.example.com:8080"));
        assert!(is_valid_host(b"[::1]:80"));
        assert!(!is_valid_host(b"evil@good.example"));
        assert!(!is_valid_host(b"a b"));
        assert!(!is_valid_host(b"a/b"));
    }

    #[test]
    fn idempotent_methods_and_idempotency_keys_are_retryable() {
        let mut h = HeaderMap::new();
        assert!(is_idempotent(&Method::GET, &h));
        assert!(!is_idempotent(&Method::POST, &h));
        h.insert("idempotency-key", "abc".parse().unwrap());
        assert!(is_idempotent(&Method::POST, &h));
    }

    #[test]
    fn ports_are_removed_from_hosts_but_bare_ipv6_is_kept_whole() {
        assert_eq!(host_without_port("api.example:8080"), "api.example");
        assert_eq!(host_without_port("api.example"), "api.example");
        assert_eq!(host_without_port("127.0.0.1:80"), "127.0.0.1");
        assert_eq!(host_without_port("[::1]:80"), "[::1]");
        assert_eq!(host_without_port("[::1]"), "[::1]");
        assert_eq!(host_without_port("::1"), "::1");
        assert_eq!(host_without_port("fe80::1:8080"), "fe80::1:8080");
    }
}
