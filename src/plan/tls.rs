//! Whom the harness's HTTP clients trust on `https://` URLs (`[load.tls]`, or
//! `--tls-ca` / `--tls-insecure`):
//!
//! - by default, the platform's roots (`/etc/ssl/certs`);
//! - `ca_file`: only the CA certificates of that PEM file. A test stack's own CA is
//!   the usual case, so no built-in web roots are bundled;
//! - `insecure = true`: any certificate, for self-signed test stacks only.
//!
//! The CA file is read and parsed while validating ([`crate::validate`]), so a
//! missing or broken one is bad input (exit 2) with its place in the scenario, never
//! a failure mid-run. The rustls configuration is made from this plan by the load
//! and the cluster's probes (`crate::tls`).

use std::path::PathBuf;

use rustls::pki_types::CertificateDer;

/// Whom the harness's HTTP clients trust when a URL is `https://`. Plain data: the
/// certificates are read at validation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TlsPlan {
    /// The CA file the roots came from, for people; `None`: the platform's roots.
    pub ca_file: Option<PathBuf>,
    /// The CA certificates of `ca_file`, DER.
    pub roots: Vec<CertificateDer<'static>>,
    /// Accept any server certificate (self-signed test stacks only).
    pub insecure: bool,
}
