//! What a sink's input waits in: memory (the default) or a disk buffer under
//! `data_dir` that survives a crash.
//!
//! ```toml
//! [sinks.archive]
//! type = "s3"
//! inputs = ["mask"]
//! buffer = { type = "disk", max_bytes = "1GiB", when_full = "block" }
//! ```
//!
//! * `memory`: the sink's input edge. Without `max_events` it is bounded like every edge
//!   (`buffer_batches`, `buffer_bytes`); with it, by that many events.
//! * `disk`: batches are appended to segment files in `data_dir/buffers/<sink>/` and
//!   acknowledged to the source once they are on disk (see [`disk`] for the fsync
//!   policy); the sink reads them back and the buffer forgets them only when the sink
//!   has made them durable. After `kill -9`, the next start delivers what was buffered.
//!
//! `when_full` says what happens when the buffer is full: `block` (the default) holds
//! the producers back, which holds back every sink they feed; `drop_newest` drops the
//! batch that does not fit, acknowledges it, and counts it in
//! `sluice_events_dropped_total{reason="buffer_full"}`: the other sinks keep going.

pub mod disk;

use serde::Deserialize;
use sluice_config::units::ByteSize;

/// `buffer` of a sink.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BufferConfig {
    /// `memory` (the input edge) or `disk` (segment files under `data_dir/buffers/<sink>/`,
    /// kept across restarts).
    #[serde(rename = "type")]
    pub kind: BufferType,
    /// memory: most events waiting (replaces the edge's batch and byte bounds).
    #[serde(default)]
    pub max_events: Option<usize>,
    /// disk: most bytes on disk (`"1GiB"` by default).
    #[serde(default)]
    pub max_bytes: Option<ByteSize>,
    /// `block` (hold the producers back) or `drop_newest` (drop what does not fit, counted).
    #[serde(default)]
    pub when_full: WhenFull,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum BufferType {
    Memory,
    Disk,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum WhenFull {
    #[default]
    Block,
    DropNewest,
}

/// The default disk buffer size.
pub const DEFAULT_DISK_BYTES: u64 = 1 << 30;

impl Default for BufferConfig {
    fn default() -> Self {
        BufferConfig { kind: BufferType::Memory, max_events: None, max_bytes: None, when_full: WhenFull::Block }
    }
}

impl BufferConfig {
    /// Options that do not fit the type: `(key, message)`.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        match self.kind {
            BufferType::Memory if self.max_bytes.is_some() => {
                Err(("max_bytes", "`max_bytes` is for disk buffers; a memory buffer takes `max_events`".into()))
            }
            BufferType::Disk if self.max_events.is_some() => {
                Err(("max_events", "`max_events` is for memory buffers; a disk buffer takes `max_bytes`".into()))
            }
            BufferType::Memory if self.max_events == Some(0) => {
                Err(("max_events", "`max_events` must be at least 1".into()))
            }
            BufferType::Disk if self.max_bytes.is_some_and(|b| b.bytes() < disk::MIN_BYTES) => {
                Err(("max_bytes", format!("`max_bytes` must be at least {}", ByteSize(disk::MIN_BYTES))))
            }
            _ => Ok(()),
        }
    }

    /// Disk buffer size.
    pub fn disk_bytes(&self) -> u64 {
        self.max_bytes.map_or(DEFAULT_DISK_BYTES, |b| b.bytes())
    }
}
