//! An answer's headers, read in place: where each name and value lies in the
//! answer's head. An answer is asked for a handful of its headers (framing, who
//! served it, cookies, a redirect), so a scan of a few spans beats a hash map, and
//! reading one allocates nothing and counts no references per header.

use bytes::Bytes;
use smallvec::SmallVec;

/// The longest head whose headers can be read, in bytes.
pub const MAX_HEAD: usize = u16::MAX as usize;

/// The headers of one answer.
#[derive(Debug, Clone, Default)]
pub struct Headers {
    head: Bytes,
    /// Name start, name end, value start, value end, as offsets into `head` (a head
    /// is at most [`MAX_HEAD`] long); inline for answers of up to 16 headers.
    spans: SmallVec<[[u16; 4]; 16]>,
}

impl Headers {
    /// Headers whose names and values lie in `head` at `spans` (name start, name
    /// end, value start, value end); `None` when the head is longer than
    /// [`MAX_HEAD`] or a span is not part of it.
    pub(super) fn in_head(
        head: Bytes,
        spans: impl IntoIterator<Item = [usize; 4]>,
    ) -> Option<Headers> {
        if head.len() > MAX_HEAD {
            return None;
        }
        let spans = spans
            .into_iter()
            .map(|[ns, ne, vs, ve]| {
                let fits = ns <= ne && vs <= ve && ne.max(ve) <= head.len();
                fits.then_some([ns as u16, ne as u16, vs as u16, ve as u16])
            })
            .collect::<Option<_>>()?;
        Some(Headers { head, spans })
    }

    /// Every header as its name and value, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.spans.iter().map(|&[ns, ne, vs, ve]| {
            let part = |start: u16, end: u16| &self.head[usize::from(start)..usize::from(end)];
            (part(ns, ne), part(vs, ve))
        })
    }

    /// Every value of the header `name` (ASCII case ignored), in order.
    pub fn get_all<'h, 'n>(
        &'h self,
        name: &'n str,
    ) -> impl Iterator<Item = &'h [u8]> + use<'h, 'n> {
        self.spans
            .iter()
            .filter(move |[ns, ne, ..]| {
                // Lengths first: most names differ in length, and then the slice,
                // with its bounds checks, is never cut.
                usize::from(ne - ns) == name.len()
                    && self.head[*ns as usize..*ne as usize].eq_ignore_ascii_case(name.as_bytes())
            })
            .map(|[.., vs, ve]| &self.head[*vs as usize..*ve as usize])
    }

    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.get_all(name).next()
    }

    /// The first value of `name` as text: `None` unless it is visible ASCII, as
    /// `http::HeaderValue::to_str` has it.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(text)
    }

    /// Every value of `name` that is visible ASCII, as text.
    pub fn texts<'h, 'n>(&'h self, name: &'n str) -> impl Iterator<Item = &'h str> + use<'h, 'n> {
        self.get_all(name).filter_map(text)
    }

    /// Headers made of `pairs`, as an answer would carry them.
    #[cfg(test)]
    pub fn of(pairs: &[(&str, &str)]) -> Headers {
        let mut head = Vec::new();
        let mut spans = Vec::new();
        for (name, value) in pairs {
            let ns = head.len();
            head.extend_from_slice(format!("{name}: ").as_bytes());
            let vs = head.len();
            head.extend_from_slice(format!("{value}\r\n").as_bytes());
            spans.push([ns, ns + name.len(), vs, vs + value.len()]);
        }
        Headers::in_head(head.into(), spans).expect("a head of test headers")
    }
}

/// `value` as text, if it is visible ASCII (tabs allowed).
fn text(value: &[u8]) -> Option<&str> {
    value
        .iter()
        .all(|&b| b == b'\t' || (b' '..=b'~').contains(&b))
        .then(|| std::str::from_utf8(value).ok())
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_matched_without_case_and_values_kept_in_order() {
        let h = Headers::of(&[
            ("Set-Cookie", "a=1; Path=/"),
            ("X-Served-By", "replica-0"),
            ("set-cookie", "b=2"),
        ]);
        assert_eq!(h.text("x-served-by"), Some("replica-0"));
        assert_eq!(h.get("X-SERVED-BY"), Some(b"replica-0".as_slice()));
        assert_eq!(
            h.texts("set-cookie").collect::<Vec<_>>(),
            ["a=1; Path=/", "b=2"]
        );
        assert_eq!(h.get("location"), None);
        assert_eq!(Headers::default().get("location"), None);
        let all: Vec<(&[u8], &[u8])> = h.iter().collect();
        assert_eq!(
            all,
            [
                (b"Set-Cookie".as_slice(), b"a=1; Path=/".as_slice()),
                (b"X-Served-By", b"replica-0"),
                (b"set-cookie", b"b=2"),
            ]
        );
    }

    #[test]
    fn only_visible_ascii_is_text() {
        let h = Headers::of(&[("x-a", "caf\u{e9}"), ("x-b", "a\tb")]);
        assert_eq!(h.get("x-a"), Some("caf\u{e9}".as_bytes()));
        assert_eq!(h.text("x-a"), None);
        assert_eq!(h.text("x-b"), Some("a\tb"));
    }
}
