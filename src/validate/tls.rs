//! `[load.tls]`: whom to trust on `https://` URLs. The CA file is read and parsed
//! here, so a missing or broken one is bad input (exit 2) with its place in the
//! scenario, never a failure mid-run.

use std::ops::Range;
use std::path::{Path, PathBuf};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::RootCertStore;

use crate::plan::TlsPlan;
use crate::scenario::overrides::{locate, Setting};
use crate::scenario::{Problem, RawTls, Source};

/// Reads `[load.tls]`: the CA file (relative to the scenario file; a value given on
/// the command line is relative to where the command runs), or `insecure`.
pub(super) fn validate(
    source: &Source,
    settings: &[Setting],
    raw: Option<&RawTls>,
) -> Result<TlsPlan, Vec<Problem>> {
    let Some(raw) = raw else {
        return Ok(TlsPlan::default());
    };
    let at = |span: Range<usize>, message: String| vec![locate(source, settings, span, message)];
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
    // Spans past the text are command-line values ([`crate::scenario::overrides`]).
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::overrides::Setting;
    use crate::tls::testing;

    /// Validates `[load.tls]` of a scenario in `dir`, with `settings` applied.
    fn validate_in(dir: &Path, toml: &str, settings: &[Setting]) -> Result<TlsPlan, String> {
        let source = Source {
            path: dir.join("s.toml"),
            text: format!(
                "name = \"t\"\nduration = \"1s\"\n[load]\nappends_per_session = 1\n[load.tls]\n{toml}"
            ),
        };
        let raw =
            crate::scenario::overrides::parse(&source, settings).map_err(|p| p.to_string())?;
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
}
