//! `blackhole`: counts and discards events (for benchmarks and dry runs).

use crate::{OptionError, Sink, SinkConfig, SinkContext, SinkError};
use serde::Deserialize;
use sluice_event::Batch;

#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BlackholeConfig {}

impl SinkConfig for BlackholeConfig {
    fn build(&self, _ctx: &SinkContext) -> Result<Box<dyn Sink>, OptionError> {
        Ok(Box::new(Blackhole { bytes: 0 }))
    }
}

struct Blackhole {
    bytes: u64,
}

impl Sink for Blackhole {
    fn write(&mut self, batch: &Batch) -> Result<(), SinkError> {
        self.bytes += batch.raw_bytes() as u64;
        Ok(())
    }
    fn flush(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
    fn bytes_written(&self) -> u64 {
        self.bytes
    }
}
