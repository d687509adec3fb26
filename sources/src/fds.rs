//! The process's file-descriptor budget.
//!
//! At start the runtime raises the soft `RLIMIT_NOFILE` to the hard limit and keeps a
//! reserve for everything that is not a tailed file (sinks, sockets, the admin API,
//! librdkafka, the runtime's own descriptors); file sources share the rest. A file
//! source that cannot get a slot leaves the file waiting (served oldest-unread-first)
//! instead of failing with "Too many open files", so sinks and network sources never
//! run out.

use std::sync::atomic::{AtomicUsize, Ordering};

#[derive(Debug)]
pub struct FdBudget {
    capacity: usize,
    used: AtomicUsize,
    limit: u64,
}

/// Descriptors kept out of the budget: a quarter of the limit, between 16 and 256.
pub fn reserve_for(limit: u64) -> u64 {
    (limit / 4).clamp(16, 256)
}

impl FdBudget {
    /// A budget for a process whose descriptor limit is `limit`.
    pub fn for_limit(limit: u64) -> FdBudget {
        let capacity = limit.saturating_sub(reserve_for(limit)).max(1) as usize;
        FdBudget { capacity, used: AtomicUsize::new(0), limit }
    }

    /// A budget of exactly `capacity` slots (tests).
    pub fn with_capacity(capacity: usize) -> FdBudget {
        FdBudget { capacity, used: AtomicUsize::new(0), limit: capacity as u64 }
    }

    /// Raise the soft descriptor limit to the hard one and return (soft before, soft now).
    pub fn raise_limit() -> (u64, u64) {
        // SAFETY: getrlimit/setrlimit on a struct we own.
        unsafe {
            let mut r: libc::rlimit = std::mem::zeroed();
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) != 0 {
                return (1024, 1024);
            }
            let before = r.rlim_cur as u64;
            if r.rlim_cur < r.rlim_max {
                let mut want = r;
                want.rlim_cur = r.rlim_max;
                if libc::setrlimit(libc::RLIMIT_NOFILE, &want) == 0 {
                    return (before, r.rlim_max as u64);
                }
            }
            (before, before)
        }
    }

    pub fn limit(&self) -> u64 {
        self.limit
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn in_use(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// Take a slot if one is free.
    pub fn try_acquire(&self) -> bool {
        self.used.fetch_update(Ordering::AcqRel, Ordering::Relaxed, |u| (u < self.capacity).then_some(u + 1)).is_ok()
    }

    /// Take a slot even beyond the capacity (a file that must be read now); released
    /// like any other.
    pub fn acquire_over(&self) {
        self.used.fetch_add(1, Ordering::AcqRel);
    }

    pub fn release(&self) {
        let _ = self.used.fetch_update(Ordering::AcqRel, Ordering::Relaxed, |u| u.checked_sub(1));
    }
}

impl Default for FdBudget {
    /// Unlimited for practical purposes (tests that do not care).
    fn default() -> FdBudget {
        FdBudget::with_capacity(usize::MAX / 2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_bounded_and_returned() {
        let b = FdBudget::with_capacity(2);
        assert!(b.try_acquire() && b.try_acquire());
        assert!(!b.try_acquire());
        b.release();
        assert!(b.try_acquire());
        assert_eq!(b.in_use(), 2);
        // Beyond capacity, counted: releasing it leaves the budget full, not one short.
        b.acquire_over();
        b.release();
        assert!(!b.try_acquire());
        assert_eq!(FdBudget::for_limit(1024).capacity(), 768);
        assert_eq!(FdBudget::for_limit(128).capacity(), 96);
        assert_eq!(FdBudget::for_limit(65536).capacity(), 65280);
    }
}
