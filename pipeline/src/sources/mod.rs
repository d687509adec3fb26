//! Sources: each runs on its own thread, reads input, and sends batches downstream
//! with blocking sends on bounded channels (so a slow sink slows the source down).

pub mod checkpoint;
pub mod file;
pub mod stdin;

use crate::stats::ComponentStats;
use sluice_config::OptionError;
use sluice_event::Batch;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc::Sender;

/// The downstream edges of a component's output (fan-out: every edge gets every batch).
#[derive(Clone, Default)]
pub struct Outputs {
    senders: Vec<Sender<Batch>>,
}

impl Outputs {
    pub fn new(senders: Vec<Sender<Batch>>) -> Outputs {
        Outputs { senders }
    }
    pub fn is_empty(&self) -> bool {
        self.senders.is_empty()
    }
    /// Send a batch to every edge, waiting for room. Returns false when every receiver
    /// is gone.
    pub fn send_blocking(&self, batch: Batch) -> bool {
        let n = self.senders.len();
        let mut ok = false;
        if n == 0 {
            return false;
        }
        for s in &self.senders[..n - 1] {
            ok |= s.blocking_send(batch.fan_out_clone()).is_ok();
        }
        ok |= self.senders[n - 1].blocking_send(batch).is_ok();
        ok
    }
    pub async fn send(&self, batch: Batch) -> bool {
        let n = self.senders.len();
        let mut ok = false;
        if n == 0 {
            return false;
        }
        for s in &self.senders[..n - 1] {
            ok |= s.send(batch.fan_out_clone()).await.is_ok();
        }
        ok |= self.senders[n - 1].send(batch).await.is_ok();
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
    pub data_dir: PathBuf,
    pub limits: BatchLimits,
    /// Set by the runtime when every sink has finished: checkpointers save and exit.
    pub checkpoint_done: Arc<AtomicBool>,
    /// Set when a drain gave up: acknowledgements must no longer move checkpoints.
    pub abort: Arc<AtomicBool>,
    /// Helper threads (checkpointers) the runtime joins at the very end.
    pub aux: Arc<std::sync::Mutex<Vec<std::thread::JoinHandle<()>>>>,
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
