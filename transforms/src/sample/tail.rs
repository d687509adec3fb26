//! Tail sampling state: events held per trace until the window ends or `keep_if` matches.

use super::*;

pub(super) struct TraceBuf {
    pub(super) events: Vec<Event>,
    pub(super) acks: Vec<Ack>,
    pub(super) last_batch: u64,
    pub(super) bytes: usize,
    pub(super) keep: bool,
}

pub(super) struct Tail {
    pub(super) window: Duration,
    pub(super) keep_if: Condition,
    pub(super) max_traces: usize,
    pub(super) max_bytes: usize,
    pub(super) held: HashMap<u64, TraceBuf>,
    /// (deadline, trace) in arrival order.
    pub(super) order: VecDeque<(Instant, u64)>,
    /// Traces kept because of `keep_if`, remembered for another window for late events.
    pub(super) kept: HashMap<u64, Instant>,
    pub(super) kept_order: VecDeque<(Instant, u64)>,
    pub(super) bytes: usize,
}

impl Tail {
    pub(super) fn new(window: Duration, keep_if: Condition, max_traces: usize, max_bytes: usize) -> Tail {
        Tail {
            window,
            keep_if,
            max_traces,
            max_bytes,
            held: HashMap::with_capacity(max_traces.min(1 << 16)),
            order: VecDeque::new(),
            kept: HashMap::new(),
            kept_order: VecDeque::new(),
            bytes: 0,
        }
    }
}
