//! Taps: a live copy of the events leaving a component, for `sluice tap`.
//!
//! A component's outputs hold its [`Tap`]. While nobody listens, offering a batch costs
//! one atomic load. A listener receives each batch as NDJSON through a callback that
//! must not block (the admin API hands it to a bounded channel and counts what does
//! not fit): a slow reader loses tap lines, the pipeline never waits for it.

use crate::{ndjson::Encoder, Batch};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Receives a batch's NDJSON lines and their count; returns false once the listener
/// is gone.
pub type Listener = Box<dyn FnMut(&[u8], usize) -> bool + Send>;

#[derive(Default)]
pub struct Tap {
    listeners: Mutex<Vec<Listener>>,
    active: AtomicUsize,
}

impl Tap {
    pub fn new() -> Tap {
        Tap::default()
    }

    /// True while somebody listens.
    #[inline]
    pub fn is_active(&self) -> bool {
        self.active.load(Ordering::Relaxed) > 0
    }

    pub fn listen(&self, l: Listener) {
        let mut ls = self.listeners.lock().unwrap_or_else(|e| e.into_inner());
        ls.push(l);
        self.active.store(ls.len(), Ordering::Relaxed);
    }

    /// Give the batch to every listener (nothing happens when there is none).
    #[inline]
    pub fn offer(&self, batch: &Batch) {
        if self.is_active() && !batch.is_empty() {
            self.offer_slow(batch);
        }
    }

    #[cold]
    fn offer_slow(&self, batch: &Batch) {
        let mut lines = Vec::with_capacity(batch.len() * 256);
        let mut enc = Encoder::new();
        for e in &batch.events {
            enc.encode_event(&mut lines, e);
        }
        let mut ls = self.listeners.lock().unwrap_or_else(|e| e.into_inner());
        ls.retain_mut(|l| l(&lines, batch.len()));
        self.active.store(ls.len(), Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Event, Origin, OriginInfo, Timestamp};
    use std::sync::{Arc, Mutex};

    fn batch(n: usize) -> Batch {
        let origin = Origin { info: OriginInfo::new("app", None), offset: 0 };
        Batch::new((0..n).map(|i| Event::from_line(format!("line {i}").into(), Timestamp(0), origin.clone())).collect())
    }

    #[test]
    fn listeners_get_ndjson_until_they_leave() {
        let tap = Tap::new();
        tap.offer(&batch(2)); // nobody listens: nothing to do
        assert!(!tap.is_active());
        let got = Arc::new(Mutex::new(Vec::new()));
        let g = got.clone();
        let mut left = 2;
        tap.listen(Box::new(move |lines, n| {
            g.lock().unwrap().push((String::from_utf8(lines.to_vec()).unwrap(), n));
            left -= 1;
            left > 0
        }));
        assert!(tap.is_active());
        tap.offer(&batch(2));
        tap.offer(&batch(1));
        assert!(!tap.is_active(), "the listener left after two batches");
        tap.offer(&batch(3));
        let got = got.lock().unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].1, 2);
        assert_eq!(got[0].0.lines().count(), 2);
        assert!(got[0].0.starts_with("{\"timestamp\":\"1970-01-01T00:00:00Z\",\"message\":\"line 0\""), "{}", got[0].0);
    }
}
