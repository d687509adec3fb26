//! Source `file`: tails files matched by globs, follows rename and copytruncate
//! rotation without losing or duplicating lines, and checkpoints only what every sink
//! has acknowledged.
//!
//! * Files are identified while running by device and inode, and across restarts by a
//!   fingerprint of their first bytes (`fingerprint_bytes`), so a file renamed while
//!   sluice was down is still recognised.
//! * Rename rotation: a renamed file stays open and is read to its end; it is closed
//!   `rotate_wait` after its last data. The new file at the path is read from its
//!   beginning.
//! * Copytruncate: a shrunk file, or one whose first bytes changed, was truncated. The
//!   unread remainder of the old content is read from the rotated copy in the same
//!   directory (found by fingerprint), then the file is read again from offset 0.
//! * At start, a checkpointed stream whose file is gone from the include list is looked
//!   for among its siblings by fingerprint, and its unread remainder is read.

pub mod checkpoint;

use self::checkpoint::{Checkpoints, Entry, Fingerprint, Saved};
use crate::framing::lines::{Line, LineSplitter};
use crate::framing::multiline::{Aggregator, MultilineConfig, Rule};
use crate::{Source, SourceConfig, SourceContext};
use bytes::BytesMut;
use globset::{Glob, GlobSet, GlobSetBuilder};
use serde::Deserialize;
use sluice_config::units::{self, ByteSize};
use sluice_config::OptionError;
use sluice_event::{Batch, Event, OriginInfo, Timestamp};
use std::collections::HashSet;
use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ReadFrom {
    #[default]
    Beginning,
    End,
}

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileSourceConfig {
    /// Glob patterns of files to read.
    pub include: Vec<String>,
    /// Glob patterns of files to skip.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Where to start in files that have no checkpoint on the first start.
    #[serde(default)]
    pub read_from: ReadFrom,
    /// Longer lines are split into marked parts (`"1MiB"`, or a number of bytes).
    #[serde(default = "default_max_line")]
    pub max_line_bytes: ByteSize,
    /// How often to look for new and rotated files.
    #[serde(default = "default_scan")]
    pub scan_interval: units::Duration,
    /// How long to wait when every file is at its end.
    #[serde(default = "default_poll")]
    pub poll_interval: units::Duration,
    /// How long a rotated file stays open after its last data.
    #[serde(default = "default_rotate_wait")]
    pub rotate_wait: units::Duration,
    /// How many leading bytes identify a file.
    #[serde(default = "default_fp_bytes")]
    pub fingerprint_bytes: ByteSize,
    /// Stop (and let the pipeline drain and exit) once every file is read to its end.
    #[serde(default)]
    pub stop_at_eof: bool,
    /// Fold multi-line records: `{ mode = "java" }` or `{ start_pattern = "…", timeout = "1s" }`.
    pub multiline: Option<MultilineConfig>,
}

fn default_max_line() -> ByteSize {
    ByteSize(1 << 20)
}
fn default_scan() -> units::Duration {
    units::Duration::from_millis(500)
}
fn default_poll() -> units::Duration {
    units::Duration::from_millis(50)
}
fn default_rotate_wait() -> units::Duration {
    units::Duration::from_secs(5)
}
fn default_fp_bytes() -> ByteSize {
    ByteSize(256)
}

impl SourceConfig for FileSourceConfig {
    fn build(&self) -> Result<Box<dyn Source>, OptionError> {
        if self.include.is_empty() {
            return Err(OptionError::new("include", "`include` must list at least one glob pattern"));
        }
        for p in &self.include {
            glob::Pattern::new(p)
                .map_err(|e| OptionError::new("include", format!("invalid glob pattern \"{p}\": {e}")))?;
        }
        let mut ex = GlobSetBuilder::new();
        for p in &self.exclude {
            ex.add(
                Glob::new(p).map_err(|e| OptionError::new("exclude", format!("invalid glob pattern \"{p}\": {e}")))?,
            );
        }
        let exclude = ex.build().map_err(|e| OptionError::new("exclude", e.to_string()))?;
        if self.max_line_bytes.bytes() < 16 {
            return Err(OptionError::new("max_line_bytes", "`max_line_bytes` must be at least 16"));
        }
        if !(1..=65536).contains(&self.fingerprint_bytes.bytes()) {
            return Err(OptionError::new("fingerprint_bytes", "`fingerprint_bytes` must be between 1 and 65536"));
        }
        let multiline = match &self.multiline {
            Some(m) => Some(m.compile()?),
            None => None,
        };
        Ok(Box::new(FileSource { cfg: self.clone(), exclude, multiline }))
    }
}

pub struct FileSource {
    cfg: FileSourceConfig,
    exclude: GlobSet,
    multiline: Option<(Rule, Duration)>,
}

/// One open file being read.
struct Tracked {
    /// Stream key (checkpoint identity). A truncation starts a new stream.
    key: u64,
    file: File,
    id: (u64, u64),
    path: PathBuf,
    origin: Arc<OriginInfo>,
    /// Next byte to read.
    read_pos: u64,
    splitter: LineSplitter,
    /// Multi-line record assembly (if configured).
    agg: Option<Aggregator>,
    fp: Fingerprint,
    /// When the file stopped being at an included path (renamed, deleted, or a copy).
    rotated_since: Option<Instant>,
    last_data: Instant,
    last_check: Instant,
    at_eof: bool,
    size: u64,
}

struct Reader<'a> {
    cfg: &'a FileSourceConfig,
    multiline: &'a Option<(Rule, Duration)>,
    exclude: &'a GlobSet,
    ctx: &'a SourceContext,
    cp: Arc<Checkpoints>,
    files: Vec<Tracked>,
    next_key: u64,
    saved: Saved,
    first_run: bool,
    downstream_gone: bool,
}

fn file_id(m: &std::fs::Metadata) -> (u64, u64) {
    (m.dev(), m.ino())
}

fn read_head(f: &File, n: usize) -> std::io::Result<Vec<u8>> {
    let mut buf = vec![0u8; n];
    let mut got = 0;
    while got < n {
        let k = f.read_at(&mut buf[got..], got as u64)?;
        if k == 0 {
            break;
        }
        got += k;
    }
    buf.truncate(got);
    Ok(buf)
}

impl Source for FileSource {
    fn run(self: Box<Self>, ctx: SourceContext) -> anyhow::Result<()> {
        let (cp, saved, rx) = Checkpoints::open(&ctx.store, &ctx.name)?;
        let cpt = cp.clone();
        let (done, abort) = (ctx.checkpoint_done.clone(), ctx.abort.clone());
        let checkpointer =
            std::thread::Builder::new().name(format!("ckpt-{}", ctx.name)).spawn(move || cpt.run(rx, done, abort))?;
        ctx.aux.lock().unwrap().push(checkpointer);
        let first_run = saved.is_empty();
        let mut r = Reader {
            cfg: &self.cfg,
            multiline: &self.multiline,
            exclude: &self.exclude,
            ctx: &ctx,
            cp,
            files: Vec::new(),
            next_key: 0,
            saved: Saved::new(saved),
            first_run,
            downstream_gone: false,
        };
        r.scan(true);
        r.recover_rotated_at_start();
        ctx.stats.set_started();
        r.run_loop()
    }
}

impl Reader<'_> {
    fn run_loop(&mut self) -> anyhow::Result<()> {
        let scan_every = self.cfg.scan_interval.0.max(Duration::from_millis(10));
        let poll = self.cfg.poll_interval.0.max(Duration::from_millis(1));
        let mut last_scan = Instant::now();
        let mut buf = BytesMut::new();
        loop {
            if self.ctx.stopping() {
                return Ok(());
            }
            if last_scan.elapsed() >= scan_every {
                self.scan(false);
                last_scan = Instant::now();
            }
            let mut progressed = false;
            let mut i = 0;
            while i < self.files.len() {
                match self.read_some(i, &mut buf) {
                    Ok(n) => progressed |= n > 0,
                    Err(e) => {
                        tracing::warn!(path = %self.files[i].path.display(), error = %e, "read error");
                    }
                }
                if !self.receivers_alive() {
                    return Ok(());
                }
                i += 1;
            }
            self.close_finished();
            self.flush_expired_records();
            if !progressed {
                if self.cfg.stop_at_eof && self.files.iter().all(|t| t.at_eof) {
                    // Flush lines without a trailing newline at the very end.
                    for i in 0..self.files.len() {
                        self.finish_stream(i);
                    }
                    tracing::info!(source = %self.ctx.name, "all files read to the end; stopping (stop_at_eof)");
                    return Ok(());
                }
                std::thread::sleep(poll);
            }
        }
    }

    fn receivers_alive(&self) -> bool {
        !self.downstream_gone
    }

    /// Find new, renamed and vanished files.
    fn scan(&mut self, startup: bool) {
        let mut seen: HashSet<(u64, u64)> = HashSet::new();
        for pattern in &self.cfg.include {
            let Ok(paths) = glob::glob(pattern) else { continue };
            for path in paths.flatten() {
                if self.exclude.is_match(&path) {
                    continue;
                }
                let Ok(meta) = std::fs::metadata(&path) else { continue };
                if !meta.is_file() {
                    continue;
                }
                let id = file_id(&meta);
                if !seen.insert(id) {
                    continue;
                }
                if let Some(t) = self.files.iter_mut().find(|t| t.id == id) {
                    t.rotated_since = None;
                    if t.path != path {
                        t.path = path.clone();
                        t.origin = OriginInfo::new(&self.ctx.name, Some(&path.to_string_lossy()));
                        self.cp.update(t.key, Some(&path.to_string_lossy()), None);
                    }
                    continue;
                }
                if let Err(e) = self.open_new(&path, startup) {
                    tracing::warn!(path = %path.display(), error = %e, "cannot open file");
                }
            }
        }
        let now = Instant::now();
        let mut unread = 0u64;
        for t in &mut self.files {
            if !seen.contains(&t.id) && t.rotated_since.is_none() {
                tracing::info!(path = %t.path.display(), "file rotated or removed; reading it to its end");
                t.rotated_since = Some(now);
            }
            if let Ok(m) = t.file.metadata() {
                t.size = m.len();
            }
            unread += t.size.saturating_sub(t.read_pos);
        }
        self.ctx.stats.set_unread_bytes(unread);
    }

    fn new_key(&mut self) -> u64 {
        self.next_key += 1;
        self.next_key
    }

    fn open_new(&mut self, path: &Path, startup: bool) -> std::io::Result<()> {
        let file = File::open(path)?;
        let meta = file.metadata()?;
        let head = read_head(&file, self.cfg.fingerprint_bytes.as_usize())?;
        let fp = Fingerprint::of(&head);
        let path_s = path.to_string_lossy().to_string();
        let mut start = 0u64;
        if startup {
            if let Some(e) = self.saved.take_matching(&head, &path_s) {
                start = if e.offset <= meta.len() { e.offset } else { 0 };
                tracing::info!(path = %path_s, offset = start, "resuming from checkpoint");
            } else if self.first_run && self.cfg.read_from == ReadFrom::End {
                start = meta.len();
            }
        }
        self.track(file, &meta, path, fp, start, None, None);
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn track(
        &mut self,
        file: File,
        meta: &std::fs::Metadata,
        path: &Path,
        fp: Fingerprint,
        start: u64,
        key: Option<u64>,
        carried: Option<(LineSplitter, Option<Aggregator>)>,
    ) {
        let path_s = path.to_string_lossy().to_string();
        let key = match key {
            Some(k) => k,
            None => {
                let k = self.new_key();
                self.cp.register(k, Entry { path: path_s.clone(), fingerprint: fp, offset: start, closed: false });
                k
            }
        };
        let now = Instant::now();
        let (splitter, agg) = match carried {
            Some((s, a)) => (s, a),
            None => (LineSplitter::new(self.cfg.max_line_bytes.as_usize(), start), self.new_aggregator()),
        };
        self.files.push(Tracked {
            key,
            file,
            id: file_id(meta),
            path: path.to_path_buf(),
            origin: OriginInfo::new(&self.ctx.name, Some(&path_s)),
            read_pos: start,
            splitter,
            agg,
            fp,
            rotated_since: None,
            last_data: now,
            last_check: now,
            at_eof: false,
            size: meta.len(),
        });
    }

    fn new_aggregator(&self) -> Option<Aggregator> {
        self.multiline.as_ref().map(|(rule, t)| Aggregator::new(rule.clone(), *t, self.cfg.max_line_bytes.as_usize()))
    }

    /// Streams saved by the previous run whose file is no longer at an included path:
    /// find the rotated file by fingerprint and read what is left of it.
    fn recover_rotated_at_start(&mut self) {
        for e in self.saved.remaining() {
            if let Some((path, file, meta)) = self.find_by_fingerprint(Path::new(&e.path), e.fingerprint, e.offset) {
                if meta.len() > e.offset {
                    tracing::info!(path = %path.display(), offset = e.offset, "reading the rest of a file rotated while sluice was stopped");
                    let key = self.new_key();
                    self.cp.register(key, Entry { path: path.to_string_lossy().into(), ..e.clone() });
                    self.track(file, &meta, &path, e.fingerprint, e.offset, Some(key), None);
                    let t = self.files.last_mut().unwrap();
                    t.rotated_since = Some(Instant::now());
                } else {
                    // Fully read already; remember it so it is not read again.
                    let key = self.new_key();
                    self.cp.keep_closed(key, Entry { path: path.to_string_lossy().into(), ..e });
                }
            }
        }
    }

    /// A file in the directory of `near` (other than files already open) whose first
    /// bytes match `fp` and which is at least `min_len` long.
    fn find_by_fingerprint(
        &self,
        near: &Path,
        fp: Fingerprint,
        min_len: u64,
    ) -> Option<(PathBuf, File, std::fs::Metadata)> {
        if fp.len == 0 {
            return None;
        }
        let dir = near.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let base = near.file_name()?.to_string_lossy().to_string();
        let mut candidates: Vec<PathBuf> = std::fs::read_dir(dir).ok()?.flatten().map(|d| d.path()).collect();
        // Rotated copies usually keep the base name as a prefix (a.log.1, a.log-2026…).
        candidates.sort_by_key(|p| !p.file_name().map(|n| n.to_string_lossy().starts_with(&base)).unwrap_or(false));
        for p in candidates {
            let Ok(meta) = std::fs::metadata(&p) else { continue };
            if !meta.is_file() || meta.len() < min_len.max(fp.len as u64) {
                continue;
            }
            let id = file_id(&meta);
            if self.files.iter().any(|t| t.id == id) {
                continue;
            }
            let Ok(f) = File::open(&p) else { continue };
            let Ok(head) = read_head(&f, fp.len as usize) else { continue };
            if Fingerprint::of(&head) == fp {
                return Some((p, f, meta));
            }
        }
        None
    }

    /// Read one chunk from file `i` and send its lines. Returns bytes read.
    fn read_some(&mut self, i: usize, buf: &mut BytesMut) -> std::io::Result<usize> {
        let chunk = self.ctx.limits.max_bytes.max(4096);
        if self.check_truncation(i)? {
            return Ok(1);
        }
        let t = &mut self.files[i];
        buf.clear();
        buf.reserve(chunk);
        // SAFETY: `read_at` writes into the buffer; only the first `n` bytes it filled
        // are kept (the rest is truncated away before anything reads it).
        unsafe { buf.set_len(chunk) };
        let n = match t.file.read_at(&mut buf[..], t.read_pos) {
            Ok(n) => n,
            Err(e) => {
                buf.clear();
                return Err(e);
            }
        };
        buf.truncate(n);
        if n == 0 {
            t.at_eof = true;
            return Ok(0);
        }
        // If the file was truncated and rewritten between the check and the read, the
        // bytes may be new content read at an old offset: verify the prefix again and
        // discard the chunk if it changed.
        if t.rotated_since.is_none() && !prefix_unchanged(&t.file, t.fp)? {
            buf.clear();
            self.check_truncation(i)?;
            return Ok(1);
        }
        t.at_eof = false;
        t.last_data = Instant::now();
        t.read_pos += n as u64;
        let data = buf.split().freeze();
        let ts = Timestamp::now();
        let origin = t.origin.clone();
        let max_events = self.ctx.limits.max_events;
        let mut events: Vec<Event> = Vec::with_capacity(max_events.min(n / 32 + 16));
        let mut full: Vec<(Vec<Event>, u64)> = Vec::new();
        let mut last_end = 0;
        let mut emit = |l: Line| {
            last_end = l.end;
            events.push(l.into_event(ts, &origin));
            if events.len() >= max_events {
                full.push((std::mem::replace(&mut events, Vec::with_capacity(max_events)), last_end));
            }
        };
        let Tracked { splitter, agg, .. } = t;
        match agg {
            Some(a) => splitter.push(data, &mut |l: Line| a.push(l, &mut emit)),
            None => splitter.push(data, &mut emit),
        }
        // Never checkpoint past a record that is still being assembled.
        let consumed = agg.as_ref().and_then(Aggregator::held_from).unwrap_or(splitter.consumed());
        let key = t.key;
        for (evs, end) in full {
            self.send(key, evs, end);
        }
        if !events.is_empty() {
            self.send(key, events, consumed);
        }
        Ok(n)
    }

    fn send(&mut self, key: u64, events: Vec<Event>, end: u64) {
        let n = events.len() as u64;
        let bytes: u64 = events.iter().map(|e| e.raw.len() as u64).sum();
        self.ctx.stats.events_in(n, bytes);
        let ack = self.cp.emit(key, end);
        let batch = Batch { events, acks: vec![ack] };
        let out = self.ctx.out.clone();
        let rt = self.ctx.rt.clone();
        let every = self.cfg.scan_interval.0.max(Duration::from_millis(10));
        // While held back by a slow consumer, keep discovering files: an open file
        // survives any later rename, so nothing created meanwhile is missed.
        if out.send_blocking_with(&rt, batch, every, || self.scan(false)) {
            self.ctx.stats.events_out(n);
        } else {
            self.downstream_gone = true;
        }
    }

    /// Detect truncation (size below what was read, or different first bytes) and
    /// handle it. Returns true if the file was truncated.
    fn check_truncation(&mut self, i: usize) -> std::io::Result<bool> {
        let fp_bytes = self.cfg.fingerprint_bytes.as_usize();
        let t = &mut self.files[i];
        t.last_check = Instant::now();
        let size = t.file.metadata()?.len();
        t.size = size;
        let head = read_head(&t.file, (t.fp.len as usize).max(fp_bytes.min(size as usize)))?;
        let same_prefix = head.len() >= t.fp.len as usize && Fingerprint::of(&head[..t.fp.len as usize]) == t.fp;
        if size >= t.read_pos && same_prefix {
            // Grow the fingerprint while the file is still short.
            if (t.fp.len as usize) < fp_bytes && head.len() > t.fp.len as usize {
                t.fp = Fingerprint::of(&head);
                self.cp.update(t.key, None, Some(t.fp));
            }
            return Ok(false);
        }
        if t.rotated_since.is_some() {
            // A rotated file that shrinks is not ours to follow any more.
            return Ok(false);
        }
        self.on_truncated(i, head)?;
        Ok(true)
    }

    fn on_truncated(&mut self, i: usize, head: Vec<u8>) -> std::io::Result<()> {
        let (old_key, old_fp, old_pos, path) = {
            let t = &self.files[i];
            (t.key, t.fp, t.read_pos, t.path.clone())
        };
        let new_fp = Fingerprint::of(&head);
        let new_key = self.new_key();
        let path_s = path.to_string_lossy().to_string();
        self.cp.register(new_key, Entry { path: path_s, fingerprint: new_fp, offset: 0, closed: false });
        let max_line = self.cfg.max_line_bytes.as_usize();
        let fresh_agg = self.new_aggregator();
        let (old_splitter, old_agg) = {
            let t = &mut self.files[i];
            t.key = new_key;
            t.fp = new_fp;
            t.read_pos = 0;
            t.at_eof = false;
            (
                std::mem::replace(&mut t.splitter, LineSplitter::new(max_line, 0)),
                std::mem::replace(&mut t.agg, fresh_agg),
            )
        };
        match self.find_by_fingerprint(&path, old_fp, old_pos) {
            Some((copy_path, file, meta)) => {
                tracing::info!(
                    path = %path.display(), copy = %copy_path.display(), offset = old_pos,
                    "file truncated (copytruncate); reading the rest from the rotated copy"
                );
                self.track(file, &meta, &copy_path, old_fp, old_pos, Some(old_key), Some((old_splitter, old_agg)));
                let t = self.files.last_mut().unwrap();
                t.rotated_since = Some(Instant::now());
            }
            None => {
                tracing::warn!(
                    path = %path.display(), offset = old_pos,
                    "file truncated and no rotated copy with the same content found; lines written after offset {old_pos} before the truncation cannot be read"
                );
                let mut s = old_splitter;
                let mut agg = old_agg;
                let origin = self.files[i].origin.clone();
                let mut events = Vec::new();
                let ts = Timestamp::now();
                let mut emit = |l: Line| events.push(l.into_event(ts, &origin));
                match &mut agg {
                    Some(a) => {
                        s.finish(&mut |l: Line| a.push(l, &mut emit));
                        a.flush(&mut emit);
                    }
                    None => s.finish(&mut emit),
                }
                if !events.is_empty() {
                    self.send(old_key, events, s.consumed());
                }
                self.cp.close(old_key);
            }
        }
        Ok(())
    }

    /// Emit the partial last line of stream `i` (end of its input).
    fn finish_stream(&mut self, i: usize) {
        let t = &mut self.files[i];
        if t.splitter.pending() == 0 && t.agg.as_ref().is_none_or(|a| a.held_from().is_none()) {
            return;
        }
        let origin = t.origin.clone();
        let mut events = Vec::new();
        let ts = Timestamp::now();
        let mut emit = |l: Line| events.push(l.into_event(ts, &origin));
        let Tracked { splitter, agg, .. } = t;
        match agg {
            Some(a) => {
                splitter.finish(&mut |l: Line| a.push(l, &mut emit));
                a.flush(&mut emit);
            }
            None => splitter.finish(&mut emit),
        }
        let (key, end) = (t.key, t.splitter.consumed());
        if !events.is_empty() {
            self.send(key, events, end);
        }
    }

    /// Emit multi-line records that waited longer than the timeout for more lines.
    fn flush_expired_records(&mut self) {
        for i in 0..self.files.len() {
            let t = &mut self.files[i];
            let Some(a) = &mut t.agg else { continue };
            if a.held_from().is_none() {
                continue;
            }
            let origin = t.origin.clone();
            let mut events = Vec::new();
            let ts = Timestamp::now();
            a.flush_expired(&mut |l: Line| events.push(l.into_event(ts, &origin)));
            if !events.is_empty() {
                let (key, end) = (t.key, t.splitter.consumed());
                self.send(key, events, end);
            }
        }
    }

    /// Close rotated files that were read to the end and stayed quiet for `rotate_wait`.
    fn close_finished(&mut self) {
        let wait = *self.cfg.rotate_wait;
        let mut i = 0;
        while i < self.files.len() {
            let t = &self.files[i];
            let done = t.at_eof
                && t.rotated_since.is_some_and(|since| since.elapsed() >= wait && t.last_data.elapsed() >= wait);
            if done {
                self.finish_stream(i);
                let t = self.files.swap_remove(i);
                tracing::info!(path = %t.path.display(), "closed rotated file");
                self.cp.close(t.key);
            } else {
                i += 1;
            }
        }
    }
}

fn prefix_unchanged(f: &File, fp: Fingerprint) -> std::io::Result<bool> {
    if fp.len == 0 {
        return Ok(true);
    }
    let head = read_head(f, fp.len as usize)?;
    Ok(head.len() == fp.len as usize && Fingerprint::of(&head) == fp)
}
