//! Source `stdin`: newline-delimited lines from standard input. At end of input the
//! source finishes, and the pipeline drains, flushes and exits 0.

use crate::framing::lines::{Line, LineSplitter};
use crate::{Source, SourceConfig, SourceContext};
use bytes::BytesMut;
use serde::Deserialize;
use sluice_config::OptionError;
use sluice_event::{Batch, Event, OriginInfo, Timestamp};
use std::io::Read;

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StdinSourceConfig {
    /// Longer lines are split into marked parts (`"1MiB"`, or a number of bytes).
    #[serde(default = "default_max_line")]
    pub max_line_bytes: sluice_config::units::ByteSize,
}

fn default_max_line() -> sluice_config::units::ByteSize {
    sluice_config::units::ByteSize(1 << 20)
}

impl SourceConfig for StdinSourceConfig {
    fn build(&self) -> Result<Box<dyn Source>, OptionError> {
        if self.max_line_bytes.bytes() < 16 {
            return Err(OptionError::new("max_line_bytes", "`max_line_bytes` must be at least 16"));
        }
        Ok(Box::new(StdinSource { max_line: self.max_line_bytes.as_usize() }))
    }
}

struct StdinSource {
    max_line: usize,
}

impl Source for StdinSource {
    fn run(self: Box<Self>, ctx: SourceContext) -> anyhow::Result<()> {
        let origin = OriginInfo::new(&ctx.name, None);
        let mut splitter = LineSplitter::new(self.max_line, 0);
        let mut stdin = std::io::stdin().lock();
        let chunk = ctx.limits.max_bytes.max(4096);
        let mut buf = BytesMut::new();
        ctx.stats.set_started();
        let send = |events: Vec<Event>| -> bool {
            if events.is_empty() {
                return true;
            }
            let n = events.len() as u64;
            let bytes = events.iter().map(|e| e.raw.len() as u64).sum();
            ctx.stats.events_in(n, bytes);
            let ok = ctx.out.send_blocking(Batch::new(events));
            if ok {
                ctx.stats.events_out(n);
            }
            ok
        };
        loop {
            if ctx.stopping() {
                break;
            }
            buf.clear();
            buf.resize(chunk, 0);
            let n = match stdin.read(&mut buf[..]) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            };
            buf.truncate(n);
            let ts = Timestamp::now();
            let mut events = Vec::new();
            let mut batches = Vec::new();
            splitter.push(buf.split().freeze(), &mut |l: Line| {
                events.push(l.into_event(ts, &origin));
                if events.len() >= ctx.limits.max_events {
                    batches.push(std::mem::take(&mut events));
                }
            });
            batches.push(events);
            for b in batches {
                if !send(b) {
                    return Ok(());
                }
            }
        }
        let mut events = Vec::new();
        splitter.finish(&mut |l: Line| events.push(l.into_event(Timestamp::now(), &origin)));
        send(events);
        tracing::info!(source = %ctx.name, "end of standard input");
        Ok(())
    }
}
