//! The component registry: one line per component type. Adding a component means
//! writing its module (config struct + build step) and adding its line here.

use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use sluice_config::{Component, Config, Diagnostic, Kind, OptionError};
use sluice_event::store::Store;
use sluice_sinks::{self as sinks, Sink, SinkConfig, SinkContext};
use sluice_sources::{self as sources, Source, SourceConfig};
use sluice_transforms::{self as transforms, ExporterSettings, Transform, TransformConfig, TransformContext};

type SourceBuilder = fn(&Config, &Component) -> Result<Box<dyn Source>, Diagnostic>;
type TransformBuilder = fn(&Config, &Component) -> Result<Box<dyn Transform>, Diagnostic>;
type SinkBuilder = fn(&Config, &Component) -> Result<Box<dyn Sink>, Diagnostic>;
type Settings = fn(&Config, &Component, &mut ExporterSettings);
type Sensitive = fn(&Config, &Component) -> Vec<String>;
type ExposedFields = fn(&Config, &Component) -> Vec<sinks::Exposed>;

/// One component type: its name in `type = "…"` and its build step.
pub struct Entry<B> {
    pub type_name: &'static str,
    pub build: B,
    /// What the stage declares before anything is built (transforms only).
    pub exporter_settings: Option<Settings>,
    /// The JSON schema of the config struct, with its doc comments (for the reference).
    pub schema: fn() -> schemars::Schema,
    /// Fields the stage declares sensitive (transforms), for the cross-component check.
    pub sensitive: Option<Sensitive>,
    /// Fields the sink puts in the clear (labels, object keys), for the same check.
    pub exposed: Option<ExposedFields>,
}

const fn source<T: DeserializeOwned + SourceConfig + JsonSchema>(type_name: &'static str) -> Entry<SourceBuilder> {
    Entry {
        type_name,
        build: build_source::<T>,
        exporter_settings: None,
        schema: schema::<T>,
        sensitive: None,
        exposed: None,
    }
}

const fn transform<T: DeserializeOwned + TransformConfig + JsonSchema>(
    type_name: &'static str,
) -> Entry<TransformBuilder> {
    Entry {
        type_name,
        build: build_transform::<T>,
        exporter_settings: Some(settings::<T>),
        schema: schema::<T>,
        sensitive: Some(sensitive::<T>),
        exposed: None,
    }
}

const fn sink<T: DeserializeOwned + SinkConfig + JsonSchema>(type_name: &'static str) -> Entry<SinkBuilder> {
    Entry {
        type_name,
        build: build_sink::<T>,
        exporter_settings: None,
        schema: schema::<T>,
        sensitive: None,
        exposed: Some(exposed::<T>),
    }
}

fn schema<T: JsonSchema>() -> schemars::Schema {
    schemars::schema_for!(T)
}

pub const SOURCES: &[Entry<SourceBuilder>] = &[
    source::<sources::file::FileSourceConfig>("file"),
    source::<sources::stdin::StdinSourceConfig>("stdin"),
    source::<sources::syslog::SyslogSourceConfig>("syslog"),
    source::<sources::kafka::KafkaSourceConfig>("kafka"),
];

pub const TRANSFORMS: &[Entry<TransformBuilder>] = &[
    transform::<transforms::parse::ParseConfig>("parse"),
    transform::<transforms::regex::RegexConfig>("regex"),
    transform::<transforms::filter::FilterConfig>("filter"),
    transform::<transforms::filter::RouteConfig>("route"),
    transform::<transforms::mask::MaskConfig>("mask"),
    transform::<transforms::enrich::EnrichConfig>("enrich"),
    transform::<transforms::sample::SampleConfig>("sample"),
    transform::<transforms::metrics::MetricsConfig>("metrics"),
];

/// Transform types that run on several workers (those whose `Transform::fork` gives an
/// instance; a test below checks the list against every stage).
pub const PARALLEL: &[&str] = &["filter", "mask", "regex", "route"];

pub const SINKS: &[Entry<SinkBuilder>] = &[
    sink::<sinks::file::FileSinkConfig>("file"),
    sink::<sinks::console::ConsoleConfig>("console"),
    sink::<sinks::blackhole::BlackholeConfig>("blackhole"),
    sink::<sinks::loki::LokiSinkConfig>("loki"),
    sink::<sinks::s3::S3SinkConfig>("s3"),
];

fn located(cfg: &Config, c: &Component, e: OptionError) -> Diagnostic {
    cfg.error_at_option(c, &e.key, format!("`{}.{}.{}`: {}", c.kind.table(), c.name, e.key, e.message))
}

fn build_source<T: DeserializeOwned + SourceConfig>(
    cfg: &Config,
    c: &Component,
) -> Result<Box<dyn Source>, Diagnostic> {
    let t: T = cfg.decode(c)?;
    t.build().map_err(|e| located(cfg, c, e))
}

fn build_transform<T: DeserializeOwned + TransformConfig>(
    cfg: &Config,
    c: &Component,
) -> Result<Box<dyn Transform>, Diagnostic> {
    let t: T = cfg.decode(c)?;
    let ctx = TransformContext { name: c.name.clone(), store: Some(Store::new(&cfg.data_dir)) };
    t.build(&ctx).map_err(|e| located(cfg, c, e))
}

fn settings<T: DeserializeOwned + TransformConfig>(cfg: &Config, c: &Component, out: &mut ExporterSettings) {
    // A config that does not decode is reported by the build step.
    if let Ok(t) = cfg.decode::<T>(c) {
        t.exporter_settings(out);
    }
}

fn sensitive<T: DeserializeOwned + TransformConfig>(cfg: &Config, c: &Component) -> Vec<String> {
    cfg.decode::<T>(c).map(|t| t.sensitive_fields()).unwrap_or_default()
}

fn exposed<T: DeserializeOwned + SinkConfig>(cfg: &Config, c: &Component) -> Vec<sinks::Exposed> {
    cfg.decode::<T>(c).map(|t| t.exposed_fields()).unwrap_or_default()
}

fn build_sink<T: DeserializeOwned + SinkConfig>(cfg: &Config, c: &Component) -> Result<Box<dyn Sink>, Diagnostic> {
    let t: T = cfg.decode(c)?;
    t.build(&SinkContext { name: c.name.clone(), data_dir: cfg.data_dir.clone() }).map_err(|e| located(cfg, c, e))
}

/// What the components of `cfg` declare for the exporter, before anything is built.
pub fn exporter_settings(cfg: &Config) -> ExporterSettings {
    let mut out = ExporterSettings::default();
    for c in cfg.components.iter().filter(|c| c.kind == Kind::Transform) {
        if let Some(f) = lookup(TRANSFORMS, &c.type_name).and_then(|e| e.exporter_settings) {
            f(cfg, c, &mut out);
        }
    }
    out
}

/// A built, not yet running component.
pub enum Built {
    Source(Box<dyn Source>),
    Transform(Box<dyn Transform>),
    /// The sink and what its input waits in.
    Sink(Box<dyn Sink>, sinks::buffer::BufferConfig),
}

fn lookup<'a, B>(table: &'a [Entry<B>], name: &str) -> Option<&'a Entry<B>> {
    table.iter().find(|e| e.type_name == name)
}

fn names<B>(table: &[Entry<B>]) -> Vec<&'static str> {
    table.iter().map(|e| e.type_name).collect()
}

fn unknown_type(cfg: &Config, c: &Component, known: Vec<&str>) -> Diagnostic {
    cfg.error_at_type(
        c,
        format!(
            "`{}.{}.type`: unknown {} type `{}`, expected one of {}",
            c.kind.table(),
            c.name,
            match c.kind {
                Kind::Source => "source",
                Kind::Transform => "transform",
                Kind::Sink => "sink",
            },
            c.type_name,
            sluice_config::list(&known)
        ),
    )
}

/// A sink's `buffer` option (memory by default).
fn sink_buffer(cfg: &Config, c: &Component) -> Result<sinks::buffer::BufferConfig, Diagnostic> {
    let Some(v) = &c.buffer else { return Ok(Default::default()) };
    let b: sinks::buffer::BufferConfig = cfg.decode_option(c, "buffer", v.clone())?;
    b.check().map_err(|(key, msg)| {
        cfg.error_at_option(c, &format!("buffer.{key}"), format!("`sinks.{}.buffer.{key}`: {msg}", c.name))
    })?;
    Ok(b)
}

/// Build one component from its config (no side effects).
pub fn build(cfg: &Config, c: &Component) -> Result<Built, Diagnostic> {
    match c.kind {
        Kind::Source => match lookup(SOURCES, &c.type_name) {
            Some(e) => (e.build)(cfg, c).map(Built::Source),
            None => Err(unknown_type(cfg, c, names(SOURCES))),
        },
        Kind::Transform => match lookup(TRANSFORMS, &c.type_name) {
            Some(e) => {
                let t = (e.build)(cfg, c)?;
                if c.workers.is_some_and(|w| w > 1) && t.fork().is_none() {
                    return Err(cfg.error_at_option(
                        c,
                        "workers",
                        format!(
                            "`transforms.{}.workers`: a `{}` stage carries state from one batch to the next and runs on one worker (stages that take `workers`: {})",
                            c.name,
                            c.type_name,
                            PARALLEL.join(", ")
                        ),
                    ));
                }
                Ok(Built::Transform(t))
            }
            None => Err(unknown_type(cfg, c, names(TRANSFORMS))),
        },
        Kind::Sink => match lookup(SINKS, &c.type_name) {
            Some(e) => {
                let buffer = sink_buffer(cfg, c)?;
                (e.build)(cfg, c).map(|s| Built::Sink(s, buffer))
            }
            None => Err(unknown_type(cfg, c, names(SINKS))),
        },
    }
}

/// Build every component; collect all errors.
pub fn build_all(cfg: &Config) -> Result<Vec<(Component, Built)>, Vec<Diagnostic>> {
    let mut out = Vec::new();
    let mut errs = Vec::new();
    for c in &cfg.components {
        match build(cfg, c) {
            Ok(b) => out.push((c.clone(), b)),
            Err(d) => errs.push(d),
        }
    }
    // Named outputs must exist on the component they refer to.
    if errs.is_empty() {
        for c in &cfg.components {
            for (i, input) in c.inputs.iter().enumerate() {
                let Some(out_name) = &input.output else { continue };
                let producer = out.iter().find(|(p, _)| p.name == input.component);
                let outputs = match producer {
                    Some((_, Built::Transform(t))) => t.outputs(),
                    _ => Vec::new(),
                };
                if !outputs.iter().any(|o| o == out_name) {
                    errs.push(cfg.error_at_option(
                        c,
                        "inputs",
                        format!(
                            "`{}.{}.inputs[{i}]`: `{}` has no output named `{out_name}`",
                            c.kind.table(),
                            c.name,
                            input.component
                        ),
                    ));
                }
            }
        }
    }
    // Labels and object keys never carry a field a stage declared sensitive.
    if errs.is_empty() {
        let mut sensitive: Vec<(String, &str)> = Vec::new();
        for c in cfg.components.iter().filter(|c| c.kind == Kind::Transform) {
            if let Some(f) = lookup(TRANSFORMS, &c.type_name).and_then(|e| e.sensitive) {
                sensitive.extend(f(cfg, c).into_iter().map(|field| (field, c.name.as_str())));
            }
        }
        for c in cfg.components.iter().filter(|c| c.kind == Kind::Sink) {
            let Some(f) = lookup(SINKS, &c.type_name).and_then(|e| e.exposed) else { continue };
            for e in f(cfg, c) {
                if let Some((_, stage)) = sensitive.iter().find(|(s, _)| *s == e.field) {
                    errs.push(cfg.error_at_option(
                        c,
                        &e.option,
                        format!(
                            "`{}.{}.{}`: `{}` is marked sensitive by `transforms.{stage}`; {}",
                            c.kind.table(),
                            c.name,
                            e.option,
                            e.field,
                            e.advice
                        ),
                    ));
                }
            }
        }
    }
    if errs.is_empty() {
        Ok(out)
    } else {
        Err(errs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `PARALLEL` names exactly the transform types whose built stage forks.
    #[test]
    fn parallel_lists_the_stages_that_fork() {
        let options = |t: &str| match t {
            "parse" => "format = \"json\"",
            "regex" => "pattern = \"(?P<a>x)\"",
            "filter" => "when = { level = \"error\" }",
            "route" => "route.e = { level = \"error\" }",
            "enrich" => "fields = { a = \"b\" }",
            "sample" => "rate = 10",
            "metrics" => "[[transforms.t.counter]]\nname = \"x_total\"\nhelp = \"h\"",
            _ => "",
        };
        let dir = tempfile::tempdir().unwrap();
        for e in TRANSFORMS {
            let text = format!(
                "data_dir = \"{}\"\n[sources.s]\ntype = \"stdin\"\n[transforms.t]\ntype = \"{}\"\ninputs = [\"s\"]\n{}\n[sinks.o]\ntype = \"blackhole\"\ninputs = [\"t\"]\n",
                dir.path().display(),
                e.type_name,
                options(e.type_name)
            );
            let cfg =
                Config::parse("t.toml", &text, &|_| None).unwrap_or_else(|err| panic!("{}: {err:?}", e.type_name));
            let c = cfg.components.iter().find(|c| c.name == "t").unwrap();
            let t = (e.build)(&cfg, c).unwrap_or_else(|d| panic!("{}: {d:?}", e.type_name));
            assert_eq!(t.fork().is_some(), PARALLEL.contains(&e.type_name), "{}", e.type_name);
        }
    }
}
