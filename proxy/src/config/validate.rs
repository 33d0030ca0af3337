//! Validation of a parsed config: the checks serde cannot make (ranges, references
//! between tables, cross-field rules), each error located in the file.
use super::{Config, Ctx, RouteConfig, UpstreamConfig};
use crate::error::Result;
use crate::headers::host_without_port;
use ringleader_balancer::StrategyKind;
use toml::Spanned;

impl Config {
    /// The checks serde cannot make: ranges, references between tables, and the
    /// implied route of a single upstream. Route hosts are normalised (lowercase,
    /// port removed).
    pub(super) fn validate(&mut self, ctx: &Ctx<'_>) -> Result<()> {
        let s = &self.server;
        if s.max_header_bytes < 256 {
            return Err(ctx.err(None, "server.max_header_bytes must be at least 256"));
        }
        if s.max_connections == 0 || s.max_connections > 1_000_000 {
            return Err(ctx.err(None, "server.max_connections must be between 1 and 1000000"));
        }
        if s.workers > 1024 {
            return Err(ctx.err(
                None,
                "server.workers must be at most 1024 (0 = one per core)",
            ));
        }
        for (what, d) in [
            ("header_read_timeout", s.header_read_timeout),
            ("request_timeout", s.request_timeout),
        ] {
            if d.is_zero() {
                return Err(ctx.err(None, format!("server.{what} must be greater than zero")));
            }
        }
        if self.upstreams.is_empty() {
            return Err(ctx.err(
                None,
                "no upstream: add an [upstream.NAME] table with backends",
            ));
        }
        for (name, up) in &self.upstreams {
            validate_upstream(ctx, name, up)?;
        }
        if self.routes.is_empty() {
            if self.upstreams.len() == 1 {
                let name = self.upstreams.keys().next().cloned().unwrap_or_default();
                self.routes.push(RouteConfig {
                    host: None,
                    path_prefix: "/".to_string(),
                    upstream: Spanned::new(0..0, name),
                });
            } else {
                return Err(ctx.err(
                    None,
                    "no [[route]]: with several upstreams, routes must say which serves what",
                ));
            }
        }
        for route in &mut self.routes {
            let up = route.upstream.get_ref();
            if !self.upstreams.contains_key(up) {
                return Err(ctx.err(
                    Some(route.upstream.span()),
                    format!("route refers to unknown upstream {up:?}"),
                ));
            }
            if !route.path_prefix.starts_with('/') {
                return Err(ctx.err(
                    Some(route.upstream.span()),
                    format!("path_prefix {:?} must start with '/'", route.path_prefix),
                ));
            }
            if let Some(h) = &mut route.host {
                let host = host_without_port(h).to_ascii_lowercase();
                if host.is_empty() || host.bytes().any(|b| b.is_ascii_whitespace() || b == b'/') {
                    return Err(ctx.err(
                        Some(route.upstream.span()),
                        format!("route host {h:?} is not a host name"),
                    ));
                }
                *h = host;
            }
        }
        Ok(())
    }
}

fn validate_upstream(ctx: &Ctx<'_>, name: &str, up: &UpstreamConfig) -> Result<()> {
    if let Some(k) = &up.hash_key {
        if up.strategy != StrategyKind::ConsistentHash {
            return Err(ctx.err(
                Some(k.span()),
                "hash_key only applies to strategy = \"consistent_hash\"",
            ));
        }
    }
    if up.backends.is_empty() {
        return Err(ctx.err(
            ctx.upstream_span(name),
            format!("upstream {name:?} has no backends"),
        ));
    }
    if up.idle_timeout.is_zero() {
        return Err(ctx.err(
            ctx.upstream_span(name),
            "idle_timeout must be greater than zero",
        ));
    }
    if up.connect_timeout.is_zero() {
        return Err(ctx.err(
            ctx.upstream_span(name),
            "connect_timeout must be greater than zero",
        ));
    }
    let mut seen = std::collections::HashSet::new();
    for b in &up.backends {
        let addr = b.addr.get_ref();
        let ok = addr
            .parse::<http::uri::Authority>()
            .ok()
            .filter(|a| a.port_u16().is_some() && !a.as_str().contains('@'))
            .is_some();
        if !ok {
            return Err(ctx.err(
                Some(b.addr.span()),
                format!("backend addr {addr:?} must be host:port"),
            ));
        }
        if b.weight == 0 {
            return Err(ctx.err(Some(b.addr.span()), "backend weight must be at least 1"));
        }
        if !seen.insert(addr.as_str()) {
            return Err(ctx.err(
                Some(b.addr.span()),
                format!("backend {addr:?} is listed twice"),
            ));
        }
        if let Some(n) = &b.name {
            validate_backend_name(ctx, n)?;
        }
    }
    // A backend's label (name, else address) names it in status, metrics and logs:
    // two backends of an upstream must not share one.
    let mut labels = std::collections::HashMap::new();
    for b in &up.backends {
        if let Some(other) = labels.insert(b.label(), b) {
            let (span, what) = match (&b.name, &other.name) {
                (Some(n), Some(_)) => (n.span(), "is used by two backends"),
                (Some(n), None) => (n.span(), "is the address of another backend"),
                (None, _) => (b.addr.span(), "is the name of another backend"),
            };
            return Err(ctx.err(
                Some(span),
                format!(
                    "backend name {:?} {what} of upstream {name:?}; names must be unique",
                    b.label()
                ),
            ));
        }
    }
    if let Some(h) = &up.health {
        if !h.path.starts_with('/') {
            return Err(ctx.err(
                ctx.upstream_span(name),
                format!("health path {:?} must start with '/'", h.path),
            ));
        }
        if h.rise == 0 || h.fall == 0 {
            return Err(ctx.err(
                ctx.upstream_span(name),
                "health rise and fall must be at least 1",
            ));
        }
        if h.interval.is_zero() || h.timeout.is_zero() {
            return Err(ctx.err(
                ctx.upstream_span(name),
                "health interval and timeout must be greater than zero",
            ));
        }
    }
    let p = &up.passive;
    if p.max_ejection_percent > 100 {
        return Err(ctx.err(
            ctx.upstream_span(name),
            "passive.max_ejection_percent must be at most 100",
        ));
    }
    if p.max_ejection_time < p.ejection_time {
        return Err(ctx.err(
            ctx.upstream_span(name),
            "passive.max_ejection_time must be at least ejection_time",
        ));
    }
    let r = &up.retry;
    if r.budget_percent > 100 {
        return Err(ctx.err(
            ctx.upstream_span(name),
            "retry.budget_percent must be at most 100",
        ));
    }
    if r.attempts > 16 {
        return Err(ctx.err(ctx.upstream_span(name), "retry.attempts must be at most 16"));
    }
    Ok(())
}

/// The longest backend name accepted.
const MAX_BACKEND_NAME: usize = 64;

/// A backend name goes into metric label values and log fields: non-empty, short,
/// and only `[A-Za-z0-9._:-]`, so it needs no quoting anywhere.
fn validate_backend_name(ctx: &Ctx<'_>, n: &Spanned<String>) -> Result<()> {
    let name = n.get_ref();
    let bad = if name.is_empty() {
        Some("must not be empty")
    } else if name.len() > MAX_BACKEND_NAME {
        Some("is longer than 64 characters")
    } else if !name
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b':' | b'-'))
    {
        Some("may hold only letters, digits and . _ : -")
    } else {
        None
    };
    match bad {
        Some(why) => Err(ctx.err(Some(n.span()), format!("backend name {name:?} {why}"))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;
    use crate::error::Result;

    fn parse(s: &str) -> Result<Config> {
        Config::from_toml_str(s, "t.toml")
    }

    const MIN: &str = "[upstream.app]\nbackends = [{ addr = \"127.0.0.1:9101\" }]\n";

    fn route_host(host: &str) -> Option<String> {
        let c = parse(&format!(
            "{MIN}[[route]]\nhost = \"{host}\"\nupstream = \"app\"\n"
        ))
        .unwrap();
        c.routes[0].host.clone()
    }

    #[test]
    fn route_host_is_normalised() {
        assert_eq!(
            route_host("API.Example.com:8080").as_deref(),
            Some("api.example.com")
        );
        assert_eq!(
            route_host("api.example.com").as_deref(),
            Some("api.example.com")
        );
    }

    #[test]
    fn ipv6_route_host_keeps_its_address() {
        // Bracketed with a port: the port goes, the brackets stay (as a Host header has them).
        assert_eq!(
            route_host("[2001:DB8::1]:8080").as_deref(),
            Some("[2001:db8::1]")
        );
        assert_eq!(route_host("[::1]").as_deref(), Some("[::1]"));
        // Bare: there is no port to remove; the address stays whole.
        assert_eq!(route_host("2001:db8::1").as_deref(), Some("2001:db8::1"));
    }

    #[test]
    fn backend_names_are_checked_and_located() {
        let c = parse(
            "[upstream.app]\nbackends = [{ addr = \"127.0.0.1:9001\", name = \"alpha-1.eu:a_b\" }]\n",
        )
        .unwrap();
        assert_eq!(c.upstreams["app"].backends[0].label(), "alpha-1.eu:a_b");
        for (entries, at, msg) in [
            (
                "{ addr = \"x:1\", name = \"\" }",
                "t.toml:2:36: ",
                "backend name \"\" must not be empty",
            ),
            (
                "{ addr = \"x:1\", name = \"a b\" }",
                "t.toml:2:36: ",
                "may hold only letters, digits and . _ : -",
            ),
            (
                "{ addr = \"x:1\", name = \"a\\\"\" }",
                "t.toml:2:36: ",
                "may hold only",
            ),
            (
                "{ addr = \"x:1\", name = \"a\" }, { addr = \"x:2\", name = \"a\" }",
                "t.toml:2:66: ",
                "backend name \"a\" is used by two backends of upstream \"app\"",
            ),
            (
                "{ addr = \"x:1\", name = \"x:2\" }, { addr = \"x:2\" }",
                "t.toml:2:54: ",
                "\"x:2\" is the name of another backend",
            ),
            (
                "{ addr = \"x:2\" }, { addr = \"x:1\", name = \"x:2\" }",
                "t.toml:2:54: ",
                "\"x:2\" is the address of another backend",
            ),
        ] {
            let err = parse(&format!("[upstream.app]\nbackends = [{entries}]\n"))
                .unwrap_err()
                .to_string();
            assert!(err.starts_with(at), "{entries}: {err}");
            assert!(err.contains(msg), "{entries}: {err}");
        }
        let long = "n".repeat(65);
        let err = parse(&format!(
            "[upstream.app]\nbackends = [{{ addr = \"x:1\", name = \"{long}\" }}]\n"
        ))
        .unwrap_err();
        assert!(err.to_string().contains("longer than 64"), "{err}");
    }
}
