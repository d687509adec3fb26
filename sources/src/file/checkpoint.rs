//! Checkpoints of a file source: for every file stream, its content fingerprint and the
//! offset up to which every line has been delivered by every sink.
//!
//! The source registers streams and emitted batches; a checkpointer thread receives
//! acknowledgements, advances each stream over its contiguous prefix of delivered
//! batches and rewrites `DATA_DIR/checkpoints/SOURCE.json` through the durable-state
//! store (tmp + fsync + rename + directory fsync) whenever something advanced. The offset on disk therefore never runs ahead of what
//! the sinks have written: after a crash, lines are re-read, never skipped.

use serde::{Deserialize, Serialize};
use sluice_event::ack::Tracker;
use sluice_event::store::{Document, Store, StoreError};
use sluice_event::{Ack, AckSignal};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Content identity of a file: FNV-1a 64 of its first `len` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Fingerprint {
    pub len: u32,
    pub hash: u64,
}

impl Fingerprint {
    pub fn of(bytes: &[u8]) -> Fingerprint {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for &b in bytes {
            h ^= b as u64;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        Fingerprint { len: bytes.len() as u32, hash: h }
    }
}

/// One persisted stream.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    pub path: String,
    pub fingerprint: Fingerprint,
    /// Every byte before this offset has been delivered.
    pub offset: u64,
    /// Stream no longer being read (rotated away or deleted, and finished).
    #[serde(default)]
    pub closed: bool,
    /// When it was closed (seconds since the epoch): closed streams are forgotten after
    /// [`FORGET_CLOSED_AFTER`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed_at: Option<u64>,
}

/// The checkpoint document of one file source.
#[derive(Debug, Serialize, Deserialize)]
struct FileFormat {
    streams: Vec<Entry>,
}

impl Document for FileFormat {
    const VERSION: u32 = 1;
}

struct Stream {
    entry: Entry,
    tracker: Tracker,
}

struct State {
    streams: BTreeMap<u64, Stream>,
    dirty: bool,
    frozen: bool,
}

/// Shared between the source thread and the checkpointer thread.
pub struct Checkpoints {
    store: Store,
    name: String,
    path: PathBuf,
    state: Mutex<State>,
    tx: Sender<AckSignal>,
}

/// At most this many finished streams are remembered (the newest)...
const MAX_CLOSED: usize = 1024;
/// ...and for at most this long after they finished: long enough for a rotated copy
/// to be recognised after a restart, short enough that the document stays small on a
/// host that has run for years.
pub const FORGET_CLOSED_AFTER: Duration = Duration::from_secs(24 * 3600);

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// Saves happen at most this often. Each is two fsyncs (file and directory), and a fast
/// sink acknowledges hundreds of batches a second: saving after every one cost 15% of
/// tail → blackhole throughput. 25 ms left a window in which a `kill -9` re-read a
/// whole burst of input; 5 ms halves the saves of the blackhole run (397 instead of
/// 808) and keeps re-reading to about a batch.
const MIN_SAVE_INTERVAL: Duration = Duration::from_millis(5);

/// How long a source retired by a reload waits for its in-flight batches to be
/// acknowledged before its checkpoints are saved for its replacement (whatever is
/// acknowledged later is read again: a duplicate, never a loss).
const HAND_OVER_WAIT: Duration = Duration::from_secs(10);

/// The document is rewritten whole (about 150 bytes a stream): with many streams the
/// interval grows so that saving stays under about 20 MB/s (10,000 files: 75 ms; a
/// save of their 1.5 MB document costs about 17 ms of CPU with its fsyncs).
fn save_interval(streams: usize) -> Duration {
    MIN_SAVE_INTERVAL.max(Duration::from_micros(streams as u64 * 150 / 20))
}

impl Checkpoints {
    /// Open the checkpoints of source `name` in `store`; returns them, the entries saved
    /// by the previous run, and the receiver the checkpointer thread must drain.
    pub fn open(store: &Store, name: &str) -> anyhow::Result<(Arc<Checkpoints>, Vec<Entry>, Receiver<AckSignal>)> {
        let doc = format!("checkpoints/{name}.json");
        let path = store.path(&doc);
        let saved = match store.load::<FileFormat>(&doc) {
            Ok(Some(f)) => f.streams,
            Ok(None) => Vec::new(),
            Err(e @ (StoreError::Corrupt { .. } | StoreError::Newer { .. })) => {
                tracing::warn!(error = %e, "unusable checkpoint file; starting without checkpoints");
                Vec::new()
            }
            Err(e) => return Err(anyhow::anyhow!("cannot read checkpoints: {e}")),
        };
        let (tx, rx) = std::sync::mpsc::channel();
        let cp = Arc::new(Checkpoints {
            store: store.clone(),
            name: doc,
            path,
            state: Mutex::new(State { streams: BTreeMap::new(), dirty: false, frozen: false }),
            tx,
        });
        Ok((cp, saved, rx))
    }

    /// Start tracking a stream whose delivered prefix ends at `entry.offset`.
    pub fn register(&self, key: u64, entry: Entry) {
        let mut st = self.state.lock().unwrap();
        st.streams.insert(key, Stream { entry, tracker: Tracker::new() });
        st.dirty = true;
    }

    /// Keep a saved entry that is not being read now (so a later run still knows it).
    pub fn keep_closed(&self, key: u64, mut entry: Entry) {
        entry.closed = true;
        entry.closed_at.get_or_insert_with(unix_now);
        self.register(key, entry);
    }

    /// A batch of stream `key` ending at `end` is about to be sent: its token.
    pub fn emit(&self, key: u64, end: u64) -> Ack {
        let seq = {
            let mut st = self.state.lock().unwrap();
            let s = st.streams.get_mut(&key).expect("registered stream");
            s.tracker.emit(end)
        };
        Ack::new(key, seq, self.tx.clone())
    }

    pub fn update(&self, key: u64, path: Option<&str>, fp: Option<Fingerprint>) {
        let mut st = self.state.lock().unwrap();
        if let Some(s) = st.streams.get_mut(&key) {
            if let Some(p) = path {
                s.entry.path = p.to_string();
            }
            if let Some(f) = fp {
                s.entry.fingerprint = f;
            }
        }
        st.dirty = true;
    }

    /// The stream will not be read any more.
    pub fn close(&self, key: u64) {
        let mut st = self.state.lock().unwrap();
        let now = unix_now();
        if let Some(s) = st.streams.get_mut(&key) {
            s.entry.closed = true;
            s.entry.closed_at = Some(now);
        }
        // Forget streams finished long ago, and bound how many are remembered.
        let forget = FORGET_CLOSED_AFTER.as_secs();
        st.streams.retain(|_, s| {
            !(s.entry.closed
                && s.tracker.in_flight() == 0
                && s.entry.closed_at.is_some_and(|t| now.saturating_sub(t) > forget))
        });
        let closed: Vec<u64> =
            st.streams.iter().filter(|(_, s)| s.entry.closed && s.tracker.in_flight() == 0).map(|(k, _)| *k).collect();
        if closed.len() > MAX_CLOSED {
            for k in &closed[..closed.len() - MAX_CLOSED] {
                st.streams.remove(k);
            }
        }
        st.dirty = true;
    }

    fn apply(&self, sig: AckSignal) {
        let mut st = self.state.lock().unwrap();
        if st.frozen {
            return;
        }
        if let Some(s) = st.streams.get_mut(&sig.stream) {
            if s.tracker.ack(sig.seq, sig.failed) {
                s.entry.offset = s.tracker.committed().unwrap_or(s.entry.offset);
                st.dirty = true;
            }
        }
    }

    /// Stop applying acknowledgements (used when giving up on a drain: batches dropped
    /// after this point were not delivered and must not move the checkpoint).
    pub fn freeze(&self) {
        self.state.lock().unwrap().frozen = true;
    }

    /// True while batches are in flight whose acknowledgement can still move a
    /// checkpoint (a stream with a failed batch is pinned: nothing to wait for).
    fn waiting(&self) -> bool {
        let st = self.state.lock().unwrap();
        !st.frozen && st.streams.values().any(|s| s.tracker.in_flight() > 0 && !s.tracker.failed())
    }

    fn is_dirty(&self) -> bool {
        self.state.lock().unwrap().dirty
    }

    fn min_interval(&self) -> Duration {
        save_interval(self.state.lock().unwrap().streams.len())
    }

    /// Write the file if anything changed.
    pub fn save(&self) -> Result<(), StoreError> {
        let doc = {
            let mut st = self.state.lock().unwrap();
            if !st.dirty {
                return Ok(());
            }
            st.dirty = false;
            FileFormat { streams: st.streams.values().map(|s| s.entry.clone()).collect() }
        };
        let r = self.store.save(&self.name, &doc);
        if r.is_err() {
            // Try again on the next round.
            self.state.lock().unwrap().dirty = true;
        }
        r
    }

    /// The checkpointer loop: apply acknowledgements as they come and save after each
    /// burst. Returns (after a final save) once `done` is set; the runtime sets it when
    /// every sink has finished, so every token has been released by then.
    pub fn run(
        self: Arc<Self>,
        rx: Receiver<AckSignal>,
        done: Arc<std::sync::atomic::AtomicBool>,
        abort: Arc<std::sync::atomic::AtomicBool>,
    ) {
        let mut last_err: Option<String> = None;
        let mut last_save = Instant::now() - save_interval(0);
        loop {
            if abort.load(std::sync::atomic::Ordering::Acquire) {
                self.freeze();
            }
            if done.load(std::sync::atomic::Ordering::Acquire) {
                // A source retired by a reload: its last batches may still be on their way
                // to the sinks; take their acknowledgements for a while, so that its
                // replacement starts after them. (At shutdown every sink has finished:
                // nothing is waited for.)
                let until = Instant::now() + HAND_OVER_WAIT;
                while self.waiting() && !abort.load(std::sync::atomic::Ordering::Acquire) && Instant::now() < until {
                    match rx.recv_timeout(Duration::from_millis(20)) {
                        Ok(sig) => self.apply(sig),
                        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
                    }
                }
                while let Ok(sig) = rx.try_recv() {
                    self.apply(sig);
                }
                if let Err(e) = self.save() {
                    tracing::error!(path = %self.path.display(), error = %e, "cannot write final checkpoint");
                }
                return;
            }
            // A pending change is saved once the save interval has passed since the last save.
            let since = last_save.elapsed();
            let min = self.min_interval();
            let wait = if self.is_dirty() && since < min { min - since } else { Duration::from_millis(200) };
            match rx.recv_timeout(wait) {
                Ok(sig) => {
                    self.apply(sig);
                    while let Ok(sig) = rx.try_recv() {
                        self.apply(sig);
                    }
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                    let _ = self.save();
                    return;
                }
            }
            if last_save.elapsed() < min || !self.is_dirty() {
                continue;
            }
            last_save = Instant::now();
            if let Err(e) = self.save() {
                let msg = e.to_string();
                if last_err.as_deref() != Some(&msg) {
                    tracing::error!(path = %self.path.display(), error = %msg, "cannot write checkpoint");
                    last_err = Some(msg);
                }
            }
        }
    }
}

/// Saved entries indexed for matching against files found at start.
pub struct Saved {
    entries: Vec<Option<Entry>>,
}

impl Saved {
    pub fn new(entries: Vec<Entry>) -> Saved {
        Saved { entries: entries.into_iter().map(Some).collect() }
    }
    pub fn is_empty(&self) -> bool {
        self.entries.iter().all(Option::is_none)
    }
    /// Take the entry whose fingerprint matches the file's first bytes `head`,
    /// preferring one saved under the same path.
    pub fn take_matching(&mut self, head: &[u8], path: &str) -> Option<Entry> {
        let matches = |e: &Entry| {
            let n = e.fingerprint.len as usize;
            n > 0 && head.len() >= n && Fingerprint::of(&head[..n]) == e.fingerprint
        };
        let mut best: Option<usize> = None;
        for (i, slot) in self.entries.iter().enumerate() {
            if let Some(e) = slot {
                if matches(e) && (best.is_none() || e.path == path) {
                    best = Some(i);
                    if e.path == path {
                        break;
                    }
                }
            }
        }
        best.and_then(|i| self.entries[i].take())
    }
    pub fn remaining(&mut self) -> Vec<Entry> {
        self.entries.iter_mut().filter_map(Option::take).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str, closed_at: Option<u64>) -> Entry {
        Entry {
            path: path.into(),
            fingerprint: Fingerprint::of(path.as_bytes()),
            offset: 1,
            closed: closed_at.is_some(),
            closed_at,
        }
    }

    #[test]
    fn saves_space_out_as_the_document_grows() {
        assert_eq!(save_interval(10), MIN_SAVE_INTERVAL);
        assert_eq!(save_interval(10_000), Duration::from_millis(75));
    }

    #[test]
    fn finished_streams_are_forgotten_after_a_day_and_beyond_a_count() {
        let dir = tempfile::tempdir().unwrap();
        let (cp, _, _rx) = Checkpoints::open(&Store::new(dir.path()), "t").unwrap();
        let old = unix_now() - FORGET_CLOSED_AFTER.as_secs() - 10;
        cp.keep_closed(1, entry("old", Some(old)));
        cp.keep_closed(2, entry("recent", Some(unix_now() - 60)));
        cp.register(3, entry("live", None));
        cp.register(4, entry("deleted-now", None));
        cp.close(4);
        let paths = |cp: &Checkpoints| -> Vec<String> {
            cp.state.lock().unwrap().streams.values().map(|s| s.entry.path.clone()).collect()
        };
        assert_eq!(paths(&cp), ["recent", "live", "deleted-now"]);
        for k in 10..(10 + MAX_CLOSED as u64 + 5) {
            cp.register(k, entry(&format!("f{k}"), None));
            cp.close(k);
        }
        let closed = cp.state.lock().unwrap().streams.values().filter(|s| s.entry.closed).count();
        assert_eq!(closed, MAX_CLOSED);
        assert!(paths(&cp).contains(&"live".to_string()));
        // Entries saved by older versions (no closed_at) still load.
        let e: Entry =
            serde_json::from_str(r#"{"path":"a","fingerprint":{"len":1,"hash":2},"offset":3,"closed":true}"#).unwrap();
        assert_eq!(e.closed_at, None);
    }
}
