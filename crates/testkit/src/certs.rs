//! A throw-away PKI made with rcgen: a CA, a server and a client certificate.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tempfile::TempDir;

use crate::{Error, Result};

/// One certificate and its private key, as PEM text and as files.
#[derive(Debug, Clone)]
pub struct PemFiles {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The PKCS#8 private key, PEM.
    pub key_pem: String,
    /// Where `cert_pem` is written.
    pub cert_path: PathBuf,
    /// Where `key_pem` is written.
    pub key_path: PathBuf,
    cert_der: CertificateDer<'static>,
    key_der: Vec<u8>,
}

impl PemFiles {
    /// The certificate, DER.
    pub fn cert_der(&self) -> CertificateDer<'static> {
        self.cert_der.clone()
    }

    /// The private key, DER.
    pub fn key_der(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone()))
    }
}

/// A CA, a server certificate for `localhost`/`127.0.0.1`, and a client certificate,
/// all written as PEM into a temp dir that is removed on drop.
#[derive(Debug)]
pub struct Pki {
    dir: TempDir,
    ca: PemFiles,
    server: PemFiles,
    client: PemFiles,
}

/// The ring crypto provider every config here is built with.
pub fn ring_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn cert_error(what: &'static str) -> impl FnOnce(rcgen::Error) -> Error {
    move |source| Error::Cert { what, source }
}

fn tls_error(what: &'static str) -> impl FnOnce(rustls::Error) -> Error {
    move |e| Error::Tls {
        what,
        message: e.to_string(),
    }
}

fn write_pair(
    dir: &Path,
    name: &str,
    cert: &rcgen::Certificate,
    key: &KeyPair,
) -> Result<PemFiles> {
    let cert_path = dir.join(format!("{name}.crt"));
    let key_path = dir.join(format!("{name}.key"));
    let cert_pem = cert.pem();
    let key_pem = key.serialize_pem();
    std::fs::write(&cert_path, &cert_pem).map_err(Error::io(&cert_path))?;
    std::fs::write(&key_path, &key_pem).map_err(Error::io(&key_path))?;
    Ok(PemFiles {
        cert_pem,
        key_pem,
        cert_path,
        key_path,
        cert_der: cert.der().clone(),
        key_der: key.serialize_der(),
    })
}

/// A CA name unique per PKI (the temp dir's random name), so two test CAs never
/// look like issuers of each other's certificates.
fn ca_name(dir: &Path) -> String {
    let unique = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    format!("tailor-testkit CA {unique}")
}

impl Pki {
    /// Generates the CA, the server certificate (SANs `localhost`, `127.0.0.1`) and a
    /// client certificate with subject `CN=client_cn` and, if given, `O=client_org`.
    pub fn generate(client_cn: &str, client_org: Option<&str>) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("tailor-pki-")
            .tempdir()
            .map_err(Error::io(std::env::temp_dir()))?;

        let ca_key = KeyPair::generate().map_err(cert_error("CA"))?;
        let mut ca_params =
            CertificateParams::new(Vec::<String>::new()).map_err(cert_error("CA"))?;
        ca_params.distinguished_name = DistinguishedName::new();
        ca_params
            .distinguished_name
            .push(DnType::CommonName, ca_name(dir.path()));
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca_params.self_signed(&ca_key).map_err(cert_error("CA"))?;
        let ca = write_pair(dir.path(), "ca", &ca_cert, &ca_key)?;
        let issuer = Issuer::new(ca_params, ca_key);

        let server_key = KeyPair::generate().map_err(cert_error("server"))?;
        let mut server_params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
                .map_err(cert_error("server"))?;
        server_params.distinguished_name = DistinguishedName::new();
        server_params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        server_params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        server_params.use_authority_key_identifier_extension = true;
        let server_cert = server_params
            .signed_by(&server_key, &issuer)
            .map_err(cert_error("server"))?;
        let server = write_pair(dir.path(), "server", &server_cert, &server_key)?;

        let client_key = KeyPair::generate().map_err(cert_error("client"))?;
        let mut client_params =
            CertificateParams::new(Vec::<String>::new()).map_err(cert_error("client"))?;
        client_params.distinguished_name = DistinguishedName::new();
        client_params
            .distinguished_name
            .push(DnType::CommonName, client_cn);
        if let Some(org) = client_org {
            client_params
                .distinguished_name
                .push(DnType::OrganizationName, org);
        }
        client_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        client_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        client_params.use_authority_key_identifier_extension = true;
        let client_cert = client_params
            .signed_by(&client_key, &issuer)
            .map_err(cert_error("client"))?;
        let client = write_pair(dir.path(), "client", &client_cert, &client_key)?;

        Ok(Self {
            dir,
            ca,
            server,
            client,
        })
    }

    /// The directory holding `ca.crt`, `ca.key`, `server.crt`, `server.key`,
    /// `client.crt` and `client.key`.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The CA certificate and key.
    pub fn ca(&self) -> &PemFiles {
        &self.ca
    }

    /// The server certificate (`localhost`, `127.0.0.1`) and key.
    pub fn server(&self) -> &PemFiles {
        &self.server
    }

    /// The client certificate and key.
    pub fn client(&self) -> &PemFiles {
        &self.client
    }

    /// A root store holding only this CA.
    pub fn roots(&self) -> Result<RootCertStore> {
        let mut roots = RootCertStore::empty();
        roots
            .add(self.ca.cert_der())
            .map_err(tls_error("root store"))?;
        Ok(roots)
    }

    /// A client config that trusts this CA and presents no client certificate.
    pub fn client_config(&self) -> Result<ClientConfig> {
        Ok(ClientConfig::builder_with_provider(ring_provider())
            .with_safe_default_protocol_versions()
            .map_err(tls_error("client config"))?
            .with_root_certificates(self.roots()?)
            .with_no_client_auth())
    }

    /// A client config that trusts this CA and presents the client certificate.
    pub fn client_config_with_cert(&self) -> Result<ClientConfig> {
        ClientConfig::builder_with_provider(ring_provider())
            .with_safe_default_protocol_versions()
            .map_err(tls_error("client config"))?
            .with_root_certificates(self.roots()?)
            .with_client_auth_cert(vec![self.client.cert_der()], self.client.key_der())
            .map_err(tls_error("client config"))
    }

    /// A server config presenting the server certificate; no client authentication.
    pub fn server_config(&self) -> Result<ServerConfig> {
        ServerConfig::builder_with_provider(ring_provider())
            .with_safe_default_protocol_versions()
            .map_err(tls_error("server config"))?
            .with_no_client_auth()
            .with_single_cert(vec![self.server.cert_der()], self.server.key_der())
            .map_err(tls_error("server config"))
    }

    /// A server config presenting the server certificate and requiring a client
    /// certificate signed by this CA.
    pub fn server_config_requiring_client_cert(&self) -> Result<ServerConfig> {
        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::new(self.roots()?), ring_provider())
                .build()
                .map_err(|e| Error::Tls {
                    what: "client verifier",
                    message: e.to_string(),
                })?;
        ServerConfig::builder_with_provider(ring_provider())
            .with_safe_default_protocol_versions()
            .map_err(tls_error("server config"))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(vec![self.server.cert_der()], self.server.key_der())
            .map_err(tls_error("server config"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_all_pem_files() {
        let pki = Pki::generate("front-proxy-client", Some("system:masters")).unwrap();
        for files in [pki.ca(), pki.server(), pki.client()] {
            assert!(files.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
            assert!(files.key_pem.starts_with("-----BEGIN PRIVATE KEY-----"));
            assert_eq!(
                std::fs::read_to_string(&files.cert_path).unwrap(),
                files.cert_pem
            );
            assert_eq!(
                std::fs::read_to_string(&files.key_path).unwrap(),
                files.key_pem
            );
            assert!(files.cert_path.starts_with(pki.dir()));
        }
        let dir = pki.dir().to_owned();
        drop(pki);
        assert!(!dir.exists(), "temp dir {dir:?} must be removed on drop");
    }
}
