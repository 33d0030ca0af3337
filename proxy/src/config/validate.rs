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
}
