//! The incident switch of one sample stage: bypass (pass everything) until a time,
//! resume, expire; its state as the admin API shows it and `data_dir` keeps it.

use super::*;

/// The incident switch of one sample stage.
#[derive(Debug)]
pub struct Switch {
    pub stage: String,
    /// Unix nanoseconds until which sampling is bypassed; 0: not bypassed;
    /// `i64::MAX`: until further notice.
    pub(super) until: AtomicI64,
    pub(super) info: Mutex<(String, String)>,
    pub(super) gauge: metrics::Gauge,
    /// Set on every change, cleared by [`Switch::take_changed`] (the runtime saves the state).
    pub(super) changed: AtomicBool,
    pub(super) expiry_gauge: metrics::Gauge,
}

/// The state of a switch, as shown by the API and saved in `data_dir`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct SwitchState {
    pub stage: String,
    pub sampling: bool,
    /// RFC 3339 expiry of the bypass; absent when sampling or bypassed indefinitely.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bypass_until: Option<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reason: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub by: String,
}

impl Switch {
    pub(super) fn new(stage: &str) -> Arc<Switch> {
        let c = Arc::new(Switch {
            stage: stage.to_string(),
            until: AtomicI64::new(0),
            info: Mutex::new((String::new(), String::new())),
            gauge: metrics::gauge!("sluice_sampling_bypass", "stage" => stage.to_string()),
            expiry_gauge: metrics::gauge!("sluice_sampling_bypass_expiry_timestamp_seconds", "stage" => stage.to_string()),
            changed: AtomicBool::new(false),
        });
        c.gauge.set(0.0);
        c.expiry_gauge.set(0.0);
        c
    }

    /// Bypass sampling until `until` (`None`: until further notice). Writes the audit line.
    pub fn bypass(&self, until: Option<Timestamp>, reason: &str, by: &str) {
        let u = until.map_or(i64::MAX, |t| t.0);
        self.until.store(u, Ordering::Release);
        *self.info.lock().unwrap() = (reason.to_string(), by.to_string());
        self.gauge.set(1.0);
        self.expiry_gauge.set(until.map_or(0.0, |t| t.0 as f64 / 1e9));
        self.changed.store(true, Ordering::Release);
        tracing::warn!(
            target: "audit",
            stage = %self.stage,
            by = %by,
            reason = %reason,
            expires = %until.map_or("never (until turned on)".to_string(), |t| t.to_rfc3339()),
            "sampling bypass ON: every event passes"
        );
    }

    /// Resume sampling.
    pub fn resume(&self, by: &str, why: &str) {
        if self.until.swap(0, Ordering::AcqRel) == 0 {
            return;
        }
        *self.info.lock().unwrap() = (String::new(), String::new());
        self.gauge.set(0.0);
        self.expiry_gauge.set(0.0);
        self.changed.store(true, Ordering::Release);
        tracing::warn!(target: "audit", stage = %self.stage, by = %by, reason = %why, "sampling bypass OFF: sampling resumed");
    }

    /// Is sampling bypassed at `now`? Expires the bypass when its time has come.
    #[inline]
    pub fn bypassed(&self, now: Timestamp) -> bool {
        let u = self.until.load(Ordering::Acquire);
        if u == 0 {
            return false;
        }
        if now.0 < u {
            return true;
        }
        self.resume("expiry", "the bypass period ended");
        false
    }

    /// True once after each change (for persisting the state).
    pub fn take_changed(&self) -> bool {
        self.changed.swap(false, Ordering::AcqRel)
    }

    /// Unix nanoseconds the bypass expires at; None when sampling or bypassed until
    /// further notice.
    pub fn bypass_until_ns(&self) -> Option<i64> {
        let u = self.until.load(Ordering::Acquire);
        (u != 0 && u != i64::MAX).then_some(u)
    }

    pub fn state(&self) -> SwitchState {
        let u = self.until.load(Ordering::Acquire);
        let (reason, by) = self.info.lock().unwrap().clone();
        SwitchState {
            stage: self.stage.clone(),
            sampling: u == 0,
            bypass_until: (u != 0 && u != i64::MAX).then(|| Timestamp(u).to_rfc3339()),
            reason,
            by,
        }
    }
}
