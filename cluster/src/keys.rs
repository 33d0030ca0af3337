//! The etcd key layout under `/ringleader/<namespace>/`.
use std::time::UNIX_EPOCH;

use ringleader_idgen::Layout;

/// Key names of one namespace.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    /// `/ringleader/<namespace>`
    root: String,
}

impl Keys {
    pub(crate) fn new(namespace: &str) -> Keys {
        Keys {
            root: format!("/ringleader/{namespace}"),
        }
    }

    /// `/ringleader/<ns>/idgen/`
    pub(crate) fn idgen_prefix(&self) -> String {
        format!("{}/idgen/", self.root)
    }

    /// `/ringleader/<ns>/idgen/<layout>/workers/`
    pub(crate) fn workers_prefix(&self, layout: &Layout) -> String {
        format!("{}/idgen/{}/workers/", self.root, layout_name(layout))
    }

    /// `/ringleader/<ns>/idgen/<layout>/workers/<id>`: held by a lease.
    pub(crate) fn worker(&self, layout: &Layout, id: u32) -> String {
        format!("{}{id}", self.workers_prefix(layout))
    }

    /// `/ringleader/<ns>/idgen/<layout>/high-water/<id>`: no lease, so it outlives the
    /// holder; the highest timestamp any holder of the id may have issued.
    pub(crate) fn high_water(&self, layout: &Layout, id: u32) -> String {
        format!(
            "{}/idgen/{}/high-water/{id}",
            self.root,
            layout_name(layout)
        )
    }

    /// `/ringleader/<ns>/health/`
    pub(crate) fn health_prefix(&self) -> String {
        format!("{}/health/", self.root)
    }

    /// `/ringleader/<ns>/health/<upstream>/<backend>/<proxy>`: a proxy's verdict on a
    /// backend, under its lease. Each segment is [`encode_segment`]ed, so a name with a
    /// `/` stays one segment.
    pub(crate) fn verdict(&self, upstream: &str, backend: &str, proxy: &str) -> String {
        format!(
            "{}{}/{}/{}",
            self.health_prefix(),
            encode_segment(upstream),
            encode_segment(backend),
            encode_segment(proxy)
        )
    }

    /// `/ringleader/<ns>/upstreams/`
    pub(crate) fn upstreams_prefix(&self) -> String {
        format!("{}/upstreams/", self.root)
    }

    /// `/ringleader/<ns>/upstreams/<name>/backends/`
    pub(crate) fn backends_prefix(&self, upstream: &str) -> String {
        format!("{}/upstreams/{upstream}/backends/", self.root)
    }
}

/// A layout as a key segment: `ts41-w10-seq12-tick1ms-epoch1288834974657` (tick in the
/// largest whole unit, epoch in ms since the Unix epoch).
pub fn layout_name(layout: &Layout) -> String {
    let tick = layout.tick();
    let tick = if tick.subsec_nanos() == 0 {
        format!("{}s", tick.as_secs())
    } else if tick.as_nanos() % 1_000_000 == 0 {
        format!("{}ms", tick.as_millis())
    } else if tick.as_nanos() % 1_000 == 0 {
        format!("{}us", tick.as_micros())
    } else {
        format!("{}ns", tick.as_nanos())
    };
    let epoch_ms = layout
        .epoch()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    format!(
        "ts{}-w{}-seq{}-tick{tick}-epoch{epoch_ms}",
        layout.timestamp_bits(),
        layout.worker_bits(),
        layout.sequence_bits()
    )
}

/// `s` as one key segment: `%` and `/` percent-encoded (`%25`, `%2F`, as RFC 3986
/// section 2.1 writes an octet), everything else as it is, so names without them
/// (every address, most names) read the same in etcd.
pub(crate) fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '%' => out.push_str("%25"),
            '/' => out.push_str("%2F"),
            c => out.push(c),
        }
    }
    out
}

/// The inverse of [`encode_segment`]; `None` for a `%` not followed by two hex digits
/// or an encoding that is not UTF-8 (a key some other writer made).
pub(crate) fn decode_segment(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The end of the key range holding every key that starts with `prefix` (etcd's
/// convention: the prefix with its last byte incremented, dropping trailing 0xff bytes).
pub(crate) fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0] // the whole keyspace
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_names_are_stable() {
        assert_eq!(
            layout_name(&Layout::TWITTER),
            "ts41-w10-seq12-tick1ms-epoch1288834974657"
        );
        let keys = Keys::new("prod");
        assert_eq!(
            keys.worker(&Layout::TWITTER, 7),
            "/ringleader/prod/idgen/ts41-w10-seq12-tick1ms-epoch1288834974657/workers/7"
        );
        assert_eq!(
            keys.backends_prefix("app"),
            "/ringleader/prod/upstreams/app/backends/"
        );
    }

    #[test]
    fn segments_round_trip_and_plain_names_stay_as_they_are() {
        for s in ["api/v1", "[::1]:80", "p-1", "100%", "a%2Fb", "", "é/%/x"] {
            let e = encode_segment(s);
            assert!(!e.contains('/'), "{e}");
            assert_eq!(decode_segment(&e).as_deref(), Some(s), "{e}");
        }
        assert_eq!(encode_segment("127.0.0.1:80"), "127.0.0.1:80");
        assert_eq!(encode_segment("api/v1"), "api%2Fv1");
        assert_eq!(decode_segment("a%2"), None);
        assert_eq!(decode_segment("a%zz"), None);
        assert_eq!(decode_segment("%FF"), None, "not UTF-8");
    }

    #[test]
    fn prefix_end_increments_the_last_byte() {
        assert_eq!(prefix_end(b"/a/"), b"/a0".to_vec());
        assert_eq!(prefix_end(b"a\xff"), b"b".to_vec());
        assert_eq!(prefix_end(b"\xff"), vec![0]);
    }
}
