//! A small binary encoding for records the harness writes to disk and reads back
//! itself (the finished sessions a long run spills, see `load::spill`): LEB128
//! integers and length-prefixed bytes, nothing self-describing. At the bottom of the
//! crate, importing nothing, so the types that encode themselves ([`crate::session`])
//! and the engine that writes them can both use it.

/// Appends `n` as a LEB128 varint: one byte below 128, at most ten.
pub fn put_u64(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// Appends `bytes` behind their length.
pub fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_u64(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// Reads a varint written by [`put_u64`], advancing `input`; `None` if it is cut short
/// or longer than a u64.
pub fn get_u64(input: &mut &[u8]) -> Option<u64> {
    let mut n = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = input.split_first()?;
        *input = rest;
        n |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(n);
        }
    }
    None
}

/// Reads bytes written by [`put_bytes`], advancing `input`.
pub fn get_bytes<'a>(input: &mut &'a [u8]) -> Option<&'a [u8]> {
    let len = usize::try_from(get_u64(input)?).ok()?;
    if input.len() < len {
        return None;
    }
    let (bytes, rest) = input.split_at(len);
    *input = rest;
    Some(bytes)
}

/// Reads a string written with [`put_bytes`]; `None` if it is not UTF-8.
pub fn get_string(input: &mut &[u8]) -> Option<String> {
    String::from_utf8(get_bytes(input)?.to_vec()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_and_bytes_read_back_as_written() {
        let mut out = Vec::new();
        for n in [0, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX] {
            put_u64(&mut out, n);
        }
        put_bytes(&mut out, b"sid=abc");
        put_bytes(&mut out, "é".as_bytes());
        assert_eq!(out[..2], [0, 1], "small numbers take one byte");
        let mut input = out.as_slice();
        for n in [0, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX] {
            assert_eq!(get_u64(&mut input), Some(n));
        }
        assert_eq!(get_bytes(&mut input), Some(&b"sid=abc"[..]));
        assert_eq!(get_string(&mut input).as_deref(), Some("é"));
        assert!(input.is_empty());
    }

    #[test]
    fn cut_or_bad_input_is_none_not_a_panic() {
        let mut out = Vec::new();
        put_bytes(&mut out, b"hello");
        let mut cut = &out[..3];
        assert_eq!(get_bytes(&mut cut), None);
        let mut endless: &[u8] = &[0xff; 11];
        assert_eq!(get_u64(&mut endless), None);
        let mut not_utf8 = Vec::new();
        put_bytes(&mut not_utf8, &[0xff, 0xfe]);
        assert_eq!(get_string(&mut not_utf8.as_slice()), None);
    }
}
