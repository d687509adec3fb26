//! sluice sources: where events come from.
//!
//! A source runs on its own thread, reads its input, frames it into lines and sends
//! [`Batch`]es downstream with blocking sends on bounded channels, so a slow sink slows
//! the source down instead of growing memory. Every event carries an acknowledgement
//! token; a source moves its checkpoint only when every sink has acknowledged.
//!
//! Each source is one module with its config struct (serde, `deny_unknown_fields`, a doc
//! comment on every option), its build step ([`SourceConfig::build`], no side effects) and
//! its runtime ([`Source::run`]):
//!
//! * [`file`]: tail files by glob, follow rotation, checkpoints in `data_dir`.
//! * [`kafka`]: consume topics in a consumer group; offsets committed after delivery.
//! * [`stdin`]: read standard input until it ends.
//! * [`syslog`]: receive syslog over UDP, TCP or TLS (RFC 3164, 5424, octet counting).
//!
//! [`framing`] holds line splitting and multiline joining shared by the sources. The
//! pipeline (`sluice-pipeline`) registers each source type with one line in its registry.

pub mod edge;
pub mod fds;
pub mod file;
pub mod framing;
pub mod kafka;
pub mod stdin;
pub mod syslog;

use edge::EdgeSender;
use sluice_config::OptionError;
use sluice_event::stats::ComponentStats;
use sluice_event::store::Store;
use sluice_event::Batch;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// The consumers' edges of one output, replaced as a whole when a reload rewires the
/// pipeline (a send in progress finishes on the edges it started with).
pub type Wire = Arc<arc_swap::ArcSwap<Vec<EdgeSender>>>;

/// The downstream edges of a component's output (fan-out: every edge gets every batch).
#[derive(Clone, Default)]
pub struct Outputs {
    senders: Wire,
    /// A live copy for `sluice tap` (costs an atomic load while nobody listens).
    tap: Option<std::sync::Arc<sluice_event::tap::Tap>>,
}

impl Outputs {
    pub fn new(senders: Vec<EdgeSender>) -> Outputs {
        Outputs { senders: Arc::new(arc_swap::ArcSwap::from_pointee(senders)), tap: None }
    }
    /// Outputs sending to whatever `wire` holds at the time of each send.
    pub fn wired(wire: Wire) -> Outputs {
        Outputs { senders: wire, tap: None }
    }
    /// The wire this output sends through (to rewire it).
    pub fn wire(&self) -> Wire {
        self.senders.clone()
    }
    /// Offer every batch sent here to `tap`.
    pub fn with_tap(mut self, tap: std::sync::Arc<sluice_event::tap::Tap>) -> Outputs {
        self.tap = Some(tap);
        self
    }
    #[inline]
    fn tap(&self, batch: &Batch) {
        if let Some(t) = &self.tap {
            t.offer(batch);
        }
    }
    pub fn is_empty(&self) -> bool {
        self.senders.load().is_empty()
    }
    /// Send a batch to every edge, waiting for room. Returns false when every receiver
    /// is gone.
    pub fn send_blocking(&self, batch: Batch) -> bool {
        futures::executor::block_on(self.send(batch))
    }
    /// Send a batch to every edge from async code, waiting for room. Returns false when
    /// every receiver is gone.
    pub async fn send(&self, batch: Batch) -> bool {
        self.tap(&batch);
        let senders = self.senders.load_full();
        let n = senders.len();
        if n == 0 {
            return false;
        }
        let size = edge::batch_bytes(&batch);
        let mut ok = false;
        for s in &senders[..n - 1] {
            ok |= s.send(batch.fan_out_clone(), size).await.is_ok();
        }
        ok |= senders[n - 1].send(batch, size).await.is_ok();
        ok
    }

    /// Like [`Outputs::send_blocking`], but calls `idle` every `every` while waiting for
    /// room, so a source held back by a slow sink can keep discovering files.
    pub fn send_blocking_with(
        &self,
        rt: &tokio::runtime::Handle,
        batch: Batch,
        every: std::time::Duration,
        mut idle: impl FnMut(),
    ) -> bool {
        self.tap(&batch);
        let senders = self.senders.load_full();
        let n = senders.len();
        if n == 0 {
            return false;
        }
        let size = edge::batch_bytes(&batch);
        let mut ok = false;
        let mut batch = Some(batch);
        for (i, s) in senders.iter().enumerate() {
            let b = if i + 1 == n { batch.take().unwrap() } else { batch.as_ref().unwrap().fan_out_clone() };
            // Fast path: room right away.
            let b = match s.try_send(b, size) {
                Ok(()) => {
                    ok = true;
                    continue;
                }
                Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) => continue,
                Err(tokio::sync::mpsc::error::TrySendError::Full(b)) if s.drops_when_full() => {
                    s.drop_full(b);
                    ok = true;
                    continue;
                }
                Err(tokio::sync::mpsc::error::TrySendError::Full(b)) => b,
            };
            loop {
                match rt.block_on(async { tokio::time::timeout(every, s.reserve(size, b.len())).await }) {
                    Ok(Ok(permit)) => {
                        permit.send(b);
                        ok = true;
                        break;
                    }
                    Ok(Err(_closed)) => break,
                    Err(_elapsed) => idle(),
                }
            }
        }
        ok
    }
}

/// Batch size limits from `[pipeline]`.
#[derive(Debug, Clone, Copy)]
pub struct BatchLimits {
    pub max_events: usize,
    pub max_bytes: usize,
}

/// What a running source gets from the pipeline.
pub struct SourceContext {
    pub name: String,
    pub out: Outputs,
    pub stop: Arc<AtomicBool>,
    pub stats: Arc<ComponentStats>,
    /// Durable state under `data_dir` (checkpoints and the like).
    pub store: Store,
    pub limits: BatchLimits,
    /// Set by the runtime when every sink has finished: checkpointers save and exit.
    pub checkpoint_done: Arc<AtomicBool>,
    /// Set when a drain gave up: acknowledgements must no longer move checkpoints.
    pub abort: Arc<AtomicBool>,
    /// The runtime, for sources that wait on channels with timeouts.
    pub rt: tokio::runtime::Handle,
    /// Helper threads (checkpointers) the runtime joins at the very end.
    pub aux: Arc<std::sync::Mutex<Vec<std::thread::JoinHandle<()>>>>,
    /// The descriptors tailed files may use, shared by every file source.
    pub fds: Arc<fds::FdBudget>,
}

impl SourceContext {
    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

/// A running source. `run` blocks its thread until input ends or `ctx.stop` is set.
pub trait Source: Send {
    fn run(self: Box<Self>, ctx: SourceContext) -> anyhow::Result<()>;
}

/// A config struct that builds a source (without side effects).
pub trait SourceConfig {
    fn build(&self) -> Result<Box<dyn Source>, OptionError>;
}
