//! Which offsets of which partitions may be committed: per partition, a [`Tracker`] of
//! the batches sent, in order; an acknowledgement moves the partition's committable
//! offset over the contiguous prefix of delivered batches, never past a gap or a
//! failed batch.
//!
//! Each assignment of a partition gets a fresh stream key, so acknowledgements of
//! batches sent before the partition was revoked (and perhaps assigned back) are
//! recognised as stale and ignored: they never move the new owner's offsets.

use rdkafka::{Offset, TopicPartitionList};
use sluice_event::ack::Tracker;
use sluice_event::{Ack, AckSignal};
use std::collections::HashMap;
use std::sync::mpsc::{Receiver, Sender};

struct Partition {
    topic: String,
    partition: i32,
    tracker: Tracker,
    /// The offset last committed for this partition by this instance.
    committed: Option<u64>,
}

pub struct Offsets {
    by_key: HashMap<u64, Partition>,
    /// The stream key of each partition's current assignment, by topic then partition
    /// (looked up per message by `&str`, without allocating).
    current: HashMap<String, HashMap<i32, u64>>,
    next_key: u64,
    tx: Sender<AckSignal>,
    rx: Receiver<AckSignal>,
}

impl Offsets {
    pub fn new(tx: Sender<AckSignal>, rx: Receiver<AckSignal>) -> Offsets {
        Offsets { by_key: HashMap::new(), current: HashMap::new(), next_key: 1, tx, rx }
    }

    /// The stream key of a partition's current assignment (made on its first message).
    pub fn stream_key(&mut self, topic: &str, partition: i32) -> u64 {
        if let Some(&k) = self.current.get(topic).and_then(|p| p.get(&partition)) {
            return k;
        }
        let k = self.next_key;
        self.next_key += 1;
        self.current.entry(topic.to_string()).or_default().insert(partition, k);
        self.by_key
            .insert(k, Partition { topic: topic.to_string(), partition, tracker: Tracker::new(), committed: None });
        k
    }

    /// A batch holding the partition's messages up to `end` (exclusive) is sent: its token.
    pub fn emit(&mut self, key: u64, end: u64) -> Option<Ack> {
        let p = self.by_key.get_mut(&key)?;
        let seq = p.tracker.emit(end);
        Some(Ack::new(key, seq, self.tx.clone()))
    }

    /// Apply every acknowledgement received so far.
    pub fn apply_acks(&mut self) {
        while let Ok(sig) = self.rx.try_recv() {
            if let Some(p) = self.by_key.get_mut(&sig.stream) {
                p.tracker.ack(sig.seq, sig.failed);
            }
        }
    }

    /// The offsets to commit (delivered beyond what was committed), for the given
    /// partitions or all of them.
    pub fn to_commit(&self, only: Option<&[(String, i32)]>) -> Option<TopicPartitionList> {
        let mut list = TopicPartitionList::new();
        for p in self.by_key.values() {
            if only.is_some_and(|o| !o.iter().any(|(t, n)| *t == p.topic && *n == p.partition)) {
                continue;
            }
            let Some(end) = p.tracker.committed() else { continue };
            if p.committed.is_some_and(|c| c >= end) {
                continue;
            }
            list.add_partition_offset(&p.topic, p.partition, Offset::Offset(end as i64)).ok()?;
        }
        (list.count() > 0).then_some(list)
    }

    /// `list` was committed.
    pub fn committed(&mut self, list: &TopicPartitionList) {
        for e in list.elements() {
            let Offset::Offset(off) = e.offset() else { continue };
            if let Some(&k) = self.current.get(e.topic()).and_then(|p| p.get(&e.partition())) {
                if let Some(p) = self.by_key.get_mut(&k) {
                    p.committed = Some(p.committed.map_or(off as u64, |c| c.max(off as u64)));
                }
            }
        }
    }

    /// The partitions were revoked: forget them; their batches still in flight are
    /// abandoned (later acknowledgements are ignored).
    pub fn forget(&mut self, revoked: &[(String, i32)]) {
        for (t, n) in revoked {
            if let Some(k) = self.current.get_mut(t.as_str()).and_then(|p| p.remove(n)) {
                self.by_key.remove(&k);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offsets() -> Offsets {
        let (tx, rx) = std::sync::mpsc::channel();
        Offsets::new(tx, rx)
    }

    fn committable(o: &Offsets) -> Vec<(String, i32, i64)> {
        let Some(l) = o.to_commit(None) else { return Vec::new() };
        let mut v: Vec<_> = l
            .elements()
            .iter()
            .map(|e| match e.offset() {
                Offset::Offset(x) => (e.topic().to_string(), e.partition(), x),
                other => panic!("{other:?}"),
            })
            .collect();
        v.sort();
        v
    }

    #[test]
    fn commits_only_the_delivered_prefix_per_partition() {
        let mut o = offsets();
        let (a, b) = (o.stream_key("t", 0), o.stream_key("t", 1));
        let a1 = o.emit(a, 10).unwrap();
        let a2 = o.emit(a, 20).unwrap();
        let b1 = o.emit(b, 5).unwrap();
        drop(a2); // delivered out of order: a gap before it
        o.apply_acks();
        assert!(committable(&o).is_empty(), "never past a gap");
        drop(a1);
        drop(b1);
        o.apply_acks();
        assert_eq!(committable(&o), [("t".into(), 0, 20), ("t".into(), 1, 5)]);
        let l = o.to_commit(None).unwrap();
        o.committed(&l);
        assert!(committable(&o).is_empty(), "nothing new to commit");
        // A failed batch pins its partition.
        let f = o.emit(b, 9).unwrap();
        f.fail();
        drop(f);
        let after = o.emit(b, 12).unwrap();
        drop(after);
        o.apply_acks();
        assert!(committable(&o).is_empty());
    }

    #[test]
    fn acknowledgements_after_a_revocation_are_ignored() {
        let mut o = offsets();
        let k = o.stream_key("t", 3);
        let old = o.emit(k, 100).unwrap();
        o.forget(&[("t".to_string(), 3)]);
        // Assigned back: a new key; the old batch's acknowledgement must not count.
        let k2 = o.stream_key("t", 3);
        assert_ne!(k, k2);
        let new = o.emit(k2, 50).unwrap();
        drop(old);
        o.apply_acks();
        assert!(committable(&o).is_empty());
        drop(new);
        o.apply_acks();
        assert_eq!(committable(&o), [("t".into(), 3, 50)]);
    }
}
