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
    let (mut session, mut version, mut items) = (None, None, None);
    reader.punct(b'{')?;
    loop {
        let key = reader.string()?;
        reader.punct(b':')?;
        match key {
            "session" if session.is_none() => session = Some(reader.string()?),
            "version" if version.is_none() => version = Some(reader.number()?),
            "items" if items.is_none() => {
                let mut list = smallvec::SmallVec::new();
                reader.list(&mut list)?;
                items = Some(list);
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
    if reader.at != text.len() {
        return None;
    }
    Some(State {
        session: Cow::Borrowed(session?),
        version: version?,
        items: items?,
    })
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
        let bytes = self.bytes();
        let mut end = start;
        loop {
            match *bytes.get(end)? {
                b'"' => break,
                b'\\' | 0..0x20 => return None,
                _ => end += 1,
            }
        }
        self.at = end + 1;
        // Both ends are at ASCII quotes, so on character boundaries.
        Some(&self.text[start..end])
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
