//! A `tls_config` section → a rustls client setup, with prometheus/common's
//! error texts. Roots are the CA file's certificates, or the system's as Go
//! finds them (`SSL_CERT_FILE`, then the usual bundle paths). Knows nothing
//! of connections.

use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use super::go_open_error;
use crate::config::{TlsConfig, TlsVersion};

/// The contents of a section's files and their hash, which tells when the
/// client must be rebuilt.
pub(super) struct TlsFiles {
    ca: Option<Vec<u8>>,
    cert_key: Option<(Vec<u8>, Vec<u8>)>,
    pub hash: u128,
}

impl TlsFiles {
    /// Reads the files named by `cfg`, with prometheus/common's texts for
    /// what is missing or unreadable.
    pub fn read(cfg: &TlsConfig) -> Result<TlsFiles, String> {
        let ca = if cfg.ca_file.is_empty() {
            None
        } else {
            let b = std::fs::read(&cfg.ca_file).map_err(|e| {
                format!(
                    "unable to load specified CA cert {}: {}",
                    cfg.ca_file,
                    go_open_error(&cfg.ca_file, &e)
                )
            })?;
            Some(b)
        };
        let cert_key = match (cfg.cert_file.is_empty(), cfg.key_file.is_empty()) {
            (true, true) => None,
            (false, true) => {
                return Err(format!(
                    "client cert file {:?} specified without client key file",
                    cfg.cert_file
                ));
            }
            (true, false) => {
                return Err(format!(
                    "client key file {:?} specified without client cert file",
                    cfg.key_file
                ));
            }
            (false, false) => {
                let read = |f: &str| std::fs::read(f).map_err(|e| go_open_error(f, &e));
                let pair = read(&cfg.cert_file).and_then(|c| Ok((c, read(&cfg.key_file)?)));
                Some(pair.map_err(|e| {
                    format!(
                        "unable to read specified client cert ({}) & key ({}): {e}",
                        cfg.cert_file, cfg.key_file
                    )
                })?)
            }
        };
        let mut h = xxhash_rust::xxh3::Xxh3::new();
        for part in [
            ca.as_deref(),
            cert_key.as_ref().map(|c| c.0.as_slice()),
            cert_key.as_ref().map(|c| c.1.as_slice()),
        ] {
            let part = part.unwrap_or_default();
            h.update(&(part.len() as u64).to_le_bytes());
            h.update(part);
        }
        Ok(TlsFiles {
            ca,
            cert_key,
            hash: h.digest128(),
        })
    }
}

/// Builds the rustls setup for `cfg` from the files' contents.
pub(super) fn client_config(
    cfg: &TlsConfig,
    files: &TlsFiles,
) -> Result<Arc<ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    if let (Some(min), Some(max)) = (cfg.min_version, cfg.max_version)
        && max < min
    {
        return Err("tls_config.max_version must be greater than or equal to tls_config.min_version if both are specified".to_string());
    }
    // rustls speaks TLS 1.2 and 1.3; a minimum of 1.0 or 1.1 allows both.
    let min = cfg.min_version.unwrap_or(TlsVersion::Tls12);
    let max = cfg.max_version.unwrap_or(TlsVersion::Tls13);
    let mut versions = Vec::new();
    if min <= TlsVersion::Tls12 && max >= TlsVersion::Tls12 {
        versions.push(&rustls::version::TLS12);
    }
    if max >= TlsVersion::Tls13 {
        versions.push(&rustls::version::TLS13);
    }
    if versions.is_empty() {
        return Err(format!(
            "tls_config.max_version {}: raymon speaks only TLS 1.2 and 1.3",
            max.as_str()
        ));
    }
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| e.to_string())?;
    let builder = if cfg.insecure_skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify(provider)))
    } else {
        let roots = match &files.ca {
            Some(pem) => {
                let mut roots = RootCertStore::empty();
                let mut added = 0;
                for cert in CertificateDer::pem_slice_iter(pem).flatten() {
                    if roots.add(cert).is_ok() {
                        added += 1;
                    }
                }
                if added == 0 {
                    return Err(format!("unable to use specified CA cert {}", cfg.ca_file));
                }
                Arc::new(roots)
            }
            None => system_roots(),
        };
        builder.with_root_certificates(roots)
    };
    let mut config = match &files.cert_key {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let bad = |e: String| {
                format!(
                    "unable to use specified client cert ({}) & key ({}): {e}",
                    cfg.cert_file, cfg.key_file
                )
            };
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert)
                .collect::<Result<_, _>>()
                .map_err(|e| bad(e.to_string()))?;
            if certs.is_empty() {
                return Err(bad(
                    "tls: failed to find any PEM data in certificate input".to_string()
                ));
            }
            let key = PrivateKeyDer::from_pem_slice(key)
                .map_err(|_| bad("tls: failed to find any PEM data in key input".to_string()))?;
            builder
                .with_client_auth_cert(certs, key)
                .map_err(|e| bad(e.to_string()))?
        }
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The system's trust anchors, read once: `SSL_CERT_FILE`, else the first
/// bundle that exists among the paths Go's `crypto/x509` tries on Linux,
/// plus every file in `SSL_CERT_DIR`.
fn system_roots() -> Arc<RootCertStore> {
    static ROOTS: OnceLock<Arc<RootCertStore>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            const BUNDLES: [&str; 6] = [
                "/etc/ssl/certs/ca-certificates.crt",
                "/etc/pki/tls/certs/ca-bundle.crt",
                "/etc/ssl/ca-bundle.pem",
                "/etc/pki/tls/cacert.pem",
                "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
                "/etc/ssl/cert.pem",
            ];
            let mut files: Vec<std::path::PathBuf> = match std::env::var_os("SSL_CERT_FILE") {
                Some(f) => vec![f.into()],
                None => BUNDLES
                    .iter()
                    .map(std::path::PathBuf::from)
                    .filter(|p| p.exists())
                    .take(1)
                    .collect(),
            };
            if let Some(dir) = std::env::var_os("SSL_CERT_DIR")
                && let Ok(entries) = std::fs::read_dir(dir)
            {
                files.extend(entries.flatten().map(|e| e.path()));
            }
            let mut roots = RootCertStore::empty();
            for f in files {
                if let Ok(pem) = std::fs::read(&f) {
                    for cert in CertificateDer::pem_slice_iter(&pem).flatten() {
                        let _ = roots.add(cert);
                    }
                }
            }
            Arc::new(roots)
        })
        .clone()
}

/// `insecure_skip_verify: true`: any certificate is accepted, as Go's
/// `InsecureSkipVerify`; handshake signatures are still checked, so the
/// connection is at least to whoever holds the certificate's key.
#[derive(Debug)]
struct NoVerify(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Go's text for a failed handshake, where rustls's error has one.
pub(super) fn describe(e: &rustls::Error) -> String {
    use rustls::CertificateError as C;
    match e {
        rustls::Error::InvalidCertificate(c) => match c {
            C::UnknownIssuer | C::BadSignature => {
                "x509: certificate signed by unknown authority".to_string()
            }
            C::NotValidForNameContext {
                expected,
                presented,
            } => format!(
                "x509: certificate is valid for {}, not {}",
                presented.join(", "),
                expected.to_str()
            ),
            C::NotValidForName => "x509: certificate is not valid for the server name".to_string(),
            C::Expired
            | C::ExpiredContext { .. }
            | C::NotValidYet
            | C::NotValidYetContext { .. } => {
                format!("x509: certificate has expired or is not yet valid: {c:?}")
            }
            other => format!("x509: {other:?}"),
        },
        rustls::Error::AlertReceived(alert) => {
            format!("remote error: tls: {}", alert_words(&format!("{alert:?}")))
        }
        other => format!("tls: {other}"),
    }
}

/// Go's name of a TLS alert from rustls's: `BadCertificate` → `bad certificate`.
fn alert_words(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push(' ');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}
