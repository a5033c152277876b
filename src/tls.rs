//! TLS for the harness's HTTP clients: the load's own client (`load::http`) and
//! the reqwest readiness probes of the cluster, hence below both. Everything goes
//! through rustls with the `ring` provider (aws-lc-rs would need cmake on every
//! machine).
//!
//! Whom to trust is the plan's [`TlsPlan`] (`[load.tls]`, or `--tls-ca` /
//! `--tls-insecure`): the platform's roots (`/etc/ssl/certs`, through
//! rustls-native-certs) by default, the CA certificates of `ca_file`, or, with
//! `insecure = true`, any certificate. Insecure, the handshake's signatures are
//! still checked, so the connection is real TLS; only the question of who signed
//! the certificate is skipped.

use std::collections::BTreeMap;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{ring, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::plan::TlsPlan;

/// The rustls client configuration for `plan`: ALPN `http/1.1` (the only
/// protocol the clients speak), TLS 1.2 and 1.3.
pub fn client_config(plan: &TlsPlan) -> Arc<ClientConfig> {
    let provider = Arc::new(ring::default_provider());
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .expect("the ring provider supports the default protocol versions");
    let mut config = if plan.insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyServerCertificate {
                algorithms: provider.signature_verification_algorithms,
            }))
            .with_no_client_auth()
    } else {
        builder
            .with_root_certificates(root_store(plan))
            .with_no_client_auth()
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

fn root_store(plan: &TlsPlan) -> RootCertStore {
    let mut store = RootCertStore::empty();
    if plan.ca_file.is_some() {
        // Checked at validation: every one of them parses.
        let _ = store.add_parsable_certificates(plan.roots.iter().cloned());
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

/// A reqwest client for probes: `timeout` per request, trusting whom `plan` says.
pub fn probe_client(plan: &TlsPlan, timeout: std::time::Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(timeout)
        .use_preconfigured_tls((*client_config(plan)).clone())
        .build()
        .expect("a client with a rustls config builds")
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
