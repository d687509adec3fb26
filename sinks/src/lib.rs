//! sluice sinks. A sink is a synchronous object driven by the pipeline's sink runner:
//! [`Sink::write`] takes batches, [`Sink::flush`] makes everything written durable.
//! The runner holds each batch's acknowledgement tokens until a flush succeeds, and
//! retries failed writes and flushes with backoff instead of dropping data.
//!
//! Each sink is one module: its config struct (serde, `deny_unknown_fields`) next to its
//! code, and a `build` step that turns the config into a running sink.

pub mod blackhole;
pub mod buffer;
pub mod console;
pub mod file;
pub mod loki;
pub mod s3;

use sluice_event::Batch;

/// Errors a sink reports to its runner. The runner retries; it never drops the batch.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Other(String),
    /// The receiver asked to wait (HTTP 429 or 503 with `Retry-After`): the runner retries
    /// no sooner than this.
    #[error("{message} (retry after {after:?})")]
    RetryAfter { message: String, after: std::time::Duration },
}

/// A running sink.
pub trait Sink: Send {
    /// Write (or buffer) a batch. On error the runner calls `write` again with the same
    /// batch later, so a sink should not keep half of a failed batch buffered.
    fn write(&mut self, batch: &Batch) -> Result<(), SinkError>;
    /// Make everything written so far durable. Tokens are released after this succeeds.
    fn flush(&mut self) -> Result<(), SinkError>;
    /// How many written batches may wait for one `flush` (and so for acknowledgement).
    /// 1 keeps duplicates after a crash to about one batch; sinks whose flush is
    /// expensive (fsync, network round trips) group more.
    fn max_pending_batches(&self) -> usize {
        1
    }
    /// Bytes written since start (for status), if the sink counts them.
    fn bytes_written(&self) -> u64 {
        0
    }
    /// How long written data may wait for more before the runner flushes it, when input
    /// pauses (network sinks batch requests). Zero: flush as soon as input pauses.
    fn linger(&self) -> std::time::Duration {
        std::time::Duration::ZERO
    }
    /// True when the written data should be flushed now (a size limit was reached).
    fn wants_flush(&self) -> bool {
        false
    }
    /// How many of the batches written so far (every `write` that succeeded, counted
    /// from the first) are durable after the last `flush`. Sinks that complete their
    /// output in pieces (an object per partition, closed on size or age) return fewer
    /// than all; the runner acknowledges that many, in order. `None`: all of them.
    fn durable_batches(&self) -> Option<u64> {
        None
    }
    /// When input pauses while batches are not yet durable: how long until the sink has
    /// work due (an object reaches its age), so the runner calls `flush` then.
    fn next_due(&self) -> Option<std::time::Duration> {
        None
    }
    /// The pipeline is stopping: make everything written durable (close open objects).
    fn finish(&mut self) -> Result<(), SinkError> {
        self.flush()
    }
}

/// A config struct that builds a sink. Building has no side effects, so `sluice
/// validate` can run it; files are opened on first write.
pub trait SinkConfig {
    /// Check the options and build the sink. An error names the offending option.
    fn build(&self, ctx: &SinkContext) -> Result<Box<dyn Sink>, OptionError>;
    /// The fields the sink puts where masking cannot reach them (labels, object keys):
    /// the pipeline refuses fields a stage declared sensitive there.
    fn exposed_fields(&self) -> Vec<Exposed> {
        Vec::new()
    }
}

/// A field a sink puts in the clear: in label `labels.user`, in `key_template`, ….
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exposed {
    /// The option that names it (`labels.user`, `key_template`): errors point there.
    pub option: String,
    pub field: String,
    /// Why it matters and what to do instead, for the error message.
    pub advice: &'static str,
}

/// Where a sink runs.
#[derive(Debug, Clone)]
pub struct SinkContext {
    pub name: String,
    /// The configuration's `data_dir` (dead-letter files and the like).
    pub data_dir: std::path::PathBuf,
}

pub use sluice_config::OptionError;
