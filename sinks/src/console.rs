//! `console`: NDJSON on standard output.

use crate::{OptionError, Sink, SinkConfig, SinkContext, SinkError};
use serde::Deserialize;
use sluice_event::{ndjson::Encoder, Batch};
use std::io::Write;

#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsoleConfig {}

impl SinkConfig for ConsoleConfig {
    fn build(&self, _ctx: &SinkContext) -> Result<Box<dyn Sink>, OptionError> {
        Ok(Box::new(Console { enc: Encoder::new(), buf: Vec::with_capacity(1 << 20), bytes: 0 }))
    }
}

struct Console {
    enc: Encoder,
    buf: Vec<u8>,
    bytes: u64,
}

impl Sink for Console {
    fn write(&mut self, batch: &Batch) -> Result<(), SinkError> {
        self.buf.clear();
        for e in &batch.events {
            self.enc.encode_event(&mut self.buf, e);
        }
        let mut out = std::io::stdout().lock();
        out.write_all(&self.buf)?;
        self.bytes += self.buf.len() as u64;
        Ok(())
    }
    fn flush(&mut self) -> Result<(), SinkError> {
        std::io::stdout().lock().flush()?;
        Ok(())
    }
    fn bytes_written(&self) -> u64 {
        self.bytes
    }
}
