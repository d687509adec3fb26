//! End-to-end acknowledgements.
//!
//! A source attaches an [`Ack`] token to each batch it emits. Transforms pass tokens on
//! (fan-out shares them), sinks hold them until the events are durably written and then
//! drop them. When the last clone of a token is dropped, an [`AckSignal`] is sent back to
//! the source, whose [`Tracker`] advances the checkpoint over the contiguous prefix of
//! acknowledged batches. A sink that gives up on a batch calls [`Ack::fail`]; a failed
//! batch is never acknowledged, so its input is read again after a restart.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::Arc;

/// Sent to the source when every holder of a token has released it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AckSignal {
    /// Which input stream (for a file source: which file) the batch came from.
    pub stream: u64,
    /// Sequence number of the batch within the stream.
    pub seq: u64,
    /// True if a holder marked the batch failed.
    pub failed: bool,
}

pub type AckReceiver = Receiver<AckSignal>;

/// A shareable acknowledgement token. See the module docs.
#[derive(Debug, Clone)]
pub struct Ack(Arc<AckInner>);

#[derive(Debug)]
struct AckInner {
    stream: u64,
    seq: u64,
    failed: AtomicBool,
    tx: Sender<AckSignal>,
}

impl Ack {
    pub fn new(stream: u64, seq: u64, tx: Sender<AckSignal>) -> Ack {
        Ack(Arc::new(AckInner { stream, seq, failed: AtomicBool::new(false), tx }))
    }
    /// Mark the batch as not delivered: its input will not be checkpointed.
    pub fn fail(&self) {
        self.0.failed.store(true, Ordering::Relaxed);
    }
}

impl Drop for AckInner {
    fn drop(&mut self) {
        // A token dropped while its thread unwinds from a panic was not delivered.
        let _ = self.tx.send(AckSignal {
            stream: self.stream,
            seq: self.seq,
            failed: self.failed.load(Ordering::Relaxed) || std::thread::panicking(),
        });
    }
}

/// Tracks the batches of one stream in emission order and yields the highest position
/// below which everything was acknowledged.
#[derive(Debug, Default)]
pub struct Tracker {
    /// (seq, end position, state) in emission order.
    pending: VecDeque<(u64, u64, State)>,
    committed: Option<u64>,
    next_seq: u64,
    failed: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    InFlight,
    Done,
}

impl Tracker {
    pub fn new() -> Tracker {
        Tracker::default()
    }
    /// Register a batch that ends at `end` (e.g. the byte offset after its last line);
    /// returns its sequence number.
    pub fn emit(&mut self, end: u64) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.pending.push_back((seq, end, State::InFlight));
        seq
    }
    /// Record an acknowledgement. Returns true if the committed position advanced.
    pub fn ack(&mut self, seq: u64, failed: bool) -> bool {
        if failed {
            // A failed batch pins the checkpoint: nothing after it may be committed.
            self.failed = true;
            return false;
        }
        if let Some(front) = self.pending.front() {
            let idx = seq.wrapping_sub(front.0) as usize;
            if let Some(slot) = self.pending.get_mut(idx) {
                debug_assert_eq!(slot.0, seq);
                slot.2 = State::Done;
            }
        }
        let mut advanced = false;
        if !self.failed {
            while let Some(&(_, end, State::Done)) = self.pending.front() {
                self.committed = Some(end);
                self.pending.pop_front();
                advanced = true;
            }
        }
        advanced
    }
    /// Everything before this position is delivered.
    pub fn committed(&self) -> Option<u64> {
        self.committed
    }
    /// True once a batch failed: the checkpoint is pinned.
    pub fn failed(&self) -> bool {
        self.failed
    }
    /// Batches emitted but not yet acknowledged.
    pub fn in_flight(&self) -> usize {
        self.pending.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_order_acks_commit_contiguous_prefix() {
        let mut t = Tracker::new();
        let a = t.emit(10);
        let b = t.emit(20);
        let c = t.emit(30);
        assert!(!t.ack(b, false));
        assert_eq!(t.committed(), None);
        assert!(t.ack(a, false));
        assert_eq!(t.committed(), Some(20));
        assert!(t.ack(c, false));
        assert_eq!(t.committed(), Some(30));
        assert_eq!(t.in_flight(), 0);
    }

    #[test]
    fn failure_pins_checkpoint() {
        let mut t = Tracker::new();
        let a = t.emit(10);
        let b = t.emit(20);
        t.ack(a, false);
        t.ack(b, true);
        let c = t.emit(30);
        t.ack(c, false);
        assert_eq!(t.committed(), Some(10));
    }

    #[test]
    fn token_signals_once_all_clones_dropped() {
        let (tx, rx) = std::sync::mpsc::channel();
        let a = Ack::new(7, 3, tx);
        let b = a.clone();
        drop(a);
        assert!(rx.try_recv().is_err());
        b.fail();
        drop(b);
        assert_eq!(rx.try_recv().unwrap(), AckSignal { stream: 7, seq: 3, failed: true });
    }
}
