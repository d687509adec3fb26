//! Transform `sample`: keep a share of the stream without losing what matters, with an
//! incident switch that turns sampling off without a restart.
//!
//! ```toml
//! [transforms.sampled]
//! type = "sample"
//! inputs = ["metrics"]
//! rate = 10                                  # keep 1 in 10 (or a ratio: 0.1)
//! rules = [{ when = { event = "health_check_ok" }, rate = 100 }]   # first match wins
//! keep_level_at_least = "warn"               # default: every warn and above is kept
//! key_field = "trace_id"                     # one decision per trace (default)
//! tail = { window = "10s", keep_if = { level_at_least = "error" }, max_traces = 100000, max_bytes = "256MiB" }
//! auto_bypass = { when_error_ratio_above = 0.05, over = "1m", for = "15m" }
//! ```
//! * Head mode: the decision is a hash of `key_field` (FNV-1a + a 64-bit mixer), so every
//!   line of a trace is kept or dropped together, identically across restarts and
//!   instances. Events without the key are sampled per event. Kept sampled events carry
//!   `sample_rate` (e.g. `10`) for re-weighting.
//! * Tail mode holds each trace's events for `window`; if any event matches `keep_if`
//!   the whole trace is kept, including lines that arrived before; otherwise the rate
//!   applies when the window ends. Memory is bounded by `max_traces` and `max_bytes`;
//!   overflow decides the oldest trace early (`sluice_sample_early_decisions_total`). On
//!   shutdown held traces are decided and flushed. Held events keep their input
//!   unacknowledged, so a crash re-reads them.
//! * The switch ([`Switch`]): while bypassed, everything passes (and held traces are
//!   flushed). The admin API and `sluice sampling off|on|status` drive it; `auto_bypass`
//!   turns it on when the share of error-level events over `over` (by event time)
//!   exceeds the threshold.
//!
//! The stage is one folder: [`config`] (options, validation, build), [`head`] (the key
//! hash), [`tail`] (held traces), [`auto_bypass`], [`switch`] (the incident switch the
//! runtime collects as a [`crate::Control`]) and [`transform`] (the running stage).

use crate::{Emit, OptionError, Outcome, Transform, TransformConfig, TransformContext};
use serde::Deserialize;
use sluice_config::condition::Condition;
use sluice_config::units::{self, ByteSize, Level, LevelOrNone};
use sluice_event::{Ack, Batch, Event, Timestamp, Value};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod auto_bypass;
mod config;
mod head;
mod switch;
mod tail;
#[cfg(test)]
mod tests;
mod transform;

use auto_bypass::AutoBypass;
pub use config::{AutoBypassConfig, Rate, RuleConfig, SampleConfig, TailConfig};
use head::{keep_hash, mix};
pub use head::{keeps, key_hash};
pub use switch::{Switch, SwitchState};
use tail::{Tail, TraceBuf};
pub use transform::Sample;
