//! Wires built components into a running pipeline: one bounded edge per consumer
//! (fan-in shares it; bounded in batches and in bytes, see `sluice_sources::edge`),
//! fan-out clones batches to each consumer, one thread per component (stateless
//! stages: one per worker). Shutdown cascades: sources stop and drop their senders, each consumer
//! drains its channel, flushes and exits, and finally the checkpointers save.

use crate::registry::Built;
use sluice_config::{Config, Kind};
use sluice_event::stats::ComponentStats;
use sluice_event::tap::Tap;
use sluice_event::{Ack, Batch};
use sluice_sinks::buffer::{disk, BufferType, WhenFull};
use sluice_sinks::Sink;
use sluice_sources::edge::{edge, edge_with, EdgeLimits, EdgeReceiver, EdgeSender};
use sluice_sources::{BatchLimits, Outputs, SourceContext};
use sluice_transforms::Transform;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Shared view of the running pipeline for the admin API.
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

pub struct Running {
    pub shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
    /// Set when sinks must give up retrying (drain timeout).
    abort: Arc<AtomicBool>,
    done_rx: mpsc::UnboundedReceiver<String>,
    sinks_left: usize,
    threads: Vec<JoinHandle<()>>,
    checkpoint_done: Arc<AtomicBool>,
    aux: Arc<Mutex<Vec<JoinHandle<()>>>>,
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

pub fn start(
    cfg: &Config,
    built: Vec<(sluice_config::Component, Built)>,
    fds: Arc<sluice_sources::fds::FdBudget>,
) -> anyhow::Result<Running> {
    std::fs::create_dir_all(&cfg.data_dir)
        .map_err(|e| anyhow::anyhow!("cannot create data_dir {}: {e}", cfg.data_dir.display()))?;
    let lock = lock_data_dir(&cfg.data_dir)?;
    let stop = Arc::new(AtomicBool::new(false));
    let abort = Arc::new(AtomicBool::new(false));
    let checkpoint_done = Arc::new(AtomicBool::new(false));
    let aux: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
    let limits = BatchLimits {
        max_events: cfg.pipeline.batch_max_events.max(1),
        max_bytes: cfg.pipeline.batch_max_bytes.as_usize().max(4096),
    };

    // Counters first: an edge that drops what does not fit counts into its consumer's.
    let stats_of: HashMap<String, Arc<ComponentStats>> = built
        .iter()
        .map(|(c, _)| {
            let kind = match c.kind {
                Kind::Source => "source",
                Kind::Transform => "transform",
                Kind::Sink => "sink",
            };
            (c.name.clone(), Arc::new(ComponentStats::new(&c.name, kind, &c.type_name)))
        })
        .collect();
    // One input channel per consumer.
    let mut senders: HashMap<String, EdgeSender> = HashMap::new();
    let mut receivers: HashMap<String, EdgeReceiver> = HashMap::new();
    for (c, b) in &built {
        if c.kind != Kind::Source {
            let mut limits = EdgeLimits {
                batches: c.buffer_batches.unwrap_or(cfg.pipeline.buffer_batches).max(1),
                bytes: cfg.pipeline.buffer_bytes.as_usize(),
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
            senders.insert(c.name.clone(), tx);
            receivers.insert(c.name.clone(), rx);
        }
    }
    // Edges: producer (name, output) -> consumers.
    let mut edges: HashMap<(String, Option<String>), Vec<EdgeSender>> = HashMap::new();
    for (c, _) in &built {
        for input in &c.inputs {
            edges.entry((input.component.clone(), input.output.clone())).or_default().push(senders[&c.name].clone());
        }
    }
    drop(senders);

    let (done_tx, done_rx) = mpsc::unbounded_channel();
    let failed = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();
    let mut all_stats = Vec::new();
    let mut sinks_left = 0;
    let mut taps = HashMap::new();
    for (c, b) in built {
        let stats = stats_of[&c.name].clone();
        all_stats.push(stats.clone());
        let tap = Arc::new(Tap::new());
        if c.kind != Kind::Sink {
            taps.insert(c.name.clone(), tap.clone());
        }
        let default_out = Outputs::new(edges.remove(&(c.name.clone(), None)).unwrap_or_default()).with_tap(tap.clone());
        match b {
            Built::Source(src) => {
                if default_out.is_empty() {
                    tracing::warn!(component = %c.name, "source has no consumers");
                }
                let ctx = SourceContext {
                    name: c.name.clone(),
                    out: default_out,
                    stop: stop.clone(),
                    stats,
                    store: sluice_event::store::Store::new(&cfg.data_dir),
                    limits,
                    checkpoint_done: checkpoint_done.clone(),
                    abort: abort.clone(),
                    rt: tokio::runtime::Handle::current(),
                    aux: aux.clone(),
                    fds: fds.clone(),
                };
                threads.push(spawn_component(c.name.clone(), "src", &failed, move || src.run(ctx))?);
            }
            Built::Transform(t) => {
                let mut named = HashMap::new();
                for o in t.outputs() {
                    let senders = edges.remove(&(c.name.clone(), Some(o.clone()))).unwrap_or_default();
                    named.insert(o, Outputs::new(senders).with_tap(tap.clone()));
                }
                let rx = receivers.remove(&c.name).expect("transform channel");
                stats.set_started();
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
                let outputs = StageOutputs { out: default_out, named, stats };
                threads.push(spawn_component(c.name.clone(), "xf", &failed, move || {
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
                sinks_left += 1;
                let rx = receivers.remove(&c.name).expect("sink channel");
                let name = c.name.clone();
                let done = done_tx.clone();
                let abort = abort.clone();
                let rt = tokio::runtime::Handle::current();
                let buffer_dir = cfg.data_dir.join("buffers").join(&c.name);
                let disk = (buffer.kind == BufferType::Disk).then(|| DiskSink {
                    dir: buffer_dir.clone(),
                    max_bytes: buffer.disk_bytes(),
                    when_full: buffer.when_full,
                    edge: (cfg.pipeline.buffer_batches, cfg.pipeline.buffer_bytes.as_usize()),
                    drain_timeout: *cfg.pipeline.drain_timeout,
                });
                if disk.is_none() {
                    let left = sluice_sinks::buffer::disk::leftover_bytes(&buffer_dir);
                    if left > 0 {
                        tracing::warn!(component = %c.name, bytes = left, dir = %buffer_dir.display(), "a disk buffer from an earlier run still holds events, but this sink now has a memory buffer: they are not delivered until `buffer.type = \"disk\"` is set again");
                    }
                }
                stats.set_started();
                threads.push(spawn_component(c.name.clone(), "sink", &failed, move || {
                    // Report completion even when the sink panics, so shutdown proceeds.
                    struct Done(mpsc::UnboundedSender<String>, String);
                    impl Drop for Done {
                        fn drop(&mut self) {
                            let _ = self.0.send(std::mem::take(&mut self.1));
                        }
                    }
                    let _done = Done(done, name);
                    match disk {
                        None => run_sink(s, rx, &stats, &abort, &rt),
                        Some(d) => run_disk_buffered(d, s, rx, &stats, &abort, &rt)?,
                    }
                    Ok(())
                })?);
            }
        }
    }
    Ok(Running {
        shared: Arc::new(Shared { stats: all_stats, taps }),
        stop,
        abort,
        done_rx,
        sinks_left,
        threads,
        checkpoint_done,
        aux,
        failed,
        _lock: lock,
    })
}

impl Running {
    pub fn request_stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Wait until every sink finished (input ended, or stop requested and drained).
    /// `stop_signal` resolves when SIGTERM/SIGINT arrives; after it, the drain may take
    /// at most `drain_timeout`. Returns true if the pipeline drained completely.
    pub async fn wait(&mut self, stop_signal: impl std::future::Future<Output = ()>, drain_timeout: Duration) -> bool {
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
        self.checkpoint_done.store(true, Ordering::Release);
        let aux = std::mem::take(&mut *self.aux.lock().unwrap());
        for t in aux {
            let _ = t.join();
        }
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
            for a in &batch.acks {
                a.fail();
            }
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
        for a in acks {
            a.fail();
        }
    }
    // Anything still queued was not delivered.
    rx.close();
    while let Ok(b) = rx.try_recv() {
        for a in &b.acks {
            a.fail();
        }
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
            let mut held: Vec<Vec<Ack>> = Vec::new();
            let r = (|| -> std::io::Result<()> {
                while let Some(batch) = rx.blocking_recv() {
                    let mut next = Some(batch);
                    // Group what is already waiting under one commit.
                    while let Some(batch) = next.take() {
                        if writer.is_full() {
                            match d.when_full {
                                WhenFull::DropNewest => {
                                    stats.dropped(batch.len() as u64, "buffer_full");
                                    drop(batch);
                                    next = rx.try_recv().ok();
                                    continue;
                                }
                                WhenFull::Block => {
                                    writer.commit()?;
                                    held.clear();
                                    while !writer.wait_for_room(abort, Duration::from_millis(500))? {
                                        if abort.load(Ordering::Relaxed) {
                                            for a in batch.acks.iter() {
                                                a.fail();
                                            }
                                            return Ok(());
                                        }
                                    }
                                }
                            }
                        }
                        if let Err(e) = writer.append(&batch) {
                            for a in &batch.acks {
                                a.fail();
                            }
                            return Err(e);
                        }
                        held.push(batch.acks);
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
            if r.is_err() {
                for a in held.iter().flatten() {
                    a.fail();
                }
            }
            rx.close();
            while let Ok(b) = rx.try_recv() {
                for a in &b.acks {
                    a.fail();
                }
            }
            let closed = writer.close();
            r.and(closed)
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
