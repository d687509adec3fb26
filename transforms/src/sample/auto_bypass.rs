//! Automatic bypass: the share of error-level events over a window of event time.

use super::*;

pub(super) struct AutoBypass {
    pub(super) threshold: f64,
    pub(super) over_secs: i64,
    pub(super) dur: Duration,
    pub(super) min_events: u64,
    pub(super) buckets: BTreeMap<i64, (u64, u64)>,
    pub(super) total: u64,
    pub(super) errors: u64,
    pub(super) newest: i64,
    /// Per input (origin): latest event second and when it was last seen. Windows are
    /// judged only up to the slowest active input (a watermark), so a replay of several
    /// files read at different positions never judges a half-filled window.
    pub(super) origins: HashMap<usize, (i64, Instant)>,
    pub(super) evaluated_to: i64,
    /// When an input was last seen for the first time: windows are judged once the set
    /// of inputs has been stable for five seconds (and all again at shutdown).
    pub(super) origin_added: Instant,
}

impl AutoBypass {
    /// Count one event in its second (event time). Events may arrive out of order (files
    /// are read at different positions, a replay reads whole files at once), so buckets
    /// are kept for 24 hours of event time before the newest (at most 86,400 buckets).
    #[inline]
    pub(super) fn add(&mut self, sec: i64, error: bool) {
        let b = self.buckets.entry(sec).or_insert((0, 0));
        b.0 += 1;
        if error {
            b.1 += 1;
        }
        if sec > self.newest {
            self.newest = sec;
            let cutoff = sec.saturating_sub(86_400.max(self.over_secs * 2));
            while let Some((&s, _)) = self.buckets.first_key_value() {
                if s >= cutoff {
                    break;
                }
                self.buckets.pop_first();
            }
        }
    }

    /// Record that input `origin` has reached event second `sec`.
    #[inline]
    pub(super) fn seen(&mut self, origin: usize, sec: i64, now: Instant) {
        if !self.origins.contains_key(&origin) {
            self.origin_added = now;
        }
        let o = self.origins.entry(origin).or_insert((sec, now));
        o.0 = o.0.max(sec);
        o.1 = now;
    }

    /// Judge every complete window up to the watermark; the first that trips wins.
    pub(super) fn check(&mut self, now: Instant, force: bool) -> Option<(f64, i64)> {
        // After a new input appears, wait before judging: its events may still be on
        // their way through slower stages (a replay reads whole files at once).
        if !force && now.duration_since(self.origin_added) < Duration::from_secs(5) {
            return None;
        }
        self.origins.retain(|_, (_, seen)| force || now.duration_since(*seen) < Duration::from_secs(120));
        let wm = self.origins.values().map(|(s, _)| *s).min()?;
        if wm <= self.evaluated_to && !force {
            return None;
        }
        let earliest = *self.buckets.first_key_value()?.0;
        // At shutdown every input is complete: judge every window again.
        let from =
            if self.evaluated_to == i64::MIN || force { earliest } else { self.evaluated_to + 1 }.max(wm - 86_400);
        self.evaluated_to = wm;
        (from..=wm).find_map(|end| self.tripped(end).map(|r| (r, end)))
    }

    /// The error ratio over the `over` seconds ending at `end`, if it trips.
    pub(super) fn tripped(&mut self, end: i64) -> Option<f64> {
        let (mut total, mut errors) = (0u64, 0u64);
        for (_, &(t, e)) in self.buckets.range(end.saturating_sub(self.over_secs - 1)..=end) {
            total += t;
            errors += e;
        }
        self.total = total;
        self.errors = errors;
        let r = errors as f64 / total.max(1) as f64;
        (total >= self.min_events && r > self.threshold).then_some(r)
    }
}
