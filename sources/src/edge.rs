//! The edges between components: bounded channels of batches, bounded twice, in
//! batches (`buffer_batches`) and in bytes (`buffer_bytes`), so memory stays bounded
//! whatever the size of the events. A batch's size is estimated once when it is sent
//! ([`batch_bytes`]); the bytes count as in flight from the send until the consumer
//! takes the batch. A batch larger than the whole budget still passes, alone, when the
//! edge is empty. The bytes waiting on each consumer's edge are on `/metrics` as
//! `sluice_buffer_bytes{component}`.

use sluice_event::stats::ComponentStats;
use sluice_event::{Batch, Event};
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, Notify};

/// Estimated memory of a batch: each event's raw bytes, the event itself and its field
/// slots (values sliced from the raw line share its bytes; others are counted with the
/// slot).
pub fn batch_bytes(batch: &Batch) -> usize {
    batch.events.iter().map(event_bytes).sum::<usize>() + std::mem::size_of::<Batch>()
}

#[inline]
fn event_bytes(e: &Event) -> usize {
    e.raw.len() + std::mem::size_of::<Event>() + e.fields.capacity() * 64
}

/// Bytes and events in flight on one edge, shared by its senders and its receiver.
struct Room {
    limit: usize,
    /// Most events in flight (`usize::MAX`: no limit but bytes and batches).
    max_events: usize,
    state: Mutex<RoomState>,
    freed: Notify,
    gauge: metrics::Gauge,
    /// `when_full = "drop_newest"`: a batch that does not fit is dropped and counted
    /// here instead of waiting.
    drop_newest: Option<Arc<ComponentStats>>,
}

#[derive(Default)]
struct RoomState {
    bytes: usize,
    events: usize,
    receiver_gone: bool,
}

impl Room {
    /// Count a batch in, waiting until it fits (or the edge is empty). Err when the
    /// receiver is gone.
    async fn reserve(self: &Arc<Self>, size: usize, events: usize) -> Result<Reserved, ()> {
        loop {
            let freed = self.freed.notified();
            tokio::pin!(freed);
            // Registered before the check, so a release between the check and the wait
            // is not missed.
            freed.as_mut().enable();
            if let Some(r) = self.try_reserve(size, events)? {
                return Ok(r);
            }
            freed.await;
        }
    }

    /// Count a batch in if it fits now: `Ok(None)` when it does not, Err when the
    /// receiver is gone.
    fn try_reserve(self: &Arc<Self>, size: usize, events: usize) -> Result<Option<Reserved>, ()> {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if s.receiver_gone {
            return Err(());
        }
        if s.bytes != 0 && (s.bytes + size > self.limit || s.events + events > self.max_events) {
            return Ok(None);
        }
        s.bytes += size;
        s.events += events;
        self.gauge.set(s.bytes as f64);
        Ok(Some(Reserved { room: self.clone(), size, events }))
    }

    fn release(&self, size: usize, events: usize) {
        {
            let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
            s.bytes -= size;
            s.events -= events;
            self.gauge.set(s.bytes as f64);
        }
        self.freed.notify_waiters();
    }

    fn close(&self) {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).receiver_gone = true;
        self.freed.notify_waiters();
    }
}

/// A batch counted in; released on drop unless the batch was sent.
struct Reserved {
    room: Arc<Room>,
    size: usize,
    events: usize,
}

impl Reserved {
    fn sent(self) -> usize {
        let size = self.size;
        std::mem::forget(self);
        size
    }
}

impl Drop for Reserved {
    fn drop(&mut self) {
        self.room.release(self.size, self.events);
    }
}

/// How much an edge holds and what happens when it is full.
#[derive(Clone)]
pub struct EdgeLimits {
    /// Most batches.
    pub batches: usize,
    /// About this many bytes ([`batch_bytes`]); a larger batch passes alone.
    pub bytes: usize,
    /// Most events (`usize::MAX`: no limit of its own).
    pub events: usize,
    /// Drop what does not fit (counted as `buffer_full` drops of these stats) instead
    /// of waiting for room.
    pub drop_newest: Option<Arc<ComponentStats>>,
}

/// Create an edge holding at most `batches` batches and about `bytes` bytes, for the
/// consumer `component` (the label of its `sluice_buffer_bytes`).
pub fn edge(batches: usize, bytes: usize, component: &str) -> (EdgeSender, EdgeReceiver) {
    edge_with(EdgeLimits { batches, bytes, events: usize::MAX, drop_newest: None }, component)
}

/// Create an edge with the given limits and policy.
pub fn edge_with(limits: EdgeLimits, component: &str) -> (EdgeSender, EdgeReceiver) {
    let (tx, rx) = mpsc::channel(limits.batches.max(1));
    let room = Arc::new(Room {
        limit: limits.bytes.max(1),
        max_events: limits.events.max(1),
        state: Mutex::new(RoomState::default()),
        freed: Notify::new(),
        gauge: metrics::gauge!("sluice_buffer_bytes", "component" => component.to_string()),
        drop_newest: limits.drop_newest,
    });
    (EdgeSender { tx, room: room.clone() }, EdgeReceiver { rx, room })
}

/// The sending side of an edge (cloned for fan-in).
#[derive(Clone)]
pub struct EdgeSender {
    tx: mpsc::Sender<(Batch, usize)>,
    room: Arc<Room>,
}

/// A sending side that does not keep the edge open: [`WeakEdgeSender::upgrade`] gives
/// a sender while some other sender still exists.
#[derive(Clone)]
pub struct WeakEdgeSender {
    tx: mpsc::WeakSender<(Batch, usize)>,
    room: Arc<Room>,
}

impl WeakEdgeSender {
    pub fn upgrade(&self) -> Option<EdgeSender> {
        Some(EdgeSender { tx: self.tx.upgrade()?, room: self.room.clone() })
    }
}

/// Room for one batch on an edge, bytes and slot taken: [`EdgePermit::send`] uses it.
pub struct EdgePermit<'a> {
    permit: mpsc::Permit<'a, (Batch, usize)>,
    reserved: Reserved,
}

impl EdgePermit<'_> {
    pub fn send(self, batch: Batch) {
        let size = self.reserved.sent();
        self.permit.send((batch, size));
    }
}

impl EdgeSender {
    /// A handle that does not keep the edge open.
    pub fn downgrade(&self) -> WeakEdgeSender {
        WeakEdgeSender { tx: self.tx.downgrade(), room: self.room.clone() }
    }

    /// Wait for room for a batch of `size` bytes and `events` events. Err when the
    /// receiver is gone. Dropping the future while it waits takes nothing.
    pub async fn reserve(&self, size: usize, events: usize) -> Result<EdgePermit<'_>, ()> {
        let reserved = self.room.reserve(size, events).await?;
        let permit = self.tx.reserve().await.map_err(|_| ())?;
        Ok(EdgePermit { permit, reserved })
    }

    /// Send, waiting for room. Returns the batch back when the receiver is gone.
    pub async fn send(&self, batch: Batch, size: usize) -> Result<(), Batch> {
        if self.drops_when_full() {
            return match self.try_send(batch, size) {
                Err(mpsc::error::TrySendError::Full(b)) => {
                    self.drop_full(b);
                    Ok(())
                }
                Err(mpsc::error::TrySendError::Closed(b)) => Err(b),
                Ok(()) => Ok(()),
            };
        }
        match self.reserve(size, batch.len()).await {
            Ok(p) => {
                p.send(batch);
                Ok(())
            }
            Err(()) => Err(batch),
        }
    }

    /// True when the consumer drops what does not fit (`when_full = "drop_newest"`).
    pub fn drops_when_full(&self) -> bool {
        self.room.drop_newest.is_some()
    }

    /// Drop a batch that did not fit, counting it; its tokens are released (the events
    /// are accounted for as dropped, not held back).
    pub fn drop_full(&self, batch: Batch) {
        if let Some(stats) = &self.room.drop_newest {
            stats.dropped(batch.len() as u64, "buffer_full");
        }
        drop(batch);
    }

    /// Send if there is room now.
    pub fn try_send(&self, batch: Batch, size: usize) -> Result<(), mpsc::error::TrySendError<Batch>> {
        use mpsc::error::TrySendError;
        let reserved = match self.room.try_reserve(size, batch.len()) {
            Ok(Some(r)) => r,
            Ok(None) => return Err(TrySendError::Full(batch)),
            Err(()) => return Err(TrySendError::Closed(batch)),
        };
        match self.tx.try_reserve() {
            Ok(permit) => {
                EdgePermit { permit, reserved }.send(batch);
                Ok(())
            }
            Err(TrySendError::Full(())) => Err(TrySendError::Full(batch)),
            Err(TrySendError::Closed(())) => Err(TrySendError::Closed(batch)),
        }
    }
}

/// The receiving side of an edge: taking a batch frees its bytes.
pub struct EdgeReceiver {
    rx: mpsc::Receiver<(Batch, usize)>,
    room: Arc<Room>,
}

impl EdgeReceiver {
    #[inline]
    fn taken(&self, (batch, size): (Batch, usize)) -> Batch {
        self.room.release(size, batch.len());
        batch
    }

    pub fn blocking_recv(&mut self) -> Option<Batch> {
        let got = self.rx.blocking_recv()?;
        Some(self.taken(got))
    }

    pub async fn recv(&mut self) -> Option<Batch> {
        let got = self.rx.recv().await?;
        Some(self.taken(got))
    }

    pub fn try_recv(&mut self) -> Result<Batch, mpsc::error::TryRecvError> {
        let got = self.rx.try_recv()?;
        Ok(self.taken(got))
    }

    /// Refuse new batches (senders get them back); queued ones can still be taken.
    pub fn close(&mut self) {
        self.rx.close();
        self.room.close();
    }
}

impl Drop for EdgeReceiver {
    fn drop(&mut self) {
        self.room.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use sluice_event::{Origin, OriginInfo, Timestamp};

    fn batch(raw_len: usize) -> Batch {
        let e = Event::from_line(
            Bytes::from(vec![b'x'; raw_len]),
            Timestamp(0),
            Origin { info: OriginInfo::new("s", None), offset: 0 },
        );
        Batch::new(vec![e])
    }

    #[test]
    fn bounded_in_bytes_and_a_big_batch_passes_alone() {
        let (tx, mut rx) = edge(100, 10_000, "t");
        let b = batch(4_000);
        let n = batch_bytes(&b);
        assert!(n >= 4_000);
        tx.try_send(b, n).unwrap();
        tx.try_send(batch(4_000), n).unwrap();
        // A third would exceed 10,000 bytes: full, though 98 slots are free.
        assert!(matches!(tx.try_send(batch(4_000), n), Err(mpsc::error::TrySendError::Full(_))));
        rx.try_recv().unwrap();
        tx.try_send(batch(4_000), n).unwrap();
        rx.try_recv().unwrap();
        rx.try_recv().unwrap();
        // Empty: a batch over the whole budget passes alone, and nothing beside it.
        let big = batch(50_000);
        let nb = batch_bytes(&big);
        tx.try_send(big, nb).unwrap();
        assert!(tx.try_send(batch(10), 200).is_err());
        rx.try_recv().unwrap();
        tx.try_send(batch(10), 200).unwrap();
    }

    #[test]
    fn a_blocked_sender_wakes_when_bytes_are_freed_or_the_receiver_goes() {
        let (tx, mut rx) = edge(100, 1_000, "t");
        tx.try_send(batch(10), 900).unwrap();
        let t2 = tx.clone();
        let h = std::thread::spawn(move || futures::executor::block_on(t2.send(batch(10), 900)).is_ok());
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(!h.is_finished(), "must wait for room");
        rx.blocking_recv().unwrap();
        assert!(h.join().unwrap());
        rx.blocking_recv().unwrap();
        // Waiting when the receiver goes: the batch comes back.
        tx.try_send(batch(10), 900).unwrap();
        let h = std::thread::spawn(move || futures::executor::block_on(tx.send(batch(10), 900)).is_err());
        std::thread::sleep(std::time::Duration::from_millis(50));
        drop(rx);
        assert!(h.join().unwrap());
    }

    #[test]
    fn bounded_in_events_and_drop_newest_drops_counted_without_waiting() {
        let stats = Arc::new(ComponentStats::new("sink", "sink", "loki"));
        let limits = EdgeLimits { batches: 100, bytes: usize::MAX, events: 2, drop_newest: Some(stats.clone()) };
        let (tx, mut rx) = edge_with(limits, "t");
        let (atx, arx) = std::sync::mpsc::channel();
        for seq in 0..4 {
            let mut b = batch(10);
            b.acks.push(sluice_event::Ack::new(0, seq, atx.clone()));
            // Never waits: the third and fourth do not fit and are dropped.
            futures::executor::block_on(tx.send(b, 200)).unwrap();
        }
        assert_eq!(stats.snapshot().events_dropped.get("buffer_full"), Some(&2));
        // The dropped batches are acknowledged (accounted for), not failed.
        let acked: Vec<_> = arx.try_iter().collect();
        assert_eq!(acked.iter().map(|a| (a.seq, a.failed)).collect::<Vec<_>>(), vec![(2, false), (3, false)]);
        rx.try_recv().unwrap();
        rx.try_recv().unwrap();
        assert!(rx.try_recv().is_err());
    }
}
