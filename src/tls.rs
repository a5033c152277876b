//! TLS for the harness's HTTP clients: the load's own client ([`crate::load::http`])
//! and the reqwest readiness probes. Everything goes through rustls with the `ring`
//! provider (aws-lc-rs would need cmake on every machine).
//!
//! Which servers are trusted is the scenario's `[load.tls]` (or `--tls-ca` /
//! `--tls-insecure`), read once into a [`TlsPlan`]:
//!
//! - by default, the platform's roots (`/etc/ssl/certs`, through rustls-native-certs);
//! - `ca_file`: only the CA certificates of that PEM file. A test stack's own CA is
//!   the usual case, so no built-in web roots are bundled;
//! - `insecure = true`: any certificate, for self-signed test stacks only. The
//!   handshake's signatures are still checked, so the connection is real TLS;
//!   only the question of who signed the certificate is skipped.
//!
//! The CA file is read and parsed while validating, so a missing or broken one is
//! bad input (exit 2) with its place in the scenario, never a failure mid-run.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{ring, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::scenario::{Problem, Source};

/// Whom the harness's HTTP clients trust when a URL is `https://`. Plain data: the
/// certificates are read at validation, the rustls config is made from them once
/// per client ([`TlsPlan::client_config`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TlsPlan {
    /// The CA file the roots came from, for people; `None`: the platform's roots.
    pub ca_file: Option<PathBuf>,
    /// The CA certificates of `ca_file`, DER.
    pub roots: Vec<CertificateDer<'static>>,
    /// Accept any server certificate (self-signed test stacks only).
    pub insecure: bool,
}

/// `[load.tls]` as written.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    /// A PEM file of CA certificates, relative to the scenario file.
    pub ca_file: Option<toml::Spanned<String>>,
    pub insecure: Option<toml::Spanned<bool>>,
}

impl TlsPlan {
    /// The rustls client configuration for this plan: ALPN `http/1.1` (the only
    /// protocol the clients speak), TLS 1.2 and 1.3.
    pub fn client_config(&self) -> Arc<ClientConfig> {
        let provider = Arc::new(ring::default_provider());
        let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .expect("the ring provider supports the default protocol versions");
        let mut config = if self.insecure {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnyServerCertificate {
                    algorithms: provider.signature_verification_algorithms,
                }))
                .with_no_client_auth()
        } else {
            builder
                .with_root_certificates(self.root_store())
                .with_no_client_auth()
        };
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(config)
    }

    fn root_store(&self) -> RootCertStore {
        let mut store = RootCertStore::empty();
        if self.ca_file.is_some() {
            // Checked at validation: every one of them parses.
            let _ = store.add_parsable_certificates(self.roots.iter().cloned());
            return store;
        }
        // Unreadable entries of the platform's store are skipped: with none left,
        // every handshake fails as an unknown issuer, reported as such.
        let native = rustls_native_certs::load_native_certs();
        for error in &native.errors {
            tracing::debug!("platform certificate store: {error}");
        }
        let _ = store.add_parsable_certificates(native.certs);
        store
    }

    /// A reqwest client for probes: `timeout` per request, this plan's TLS.
    pub fn probe_client(&self, timeout: std::time::Duration) -> reqwest::Client {
        reqwest::Client::builder()
            .timeout(timeout)
            .use_preconfigured_tls((*self.client_config()).clone())
            .build()
            .expect("a client with a rustls config builds")
    }
}

/// Trusts any server certificate, for `insecure = true`: test stacks whose
/// certificate is self-signed or made for another name. The handshake's signatures
/// are still verified with the certificate's key, so the peer holds that key and
/// the connection is encrypted as usual; only who signed the certificate is not
/// asked. Never the default.
#[derive(Debug)]
struct AcceptAnyServerCertificate {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for AcceptAnyServerCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
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
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Why a handshake failed, in words, when rustls said so; `None` when the
/// connection just broke (a replica killed mid-handshake is a reset, not a TLS
/// problem).
pub fn handshake_failure(error: &std::io::Error) -> Option<String> {
    let tls = error.get_ref()?.downcast_ref::<rustls::Error>()?;
    Some(format!("tls: {tls}"))
}

/// Reads `[load.tls]`: the CA file (relative to the scenario file; a value given on
/// the command line is relative to where the command runs), or `insecure`.
pub fn validate(
    source: &Source,
    settings: &[crate::overrides::Setting],
    raw: Option<&RawTls>,
) -> Result<TlsPlan, Vec<Problem>> {
    let Some(raw) = raw else {
        return Ok(TlsPlan::default());
    };
    let at = |span: Range<usize>, message: String| {
        vec![crate::overrides::locate(source, settings, span, message)]
    };
    let insecure = raw.insecure.as_ref().is_some_and(|i| *i.get_ref());
    let Some(ca_file) = &raw.ca_file else {
        return Ok(TlsPlan {
            insecure,
            ..TlsPlan::default()
        });
    };
    if insecure {
        return Err(at(
            ca_file.span(),
            "`load.tls.ca_file` and `load.tls.insecure = true` both say whom to trust; \
             keep `ca_file` to check the servers' certificates against it, or `insecure` \
             to check none"
                .into(),
        ));
    }
    // Spans past the text are command-line values ([`crate::overrides`]).
    let from_file = ca_file.span().start <= source.text.len();
    let path = match source.path.parent() {
        Some(dir) if from_file => dir.join(ca_file.get_ref()),
        _ => PathBuf::from(ca_file.get_ref()),
    };
    let roots = read_roots(&path).map_err(|why| {
        at(
            ca_file.span(),
            format!(
                "`load.tls.ca_file` = {:?}: {why}; give a PEM file of the CA certificates \
                 that signed the servers' certificates (-----BEGIN CERTIFICATE-----), \
                 or `insecure = true` for a self-signed test stack",
                ca_file.get_ref()
            ),
        )
    })?;
    Ok(TlsPlan {
        ca_file: Some(path),
        roots,
        insecure: false,
    })
}

/// The CA certificates of a PEM file, each one checked to be a certificate rustls
/// can use as a root.
fn read_roots(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let shown = path.display();
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{shown} is not a PEM file: {e}"))?;
    if certs.is_empty() {
        return Err(format!("{shown} holds no PEM certificate"));
    }
    let mut store = RootCertStore::empty();
    for (i, cert) in certs.iter().enumerate() {
        store
            .add(cert.clone())
            .map_err(|e| format!("certificate #{} of {shown} is not usable: {e}", i + 1))?;
    }
    Ok(certs)
}

/// Failure reasons by text, bounded: a misconfigured stack fails every handshake
/// the same way, and the report needs the reason once, with a count.
#[derive(Debug, Default)]
pub struct Reasons(std::sync::Mutex<BTreeMap<String, u64>>);

/// Different reasons kept; one beyond them is left out (its requests are still
/// counted by kind).
const MAX_REASONS: usize = 16;

impl Reasons {
    pub fn add(&self, reason: String) {
        let mut reasons = self.0.lock().expect("reasons lock");
        if let Some(n) = reasons.get_mut(&reason) {
            *n += 1;
        } else if reasons.len() < MAX_REASONS {
            reasons.insert(reason, 1);
        }
    }

    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        self.0.lock().expect("reasons lock").clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::overrides::Setting;

    /// Validates `[load.tls]` of a scenario in `dir`, with `settings` applied.
    fn validate_in(dir: &Path, toml: &str, settings: &[Setting]) -> Result<TlsPlan, String> {
        let source = Source {
            path: dir.join("s.toml"),
            text: format!(
                "name = \"t\"\nduration = \"1s\"\n[load]\nappends_per_session = 1\n[load.tls]\n{toml}"
            ),
        };
        let raw = crate::overrides::parse(&source, settings).map_err(|p| p.to_string())?;
        validate(&source, settings, raw.load.tls.as_ref()).map_err(|p| p[0].to_string())
    }

    #[test]
    fn the_ca_file_is_read_relative_to_the_scenario_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let pki = testing::pki();
        std::fs::write(dir.path().join("ca.pem"), &pki.ca_pem).unwrap();
        std::fs::write(dir.path().join("empty.pem"), "no certificate here\n").unwrap();
        std::fs::write(
            dir.path().join("broken.pem"),
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();

        let plan = validate_in(dir.path(), "ca_file = \"ca.pem\"", &[]).unwrap();
        assert_eq!(plan.roots, vec![pki.ca]);
        assert_eq!(plan.ca_file, Some(dir.path().join("ca.pem")));
        assert!(!plan.insecure);
        let plan = validate_in(dir.path(), "insecure = true", &[]).unwrap();
        assert!(plan.insecure && plan.roots.is_empty());

        let missing = validate_in(dir.path(), "ca_file = \"nope.pem\"", &[]).unwrap_err();
        assert!(
            missing.contains("s.toml:6:11: `load.tls.ca_file` = \"nope.pem\": cannot read"),
            "{missing}"
        );
        assert!(missing.contains("nope.pem"), "{missing}");
        let empty = validate_in(dir.path(), "ca_file = \"empty.pem\"", &[]).unwrap_err();
        assert!(empty.contains("holds no PEM certificate"), "{empty}");
        let broken = validate_in(dir.path(), "ca_file = \"broken.pem\"", &[]).unwrap_err();
        assert!(broken.contains("certificate #1 of"), "{broken}");
        let both =
            validate_in(dir.path(), "ca_file = \"ca.pem\"\ninsecure = true", &[]).unwrap_err();
        assert!(both.contains("both say whom to trust"), "{both}");
    }

    #[test]
    fn a_ca_file_from_the_command_line_is_named_by_its_flag() {
        let dir = tempfile::tempdir().unwrap();
        let flag = Setting {
            path: vec!["load".into(), "tls".into(), "ca_file".into()],
            value: "\"/nonexistent/ca.pem\"".into(),
            origin: "--tls-ca /nonexistent/ca.pem".into(),
        };
        let problem = validate_in(dir.path(), "", &[flag]).unwrap_err();
        assert!(
            problem.starts_with("--tls-ca /nonexistent/ca.pem: `load.tls.ca_file`"),
            "{problem}"
        );
        assert!(
            problem.contains("cannot read /nonexistent/ca.pem"),
            "{problem}"
        );
    }

    #[test]
    fn reasons_are_counted_and_bounded() {
        let reasons = Reasons::default();
        for i in 0..40 {
            reasons.add(format!("tls: reason {}", i % 20));
        }
        reasons.add("tls: reason 0".into());
        let seen = reasons.snapshot();
        assert_eq!(seen.len(), MAX_REASONS);
        assert_eq!(seen["tls: reason 0"], 3);
    }
}

#[cfg(test)]
pub(crate) mod testing {
    use std::sync::Arc;

    use rustls::crypto::ring;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

    /// A test CA, made at test time, and a server configuration whose certificate
    /// it signed for `localhost` and 127.0.0.1.
    pub struct TestPki {
        pub ca_pem: String,
        pub ca: CertificateDer<'static>,
        pub server: Arc<rustls::ServerConfig>,
    }

    pub fn pki() -> TestPki {
        // Each CA its own name, so one is never mistaken for another's issuer.
        static MADE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = MADE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.distinguished_name.push(
            rcgen::DnType::CommonName,
            format!("sessionstorm test CA {n}"),
        );
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let key = rcgen::KeyPair::generate().unwrap();
        let params =
            rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
        let cert = params.signed_by(&key, &issuer).unwrap();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let mut server =
            rustls::ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(vec![cert.der().clone()], key)
                .unwrap();
        server.alpn_protocols = vec![b"http/1.1".to_vec()];
        TestPki {
            ca_pem: ca.pem(),
            ca: ca.der().clone(),
            server: Arc::new(server),
        }
    }
}
