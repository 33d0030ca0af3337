//! The live status page (`GET /` on the admin listener) and the headers of the admin answers a browser reads: the page and `/ring`.
//!
//! The page is one self-contained HTML file (`status_page.html`: inline CSS and JS,
//! no external asset, works offline). Its script polls the relative `status` every
//! second and asks `ring` for key lookups, and inserts every value with
//! `textContent` (backend names come from config files and etcd). The
//! Content-Security-Policy lets it run its inline script and style and talk to its
//! own origin only: nothing else loads, and `fetch` cannot leave the admin listener.
use crate::response::ProxyBody;
use crate::state::Proxy;
use http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, X_CONTENT_TYPE_OPTIONS};
use http::{HeaderValue, Response, StatusCode};

/// The page.
pub(crate) const PAGE: &str = include_str!("status_page.html");

/// Inline script and style only, requests to the page's origin only (`connect-src
/// 'self'`), no plugins, no framing, no form posts, no `<base>` rewrite.
pub(crate) const CSP: &str = "default-src 'none'; script-src 'self' 'unsafe-inline'; \
     style-src 'self' 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; \
     base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// `GET /`: the page.
pub(crate) fn page() -> Response<ProxyBody> {
    let mut r = answer(StatusCode::OK, "text/html; charset=utf-8", PAGE);
    r.headers_mut()
        .insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    r
}

/// `GET /ring?upstream=NAME&key=K`: see [`crate::ring_lookup`].
pub(crate) fn ring(proxy: &Proxy, query: Option<&str>) -> Response<ProxyBody> {
    let (status, body) = crate::ring_lookup::lookup(proxy, query);
    answer(status, "application/json", body.to_string())
}

fn answer(
    status: StatusCode,
    ctype: &'static str,
    body: impl Into<bytes::Bytes>,
) -> Response<ProxyBody> {
    let mut r = Response::new(ProxyBody::full(body));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(ctype));
    h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `src=`/`href=`/`action=` value and every `url(...)` in `html`.
    fn references(html: &str) -> Vec<String> {
        let lower = html.to_ascii_lowercase();
        let mut out = Vec::new();
        for attr in ["src=", "href=", "action=", "url(", "@import"] {
            for (i, _) in lower.match_indices(attr) {
                let rest = html[i + attr.len()..].trim_start();
                let rest = rest.trim_start_matches(['"', '\'']);
                let end = rest
                    .find(|c: char| {
                        c == '"' || c == '\'' || c == ')' || c == '>' || c.is_whitespace()
                    })
                    .unwrap_or(rest.len());
                out.push(rest[..end].to_string());
            }
        }
        out
    }

    #[test]
    fn the_page_loads_nothing_from_elsewhere() {
        assert_eq!(
            references(PAGE),
            Vec::<String>::new(),
            "no external reference"
        );
        // Not even a URL to a scheme or another host in a string.
        for needle in [
            "http://", "https://", "ws://", "wss://", "\"//", "'//", "`//",
        ] {
            assert!(!PAGE.contains(needle), "the page contains {needle}");
        }
        // The check itself finds what it looks for.
        let bad = r#"<img src="https://cdn.example/x.png"><link href='//x.example/a.css'>"#;
        assert_eq!(
            references(bad),
            ["https://cdn.example/x.png", "//x.example/a.css"]
        );
    }

    #[test]
    fn the_script_fetches_relative_paths_only_and_never_inserts_html() {
        let calls: Vec<&str> = PAGE
            .match_indices("fetch(")
            .map(|(i, _)| PAGE[i + 6..].split([',', ')']).next().unwrap().trim())
            .collect();
        assert_eq!(calls, ["q", "\"status\""], "every fetch of the page");
        // `q` is built from the relative "ring?upstream=".
        assert!(PAGE.contains("const q = \"ring?upstream=\" + encodeURIComponent(name)"));
        for sink in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
        ] {
            assert!(!PAGE.contains(sink), "the page uses {sink}");
        }
        assert_eq!(PAGE.matches("<script>").count(), 1, "one inline script");
    }

    #[test]
    fn the_page_and_ring_answers_carry_the_security_headers() {
        let r = page();
        assert_eq!(r.status(), StatusCode::OK);
        let h = r.headers();
        assert_eq!(h[CONTENT_TYPE], "text/html; charset=utf-8");
        assert_eq!(h[X_CONTENT_TYPE_OPTIONS], "nosniff");
        let csp = h[CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(csp.starts_with("default-src 'none'; script-src 'self' 'unsafe-inline'"));
        assert!(csp.contains("connect-src 'self'"), "{csp}");
    }
}
