//! The sluice event model.
//!
//! An [`Event`] is one log record. It keeps the **raw bytes** it was read from (never lost,
//! never rewritten), optional structured [`Fields`], a [`Timestamp`] and its [`Origin`]
//! (source component, file path, byte offset). Events are cheap to create: the raw bytes
//! are a reference-counted slice of the buffer the source read (no copy), the fields vector
//! does not allocate until a field is set, and the origin shares one `Arc` per file.
//!
//! Events travel in [`Batch`]es through bounded channels. A batch carries the
//! acknowledgement tokens ([`Ack`]) of the input it came from; the source learns that a
//! batch was delivered when every clone of its token is dropped (see [`ack`]).
//!
//! Sinks encode events as NDJSON with [`ndjson::encode_event`].
//!
//! Beside the event itself, this crate holds what every stage shares at run time:
//! [`stats`] (per-component counters mirrored to Prometheus) and [`store`] (the durable
//! state under `data_dir`: versioned JSON documents written crash-safely).

pub mod ack;
pub mod codec;
pub mod hash;
mod level;
pub mod ndjson;
pub mod stats;
pub mod store;
pub mod tap;
pub mod time;
mod value;

pub use ack::{Ack, AckReceiver, AckSignal};
pub use level::Level;
pub use time::Timestamp;
pub use value::{short_eq, ByteStr, Fields, Value};

use bytes::Bytes;
use smol_str::SmolStr;
use std::sync::Arc;

/// Where a batch of events came from. Shared by every event of one file or stream.
#[derive(Debug)]
pub struct OriginInfo {
    /// Name of the source component (`[sources.NAME]`).
    pub source: SmolStr,
    /// File path for file sources.
    pub path: Option<String>,
    /// Pre-encoded JSON members (`"source":"…","file":"…"`), so sinks do not re-escape
    /// the same strings for every event.
    json_members: String,
}

impl OriginInfo {
    pub fn new(source: &str, path: Option<&str>) -> Arc<Self> {
        let mut buf = Vec::with_capacity(64);
        buf.extend_from_slice(b"\"source\":");
        ndjson::write_str(&mut buf, source);
        if let Some(p) = path {
            buf.extend_from_slice(b",\"file\":");
            ndjson::write_str(&mut buf, p);
        }
        Arc::new(OriginInfo {
            source: SmolStr::new(source),
            path: path.map(str::to_owned),
            json_members: String::from_utf8(buf).expect("escaped JSON is UTF-8"),
        })
    }

    /// The pre-encoded JSON members of this origin (no surrounding braces).
    pub fn json_members(&self) -> &str {
        &self.json_members
    }
}

/// Source metadata of one event.
#[derive(Debug, Clone)]
pub struct Origin {
    pub info: Arc<OriginInfo>,
    /// Byte offset of the first byte of the line in its file (or stream).
    pub offset: u64,
}

/// Marks set on an event when its input was not clean. They are written by sinks as
/// fields so that nothing is lost or altered silently.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Marks {
    bits: u8,
    /// For a line longer than `max_line_bytes`: which part this is (1-based), else 0.
    pub split_part: u32,
}

impl Marks {
    /// The raw bytes were not valid UTF-8; `message` is a lossy decoding and sinks add
    /// the raw bytes in base64.
    pub const INVALID_UTF8: u8 = 1;
    /// The raw bytes contain NUL bytes (kept; JSON escapes them as `\u0000`).
    pub const CONTAINS_NUL: u8 = 2;
    /// The line was split because it exceeded `max_line_bytes`; more parts follow.
    pub const SPLIT: u8 = 4;
    /// Last part of a split line.
    pub const SPLIT_LAST: u8 = 8;
    /// The input ended (or was cut) without a trailing newline.
    pub const NO_NEWLINE: u8 = 16;

    #[inline]
    pub fn set(&mut self, bit: u8) {
        self.bits |= bit;
    }
    #[inline]
    pub fn clear(&mut self, bit: u8) {
        self.bits &= !bit;
    }
    #[inline]
    pub fn has(&self, bit: u8) -> bool {
        self.bits & bit != 0
    }
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.bits == 0
    }
    /// The flags as one byte (for [`codec`]).
    pub fn bits(&self) -> u8 {
        self.bits
    }
    /// Flags from [`Marks::bits`] (no split part).
    pub fn from_bits(bits: u8) -> Marks {
        Marks { bits, split_part: 0 }
    }
}

/// One log record.
#[derive(Debug, Clone)]
pub struct Event {
    /// The bytes exactly as read (without the line terminator).
    pub raw: Bytes,
    /// The message text. `None` means "the raw bytes, which are valid UTF-8".
    pub message: Option<ByteStr>,
    /// Structured fields, in insertion order.
    pub fields: Fields,
    pub timestamp: Timestamp,
    pub origin: Origin,
    pub marks: Marks,
}

impl Event {
    /// Metadata readable by name where no field of that name exists (conditions,
    /// metric labels): `source`, the name of the source component.
    #[inline]
    pub fn meta(&self, name: &str) -> Option<&str> {
        (name == "source").then(|| self.origin.info.source.as_str())
    }

    /// Build an event from one raw line. Validates UTF-8 once; invalid input is decoded
    /// lossily into `message` and marked, the raw bytes are kept.
    #[inline]
    pub fn from_line(raw: Bytes, timestamp: Timestamp, origin: Origin) -> Event {
        let mut marks = Marks::default();
        let message = if simdutf8::basic::from_utf8(&raw).is_ok() {
            None
        } else {
            marks.set(Marks::INVALID_UTF8);
            Some(ByteStr::from(String::from_utf8_lossy(&raw).into_owned()))
        };
        if memchr::memchr(0, &raw).is_some() {
            marks.set(Marks::CONTAINS_NUL);
        }
        Event { raw, message, fields: Fields::new(), timestamp, origin, marks }
    }

    /// Build an event from a line already known to be UTF-8 without NUL bytes (a
    /// source checked the whole chunk it came from).
    ///
    /// # Safety
    /// `raw` must be valid UTF-8: `message()` reads it without checking.
    #[inline]
    pub unsafe fn from_clean_line(raw: Bytes, timestamp: Timestamp, origin: Origin) -> Event {
        debug_assert!(simdutf8::basic::from_utf8(&raw).is_ok() && memchr::memchr(0, &raw).is_none());
        Event { raw, message: None, fields: Fields::new(), timestamp, origin, marks: Marks::default() }
    }

    /// The message text.
    #[inline]
    pub fn message(&self) -> &str {
        match &self.message {
            Some(m) => m.as_str(),
            // SAFETY: `message` is `None` only when `raw` was validated as UTF-8 (see
            // `from_line`) or set through `set_raw_message`, which validates too.
            None => unsafe { std::str::from_utf8_unchecked(&self.raw) },
        }
    }

    /// The message text as a [`ByteStr`], borrowed: slices of it share the line's buffer,
    /// and no reference count is taken for the message itself.
    #[inline]
    pub fn message_str(&self) -> &ByteStr {
        match &self.message {
            Some(m) => m,
            // SAFETY: as in `message`.
            None => unsafe { ByteStr::view(&self.raw) },
        }
    }

    /// Approximate in-memory size, used for byte-based batching limits.
    #[inline]
    pub fn size_hint(&self) -> usize {
        self.raw.len() + 64 + self.fields.len() * 48
    }
}

/// A group of events moved through the pipeline as one unit.
#[derive(Debug, Default)]
pub struct Batch {
    pub events: Vec<Event>,
    /// Acknowledgement tokens of the input these events came from. Dropping the batch
    /// (after delivery, or because every event was filtered out) acknowledges it.
    pub acks: Vec<Ack>,
}

impl Batch {
    pub fn new(events: Vec<Event>) -> Batch {
        Batch { events, acks: Vec::new() }
    }
    pub fn len(&self) -> usize {
        self.events.len()
    }
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }
    /// Clone for fan-out: events are cloned (raw bytes are shared), tokens are shared so
    /// the input is acknowledged only when every branch is done.
    pub fn fan_out_clone(&self) -> Batch {
        Batch { events: self.events.clone(), acks: self.acks.clone() }
    }
    /// Raw bytes in this batch.
    pub fn raw_bytes(&self) -> usize {
        self.events.iter().map(|e| e.raw.len()).sum()
    }
}
