//! The component registry: one line per component type. Adding a component means
//! writing its module (config struct + build step) and adding its line here.

use crate::sources::{self, Source, SourceConfig};
use serde::de::DeserializeOwned;
use sluice_config::{Component, Config, Diagnostic, Kind, OptionError};
use sluice_sinks::{self as sinks, Sink, SinkConfig, SinkContext};
use sluice_transforms::{Transform, TransformConfig};

type SourceBuilder = fn(&Config, &Component) -> Result<Box<dyn Source>, Diagnostic>;
type TransformBuilder = fn(&Config, &Component) -> Result<Box<dyn Transform>, Diagnostic>;
type SinkBuilder = fn(&Config, &Component) -> Result<Box<dyn Sink>, Diagnostic>;

pub const SOURCES: &[(&str, SourceBuilder)] =
    &[("file", source::<sources::file::FileSourceConfig>), ("stdin", source::<sources::stdin::StdinSourceConfig>)];

pub const TRANSFORMS: &[(&str, TransformBuilder)] = &[
    ("parse", transform::<sluice_transforms::parse::ParseConfig>),
    ("regex", transform::<sluice_transforms::regex::RegexConfig>),
    ("filter", transform::<sluice_transforms::filter::FilterConfig>),
    ("route", transform::<sluice_transforms::filter::RouteConfig>),
    ("mask", transform::<sluice_transforms::mask::MaskConfig>),
    ("enrich", transform::<sluice_transforms::enrich::EnrichConfig>),
    ("sample", transform::<sluice_transforms::sample::SampleConfig>),
    ("metrics", transform::<sluice_transforms::metrics::MetricsConfig>),
];

pub const SINKS: &[(&str, SinkBuilder)] = &[
    ("file", sink::<sinks::file::FileSinkConfig>),
    ("console", sink::<sinks::console::ConsoleConfig>),
    ("blackhole", sink::<sinks::blackhole::BlackholeConfig>),
];

fn located(cfg: &Config, c: &Component, e: OptionError) -> Diagnostic {
    cfg.error_at_option(c, e.key, format!("`{}.{}.{}`: {}", c.kind.table(), c.name, e.key, e.message))
}

fn source<T: DeserializeOwned + SourceConfig>(cfg: &Config, c: &Component) -> Result<Box<dyn Source>, Diagnostic> {
    let t: T = cfg.decode(c)?;
    t.build().map_err(|e| located(cfg, c, e))
}

fn transform<T: DeserializeOwned + TransformConfig>(
    cfg: &Config,
    c: &Component,
) -> Result<Box<dyn Transform>, Diagnostic> {
    let t: T = cfg.decode(c)?;
    t.build(&sluice_transforms::TransformContext { name: c.name.clone(), data_dir: Some(cfg.data_dir.clone()) })
        .map_err(|e| located(cfg, c, e))
}

fn sink<T: DeserializeOwned + SinkConfig>(cfg: &Config, c: &Component) -> Result<Box<dyn Sink>, Diagnostic> {
    let t: T = cfg.decode(c)?;
    t.build(&SinkContext { name: c.name.clone() }).map_err(|e| located(cfg, c, e))
}

/// A built, not yet running component.
pub enum Built {
    Source(Box<dyn Source>),
    Transform(Box<dyn Transform>),
    Sink(Box<dyn Sink>),
}

fn lookup<T: Copy>(table: &[(&str, T)], name: &str) -> Option<T> {
    table.iter().find(|(n, _)| *n == name).map(|(_, b)| *b)
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

/// Build one component from its config (no side effects).
pub fn build(cfg: &Config, c: &Component) -> Result<Built, Diagnostic> {
    match c.kind {
        Kind::Source => match lookup(SOURCES, &c.type_name) {
            Some(b) => b(cfg, c).map(Built::Source),
            None => Err(unknown_type(cfg, c, SOURCES.iter().map(|x| x.0).collect())),
        },
        Kind::Transform => match lookup(TRANSFORMS, &c.type_name) {
            Some(b) => b(cfg, c).map(Built::Transform),
            None => Err(unknown_type(cfg, c, TRANSFORMS.iter().map(|x| x.0).collect())),
        },
        Kind::Sink => match lookup(SINKS, &c.type_name) {
            Some(b) => b(cfg, c).map(Built::Sink),
            None => Err(unknown_type(cfg, c, SINKS.iter().map(|x| x.0).collect())),
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
    if errs.is_empty() {
        Ok(out)
    } else {
        Err(errs)
    }
}
