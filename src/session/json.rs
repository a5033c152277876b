//! A session's state as services write it, read by hand before serde_json is asked.
//!
//! Every answer of the contract is `{"session": …, "version": …, "items": […]}`, and
//! reading it was the largest part of the load's own CPU per request flat out: serde's
//! derived visitor moves the whole state (its first items inline) several times on the
//! way out. [`plain`] reads the plain form straight into its place and declines
//! everything else: escapes, control characters, numbers that are not a plain
//! non-negative integer, other or repeated fields. What it declines goes to
//! serde_json, which reads it (or refuses it) in full, so what is accepted never
//! changes; what `plain` reads, serde_json reads the same (tested against it, and
//! fuzzed).

use std::borrow::Cow;

use super::{decimal, State, Text};

/// `text` as a [`State`], when it is in the plain form; `None` for serde_json to read.
pub fn plain(text: &str) -> Option<State<'_>> {
    let mut reader = Reader { text, at: 0 };
    // Filled in place (the items inline are a few hundred bytes, worth not moving).
    let mut state = State {
        session: Cow::Borrowed(""),
        version: 0,
        items: smallvec::SmallVec::new(),
    };
    let (mut session, mut version, mut items) = (false, false, false);
    reader.punct(b'{')?;
    loop {
        let key = reader.string()?;
        reader.punct(b':')?;
        match key {
            "session" if !session => {
                state.session = Cow::Borrowed(reader.string()?);
                session = true;
            }
            "version" if !version => {
                state.version = reader.number()?;
                version = true;
            }
            "items" if !items => {
                reader.list(&mut state.items)?;
                items = true;
            }
            _ => return None,
        }
        match reader.next()? {
            b',' => continue,
            b'}' => break,
            _ => return None,
        }
    }
    reader.skip_space();
    (reader.at == text.len() && session && version && items).then_some(state)
}

/// Where reading has got to in the text.
struct Reader<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Reader<'a> {
    fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    /// Past JSON's four whitespace characters.
    fn skip_space(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.bytes().get(self.at) {
            self.at += 1;
        }
    }

    /// The next byte that is not whitespace, taken.
    fn next(&mut self) -> Option<u8> {
        self.skip_space();
        let byte = *self.bytes().get(self.at)?;
        self.at += 1;
        Some(byte)
    }

    fn punct(&mut self, expected: u8) -> Option<()> {
        (self.next()? == expected).then_some(())
    }

    /// A string with no escape and no control character, borrowed from the text.
    fn string(&mut self) -> Option<&'a str> {
        self.punct(b'"')?;
        let start = self.at;
        let len = plain_run(&self.bytes()[start..]);
        // Anything but the closing quote (an escape, a control character, the end
        // of the text) is serde_json's to read.
        if self.bytes().get(start + len) != Some(&b'"') {
            return None;
        }
        self.at = start + len + 1;
        // Both ends are at ASCII quotes, so on character boundaries.
        Some(&self.text[start..start + len])
    }

    /// A non-negative integer as JSON writes one (no leading zero), within `u64`.
    fn number(&mut self) -> Option<u64> {
        self.skip_space();
        let digits = self.bytes()[self.at..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        let text = &self.bytes()[self.at..self.at + digits];
        if digits > 1 && text[0] == b'0' {
            return None;
        }
        self.at += digits;
        decimal(text)
    }

    /// A list of plain strings, pushed onto `items`.
    fn list(&mut self, items: &mut smallvec::SmallVec<[Text<'a>; 16]>) -> Option<()> {
        self.punct(b'[')?;
        self.skip_space();
        if self.bytes().get(self.at) == Some(&b']') {
            self.at += 1;
            return Some(());
        }
        loop {
            items.push(Text(Cow::Borrowed(self.string()?)));
            match self.next()? {
                b',' => continue,
                b']' => return Some(()),
                _ => return None,
            }
        }
    }
}

/// How many bytes at the start of `bytes` are neither a quote, nor a backslash, nor a
/// control character: the run a plain string's text is. Eight bytes at a time, as one
/// word each: a string's bytes were the largest part of reading a state, one branch
/// per byte. (Each test flags its first match exactly and may also flag bytes after
/// it, so the lowest flag of the three is the first byte that ends the run.)
fn plain_run(bytes: &[u8]) -> usize {
    const ONES: u64 = u64::from_le_bytes([1; 8]);
    const HIGH: u64 = ONES << 7;
    let zero_byte = |word: u64| word.wrapping_sub(ONES) & !word & HIGH;
    let mut words = bytes.chunks_exact(8);
    let mut at = 0;
    for chunk in &mut words {
        let word = u64::from_le_bytes(chunk.try_into().expect("a chunk of eight"));
        let stops = zero_byte(word ^ (ONES * u64::from(b'"')))
            | zero_byte(word ^ (ONES * u64::from(b'\\')))
            | (word.wrapping_sub(ONES * 0x20) & !word & HIGH);
        if stops != 0 {
            return at + (stops.trailing_zeros() / 8) as usize;
        }
        at += 8;
    }
    at + words
        .remainder()
        .iter()
        .take_while(|&&b| b != b'"' && b != b'\\' && b >= 0x20)
        .count()
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    use super::*;

    /// What serde_json makes of `text`.
    fn serde(text: &str) -> Option<State<'_>> {
        serde_json::from_str(text).ok()
    }

    #[test]
    fn the_plain_form_is_read_in_place_in_any_order_and_spacing() {
        for text in [
            r#"{"session":"s1","version":2,"items":["1.0","1.1"]}"#,
            r#"{"items":["1.0","1.1"],"version":2,"session":"s1"}"#,
            "{ \"session\" : \"s1\" ,\n \"version\": 2,\t\"items\": [ \"1.0\" , \"1.1\" ] }\r\n",
        ] {
            let state = plain(text).expect(text);
            assert_eq!(Some(&state), serde(text).as_ref(), "{text}");
            assert_eq!(state.version, 2);
            assert!(matches!(state.items[1].0, Cow::Borrowed("1.1")));
        }
        let empty = plain(r#"{"session":"s","version":0,"items":[]}"#).unwrap();
        assert!(empty.items.is_empty());
    }

    #[test]
    fn a_plain_run_ends_at_the_first_quote_backslash_or_control_character() {
        let naive = |bytes: &[u8]| {
            bytes
                .iter()
                .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
                .unwrap_or(bytes.len())
        };
        let mut rng = StdRng::seed_from_u64(17);
        for _ in 0..50_000 {
            let len = rng.random_range(0..40);
            // Mostly text, with now and then any byte at all (a word's borrow
            // between bytes is where a wrong flag would come from).
            let bytes: Vec<u8> = (0..len)
                .map(|_| match rng.random_range(0..10) {
                    0 => rng.random(),
                    1 => *b"\"\\\x00\x1f\x20\x7f\x80\xff!#[]"
                        .get(rng.random_range(0..12))
                        .unwrap(),
                    _ => rng.random_range(b'a'..=b'z'),
                })
                .collect();
            assert_eq!(plain_run(&bytes), naive(&bytes), "{bytes:?}");
        }
    }

    #[test]
    fn anything_else_is_left_to_serde_json() {
        for text in [
            // serde_json reads these: two escapes, another field.
            r#"{"session":"s","version":1,"items":["1.\u0030"]}"#,
            r#"{"session":"s\"","version":1,"items":[]}"#,
            r#"{"session":"s","version":1,"items":[],"user":"ann"}"#,
            // serde_json refuses these.
            r#"{"session":"s","version":1,"items":[],"version":2}"#,
            r#"{"session":"s","version":1.5,"items":[]}"#,
            r#"{"session":"s","version":-1,"items":[]}"#,
            r#"{"session":"s","version":01,"items":[]}"#,
            r#"{"session":"s","version":18446744073709551616,"items":[]}"#,
            r#"{"session":"s","version":1}"#,
            r#"{"session":"s","version":1,"items":["1.0",]}"#,
            r#"{"session":"s","version":1,"items":[1]}"#,
            "{\"session\":\"a\tb\",\"version\":1,\"items\":[]}",
            r#"{"session":"s","version":1,"items":[]} x"#,
            r#"{"session":"s","version":1,"items":[]"#,
            r#"{}"#,
            "",
        ] {
            assert_eq!(plain(text), None, "{text}");
        }
    }

    /// Pieces of state-like JSON, right and wrong, that random texts are made of.
    const PIECES: &[&str] = &[
        "{",
        "}",
        "[",
        "]",
        ",",
        ":",
        " ",
        "\n",
        "\"",
        "\\",
        "\\\"",
        "\\u0031",
        "\"session\"",
        "\"version\"",
        "\"items\"",
        "\"other\"",
        "\"s1\"",
        "\"1.0\"",
        "\"é\"",
        "0",
        "7",
        "01",
        "-1",
        "1.5",
        "1e3",
        "18446744073709551615",
        "18446744073709551616",
        "null",
        "true",
        "\t",
        "\u{1}",
    ];

    #[test]
    fn whatever_the_plain_path_reads_serde_json_reads_the_same() {
        let mut rng = StdRng::seed_from_u64(17);
        let valid = r#"{"session":"s1","version":3,"items":["1.0","1.1","1.2"]}"#;
        let mut read = 0;
        for _ in 0..20_000 {
            let mut text = String::from(valid);
            for _ in 0..rng.random_range(1..4) {
                let at = rng.random_range(0..=text.len());
                if !text.is_char_boundary(at) {
                    continue;
                }
                if rng.random_bool(0.5) {
                    text.insert_str(at, PIECES[rng.random_range(0..PIECES.len())]);
                } else {
                    let end = (at + rng.random_range(1..4)).min(text.len());
                    if text.is_char_boundary(end) {
                        text.replace_range(at..end, "");
                    }
                }
            }
            if let Some(state) = plain(&text) {
                read += 1;
                assert_eq!(Some(&state), serde(&text).as_ref(), "{text}");
            };
        }
        // Enough of the mutants stay plain for the comparison to mean something.
        assert!(read > 1000, "only {read} mutants read");
    }
}
