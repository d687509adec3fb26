//! The sampling switch outside the transform: saving and restoring its state in
//! `data_dir/sampling.json` (a bypass survives a restart until it expires), and the
//! request body of `PUT /api/v1/sampling`.

use serde::{Deserialize, Serialize};
use sluice_event::Timestamp;
use sluice_transforms::sample::{controls, take_dirty, ControlState};
use std::path::{Path, PathBuf};

#[derive(Debug, Serialize, Deserialize)]
struct Saved {
    stages: Vec<SavedStage>,
}

#[derive(Debug, Serialize, Deserialize)]
struct SavedStage {
    stage: String,
    until_ns: i64,
    reason: String,
    by: String,
}

pub fn state_path(data_dir: &Path) -> PathBuf {
    data_dir.join("sampling.json")
}

/// Every stage's state.
pub fn states() -> Vec<ControlState> {
    controls().lock().unwrap().values().map(|c| c.state()).collect()
}

/// Restore bypasses saved by an earlier run that have not expired yet.
pub fn restore(data_dir: &Path) {
    let Ok(text) = std::fs::read_to_string(state_path(data_dir)) else { return };
    let Ok(saved) = serde_json::from_str::<Saved>(&text) else {
        tracing::warn!("unreadable sampling state file; ignoring it");
        return;
    };
    let now = Timestamp::now();
    let ctl = controls().lock().unwrap().clone();
    for s in saved.stages {
        if s.until_ns > now.0 {
            if let Some(c) = ctl.get(&s.stage) {
                c.bypass(Some(Timestamp(s.until_ns)), &format!("{} (restored after restart)", s.reason), &s.by);
            }
        }
    }
    take_dirty();
}

/// Save the state if it changed (bypasses with an expiry only: `--no-sampling` lasts
/// for one run).
pub fn save_if_changed(data_dir: &Path) {
    if !take_dirty() {
        return;
    }
    let mut stages = Vec::new();
    for s in states() {
        if let Some(until) = &s.bypass_until {
            if let Ok(t) = chrono_like_parse(until) {
                stages.push(SavedStage { stage: s.stage, until_ns: t, reason: s.reason, by: s.by });
            }
        }
    }
    let body = serde_json::to_vec_pretty(&Saved { stages }).expect("serialisable");
    let path = state_path(data_dir);
    let tmp = path.with_extension("json.tmp");
    if let Err(e) = std::fs::write(&tmp, body).and_then(|_| std::fs::rename(&tmp, &path)) {
        tracing::error!(path = %path.display(), error = %e, "cannot save the sampling state");
    }
}

fn chrono_like_parse(rfc3339: &str) -> Result<i64, ()> {
    sluice_parsers::timestamp::parse_exact(rfc3339, &sluice_parsers::Context::default()).map(|t| t.0).ok_or(())
}

/// Body of `PUT /api/v1/sampling`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Change {
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

/// Apply a change; returns an error message and HTTP status on bad requests.
pub fn apply(change: &Change, peer: &str) -> Result<Vec<ControlState>, (u16, String)> {
    let ctl = controls().lock().unwrap().clone();
    let targets: Vec<_> = match &change.stage {
        Some(s) => match ctl.get(s) {
            Some(c) => vec![c.clone()],
            None => {
                return Err((
                    404,
                    format!(
                        "no sample stage named `{s}`; stages: {}",
                        ctl.keys().cloned().collect::<Vec<_>>().join(", ")
                    ),
                ))
            }
        },
        None => ctl.values().cloned().collect(),
    };
    let by = change.by.clone().filter(|b| !b.is_empty()).unwrap_or_else(|| format!("api client {peer}"));
    if change.enabled {
        for c in &targets {
            c.resume(&by, change.reason.as_deref().unwrap_or("turned on through the API"));
        }
    } else {
        let reason = change
            .reason
            .as_deref()
            .filter(|r| !r.trim().is_empty())
            .ok_or((400, "`reason` is required to turn sampling off (it goes into the audit log)".to_string()))?;
        let dur = change
            .for_
            .as_deref()
            .ok_or((400, "`for` is required to turn sampling off, e.g. \"for\": \"30m\"".to_string()))?;
        let d = sluice_config::units::parse_duration(dur).map_err(|e| (400, e))?;
        let until = Timestamp(Timestamp::now().0 + d.as_nanos() as i64);
        for c in &targets {
            c.bypass(Some(until), reason, &by);
        }
    }
    Ok(targets.iter().map(|c| c.state()).collect())
}

/// `--no-sampling`: bypass every stage for this run.
pub fn bypass_all_for_this_run() {
    for c in controls().lock().unwrap().values() {
        c.bypass(None, "started with --no-sampling", "--no-sampling");
    }
}
