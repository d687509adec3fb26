//! Wires built components into a running pipeline: one bounded edge per consumer
//! (fan-in shares it; bounded in batches and in bytes, see `sluice_sources::edge`),
//! fan-out clones batches to each consumer, one thread per component (stateless
//! stages: one per worker). Shutdown cascades: sources stop and drop their senders, each consumer
//! drains its channel, flushes and exits, and finally the checkpointers save.

use crate::registry::Built;
use arc_swap::ArcSwap;
use sluice_config::{Component, Config, Kind};
use sluice_event::stats::ComponentStats;
use sluice_event::tap::Tap;
use sluice_event::{Ack, Batch};
use sluice_sinks::buffer::{disk, BufferType, WhenFull};
use sluice_sinks::Sink;
use sluice_sources::edge::{edge, edge_with, EdgeLimits, EdgeReceiver, EdgeSender, WeakEdgeSender};
use sluice_sources::{BatchLimits, Outputs, SourceContext, Wire};
use sluice_transforms::Transform;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Shared view of the running pipeline for the admin API (replaced by a reload).
pub struct Shared {
    pub stats: Vec<Arc<ComponentStats>>,
    /// The tap of each source and transform (`sluice tap`).
    pub taps: HashMap<String, Arc<Tap>>,
}

impl Shared {
    pub fn ready(&self) -> bool {
        self.stats.iter().all(|s| s.is_started())
    }
}

/// Set once a component's thread is done (a replacement waits for it).
#[derive(Default)]
struct Finished {
    done: Mutex<bool>,
    cv: std::sync::Condvar,
}

impl Finished {
    fn set(&self) {
        *self.done.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.cv.notify_all();
    }
    fn wait(&self) {
        let mut d = self.done.lock().unwrap_or_else(|p| p.into_inner());
        while !*d {
            d = self.cv.wait(d).unwrap_or_else(|p| p.into_inner());
        }
    }
}

/// A [`Wire`] held without keeping its edges open.
type WeakWire = std::sync::Weak<ArcSwap<Vec<EdgeSender>>>;

/// One running component.
struct Live {
    config: Component,
    /// The sending side of its input edge (transforms and sinks), held weakly: the edge
    /// closes when its producers are gone, as at the end of the input.
    input: Option<WeakEdgeSender>,
    /// The wire of each of its outputs (`None`: the default output), held weakly: the
    /// component's thread owns it and drops it (and the edges it feeds) when it ends.
    wires: Vec<(Option<String>, WeakWire)>,
    stats: Arc<ComponentStats>,
    tap: Arc<Tap>,
    /// Sources: stops this one source (a reload that removes or changes it).
    stop: Option<Arc<AtomicBool>>,
    /// Set when a reload retires it: a source then hands over its checkpoints itself.
    retired: Arc<AtomicBool>,
    finished: Arc<Finished>,
}

/// What a reload did, for the log and the API.
#[derive(Debug, Default, serde::Serialize)]
pub struct ReloadSummary {
    pub kept: Vec<String>,
    pub added: Vec<String>,
    pub changed: Vec<String>,
    pub removed: Vec<String>,
}

pub struct Running {
    pub shared: Arc<ArcSwap<Shared>>,
    live: Vec<(String, Live)>,
    data_dir: std::path::PathBuf,
    pipeline: sluice_config::PipelineConfig,
    limits: BatchLimits,
    fds: Arc<sluice_sources::fds::FdBudget>,
    stop: Arc<AtomicBool>,
    /// Set when sinks must give up retrying (drain timeout).
    abort: Arc<AtomicBool>,
    done_tx: mpsc::UnboundedSender<String>,
    done_rx: mpsc::UnboundedReceiver<String>,
    sinks_left: usize,
    threads: Vec<JoinHandle<()>>,
    /// Each source's stop flag, checkpoint-done flag and helper threads.
    source_stops: Vec<Arc<AtomicBool>>,
    checkpoint_done: Vec<Arc<AtomicBool>>,
    aux: Vec<Arc<Mutex<Vec<JoinHandle<()>>>>>,
    /// Set when a component failed (error or panic): sluice exits non-zero.
    pub failed: Arc<AtomicBool>,
    /// Held for the life of the process: the data_dir lock.
    _lock: std::fs::File,
}

/// Run a component's body on its own thread; an error or panic marks the pipeline
/// failed instead of passing silently.
fn spawn_component(
    name: String,
    prefix: &str,
    failed: &Arc<AtomicBool>,
    body: impl FnOnce() -> anyhow::Result<()> + Send + 'static,
) -> std::io::Result<JoinHandle<()>> {
    let failed = failed.clone();
    std::thread::Builder::new().name(format!("{prefix}-{name}")).spawn(move || {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                failed.store(true, Ordering::Relaxed);
                tracing::error!(component = %name, error = %format!("{e:#}"), "component failed");
            }
            Err(_) => {
                failed.store(true, Ordering::Relaxed);
                tracing::error!(component = %name, "component panicked");
            }
        }
    })
}

/// Take an exclusive lock on `data_dir`: two processes sharing checkpoints would each
/// overwrite the other's progress.
fn lock_data_dir(dir: &std::path::Path) -> anyhow::Result<std::fs::File> {
    use std::os::fd::AsRawFd;
    let path = dir.join(".lock");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| anyhow::anyhow!("cannot open {}: {e}", path.display()))?;
    // SAFETY: flock on a file descriptor we own.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        anyhow::bail!(
            "data_dir {} is in use by another sluice process (give each instance its own data_dir)",
            dir.display()
        );
    }
    Ok(f)
}

fn kind_name(k: Kind) -> &'static str {
    match k {
        Kind::Source => "source",
        Kind::Transform => "transform",
        Kind::Sink => "sink",
    }
}

/// True when a running component can stay as it is under `new` (only its inputs may
/// differ: edges are rewired).
fn same_component(old: &Component, new: &Component) -> bool {
    old.kind == new.kind
        && old.type_name == new.type_name
        && old.options == new.options
        && old.buffer_batches == new.buffer_batches
        && old.workers == new.workers
        && old.buffer == new.buffer
}

pub fn start(
    cfg: &Config,
    built: Vec<(Component, Built)>,
    fds: Arc<sluice_sources::fds::FdBudget>,
) -> anyhow::Result<Running> {
    std::fs::create_dir_all(&cfg.data_dir)
        .map_err(|e| anyhow::anyhow!("cannot create data_dir {}: {e}", cfg.data_dir.display()))?;
    let lock = lock_data_dir(&cfg.data_dir)?;
    let (done_tx, done_rx) = mpsc::unbounded_channel();
    let mut running = Running {
        shared: Arc::new(ArcSwap::from_pointee(Shared { stats: Vec::new(), taps: HashMap::new() })),
        live: Vec::new(),
        data_dir: cfg.data_dir.clone(),
        pipeline: cfg.pipeline.clone(),
        limits: BatchLimits {
            max_events: cfg.pipeline.batch_max_events.max(1),
            max_bytes: cfg.pipeline.batch_max_bytes.as_usize().max(4096),
        },
        fds,
        stop: Arc::new(AtomicBool::new(false)),
        abort: Arc::new(AtomicBool::new(false)),
        done_tx,
        done_rx,
        sinks_left: 0,
        threads: Vec::new(),
        source_stops: Vec::new(),
        checkpoint_done: Vec::new(),
        aux: Vec::new(),
        failed: Arc::new(AtomicBool::new(false)),
        _lock: lock,
    };
    running.apply(&cfg.components, built)?;
    Ok(running)
}

impl Running {
    /// Bring the running pipeline to `components`: components whose config is the same
    /// keep running with their state (their edges are rewired); new ones start; changed
    /// ones are replaced (the new instance starts once the old one has drained and, for
    /// a source, saved its checkpoints); removed ones drain and stop. `built` holds a
    /// built instance of every component (those kept are dropped unused).
    fn apply(&mut self, components: &[Component], built: Vec<(Component, Built)>) -> anyhow::Result<ReloadSummary> {
        let mut summary = ReloadSummary::default();
        let mut old: HashMap<String, Live> = std::mem::take(&mut self.live).into_iter().collect();
        let mut built: HashMap<String, Built> = built.into_iter().map(|(c, b)| (c.name.clone(), b)).collect();
        // Decide each component's fate; new instances get fresh edges.
        let mut keep: HashMap<String, Live> = HashMap::new();
        let mut replaced: HashMap<String, Live> = HashMap::new();
        let mut start: Vec<(Component, Built)> = Vec::new();
        for c in components {
            match old.remove(&c.name) {
                // (A consumer whose input edge has closed has finished: it starts again.)
                Some(l) if same_component(&l.config, c) && l.input.as_ref().is_none_or(|i| i.upgrade().is_some()) => {
                    summary.kept.push(c.name.clone());
                    built.remove(&c.name);
                    let mut l = l;
                    l.config = c.clone();
                    keep.insert(c.name.clone(), l);
                }
                prev => {
                    match &prev {
                        Some(_) => summary.changed.push(c.name.clone()),
                        None => summary.added.push(c.name.clone()),
                    }
                    if let Some(l) = prev {
                        replaced.insert(c.name.clone(), l);
                    }
                    let b = built.remove(&c.name).ok_or_else(|| anyhow::anyhow!("`{}` was not built", c.name))?;
                    start.push((c.clone(), b));
                }
            }
        }
        let removed: Vec<(String, Live)> = old.into_iter().collect();
        summary.removed = removed.iter().map(|(n, _)| n.clone()).collect();

        // Counters of a replaced component continue; an edge that drops what does not
        // fit counts into its consumer's.
        let stats_of: HashMap<String, Arc<ComponentStats>> = start
            .iter()
            .map(|(c, _)| {
                let reuse = replaced
                    .get(&c.name)
                    .map(|l| l.stats.clone())
                    .filter(|s| s.kind == kind_name(c.kind) && s.type_name == c.type_name);
                (
                    c.name.clone(),
                    reuse.unwrap_or_else(|| Arc::new(ComponentStats::new(&c.name, kind_name(c.kind), &c.type_name))),
                )
            })
            .collect();
        // One input edge per new consumer.
        let mut inputs: HashMap<String, EdgeSender> = keep
            .iter()
            .filter_map(|(n, l)| l.input.as_ref().and_then(|i| i.upgrade()).map(|i| (n.clone(), i)))
            .collect();
        let mut receivers: HashMap<String, EdgeReceiver> = HashMap::new();
        for (c, b) in &start {
            if c.kind == Kind::Source {
                continue;
            }
            let mut limits = EdgeLimits {
                batches: c.buffer_batches.unwrap_or(self.pipeline.buffer_batches).max(1),
                bytes: self.pipeline.buffer_bytes.as_usize(),
                events: usize::MAX,
                drop_newest: None,
            };
            // A sink's memory buffer: its input edge, with its own bound and policy. (A
            // disk buffer takes from a default edge and applies `when_full` itself.)
            if let Built::Sink(_, buf) = b {
                if buf.kind == BufferType::Memory {
                    if let Some(n) = buf.max_events {
                        limits.batches = n;
                        limits.bytes = usize::MAX;
                        limits.events = n;
                    }
                    if buf.when_full == WhenFull::DropNewest {
                        limits.drop_newest = Some(stats_of[&c.name].clone());
                    }
                }
            }
            let (tx, rx) = edge_with(limits, &c.name);
            inputs.insert(c.name.clone(), tx);
            receivers.insert(c.name.clone(), rx);
        }
        // What each output feeds under the new config.
        let mut feeds: HashMap<(String, Option<String>), Vec<EdgeSender>> = HashMap::new();
        for c in components {
            for input in &c.inputs {
                feeds.entry((input.component.clone(), input.output.clone())).or_default().push(inputs[&c.name].clone());
            }
        }
        // Rewire what keeps running. (Retired components keep their wiring: what they
        // still emit reaches the consumers they had, which drain before they stop.)
        for (name, l) in &keep {
            for (out, wire) in &l.wires {
                let feed = feeds.remove(&(name.clone(), out.clone())).unwrap_or_default();
                // (Gone: the component has finished and emits nothing more.)
                if let Some(wire) = wire.upgrade() {
                    wire.store(Arc::new(feed));
                }
            }
        }
        // Retire: sources stop reading; transforms and sinks stop once their input
        // edge has no producer left and is drained.
        for l in replaced.values().chain(removed.iter().map(|(_, l)| l)) {
            l.retired.store(true, Ordering::Relaxed);
            if let Some(s) = &l.stop {
                s.store(true, Ordering::Relaxed);
            }
        }
        // Start the new instances.
        let mut started: HashMap<String, Live> = HashMap::new();
        for (c, b) in start {
            let predecessor = replaced.remove(&c.name).map(|l| l.finished.clone());
            let stats = stats_of[&c.name].clone();
            let mut wires = Vec::new();
            let default_wire: Wire =
                Arc::new(ArcSwap::from_pointee(feeds.remove(&(c.name.clone(), None)).unwrap_or_default()));
            wires.push((None, Arc::downgrade(&default_wire)));
            let tap = Arc::new(Tap::new());
            let default_out = Outputs::wired(default_wire).with_tap(tap.clone());
            let finished = Arc::new(Finished::default());
            let retired = Arc::new(AtomicBool::new(false));
            let mut stop = None;
            let mut input = None;
            match b {
                Built::Source(src) => {
                    if default_out.is_empty() {
                        tracing::warn!(component = %c.name, "source has no consumers");
                    }
                    let own_stop = Arc::new(AtomicBool::new(self.stop.load(Ordering::Relaxed)));
                    self.source_stops.push(own_stop.clone());
                    stop = Some(own_stop.clone());
                    let checkpoint_done = Arc::new(AtomicBool::new(false));
                    self.checkpoint_done.push(checkpoint_done.clone());
                    let aux: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
                    self.aux.push(aux.clone());
                    let ctx = SourceContext {
                        name: c.name.clone(),
                        out: default_out,
                        stop: own_stop,
                        stats: stats.clone(),
                        store: sluice_event::store::Store::new(&self.data_dir),
                        limits: self.limits,
                        checkpoint_done: checkpoint_done.clone(),
                        abort: self.abort.clone(),
                        rt: tokio::runtime::Handle::current(),
                        aux: aux.clone(),
                        fds: self.fds.clone(),
                    };
                    let (fin, ret) = (finished.clone(), retired.clone());
                    self.threads.push(spawn_component(c.name.clone(), "src", &self.failed, move || {
                        let _finished = SetOnDrop(fin);
                        if let Some(p) = predecessor {
                            p.wait();
                        }
                        let r = src.run(ctx);
                        if ret.load(Ordering::Relaxed) {
                            hand_over(&aux, &checkpoint_done);
                        }
                        r
                    })?);
                }
                Built::Transform(t) => {
                    let mut named = HashMap::new();
                    for o in t.outputs() {
                        let wire: Wire = Arc::new(ArcSwap::from_pointee(
                            feeds.remove(&(c.name.clone(), Some(o.clone()))).unwrap_or_default(),
                        ));
                        wires.push((Some(o.clone()), Arc::downgrade(&wire)));
                        named.insert(o, Outputs::wired(wire).with_tap(tap.clone()));
                    }
                    let rx = receivers.remove(&c.name).expect("transform channel");
                    input = Some(inputs[&c.name].downgrade());
                    let rt = tokio::runtime::Handle::current();
                    // Stages that can run on several workers do, on every core by default.
                    let workers = c.workers.unwrap_or(default_workers());
                    let mut forks = Vec::new();
                    while forks.len() + 1 < workers {
                        match t.fork() {
                            Some(f) => forks.push(f),
                            None => break,
                        }
                    }
                    let name = c.name.clone();
                    let outputs = StageOutputs { out: default_out, named, stats: stats.clone() };
                    let fin = finished.clone();
                    self.threads.push(spawn_component(c.name.clone(), "xf", &self.failed, move || {
                        let _finished = SetOnDrop(fin);
                        if let Some(p) = predecessor {
                            p.wait();
                        }
                        outputs.stats.set_started();
                        if forks.is_empty() {
                            run_transform(t, rx, outputs, rt);
                        } else {
                            forks.insert(0, t);
                            run_workers(&name, forks, rx, outputs)?;
                        }
                        Ok(())
                    })?);
                }
                Built::Sink(s, buffer) => {
                    self.sinks_left += 1;
                    let rx = receivers.remove(&c.name).expect("sink channel");
                    input = Some(inputs[&c.name].downgrade());
                    let name = c.name.clone();
                    let done = self.done_tx.clone();
                    let abort = self.abort.clone();
                    let rt = tokio::runtime::Handle::current();
                    let buffer_dir = self.data_dir.join("buffers").join(&c.name);
                    let disk = (buffer.kind == BufferType::Disk).then(|| DiskSink {
                        dir: buffer_dir.clone(),
                        max_bytes: buffer.disk_bytes(),
                        when_full: buffer.when_full,
                        edge: (self.pipeline.buffer_batches, self.pipeline.buffer_bytes.as_usize()),
                        drain_timeout: *self.pipeline.drain_timeout,
                    });
                    if disk.is_none() {
                        let left = disk::leftover_bytes(&buffer_dir);
                        if left > 0 {
                            tracing::warn!(component = %c.name, bytes = left, dir = %buffer_dir.display(), "a disk buffer from an earlier run still holds events, but this sink now has a memory buffer: they are not delivered until `buffer.type = \"disk\"` is set again");
                        }
                    }
                    let (fin, stats) = (finished.clone(), stats.clone());
                    self.threads.push(spawn_component(c.name.clone(), "sink", &self.failed, move || {
                        // Report completion even when the sink panics, so shutdown proceeds.
                        struct Done(mpsc::UnboundedSender<String>, String);
                        impl Drop for Done {
                            fn drop(&mut self) {
                                let _ = self.0.send(std::mem::take(&mut self.1));
                            }
                        }
                        let _done = Done(done, name);
                        let _finished = SetOnDrop(fin);
                        if let Some(p) = predecessor {
                            p.wait();
                        }
                        stats.set_started();
                        match disk {
                            None => run_sink(s, rx, &stats, &abort, &rt),
                            Some(d) => run_disk_buffered(d, s, rx, &stats, &abort, &rt)?,
                        }
                        Ok(())
                    })?);
                }
            }
            started.insert(c.name.clone(), Live { config: c, input, wires, stats, tap, stop, retired, finished });
        }
        // Retired components' input edges: only their producers hold them now.
        drop(removed);
        drop(replaced);
        drop(inputs);
        drop(feeds);
        // In config order, for the API.
        for c in components {
            if let Some(l) = keep.remove(&c.name).or_else(|| started.remove(&c.name)) {
                self.live.push((c.name.clone(), l));
            }
        }
        let stats = self.live.iter().map(|(_, l)| l.stats.clone()).collect();
        let taps = self
            .live
            .iter()
            .filter(|(_, l)| l.config.kind != Kind::Sink)
            .map(|(n, l)| (n.clone(), l.tap.clone()))
            .collect();
        self.shared.store(Arc::new(Shared { stats, taps }));
        Ok(summary)
    }

    /// Apply a new configuration (already loaded and built: a config with errors never
    /// gets here). Settings only a restart can apply are refused.
    pub fn reload(&mut self, cfg: &Config, built: Vec<(Component, Built)>) -> Result<ReloadSummary, Vec<String>> {
        let mut refused = Vec::new();
        if cfg.data_dir != self.data_dir {
            refused.push(format!(
                "`data_dir` changed ({} → {}): restart sluice to move it",
                self.data_dir.display(),
                cfg.data_dir.display()
            ));
        }
        if cfg.pipeline != self.pipeline {
            refused.push("`[pipeline]` changed: restart sluice to apply batch and buffer sizes".to_string());
        }
        if !refused.is_empty() {
            return Err(refused);
        }
        self.apply(&cfg.components, built).map_err(|e| vec![format!("{e:#}")])
    }

    pub fn request_stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
        for s in &self.source_stops {
            s.store(true, Ordering::Relaxed);
        }
    }

    /// Wait until every sink finished (input ended, or stop requested and drained).
    /// `stop_signal` resolves when SIGTERM/SIGINT arrives; after it, the drain may take
    /// at most `drain_timeout`. `reloads` brings reload requests (SIGHUP, the API): each
    /// is answered with what changed or why the new config was refused. Returns true if
    /// the pipeline drained completely.
    pub async fn wait(
        &mut self,
        stop_signal: impl std::future::Future<Output = ()>,
        drain_timeout: Duration,
        mut reloads: mpsc::Receiver<ReloadRequest>,
    ) -> bool {
        tokio::pin!(stop_signal);
        let mut deadline: Option<tokio::time::Instant> = None;
        let mut signalled = false;
        while self.sinks_left > 0 {
            let sleep = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                r = self.done_rx.recv() => {
                    match r {
                        Some(name) => { tracing::debug!(sink = %name, "sink finished"); self.sinks_left -= 1; }
                        None => break,
                    }
                }
                Some(req) = reloads.recv(), if !signalled => {
                    let answer = match (req.load)() {
                        Err(errors) => Err(errors),
                        Ok(l) => self.reload(&l.cfg, l.built).inspect(|s| (l.applied)(s)),
                    };
                    match &answer {
                        Ok(s) => tracing::info!(by = %req.by, kept = ?s.kept, added = ?s.added, changed = ?s.changed, removed = ?s.removed, "configuration reloaded"),
                        Err(errors) => tracing::error!(by = %req.by, errors = %errors.join("\n"), "new configuration refused; the running one stays"),
                    }
                    let _ = req.answer.send(answer);
                }
                _ = &mut stop_signal, if !signalled => {
                    signalled = true;
                    tracing::info!("stop requested: draining in-flight batches");
                    self.request_stop();
                    deadline = Some(tokio::time::Instant::now() + drain_timeout);
                }
                _ = sleep => {
                    tracing::error!(timeout_secs = drain_timeout.as_secs(), "drain timed out; unacknowledged input will be read again at the next start");
                    return false;
                }
            }
        }
        true
    }

    /// Finish: on a complete drain, let checkpointers apply the last acknowledgements
    /// and save; otherwise freeze them first so undelivered batches never count.
    pub fn finish(self, drained: bool) {
        if !drained {
            self.abort.store(true, Ordering::Relaxed);
        } else {
            for t in self.threads {
                let _ = t.join();
            }
        }
        for d in &self.checkpoint_done {
            d.store(true, Ordering::Release);
        }
        for aux in &self.aux {
            let handles = std::mem::take(&mut *aux.lock().unwrap_or_else(|p| p.into_inner()));
            for t in handles {
                let _ = t.join();
            }
        }
    }
}

/// Loads and builds the configuration again (errors: the messages to answer with).
pub type Loader = Arc<dyn Fn() -> Result<Loaded, Vec<String>> + Send + Sync>;

/// A configuration loaded for a reload, every component built.
pub struct Loaded {
    pub cfg: Config,
    pub built: Vec<(Component, Built)>,
    /// Called once the pipeline runs it (the controls adopt new sample stages).
    pub applied: Box<dyn FnOnce(&ReloadSummary) + Send>,
}

/// A reload request: how to load the new config, who asked, and where the answer goes.
pub struct ReloadRequest {
    pub load: Loader,
    pub by: String,
    pub answer: tokio::sync::oneshot::Sender<Result<ReloadSummary, Vec<String>>>,
}

/// Sets a [`Finished`] when dropped (also when the component fails or panics).
struct SetOnDrop(Arc<Finished>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.set();
    }
}

/// A source retired by a reload has stopped reading: its checkpointer (and any helper
/// thread) takes the acknowledgements still on their way, saves and stops, so that a
/// replacement starts from its checkpoints.
fn hand_over(aux: &Mutex<Vec<JoinHandle<()>>>, checkpoint_done: &AtomicBool) {
    checkpoint_done.store(true, Ordering::Release);
    let handles = std::mem::take(&mut *aux.lock().unwrap_or_else(|p| p.into_inner()));
    for h in handles {
        let _ = h.join();
    }
}

/// Where a transform's batches go, and its counters.
struct StageOutputs {
    out: Outputs,
    named: HashMap<String, Outputs>,
    stats: Arc<ComponentStats>,
}

impl StageOutputs {
    /// Send to the default output (`None`) or a named one.
    fn emit(&self, output: Option<&str>, batch: Batch) {
        let n = batch.len() as u64;
        let target = output.and_then(|o| self.named.get(o)).unwrap_or(&self.out);
        // (A component without consumers still feeds its tap.)
        if target.send_blocking(batch) || target.is_empty() {
            self.stats.events_out(n);
        }
    }

    fn count(&self, o: sluice_transforms::Outcome) {
        self.stats.dropped(o.dropped, o.reason);
        self.stats.parse_errors(o.errors);
    }
}

fn run_transform(mut t: Box<dyn Transform>, mut rx: EdgeReceiver, outputs: StageOutputs, rt: tokio::runtime::Handle) {
    let mut emit = |name: Option<&str>, batch: Batch| outputs.emit(name, batch);
    let tick = t.tick_interval();
    loop {
        let next = match tick {
            None => rx.blocking_recv(),
            Some(every) => match rt.block_on(async { tokio::time::timeout(every, rx.recv()).await }) {
                Ok(next) => next,
                Err(_idle) => {
                    t.tick(&mut emit);
                    continue;
                }
            },
        };
        let Some(batch) = next else { break };
        outputs.stats.events_in(batch.len() as u64, 0);
        let o = t.process(batch, &mut emit);
        outputs.count(o);
        if tick.is_some() {
            t.tick(&mut emit);
        }
    }
    t.finish(&mut emit);
}

/// Workers of a stage that can run on several, unless configured: one per core. On the
/// W1 benchmark (2 cores, seven parse stages into one mask) two mask workers took the
/// run from 5.45 to 5.03 s for 2% more CPU-seconds (BENCHMARKS.md).
fn default_workers() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

/// Batches processed by a stage's workers, waiting to be emitted in input order.
struct InOrder {
    /// Sequence number of the next batch to emit.
    next: u64,
    done: std::collections::BTreeMap<u64, Vec<(Option<String>, Batch)>>,
}

/// Run a stage on several workers (one thread each, instances from `Transform::fork`).
/// A worker takes the next batch and its sequence number from the shared input,
/// processes it, and files the output; whoever files the batch that is next in sequence
/// emits it and every batch behind it that is ready, so the stage emits batches in the
/// order it received them and acknowledgements travel with them unchanged.
fn run_workers(
    name: &str,
    workers: Vec<Box<dyn Transform>>,
    rx: EdgeReceiver,
    outputs: StageOutputs,
) -> anyhow::Result<()> {
    let input = Mutex::new((rx, 0u64));
    let order = Mutex::new(InOrder { next: 0, done: Default::default() });
    let panicked = AtomicBool::new(false);
    std::thread::scope(|scope| -> std::io::Result<()> {
        for (i, mut t) in workers.into_iter().enumerate() {
            let (input, order, outputs, panicked) = (&input, &order, &outputs, &panicked);
            std::thread::Builder::new().name(format!("xf-{name}#{i}")).spawn_scoped(scope, move || {
                loop {
                    let (seq, batch) = {
                        let mut g = input.lock().unwrap_or_else(|p| p.into_inner());
                        let Some(b) = g.0.blocking_recv() else { break };
                        g.1 += 1;
                        (g.1 - 1, b)
                    };
                    outputs.stats.events_in(batch.len() as u64, 0);
                    let mut emitted = Vec::new();
                    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        t.process(batch, &mut |o: Option<&str>, b: Batch| emitted.push((o.map(str::to_owned), b)))
                    }));
                    match r {
                        Ok(o) => outputs.count(o),
                        Err(_) => {
                            // The batch's tokens were dropped while unwinding (failed). Stop the
                            // stage as a one-worker stage would: no more input is taken.
                            panicked.store(true, Ordering::Relaxed);
                            input.lock().unwrap_or_else(|p| p.into_inner()).0.close();
                        }
                    }
                    let mut g = order.lock().unwrap_or_else(|p| p.into_inner());
                    let g = &mut *g;
                    g.done.insert(seq, emitted);
                    while let Some(ready) = g.done.remove(&g.next) {
                        g.next += 1;
                        for (o, b) in ready {
                            outputs.emit(o.as_deref(), b);
                        }
                    }
                }
                t.finish(&mut |o: Option<&str>, b: Batch| outputs.emit(o, b));
            })?;
        }
        Ok(())
    })?;
    if panicked.load(Ordering::Relaxed) {
        anyhow::bail!("a worker panicked");
    }
    Ok(())
}

/// Drive a sink: write each batch (retrying with backoff, never dropping), flush when
/// the input is momentarily empty or enough is pending, and only then release the
/// batches' acknowledgement tokens (as many as the sink reports durable, in order).
fn run_sink(
    mut sink: Box<dyn Sink>,
    mut rx: EdgeReceiver,
    stats: &ComponentStats,
    abort: &AtomicBool,
    rt: &tokio::runtime::Handle,
) {
    // Written batches not yet durable: their tokens and event counts, oldest first.
    let mut pending: VecDeque<(Vec<Ack>, u64)> = VecDeque::new();
    // Batches released since start; `released + pending.len()` were written (the sink
    // counts its writes the same way).
    let mut released = 0u64;
    let max_pending = sink.max_pending_batches().max(1);
    let linger = sink.linger();
    // When the oldest unflushed write happened (for `linger`).
    let mut oldest: Option<Instant> = None;
    let release = |sink: &dyn Sink, pending: &mut VecDeque<(Vec<Ack>, u64)>, released: &mut u64| {
        let written = *released + pending.len() as u64;
        let durable = sink.durable_batches().unwrap_or(written).min(written);
        while *released < durable {
            let Some((acks, n)) = pending.pop_front() else { break };
            stats.events_out(n);
            drop(acks); // releases the tokens: the input is acknowledged
            *released += 1;
        }
    };
    let flush = |sink: &mut Box<dyn Sink>, pending: &mut VecDeque<(Vec<Ack>, u64)>, released: &mut u64| -> bool {
        if pending.is_empty() {
            return true;
        }
        if !retry(stats, abort, "flush", || sink.flush()) {
            return false;
        }
        release(sink.as_ref(), pending, released);
        true
    };
    loop {
        let batch = match rx.try_recv() {
            Ok(b) => b,
            Err(mpsc::error::TryRecvError::Empty) => {
                // Input paused: a lingering sink waits for more until its oldest write is
                // `linger` old; others flush now. A sink that completes output in pieces
                // may still hold batches after the flush: wake when its next piece is due.
                let lingering = oldest.map(|t| linger.saturating_sub(t.elapsed())).filter(|w| !w.is_zero());
                let wait = match lingering {
                    Some(w) if !pending.is_empty() => Some(w),
                    _ => {
                        if !flush(&mut sink, &mut pending, &mut released) {
                            break;
                        }
                        oldest = None;
                        if pending.is_empty() {
                            None
                        } else {
                            sink.next_due().map(|d| d.max(Duration::from_millis(1)))
                        }
                    }
                };
                match wait {
                    Some(wait) => match rt.block_on(async { tokio::time::timeout(wait, rx.recv()).await }) {
                        Ok(Some(b)) => b,
                        Ok(None) => break,
                        Err(_elapsed) => continue,
                    },
                    None => match rx.blocking_recv() {
                        Some(b) => b,
                        None => break,
                    },
                }
            }
            Err(mpsc::error::TryRecvError::Disconnected) => break,
        };
        let n = batch.len() as u64;
        stats.events_in(n, 0);
        if !retry(stats, abort, "write", || sink.write(&batch)) {
            fail(&batch.acks);
            break;
        }
        let Batch { events, acks } = batch;
        drop(events);
        pending.push_back((acks, n));
        oldest.get_or_insert_with(Instant::now);
        if pending.len() >= max_pending || sink.wants_flush() {
            if !flush(&mut sink, &mut pending, &mut released) {
                break;
            }
            oldest = None;
        }
    }
    // Input ended (or the pipeline is aborting): close what is open and deliver it.
    if retry(stats, abort, "finish", || sink.finish()) {
        release(sink.as_ref(), &mut pending, &mut released);
    }
    for (acks, _) in &pending {
        fail(acks);
    }
    // Anything still queued was not delivered.
    rx.close();
    while let Ok(b) = rx.try_recv() {
        fail(&b.acks);
    }
}

/// A sink behind a disk buffer.
struct DiskSink {
    dir: std::path::PathBuf,
    max_bytes: u64,
    when_full: WhenFull,
    /// The edge from the reader to the sink: batches, bytes.
    edge: (usize, usize),
    drain_timeout: Duration,
}

/// Run a sink behind its disk buffer: a writer thread appends what arrives on the input
/// edge and acknowledges it once committed to disk; a reader thread feeds the sink from
/// disk, and the buffer forgets batches only when the sink has made them durable.
fn run_disk_buffered(
    d: DiskSink,
    sink: Box<dyn Sink>,
    mut rx: EdgeReceiver,
    stats: &ComponentStats,
    abort: &AtomicBool,
    rt: &tokio::runtime::Handle,
) -> anyhow::Result<()> {
    let (mut writer, mut reader) = disk::open(&d.dir, d.max_bytes, &stats.name)
        .map_err(|e| anyhow::anyhow!("disk buffer {}: {e}", d.dir.display()))?;
    let (to_sink, from_disk) = edge(d.edge.0, d.edge.1, &stats.name);
    std::thread::scope(|scope| -> anyhow::Result<()> {
        let w = std::thread::Builder::new().name(format!("buf-{}", stats.name)).spawn_scoped(scope, move || {
            let r = write_to_disk(&mut writer, &mut rx, d.when_full, stats, abort);
            rx.close();
            while let Ok(b) = rx.try_recv() {
                fail(&b.acks);
            }
            r.and(writer.close())
        })?;
        let name = stats.name.clone();
        let r = std::thread::Builder::new().name(format!("bufr-{name}")).spawn_scoped(scope, move || {
            let r = (|| -> std::io::Result<()> {
                while let Some(batch) = reader.next(abort)? {
                    let size = sluice_sources::edge::batch_bytes(&batch);
                    if futures::executor::block_on(to_sink.send(batch, size)).is_err() {
                        break;
                    }
                }
                Ok(())
            })();
            drop(to_sink);
            r.and(reader.finish(abort, d.drain_timeout))
        })?;
        run_sink(sink, from_disk, stats, abort, rt);
        let wr = w.join().map_err(|_| anyhow::anyhow!("disk buffer writer panicked"))?;
        let rr = r.join().map_err(|_| anyhow::anyhow!("disk buffer reader panicked"))?;
        wr.map_err(|e| anyhow::anyhow!("disk buffer {}: {e}", d.dir.display()))?;
        rr.map_err(|e| anyhow::anyhow!("disk buffer {}: {e}", d.dir.display()))?;
        Ok(())
    })
}

fn fail(acks: &[Ack]) {
    for a in acks {
        a.fail();
    }
}

/// What became of a batch offered to the disk buffer.
enum Put {
    Stored,
    /// Full with `drop_newest`: dropped and counted (its tokens are released).
    Dropped,
    /// Full with `block`, and the pipeline is aborting.
    Aborted,
}

/// The disk buffer's writer: append what arrives, what is already waiting grouped under
/// one commit (at most `GROUP_BYTES`), and release the batches' tokens once committed.
/// A batch not committed when an error or an abort ends the loop is failed, never
/// acknowledged.
fn write_to_disk(
    writer: &mut disk::Writer,
    rx: &mut EdgeReceiver,
    when_full: WhenFull,
    stats: &ComponentStats,
    abort: &AtomicBool,
) -> std::io::Result<()> {
    // Tokens of batches appended but not yet committed.
    let mut held: Vec<Vec<Ack>> = Vec::new();
    let r = (|| -> std::io::Result<()> {
        while let Some(first) = rx.blocking_recv() {
            let mut next = Some(first);
            while let Some(batch) = next.take() {
                match put(writer, &batch, when_full, stats, abort, &mut held) {
                    Ok(Put::Stored) => held.push(batch.acks),
                    Ok(Put::Dropped) => {}
                    Ok(Put::Aborted) => {
                        fail(&batch.acks);
                        return Ok(());
                    }
                    Err(e) => {
                        fail(&batch.acks);
                        return Err(e);
                    }
                }
                if writer.uncommitted() < disk::GROUP_BYTES {
                    next = rx.try_recv().ok();
                }
            }
            writer.commit()?;
            // On disk: the input is acknowledged.
            held.clear();
        }
        Ok(())
    })();
    held.iter().for_each(|acks| fail(acks));
    r
}

/// Append one batch, applying `when_full` first.
fn put(
    writer: &mut disk::Writer,
    batch: &Batch,
    when_full: WhenFull,
    stats: &ComponentStats,
    abort: &AtomicBool,
    held: &mut Vec<Vec<Ack>>,
) -> std::io::Result<Put> {
    if writer.is_full() {
        match when_full {
            WhenFull::DropNewest => {
                stats.dropped(batch.len() as u64, "buffer_full");
                return Ok(Put::Dropped);
            }
            WhenFull::Block => {
                // What was appended is committed (and acknowledged) before waiting.
                writer.commit()?;
                held.clear();
                while !writer.wait_for_room(abort, Duration::from_millis(500))? {
                    if abort.load(Ordering::Relaxed) {
                        return Ok(Put::Aborted);
                    }
                }
            }
        }
    }
    writer.append(batch)?;
    Ok(Put::Stored)
}

/// Run `op` until it succeeds, backing off from 100 ms to 5 s with ±20% jitter (or as
/// long as the receiver asked, `SinkError::RetryAfter`, at most 5 minutes). Returns false only if
/// the pipeline is aborting.
fn retry(
    stats: &ComponentStats,
    abort: &AtomicBool,
    what: &str,
    mut op: impl FnMut() -> Result<(), sluice_sinks::SinkError>,
) -> bool {
    let mut delay = Duration::from_millis(100);
    let mut last_log: Option<Instant> = None;
    loop {
        match op() {
            Ok(()) => return true,
            Err(e) => {
                if abort.load(Ordering::Relaxed) {
                    return false;
                }
                stats.retry();
                if last_log.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
                    tracing::warn!(component = %stats.name, error = %e, op = what, retry_in_ms = delay.as_millis() as u64, "sink error; holding data and retrying");
                    last_log = Some(Instant::now());
                }
                let wait = match &e {
                    sluice_sinks::SinkError::RetryAfter { after, .. } => (*after).min(Duration::from_secs(300)),
                    _ => jitter(delay),
                };
                let until = Instant::now() + wait;
                while Instant::now() < until {
                    if abort.load(Ordering::Relaxed) {
                        return false;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// `d` ± 20%, so that sinks retrying together do not hit a receiver in step.
fn jitter(d: Duration) -> Duration {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().subsec_nanos();
    let factor = 0.8 + 0.4 * (nanos % 1000) as f64 / 1000.0;
    d.mul_f64(factor)
}
