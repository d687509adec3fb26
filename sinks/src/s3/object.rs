//! One object being built: NDJSON lines go through a streaming compressor; the
//! compressed bytes are cut into parts of `part_size` as they grow, so only the current
//! part is held in memory. An object that never reaches one part is stored with one PUT;
//! a larger one becomes a multipart upload whose parts are sent as they are cut, and it
//! appears under its key only when the upload is completed.

use bytes::Bytes;
use object_store::multipart::PartId;
use object_store::MultipartId;
use serde::Deserialize;
use std::collections::VecDeque;
use std::io::{self, Write};
use std::time::Instant;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// Zstandard (`.zst`): fast, and smaller than gzip.
    #[default]
    Zstd,
    /// gzip (`.gz`): read by every tool.
    Gzip,
    /// No compression.
    None,
}

impl Compression {
    pub fn extension(self) -> &'static str {
        match self {
            Compression::Zstd => ".zst",
            Compression::Gzip => ".gz",
            Compression::None => "",
        }
    }
    pub fn default_level(self) -> i32 {
        match self {
            Compression::Zstd => 3,
            Compression::Gzip => 6,
            Compression::None => 0,
        }
    }
}

enum Writer {
    Plain(Vec<u8>),
    Gzip(flate2::write::GzEncoder<Vec<u8>>),
    Zstd(zstd::stream::write::Encoder<'static, Vec<u8>>),
}

impl Writer {
    fn new(c: Compression, level: i32) -> io::Result<Writer> {
        Ok(match c {
            Compression::None => Writer::Plain(Vec::new()),
            Compression::Gzip => Writer::Gzip(flate2::write::GzEncoder::new(
                Vec::new(),
                flate2::Compression::new(level.clamp(0, 9) as u32),
            )),
            Compression::Zstd => Writer::Zstd(zstd::stream::write::Encoder::new(Vec::new(), level)?),
        })
    }
    fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        match self {
            Writer::Plain(v) => {
                v.extend_from_slice(data);
                Ok(())
            }
            Writer::Gzip(w) => w.write_all(data),
            Writer::Zstd(w) => w.write_all(data),
        }
    }
    /// The compressed bytes produced so far and not yet taken.
    fn output(&mut self) -> &mut Vec<u8> {
        match self {
            Writer::Plain(v) => v,
            Writer::Gzip(w) => w.get_mut(),
            Writer::Zstd(w) => w.get_mut(),
        }
    }
    fn finish(self) -> io::Result<Vec<u8>> {
        match self {
            Writer::Plain(v) => Ok(v),
            Writer::Gzip(w) => w.finish(),
            Writer::Zstd(w) => w.finish(),
        }
    }
}

/// An object of one partition, from its first event to its completed upload.
pub struct Object {
    pub key: String,
    /// The first batch (in the runner's count) with events in this object: the batches
    /// from here on are not acknowledged before it is complete.
    pub first_batch: u64,
    pub opened: Instant,
    /// When it was closed (for the upload latency).
    pub closed: Option<Instant>,
    /// NDJSON bytes written (before compression).
    pub raw_bytes: u64,
    pub events: u64,
    writer: Option<Writer>,
    part_size: usize,
    /// Parts cut and not yet uploaded, in order.
    pub ready: VecDeque<Bytes>,
    /// The multipart upload, once the object has grown past one part.
    pub upload: Option<(MultipartId, Vec<PartId>)>,
    /// The bytes after the last part once the compressor is finished.
    pub tail: Option<Bytes>,
    /// Compressed bytes handed to the store.
    pub uploaded_bytes: u64,
}

impl Object {
    pub fn new(key: String, first_batch: u64, c: Compression, level: i32, part_size: usize) -> io::Result<Object> {
        Ok(Object {
            key,
            first_batch,
            opened: Instant::now(),
            closed: None,
            raw_bytes: 0,
            events: 0,
            writer: Some(Writer::new(c, level)?),
            part_size,
            ready: VecDeque::new(),
            upload: None,
            tail: None,
            uploaded_bytes: 0,
        })
    }

    /// Append NDJSON lines (whole lines of `events` events).
    pub fn append(&mut self, lines: &[u8], events: u64) -> io::Result<()> {
        let w = self.writer.as_mut().expect("append after close");
        w.write_all(lines)?;
        self.raw_bytes += lines.len() as u64;
        self.events += events;
        let out = w.output();
        while out.len() >= self.part_size {
            // Parts of exactly `part_size` (some stores require equal parts).
            let rest = out.split_off(self.part_size);
            let part = std::mem::replace(out, rest);
            self.ready.push_back(Bytes::from(part));
        }
        Ok(())
    }

    /// Finish the compressed stream: what it had not yet output becomes the tail.
    pub fn close(&mut self) -> io::Result<()> {
        if let Some(w) = self.writer.take() {
            self.tail = Some(Bytes::from(w.finish()?));
            self.closed = Some(Instant::now());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn roundtrip(c: Compression) {
        let mut o = Object::new("k".into(), 0, c, c.default_level(), 64 * 1024).unwrap();
        let mut want = Vec::new();
        let mut state = 1u64;
        for i in 0..20_000u64 {
            // Poorly compressible lines, so that several parts are cut.
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let line = format!("{{\"n\":{i},\"r\":\"{:016x}{:016x}\"}}\n", state, state.rotate_left(17));
            o.append(line.as_bytes(), 1).unwrap();
            want.extend_from_slice(line.as_bytes());
        }
        o.close().unwrap();
        assert!(o.ready.len() >= 2, "{c:?}: {} parts", o.ready.len());
        assert!(o.ready.iter().all(|p| p.len() == 64 * 1024));
        let mut all = Vec::new();
        for p in &o.ready {
            all.extend_from_slice(p);
        }
        all.extend_from_slice(o.tail.as_ref().unwrap());
        let got = match c {
            Compression::None => all,
            Compression::Gzip => {
                let mut v = Vec::new();
                flate2::read::GzDecoder::new(&all[..]).read_to_end(&mut v).unwrap();
                v
            }
            Compression::Zstd => zstd::decode_all(&all[..]).unwrap(),
        };
        assert!(got == want, "{c:?}: contents differ");
        assert_eq!((o.events, o.raw_bytes), (20_000, want.len() as u64));
    }

    #[test]
    fn parts_concatenate_to_the_whole_stream() {
        roundtrip(Compression::Zstd);
        roundtrip(Compression::Gzip);
        roundtrip(Compression::None);
    }
}
