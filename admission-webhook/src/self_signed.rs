//! `--self-signed`: the webhook issues its own CA and serving certificate,
//! writes them where `--tls-cert-file`/`--tls-private-key-file` point (the
//! TLS layer reloads them on the next handshake), and renews both before
//! they expire.
//!
//! A serving certificate lives 30 days and is renewed after 20. The CA lives
//! a year and is renewed after two thirds of it; the new CA is published in
//! `caBundle` next to the old one, and serving switches to a certificate from
//! the new CA only once that bundle has been applied, so kube-apiserver never
//! meets a certificate it does not trust.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use tailor_runtime::args::TlsArgs;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::register::{CertificateKind, RegistrationMetrics};

/// How long a self-issued CA is valid.
pub const CA_VALIDITY: Duration = Duration::from_secs(365 * 24 * 3600);
/// How long a serving certificate is valid.
pub const SERVING_VALIDITY: Duration = Duration::from_secs(30 * 24 * 3600);
/// Certificates start this much in the past, for nodes whose clocks lag.
const BACKDATE: Duration = Duration::from_secs(300);
/// Wait before trying again when issuing or writing failed.
const RETRY: Duration = Duration::from_secs(60);

/// Issuing or writing a certificate failed.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// rcgen could not make a key or certificate.
    #[error("cannot issue the self-signed {what}: {source}")]
    Issue {
        /// `CA` or `serving certificate`.
        what: &'static str,
        /// rcgen's error.
        source: rcgen::Error,
    },
    /// The certificate or key file could not be written.
    #[error("cannot write {} (with --self-signed the webhook writes its certificate there; mount a writable emptyDir): {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

fn issue_error(what: &'static str) -> impl FnOnce(rcgen::Error) -> CertError {
    move |source| CertError::Issue { what, source }
}

/// The DNS names kube-apiserver may use for the Service.
pub fn service_names(service: &str, namespace: &str) -> Vec<String> {
    vec![
        service.to_owned(),
        format!("{service}.{namespace}"),
        format!("{service}.{namespace}.svc"),
        format!("{service}.{namespace}.svc.cluster.local"),
    ]
}

/// The moment two thirds of `[not_before, not_after]` have passed.
fn renew_at(not_before: SystemTime, not_after: SystemTime) -> SystemTime {
    let life = not_after.duration_since(not_before).unwrap_or_default();
    not_before + life * 2 / 3
}

struct Authority {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
    not_before: SystemTime,
    not_after: SystemTime,
}

impl Authority {
    fn new(now: SystemTime) -> Result<Self, CertError> {
        let key = KeyPair::generate().map_err(issue_error("CA"))?;
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(issue_error("CA"))?;
        let since_epoch = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        params.distinguished_name = DistinguishedName::new();
        // Unique per CA, so the two CAs of a rotation are told apart by name.
        params.distinguished_name.push(
            DnType::CommonName,
            format!("tailor-admission-webhook CA {since_epoch}"),
        );
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let not_before = now - BACKDATE;
        let not_after = now + CA_VALIDITY;
        params.not_before = not_before.into();
        params.not_after = not_after.into();
        let cert = params.self_signed(&key).map_err(issue_error("CA"))?;
        Ok(Self {
            issuer: Issuer::new(params, key),
            pem: cert.pem(),
            not_before,
            not_after,
        })
    }
}

/// A serving certificate and its key, PEM.
#[derive(Clone, Debug)]
pub struct Serving {
    /// The certificate.
    pub cert_pem: String,
    /// The PKCS#8 private key.
    pub key_pem: String,
    /// Valid from.
    pub not_before: SystemTime,
    /// Valid until.
    pub not_after: SystemTime,
}

fn issue_serving(ca: &Authority, names: &[String], now: SystemTime) -> Result<Serving, CertError> {
    let key = KeyPair::generate().map_err(issue_error("serving certificate"))?;
    let mut params =
        CertificateParams::new(names.to_vec()).map_err(issue_error("serving certificate"))?;
    params.distinguished_name = DistinguishedName::new();
    if let Some(name) = names.get(2).or(names.first()) {
        params
            .distinguished_name
            .push(DnType::CommonName, name.clone());
    }
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.use_authority_key_identifier_extension = true;
    let not_before = now - BACKDATE;
    let not_after = (now + SERVING_VALIDITY).min(ca.not_after);
    params.not_before = not_before.into();
    params.not_after = not_after.into();
    let cert = params
        .signed_by(&key, &ca.issuer)
        .map_err(issue_error("serving certificate"))?;
    Ok(Serving {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        not_before,
        not_after,
    })
}

/// The self-issued PKI: the current CA, the previous one while it is still
/// in `caBundle`, and the serving certificate.
pub struct SelfSigned {
    names: Vec<String>,
    ca: Authority,
    previous: Option<Authority>,
    serving: Serving,
}

impl SelfSigned {
    /// A new CA and a serving certificate for `names`, valid from `now`.
    ///
    /// # Errors
    /// When rcgen cannot generate a key or sign.
    pub fn new(names: Vec<String>, now: SystemTime) -> Result<Self, CertError> {
        let ca = Authority::new(now)?;
        let serving = issue_serving(&ca, &names, now)?;
        Ok(Self {
            names,
            ca,
            previous: None,
            serving,
        })
    }

    /// PEM for `caBundle`: the current CA, then the previous one if any.
    pub fn ca_bundle(&self) -> String {
        let mut bundle = self.ca.pem.clone();
        if let Some(previous) = &self.previous {
            bundle.push_str(&previous.pem);
        }
        bundle
    }

    /// The certificate being served.
    pub fn serving(&self) -> &Serving {
        &self.serving
    }

    /// Whether the CA has passed two thirds of its life.
    pub fn ca_due(&self, now: SystemTime) -> bool {
        now >= renew_at(self.ca.not_before, self.ca.not_after)
    }

    /// When the next renewal (serving certificate or CA) is due.
    pub fn next_renewal(&self) -> SystemTime {
        renew_at(self.serving.not_before, self.serving.not_after)
            .min(renew_at(self.ca.not_before, self.ca.not_after))
    }

    /// Replaces the CA; the old one stays in [`Self::ca_bundle`] (replacing
    /// any older one) so certificates it signed keep verifying. The serving
    /// certificate is not changed: call [`Self::renew_serving`] once the new
    /// bundle is applied.
    ///
    /// # Errors
    /// When rcgen fails; nothing changes then.
    pub fn rotate_ca(&mut self, now: SystemTime) -> Result<(), CertError> {
        let ca = Authority::new(now)?;
        self.previous = Some(std::mem::replace(&mut self.ca, ca));
        Ok(())
    }

    /// Issues a new serving certificate from the current CA.
    ///
    /// # Errors
    /// When rcgen fails; nothing changes then.
    pub fn renew_serving(&mut self, now: SystemTime) -> Result<(), CertError> {
        self.serving = issue_serving(&self.ca, &self.names, now)?;
        Ok(())
    }

    /// Writes the serving key, then the certificate, each atomically (a
    /// temporary file renamed over the target; the key readable by the owner
    /// only). The TLS layer reloads on the next handshake.
    ///
    /// # Errors
    /// Naming the file that could not be written.
    pub fn write(&self, tls: &TlsArgs) -> Result<(), CertError> {
        write_atomically(&tls.tls_private_key_file, &self.serving.key_pem, 0o600)?;
        write_atomically(&tls.tls_cert_file, &self.serving.cert_pem, 0o644)
    }
}

fn write_atomically(path: &Path, content: &str, mode: u32) -> Result<(), CertError> {
    let err = |source| CertError::Write {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(err)?;
    file.write_all(content.as_bytes()).map_err(err)?;
    file.sync_all().map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

/// Renews the certificates as they come due until `shutdown`: a new CA is
/// published on `bundles` and serving switches to it once `applied` shows
/// that bundle applied; serving certificates are written to `tls`'s files.
pub async fn keep_rotating(
    mut certs: SelfSigned,
    tls: TlsArgs,
    bundles: watch::Sender<Option<String>>,
    mut applied: watch::Receiver<Option<String>>,
    metrics: RegistrationMetrics,
    shutdown: CancellationToken,
) {
    let mut wait = certs
        .next_renewal()
        .duration_since(SystemTime::now())
        .unwrap_or_default();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
        wait = RETRY;
        let now = SystemTime::now();
        if certs.ca_due(now) {
            if let Err(err) = certs.rotate_ca(now) {
                tracing::error!(error = %err, "CA renewal failed; retrying in a minute");
                continue;
            }
            metrics.issued(CertificateKind::Ca);
            let bundle = certs.ca_bundle();
            bundles.send_replace(Some(bundle.clone()));
            tracing::info!("new webhook CA issued; waiting for caBundle to be applied");
            tokio::select! {
                () = shutdown.cancelled() => return,
                seen = applied.wait_for(|a| a.as_deref() == Some(bundle.as_str())) => {
                    if seen.is_err() {
                        return;
                    }
                }
            }
        }
        match certs
            .renew_serving(SystemTime::now())
            .and_then(|()| certs.write(&tls))
        {
            Ok(()) => {
                metrics.issued(CertificateKind::Serving);
                tracing::info!(cert = %tls.tls_cert_file.display(), "serving certificate renewed");
                wait = certs
                    .next_renewal()
                    .duration_since(SystemTime::now())
                    .unwrap_or_default();
            }
            Err(err) => {
                tracing::error!(error = %err, "serving certificate renewal failed; retrying in a minute");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use rustls::RootCertStore;
    use rustls::client::WebPkiServerVerifier;
    use rustls::client::danger::ServerCertVerifier as _;
    use rustls_pki_types::pem::PemObject as _;
    use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
    use std::sync::Arc;

    const DAY: Duration = Duration::from_secs(24 * 3600);
    const NAME: &str = "tailor-admission-webhook.tailor-system.svc";

    /// Verifies `serving` for `name` at `at` the way kube-apiserver does:
    /// WebPKI path building from the `caBundle` roots.
    fn verify(bundle: &str, serving: &Serving, name: &str, at: SystemTime) -> Result<(), String> {
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(bundle.as_bytes()) {
            roots.add(cert.unwrap()).unwrap();
        }
        let verifier = WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots),
            tailor_runtime::tls::crypto_provider(),
        )
        .build()
        .unwrap();
        let leaf = CertificateDer::from_pem_slice(serving.cert_pem.as_bytes()).unwrap();
        let at = UnixTime::since_unix_epoch(at.duration_since(UNIX_EPOCH).unwrap());
        verifier
            .verify_server_cert(
                &leaf,
                &[],
                &ServerName::try_from(name.to_owned()).unwrap(),
                &[],
                at,
            )
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    fn certs_in(bundle: &str) -> usize {
        bundle.matches("BEGIN CERTIFICATE").count()
    }

    #[test]
    fn serves_the_service_names_and_renews_before_expiry() {
        let t0 = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let names = service_names("tailor-admission-webhook", "tailor-system");
        let mut certs = SelfSigned::new(names.clone(), t0).unwrap();
        let bundle = certs.ca_bundle();
        assert_eq!(certs_in(&bundle), 1);
        for name in &names {
            verify(&bundle, certs.serving(), name, t0).unwrap();
        }
        let wrong = verify(&bundle, certs.serving(), "other.tailor-system.svc", t0);
        assert!(wrong.is_err(), "{wrong:?}");
        let expired = verify(&bundle, certs.serving(), NAME, t0 + 31 * DAY);
        assert!(expired.is_err(), "{expired:?}");

        // Renewed after two thirds of its 30 days, from the same CA.
        let due = certs.next_renewal();
        assert!(due > t0 + 19 * DAY && due < t0 + 21 * DAY, "{due:?}");
        assert!(!certs.ca_due(due));
        certs.renew_serving(due).unwrap();
        assert_eq!(certs.ca_bundle(), bundle);
        verify(&bundle, certs.serving(), NAME, t0 + 45 * DAY).unwrap();
    }

    #[test]
    fn ca_rotation_keeps_the_old_ca_trusted_until_the_next() {
        let t0 = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let mut certs = SelfSigned::new(
            service_names("tailor-admission-webhook", "tailor-system"),
            t0,
        )
        .unwrap();
        let first = certs.ca_bundle();
        assert!(!certs.ca_due(t0 + 243 * DAY));
        let at = t0 + 244 * DAY;
        assert!(certs.ca_due(at));
        // The serving certificate in use then came from a regular renewal.
        certs.renew_serving(at - 5 * DAY).unwrap();
        let old_serving = certs.serving().clone();
        certs.rotate_ca(at).unwrap();
        let both = certs.ca_bundle();
        assert_eq!(certs_in(&both), 2);
        assert!(both.ends_with(&first) && both != first);
        // Until the new bundle is applied the old certificate is served,
        // and it verifies against the new bundle too.
        assert_eq!(certs.serving().cert_pem, old_serving.cert_pem);
        verify(&both, &old_serving, NAME, at).unwrap();
        certs.renew_serving(at).unwrap();
        verify(&both, certs.serving(), NAME, at).unwrap();
        assert!(
            verify(&first, certs.serving(), NAME, at).is_err(),
            "signed by the new CA"
        );
        assert!(certs.next_renewal() < at + 21 * DAY);

        certs.rotate_ca(at + 244 * DAY).unwrap();
        let next = certs.ca_bundle();
        assert_eq!(certs_in(&next), 2);
        assert!(!next.contains(&first), "the oldest CA is dropped");
    }

    #[test]
    fn written_files_load_in_the_tls_layer() {
        let dir = tempfile::tempdir().unwrap();
        let tls = TlsArgs {
            tls_cert_file: dir.path().join("tls/tls.crt"),
            tls_private_key_file: dir.path().join("tls/tls.key"),
        };
        let certs = SelfSigned::new(service_names("svc", "ns"), SystemTime::now()).unwrap();
        certs.write(&tls).unwrap();
        tailor_runtime::tls::server_config(&tls, None).unwrap();
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&tls.tls_private_key_file)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(
            std::fs::read_to_string(&tls.tls_cert_file).unwrap(),
            certs.serving().cert_pem
        );
    }

    #[test]
    fn unwritable_path_is_named() {
        let certs = SelfSigned::new(service_names("svc", "ns"), SystemTime::now()).unwrap();
        let tls = TlsArgs {
            tls_cert_file: "/proc/tailor/tls.crt".into(),
            tls_private_key_file: "/proc/tailor/tls.key".into(),
        };
        let err = certs.write(&tls).unwrap_err().to_string();
        assert!(err.contains("/proc/tailor/tls.key"), "{err}");
    }
}
