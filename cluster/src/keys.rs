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
    /// backend, under its lease.
    pub(crate) fn verdict(&self, upstream: &str, backend: &str, proxy: &str) -> String {
        format!("{}{upstream}/{backend}/{proxy}", self.health_prefix())
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
    fn prefix_end_increments_the_last_byte() {
        assert_eq!(prefix_end(b"/a/"), b"/a0".to_vec());
        assert_eq!(prefix_end(b"a\xff"), b"b".to_vec());
        assert_eq!(prefix_end(b"\xff"), vec![0]);
    }
}
