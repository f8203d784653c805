//! rustls server configuration with certificate hot-reload and optional
//! client-certificate authentication.
//!
//! The serving certificate and key are re-read when either file changes on disk
//! (checked on every handshake with one `stat` per file, so a rotated Secret is
//! used by the very next connection). A new pair that does not load is logged
//! and the previous pair keeps serving.

use std::{
    fs::Metadata,
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, PoisonError},
    time::SystemTime,
};

use rustls::{
    RootCertStore, ServerConfig,
    crypto::CryptoProvider,
    server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier},
    sign::CertifiedKey,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject as _};

use crate::args::TlsArgs;

/// Errors loading TLS material; each names the file involved.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A file held no PEM certificate, or a malformed one.
    #[error("no valid PEM certificate in {path}{}", detail.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
    NoCertificate {
        /// The file.
        path: PathBuf,
        /// The parser's complaint, if any.
        detail: Option<String>,
    },
    /// A file held no usable PEM private key.
    #[error("no valid PEM private key in {path}: {detail}")]
    NoPrivateKey {
        /// The file.
        path: PathBuf,
        /// The parser's complaint.
        detail: String,
    },
    /// The key could not be used with the certificate (wrong type or not matching).
    #[error("private key {key} does not fit certificate {cert}: {source}")]
    KeyMismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// What rustls reported.
        source: rustls::Error,
    },
    /// The client CA file could not be used to verify client certificates.
    #[error("cannot use client CA file {path}: {detail}")]
    ClientCa {
        /// The CA file.
        path: PathBuf,
        /// What was wrong.
        detail: String,
    },
    /// rustls rejected the configuration.
    #[error("invalid TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

/// The ring crypto provider every Tailor TLS endpoint uses.
pub fn crypto_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Installs ring as the process-wide rustls provider (call first in `main`);
/// does nothing if a provider is already installed.
pub fn install_crypto_provider() {
    // An Err only means another provider is already installed, which is fine.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Client-certificate verification for a TLS server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientAuth {
    /// PEM file with the CA certificates that sign acceptable client certificates.
    pub ca_file: PathBuf,
    /// Reject connections without a client certificate (`true`), or let them in
    /// without a [`PeerCertificate`] (`false`) so handlers can fall back to other auth.
    pub required: bool,
}

/// The verified client certificate of a connection, added to every request on
/// that connection as an extension (`Option<Extension<PeerCertificate>>` in axum).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerCertificate {
    /// The leaf certificate, DER.
    pub der: CertificateDer<'static>,
    /// The subject's first common name (CN), when present: the user name in
    /// Kubernetes client-certificate auth.
    pub common_name: Option<String>,
    /// The subject's organisations (O): the groups in Kubernetes client-certificate auth.
    pub organisations: Vec<String>,
}

impl PeerCertificate {
    /// Extracts the names from a DER certificate; `None` if it does not parse.
    pub fn from_der(der: CertificateDer<'static>) -> Option<Self> {
        use x509_parser::prelude::{FromDer as _, X509Certificate};
        let (_, cert) = X509Certificate::from_der(der.as_ref()).ok()?;
        let subject = cert.subject();
        let common_name = subject
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .map(str::to_owned);
        let organisations = subject
            .iter_organization()
            .filter_map(|o| o.as_str().ok())
            .map(str::to_owned)
            .collect();
        Some(Self {
            der,
            common_name,
            organisations,
        })
    }
}

/// Builds a server configuration serving `args`'s certificate with hot reload,
/// ALPN h2 and http/1.1, and optional client-certificate verification.
pub fn server_config(
    args: &TlsArgs,
    client_auth: Option<&ClientAuth>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = crypto_provider();
    let resolver = Arc::new(ReloadingCertResolver::new(
        &args.tls_cert_file,
        &args.tls_private_key_file,
        provider.clone(),
    )?);
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let builder = match client_auth {
        None => builder.with_no_client_auth(),
        Some(auth) => {
            let roots = load_roots(&auth.ca_file)?;
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = if auth.required {
                verifier
            } else {
                verifier.allow_unauthenticated()
            };
            let verifier = verifier.build().map_err(|err| TlsError::ClientCa {
                path: auth.ca_file.clone(),
                detail: err.to_string(),
            })?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn load_roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let certs = read_certs(path)?;
    let mut roots = RootCertStore::empty();
    for cert in certs {
        roots.add(cert).map_err(|err| TlsError::ClientCa {
            path: path.to_owned(),
            detail: err.to_string(),
        })?;
    }
    Ok(roots)
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    parse_certs(path, &read(path)?)
}

fn parse_certs(path: &Path, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| TlsError::NoCertificate {
            path: path.to_owned(),
            detail: Some(err.to_string()),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_owned(),
            detail: None,
        });
    }
    Ok(certs)
}

/// Identifies one version of a file: a changed inode (atomic symlink swap, as
/// in Kubernetes Secret volumes), size or mtime means it must be re-read.
#[derive(Clone, Debug, PartialEq, Eq)]
struct FileStamp {
    inode: u64,
    len: u64,
    modified: Option<SystemTime>,
}

impl FileStamp {
    fn of(meta: &Metadata) -> Self {
        Self {
            inode: meta.ino(),
            len: meta.len(),
            modified: meta.modified().ok(),
        }
    }
}

#[derive(Debug)]
struct Loaded {
    key: Arc<CertifiedKey>,
    /// Stamps of the files as last examined, loaded or not, so a bad file is
    /// reported once rather than on every handshake.
    seen: Option<(FileStamp, FileStamp)>,
    /// The PEM bytes behind `key`, to skip re-parsing identical content.
    pem: (Vec<u8>, Vec<u8>),
}

/// A [`ResolvesServerCert`] that serves the certificate and key from two PEM
/// files and reloads them when either file changes.
#[derive(Debug)]
pub struct ReloadingCertResolver {
    cert_path: PathBuf,
    key_path: PathBuf,
    provider: Arc<CryptoProvider>,
    state: Mutex<Loaded>,
}

impl ReloadingCertResolver {
    /// Loads the pair once; fails if it does not load now, naming the file.
    pub fn new(
        cert_path: &Path,
        key_path: &Path,
        provider: Arc<CryptoProvider>,
    ) -> Result<Self, TlsError> {
        let seen = stamps(cert_path, key_path);
        let cert_pem = read(cert_path)?;
        let key_pem = read(key_path)?;
        let key = load_pair(cert_path, &cert_pem, key_path, &key_pem, &provider)?;
        Ok(Self {
            cert_path: cert_path.to_owned(),
            key_path: key_path.to_owned(),
            provider,
            state: Mutex::new(Loaded {
                key,
                seen: seen.ok(),
                pem: (cert_pem, key_pem),
            }),
        })
    }

    /// The pair to serve now, reloading first if either file changed.
    pub fn current(&self) -> Arc<CertifiedKey> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let now = match stamps(&self.cert_path, &self.key_path) {
            Ok(now) => Some(now),
            Err(err) => {
                if state.seen.is_some() {
                    tracing::error!(error = %err, "cannot check TLS files; serving the previous certificate");
                }
                None
            }
        };
        if now.is_some() && now != state.seen {
            state.seen = now;
            match self.reload(&state.pem) {
                Ok(Some((key, pem))) => {
                    tracing::info!(cert = %self.cert_path.display(), "reloaded TLS certificate");
                    state.key = key;
                    state.pem = pem;
                }
                Ok(None) => {}
                Err(err) => {
                    tracing::error!(error = %err, "cannot reload TLS certificate; serving the previous one");
                }
            }
        }
        state.key.clone()
    }

    /// Reads both files; `None` when the content is unchanged.
    #[allow(clippy::type_complexity)]
    fn reload(
        &self,
        loaded: &(Vec<u8>, Vec<u8>),
    ) -> Result<Option<(Arc<CertifiedKey>, (Vec<u8>, Vec<u8>))>, TlsError> {
        let cert_pem = read(&self.cert_path)?;
        let key_pem = read(&self.key_path)?;
        if cert_pem == loaded.0 && key_pem == loaded.1 {
            return Ok(None);
        }
        let key = load_pair(
            &self.cert_path,
            &cert_pem,
            &self.key_path,
            &key_pem,
            &self.provider,
        )?;
        Ok(Some((key, (cert_pem, key_pem))))
    }
}

impl ResolvesServerCert for ReloadingCertResolver {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

fn stamps(cert: &Path, key: &Path) -> Result<(FileStamp, FileStamp), TlsError> {
    let stat = |path: &Path| {
        std::fs::metadata(path)
            .map(|m| FileStamp::of(&m))
            .map_err(|source| TlsError::Read {
                path: path.to_owned(),
                source,
            })
    };
    Ok((stat(cert)?, stat(key)?))
}

fn load_pair(
    cert_path: &Path,
    cert_pem: &[u8],
    key_path: &Path,
    key_pem: &[u8],
    provider: &CryptoProvider,
) -> Result<Arc<CertifiedKey>, TlsError> {
    let certs = parse_certs(cert_path, cert_pem)?;
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|err| TlsError::NoPrivateKey {
        path: key_path.to_owned(),
        detail: err.to_string(),
    })?;
    let certified =
        CertifiedKey::from_der(certs, key, provider).map_err(|source| TlsError::KeyMismatch {
            cert: cert_path.to_owned(),
            key: key_path.to_owned(),
            source,
        })?;
    Ok(Arc::new(certified))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use rcgen::{CertificateParams, DnType, KeyPair};

    /// A self-signed serving certificate for `localhost`.
    pub(crate) fn self_signed(cn: &str) -> (String, String, Vec<u8>) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        let cert = params.self_signed(&key).unwrap();
        (cert.pem(), key.serialize_pem(), cert.der().to_vec())
    }

    fn write_pair(dir: &Path, cert: &str, key: &str) -> TlsArgs {
        let args = TlsArgs {
            tls_cert_file: dir.join("tls.crt"),
            tls_private_key_file: dir.join("tls.key"),
        };
        std::fs::write(&args.tls_cert_file, cert).unwrap();
        std::fs::write(&args.tls_private_key_file, key).unwrap();
        args
    }

    #[test]
    fn resolver_reloads_changed_files_and_keeps_old_pair_on_bad_input() {
        let dir = tempfile::tempdir().unwrap();
        let (cert_a, key_a, der_a) = self_signed("a");
        let args = write_pair(dir.path(), &cert_a, &key_a);
        let resolver = ReloadingCertResolver::new(
            &args.tls_cert_file,
            &args.tls_private_key_file,
            crypto_provider(),
        )
        .unwrap();
        assert_eq!(resolver.current().cert[0].as_ref(), der_a.as_slice());

        // A key that does not match the certificate: keep serving A.
        let (cert_b, key_b, der_b) = self_signed("b");
        std::fs::write(&args.tls_cert_file, &cert_b).unwrap();
        assert_eq!(resolver.current().cert[0].as_ref(), der_a.as_slice());

        // Garbage in the certificate file: still A.
        std::fs::write(&args.tls_cert_file, "not a pem").unwrap();
        assert_eq!(resolver.current().cert[0].as_ref(), der_a.as_slice());

        // A consistent new pair: B.
        write_pair(dir.path(), &cert_b, &key_b);
        assert_eq!(resolver.current().cert[0].as_ref(), der_b.as_slice());

        // Files removed: keep B.
        std::fs::remove_file(&args.tls_cert_file).unwrap();
        assert_eq!(resolver.current().cert[0].as_ref(), der_b.as_slice());
    }

    #[test]
    fn startup_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, _, _) = self_signed("a");
        let args = write_pair(dir.path(), &cert, "no key here");
        let err = server_config(&args, None).unwrap_err();
        assert!(matches!(err, TlsError::NoPrivateKey { .. }), "{err}");
        assert!(err.to_string().contains("tls.key"), "{err}");

        let missing = TlsArgs {
            tls_cert_file: dir.path().join("absent.crt"),
            tls_private_key_file: args.tls_private_key_file.clone(),
        };
        let err = server_config(&missing, None).unwrap_err();
        assert!(err.to_string().contains("absent.crt"), "{err}");

        let (_, key, _) = self_signed("a");
        let args = write_pair(dir.path(), "", &key);
        let err = server_config(&args, None).unwrap_err();
        assert!(matches!(err, TlsError::NoCertificate { .. }), "{err}");
    }

    #[test]
    fn client_ca_file_must_hold_certificates() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key, _) = self_signed("a");
        let args = write_pair(dir.path(), &cert, &key);
        let ca_file = dir.path().join("ca.crt");
        std::fs::write(&ca_file, "").unwrap();
        let auth = ClientAuth {
            ca_file,
            required: true,
        };
        let err = server_config(&args, Some(&auth)).unwrap_err();
        assert!(err.to_string().contains("ca.crt"), "{err}");
    }

    #[test]
    fn peer_names_come_from_the_subject() {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "front-proxy-client");
        params
            .distinguished_name
            .push(DnType::OrganizationName, "system:masters");
        let cert = params.self_signed(&key).unwrap();
        let peer = PeerCertificate::from_der(cert.der().clone()).unwrap();
        assert_eq!(peer.common_name.as_deref(), Some("front-proxy-client"));
        assert_eq!(peer.organisations, vec!["system:masters".to_owned()]);
        assert!(PeerCertificate::from_der(CertificateDer::from(vec![1, 2, 3])).is_none());
    }
}
