//! The `sample` stage's options and their validation (the build step).

use super::*;

#[derive(Debug, Clone, Deserialize)]
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

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    pub when: Condition,
    pub rate: Rate,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TailConfig {
    pub window: String,
    pub keep_if: Condition,
    #[serde(default = "default_max_traces")]
    pub max_traces: usize,
    #[serde(default = "default_max_bytes")]
    pub max_bytes: String,
}

fn default_max_traces() -> usize {
    100_000
}
fn default_max_bytes() -> String {
    "256MiB".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AutoBypassConfig {
    pub when_error_ratio_above: f64,
    pub over: String,
    #[serde(rename = "for")]
    pub for_: String,
    #[serde(default = "default_min_events")]
    pub min_events: u64,
}

fn default_min_events() -> u64 {
    100
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SampleConfig {
    pub rate: Rate,
    #[serde(default)]
    pub rules: Vec<RuleConfig>,
    #[serde(default = "default_keep_level")]
    pub keep_level_at_least: String,
    #[serde(default = "default_key")]
    pub key_field: String,
    pub tail: Option<TailConfig>,
    pub auto_bypass: Option<AutoBypassConfig>,
}

fn default_keep_level() -> String {
    "warn".into()
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
        if self.keep_level_at_least != "none" {
            let c = toml::Value::Table(toml::Table::from_iter([(
                "level_at_least".to_string(),
                toml::Value::String(self.keep_level_at_least.clone()),
            )]));
            let cond = Condition::from_toml(&c)
                .map_err(|m| OptionError::new("keep_level_at_least", format!("{m} (or \"none\")")))?;
            rules.push((cond, 1.0));
        }
        for (i, r) in self.rules.iter().enumerate() {
            let p = r.rate.keep_probability().map_err(|m| OptionError::new("rules", format!("rules[{i}]: {m}")))?;
            rules.push((r.when.clone(), p));
        }
        let tail = match &self.tail {
            None => None,
            Some(t) => {
                let window =
                    parse_duration(&t.window).map_err(|m| OptionError::new("tail", format!("`tail.window`: {m}")))?;
                let max_bytes =
                    parse_size(&t.max_bytes).map_err(|m| OptionError::new("tail", format!("`tail.max_bytes`: {m}")))?;
                if t.max_traces == 0 {
                    return Err(OptionError::new("tail", "`tail.max_traces` must be at least 1"));
                }
                Some(Tail::new(window, t.keep_if.clone(), t.max_traces, max_bytes as usize))
            }
        };
        let auto = match &self.auto_bypass {
            None => None,
            Some(a) => {
                if !(a.when_error_ratio_above > 0.0 && a.when_error_ratio_above < 1.0) {
                    return Err(OptionError::new("auto_bypass", "`when_error_ratio_above` must be between 0 and 1"));
                }
                let over =
                    parse_duration(&a.over).map_err(|m| OptionError::new("auto_bypass", format!("`over`: {m}")))?;
                let dur =
                    parse_duration(&a.for_).map_err(|m| OptionError::new("auto_bypass", format!("`for`: {m}")))?;
                Some(AutoBypass {
                    threshold: a.when_error_ratio_above,
                    over_secs: over.as_secs().max(1) as i64,
                    dur,
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
            rng: seed(),
            early: metrics::counter!("sluice_sample_early_decisions_total", "stage" => name.to_string()),
            batch_no: 0,
            dropped: 0,
        })
    }
}
