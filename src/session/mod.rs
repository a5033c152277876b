//! The client-side model of a session and the checker that compares what the service
//! answers with what the client knows was acknowledged.
//!
//! Every item a client sends is named `"<seq>.<k>"`: `seq` numbers the session on the
//! client side, `k` numbers the append within it. That makes any item in an answer
//! attributable without storing its text: an item whose name does not parse, names
//! another session, or was never sent is a phantom. The op id of an append is the
//! item itself, so a retry of the same append is recognisable by the service.
//!
//! A session is lost when the service answers 404 for it, or answers with another
//! session in its place (a fresh one, as session middleware makes for an unknown
//! cookie). Under the contract, whose answers name the session, our own session come
//! back empty has lost its writes, not itself. A custom flow's session has no name in
//! its answers, and its cookie proves nothing either way (signed and encrypted
//! cookies change on every save; PHP adopts an unknown id and keeps the cookie), so
//! such a session is judged by what it holds ([`SessionModel::judged_by_content`]):
//! an answer holding none of its acknowledged writes is the session lost.
//!
//! Custom flows ([`crate::flow`]) use the same model: a write step's `{{item}}` is
//! the same `"<seq>.<k>"`, and a read step's answer is checked as a list
//! ([`SessionModel::check_items`]), as text in a page
//! ([`SessionModel::check_occurrences`]) or as a counter
//! ([`SessionModel::check_counter`]), with the same anomaly kinds.
//!
//! Checking one answer is linear in the number of items in it, and a session's
//! memory is one byte per append plus its id. A finished session waits for the final
//! sweep on disk, [`SessionModel::encode`]d in a quarter byte per append plus its id,
//! so a run's memory does not grow with its length.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

pub(crate) mod json;

/// The state a service returns for a session (session contract v1), its strings
/// borrowed from the answer's body: read on every answer, it would otherwise cost
/// an allocation per item.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct State<'a> {
    #[serde(borrow)]
    pub session: Cow<'a, str>,
    pub version: u64,
    /// Inline up to 16 items: read on every answer, a list that grows would
    /// allocate two or three times per answer.
    #[serde(borrow)]
    pub items: SmallVec<[Text<'a>; 16]>,
}

impl<'a> State<'a> {
    /// The state an answer's body holds, `None` unless it holds one: the plain form
    /// read in place by hand ([`json::plain`]), anything else by serde_json.
    pub fn read(body: &'a str) -> Option<State<'a>> {
        json::plain(body).or_else(|| serde_json::from_str(body).ok())
    }
}

/// An item's name: `<session number>.<write number>`.
#[derive(Debug, Clone, Copy)]
pub struct ItemName {
    seq: u64,
    k: u32,
}

impl ItemName {
    /// Appends the name to `out`, without the formatting machinery: an append's
    /// body is written for every append, and `format!` cost more than the rest of
    /// the request's encoding.
    pub fn write_to(self, out: &mut Vec<u8>) {
        out.extend_from_slice(itoa::Buffer::new().format(self.seq).as_bytes());
        out.push(b'.');
        out.extend_from_slice(itoa::Buffer::new().format(self.k).as_bytes());
    }
}

impl fmt::Display for ItemName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.seq, self.k)
    }
}

/// How often each of a session's items appeared in one answer: on the stack for
/// sessions of up to 32 writes, as it is made for every answer.
type Tally = SmallVec<[u32; 32]>;

/// A string of an answer, borrowed from it; copied only when JSON escapes had to be
/// undone. (serde copies every `Cow` inside a `Vec`, hence this type.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text<'a>(pub Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Cow<'de, str>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Cow::Borrowed(v))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Cow::Owned(v.to_owned()))
            }
        }
        deserializer.deserialize_str(Visitor).map(Text)
    }
}

/// What the client knows about one append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Item {
    /// Not sent yet: it must not appear.
    Unsent,
    /// Sent, but the answer was lost (timeout, reset, 5xx): it may or may not appear,
    /// at most once.
    Indeterminate,
    /// Acknowledged with a 2xx, or seen in an answer: it must appear exactly once.
    Durable,
}

/// The kinds of anomaly of DESIGN.md, in report order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnomalyKind {
    LostSession,
    LostWrite,
    StaleRead,
    Duplicate,
    Phantom,
}

impl AnomalyKind {
    pub const ALL: [AnomalyKind; 5] = [
        AnomalyKind::LostSession,
        AnomalyKind::LostWrite,
        AnomalyKind::StaleRead,
        AnomalyKind::Duplicate,
        AnomalyKind::Phantom,
    ];

    pub fn name(self) -> &'static str {
        match self {
            AnomalyKind::LostSession => "lost_session",
            AnomalyKind::LostWrite => "lost_write",
            AnomalyKind::StaleRead => "stale_read",
            AnomalyKind::Duplicate => "duplicate",
            AnomalyKind::Phantom => "phantom",
        }
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl fmt::Display for AnomalyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The operations of the session contract, plus the final sweep's read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    Create,
    Append,
    Read,
    Sweep,
}

impl Op {
    pub const ALL: [Op; 4] = [Op::Create, Op::Append, Op::Read, Op::Sweep];

    pub fn name(self) -> &'static str {
        match self {
            Op::Create => "create",
            Op::Append => "append",
            Op::Read => "read",
            Op::Sweep => "sweep",
        }
    }
}

/// One observed violation of the session contract.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Anomaly {
    pub kind: AnomalyKind,
    pub session: String,
    pub op: Op,
    /// The `X-Served-By` of the answer that showed it.
    pub served_by: Option<String>,
    /// Time since the start of the load.
    #[serde(
        rename = "at_ms",
        serialize_with = "as_millis",
        deserialize_with = "from_millis"
    )]
    pub at: Duration,
    /// What was expected and what was seen, in words.
    pub detail: String,
    /// The last fault injected before it, in words, filled in when the run is
    /// reported: the first place to look for a cause.
    pub nearest_fault: Option<String>,
    /// What the store did last before it (the store's timeline), in words, where
    /// the harness watched the store: the second place to look.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nearest_store_event: Option<String>,
}

fn as_millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_millis() as u64)
}

fn from_millis<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    u64::deserialize(d).map(Duration::from_millis)
}

/// Context of one observation, attached to any anomaly it reveals.
#[derive(Debug, Clone, Copy)]
pub struct Seen<'a> {
    pub op: Op,
    pub served_by: Option<&'a str>,
    pub at: Duration,
    /// The write whose own answer this is, when the answer also reads: a session
    /// reset just before it holds that write alone, so it does not count as a sign
    /// that the session survived.
    pub write: Option<u32>,
}

/// Everything the client knows about one session it created.
#[derive(Debug, Clone)]
pub struct SessionModel {
    seq: u64,
    id: String,
    items: Vec<Item>,
    max_version: u64,
    /// Kinds already reported for this session: a lost write stays lost on every later
    /// read, and counting it again would measure how often we looked, not what broke.
    reported: u8,
    /// An answer holding none of the acknowledged writes is a lost session, not lost
    /// writes: see the module docs.
    by_content: bool,
}

impl SessionModel {
    pub fn new(seq: u64, id: String, appends: u32) -> Self {
        SessionModel {
            seq,
            id,
            items: vec![Item::Unsent; appends as usize],
            max_version: 0,
            reported: 0,
            by_content: false,
        }
    }

    /// Judges the session's identity by what it holds (custom flows).
    pub fn judged_by_content(mut self) -> Self {
        self.by_content = true;
        self
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// Appends the model to `out` in the spill format (see [`crate::compact`]): about
    /// 12 bytes plus the id, the items packed four to a byte.
    pub fn encode(&self, out: &mut Vec<u8>) {
        use crate::compact::{put_bytes, put_u64};
        put_u64(out, self.seq);
        put_bytes(out, self.id.as_bytes());
        put_u64(out, self.max_version);
        out.push(self.reported);
        out.push(u8::from(self.by_content));
        put_u64(out, self.items.len() as u64);
        for four in self.items.chunks(4) {
            let byte = four
                .iter()
                .enumerate()
                .fold(0u8, |b, (i, item)| b | (*item as u8) << (2 * i));
            out.push(byte);
        }
    }

    /// Reads a model written by [`SessionModel::encode`], advancing `input`; `None`
    /// if the bytes are not one.
    pub fn decode(input: &mut &[u8]) -> Option<Self> {
        use crate::compact::{get_string, get_u64};
        let seq = get_u64(input)?;
        let id = get_string(input)?;
        let max_version = get_u64(input)?;
        let (&[reported, by_content], rest) = input.split_first_chunk::<2>()?;
        *input = rest;
        let len = usize::try_from(get_u64(input)?).ok()?;
        let packed = input.get(..len.div_ceil(4))?;
        *input = &input[packed.len()..];
        let items = (0..len)
            .map(|k| match (packed[k / 4] >> (2 * (k % 4))) & 3 {
                0 => Some(Item::Unsent),
                1 => Some(Item::Indeterminate),
                2 => Some(Item::Durable),
                _ => None,
            })
            .collect::<Option<Vec<_>>>()?;
        Some(SessionModel {
            seq,
            id,
            items,
            max_version,
            reported,
            by_content: by_content != 0,
        })
    }

    /// The item (and op id) of append `k`.
    pub fn item(&self, k: u32) -> String {
        self.item_name(k).to_string()
    }

    /// The name of item `k`, to write without a `String` of its own: digits and a
    /// dot, nothing JSON or a URL would escape.
    pub fn item_name(&self, k: u32) -> ItemName {
        ItemName { seq: self.seq, k }
    }

    /// The append was sent and its outcome is unknown.
    pub fn sent(&mut self, k: u32) {
        if self.items[k as usize] == Item::Unsent {
            self.items[k as usize] = Item::Indeterminate;
        }
    }

    /// The append was acknowledged: from now on it must be there.
    pub fn acknowledged(&mut self, k: u32) {
        self.items[k as usize] = Item::Durable;
    }

    /// Whether an anomaly of this kind was already reported for the session.
    pub fn has(&self, kind: AnomalyKind) -> bool {
        self.reported & kind.bit() != 0
    }

    /// The service does not know the session (404), or answered it empty.
    pub fn lost(&mut self, seen: Seen<'_>, detail: impl Into<String>) -> Option<Anomaly> {
        self.report(AnomalyKind::LostSession, seen, detail.into())
    }

    /// Checks a state the service returned against the model, updates the model with
    /// what it proves (indeterminate items that appear are durable from now on), and
    /// returns the anomalies not reported before.
    pub fn check(&mut self, state: &State<'_>, seen: Seen<'_>) -> Vec<Anomaly> {
        let mut found = Vec::new();
        if *state.session != *self.id {
            // The service forgot the session and quietly started a fresh one, as
            // session middleware does with an unknown cookie.
            let detail = format!("answered with another session, {:?}", state.session);
            found.extend(self.lost(seen, detail));
            return found;
        }
        found.extend(self.check_version(state.version, seen));
        found.extend(self.check_items(state.items.iter().map(|item| &*item.0), false, seen));
        found
    }

    /// A version (or a counter) must never go back below one seen before.
    fn check_version(&mut self, version: u64, seen: Seen<'_>) -> Option<Anomaly> {
        let before = self.max_version;
        self.max_version = before.max(version);
        let detail = || format!("version went back from {before} to {version}");
        (version < before)
            .then(|| self.report(AnomalyKind::StaleRead, seen, detail()))
            .flatten()
    }

    /// Checks a list of item names from an answer: each acknowledged item exactly once,
    /// nothing never sent; with `ordered`, this session's items in the order they were
    /// sent (out of order is reported as a stale read: the list is not the latest
    /// history).
    pub fn check_items<'s>(
        &mut self,
        items: impl IntoIterator<Item = &'s str>,
        ordered: bool,
        seen: Seen<'_>,
    ) -> Vec<Anomaly> {
        let mut found = Vec::new();
        let mut times_seen = Tally::from_elem(0, self.items.len());
        let mut phantoms = Vec::new();
        let mut last = None;
        let mut out_of_order = None;
        for item in items {
            match self.index_of(item) {
                Some(k) => {
                    times_seen[k] += 1;
                    if ordered && last.is_some_and(|l| k < l) && out_of_order.is_none() {
                        out_of_order = Some(item);
                    }
                    last = Some(k);
                }
                None => phantoms.push(item),
            }
        }
        if let Some(item) = out_of_order {
            let detail = format!("items out of the order they were sent in, at {item}");
            found.extend(self.report(AnomalyKind::StaleRead, seen, detail));
        }
        if !phantoms.is_empty() {
            let detail = format!("items never sent: {}", sample(&phantoms));
            found.extend(self.report(AnomalyKind::Phantom, seen, detail));
        }
        found.extend(self.judge(&times_seen, phantoms.len(), seen));
        found
    }

    /// Checks an answer in which `count(item)` says how often each item's text appears
    /// (a page listing them). An item not sent yet that appears is a phantom.
    pub fn check_occurrences(
        &mut self,
        count: impl Fn(&str) -> u32,
        seen: Seen<'_>,
    ) -> Vec<Anomaly> {
        let mut found = Vec::new();
        let mut times_seen = Tally::from_elem(0, self.items.len());
        let mut phantoms = Vec::new();
        for (k, n) in times_seen.iter_mut().enumerate() {
            let item = self.item(k as u32);
            *n = count(&item);
            if *n > 0 && self.items[k] == Item::Unsent {
                phantoms.push(item);
                *n = 0;
            }
        }
        if !phantoms.is_empty() {
            let detail = format!("items never sent: {}", sample(&phantoms));
            found.extend(self.report(AnomalyKind::Phantom, seen, detail));
        }
        found.extend(self.judge(&times_seen, phantoms.len(), seen));
        found
    }

    /// Checks a counter the service keeps of the writes: it may not go back (stale
    /// read), must count every acknowledged write (lost write), and may count the
    /// indeterminate ones but nothing more (duplicate: a write applied twice).
    pub fn check_counter(&mut self, value: u64, seen: Seen<'_>) -> Vec<Anomaly> {
        let mut found = Vec::new();
        let durable = self.count(Item::Durable) as u64;
        let indeterminate = self.count(Item::Indeterminate) as u64;
        let prior = self.prior_durable(seen) as u64;
        // Short of the acknowledged writes, and so low that only the writes not known
        // to be durable before this answer could have made it: none of the session's
        // history is left.
        let reset = value < durable && value <= durable + indeterminate - prior;
        if self.by_content && prior > 0 && reset {
            let detail = format!(
                "came back reset: counter is {value}, holding none of the {prior} writes acknowledged before"
            );
            found.extend(self.report(AnomalyKind::LostSession, seen, detail));
            return found;
        }
        found.extend(self.check_version(value, seen));
        if value < durable {
            let detail = format!("counter is {value}, but {durable} writes were acknowledged");
            found.extend(self.report(AnomalyKind::LostWrite, seen, detail));
        } else if value > durable + indeterminate {
            let detail = format!(
                "counter is {value}, but only {} writes were sent ({durable} acknowledged)",
                durable + indeterminate
            );
            found.extend(self.report(AnomalyKind::Duplicate, seen, detail));
        } else if value == durable + indeterminate {
            // Every write whose outcome was unknown did happen.
            for item in &mut self.items {
                if *item == Item::Indeterminate {
                    *item = Item::Durable;
                }
            }
        }
        found
    }

    fn count(&self, state: Item) -> usize {
        self.items.iter().filter(|i| **i == state).count()
    }

    /// Judges how often each item was seen: an acknowledged one missing is a lost
    /// write, any seen twice a duplicate, an indeterminate one seen is durable now.
    /// `phantoms` items of the answer were never sent by this session.
    fn judge(&mut self, times_seen: &[u32], phantoms: usize, seen: Seen<'_>) -> Vec<Anomaly> {
        let mut found = Vec::new();
        let durable = self.count(Item::Durable);
        let mut duplicates = Vec::new();
        let mut missing = Vec::new();
        for (k, (item, n)) in self.items.iter_mut().zip(times_seen).enumerate() {
            if *n > 1 {
                duplicates.push(format!("{}.{k} ×{n}", self.seq));
            }
            match (*item, *n) {
                (Item::Durable, 0) => missing.push(format!("{}.{k}", self.seq)),
                (Item::Indeterminate, 1..) => *item = Item::Durable,
                _ => {}
            }
        }
        if !duplicates.is_empty() {
            let detail = format!("items applied more than once: {}", sample(&duplicates));
            found.extend(self.report(AnomalyKind::Duplicate, seen, detail));
        }
        let prior = self.prior_durable(seen);
        let own_missing = seen.write.is_some_and(|k| {
            self.items[k as usize] == Item::Durable && times_seen[k as usize] == 0
        });
        if self.by_content && prior > 0 && missing.len() - usize::from(own_missing) == prior {
            let detail = format!(
                "{}: none of the {prior} items acknowledged before ({})",
                self.what_was_held(times_seen, phantoms, seen),
                sample(&missing)
            );
            found.extend(self.report(AnomalyKind::LostSession, seen, detail));
        } else if !missing.is_empty() {
            let detail = format!(
                "{} of {durable} acknowledged items missing: {}",
                missing.len(),
                sample(&missing)
            );
            found.extend(self.report(AnomalyKind::LostWrite, seen, detail));
        }
        found
    }

    /// What an answer holding none of the acknowledged items held instead, in words:
    /// "came back empty" only when it held nothing at all. Of the session's own items
    /// it can only have held the one its request wrote: any other it held was
    /// acknowledged by being seen ([`Self::judge`]), so the answer held some after all.
    fn what_was_held(&self, times_seen: &[u32], phantoms: usize, seen: Seen<'_>) -> String {
        let mut held = Vec::new();
        if let Some(k) = seen.write.filter(|&k| times_seen[k as usize] > 0) {
            held.push(format!("the item this request wrote ({}.{k})", self.seq));
        }
        if phantoms > 0 {
            held.push(format!("{} never sent", counted(phantoms, "item")));
        }
        if held.is_empty() {
            "came back empty".to_string()
        } else {
            format!("held only {}", held.join(" and "))
        }
    }

    /// Acknowledged writes other than the one this answer belongs to.
    fn prior_durable(&self, seen: Seen<'_>) -> usize {
        let own = seen
            .write
            .is_some_and(|k| self.items[k as usize] == Item::Durable);
        self.count(Item::Durable) - usize::from(own)
    }

    /// Maps an item name back to its append index, if it is one this session sent.
    /// Read for every item of every answer, so by hand: `split_once` and `parse`
    /// cost more than the rest of the check. As `parse` did, leading zeros are read
    /// (`007.1` is item 1 of session 7); unlike it, a sign is not (`+7.1` is no name
    /// this harness writes, so it is a phantom).
    fn index_of(&self, item: &str) -> Option<usize> {
        let item = item.as_bytes();
        let dot = item.iter().position(|&b| b == b'.')?;
        let k = usize::try_from(decimal(&item[dot + 1..])?).ok()?;
        let sent = decimal(&item[..dot])? == self.seq
            && self.items.get(k).is_some_and(|i| *i != Item::Unsent);
        sent.then_some(k)
    }

    fn report(&mut self, kind: AnomalyKind, seen: Seen<'_>, detail: String) -> Option<Anomaly> {
        // A lost session explains everything later answers show: they are of
        // another session, or of none.
        if self.has(kind) || self.has(AnomalyKind::LostSession) {
            return None;
        }
        self.reported |= kind.bit();
        Some(Anomaly {
            kind,
            session: self.id.clone(),
            op: seen.op,
            served_by: seen.served_by.map(str::to_string),
            at: seen.at,
            detail,
            nearest_fault: None,
            nearest_store_event: None,
        })
    }
}

/// The number `digits` spell in decimal: ASCII digits only, at least one, no sign.
pub(super) fn decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &b| {
        let digit = b.checked_sub(b'0').filter(|d| *d < 10)?;
        n.checked_mul(10)?.checked_add(u64::from(digit))
    })
}

/// The first few entries of a list, for a message that stays short.
/// "1 item", "3 items".
fn counted(n: usize, noun: &str) -> String {
    match n {
        1 => format!("1 {noun}"),
        n => format!("{n} {noun}s"),
    }
}

fn sample<T: AsRef<str>>(list: &[T]) -> String {
    const SHOWN: usize = 5;
    let mut text = list
        .iter()
        .take(SHOWN)
        .map(AsRef::as_ref)
        .collect::<Vec<_>>()
        .join(", ");
    if list.len() > SHOWN {
        text.push_str(&format!(" and {} more", list.len() - SHOWN));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen() -> Seen<'static> {
        Seen {
            op: Op::Read,
            served_by: Some("replica-1.0"),
            at: Duration::from_millis(1500),
            write: None,
        }
    }

    fn state(version: u64, items: &[&str]) -> State<'static> {
        State {
            session: "s1".into(),
            version,
            items: items.iter().map(|s| Text(s.to_string().into())).collect(),
        }
    }

    #[test]
    fn answers_are_read_in_place_unless_escaped() {
        let body = br#"{"session":"s1","version":2,"items":["1.0","1.\u0031"]}"#;
        let state: State = serde_json::from_slice(body).unwrap();
        assert_eq!(state, self::state(2, &["1.0", "1.1"]));
        assert!(matches!(state.session, Cow::Borrowed("s1")));
        assert!(matches!(state.items[0].0, Cow::Borrowed("1.0")));
        assert!(matches!(state.items[1].0, Cow::Owned(_)));
    }

    /// A session of 4 appends whose first `acked` were acknowledged.
    fn model(acked: u32) -> SessionModel {
        let mut m = SessionModel::new(7, "s1".into(), 4);
        for k in 0..acked {
            m.sent(k);
            m.acknowledged(k);
        }
        m
    }

    #[test]
    fn only_names_this_session_sent_map_back_to_their_append() {
        let m = model(2);
        assert_eq!(m.item(1), "7.1");
        let mut written = Vec::new();
        m.item_name(1).write_to(&mut written);
        assert_eq!(written, b"7.1");
        assert_eq!(m.index_of("7.1"), Some(1));
        assert_eq!(m.index_of("7.0"), Some(0));
        assert_eq!(m.index_of("007.1"), Some(1));
        // Not sent yet, out of range, another session's, or not a name at all.
        for other in [
            "7.2",
            "7.9",
            "8.1",
            "+7.1",
            "7.+1",
            "7.",
            ".1",
            "7",
            "7.1.",
            "7.1x",
            "",
            "18446744073709551623.1",
        ] {
            assert_eq!(m.index_of(other), None, "{other}");
        }
    }

    fn kinds(anomalies: &[Anomaly]) -> Vec<AnomalyKind> {
        anomalies.iter().map(|a| a.kind).collect()
    }

    #[test]
    fn a_correct_history_has_no_anomaly() {
        let mut m = SessionModel::new(7, "s1".into(), 4);
        assert!(m.check(&state(0, &[]), seen()).is_empty());
        for k in 0..4 {
            m.sent(k);
            m.acknowledged(k);
            let items: Vec<String> = (0..=k).map(|i| m.item(i)).collect();
            let items: Vec<&str> = items.iter().map(String::as_str).collect();
            assert!(m.check(&state(u64::from(k) + 1, &items), seen()).is_empty());
        }
    }

    #[test]
    fn a_fresh_session_in_place_of_ours_is_a_lost_session() {
        let mut fresh = state(0, &[]);
        fresh.session = "s2".into();
        let found = model(2).check(&fresh, seen());
        assert_eq!(kinds(&found), [AnomalyKind::LostSession]);
        assert_eq!(found[0].served_by.as_deref(), Some("replica-1.0"));
        assert_eq!(found[0].at, Duration::from_millis(1500));
        assert!(found[0].detail.contains("s2"));
    }

    #[test]
    fn our_session_come_back_empty_has_lost_its_writes() {
        // A write-behind cache that died before flushing: the session is there,
        // its acknowledged items are not.
        let found = model(2).check(&state(0, &[]), seen());
        assert_eq!(kinds(&found), [AnomalyKind::LostWrite]);
        assert!(
            found[0]
                .detail
                .starts_with("2 of 2 acknowledged items missing"),
            "{}",
            found[0].detail
        );
    }

    #[test]
    fn missing_acknowledged_item_is_a_lost_write() {
        let found = model(2).check(&state(2, &["7.0"]), seen());
        assert_eq!(kinds(&found), [AnomalyKind::LostWrite]);
        assert!(found[0].detail.contains("7.1"), "{}", found[0].detail);
    }

    #[test]
    fn version_going_back_is_a_stale_read() {
        let mut m = model(2);
        assert!(m.check(&state(2, &["7.0", "7.1"]), seen()).is_empty());
        let found = m.check(&state(1, &["7.0", "7.1"]), seen());
        assert_eq!(kinds(&found), [AnomalyKind::StaleRead]);
    }

    #[test]
    fn item_twice_is_a_duplicate() {
        let found = model(2).check(&state(3, &["7.0", "7.1", "7.1"]), seen());
        assert_eq!(kinds(&found), [AnomalyKind::Duplicate]);
    }

    #[test]
    fn unsent_or_foreign_item_is_a_phantom() {
        for foreign in ["7.3", "8.0", "garbage", "7.99"] {
            let found = model(2).check(&state(3, &["7.0", "7.1", foreign]), seen());
            assert_eq!(kinds(&found), [AnomalyKind::Phantom], "{foreign}");
        }
    }

    #[test]
    fn indeterminate_item_may_be_absent_or_present_once() {
        let mut m = model(1);
        m.sent(1);
        assert!(m.check(&state(1, &["7.0"]), seen()).is_empty());
        assert!(m.check(&state(2, &["7.0", "7.1"]), seen()).is_empty());
    }

    #[test]
    fn indeterminate_item_once_seen_must_stay() {
        let mut m = model(1);
        m.sent(1);
        assert!(m.check(&state(2, &["7.0", "7.1"]), seen()).is_empty());
        let found = m.check(&state(2, &["7.0"]), seen());
        assert_eq!(kinds(&found), [AnomalyKind::LostWrite]);
    }

    #[test]
    fn each_kind_is_reported_once_per_session() {
        let mut m = model(2);
        assert_eq!(m.check(&state(2, &["7.0"]), seen()).len(), 1);
        assert!(m.check(&state(2, &["7.0"]), seen()).is_empty());
        assert!(m.has(AnomalyKind::LostWrite));
        assert!(m.lost(seen(), "404").is_some());
        assert!(m.lost(seen(), "404").is_none());
    }

    #[test]
    fn nothing_is_reported_after_a_lost_session() {
        let mut m = model(2);
        assert!(m.lost(seen(), "404").is_some());
        assert!(m.check(&state(0, &["9.9"]), seen()).is_empty());
        assert!(m.check_counter(0, seen()).is_empty());
    }

    // Sessions judged by what they hold (custom flows).

    fn by_content(acked: u32) -> SessionModel {
        let mut m = SessionModel::new(7, "session 7".into(), 4).judged_by_content();
        for k in 0..acked {
            m.sent(k);
            m.acknowledged(k);
        }
        m
    }

    /// The answer to write `k`, which it shows.
    fn own(k: u32) -> Seen<'static> {
        Seen {
            write: Some(k),
            ..seen()
        }
    }

    #[test]
    fn a_session_come_back_holding_none_of_its_writes_is_lost() {
        // Empty list, empty page, counter back to zero.
        let found = by_content(2).check_items([], false, seen());
        assert_eq!(kinds(&found), [AnomalyKind::LostSession]);
        assert!(found[0]
            .detail
            .starts_with("came back empty: none of the 2"));
        let found = by_content(2).check_occurrences(|_| 0, seen());
        assert_eq!(kinds(&found), [AnomalyKind::LostSession]);
        let found = by_content(2).check_counter(0, seen());
        assert_eq!(kinds(&found), [AnomalyKind::LostSession]);
        assert!(found[0].detail.starts_with("came back reset: counter is 0"));
        // A partial loss is still lost writes.
        assert_eq!(
            kinds(&by_content(2).check_items(["7.1"], false, seen())),
            [AnomalyKind::LostWrite]
        );
        assert_eq!(
            kinds(&by_content(2).check_counter(1, seen())),
            [AnomalyKind::LostWrite]
        );
        // Under the contract, whose answers name the session, empty is lost writes.
        assert_eq!(
            kinds(&model(2).check_items([], false, seen())),
            [AnomalyKind::LostWrite]
        );
    }

    /// A lost session's detail says what the answer held instead of the session.
    #[test]
    fn a_lost_sessions_detail_says_what_the_answer_held() {
        // The lost session comes last, after a phantom the answer also showed.
        let detail = |found: Vec<Anomaly>| {
            let lost = found.last().expect("an anomaly");
            assert_eq!(lost.kind, AnomalyKind::LostSession, "{found:?}");
            lost.detail.clone()
        };
        assert_eq!(
            detail(by_content(2).check_items([], false, seen())),
            "came back empty: none of the 2 items acknowledged before (7.0, 7.1)"
        );
        assert_eq!(
            detail(by_content(3).check_items(["7.2"], false, own(2))),
            "held only the item this request wrote (7.2): none of the 2 items acknowledged before (7.0, 7.1)"
        );
        assert_eq!(
            detail(by_content(2).check_occurrences(|i| u32::from(i == "7.1"), own(1))),
            "held only the item this request wrote (7.1): none of the 1 items acknowledged before (7.0)"
        );
        assert_eq!(
            detail(by_content(2).check_items(["7.1", "9.0", "9.1"], false, own(1))),
            "held only the item this request wrote (7.1) and 2 items never sent: none of the 1 items acknowledged before (7.0)"
        );
        let found = by_content(2).check_items(["9.0"], false, seen());
        assert_eq!(
            kinds(&found),
            [AnomalyKind::Phantom, AnomalyKind::LostSession]
        );
        assert_eq!(
            found[1].detail,
            "held only 1 item never sent: none of the 2 items acknowledged before (7.0, 7.1)"
        );
    }

    #[test]
    fn a_reset_session_holding_only_the_write_it_answers_is_lost() {
        // Shown after the write: a fresh session holds that write alone.
        let mut m = by_content(3);
        let found = m.check_items(["7.2"], false, own(2));
        assert_eq!(kinds(&found), [AnomalyKind::LostSession]);
        assert_eq!(
            kinds(&by_content(3).check_counter(1, own(2))),
            [AnomalyKind::LostSession]
        );
        // The first write of a session has nothing before it to lose.
        assert!(by_content(1).check_counter(1, own(0)).is_empty());
        assert!(by_content(1).check_items(["7.0"], false, own(0)).is_empty());
        // A write whose answer was lost may be all a reset counter holds, but one
        // acknowledged before still counts: 2 of 2 is no loss.
        let mut m = by_content(2);
        m.sent(2);
        assert!(m.check_counter(2, seen()).is_empty());
        let mut m = by_content(2);
        m.sent(2);
        assert_eq!(
            kinds(&m.check_counter(1, seen())),
            [AnomalyKind::LostSession]
        );
    }

    #[test]
    fn several_kinds_in_one_answer() {
        let found = model(3).check(&state(1, &["7.0", "7.0", "9.9"]), seen());
        assert_eq!(
            kinds(&found),
            [
                AnomalyKind::Phantom,
                AnomalyKind::Duplicate,
                AnomalyKind::LostWrite
            ]
        );
    }

    // Custom flows: the same model checks lists, texts and counters.

    #[test]
    fn a_list_out_of_the_order_sent_is_a_stale_read_only_when_order_matters() {
        let mut m = model(3);
        assert!(m
            .check_items(["7.1", "7.0", "7.2"], false, seen())
            .is_empty());
        let found = m.check_items(["7.1", "7.0", "7.2"], true, seen());
        assert_eq!(kinds(&found), [AnomalyKind::StaleRead]);
        assert!(found[0].detail.contains("at 7.0"), "{}", found[0].detail);
        assert!(model(3)
            .check_items(["7.0", "7.1", "7.2"], true, seen())
            .is_empty());
    }

    #[test]
    fn occurrences_in_a_page_are_judged_like_a_list() {
        let page = |text: &'static str| {
            move |item: &str| text.matches(&format!("<li>{item}</li>")).count() as u32
        };
        assert!(model(2)
            .check_occurrences(page("<li>7.0</li><li>7.1</li>"), seen())
            .is_empty());
        let found = model(2).check_occurrences(page("<li>7.0</li>"), seen());
        assert_eq!(kinds(&found), [AnomalyKind::LostWrite]);
        let found =
            model(2).check_occurrences(page("<li>7.0</li><li>7.1</li><li>7.1</li>"), seen());
        assert_eq!(kinds(&found), [AnomalyKind::Duplicate]);
        // 7.3 was never sent: it cannot be on the page.
        let found =
            model(2).check_occurrences(page("<li>7.0</li><li>7.1</li><li>7.3</li>"), seen());
        assert_eq!(kinds(&found), [AnomalyKind::Phantom]);
    }

    #[test]
    fn a_counter_must_count_every_acknowledged_write_and_no_more_than_were_sent() {
        let mut m = model(2);
        m.sent(2); // indeterminate
        assert!(m.check_counter(2, seen()).is_empty());
        assert!(
            m.check_counter(3, seen()).is_empty(),
            "the unknown write happened"
        );
        // Seen at 3, it is durable now: 2 is a step back and a lost write.
        assert_eq!(
            kinds(&m.check_counter(2, seen())),
            [AnomalyKind::StaleRead, AnomalyKind::LostWrite]
        );

        let found = model(2).check_counter(1, seen());
        assert_eq!(kinds(&found), [AnomalyKind::LostWrite]);
        assert!(found[0]
            .detail
            .contains("counter is 1, but 2 writes were acknowledged"));

        let found = model(2).check_counter(3, seen());
        assert_eq!(kinds(&found), [AnomalyKind::Duplicate]);
    }

    #[test]
    fn a_counter_seen_high_then_lower_but_still_covering_the_acknowledged_is_stale() {
        let mut m = model(1);
        m.sent(1);
        m.sent(2);
        assert!(m.check_counter(2, seen()).is_empty());
        let found = m.check_counter(1, seen());
        assert_eq!(kinds(&found), [AnomalyKind::StaleRead]);
    }
}
