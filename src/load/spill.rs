//! Where finished sessions wait for the final sweep: a file, so that a run's memory
//! does not grow with its length.
//!
//! A session that has done its last step (or was lost) will only be read again by
//! the sweep, after the cluster healed from the last fault. Until then it is a
//! record in `sessions.spill` of the run folder: the checker's model
//! ([`SessionModel::encode`], a quarter byte per append plus the id), the cookie it
//! sends (left out when it is the plain `sid=<id>`) and a flow session's jar,
//! captures and counters, about 60 bytes for the demo's sessions against about 270
//! in memory. The shards hand sessions to a writer thread over a channel, in
//! batches, so the load's thread never waits for the disk; the sweep reads the file
//! back in order, one record at a time. What the sweep checks is unchanged: every
//! session, once, after the last fault.
//!
//! The record format is the harness's own and lives as long as the run: a varint
//! length, then the fields in the order [`encode`] writes them.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use http::HeaderValue;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::session::{FlowState, LiveSession};
use crate::compact::{get_bytes, get_string, get_u64, put_bytes, put_u64};
use crate::flow::cookies::Jar;
use crate::session::SessionModel;

/// The spill file's name in the run folder.
pub const SPILL_FILE: &str = "sessions.spill";

/// Bytes buffered before a write to the file.
const BUFFER: usize = 256 * 1024;

/// The writing end: hands finished sessions to the writer thread.
#[derive(Debug)]
pub struct Spill {
    path: PathBuf,
    sender: mpsc::Sender<Vec<LiveSession>>,
    writer: JoinHandle<Written>,
}

/// A handle each shard keeps to retire sessions with. Sessions go to the writer
/// thread in batches: sent one by one, every few requests a send would wake that
/// thread (a futex call here, a wake-up there), about a twentieth of the load's
/// CPU flat out.
#[derive(Debug)]
pub struct Retire {
    sender: mpsc::Sender<Vec<LiveSession>>,
    batch: Vec<LiveSession>,
}

/// Sessions a [`Retire`] holds before it hands them on.
const BATCH: usize = 64;

impl Retire {
    /// Sends `session` to the spill file, with the next batch.
    pub fn retire(&mut self, session: LiveSession) {
        if self.batch.capacity() == 0 {
            self.batch.reserve_exact(BATCH);
        }
        self.batch.push(session);
        if self.batch.len() >= BATCH {
            self.flush();
        }
    }

    /// Hands what is held on now; a shard does at the end of each interval, so a
    /// session waits at most that long in the load's memory.
    pub fn flush(&mut self) {
        if !self.batch.is_empty() {
            // The writer thread only ends once every sender is gone.
            let _ = self.sender.send(std::mem::take(&mut self.batch));
        }
    }
}

impl Drop for Retire {
    fn drop(&mut self) {
        self.flush();
    }
}

/// What the writer thread did.
#[derive(Debug, Default)]
struct Written {
    count: u64,
    bytes: u64,
    /// Sessions that could not be written after the first error, and that error.
    unwritten: u64,
    error: Option<String>,
}

/// The finished spill: where it is and how many sessions it holds.
#[derive(Debug)]
pub struct Spilled {
    path: PathBuf,
    /// Sessions in the file.
    pub count: u64,
    /// Size of the file.
    pub bytes: u64,
    /// Sessions retired but lost to a write error: the sweep cannot check them.
    pub unwritten: u64,
    /// The write error, if there was one.
    pub error: Option<String>,
}

impl Spill {
    /// Creates (or empties) the spill file at `path` and starts its writer thread.
    pub fn create(path: &Path) -> std::io::Result<Spill> {
        let file = BufWriter::with_capacity(BUFFER, File::create(path)?);
        let (sender, receiver) = mpsc::channel();
        let writer = std::thread::Builder::new()
            .name("sessionstorm-spill".into())
            .spawn(move || write_all(receiver, file))?;
        Ok(Spill {
            path: path.to_path_buf(),
            sender,
            writer,
        })
    }

    /// A handle to retire sessions with: one per shard, each with a batch of its
    /// own.
    pub fn retire(&self) -> Retire {
        Retire {
            sender: self.sender.clone(),
            batch: Vec::new(),
        }
    }

    /// Waits until every session retired so far is written. Every [`Retire`] handle
    /// must be dropped first, or this waits for ever.
    pub fn finish(self) -> Spilled {
        let Spill {
            path,
            sender,
            writer,
        } = self;
        drop(sender);
        let written = writer.join().unwrap_or_else(|_| Written {
            error: Some("the spill writer panicked".into()),
            ..Written::default()
        });
        Spilled {
            path,
            count: written.count,
            bytes: written.bytes,
            unwritten: written.unwritten,
            error: written.error,
        }
    }
}

fn write_all(receiver: mpsc::Receiver<Vec<LiveSession>>, mut file: BufWriter<File>) -> Written {
    let mut written = Written::default();
    let mut record = Vec::with_capacity(256);
    let mut frame = Vec::with_capacity(8);
    for session in receiver.into_iter().flatten() {
        if written.error.is_some() {
            written.unwritten += 1;
            continue;
        }
        record.clear();
        encode(session, &mut record);
        frame.clear();
        put_u64(&mut frame, record.len() as u64);
        match file
            .write_all(&frame)
            .and_then(|()| file.write_all(&record))
        {
            Ok(()) => {
                written.count += 1;
                written.bytes += (frame.len() + record.len()) as u64;
            }
            Err(err) => {
                written.unwritten += 1;
                written.error = Some(err.to_string());
            }
        }
    }
    if let Err(err) = file.flush() {
        // What was buffered is gone: nothing in the file can be trusted to be whole.
        written.unwritten += written.count;
        written.count = 0;
        written.error = Some(err.to_string());
    }
    written
}

impl Spilled {
    /// The spilled sessions, each shard's in the order it retired them (shards'
    /// batches interleave); `None` stands for a
    /// record that cannot be read back (the sweep counts it as unverified).
    pub fn sessions(&self) -> std::io::Result<impl Iterator<Item = Option<LiveSession>>> {
        let mut reader = BufReader::with_capacity(BUFFER, File::open(&self.path)?);
        let mut left = self.count;
        let mut record = Vec::new();
        Ok(std::iter::from_fn(move || {
            if left == 0 {
                return None;
            }
            left -= 1;
            let read = read_frame(&mut reader, &mut record).ok();
            Some(read.and_then(|()| decode(&mut record.as_slice())))
        }))
    }

    /// Deletes the file: once swept, its sessions are in the report.
    pub fn remove(&self) -> std::io::Result<()> {
        std::fs::remove_file(&self.path)
    }
}

/// Reads one length-prefixed record into `record`.
fn read_frame(reader: &mut impl BufRead, record: &mut Vec<u8>) -> std::io::Result<()> {
    let mut len = 0u64;
    for shift in (0..64).step_by(7) {
        let mut byte = [0u8];
        reader.read_exact(&mut byte)?;
        len |= u64::from(byte[0] & 0x7f) << shift;
        if byte[0] & 0x80 == 0 {
            record.resize(len as usize, 0);
            return reader.read_exact(record);
        }
    }
    Err(std::io::Error::other("a record length longer than a u64"))
}

/// Flag bits of a record.
const LOST: u8 = 1;
const FLOW: u8 = 2;
/// The cookie is `sid=<id>`, and is not written.
const PLAIN_COOKIE: u8 = 4;
const HOME: u8 = 8;

/// Appends `session` to `out`.
///
/// A flow session's `{{uuid}}` generator is not written: a seed drawn from it is,
/// and the read-back session draws from a generator of that seed, so the uuids stay
/// seeded by the run's seed and never repeat those drawn before.
pub(super) fn encode(session: LiveSession, out: &mut Vec<u8>) {
    let LiveSession {
        model,
        cookie,
        next,
        lost,
        flow,
        home,
    } = session;
    let plain = cookie.as_bytes() == format!("sid={}", model.id()).as_bytes();
    let flags = [
        (lost, LOST),
        (flow.is_some(), FLOW),
        (plain, PLAIN_COOKIE),
        (home.is_some(), HOME),
    ]
    .iter()
    .filter(|(on, _)| *on)
    .fold(0, |f, (_, bit)| f | bit);
    out.push(flags);
    model.encode(out);
    if !plain {
        put_bytes(out, cookie.as_bytes());
    }
    put_u64(out, u64::from(next));
    if let Some(home) = home {
        put_u64(out, home as u64);
    }
    if let Some(mut flow) = flow {
        put_u64(out, flow.jar.pairs().len() as u64);
        for (name, value) in flow.jar.pairs() {
            put_bytes(out, name.as_bytes());
            put_bytes(out, value.as_bytes());
        }
        put_u64(out, flow.captures.len() as u64);
        for capture in &flow.captures {
            put_optional(out, capture.as_deref());
        }
        for n in [
            u64::from(flow.writes),
            flow.vu,
            flow.seq,
            u64::from(flow.steps_per_round),
            flow.last_sent.as_micros() as u64,
            flow.rng.random(),
        ] {
            put_u64(out, n);
        }
        put_optional(out, flow.renewed.as_deref());
    }
}

fn put_optional(out: &mut Vec<u8>, text: Option<&str>) {
    out.push(u8::from(text.is_some()));
    if let Some(text) = text {
        put_bytes(out, text.as_bytes());
    }
}

fn get_optional(input: &mut &[u8]) -> Option<Option<String>> {
    let (&present, rest) = input.split_first()?;
    *input = rest;
    match present {
        0 => Some(None),
        1 => get_string(input).map(Some),
        _ => None,
    }
}

/// Reads back a session written by [`encode`]; `None` if the bytes are not one.
pub(super) fn decode(input: &mut &[u8]) -> Option<LiveSession> {
    let (&flags, rest) = input.split_first()?;
    *input = rest;
    let model = SessionModel::decode(input)?;
    let cookie = if flags & PLAIN_COOKIE != 0 {
        HeaderValue::try_from(format!("sid={}", model.id())).ok()?
    } else {
        HeaderValue::from_bytes(get_bytes(input)?).ok()?
    };
    let mut session = LiveSession::new(model, cookie);
    session.lost = flags & LOST != 0;
    session.next = u32::try_from(get_u64(input)?).ok()?;
    if flags & HOME != 0 {
        session.home = Some(usize::try_from(get_u64(input)?).ok()?);
    }
    if flags & FLOW != 0 {
        let cookies = (0..get_u64(input)?)
            .map(|_| Some((get_string(input)?, get_string(input)?)))
            .collect::<Option<Vec<_>>>()?;
        let captures = (0..get_u64(input)?)
            .map(|_| get_optional(input))
            .collect::<Option<Vec<_>>>()?;
        let mut numbers = [0u64; 6];
        for n in &mut numbers {
            *n = get_u64(input)?;
        }
        let [writes, vu, seq, steps_per_round, last_sent_us, seed] = numbers;
        session.flow = Some(Box::new(FlowState {
            jar: Jar::from_pairs(cookies),
            captures,
            writes: u32::try_from(writes).ok()?,
            vu,
            seq,
            rng: StdRng::seed_from_u64(seed),
            steps_per_round: u32::try_from(steps_per_round).ok()?,
            renewed: get_optional(input)?,
            last_sent: Duration::from_micros(last_sent_us),
        }));
    }
    input.is_empty().then_some(session)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::{Op, Seen};

    fn seen() -> Seen<'static> {
        Seen {
            op: Op::Read,
            served_by: None,
            at: Duration::from_secs(1),
            write: None,
        }
    }

    /// A contract session of 10 appends: 0–3 acknowledged, 4 sent and unanswered.
    fn contract_session(cookie: &str) -> LiveSession {
        let mut model = SessionModel::new(41, "abc123".into(), 10);
        for k in 0..4 {
            model.sent(k);
            model.acknowledged(k);
        }
        model.sent(4);
        let mut session = LiveSession::new(model, HeaderValue::try_from(cookie).unwrap());
        session.next = 9;
        session
    }

    /// What a session's checker says about an answer holding `items`: the same for
    /// a session and its read-back copy when the model came back whole.
    fn verdict(session: &mut LiveSession, items: &[&str]) -> Vec<String> {
        let found = session
            .model
            .check_items(items.iter().copied(), true, seen());
        found.iter().map(|a| a.detail.clone()).collect()
    }

    fn round_trip(session: LiveSession) -> (LiveSession, usize) {
        let mut bytes = Vec::new();
        encode(session, &mut bytes);
        let size = bytes.len();
        (decode(&mut bytes.as_slice()).expect("reads back"), size)
    }

    #[test]
    fn a_contract_session_reads_back_with_its_checker_state() {
        let (mut back, size) = round_trip(contract_session("sid=abc123"));
        assert!(size < 40, "{size} bytes");
        assert_eq!(back.cookie, "sid=abc123");
        assert_eq!(back.next, 9);
        assert!(!back.lost && back.flow.is_none() && back.home.is_none());
        // 41.4 was indeterminate: it may be there; 41.2 acknowledged: it must be.
        let mut original = contract_session("sid=abc123");
        let answer = ["41.0", "41.1", "41.3", "41.4"];
        let found = verdict(&mut back, &answer);
        assert_eq!(found, verdict(&mut original, &answer));
        assert_eq!(found, ["1 of 4 acknowledged items missing: 41.2"]);
        // What was already reported stays reported: not found twice.
        assert!(verdict(&mut round_trip(back).0, &answer).is_empty());
    }

    #[test]
    fn a_sticky_lost_session_keeps_its_cookie_and_home() {
        let mut session = contract_session("SERVERID=r2; sid=abc123");
        session.lost = true;
        session.home = Some(2);
        let (back, _) = round_trip(session);
        assert_eq!(back.cookie, "SERVERID=r2; sid=abc123");
        assert!(back.lost);
        assert_eq!(back.home, Some(2));
    }

    #[test]
    fn a_flow_session_keeps_its_jar_captures_and_counters() {
        let state = FlowState {
            jar: Jar::from_pairs(vec![("PHPSESSID".into(), "x1".into())]),
            captures: vec![Some("token".into()), None],
            writes: 7,
            vu: 3,
            seq: 41,
            rng: StdRng::seed_from_u64(1),
            steps_per_round: 2,
            renewed: Some("PHPSESSID".into()),
            last_sent: Duration::from_millis(1500),
        };
        let session = contract_session("PHPSESSID=x1").with_flow(state);
        let (back, _) = round_trip(session);
        let flow = back.flow.expect("a flow session");
        assert_eq!(flow.jar.pairs(), [("PHPSESSID".into(), "x1".into())]);
        assert_eq!(flow.captures, [Some("token".into()), None]);
        assert_eq!((flow.writes, flow.vu, flow.seq), (7, 3, 41));
        assert_eq!(flow.steps_per_round, 2);
        assert_eq!(flow.renewed.as_deref(), Some("PHPSESSID"));
        assert_eq!(flow.last_sent, Duration::from_millis(1500));
    }

    #[test]
    fn the_file_gives_back_every_session_each_handle_retired_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let spill = Spill::create(&dir.path().join(SPILL_FILE)).unwrap();
        let mut retire = spill.retire();
        let mut other = spill.retire();
        for next in 0..1000 {
            let mut session = contract_session("sid=abc123");
            session.next = next;
            if next % 2 == 0 {
                &mut retire
            } else {
                &mut other
            }
            .retire(session);
        }
        // 500 each, not a whole number of batches: dropping a handle sends the rest.
        drop((retire, other));
        let spilled = spill.finish();
        assert_eq!((spilled.count, spilled.unwritten), (1000, 0));
        assert!(spilled.error.is_none());
        let nexts: Vec<u32> = spilled
            .sessions()
            .unwrap()
            .map(|s| s.expect("whole").next)
            .collect();
        let of = |parity| nexts.iter().copied().filter(move |n| n % 2 == parity);
        assert_eq!(
            of(0).collect::<Vec<_>>(),
            (0..1000).step_by(2).collect::<Vec<_>>()
        );
        assert_eq!(
            of(1).collect::<Vec<_>>(),
            (1..1000).step_by(2).collect::<Vec<_>>()
        );
        spilled.remove().unwrap();
        assert!(!dir.path().join(SPILL_FILE).exists());
    }

    #[test]
    fn a_damaged_record_is_none_and_the_rest_still_read() {
        let mut bytes = Vec::new();
        encode(contract_session("sid=abc123"), &mut bytes);
        for cut in 0..bytes.len() {
            assert!(decode(&mut &bytes[..cut]).is_none(), "cut at {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode(&mut longer.as_slice()).is_none(), "trailing bytes");
    }
}
