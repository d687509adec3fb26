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
//! * Descriptors: a file at its end and quiet for `close_idle` is closed, and reopened
//!   when it changes (same device and inode, same first bytes: read on from where it
//!   was; another file at the path: the old one is looked for by fingerprint and read
//!   to its end first). At most `max_open_files` are open, within the process's
//!   descriptor budget (`sources::fds`); files waiting for a descriptor are served
//!   oldest-first, and while some wait, open files at their end are closed and a file
//!   read for more than a second gives its descriptor up, so none starves.
//! * Change notification: inotify on the glob's directories says which files changed;
//!   quiet files are not touched. Without it (or where a directory cannot be watched)
//!   files are polled.
//! * Compressed files (`.gz`, `.zst`, `.bz2`, `.xz`, `.lz4`, `.zip`) matched by a glob
//!   are skipped: rotated archives are not read again.

pub mod checkpoint;
mod watch;

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
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use watch::Watch;

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
    /// Most files this source keeps open at once. Default: the process's descriptor
    /// budget (the soft limit, raised to the hard limit at start, minus a reserve for
    /// sinks and sockets), shared with other file sources.
    #[serde(default)]
    pub max_open_files: Option<usize>,
    /// A file at its end with no new data for this long is closed (and reopened when
    /// it changes).
    #[serde(default = "default_close_idle")]
    pub close_idle: units::Duration,
    /// Skip files not modified for this long (`"7d"`); they are picked up when written again.
    #[serde(default)]
    pub ignore_older: Option<units::Duration>,
    /// Use change notification (inotify) to learn which files changed; `false` polls.
    #[serde(default = "default_true")]
    pub watch: bool,
}

fn default_close_idle() -> units::Duration {
    units::Duration::from_secs(60)
}
fn default_true() -> bool {
    true
}

/// Quiet files looked at on a timer per loop turn (the rest wait for the next turn).
const MAX_RECHECKS: usize = 256;
/// Idle files closed per loop turn.
const MAX_CLOSES: usize = 512;

/// Compressed archives a glob may match (rotated logs): never read.
const COMPRESSED: [&str; 7] = [".gz", ".zst", ".bz2", ".xz", ".lz4", ".zip", ".Z"];

fn is_compressed(p: &Path) -> bool {
    let name = p.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
    COMPRESSED.iter().any(|x| name.ends_with(x))
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
        if self.max_open_files == Some(0) {
            return Err(OptionError::new("max_open_files", "`max_open_files` must be at least 1"));
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
    /// None while closed (idle, or waiting for a descriptor).
    file: Option<File>,
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
    /// Modification time (seconds, nanoseconds) when last looked at.
    mtime: (i64, i64),
    /// A change notification arrived for its path.
    dirty: bool,
    /// Waiting for a descriptor since (closed files that changed).
    waiting_since: Option<Instant>,
    opened_at: Instant,
}

/// A file found by a scan and not yet opened: no descriptor was free.
struct WaitingNew {
    path: PathBuf,
    id: (u64, u64),
    startup: bool,
    since: Instant,
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
    watch: Option<Watch>,
    waiting_new: Vec<WaitingNew>,
    /// Files of this source open now, and the most it may have.
    open_count: usize,
    max_open: usize,
    last_wait_warning: Option<Instant>,
    /// Where timer rechecks resume (they are capped per loop turn).
    recheck_cursor: usize,
    m_open: metrics::Gauge,
    m_watched: metrics::Gauge,
}

fn file_id(m: &std::fs::Metadata) -> (u64, u64) {
    (m.dev(), m.ino())
}

fn mtime(m: &std::fs::Metadata) -> (i64, i64) {
    (m.mtime(), m.mtime_nsec())
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
        let watch = if self.cfg.watch { Watch::start(&self.cfg.include) } else { None };
        let l = [("component", ctx.name.clone())];
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
            watch,
            waiting_new: Vec::new(),
            open_count: 0,
            max_open: self.cfg.max_open_files.unwrap_or(usize::MAX).max(1),
            last_wait_warning: None,
            recheck_cursor: 0,
            m_open: metrics::gauge!("sluice_files_open", &l),
            m_watched: metrics::gauge!("sluice_files_watched", &l),
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
        let watching = self.watch.as_ref().is_some_and(|w| w.complete);
        // With change notification, quiet files are looked at only as a safety net
        // (missed events, truncations without a write event); globs are rescanned on
        // creations and renames, and otherwise rarely.
        let (rescan_every, recheck_open, recheck_closed) = if watching {
            (scan_every.max(Duration::from_secs(60)), Duration::from_secs(30), Duration::from_secs(120))
        } else {
            (scan_every, Duration::ZERO, scan_every.max(Duration::from_secs(1)))
        };
        // Asleep, a watching reader is woken by changes; it still looks around a few
        // times a second for timers (multi-line timeouts, rotate_wait, close_idle).
        let idle_wait = if watching { poll.max(Duration::from_millis(250)) } else { poll };
        let mut last_scan = Instant::now();
        let mut buf = BytesMut::new();
        let mut changes = watch::Changes::default();
        loop {
            if self.ctx.stopping() {
                return Ok(());
            }
            if let Some(w) = &self.watch {
                let more = w.take();
                changes.paths.extend(more.paths);
                changes.rescan |= more.rescan;
                changes.overflow |= more.overflow;
            }
            if changes.overflow {
                for t in &mut self.files {
                    t.dirty = true;
                }
            } else if !changes.paths.is_empty() {
                for t in &mut self.files {
                    if changes.paths.contains(&t.path) {
                        t.dirty = true;
                    }
                }
            }
            if changes.rescan || changes.overflow || last_scan.elapsed() >= rescan_every {
                self.scan(false);
                last_scan = Instant::now();
            }
            changes = watch::Changes::default();
            self.serve_waiting();
            let mut progressed = false;
            let now = Instant::now();
            // Timer rechecks of quiet files are spread over loop turns, so that a sweep
            // of thousands never holds up the files that did change.
            let mut rechecks = 0usize;
            let n = self.files.len();
            let start = if n == 0 { 0 } else { self.recheck_cursor % n };
            let mut capped_at = None;
            for k in 0..n {
                let i = (start + k) % n;
                if rechecks >= MAX_RECHECKS && capped_at.is_none() {
                    capped_at = Some(i);
                }
                let t = &mut self.files[i];
                if t.file.is_none() {
                    let timer = now.duration_since(t.last_check) >= recheck_closed && rechecks < MAX_RECHECKS;
                    if t.waiting_since.is_none() && (t.dirty || timer) {
                        rechecks += usize::from(!t.dirty);
                        t.dirty = false;
                        self.check_closed(i);
                    }
                    continue;
                }
                let timer = now.duration_since(t.last_check) >= recheck_open && rechecks < MAX_RECHECKS;
                let due = !t.at_eof || t.dirty || timer;
                if !due {
                    continue;
                }
                rechecks += usize::from(t.at_eof && !t.dirty);
                t.dirty = false;
                match self.read_some(i, &mut buf) {
                    Ok(n) => progressed |= n > 0,
                    Err(e) => {
                        tracing::warn!(path = %self.files[i].path.display(), error = %e, "read error");
                    }
                }
                if !self.receivers_alive() {
                    return Ok(());
                }
            }
            // The next turn's timer rechecks start where this turn's stopped.
            if let Some(i) = capped_at {
                self.recheck_cursor = i;
            }
            self.close_finished();
            self.flush_expired_records();
            let freed_for_waiting = self.close_idle();
            self.set_gauges();
            if !progressed {
                if self.cfg.stop_at_eof && !self.has_waiting() && self.files.iter().all(|t| t.at_eof) {
                    // Flush lines without a trailing newline at the very end.
                    for i in 0..self.files.len() {
                        self.finish_stream(i);
                    }
                    tracing::info!(source = %self.ctx.name, "all files read to the end; stopping (stop_at_eof)");
                    return Ok(());
                }
                if freed_for_waiting {
                    continue; // descriptors were freed for waiting files
                }
                match &self.watch {
                    Some(w) => changes = w.wait(idle_wait),
                    None => std::thread::sleep(poll),
                }
            }
        }
    }

    fn receivers_alive(&self) -> bool {
        !self.downstream_gone
    }

    /// Files wait for a descriptor (new ones, or closed ones that changed).
    fn has_waiting(&self) -> bool {
        !self.waiting_new.is_empty() || self.files.iter().any(|t| t.waiting_since.is_some())
    }

    /// Take a descriptor slot for one more open file.
    fn acquire(&mut self) -> bool {
        if self.open_count < self.max_open && self.ctx.fds.try_acquire() {
            self.open_count += 1;
            true
        } else {
            false
        }
    }

    fn release(&mut self) {
        self.open_count = self.open_count.saturating_sub(1);
        self.ctx.fds.release();
    }

    /// Close file `i`, keeping its stream (position, partial line, record) to reopen.
    fn close_file(&mut self, i: usize) {
        let t = &mut self.files[i];
        if let Some(f) = t.file.take() {
            if let Ok(m) = f.metadata() {
                t.size = m.len();
                t.mtime = mtime(&m);
            }
            t.last_check = Instant::now();
            drop(f);
            self.release();
        }
    }

    /// Close files at their end that stayed quiet for `close_idle`; while files wait for
    /// a descriptor, close every file at its end, and make files that have had one for
    /// a while give it up after their read.
    fn close_idle(&mut self) -> bool {
        let idle = *self.cfg.close_idle;
        let mut freed = false;
        let mut closes = 0usize;
        let now = Instant::now();
        let waiting = self.has_waiting();
        for i in 0..self.files.len() {
            let t = &self.files[i];
            if t.file.is_none() || t.rotated_since.is_some() {
                continue;
            }
            let quiet = t.at_eof && now.duration_since(t.last_data) >= idle && closes < MAX_CLOSES;
            let yield_now = waiting && (t.at_eof || now.duration_since(t.opened_at) >= Duration::from_secs(1));
            if quiet || yield_now {
                let unread = !t.at_eof;
                self.close_file(i);
                closes += 1;
                freed = true;
                if unread {
                    // Back in the queue, behind the files that waited before it.
                    self.files[i].waiting_since = Some(Instant::now());
                }
            }
        }
        if waiting && self.last_wait_warning.is_none_or(|t| now.duration_since(t) >= Duration::from_secs(60)) {
            self.last_wait_warning = Some(now);
            let n = self.waiting_new.len() + self.files.iter().filter(|t| t.waiting_since.is_some()).count();
            tracing::warn!(
                source = %self.ctx.name, waiting = n, open = self.open_count,
                "files wait for a file descriptor (max_open_files or the descriptor limit); they are read in turn"
            );
        }
        waiting && freed
    }

    /// Open waiting files, oldest first, while descriptors are free.
    fn serve_waiting(&mut self) {
        // Oldest first. A stream that ends while reopening is swap_removed, so the queue
        // names files by key, not by index.
        enum Turn {
            /// A tracked file (by stream key) to reopen.
            Reopen(u64),
            /// A new file (by device and inode) to open.
            Open((u64, u64)),
        }
        let mut queue: Vec<(Instant, Turn)> = self
            .files
            .iter()
            .filter_map(|t| t.waiting_since.map(|w| (w, Turn::Reopen(t.key))))
            .chain(self.waiting_new.iter().map(|w| (w.since, Turn::Open(w.id))))
            .collect();
        if queue.is_empty() {
            return;
        }
        queue.sort_by_key(|(since, _)| *since);
        for (_, what) in queue {
            if !self.acquire() {
                return;
            }
            match what {
                Turn::Reopen(key) => match self.files.iter().position(|t| t.key == key) {
                    Some(i) => {
                        self.files[i].waiting_since = None;
                        self.reopen(i);
                    }
                    None => self.release(),
                },
                Turn::Open(id) => {
                    let Some(j) = self.waiting_new.iter().position(|w| w.id == id) else {
                        self.release();
                        continue;
                    };
                    let w = self.waiting_new.swap_remove(j);
                    if let Err(e) = self.open_new_with_slot(&w.path, w.startup) {
                        self.release();
                        tracing::warn!(path = %w.path.display(), error = %e, "cannot open file");
                    }
                }
            }
        }
    }

    /// A closed file may have changed: look at its path without opening it.
    fn check_closed(&mut self, i: usize) {
        let t = &mut self.files[i];
        t.last_check = Instant::now();
        match std::fs::metadata(&t.path) {
            Ok(m) if file_id(&m) == t.id && m.len() == t.read_pos && mtime(&m) == t.mtime => {}
            _ => t.waiting_since = Some(Instant::now()),
        }
    }

    /// Reopen closed file `i` (a descriptor slot is taken). The same file at its path
    /// goes on from where it was; another file at the path means it was rotated while
    /// closed: the old one is found by fingerprint and read to its end, or the stream
    /// ends.
    fn reopen(&mut self, i: usize) {
        let (path, id, fp, pos) = {
            let t = &self.files[i];
            (t.path.clone(), t.id, t.fp, t.read_pos)
        };
        let same = File::open(&path).ok().and_then(|f| {
            let m = f.metadata().ok()?;
            (file_id(&m) == id).then_some((f, m))
        });
        let (file, meta, rotated) = match same {
            Some((f, m)) => (f, m, false),
            None => match self.find_by_fingerprint(&path, fp, pos, Some(id)) {
                Some((p, f, m)) => {
                    tracing::info!(path = %path.display(), now = %p.display(), "file rotated while closed; reading it to its end");
                    self.files[i].path = p;
                    (f, m, true)
                }
                None => {
                    // Gone, or replaced and nowhere to be found: the stream is over.
                    self.release();
                    self.finish_stream(i);
                    let t = self.files.swap_remove(i);
                    self.cp.close(t.key);
                    return;
                }
            },
        };
        let t = &mut self.files[i];
        t.size = meta.len();
        t.mtime = mtime(&meta);
        t.id = file_id(&meta);
        t.file = Some(file);
        t.at_eof = false;
        t.opened_at = Instant::now();
        if rotated {
            t.rotated_since = Some(Instant::now());
        }
    }

    /// Find new, renamed and vanished files.
    fn scan(&mut self, startup: bool) {
        let mut seen: HashSet<(u64, u64)> = HashSet::new();
        // Indexes, so that a scan of many files is linear. Files opened during the scan
        // are new ids, never looked up again in it.
        let by_id: HashMap<(u64, u64), usize> = self.files.iter().enumerate().map(|(i, t)| (t.id, i)).collect();
        let waiting_ids: HashSet<(u64, u64)> = self.waiting_new.iter().map(|w| w.id).collect();
        let ignore_older = self.cfg.ignore_older.map(|d| d.0);
        for pattern in &self.cfg.include {
            let Ok(paths) = glob::glob(pattern) else { continue };
            for path in paths.flatten() {
                if self.exclude.is_match(&path) || is_compressed(&path) {
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
                if let Some(t) = by_id.get(&id).map(|&i| &mut self.files[i]) {
                    t.rotated_since = None;
                    if t.path != path {
                        t.path = path.clone();
                        t.origin = OriginInfo::new(&self.ctx.name, Some(&path.to_string_lossy()));
                        self.cp.update(t.key, Some(&path.to_string_lossy()), None);
                    }
                    continue;
                }
                if waiting_ids.contains(&id) {
                    continue;
                }
                if let Some(max_age) = ignore_older {
                    let modified = meta.modified().ok().and_then(|m| m.elapsed().ok());
                    if modified.is_some_and(|age| age > max_age) {
                        continue;
                    }
                }
                if let Err(e) = self.open_new(&path, id, startup) {
                    tracing::warn!(path = %path.display(), error = %e, "cannot open file");
                }
            }
        }
        let now = Instant::now();
        let mut unread = 0u64;
        for t in &mut self.files {
            if !seen.contains(&t.id) && t.rotated_since.is_none() {
                if t.file.is_none() {
                    // Closed: look at it when it comes to be reopened.
                    if t.waiting_since.is_none() {
                        t.waiting_since = Some(now);
                    }
                } else {
                    tracing::info!(path = %t.path.display(), "file rotated or removed; reading it to its end");
                    t.rotated_since = Some(now);
                }
            }
            if let Some(f) = &t.file {
                if let Ok(m) = f.metadata() {
                    t.size = m.len();
                }
            }
            unread += t.size.saturating_sub(t.read_pos);
        }
        self.waiting_new.retain(|w| seen.contains(&w.id));
        self.ctx.stats.set_unread_bytes(unread);
    }

    fn new_key(&mut self) -> u64 {
        self.next_key += 1;
        self.next_key
    }

    /// Start reading a file found by a scan, or queue it when no descriptor is free.
    fn open_new(&mut self, path: &Path, id: (u64, u64), startup: bool) -> std::io::Result<()> {
        if !self.acquire() {
            self.waiting_new.push(WaitingNew { path: path.to_path_buf(), id, startup, since: Instant::now() });
            return Ok(());
        }
        let r = self.open_new_with_slot(path, startup);
        if r.is_err() {
            self.release();
        }
        r
    }

    fn open_new_with_slot(&mut self, path: &Path, startup: bool) -> std::io::Result<()> {
        let file = File::open(path)?;
        let meta = file.metadata()?;
        let head = read_head(&file, self.cfg.fingerprint_bytes.as_usize())?;
        let fp = Fingerprint::of(&head);
        let path_s = path.to_string_lossy().to_string();
        let mut start = 0u64;
        if let Some(e) = self.saved.take_matching(&head, &path_s) {
            start = if e.offset <= meta.len() { e.offset } else { 0 };
            tracing::info!(path = %path_s, offset = start, "resuming from checkpoint");
        } else if startup && self.first_run && self.cfg.read_from == ReadFrom::End {
            start = meta.len();
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
                self.cp.register(
                    k,
                    Entry { path: path_s.clone(), fingerprint: fp, offset: start, closed: false, closed_at: None },
                );
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
            file: Some(file),
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
            mtime: mtime(meta),
            dirty: false,
            waiting_since: None,
            opened_at: now,
        });
    }

    fn new_aggregator(&self) -> Option<Aggregator> {
        self.multiline.as_ref().map(|(rule, t)| Aggregator::new(rule.clone(), *t, self.cfg.max_line_bytes.as_usize()))
    }

    /// Streams saved by the previous run whose file is no longer at an included path:
    /// find the rotated file by fingerprint and read what is left of it.
    fn recover_rotated_at_start(&mut self) {
        for e in self.saved.remaining() {
            if let Some((path, file, meta)) =
                self.find_by_fingerprint(Path::new(&e.path), e.fingerprint, e.offset, None)
            {
                if meta.len() > e.offset {
                    self.force_acquire();
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

    /// A slot for a file that must be read now (the rest of a rotated file), even
    /// beyond the budget: the reserve absorbs these few.
    fn force_acquire(&mut self) {
        self.open_count += 1;
        self.ctx.fds.acquire_over();
    }

    /// A file in the directory of `near` (other than files already tracked, except
    /// `allow`) whose first bytes match `fp` and which is at least `min_len` long.
    fn find_by_fingerprint(
        &self,
        near: &Path,
        fp: Fingerprint,
        min_len: u64,
        allow: Option<(u64, u64)>,
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
            // Reopening a closed file (`allow`): its rotated copy keeps the name as a
            // prefix; do not open every file of a large directory to find it.
            if allow.is_some() && !p.file_name().is_some_and(|n| n.to_string_lossy().starts_with(&base)) {
                break;
            }
            let Ok(meta) = std::fs::metadata(&p) else { continue };
            if !meta.is_file() || meta.len() < min_len.max(fp.len as u64) {
                continue;
            }
            let id = file_id(&meta);
            if Some(id) != allow && self.files.iter().any(|t| t.id == id) {
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
        let file = t.file.as_ref().expect("read_some on an open file");
        let n = match file.read_at(&mut buf[..], t.read_pos) {
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
        if !prefix_unchanged(t.file.as_ref().expect("open"), t.fp)? {
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

    /// `sluice_files_open` and `sluice_files_watched` (also while held back: files found
    /// then are open and count).
    fn set_gauges(&self) {
        self.m_open.set(self.open_count as f64);
        self.m_watched.set((self.files.len() + self.waiting_new.len()) as f64);
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
        if out.send_blocking_with(&rt, batch, every, || {
            self.scan(false);
            self.set_gauges();
        }) {
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
        let file = t.file.as_ref().expect("checked while open");
        let size = file.metadata()?.len();
        t.size = size;
        let head = read_head(file, (t.fp.len as usize).max(fp_bytes.min(size as usize)))?;
        let same_prefix = head.len() >= t.fp.len as usize && Fingerprint::of(&head[..t.fp.len as usize]) == t.fp;
        if size >= t.read_pos && same_prefix {
            // Grow the fingerprint while the file is still short.
            if (t.fp.len as usize) < fp_bytes && head.len() > t.fp.len as usize {
                t.fp = Fingerprint::of(&head);
                self.cp.update(t.key, None, Some(t.fp));
            }
            return Ok(false);
        }
        if t.rotated_since.is_some() && same_prefix {
            // A rotated file that shrinks is not ours to follow any more. (One whose first
            // bytes changed was copytruncated before it was renamed, while unread: its old
            // content is in the copy, found below as for a file at its path.)
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
        self.cp
            .register(new_key, Entry { path: path_s, fingerprint: new_fp, offset: 0, closed: false, closed_at: None });
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
        match self.find_by_fingerprint(&path, old_fp, old_pos, None) {
            Some((copy_path, file, meta)) => {
                self.force_acquire();
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
                if self.files[i].file.is_some() {
                    self.release();
                }
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
