//! TLS termination: the certificates of `[[server.tls]]` chosen by SNI, the
//! rustls server config (TLS 1.2 and 1.3, ALPN `h2` then `http/1.1`), and the
//! handshake of a client connection.
mod load;

pub(crate) use load::{load_ca, load_entry, CertFiles, CertProblem};

use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

/// The crypto provider: rustls on *ring*.
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// What a `hosts` entry is: an exact name or a `*.suffix` wildcard; `None` when it
/// is neither (names are compared lowercase).
pub(crate) fn host_pattern(host: &str) -> Option<HostPattern> {
    let h = host.to_ascii_lowercase();
    let (wild, name) = match h.strip_prefix("*.") {
        Some(rest) => (true, rest.to_string()),
        None => (false, h),
    };
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if name.is_empty() || name.len() > 253 || !name.split('.').all(label_ok) {
        return None;
    }
    Some(if wild {
        HostPattern::Wildcard(name)
    } else {
        HostPattern::Exact(name)
    })
}

/// A `hosts` entry, parsed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum HostPattern {
    /// `api.example.com`.
    Exact(String),
    /// `*.example.com`: one more label in front of `example.com`.
    Wildcard(String),
}

/// The certificates of a TLS listener, by the name a client asks for.
#[derive(Debug, Default)]
pub(crate) struct CertStore {
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// Keyed by the suffix after `*.`.
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    default: Option<Arc<CertifiedKey>>,
}

impl CertStore {
    /// Load every entry (checked as `ringleader check` checks them, at `now`).
    pub(crate) fn load(
        entries: &[CertFiles<'_>],
        provider: &CryptoProvider,
        now: SystemTime,
    ) -> Result<CertStore, CertProblem> {
        let mut store = CertStore::default();
        for e in entries {
            let key = load_entry(e, provider, now)?;
            if e.hosts.is_empty() {
                store.default = Some(key.clone());
            }
            for h in &e.hosts {
                match host_pattern(h) {
                    Some(HostPattern::Exact(n)) => {
                        store.exact.insert(n, key.clone());
                    }
                    Some(HostPattern::Wildcard(n)) => {
                        store.wildcard.insert(n, key.clone());
                    }
                    // Validation rejects these; a store never serves them.
                    None => {}
                }
            }
        }
        Ok(store)
    }

    /// The certificate for SNI `name`: exact, then wildcard one label up, then
    /// the default. `None` = no certificate for that name.
    pub(crate) fn pick(&self, name: Option<&str>) -> Option<Arc<CertifiedKey>> {
        if let Some(name) = name {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            if let Some(k) = self.exact.get(&name) {
                return Some(k.clone());
            }
            if let Some((_, parent)) = name.split_once('.') {
                if let Some(k) = self.wildcard.get(parent) {
                    return Some(k.clone());
                }
            }
        }
        self.default.clone()
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.pick(hello.server_name())
    }
}

/// The rustls config of a TLS listener serving `store`.
pub(crate) fn server_config(
    store: Arc<CertStore>,
    provider: Arc<CryptoProvider>,
) -> Result<Arc<rustls::ServerConfig>, rustls::Error> {
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_cert_resolver(store);
    // RFC 7301: the server picks by its own preference among the client's offers.
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    cfg.ignore_client_order = true;
    Ok(Arc::new(cfg))
}

/// A listener's TLS: the certificates and the rustls config serving them,
/// swapped whole on reload.
#[derive(Debug)]
pub(crate) struct Certs {
    pub(crate) store: Arc<CertStore>,
    pub(crate) config: Arc<rustls::ServerConfig>,
}

impl Certs {
    /// Load `entries` into a new config.
    pub(crate) fn load(entries: &[CertFiles<'_>]) -> Result<Certs, String> {
        let provider = provider();
        let store = Arc::new(
            CertStore::load(entries, &provider, SystemTime::now()).map_err(|e| e.to_string())?,
        );
        let config = server_config(store.clone(), provider).map_err(|e| e.to_string())?;
        Ok(Certs { store, config })
    }
}

/// A fatal TLS alert `unrecognized_name` (RFC 6066 §3, code 112; RFC 8446 §6: a
/// plaintext alert record, as no keys are agreed yet): what a client asking for a
/// name no certificate serves gets, when there is no default certificate.
pub(crate) const UNRECOGNIZED_NAME_ALERT: [u8; 7] = [
    0x15, // ContentType alert
    0x03, 0x03, // legacy_record_version TLS 1.2
    0x00, 0x02, // length
    0x02, // fatal
    0x70, // unrecognized_name (112)
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_patterns() {
        assert_eq!(
            host_pattern("API.example.com"),
            Some(HostPattern::Exact("api.example.com".into()))
        );
        assert_eq!(
            host_pattern("*.example.com"),
            Some(HostPattern::Wildcard("example.com".into()))
        );
        for bad in [
            "", "*", "a.*.com", "*.", "a..b", "-a.com", "a b", "a/b", "*.*.a",
        ] {
            assert_eq!(host_pattern(bad), None, "{bad}");
        }
    }
}
