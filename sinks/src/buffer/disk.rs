//! The disk buffer: a queue of batches in segment files that outlives the process.
//!
//! A [`Writer`] appends batches to the current segment (`data_dir/buffers/<sink>/
//! <number>.seg`) as records (`length`, CRC-32 of the payload, payload: the event count
//! and each event in the [`sluice_event::codec`] encoding). [`Writer::commit`] calls
//! `fdatasync` and only then publishes the records to the reader; the pipeline releases
//! the batches' acknowledgement tokens after a commit. **fsync policy:** one
//! `fdatasync` per group of batches taken from the input together (at most 4 MiB), and
//! the directory is synced when a segment file is created. So everything acknowledged to
//! a source is on disk, and survives `kill -9` and a power cut alike.
//!
//! The [`Reader`] reads records in order and hands them on as batches with their own
//! acknowledgement tokens. When the sink releases them, the read position (`reader.json`)
//! advances over the acknowledged prefix and segments behind it are deleted. The position
//! is saved at most every 20 ms and when the reader finishes, so after a crash up to that
//! much may be delivered twice; nothing is lost. A record cut short by a crash (written
//! but never committed, so never acknowledged: the source reads it again) fails its CRC
//! and ends its segment.

use sluice_event::ack::{Ack, AckReceiver, AckSignal, Tracker};
use sluice_event::codec;
use sluice_event::store::{Document, Store};
use sluice_event::Batch;
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Smallest `max_bytes` accepted.
pub const MIN_BYTES: u64 = 1 << 20;
/// Bytes of record header: payload length and CRC-32, little-endian u32s.
const HEADER: usize = 8;
/// Most bytes appended between two commits.
pub const GROUP_BYTES: usize = 4 << 20;
/// How often the read position is saved while the reader runs. Saving is a write and a
/// rename without fsync (a position lost to a power cut only means duplicates), about
/// 50 µs, so it can be frequent: 20 ms keeps re-delivery after `kill -9` to what a sink
/// delivered in the last 20 ms before the crash.
const SAVE_EVERY: Duration = Duration::from_millis(20);
/// Positions are `segment << SEG_SHIFT | offset`.
const SEG_SHIFT: u32 = 40;

#[derive(serde::Serialize, serde::Deserialize, Debug, Default, Clone, Copy, PartialEq, Eq)]
struct ReadPosition {
    segment: u64,
    offset: u64,
}

impl Document for ReadPosition {
    const VERSION: u32 = 1;
}

struct State {
    /// Segment and offset up to which records are committed.
    written: (u64, u64),
    /// Bytes in segment files not yet deleted.
    on_disk: u64,
    writer_closed: bool,
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
    max_bytes: u64,
    gauge: metrics::Gauge,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn segment_path(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("{n:016}.seg"))
}

/// Segment numbers present in `dir`, ascending.
fn segments(dir: &Path) -> std::io::Result<Vec<(u64, u64)>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let name = e.file_name();
        let Some(n) = name.to_str().and_then(|n| n.strip_suffix(".seg")).and_then(|n| n.parse::<u64>().ok()) else {
            continue;
        };
        out.push((n, e.metadata()?.len()));
    }
    out.sort_unstable();
    Ok(out)
}

/// Bytes waiting in a disk buffer left by an earlier run (0 when there is none), so a
/// sink whose buffer changed to memory can warn that they are not delivered.
pub fn leftover_bytes(dir: &Path) -> u64 {
    segments(dir).map(|s| s.iter().map(|(_, len)| len).sum()).unwrap_or(0)
}

/// Open (or create) the disk buffer in `dir`, holding at most `max_bytes`; `name` labels
/// its `sluice_disk_buffer_bytes` gauge.
pub fn open(dir: &Path, max_bytes: u64, name: &str) -> std::io::Result<(Writer, Reader)> {
    std::fs::create_dir_all(dir)?;
    let store = Store::new(dir);
    let pos = store
        .load::<ReadPosition>("reader.json")
        .map_err(|e| std::io::Error::other(e.to_string()))?
        .unwrap_or_default();
    let mut on_disk = 0;
    let mut last = None;
    for (n, len) in segments(dir)? {
        if n < pos.segment {
            // Fully delivered before a crash between the save and the delete.
            std::fs::remove_file(segment_path(dir, n))?;
            continue;
        }
        on_disk += len;
        last = Some(n);
    }
    // Never append to a segment a crash may have cut: start a new one.
    let wseg = last.map_or(pos.segment, |n| n + 1).max(pos.segment + 1);
    let shared = Arc::new(Shared {
        state: Mutex::new(State { written: (wseg, 0), on_disk, writer_closed: false }),
        changed: Condvar::new(),
        max_bytes,
        gauge: metrics::gauge!("sluice_disk_buffer_bytes", "component" => name.to_string()),
    });
    shared.gauge.set(on_disk as f64);
    let segment_bytes = (max_bytes / 8).clamp(64 << 10, 32 << 20);
    let writer = Writer {
        dir: dir.to_path_buf(),
        shared: shared.clone(),
        seg: wseg,
        file: None,
        offset: 0,
        segment_bytes,
        buf: Vec::new(),
        uncommitted: 0,
    };
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = Reader {
        dir: dir.to_path_buf(),
        store,
        shared,
        seg: pos.segment,
        offset: pos.offset,
        file: None,
        tracker: Tracker::new(),
        tx,
        rx,
        emitted: 0,
        signalled: 0,
        failed: false,
        saved: pos,
        last_save: Instant::now(),
        name: name.to_string(),
    };
    Ok((writer, reader))
}

/// Appends batches (one thread).
pub struct Writer {
    dir: PathBuf,
    shared: Arc<Shared>,
    seg: u64,
    file: Option<File>,
    offset: u64,
    segment_bytes: u64,
    buf: Vec<u8>,
    /// Bytes appended since the last commit.
    uncommitted: usize,
}

impl Writer {
    /// True when the buffer holds `max_bytes` or more.
    pub fn is_full(&self) -> bool {
        self.shared.lock().on_disk >= self.shared.max_bytes
    }

    /// Bytes appended since the last commit.
    pub fn uncommitted(&self) -> usize {
        self.uncommitted
    }

    /// Wait until the buffer has room, `abort` is set or `timeout` passes. Before
    /// waiting, the current segment is closed so that the reader can delete it once
    /// delivered (the buffer could not free anything otherwise).
    pub fn wait_for_room(&mut self, abort: &AtomicBool, timeout: Duration) -> std::io::Result<bool> {
        if self.offset > 0 {
            self.commit()?;
            self.rotate()?;
        }
        let until = Instant::now() + timeout;
        let mut st = self.shared.lock();
        while st.on_disk >= self.shared.max_bytes {
            let now = Instant::now();
            if abort.load(Ordering::Relaxed) || now >= until {
                return Ok(false);
            }
            let wait = (until - now).min(Duration::from_millis(100));
            st = self.shared.changed.wait_timeout(st, wait).unwrap_or_else(|p| p.into_inner()).0;
        }
        Ok(true)
    }

    /// Append a batch (not yet durable: call [`Writer::commit`]).
    pub fn append(&mut self, batch: &Batch) -> std::io::Result<()> {
        if self.offset >= self.segment_bytes {
            self.commit()?;
            self.rotate()?;
        }
        self.buf.clear();
        self.buf.extend_from_slice(&[0; HEADER]);
        codec::encode_events(&batch.events, &mut self.buf);
        let payload = self.buf.len() - HEADER;
        let len = u32::try_from(payload).map_err(|_| std::io::Error::other("batch too large for one record"))?;
        let crc = crc32fast::hash(&self.buf[HEADER..]);
        self.buf[..4].copy_from_slice(&len.to_le_bytes());
        self.buf[4..8].copy_from_slice(&crc.to_le_bytes());
        if self.file.is_none() {
            self.file = Some(self.create_segment()?);
        }
        self.file.as_mut().expect("segment open").write_all(&self.buf)?;
        self.offset += self.buf.len() as u64;
        self.uncommitted += self.buf.len();
        let mut st = self.shared.lock();
        st.on_disk += self.buf.len() as u64;
        self.shared.gauge.set(st.on_disk as f64);
        if self.buf.capacity() > GROUP_BYTES * 2 {
            self.buf = Vec::new();
        }
        Ok(())
    }

    /// Make everything appended durable and visible to the reader.
    pub fn commit(&mut self) -> std::io::Result<()> {
        if self.uncommitted == 0 {
            return Ok(());
        }
        if let Some(f) = &self.file {
            f.sync_data()?;
        }
        self.uncommitted = 0;
        self.shared.lock().written = (self.seg, self.offset);
        self.shared.changed.notify_all();
        Ok(())
    }

    fn create_segment(&self) -> std::io::Result<File> {
        let f = std::fs::OpenOptions::new().create_new(true).append(true).open(segment_path(&self.dir, self.seg))?;
        File::open(&self.dir)?.sync_all()?;
        Ok(f)
    }

    /// Start the next segment (after a commit).
    fn rotate(&mut self) -> std::io::Result<()> {
        self.file = None;
        self.seg += 1;
        self.offset = 0;
        self.shared.lock().written = (self.seg, 0);
        self.shared.changed.notify_all();
        Ok(())
    }

    /// No more input: the reader ends once it has read everything.
    pub fn close(mut self) -> std::io::Result<()> {
        let r = self.commit();
        self.shared.lock().writer_closed = true;
        self.shared.changed.notify_all();
        r
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // Also when the writer's thread fails: the reader must not wait forever.
        self.shared.lock().writer_closed = true;
        self.shared.changed.notify_all();
    }
}

/// The read position written whole and renamed into place, without fsync: a crash
/// leaves the old position or the new one (the store's format, so `Store::load` reads it).
fn save_position(dir: &Path, pos: &ReadPosition) -> std::io::Result<()> {
    let body = serde_json::json!({ "version": ReadPosition::VERSION, "segment": pos.segment, "offset": pos.offset });
    let tmp = dir.join(".reader.json.next");
    std::fs::write(&tmp, body.to_string())?;
    std::fs::rename(&tmp, dir.join("reader.json"))
}

/// Reads batches back (one thread).
pub struct Reader {
    dir: PathBuf,
    store: Store,
    shared: Arc<Shared>,
    seg: u64,
    offset: u64,
    file: Option<File>,
    tracker: Tracker,
    tx: std::sync::mpsc::Sender<AckSignal>,
    rx: AckReceiver,
    emitted: u64,
    signalled: u64,
    failed: bool,
    saved: ReadPosition,
    last_save: Instant,
    name: String,
}

enum Next {
    Batch(Batch),
    /// Nothing more in this segment.
    EndOfSegment,
    /// Nothing committed yet past the position.
    Wait,
}

impl Reader {
    /// The next batch, waiting for one; `None` when the writer is closed and everything
    /// was read, or when `abort` is set.
    pub fn next(&mut self, abort: &AtomicBool) -> std::io::Result<Option<Batch>> {
        loop {
            self.take_acks(false)?;
            if abort.load(Ordering::Relaxed) {
                return Ok(None);
            }
            let (written, closed) = {
                let st = self.shared.lock();
                (st.written, st.writer_closed)
            };
            let limit = match self.seg.cmp(&written.0) {
                std::cmp::Ordering::Less => None,
                std::cmp::Ordering::Equal => Some(written.1),
                std::cmp::Ordering::Greater => Some(0),
            };
            match self.read_record(limit)? {
                Next::Batch(b) => return Ok(Some(b)),
                Next::EndOfSegment => {
                    self.file = None;
                    self.seg += 1;
                    self.offset = 0;
                }
                Next::Wait => {
                    if closed {
                        return Ok(None);
                    }
                    let st = self.shared.lock();
                    if st.written == written && !st.writer_closed {
                        let _ = self.shared.changed.wait_timeout(st, Duration::from_millis(50));
                    }
                }
            }
        }
    }

    fn read_record(&mut self, limit: Option<u64>) -> std::io::Result<Next> {
        if limit.is_some_and(|l| self.offset >= l) {
            return Ok(Next::Wait);
        }
        if self.file.is_none() {
            match File::open(segment_path(&self.dir, self.seg)) {
                Ok(f) => self.file = Some(f),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && limit.is_none() => return Ok(Next::EndOfSegment),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Next::Wait),
                Err(e) => return Err(e),
            }
        }
        let f = self.file.as_ref().expect("open");
        let end = match limit {
            Some(l) => l,
            None => f.metadata()?.len(),
        };
        let torn = |what: &str, offset: u64| {
            tracing::warn!(
                component = %self.name,
                segment = self.seg,
                offset,
                bytes = end - offset,
                "disk buffer: {what} at the end of a segment (written by a run that stopped before committing it; the source reads those events again)"
            );
        };
        if self.offset >= end {
            return Ok(if limit.is_none() { Next::EndOfSegment } else { Next::Wait });
        }
        let mut header = [0u8; HEADER];
        if end - self.offset < HEADER as u64 {
            torn("a cut record", self.offset);
            return Ok(Next::EndOfSegment);
        }
        f.read_exact_at(&mut header, self.offset)?;
        let len = u64::from(u32::from_le_bytes(header[..4].try_into().expect("4 bytes")));
        let crc = u32::from_le_bytes(header[4..].try_into().expect("4 bytes"));
        let rec_end = self.offset + HEADER as u64 + len;
        if rec_end > end {
            if limit.is_some() {
                // Committed data never ends mid-record.
                return Err(std::io::Error::other(format!(
                    "disk buffer segment {} is damaged at offset {}",
                    self.seg, self.offset
                )));
            }
            torn("a cut record", self.offset);
            return Ok(Next::EndOfSegment);
        }
        let mut payload = vec![0u8; len as usize];
        f.read_exact_at(&mut payload, self.offset + HEADER as u64)?;
        if crc32fast::hash(&payload) != crc {
            torn("a damaged record", self.offset);
            return Ok(Next::EndOfSegment);
        }
        // The CRC matched: an error is a bug or a buffer from an incompatible version.
        let events = codec::decode_events(bytes::Bytes::from(payload)).map_err(|e| {
            std::io::Error::other(format!("disk buffer segment {} offset {}: {e}", self.seg, self.offset))
        })?;
        self.offset = rec_end;
        let seq = self.tracker.emit((self.seg << SEG_SHIFT) | self.offset);
        self.emitted += 1;
        let mut batch = Batch::new(events);
        batch.acks.push(Ack::new(0, seq, self.tx.clone()));
        Ok(Next::Batch(batch))
    }

    /// Apply acknowledgements; save the position when it moved (at most every 20 ms
    /// unless `force`).
    fn take_acks(&mut self, force: bool) -> std::io::Result<()> {
        while let Ok(s) = self.rx.try_recv() {
            self.signalled += 1;
            if s.failed {
                self.failed = true;
            }
            self.tracker.ack(s.seq, s.failed);
        }
        let Some(c) = self.tracker.committed() else { return Ok(()) };
        let mut pos = ReadPosition { segment: c >> SEG_SHIFT, offset: c & ((1 << SEG_SHIFT) - 1) };
        // The end of a segment the writer has left is the start of the next one (so the
        // segment can go).
        if pos.segment < self.shared.lock().written.0
            && std::fs::metadata(segment_path(&self.dir, pos.segment)).is_ok_and(|m| m.len() == pos.offset)
        {
            pos = ReadPosition { segment: pos.segment + 1, offset: 0 };
        }
        if pos != self.saved && (force || self.last_save.elapsed() >= SAVE_EVERY) {
            if force {
                self.store.save("reader.json", &pos).map_err(|e| std::io::Error::other(e.to_string()))?;
            } else {
                save_position(&self.dir, &pos)?;
            }
            self.saved = pos;
            self.last_save = Instant::now();
            // Segments wholly behind the position are delivered.
            let mut freed = 0;
            for (n, len) in segments(&self.dir)? {
                if n >= pos.segment {
                    break;
                }
                std::fs::remove_file(segment_path(&self.dir, n))?;
                freed += len;
            }
            if freed > 0 {
                let mut st = self.shared.lock();
                st.on_disk = st.on_disk.saturating_sub(freed);
                self.shared.gauge.set(st.on_disk as f64);
                drop(st);
                self.shared.changed.notify_all();
            }
        }
        Ok(())
    }

    /// Wait (at most `timeout`, or until `abort`) for every batch handed out to be
    /// acknowledged, then save the position.
    pub fn finish(mut self, abort: &AtomicBool, timeout: Duration) -> std::io::Result<()> {
        let until = Instant::now() + timeout;
        while self.signalled < self.emitted && !self.failed && !abort.load(Ordering::Relaxed) && Instant::now() < until
        {
            match self.rx.recv_timeout(Duration::from_millis(20)) {
                Ok(s) => {
                    self.signalled += 1;
                    self.failed |= s.failed;
                    self.tracker.ack(s.seq, s.failed);
                }
                Err(_) => continue,
            }
        }
        self.take_acks(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use sluice_event::{Event, Origin, OriginInfo, Timestamp};

    fn batch(from: usize, n: usize) -> Batch {
        let o = OriginInfo::new("s", Some("/x.log"));
        Batch::new(
            (from..from + n)
                .map(|i| {
                    Event::from_line(
                        Bytes::from(format!("line {i}")),
                        Timestamp(i as i64),
                        Origin { info: o.clone(), offset: i as u64 },
                    )
                })
                .collect(),
        )
    }

    fn lines(b: &Batch) -> Vec<String> {
        b.events.iter().map(|e| e.message().to_string()).collect()
    }

    #[test]
    fn batches_come_back_in_order_and_delivered_ones_are_not_read_again() {
        let dir = tempfile::tempdir().unwrap();
        let stop = AtomicBool::new(false);
        let (mut w, mut r) = open(dir.path(), 1 << 20, "t").unwrap();
        for i in 0..10 {
            w.append(&batch(i * 10, 10)).unwrap();
        }
        w.commit().unwrap();
        // Read and acknowledge four batches, read a fifth and lose it (a crash).
        for i in 0..4 {
            let b = r.next(&stop).unwrap().unwrap();
            assert_eq!(lines(&b)[0], format!("line {}", i * 10));
        }
        let fifth = r.next(&stop).unwrap().unwrap();
        std::mem::forget(fifth.acks);
        r.finish(&stop, Duration::from_millis(100)).unwrap();
        drop(w);
        // Restart: the fifth batch and everything after it, once.
        let (w, mut r) = open(dir.path(), 1 << 20, "t").unwrap();
        w.close().unwrap();
        let mut got = Vec::new();
        while let Some(b) = r.next(&stop).unwrap() {
            got.extend(lines(&b));
        }
        let want: Vec<String> = (40..100).map(|i| format!("line {i}")).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn a_record_cut_by_a_crash_ends_its_segment_and_later_segments_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let stop = AtomicBool::new(false);
        {
            let (mut w, r) = open(dir.path(), 1 << 20, "t").unwrap();
            w.append(&batch(0, 5)).unwrap();
            w.append(&batch(5, 5)).unwrap();
            w.commit().unwrap();
            drop((w, r));
        }
        // Cut the last record in half, as a crash mid-write would.
        let seg = segments(dir.path()).unwrap()[0];
        let f = std::fs::OpenOptions::new().write(true).open(segment_path(dir.path(), seg.0)).unwrap();
        f.set_len(seg.1 - 7).unwrap();
        let (mut w, mut r) = open(dir.path(), 1 << 20, "t").unwrap();
        w.append(&batch(100, 2)).unwrap();
        w.close().unwrap();
        let mut got = Vec::new();
        while let Some(b) = r.next(&stop).unwrap() {
            got.extend(lines(&b));
        }
        let want: Vec<String> = (0..5).chain(100..102).map(|i| format!("line {i}")).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn full_until_the_reader_delivers_a_segment() {
        let dir = tempfile::tempdir().unwrap();
        let stop = AtomicBool::new(false);
        let (mut w, mut r) = open(dir.path(), MIN_BYTES, "t").unwrap();
        let big = batch(0, 20_000);
        let mut n = 0;
        while !w.is_full() {
            w.append(&big).unwrap();
            n += 1;
        }
        w.commit().unwrap();
        assert!(n >= 2);
        // Nothing delivered: no room.
        assert!(!w.wait_for_room(&stop, Duration::from_millis(50)).unwrap());
        // Deliver everything: room again.
        for _ in 0..n {
            let b = r.next(&stop).unwrap().unwrap();
            drop(b);
        }
        r.take_acks(true).unwrap();
        assert!(w.wait_for_room(&stop, Duration::from_secs(1)).unwrap());
        assert!(!w.is_full());
    }
}
