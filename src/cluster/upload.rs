//! The one-file tar archive Docker's upload API takes (`PUT /containers/{id}/archive`).
//!
//! Both the harness-made cluster (HAProxy's configuration) and the `blackhole` helper
//! (its iptables rules) put a file into a container this way; the archive lives here,
//! beside neither, so neither file has to import the other.

/// A tar archive holding one file, as Docker's upload API wants it.
pub(super) fn tar_of(name: &str, content: &str) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(content.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    builder
        .append_data(&mut header, name, content.as_bytes())
        .expect("writing to memory cannot fail");
    builder.into_inner().expect("writing to memory cannot fail")
}
