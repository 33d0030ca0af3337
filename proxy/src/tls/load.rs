//! Reading `[[server.tls]]` files: PEM certificate chains and keys, checked for a
//! key that matches its certificate and for validity dates, with errors that name
//! the file and the reason.
use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Why a certificate entry cannot be served; its `Display` names the file.
#[derive(Debug)]
pub(crate) enum CertProblem {
    /// The file could not be read.
    Read(PathBuf, std::io::Error),
    /// The certificate file is not PEM, or holds no `CERTIFICATE` block.
    CertPem(PathBuf, rustls_pki_types::pem::Error),
    /// The key file is not PEM, or holds no private key block.
    KeyPem(PathBuf, rustls_pki_types::pem::Error),
    /// The certificate does not parse as X.509.
    CertDer(PathBuf, String),
    /// The key is of a kind the crypto provider cannot sign with.
    KeyKind(PathBuf, rustls::Error),
    /// The key is not the certificate's.
    Mismatch {
        /// The key file.
        key: PathBuf,
        /// The certificate file.
        cert: PathBuf,
    },
    /// The certificate's notAfter is in the past.
    Expired(PathBuf, SystemTime),
    /// The certificate's notBefore is in the future.
    NotYetValid(PathBuf, SystemTime),
}

impl CertProblem {
    /// Whether the problem is the key's (else the certificate's): where a config
    /// error points when one file holds both.
    pub(crate) fn is_key(&self) -> bool {
        matches!(
            self,
            CertProblem::KeyPem(..) | CertProblem::KeyKind(..) | CertProblem::Mismatch { .. }
        )
    }

    /// The file the problem is in.
    pub(crate) fn path(&self) -> &Path {
        match self {
            CertProblem::Read(p, _)
            | CertProblem::CertPem(p, _)
            | CertProblem::KeyPem(p, _)
            | CertProblem::CertDer(p, _)
            | CertProblem::KeyKind(p, _)
            | CertProblem::Expired(p, _)
            | CertProblem::NotYetValid(p, _) => p,
            CertProblem::Mismatch { key, .. } => key,
        }
    }
}

fn rfc3339(t: SystemTime) -> humantime::Rfc3339Timestamp {
    humantime::format_rfc3339_seconds(t)
}

fn pem_reason(e: &rustls_pki_types::pem::Error, what: &str) -> String {
    use rustls_pki_types::pem::Error as Pem;
    // The markers as text: the crate's own message shows them as lists of bytes.
    let text = |b: &[u8]| String::from_utf8_lossy(b).trim().to_string();
    match e {
        Pem::NoItemsFound => format!("holds no {what} PEM block"),
        Pem::MissingSectionEnd { end_marker } => format!(
            "is not valid PEM (a block does not end: no line \"-----END {}-----\")",
            text(end_marker)
        ),
        Pem::IllegalSectionStart { line } => format!(
            "is not valid PEM (a block starts with an invalid line {:?})",
            text(line)
        ),
        other => format!("is not valid PEM ({other})"),
    }
}

impl fmt::Display for CertProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CertProblem::Read(p, e) => write!(f, "cannot read {}: {e}", p.display()),
            CertProblem::CertPem(p, e) => write!(
                f,
                "certificate file {} {}",
                p.display(),
                pem_reason(e, "CERTIFICATE")
            ),
            CertProblem::KeyPem(p, e) => write!(
                f,
                "key file {} {}",
                p.display(),
                pem_reason(e, "PRIVATE KEY")
            ),
            CertProblem::CertDer(p, e) => {
                write!(
                    f,
                    "certificate file {} is not an X.509 certificate: {e}",
                    p.display()
                )
            }
            CertProblem::KeyKind(p, e) => {
                write!(
                    f,
                    "key file {} holds a key that cannot be used: {e}",
                    p.display()
                )
            }
            CertProblem::Mismatch { key, cert } => write!(
                f,
                "key file {} does not match certificate {} (its public key differs)",
                key.display(),
                cert.display()
            ),
            CertProblem::Expired(p, t) => write!(
                f,
                "certificate {} expired on {} (notAfter)",
                p.display(),
                rfc3339(*t)
            ),
            CertProblem::NotYetValid(p, t) => write!(
                f,
                "certificate {} is not valid before {} (notBefore)",
                p.display(),
                rfc3339(*t)
            ),
        }
    }
}

fn read(path: &Path) -> Result<Vec<u8>, CertProblem> {
    std::fs::read(path).map_err(|e| CertProblem::Read(path.to_path_buf(), e))
}

fn at(secs: i64) -> SystemTime {
    match u64::try_from(secs) {
        Ok(s) => UNIX_EPOCH + Duration::from_secs(s),
        Err(_) => UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs()),
    }
}

/// The certificates of an upstream's `tls_ca` (`protocol = "h2"`) as trust roots:
/// the file must hold at least one PEM `CERTIFICATE` block and each must be a
/// certificate rustls can trust. Config validation and the upstream's TLS client
/// both read it here, so `ringleader check` rejects what a start or reload would.
pub(crate) fn load_ca(path: &Path) -> Result<rustls::RootCertStore, CertProblem> {
    let pem = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| CertProblem::CertPem(path.to_path_buf(), e))?;
    if certs.is_empty() {
        return Err(CertProblem::CertPem(
            path.to_path_buf(),
            rustls_pki_types::pem::Error::NoItemsFound,
        ));
    }
    let mut roots = rustls::RootCertStore::empty();
    for cert in certs {
        roots
            .add(cert)
            .map_err(|e| CertProblem::CertDer(path.to_path_buf(), e.to_string()))?;
    }
    Ok(roots)
}

/// One `[[server.tls]]` entry's files and names.
#[derive(Debug, Clone)]
pub(crate) struct CertFiles<'a> {
    /// The chain's PEM file.
    pub(crate) cert: &'a Path,
    /// The key's PEM file.
    pub(crate) key: &'a Path,
    /// The names it serves; empty = the default.
    pub(crate) hosts: Vec<&'a str>,
}

/// Load one `[[server.tls]]` entry: its chain and key, checked to match each
/// other and to be valid at `now`.
pub(crate) fn load_entry(
    entry: &CertFiles<'_>,
    provider: &CryptoProvider,
    now: SystemTime,
) -> Result<Arc<CertifiedKey>, CertProblem> {
    let cert_path = &entry.cert.to_path_buf();
    let key_path = &entry.key.to_path_buf();
    let cert_pem = read(cert_path)?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| CertProblem::CertPem(cert_path.clone(), e))?;
    let Some(leaf) = chain.first() else {
        return Err(CertProblem::CertPem(
            cert_path.clone(),
            rustls_pki_types::pem::Error::NoItemsFound,
        ));
    };
    let (_, parsed) = x509_parser::parse_x509_certificate(leaf)
        .map_err(|e| CertProblem::CertDer(cert_path.clone(), e.to_string()))?;
    let validity = parsed.validity();
    let not_before = at(validity.not_before.timestamp());
    let not_after = at(validity.not_after.timestamp());
    if now > not_after {
        return Err(CertProblem::Expired(cert_path.clone(), not_after));
    }
    if now < not_before {
        return Err(CertProblem::NotYetValid(cert_path.clone(), not_before));
    }
    let key_pem = read(key_path)?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| CertProblem::KeyPem(key_path.clone(), e))?;
    let signer = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| CertProblem::KeyKind(key_path.clone(), e))?;
    let certified = CertifiedKey::new(chain, signer);
    match certified.keys_match() {
        Ok(()) => Ok(Arc::new(certified)),
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            Err(CertProblem::Mismatch {
                key: key_path.clone(),
                cert: cert_path.clone(),
            })
        }
        // The provider cannot tell (no public key for this key type): trust the files.
        Err(rustls::Error::InconsistentKeys(_)) => Ok(Arc::new(certified)),
        Err(e) => Err(CertProblem::CertDer(cert_path.clone(), e.to_string())),
    }
}
