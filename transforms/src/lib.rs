//! sluice transforms: synchronous stages that take a batch and emit batches.
//!
//! A transform never blocks and never touches I/O, so it is tested with plain unit tests
//! (no tokio). The pipeline runs each transform on its own thread and moves the
//! acknowledgement tokens along with the batches (see `sluice_event::ack`).

pub mod enrich;
pub mod filter;
pub mod mask;
pub mod metrics;
pub mod parse;
pub mod regex;
pub mod sample;

use sluice_event::Batch;

/// Receives a transform's output batches. `output` is `None` for the default output, or
/// the name of a named output (`inputs = ["route.errors"]`).
pub trait Emit {
    fn emit(&mut self, output: Option<&str>, batch: Batch);
}

impl<F: FnMut(Option<&str>, Batch)> Emit for F {
    fn emit(&mut self, output: Option<&str>, batch: Batch) {
        self(output, batch)
    }
}

/// A running transform.
pub trait Transform: Send {
    /// Process one batch. Dropped events and parse failures are reported in the returned
    /// [`Outcome`] so the pipeline can count them.
    fn process(&mut self, batch: Batch, out: &mut dyn Emit) -> Outcome;
    /// Called when no more input will arrive: emit anything held back.
    fn finish(&mut self, _out: &mut dyn Emit) {}
    /// Named outputs besides the default one.
    fn outputs(&self) -> Vec<String> {
        Vec::new()
    }
    /// How often `tick` should run while no input arrives (for time-based stages).
    fn tick_interval(&self) -> Option<std::time::Duration> {
        None
    }
    /// Called periodically (see `tick_interval`): emit what became due.
    fn tick(&mut self, _out: &mut dyn Emit) {}
    /// Another instance of this stage, to process batches beside this one on another
    /// thread. `Some` only for stages whose output for a batch depends on that batch
    /// alone (no state carried from one batch to the next, no time-based output): the
    /// runtime then runs the stage on several workers (`workers`), keeping the order of
    /// its input.
    fn fork(&self) -> Option<Box<dyn Transform>> {
        None
    }
    /// A handle the runtime may act through while the stage runs (the admin API, flags,
    /// saved state). Asked once, after the build step.
    fn control(&self) -> Option<Control> {
        None
    }
}

/// A control handle a stage exposes to the runtime. The runtime collects them when it
/// builds the topology; nothing is global, so two pipelines in one process (tests)
/// never share a switch.
#[derive(Clone)]
pub enum Control {
    /// The incident switch of a `sample` stage.
    Sampling(std::sync::Arc<sample::Switch>),
}

/// What happened to one batch besides the events emitted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// Events dropped on purpose.
    pub dropped: u64,
    /// Why (a metric label, e.g. `parse_error`, `filtered`).
    pub reason: &'static str,
    /// Events that failed to parse (dropped or passed on with `parse_error`).
    pub errors: u64,
}

/// What a transform knows about where it runs.
#[derive(Debug, Clone, Default)]
pub struct TransformContext {
    /// The component name (`[transforms.NAME]`).
    pub name: String,
    /// Where stages keep state across restarts (documents under the config's
    /// `data_dir`); None in tests and tools that keep nothing.
    pub store: Option<sluice_event::store::Store>,
}

/// A config struct that builds a transform (without side effects beyond reading the
/// files it names).
pub trait TransformConfig {
    fn build(&self, ctx: &TransformContext) -> Result<Box<dyn Transform>, OptionError>;
    /// Settings the Prometheus exporter needs before any stage is built (stages register
    /// their metrics when built). Called for every stage before the build step.
    fn exporter_settings(&self, _settings: &mut ExporterSettings) {}
    /// Fields this stage declares personal data as a whole (the `mask` stage's
    /// `sensitive_fields`): no sink may put them in labels.
    fn sensitive_fields(&self) -> Vec<String> {
        Vec::new()
    }
}

/// Exporter settings stages declare before the pipeline is built.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ExporterSettings {
    /// Bucket bounds per histogram name (log-derived metrics).
    pub histogram_buckets: Vec<(String, Vec<f64>)>,
}

pub use sluice_config::OptionError;
