//! `file`: NDJSON files. `path` may contain `{date}` (the event's UTC date, YYYY-MM-DD)
//! and `{source}` (the name of the source component the event came from).
//!
//! Each batch is encoded into one buffer per target file and written with one
//! `write_all`; `flush` pushes data to the operating system (it survives a crash of
//! sluice) and, with `fsync = true`, to the disk (it survives a power loss) before the
//! batch is acknowledged.

use crate::{OptionError, Sink, SinkConfig, SinkContext, SinkError};
use serde::Deserialize;
use sluice_event::{ndjson::Encoder, Batch, Event};
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileSinkConfig {
    /// Output path; may contain `{date}` and `{source}`.
    pub path: String,
    /// fsync before acknowledging (default false: data is handed to the OS).
    #[serde(default)]
    pub fsync: bool,
    /// Most files kept open at once (for `{date}`/`{source}` paths).
    #[serde(default = "default_max_open")]
    pub max_open_files: usize,
}

fn default_max_open() -> usize {
    64
}

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Lit(String),
    Date,
    Source,
}

fn parse_template(t: &str) -> Result<Vec<Part>, String> {
    let mut parts = Vec::new();
    let mut rest = t;
    while let Some(i) = rest.find('{') {
        if i > 0 {
            parts.push(Part::Lit(rest[..i].to_string()));
        }
        let end = rest[i..].find('}').ok_or_else(|| format!("unclosed `{{` in path \"{t}\""))? + i;
        match &rest[i + 1..end] {
            "date" => parts.push(Part::Date),
            "source" => parts.push(Part::Source),
            other => {
                return Err(format!(
                    "unknown placeholder `{{{other}}}` in path \"{t}\", expected `{{date}}` or `{{source}}`"
                ))
            }
        }
        rest = &rest[end + 1..];
    }
    if !rest.is_empty() {
        parts.push(Part::Lit(rest.to_string()));
    }
    Ok(parts)
}

impl SinkConfig for FileSinkConfig {
    fn build(&self, _ctx: &SinkContext) -> Result<Box<dyn Sink>, OptionError> {
        if self.path.trim().is_empty() {
            return Err(OptionError::new("path", "`path` must not be empty"));
        }
        let template = parse_template(&self.path).map_err(|m| OptionError::new("path", m))?;
        Ok(Box::new(FileSink {
            template,
            fsync: self.fsync,
            max_open: self.max_open_files.max(1),
            open: HashMap::new(),
            enc: Encoder::new(),
            buf: Vec::with_capacity(1 << 20),
            bytes: 0,
            dirty: Vec::new(),
        }))
    }
}

struct FileSink {
    template: Vec<Part>,
    fsync: bool,
    max_open: usize,
    open: HashMap<PathBuf, File>,
    enc: Encoder,
    buf: Vec<u8>,
    bytes: u64,
    dirty: Vec<PathBuf>,
}

impl FileSink {
    fn render(&self, e: &Event) -> PathBuf {
        let mut s = String::new();
        for p in &self.template {
            match p {
                Part::Lit(l) => s.push_str(l),
                Part::Date => s.push_str(&e.timestamp.date_string()),
                Part::Source => s.push_str(&e.origin.info.source),
            }
        }
        PathBuf::from(s)
    }

    fn is_static(&self) -> bool {
        self.template.iter().all(|p| matches!(p, Part::Lit(_)))
    }

    fn write_to(&mut self, path: &PathBuf) -> Result<(), SinkError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        if !self.open.contains_key(path) {
            if self.open.len() >= self.max_open {
                // Close everything already flushed; simple and rare.
                self.flush()?;
                self.open.clear();
            }
            if let Some(dir) = path.parent() {
                if !dir.as_os_str().is_empty() {
                    std::fs::create_dir_all(dir)?;
                }
            }
            let f = OpenOptions::new().create(true).append(true).open(path)?;
            self.open.insert(path.clone(), f);
        }
        let f = self.open.get_mut(path).expect("just opened");
        f.write_all(&self.buf)?;
        self.bytes += self.buf.len() as u64;
        self.buf.clear();
        if self.fsync && !self.dirty.contains(path) {
            self.dirty.push(path.clone());
        }
        Ok(())
    }
}

impl Sink for FileSink {
    fn write(&mut self, batch: &Batch) -> Result<(), SinkError> {
        self.buf.clear();
        if self.is_static() {
            for e in &batch.events {
                self.enc.encode_event(&mut self.buf, e);
            }
            if let Some(first) = batch.events.first() {
                let path = self.render(first);
                self.write_to(&path)?;
            }
            return Ok(());
        }
        // Templated path: group consecutive events with the same target.
        let mut current: Option<(PathBuf, i64, *const sluice_event::OriginInfo)> = None;
        for e in &batch.events {
            let key_day = e.timestamp.days();
            let key_src = std::sync::Arc::as_ptr(&e.origin.info);
            let same = matches!(&current, Some((_, d, s)) if *d == key_day && *s == key_src);
            if !same {
                let path = self.render(e);
                if let Some((prev, _, _)) = current.take() {
                    if prev != path {
                        self.write_to(&prev)?;
                    }
                }
                current = Some((path, key_day, key_src));
            }
            self.enc.encode_event(&mut self.buf, e);
        }
        if let Some((path, _, _)) = current {
            self.write_to(&path)?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        if self.fsync {
            for p in std::mem::take(&mut self.dirty) {
                if let Some(f) = self.open.get(&p) {
                    f.sync_data()?;
                }
            }
        }
        Ok(())
    }

    fn bytes_written(&self) -> u64 {
        self.bytes
    }

    fn max_pending_batches(&self) -> usize {
        if self.fsync {
            32
        } else {
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use sluice_event::{Origin, OriginInfo, Timestamp};

    fn ev(src: &std::sync::Arc<OriginInfo>, day: i64, text: &'static str) -> Event {
        Event::from_line(
            Bytes::from_static(text.as_bytes()),
            Timestamp::from_secs(day * 86_400 + 5),
            Origin { info: src.clone(), offset: 0 },
        )
    }

    #[test]
    fn templated_paths_split_by_date_and_source() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = FileSinkConfig {
            path: format!("{}/{{source}}/{{date}}.ndjson", dir.path().display()),
            fsync: true,
            max_open_files: 2,
        };
        let mut sink = cfg.build(&SinkContext { name: "t".into(), data_dir: std::env::temp_dir() }).unwrap();
        let a = OriginInfo::new("a", None);
        let b = OriginInfo::new("b", None);
        let batch = Batch::new(vec![ev(&a, 0, "one"), ev(&a, 1, "two"), ev(&b, 1, "three"), ev(&a, 0, "four")]);
        sink.write(&batch).unwrap();
        sink.flush().unwrap();
        let read = |p: &str| std::fs::read_to_string(dir.path().join(p)).unwrap();
        let lines = |p: &str| -> Vec<String> {
            read(p)
                .lines()
                .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["message"].as_str().unwrap().to_string())
                .collect()
        };
        assert_eq!(lines("a/1970-01-01.ndjson"), vec!["one", "four"]);
        assert_eq!(lines("a/1970-01-02.ndjson"), vec!["two"]);
        assert_eq!(lines("b/1970-01-02.ndjson"), vec!["three"]);
    }

    #[test]
    fn bad_placeholder_is_rejected() {
        let cfg = FileSinkConfig { path: "/tmp/{host}.log".into(), fsync: false, max_open_files: 4 };
        let err = cfg.build(&SinkContext { name: "t".into(), data_dir: std::env::temp_dir() }).err().unwrap();
        assert_eq!(err.key, "path");
        assert!(err.message.contains("unknown placeholder `{host}`"), "{}", err.message);
    }
}
