//! The `sample` stage's options and their validation (the build step).

use super::*;

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum Rate {
    OneIn(u64),
    Ratio(f64),
}

impl Rate {
    fn keep_probability(&self) -> Result<f64, String> {
        match *self {
            Rate::OneIn(0) => Err("`rate` must be at least 1 (keep 1 in N) or a ratio in (0, 1]".into()),
            Rate::OneIn(n) => Ok(1.0 / n as f64),
            Rate::Ratio(r) if r > 0.0 && r <= 1.0 => Ok(r),
            Rate::Ratio(r) => Err(format!("`rate` {r} must be a ratio in (0, 1] or a whole number N (keep 1 in N)")),
        }
    }
}

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// Which events the rule applies to (a condition, e.g. `{ event = "health_check_ok" }`).
    pub when: Condition,
    /// The rate for matching events: keep 1 in N (`100`), or a ratio (`0.01`).
    pub rate: Rate,
}

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TailConfig {
    /// How long each trace's events are held before the rate decides (`"10s"`).
    pub window: units::Duration,
    /// Keep the whole trace when any of its events matches (`{ level_at_least = "error" }`).
    pub keep_if: Condition,
    /// Most traces held at once; beyond it the oldest is decided early.
    #[serde(default = "default_max_traces")]
    pub max_traces: usize,
    /// Most bytes of held events; beyond it the oldest trace is decided early.
    #[serde(default = "default_max_bytes")]
    pub max_bytes: ByteSize,
}

fn default_max_traces() -> usize {
    100_000
}
fn default_max_bytes() -> ByteSize {
    ByteSize(256 << 20)
}

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AutoBypassConfig {
    /// Switch sampling off when the share of error-level events exceeds this (0 to 1).
    pub when_error_ratio_above: f64,
    /// The window of event time the share is measured over (`"1m"`).
    pub over: units::Duration,
    /// How long the automatic bypass lasts (`"15m"`).
    #[serde(rename = "for")]
    pub for_: units::Duration,
    /// Fewest events in the window before the share counts.
    #[serde(default = "default_min_events")]
    pub min_events: u64,
}

fn default_min_events() -> u64 {
    100
}

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SampleConfig {
    /// Keep 1 in N events (`10`), or a ratio (`0.1`).
    pub rate: Rate,
    /// Rates for some events, first match wins: `[{ when = { event = "x" }, rate = 100 }]`.
    #[serde(default)]
    pub rules: Vec<RuleConfig>,
    /// Events at this level or above are always kept (`"none"`: no exception).
    #[serde(default = "default_keep_level")]
    pub keep_level_at_least: LevelOrNone,
    /// The field whose value decides (one decision per trace).
    #[serde(default = "default_key")]
    pub key_field: String,
    /// Tail sampling: hold each trace for a window, keep it whole if an event matches.
    pub tail: Option<TailConfig>,
    /// Switch sampling off by itself when the error share rises.
    pub auto_bypass: Option<AutoBypassConfig>,
}

fn default_keep_level() -> LevelOrNone {
    LevelOrNone(Some(Level::Warn))
}
fn default_key() -> String {
    "trace_id".into()
}

impl TransformConfig for SampleConfig {
    fn build(&self, ctx: &TransformContext) -> Result<Box<dyn Transform>, OptionError> {
        Ok(Box::new(self.compile(&ctx.name)?))
    }
}

impl SampleConfig {
    pub fn compile(&self, name: &str) -> Result<Sample, OptionError> {
        let base = self.rate.keep_probability().map_err(|m| OptionError::new("rate", m))?;
        let mut rules = Vec::new();
        if let LevelOrNone(Some(level)) = self.keep_level_at_least {
            rules.push((Condition::LevelAtLeast(level), 1.0));
        }
        for (i, r) in self.rules.iter().enumerate() {
            let p = r.rate.keep_probability().map_err(|m| OptionError::new(format!("rules[{i}].rate"), m))?;
            rules.push((r.when.clone(), p));
        }
        let tail = match &self.tail {
            None => None,
            Some(t) => {
                if t.window.is_zero() {
                    return Err(OptionError::new("tail.window", "must be longer than 0s"));
                }
                if t.max_traces == 0 {
                    return Err(OptionError::new("tail.max_traces", "must be at least 1"));
                }
                Some(Tail::new(*t.window, t.keep_if.clone(), t.max_traces, t.max_bytes.as_usize()))
            }
        };
        let auto = match &self.auto_bypass {
            None => None,
            Some(a) => {
                if !(a.when_error_ratio_above > 0.0 && a.when_error_ratio_above < 1.0) {
                    return Err(OptionError::new("auto_bypass.when_error_ratio_above", "must be between 0 and 1"));
                }
                Some(AutoBypass {
                    threshold: a.when_error_ratio_above,
                    over_secs: a.over.as_secs().max(1) as i64,
                    dur: *a.for_,
                    min_events: a.min_events,
                    buckets: BTreeMap::new(),
                    total: 0,
                    errors: 0,
                    newest: i64::MIN,
                    origins: HashMap::new(),
                    evaluated_to: i64::MIN,
                    origin_added: Instant::now(),
                })
            }
        };
        let error_cond = Condition::from_toml(&toml::Value::Table(toml::Table::from_iter([(
            "level_at_least".to_string(),
            toml::Value::String("error".into()),
        )])))
        .expect("static condition");
        Ok(Sample {
            switch: Switch::new(name),
            base,
            rules,
            key: self.key_field.clone(),
            tail,
            auto,
            error_cond,
            early: metrics::counter!("sluice_sample_early_decisions_total", "stage" => name.to_string()),
            batch_no: 0,
            dropped: 0,
        })
    }
}
