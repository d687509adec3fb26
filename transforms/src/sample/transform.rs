//! The running stage: rules, head and tail decisions, the switch, and `sample_rate`.

use super::*;

pub struct Sample {
    pub(super) switch: Arc<Switch>,
    pub(super) base: f64,
    pub(super) rules: Vec<(Condition, f64)>,
    pub(super) key: String,
    pub(super) tail: Option<Tail>,
    pub(super) auto: Option<AutoBypass>,
    pub(super) error_cond: Condition,
    pub(super) early: metrics::Counter,
    pub(super) batch_no: u64,
    /// Events sampled out since the last report (tail decisions happen in ticks too).
    pub(super) dropped: u64,
}

pub(super) fn rate_value(p: f64) -> Value {
    let r = 1.0 / p;
    if (r - r.round()).abs() < 1e-9 {
        Value::Int(r.round() as i64)
    } else {
        Value::Float(r)
    }
}

impl Sample {
    pub fn switch(&self) -> &Arc<Switch> {
        &self.switch
    }

    #[inline]
    pub(super) fn probability(&self, e: &Event) -> f64 {
        for (c, p) in &self.rules {
            if c.eval(e) {
                return *p;
            }
        }
        self.base
    }

    #[inline]
    pub(super) fn key_of(&self, e: &Event) -> Option<u64> {
        match e.fields.get(&self.key)? {
            Value::Str(s) if !s.as_str().is_empty() => Some(key_hash(s.as_str().as_bytes())),
            Value::Int(i) => Some(key_hash(i.to_string().as_bytes())),
            _ => None,
        }
    }

    /// The decision hash of an event without a key: its bytes and where it was read, so
    /// the same line gets the same answer whatever order events arrive in (fan-in, several
    /// workers) and when a restart reads it again.
    #[inline]
    pub(super) fn line_hash(e: &Event) -> u64 {
        mix(rapidhash::v3::rapidhash_v3(&e.raw) ^ e.origin.offset.wrapping_mul(0x9e37_79b9_7f4a_7c15))
    }

    /// Head decision for one event; marks kept sampled events with `sample_rate`.
    #[inline]
    pub(super) fn decide(&mut self, e: &mut Event, key: Option<u64>) -> bool {
        let p = self.probability(e);
        if p >= 1.0 {
            return true;
        }
        let h = match key {
            Some(h) => h,
            None => Self::line_hash(e),
        };
        let keep = keep_hash(h, p);
        if keep {
            e.fields.insert_static("sample_rate", rate_value(p));
        } else {
            self.dropped += 1;
        }
        keep
    }

    pub(super) fn flush_all_held(&mut self, out: &mut Vec<Event>, acks: &mut Vec<Ack>, as_kept: bool) {
        let Some(t) = &mut self.tail else { return };
        let held: Vec<(u64, TraceBuf)> = t.held.drain().collect();
        t.order.clear();
        t.bytes = 0;
        for (k, mut buf) in held {
            if as_kept || buf.keep {
                out.append(&mut buf.events);
            } else {
                for mut e in buf.events.drain(..) {
                    if self.decide(&mut e, Some(k)) {
                        out.push(e);
                    }
                }
            }
            acks.append(&mut buf.acks);
        }
    }

    /// Decide traces whose window ended (or the oldest, while over the limits).
    pub(super) fn expire(&mut self, now: Instant, out: &mut Vec<Event>, acks: &mut Vec<Ack>) {
        loop {
            let Some(t) = &mut self.tail else { return };
            let over = t.held.len() > t.max_traces || t.bytes > t.max_bytes;
            let Some(&(deadline, k)) = t.order.front() else { break };
            if deadline > now && !over {
                break;
            }
            t.order.pop_front();
            let Some(mut buf) = t.held.remove(&k) else { continue };
            t.bytes -= buf.bytes;
            if deadline > now {
                self.early.increment(1);
            }
            acks.append(&mut buf.acks);
            for mut e in buf.events.drain(..) {
                if buf.keep || self.decide(&mut e, Some(k)) {
                    out.push(e);
                }
            }
        }
        if let Some(t) = &mut self.tail {
            while let Some(&(d, k)) = t.kept_order.front() {
                if d > now {
                    break;
                }
                t.kept_order.pop_front();
                if t.kept.get(&k) == Some(&d) {
                    t.kept.remove(&k);
                }
            }
        }
    }

    pub(super) fn emit(out: &mut dyn Emit, events: Vec<Event>, acks: Vec<Ack>) {
        if !events.is_empty() || !acks.is_empty() {
            out.emit(None, Batch { events, acks });
        }
    }
}

impl Sample {
    /// Judge complete windows; trip the switch when the error ratio is too high.
    pub(super) fn auto_check(&mut self, now: Instant, force: bool) {
        let Some(a) = &mut self.auto else { return };
        let Some((r, end)) = a.check(now, force) else { return };
        let now_ts = Timestamp::now();
        if !self.switch.bypassed(now_ts) {
            let until = Timestamp(now_ts.0 + a.dur.as_nanos() as i64);
            self.switch.bypass(
                Some(until),
                &format!(
                    "error ratio {r:.3} ({} errors in {} events) over {}s of events ending at {} is above {}",
                    a.errors,
                    a.total,
                    a.over_secs,
                    Timestamp::from_secs(end).to_rfc3339(),
                    a.threshold
                ),
                "auto_bypass",
            );
        }
    }
}

impl Transform for Sample {
    fn process(&mut self, batch: Batch, out: &mut dyn Emit) -> Outcome {
        let now_ts = Timestamp::now();
        let now = Instant::now();
        self.batch_no += 1;
        let Batch { events, acks: batch_acks } = batch;
        let n_in = events.len();
        // Auto bypass watches the full stream, by event time.
        if let Some(a) = &mut self.auto {
            for e in &events {
                let sec = e.timestamp.secs();
                a.add(sec, self.error_cond.eval(e));
                a.seen(Arc::as_ptr(&e.origin.info) as usize, sec, now);
            }
        }
        self.auto_check(now, false);
        let mut kept: Vec<Event> = Vec::with_capacity(n_in);
        let mut acks: Vec<Ack> = Vec::new();
        if self.switch.bypassed(now_ts) {
            self.flush_all_held(&mut kept, &mut acks, true);
            kept.extend(events);
            acks.extend(batch_acks);
            Self::emit(out, kept, acks);
            return Outcome::default();
        }
        for mut e in events {
            let key = self.key_of(&e);
            match (&mut self.tail, key) {
                (Some(t), Some(k)) => {
                    if t.kept.contains_key(&k) {
                        kept.push(e);
                        continue;
                    }
                    let hit = t.keep_if.eval(&e);
                    if let Some(buf) = t.held.get_mut(&k) {
                        if hit {
                            // The whole trace is kept, including what came before.
                            let mut buf = t.held.remove(&k).unwrap();
                            t.bytes -= buf.bytes;
                            kept.append(&mut buf.events);
                            kept.push(e);
                            acks.append(&mut buf.acks);
                            let d = now + t.window;
                            t.kept.insert(k, d);
                            t.kept_order.push_back((d, k));
                            continue;
                        }
                        let sz = e.size_hint();
                        buf.bytes += sz;
                        t.bytes += sz;
                        buf.events.push(e);
                        if buf.last_batch != self.batch_no {
                            buf.last_batch = self.batch_no;
                            buf.acks.extend(batch_acks.iter().cloned());
                        }
                    } else if hit {
                        let d = now + t.window;
                        t.kept.insert(k, d);
                        t.kept_order.push_back((d, k));
                        kept.push(e);
                    } else {
                        let sz = e.size_hint();
                        t.bytes += sz;
                        t.held.insert(
                            k,
                            TraceBuf {
                                events: vec![e],
                                acks: batch_acks.clone(),
                                last_batch: self.batch_no,
                                bytes: sz,
                                keep: false,
                            },
                        );
                        t.order.push_back((now + t.window, k));
                    }
                }
                _ => {
                    if self.decide(&mut e, key) {
                        kept.push(e);
                    }
                }
            }
        }
        acks.extend(batch_acks);
        self.expire(now, &mut kept, &mut acks);
        Self::emit(out, kept, acks);
        Outcome { dropped: std::mem::take(&mut self.dropped), reason: "sampled", errors: 0 }
    }

    fn tick_interval(&self) -> Option<Duration> {
        Some(if self.tail.is_some() { Duration::from_millis(100) } else { Duration::from_millis(500) })
    }

    fn tick(&mut self, out: &mut dyn Emit) {
        self.auto_check(Instant::now(), false);
        let mut kept = Vec::new();
        let mut acks = Vec::new();
        if self.switch.bypassed(Timestamp::now()) {
            self.flush_all_held(&mut kept, &mut acks, true);
        } else {
            self.expire(Instant::now(), &mut kept, &mut acks);
        }
        Self::emit(out, kept, acks);
    }

    fn control(&self) -> Option<crate::Control> {
        Some(crate::Control::Sampling(self.switch.clone()))
    }

    fn finish(&mut self, out: &mut dyn Emit) {
        self.auto_check(Instant::now(), true);
        let mut kept = Vec::new();
        let mut acks = Vec::new();
        self.flush_all_held(&mut kept, &mut acks, false);
        Self::emit(out, kept, acks);
    }
}
