//! `GET /ring?upstream=NAME&key=K` on the admin listener: which backend of a `consistent_hash` upstream owns a key, and the failover order after it.
//!
//! The key is the hash key's value as the proxy extracts it from a request: the
//! header's value (`header:NAME`), the cookie's value (`cookie:NAME`), the query
//! parameter's value as it appears in the request target, not percent-decoded
//! (`query:NAME`), the path (`path`), or the client's IP address in text form
//! (`client_ip`: hashed as its 4 or 16 address bytes, as the proxy does, or with a
//! `hash_compat` placement as its normalised text, as nginx's `$remote_addr`). The answer
//! comes from the balancer's own consistent-hash strategy over the live backends,
//! their health and (with bounded load) their in-flight counts: the backend a
//! request with that key would be sent to now, then the ones it would fail over to.
//! One exception: with `hash_compat = "nginx"`, when nginx's walk of 20 points finds
//! no available backend, nginx (and the proxy) go round robin; requests then rotate
//! while `/ring` names the round robin's first choice.
use crate::config::HashKey;
use crate::state::Proxy;
use http::StatusCode;
use ringleader_balancer::{ConsistentHash, Filter, RequestCtx, Strategy, StrategyKind};
use serde_json::{json, Value};
use std::net::IpAddr;

/// The status and JSON body of a `/ring` request whose query string is `query`.
pub(crate) fn lookup(proxy: &Proxy, query: Option<&str>) -> (StatusCode, Value) {
    let param = |name: &str| {
        query
            .unwrap_or("")
            .split('&')
            .filter_map(|kv| kv.split_once('=').or(Some((kv, ""))))
            .find(|(k, _)| percent_decode(k) == name.as_bytes())
            .map(|(_, v)| percent_decode(v))
    };
    let error = |status, msg: String| (status, json!({ "error": msg }));
    let (Some(name), Some(key)) = (param("upstream"), param("key")) else {
        return error(
            StatusCode::BAD_REQUEST,
            "missing parameter: GET /ring?upstream=NAME&key=KEY".into(),
        );
    };
    let name = String::from_utf8_lossy(&name).into_owned();
    let state = proxy.shared.state.load();
    let Some(up) = state.upstreams.get(&name) else {
        return error(StatusCode::NOT_FOUND, format!("no upstream {name:?}"));
    };
    let Some(hash_key) = up
        .hash_key
        .as_ref()
        .filter(|_| up.strategy == StrategyKind::ConsistentHash)
    else {
        return error(
            StatusCode::NOT_FOUND,
            format!("upstream {name:?} is {}, not consistent_hash", up.strategy),
        );
    };
    let shown = String::from_utf8_lossy(&key).into_owned();
    let compat = up.config.hash_compat.is_some();
    let bytes = match hash_key_bytes(hash_key, &key, compat) {
        Some(b) => b,
        None => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("hash_key is client_ip: {shown:?} is not an IP address"),
            )
        }
    };
    let Some(lb) = up.lb.as_ref() else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("upstream {name:?} has no backends"),
        );
    };
    let backends = lb.backends();
    let config = lb.config();
    let ring = match ConsistentHash::new(&backends, &config) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let ctx = RequestCtx::with_key(&bytes);
    // As `Balancer::candidates` does: the strategy's pick among available backends,
    // else (panic mode) among all, then its next candidates under the same filter.
    let first = match ring.pick(&backends, &ctx, Filter::Available) {
        Some(i) => Some((i, Filter::Available)),
        None if config.panic_mode => ring
            .pick(&backends, &ctx, Filter::Any)
            .map(|i| (i, Filter::Any)),
        None => None,
    };
    let order = match first {
        Some((i, filter)) => following(&ring, &backends, &ctx, filter, vec![i]),
        None => Vec::new(),
    };
    // Where the key lives on the ring regardless of health: every backend, in order.
    let placement = following(&ring, &backends, &ctx, Filter::Any, Vec::new());
    let label = |i: usize| {
        let b = &backends[i];
        json!({
            "addr": b.addr(),
            "name": up.label_of(b.id()),
            "health": b.health().as_str(),
        })
    };
    (
        StatusCode::OK,
        json!({
            "upstream": name,
            "key": shown,
            "hash_key": hash_key.to_string(),
            "owner": order.first().map(|&i| backends[i].addr()),
            "order": order.iter().map(|&i| backends[i].addr()).collect::<Vec<_>>(),
            "placement": placement.into_iter().map(label).collect::<Vec<_>>(),
        }),
    )
}

/// `tried` followed by the strategy's next candidates under `filter`, until none is left.
fn following(
    ring: &ConsistentHash,
    backends: &[std::sync::Arc<ringleader_balancer::Backend>],
    ctx: &RequestCtx<'_>,
    filter: Filter,
    mut tried: Vec<usize>,
) -> Vec<usize> {
    while tried.len() < backends.len() {
        match ring.next_candidate(backends, ctx, filter, &tried) {
            Some(i) => tried.push(i),
            None => break,
        }
    }
    tried
}

/// The bytes the proxy hashes for a request whose hash-key value is `value` (see the
/// module doc); `None` when `client_ip` is asked for with something not an IP address.
fn hash_key_bytes(key: &HashKey, value: &[u8], compat: bool) -> Option<Vec<u8>> {
    match key {
        HashKey::ClientIp => {
            let ip: IpAddr = std::str::from_utf8(value).ok()?.trim().parse().ok()?;
            if compat {
                return Some(ip.to_string().into_bytes());
            }
            Some(match ip {
                IpAddr::V4(v4) => v4.octets().to_vec(),
                IpAddr::V6(v6) => v6.octets().to_vec(),
            })
        }
        _ => Some(value.to_vec()),
    }
}

/// Decode `%XX` escapes and `+` (a space, as HTML forms and `URLSearchParams` encode
/// one); a `%` not followed by two hex digits stays as it is.
fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: &u8| (*c as char).to_digit(16);
        match b[i] {
            b'%' => match (b.get(i + 1).and_then(hex), b.get(i + 2).and_then(hex)) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%20b+c%2Bd"), b"a b c+d");
        assert_eq!(percent_decode("%e2%9c%93"), "✓".as_bytes());
        assert_eq!(percent_decode("100%"), b"100%");
        assert_eq!(percent_decode("%zz%4"), b"%zz%4");
        assert_eq!(percent_decode(""), b"");
    }

    #[test]
    fn client_ip_keys_are_address_bytes() {
        assert_eq!(
            hash_key_bytes(&HashKey::ClientIp, b"10.1.2.3", false),
            Some(vec![10, 1, 2, 3])
        );
        assert_eq!(
            hash_key_bytes(&HashKey::ClientIp, b"::1", false).map(|v| v.len()),
            Some(16)
        );
        assert_eq!(
            hash_key_bytes(&HashKey::ClientIp, b"not-an-ip", false),
            None
        );
        assert_eq!(
            hash_key_bytes(&HashKey::Path, b"/a b", false),
            Some(b"/a b".to_vec())
        );
    }

    #[test]
    fn compatible_placements_hash_the_client_ip_as_text() {
        assert_eq!(
            hash_key_bytes(&HashKey::ClientIp, b" 10.1.2.3", true),
            Some(b"10.1.2.3".to_vec())
        );
        assert_eq!(
            hash_key_bytes(&HashKey::ClientIp, b"0:0::1", true),
            Some(b"::1".to_vec())
        );
        assert_eq!(hash_key_bytes(&HashKey::ClientIp, b"x", true), None);
    }
}
