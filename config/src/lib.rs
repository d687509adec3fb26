//! sluice configuration: one TOML file describing a DAG of named components.
//!
//! ```toml
//! data_dir = "/var/lib/sluice"
//! [api]
//! address = "127.0.0.1:9598"
//! [sources.app]
//! type = "file"
//! include = ["/var/log/app/*.log"]
//! [sinks.out]
//! type = "file"
//! inputs = ["app"]
//! path = "/tmp/out-{date}.ndjson"
//! ```
//!
//! This crate knows the top level and the shape of components (`type`, `inputs`), checks
//! the graph (unknown or cyclic inputs), and interpolates `${VAR}` / `${VAR:-default}` in
//! string values. Each component's own options are decoded by its crate with
//! [`Config::decode`], which turns serde errors into [`Diagnostic`]s that point at
//! `FILE:LINE:COL` and name the key.

pub mod cases;
pub mod condition;
mod graph;
mod interpolate;
mod spans;
pub mod units;

pub use interpolate::interpolate;

/// A value in the configuration that does not mean anything (a malformed condition,
/// an unresolvable `${VAR}`); the caller locates it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ValueError(pub String);

impl From<String> for ValueError {
    fn from(s: String) -> ValueError {
        ValueError(s)
    }
}

impl From<&str> for ValueError {
    fn from(s: &str) -> ValueError {
        ValueError(s.to_string())
    }
}

use serde::de::DeserializeOwned;
use serde::Deserialize;
use spans::{PathSeg, SpanIndex};
use std::fmt;
use std::path::PathBuf;

/// One located configuration error: `FILE:LINE:COL: message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: String,
    pub line: usize,
    pub col: usize,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: {}", self.file, self.line, self.col, self.message)
    }
}

/// All errors found in a configuration, one per line when displayed.
#[derive(Debug, Clone)]
pub struct Errors(pub Vec<Diagnostic>);

impl fmt::Display for Errors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}
impl std::error::Error for Errors {}

/// Component kinds, by their top-level table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Source,
    Transform,
    Sink,
}

impl Kind {
    pub fn table(self) -> &'static str {
        match self {
            Kind::Source => "sources",
            Kind::Transform => "transforms",
            Kind::Sink => "sinks",
        }
    }
}

/// A reference to another component's output: `name` or `name.output`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Input {
    pub component: String,
    pub output: Option<String>,
}

impl fmt::Display for Input {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.output {
            Some(o) => write!(f, "{}.{}", self.component, o),
            None => f.write_str(&self.component),
        }
    }
}

/// One `[sources.NAME]`, `[transforms.NAME]` or `[sinks.NAME]` table.
#[derive(Debug, Clone)]
pub struct Component {
    pub kind: Kind,
    pub name: String,
    pub type_name: String,
    pub inputs: Vec<Input>,
    /// Override of the input edge's buffer, in batches.
    pub buffer_batches: Option<usize>,
    /// Threads running a transform that can run on several (`workers`); None: the
    /// default (every core for such stages, one for the others).
    pub workers: Option<usize>,
    /// A sink's `buffer` table, decoded by the pipeline (`sluice_sinks::buffer`).
    pub buffer: Option<toml::Value>,
    /// The component's own options (everything but `type`, `inputs`, `buffer_batches`,
    /// `workers`, `buffer`),
    /// with environment variables interpolated.
    pub options: toml::Table,
}

/// `[api]`: the admin HTTP API.
#[derive(Debug, Clone, PartialEq, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    /// Listen address. Loopback unless configured otherwise.
    pub address: String,
    /// Serve the API at all (`false`: no listener).
    pub enabled: bool,
    /// Bearer token required on every request when set (use `${ENV_VAR}`).
    pub token: Option<String>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig { address: "127.0.0.1:9598".into(), enabled: true, token: None }
    }
}

/// `[pipeline]`: batching and buffering.
#[derive(Debug, Clone, PartialEq, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct PipelineConfig {
    /// Most events per batch.
    pub batch_max_events: usize,
    /// Most raw bytes read per batch (`"1MiB"`, or a number of bytes).
    pub batch_max_bytes: units::ByteSize,
    /// Capacity of each edge between components, in batches (memory bound).
    pub buffer_batches: usize,
    /// Capacity of each edge between components, in bytes of events (estimated: raw
    /// bytes, the event and its fields). With `buffer_batches` it bounds memory whatever
    /// the size of the events; a single larger batch passes alone.
    pub buffer_bytes: units::ByteSize,
    /// How long a SIGTERM/SIGINT drain may take before sluice gives up (the unacknowledged
    /// input is then read again at the next start).
    pub drain_timeout: units::Duration,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            batch_max_events: 2048,
            batch_max_bytes: units::ByteSize(1 << 20),
            buffer_batches: 4,
            buffer_bytes: units::ByteSize(2 << 20),
            drain_timeout: units::Duration::from_secs(30),
        }
    }
}

/// A loaded and structurally valid configuration.
#[derive(Debug)]
pub struct Config {
    pub data_dir: PathBuf,
    pub api: ApiConfig,
    pub pipeline: PipelineConfig,
    /// Components in file order: sources, then transforms, then sinks.
    pub components: Vec<Component>,
    /// `[[tests]]`, run by `sluice test` (ignored by `sluice run`).
    pub tests: Vec<cases::TestCase>,
    file: String,
    text: String,
    spans: SpanIndex,
}

const TOP_KEYS: [&str; 7] = ["data_dir", "api", "pipeline", "sources", "transforms", "sinks", "tests"];

impl Config {
    /// Parse and check a configuration. `env` resolves `${VAR}` references.
    pub fn parse(file: &str, text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, Errors> {
        let (root, mut cfg) = Config::read(file, text)?;
        let mut errors = Vec::new();
        let root = match interpolate::interpolate_table(root, &mut Vec::new(), env) {
            Ok(t) => t,
            Err(errs) => {
                for (path, msg) in errs {
                    errors.push(cfg.diag_value(&path, msg));
                }
                return Err(Errors(errors));
            }
        };
        for (key, value) in root {
            let path = vec![PathSeg::Key(key.clone())];
            match key.as_str() {
                "data_dir" => match value {
                    toml::Value::String(s) => cfg.data_dir = PathBuf::from(s),
                    other => errors.push(cfg.diag_value(
                        &path,
                        format!("`data_dir`: expected a string (a directory path), found {}", other.type_str()),
                    )),
                },
                "api" => match cfg.decode_at::<ApiConfig>(&path, value) {
                    Ok(a) => cfg.api = a,
                    Err(d) => errors.push(d),
                },
                "pipeline" => match cfg.decode_at::<PipelineConfig>(&path, value) {
                    Ok(p) => cfg.pipeline = p,
                    Err(d) => errors.push(d),
                },
                "tests" => match cfg.read_tests(&path, value) {
                    Ok(t) => cfg.tests = t,
                    Err(d) => errors.push(d),
                },
                "sources" | "transforms" | "sinks" => {
                    let kind = match key.as_str() {
                        "sources" => Kind::Source,
                        "transforms" => Kind::Transform,
                        _ => Kind::Sink,
                    };
                    cfg.read_components(kind, value, &mut errors);
                }
                _ => errors
                    .push(cfg.diag_key(&path, format!("unknown key `{key}`, expected one of {}", list(&TOP_KEYS)))),
            }
        }
        cfg.components.sort_by_key(|c| match c.kind {
            Kind::Source => 0,
            Kind::Transform => 1,
            Kind::Sink => 2,
        });
        if errors.is_empty() {
            graph::check(&cfg, &mut errors);
        }
        for (i, t) in cfg.tests.iter().enumerate() {
            let known = cfg.components.iter().any(|c| c.name == t.input.component && c.kind != Kind::Sink);
            if !known {
                let p = [
                    PathSeg::Key("tests".into()),
                    PathSeg::Index(i),
                    PathSeg::Key("input".into()),
                    PathSeg::Key("component".into()),
                ];
                errors.push(cfg.diag_value(
                    &p,
                    format!(
                        "`tests[{i}].input.component`: `{}` is not a source or transform of this configuration",
                        t.input.component
                    ),
                ));
            }
        }
        if errors.is_empty() {
            Ok(cfg)
        } else {
            Err(Errors(errors))
        }
    }

    /// The TOML document and an empty configuration that locates its keys.
    fn read(file: &str, text: &str) -> Result<(toml::Table, Config), Errors> {
        let (root, spans) = match spans::parse(text) {
            Ok(x) => x,
            Err((msg, span)) => {
                let (line, col) = line_col(text, span.start);
                return Err(Errors(vec![Diagnostic { file: file.into(), line, col, message: msg }]));
            }
        };
        let cfg = Config {
            data_dir: PathBuf::from(".sluice-data"),
            api: ApiConfig::default(),
            pipeline: PipelineConfig::default(),
            components: Vec::new(),
            tests: Vec::new(),
            file: file.into(),
            text: text.into(),
            spans,
        };
        Ok((root, cfg))
    }

    /// Read `[[tests]]` from a file of its own (`sluice test --tests FILE`): only
    /// `tests` may be there.
    pub fn parse_tests(
        file: &str,
        text: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Vec<cases::TestCase>, Errors> {
        let (root, cfg) = Config::read(file, text)?;
        let root = interpolate::interpolate_table(root, &mut Vec::new(), env)
            .map_err(|errs| Errors(errs.into_iter().map(|(p, m)| cfg.diag_value(&p, m)).collect()))?;
        let mut tests = Vec::new();
        let mut errors = Vec::new();
        for (key, value) in root {
            let path = vec![PathSeg::Key(key.clone())];
            match key.as_str() {
                "tests" => match cfg.read_tests(&path, value) {
                    Ok(t) => tests = t,
                    Err(d) => errors.push(d),
                },
                _ => errors.push(cfg.diag_key(&path, format!("unknown key `{key}`, expected `[[tests]]` only"))),
            }
        }
        if errors.is_empty() {
            Ok(tests)
        } else {
            Err(Errors(errors))
        }
    }

    fn read_tests(&self, path: &[PathSeg], value: toml::Value) -> Result<Vec<cases::TestCase>, Diagnostic> {
        let mut tests: Vec<cases::TestCase> = self.decode_at(path, value)?;
        for (i, t) in tests.iter_mut().enumerate() {
            let p = [PathSeg::Key("tests".into()), PathSeg::Index(i), PathSeg::Key("name".into())];
            let (line, _) = self.locate(&p, true);
            t.location = format!("{}:{line}", self.file);
            let bad = match (&t.expect, t.expect_none) {
                (Some(_), true) => Some("has both `expect` and `expect_none = true`: give one"),
                (None, false) => Some("needs `expect = [{ field = value, … }, …]` or `expect_none = true`"),
                _ => None,
            };
            if let Some(why) = bad {
                return Err(self.diag_key(&p[..2], format!("`tests[{i}]` (\"{}\") {why}", t.name)));
            }
        }
        Ok(tests)
    }

    fn read_components(&mut self, kind: Kind, value: toml::Value, errors: &mut Vec<Diagnostic>) {
        let tpath = vec![PathSeg::Key(kind.table().into())];
        let toml::Value::Table(table) = value else {
            errors.push(self.diag_value(&tpath, format!("`{}`: expected a table of named components", kind.table())));
            return;
        };
        for (name, body) in table {
            let path = vec![PathSeg::Key(kind.table().into()), PathSeg::Key(name.clone())];
            let dotted = format!("{}.{}", kind.table(), name);
            if name.is_empty() || name.contains('.') {
                errors.push(
                    self.diag_key(&path, format!("`{dotted}`: component names must be non-empty and contain no `.`")),
                );
                continue;
            }
            let toml::Value::Table(mut options) = body else {
                errors.push(self.diag_value(&path, format!("`{dotted}`: expected a table")));
                continue;
            };
            let type_name = match options.remove("type") {
                Some(toml::Value::String(t)) => t,
                Some(other) => {
                    let mut p = path.clone();
                    p.push(PathSeg::Key("type".into()));
                    errors.push(
                        self.diag_value(&p, format!("`{dotted}.type`: expected a string, found {}", other.type_str())),
                    );
                    continue;
                }
                None => {
                    errors.push(self.diag_key(
                        &path,
                        format!("`{dotted}`: missing key `type` (the component type, e.g. type = \"file\")"),
                    ));
                    continue;
                }
            };
            let mut inputs = Vec::new();
            match options.remove("inputs") {
                None => {}
                Some(v) if kind == Kind::Source => {
                    let _ = v;
                    let mut p = path.clone();
                    p.push(PathSeg::Key("inputs".into()));
                    errors.push(self.diag_key(&p, format!("`{dotted}.inputs`: sources take no inputs")));
                }
                Some(toml::Value::Array(items)) => {
                    for (i, item) in items.into_iter().enumerate() {
                        let mut p = path.clone();
                        p.push(PathSeg::Key("inputs".into()));
                        p.push(PathSeg::Index(i));
                        match item {
                            toml::Value::String(s) => {
                                let (component, output) = match s.split_once('.') {
                                    Some((c, o)) => (c.to_string(), Some(o.to_string())),
                                    None => (s.clone(), None),
                                };
                                inputs.push((p, Input { component, output }));
                            }
                            other => errors.push(self.diag_value(
                                &p,
                                format!(
                                    "`{dotted}.inputs[{i}]`: expected a component name (string), found {}",
                                    other.type_str()
                                ),
                            )),
                        }
                    }
                }
                Some(other) => {
                    let mut p = path.clone();
                    p.push(PathSeg::Key("inputs".into()));
                    errors.push(self.diag_value(
                        &p,
                        format!("`{dotted}.inputs`: expected an array of component names, found {}", other.type_str()),
                    ));
                }
            }
            // `buffer_batches` and `workers`: positive integers (`refused`: not taken here).
            let mut positive = |options: &mut toml::Table, key: &str, refused: Option<String>| {
                let v = options.remove(key)?;
                let msg = match (v, refused) {
                    (_, Some(why)) => why,
                    (toml::Value::Integer(n), None) if n > 0 => return Some(n as usize),
                    _ => format!("`{dotted}.{key}`: expected a positive integer"),
                };
                let mut p = path.clone();
                p.push(PathSeg::Key(key.into()));
                errors.push(self.diag_value(&p, msg));
                None
            };
            let buffer_batches = positive(&mut options, "buffer_batches", None);
            let workers = positive(
                &mut options,
                "workers",
                (kind != Kind::Transform).then(|| format!("`{dotted}.workers`: only transforms take `workers`")),
            );
            let buffer = options.remove("buffer");
            if buffer.is_some() && kind != Kind::Sink {
                let mut p = path.clone();
                p.push(PathSeg::Key("buffer".into()));
                errors.push(self.diag_key(&p, format!("`{dotted}.buffer`: only sinks take `buffer`")));
            }
            self.components.push(Component {
                kind,
                name,
                type_name,
                inputs: inputs.into_iter().map(|(_, i)| i).collect(),
                buffer_batches,
                workers,
                buffer,
                options,
            });
        }
    }

    /// Decode a component's options into its typed config. Unknown keys, missing keys
    /// and wrong types come back located at the offending key or value.
    pub fn decode<T: DeserializeOwned>(&self, c: &Component) -> Result<T, Diagnostic> {
        self.decode_at(&component_path(c), toml::Value::Table(c.options.clone()))
    }

    /// Decode the value of a component's option `key` (taken out of its options, as
    /// `buffer`) into its typed config; errors are located like [`Config::decode`]'s.
    pub fn decode_option<T: DeserializeOwned>(
        &self,
        c: &Component,
        key: &str,
        value: toml::Value,
    ) -> Result<T, Diagnostic> {
        let mut p = component_path(c);
        p.push(PathSeg::Key(key.into()));
        self.decode_at(&p, value)
    }

    fn decode_at<T: DeserializeOwned>(&self, base: &[PathSeg], value: toml::Value) -> Result<T, Diagnostic> {
        serde_path_to_error::deserialize::<_, T>(value).map_err(|e| {
            let mut path = base.to_vec();
            for seg in e.path().iter() {
                match seg {
                    serde_path_to_error::Segment::Map { key } => path.push(PathSeg::Key(key.clone())),
                    serde_path_to_error::Segment::Seq { index } => path.push(PathSeg::Index(*index)),
                    _ => {}
                }
            }
            let inner = e.into_inner().message().to_string();
            let inner = inner.trim_end().to_string();
            let msg = format!("`{}`: {}", spans::dotted(&path), inner);
            if inner.starts_with("unknown field") || inner.starts_with("missing field") {
                self.diag_key(
                    &path,
                    msg.replacen("unknown field", "unknown key", 1).replacen("missing field", "missing key", 1),
                )
            } else {
                self.diag_value(&path, msg)
            }
        })
    }

    /// A diagnostic located at a component's `type` value (for unknown types).
    pub fn error_at_type(&self, c: &Component, message: impl Into<String>) -> Diagnostic {
        let mut p = component_path(c);
        p.push(PathSeg::Key("type".into()));
        self.diag_value(&p, message.into())
    }

    /// A diagnostic located at a component option `key` (dotted for nested options,
    /// `tail.window`, `rules[2].rate`), or its nearest ancestor present in the file.
    pub fn error_at_option(&self, c: &Component, key: &str, message: impl Into<String>) -> Diagnostic {
        let mut p = component_path(c);
        p.extend(spans::parse_dotted(key));
        self.diag_value(&p, message.into())
    }

    fn locate(&self, path: &[PathSeg], prefer_key: bool) -> (usize, usize) {
        let off = self.spans.locate(path, prefer_key);
        line_col(&self.text, off)
    }

    fn diag_key(&self, path: &[PathSeg], message: String) -> Diagnostic {
        let (line, col) = self.locate(path, true);
        Diagnostic { file: self.file.clone(), line, col, message }
    }

    fn diag_value(&self, path: &[PathSeg], message: String) -> Diagnostic {
        let (line, col) = self.locate(path, false);
        Diagnostic { file: self.file.clone(), line, col, message }
    }

    /// `FILE` as given to [`Config::parse`].
    pub fn file(&self) -> &str {
        &self.file
    }

    pub fn component(&self, name: &str) -> Option<&Component> {
        self.components.iter().find(|c| c.name == name)
    }
}

fn component_path(c: &Component) -> Vec<PathSeg> {
    vec![PathSeg::Key(c.kind.table().into()), PathSeg::Key(c.name.clone())]
}

/// 1-based line and column (in characters) of byte offset `off`.
pub fn line_col(text: &str, off: usize) -> (usize, usize) {
    let off = off.min(text.len());
    let before = &text.as_bytes()[..off];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let line_start = before.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
    let col = String::from_utf8_lossy(&before[line_start..]).chars().count() + 1;
    (line, col)
}

/// "`a`, `b` or `c`"
pub fn list(items: &[&str]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| format!("`{s}`")).collect();
    match quoted.len() {
        0 => String::new(),
        1 => quoted[0].clone(),
        n => format!("{} or {}", quoted[..n - 1].join(", "), quoted[n - 1]),
    }
}

/// A problem with one component option, found when building the component; the
/// pipeline reports it at the option's line and column. `key` is the option's path
/// inside the component, dotted for nested options (`tail.window`, `rules[2].rate`).
#[derive(Debug, Clone, thiserror::Error)]
#[error("`{key}`: {message}")]
pub struct OptionError {
    pub key: String,
    pub message: String,
}

impl OptionError {
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> OptionError {
        OptionError { key: key.into(), message: message.into() }
    }
}
