//! How a binary is linked: its shared libraries as `ldd` reports them, and the ELF
//! interpreter the kernel loads it with.
//!
//! Apart from the recipe because it is a parser of other programs' output and of ELF
//! headers, tested against recorded `ldd` answers and hand-made ELF files; the recipe
//! only asks "what must be copied with this binary".

use std::path::{Path, PathBuf};
use std::process::Command;

use super::ImageError;

/// How a binary is linked, as `ldd` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Linkage {
    /// Nothing to copy but the binary.
    Static,
    /// Files to copy (libraries and the interpreter), in `ldd`'s order; no vDSO.
    Dynamic(Vec<PathBuf>),
}

/// Why `ldd`'s answer cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LddProblem {
    /// Libraries the binary needs that the host does not have.
    NotFound(Vec<String>),
    /// A line this parser does not understand (an `ldd:` error, say).
    Unrecognized(String),
}

/// Parses the output (stdout and stderr together) of `ldd BINARY`.
///
/// Understood lines: `name => /path (0x…)`, `/path (0x…)` (the interpreter),
/// `linux-vdso.so.1 (0x…)` and `name =>  (0x…)` (no file: skipped), `name => not found`,
/// `not a dynamic executable` / `statically linked`, and a `binary:` header.
pub(crate) fn parse_ldd(output: &str) -> Result<Linkage, LddProblem> {
    let mut libraries = Vec::new();
    let mut missing = Vec::new();
    let mut is_static = false;
    for raw in output.lines() {
        let line = raw.trim();
        if line.is_empty() {
            continue;
        }
        if line == "not a dynamic executable" || line == "statically linked" {
            is_static = true;
            continue;
        }
        if let Some((name, target)) = line.split_once("=>") {
            let (name, target) = (name.trim(), strip_address(target.trim()));
            if target.starts_with("not found") {
                missing.push(name.to_string());
            } else if target.starts_with('/') {
                libraries.push(PathBuf::from(target));
            } else if !target.is_empty() {
                return Err(LddProblem::Unrecognized(line.to_string()));
            }
            continue;
        }
        let Some((name, _)) = line.rsplit_once(" (0x") else {
            if line.ends_with(':') && !line.starts_with("ldd:") {
                continue; // "path:" header when ldd lists several files
            }
            return Err(LddProblem::Unrecognized(line.to_string()));
        };
        if name.starts_with('/') {
            libraries.push(PathBuf::from(name));
        }
        // else: the vDSO (`linux-vdso.so.1`, `linux-gate.so.1`), which has no file.
    }
    if !missing.is_empty() {
        return Err(LddProblem::NotFound(missing));
    }
    if is_static && libraries.is_empty() {
        Ok(Linkage::Static)
    } else {
        Ok(Linkage::Dynamic(libraries))
    }
}

/// `/lib/libc.so.6 (0x00007f…)` → `/lib/libc.so.6`.
fn strip_address(target: &str) -> &str {
    match target.rsplit_once(" (0x") {
        Some((path, _)) => path.trim(),
        None if target.starts_with("(0x") => "",
        None => target,
    }
}

pub(crate) fn run_ldd(binary: &Path) -> Result<Linkage, ImageError> {
    let output =
        Command::new("ldd")
            .arg(binary)
            .output()
            .map_err(|source| ImageError::LddUnavailable {
                binary: binary.to_path_buf(),
                source,
            })?;
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    match parse_ldd(&text) {
        Ok(linkage) => Ok(linkage),
        Err(LddProblem::NotFound(libraries)) => Err(ImageError::MissingLibraries {
            binary: binary.to_path_buf(),
            libraries,
        }),
        Err(LddProblem::Unrecognized(_)) => Err(ImageError::LddOutput {
            binary: binary.to_path_buf(),
            output: text.trim().to_string(),
        }),
    }
}

/// The program interpreter (`PT_INTERP`) named in an ELF file, e.g.
/// `/lib64/ld-linux-x86-64.so.2`; `None` for static binaries and non-ELF data.
pub(crate) fn elf_interpreter(elf: &[u8]) -> Option<PathBuf> {
    const PT_INTERP: u32 = 3;
    if !elf.starts_with(b"\x7fELF") || elf.len() < 0x34 {
        return None;
    }
    let little = match elf[5] {
        1 => true,
        2 => false,
        _ => return None,
    };
    let read = |at: usize, len: usize| -> Option<u64> {
        let bytes = elf.get(at..at.checked_add(len)?)?;
        let mut value = 0u64;
        for i in 0..len {
            let byte = if little { bytes[len - 1 - i] } else { bytes[i] };
            value = (value << 8) | u64::from(byte);
        }
        Some(value)
    };
    // (e_phoff, e_phentsize, e_phnum) and (p_offset, p_filesz) offsets per ELF class.
    let (phoff, phentsize, phnum, word, p_offset, p_filesz) = match elf[4] {
        1 => (
            read(0x1c, 4)?,
            read(0x2a, 2)?,
            read(0x2c, 2)?,
            4,
            0x04,
            0x10,
        ),
        2 => (
            read(0x20, 8)?,
            read(0x36, 2)?,
            read(0x38, 2)?,
            8,
            0x08,
            0x20,
        ),
        _ => return None,
    };
    for i in 0..phnum {
        let header = usize::try_from(phoff.checked_add(i.checked_mul(phentsize)?)?).ok()?;
        if read(header, 4)? != u64::from(PT_INTERP) {
            continue;
        }
        let offset = usize::try_from(read(header + p_offset, word)?).ok()?;
        let size = usize::try_from(read(header + p_filesz, word)?).ok()?;
        let bytes = elf.get(offset..offset.checked_add(size)?)?;
        let name = bytes.split(|b| *b == 0).next()?;
        return Some(PathBuf::from(std::str::from_utf8(name).ok()?));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const LDD_REDIS: &str = "\tlinux-vdso.so.1 (0x00007f684911c000)
\tlibatomic.so.1 => /lib/x86_64-linux-gnu/libatomic.so.1 (0x00007f6849101000)
\tlibm.so.6 => /lib/x86_64-linux-gnu/libm.so.6 (0x00007f6848d20000)
\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f68486a5000)
\t/lib64/ld-linux-x86-64.so.2 (0x00007f684911e000)
\tlibcap.so.2 => /lib/x86_64-linux-gnu/libcap.so.2 (0x00007f68490cb000)
";

    #[test]
    fn ldd_dynamic_binary_lists_libraries_and_interpreter_but_not_the_vdso() {
        let linkage = parse_ldd(LDD_REDIS).unwrap();
        let expected: Vec<PathBuf> = [
            "/lib/x86_64-linux-gnu/libatomic.so.1",
            "/lib/x86_64-linux-gnu/libm.so.6",
            "/lib/x86_64-linux-gnu/libc.so.6",
            "/lib64/ld-linux-x86-64.so.2",
            "/lib/x86_64-linux-gnu/libcap.so.2",
        ]
        .iter()
        .map(PathBuf::from)
        .collect();
        assert_eq!(linkage, Linkage::Dynamic(expected));
    }

    #[test]
    fn ldd_old_vdso_format_and_header_are_skipped() {
        let out = "/usr/bin/x:\n\tlinux-gate.so.1 =>  (0xb7fd8000)\n\tlibc.so.6 => /lib/libc.so.6 (0xb7e00000)\n";
        assert_eq!(
            parse_ldd(out).unwrap(),
            Linkage::Dynamic(vec![PathBuf::from("/lib/libc.so.6")])
        );
    }

    #[test]
    fn ldd_static_binary_needs_nothing_but_itself() {
        assert_eq!(
            parse_ldd("\tnot a dynamic executable\n").unwrap(),
            Linkage::Static
        );
        assert_eq!(parse_ldd("\tstatically linked\n").unwrap(), Linkage::Static);
    }

    #[test]
    fn ldd_not_found_names_every_missing_library() {
        let out = format!("{LDD_REDIS}\tlibfoo.so.1 => not found\n\tlibbar.so.2 => not found\n");
        assert_eq!(
            parse_ldd(&out),
            Err(LddProblem::NotFound(vec![
                "libfoo.so.1".into(),
                "libbar.so.2".into()
            ]))
        );
        let err = ImageError::MissingLibraries {
            binary: "/usr/bin/x".into(),
            libraries: vec!["libfoo.so.1".into(), "libbar.so.2".into()],
        };
        let message = err.to_string();
        assert!(message.contains("libfoo.so.1, libbar.so.2"), "{message}");
        assert!(message.contains("/usr/bin/x"), "{message}");
    }

    #[test]
    fn ldd_errors_are_not_mistaken_for_libraries() {
        let out = "ldd: /nope: No such file or directory\n";
        assert_eq!(
            parse_ldd(out),
            Err(LddProblem::Unrecognized(out.trim().to_string()))
        );
    }

    #[test]
    fn ldd_on_this_test_binary_finds_libc() {
        let exe = std::env::current_exe().unwrap();
        match run_ldd(&exe).unwrap() {
            Linkage::Dynamic(libs) => assert!(
                libs.iter().any(|l| l.to_string_lossy().contains("libc.so")),
                "{libs:?}"
            ),
            Linkage::Static => {} // a static test build is fine too
        }
    }

    #[test]
    fn elf_interpreter_of_this_test_binary_is_an_existing_absolute_path() {
        let exe = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        if let Some(interp) = elf_interpreter(&exe) {
            assert!(interp.is_absolute(), "{interp:?}");
            assert!(interp.exists(), "{interp:?}");
        }
    }

    #[test]
    fn elf_interpreter_of_a_hand_made_elf64() {
        // ELF header (64 bytes) + one program header (56 bytes) + the interpreter string.
        let interp = b"/lib/ld-test.so.1\0";
        let mut elf = vec![0u8; 64 + 56];
        elf[..4].copy_from_slice(b"\x7fELF");
        elf[4] = 2; // 64-bit
        elf[5] = 1; // little-endian
        elf[0x20..0x28].copy_from_slice(&64u64.to_le_bytes()); // e_phoff
        elf[0x36..0x38].copy_from_slice(&56u16.to_le_bytes()); // e_phentsize
        elf[0x38..0x3a].copy_from_slice(&1u16.to_le_bytes()); // e_phnum
        elf[64..68].copy_from_slice(&3u32.to_le_bytes()); // PT_INTERP
        elf[64 + 8..64 + 16].copy_from_slice(&120u64.to_le_bytes()); // p_offset
        elf[64 + 32..64 + 40].copy_from_slice(&(interp.len() as u64).to_le_bytes()); // p_filesz
        elf.extend_from_slice(interp);
        assert_eq!(
            elf_interpreter(&elf),
            Some(PathBuf::from("/lib/ld-test.so.1"))
        );

        elf[64] = 1; // PT_LOAD: no interpreter any more
        assert_eq!(elf_interpreter(&elf), None);
        assert_eq!(elf_interpreter(b"#!/bin/sh\necho hi\n"), None);
        assert_eq!(elf_interpreter(b"\x7fELF"), None);
    }
}
