//! Runtime-owned controls: the handles stages expose from their build step
//! ([`sluice_transforms::Control`]), collected once per pipeline. The admin API,
//! `--no-sampling` and the saved state act through them; nothing is a process global.
//!
//! Sampling switches: the state is kept in the durable-state store as `sampling.json`
//! (a bypass with an expiry survives a restart until it expires), and
//! `PUT /api/v1/sampling` changes it.

use crate::registry::Built;
use serde::{Deserialize, Serialize};
use sluice_config::Component;
use sluice_event::store::{Document, Store};
use sluice_event::Timestamp;
use sluice_transforms::sample::{Switch, SwitchState};
use sluice_transforms::Control;
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

const SAMPLING_DOC: &str = "sampling.json";

/// Every control handle of one running pipeline.
#[derive(Default)]
pub struct Controls {
    /// Replaced as a whole when a reload changes the sample stages.
    sampling: RwLock<BTreeMap<String, Arc<Switch>>>,
}

#[derive(Debug, Serialize, Deserialize)]
struct SavedSampling {
    stages: Vec<SavedStage>,
}

impl Document for SavedSampling {
    const VERSION: u32 = 1;
}

#[derive(Debug, Serialize, Deserialize)]
struct SavedStage {
    stage: String,
    until_ns: i64,
    reason: String,
    by: String,
}

/// Body of `PUT /api/v1/sampling`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SamplingChange {
    /// false: bypass sampling (pass everything); true: sample again.
    pub enabled: bool,
    /// How long the bypass lasts (`30m`); required with `enabled = false`.
    #[serde(rename = "for")]
    pub for_: Option<String>,
    pub reason: Option<String>,
    /// One stage; all stages when absent.
    pub stage: Option<String>,
    /// Who asks (for the audit line); defaults to the client address.
    pub by: Option<String>,
}

/// A request the controls refuse: the HTTP status and the message for the client.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Refused {
    pub status: u16,
    pub message: String,
}

fn refused(status: u16, message: impl Into<String>) -> Refused {
    Refused { status, message: message.into() }
}

impl Controls {
    /// Collect the handles the built components expose.
    pub fn collect(built: &[(Component, Built)]) -> Controls {
        let mut c = Controls::default();
        for (comp, b) in built {
            if let Built::Transform(t) = b {
                match t.control() {
                    Some(Control::Sampling(s)) => {
                        c.sampling.get_mut().unwrap_or_else(|p| p.into_inner()).insert(comp.name.clone(), s);
                    }
                    None => {}
                }
            }
        }
        c
    }

    fn switches(&self) -> BTreeMap<String, Arc<Switch>> {
        self.sampling.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// After a reload: the switches of new and changed sample stages (in `built`, from
    /// [`Controls::collect`] on the new config) replace the old ones, keeping a bypass in
    /// force; removed stages go. Kept stages keep their switch.
    pub fn adopt(&self, built: Controls, summary: &crate::topology::ReloadSummary) {
        let fresh = built.switches();
        let mut map = self.sampling.write().unwrap_or_else(|p| p.into_inner());
        for name in summary.added.iter().chain(&summary.changed).chain(&summary.removed) {
            let old = map.remove(name);
            let Some(new) = fresh.get(name) else { continue };
            if let Some(old) = old.filter(|o| o.bypassed(Timestamp::now())) {
                let st = old.state();
                new.bypass(old.bypass_until_ns().map(Timestamp), &st.reason, &st.by);
                new.take_changed();
            }
            map.insert(name.clone(), new.clone());
        }
    }

    /// Every sample stage's state.
    pub fn sampling_states(&self) -> Vec<SwitchState> {
        self.switches().values().map(|s| s.state()).collect()
    }

    /// Restore bypasses saved by an earlier run that have not expired yet.
    pub fn restore(&self, store: &Store) {
        let saved = match store.load::<SavedSampling>(SAMPLING_DOC) {
            Ok(Some(s)) => s,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(error = %e, "ignoring the saved sampling state");
                return;
            }
        };
        let now = Timestamp::now();
        for s in saved.stages {
            if s.until_ns > now.0 {
                if let Some(c) = self.switches().get(&s.stage) {
                    c.bypass(Some(Timestamp(s.until_ns)), &format!("{} (restored after restart)", s.reason), &s.by);
                }
            }
        }
        // Restoring is not a change to save again.
        for s in self.switches().values() {
            s.take_changed();
        }
    }

    /// Save the sampling state if a switch changed (bypasses with an expiry only:
    /// `--no-sampling` lasts for one run).
    pub fn save_if_changed(&self, store: &Store) {
        let switches = self.switches();
        let changed = switches.values().fold(false, |any, s| s.take_changed() | any);
        if !changed {
            return;
        }
        let stages = switches
            .values()
            .filter_map(|sw| {
                let until_ns = sw.bypass_until_ns()?;
                let st = sw.state();
                Some(SavedStage { stage: st.stage, until_ns, reason: st.reason, by: st.by })
            })
            .collect();
        if let Err(e) = store.save(SAMPLING_DOC, &SavedSampling { stages }) {
            tracing::error!(error = %e, "cannot save the sampling state");
        }
    }

    /// Apply a change from the admin API; `peer` is the client address.
    pub fn apply_sampling(&self, change: &SamplingChange, peer: &str) -> Result<Vec<SwitchState>, Refused> {
        let switches = self.switches();
        let targets: Vec<&Arc<Switch>> = match &change.stage {
            Some(s) => match switches.get(s) {
                Some(c) => vec![c],
                None => {
                    let names: Vec<&str> = switches.keys().map(String::as_str).collect();
                    return Err(refused(404, format!("no sample stage named `{s}`; stages: {}", names.join(", "))));
                }
            },
            None => switches.values().collect(),
        };
        let by = change.by.clone().filter(|b| !b.is_empty()).unwrap_or_else(|| format!("api client {peer}"));
        if change.enabled {
            for c in &targets {
                c.resume(&by, change.reason.as_deref().unwrap_or("turned on through the API"));
            }
        } else {
            let reason = change.reason.as_deref().filter(|r| !r.trim().is_empty()).ok_or_else(|| {
                refused(400, "`reason` is required to turn sampling off (it goes into the audit log)")
            })?;
            let dur = change
                .for_
                .as_deref()
                .ok_or_else(|| refused(400, "`for` is required to turn sampling off, e.g. \"for\": \"30m\""))?;
            let d = sluice_config::units::parse_duration(dur).map_err(|e| refused(400, e.to_string()))?;
            let until = Timestamp(Timestamp::now().0 + d.as_nanos() as i64);
            for c in &targets {
                c.bypass(Some(until), reason, &by);
            }
        }
        Ok(targets.iter().map(|c| c.state()).collect())
    }

    /// `--no-sampling`: bypass every stage for this run.
    pub fn bypass_all_for_this_run(&self) {
        for c in self.switches().values() {
            c.bypass(None, "started with --no-sampling", "--no-sampling");
        }
    }
}
