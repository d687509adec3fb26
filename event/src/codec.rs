//! A compact binary encoding of events, for the disk buffer: everything an event
//! carries (raw bytes, message, fields, timestamp, origin, marks) survives the round
//! trip, so a sink behind a disk buffer writes exactly what it would have written from
//! memory.
//!
//! Layout of one event: lengths and counts are LEB128 varints, integers are zigzag
//! varints, floats are 8 bytes little-endian, strings are a length and UTF-8 bytes.
//!
//! ```text
//! raw | message? | timestamp | source | path? | offset | marks | split_part | fields
//! ```
//!
//! A value is a tag byte (`0` null, `1` false, `2` true, `3` int, `4` float, `5`
//! string, `6` array, `7` map) and its payload. Decoding never panics on bad input: it
//! returns [`DecodeError`] (the disk buffer also checks a CRC before decoding).

use crate::{ByteStr, Event, Fields, Marks, Origin, OriginInfo, Timestamp, Value};
use bytes::Bytes;
use std::sync::Arc;

/// Input that is not an encoded event (truncated, or not written by [`encode`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("corrupt event encoding at byte {at}: {what}")]
pub struct DecodeError {
    pub at: usize,
    pub what: &'static str,
}

/// Nesting depth of arrays and maps beyond which decoding refuses (a corrupt record
/// cannot recurse without bound).
const MAX_DEPTH: usize = 64;

/// Append the encoding of `e` to `out`.
pub fn encode(e: &Event, out: &mut Vec<u8>) {
    put_bytes(out, &e.raw);
    match &e.message {
        None => out.push(0),
        Some(m) => {
            out.push(1);
            put_bytes(out, m.as_str().as_bytes());
        }
    }
    put_uint(out, zigzag(e.timestamp.0));
    put_bytes(out, e.origin.info.source.as_bytes());
    match &e.origin.info.path {
        None => out.push(0),
        Some(p) => {
            out.push(1);
            put_bytes(out, p.as_bytes());
        }
    }
    put_uint(out, e.origin.offset);
    out.push(e.marks.bits());
    put_uint(out, u64::from(e.marks.split_part));
    put_fields(out, &e.fields);
}

fn put_fields(out: &mut Vec<u8>, f: &Fields) {
    put_uint(out, f.len() as u64);
    for (k, v) in f.iter() {
        put_bytes(out, k.as_bytes());
        put_value(out, v);
    }
}

fn put_value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Null => out.push(0),
        Value::Bool(false) => out.push(1),
        Value::Bool(true) => out.push(2),
        Value::Int(i) => {
            out.push(3);
            put_uint(out, zigzag(*i));
        }
        Value::Float(f) => {
            out.push(4);
            out.extend_from_slice(&f.to_le_bytes());
        }
        Value::Str(s) => {
            out.push(5);
            put_bytes(out, s.as_str().as_bytes());
        }
        Value::Array(a) => {
            out.push(6);
            put_uint(out, a.len() as u64);
            for x in a {
                put_value(out, x);
            }
        }
        Value::Map(m) => {
            out.push(7);
            put_fields(out, m);
        }
    }
}

/// Append a count and the encoding of each event (a disk buffer record's payload).
pub fn encode_events(events: &[Event], out: &mut Vec<u8>) {
    put_uint(out, events.len() as u64);
    for e in events {
        encode(e, out);
    }
}

/// The events of [`encode_events`]; the whole buffer must be used.
pub fn decode_events(buf: Bytes) -> Result<Vec<Event>, DecodeError> {
    let mut d = Decoder::new(buf);
    let n = d.uint()?;
    // Each event takes several bytes: never trust a count beyond what is there.
    let mut events = Vec::with_capacity(n.min(d.buf.len() as u64) as usize);
    for _ in 0..n {
        events.push(d.event()?);
    }
    if !d.is_empty() {
        return Err(d.err("bytes after the last event"));
    }
    Ok(events)
}

#[inline]
fn zigzag(i: i64) -> u64 {
    ((i << 1) ^ (i >> 63)) as u64
}

#[inline]
fn unzigzag(u: u64) -> i64 {
    ((u >> 1) as i64) ^ -((u & 1) as i64)
}

#[inline]
fn put_uint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

#[inline]
fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_uint(out, b.len() as u64);
    out.extend_from_slice(b);
}

/// Decodes events from one buffer. Raw bytes and strings are slices of that buffer (no
/// copy); the origin of consecutive events from the same source and file is shared.
pub struct Decoder {
    buf: Bytes,
    pos: usize,
    last_origin: Option<Arc<OriginInfo>>,
}

impl Decoder {
    pub fn new(buf: Bytes) -> Decoder {
        Decoder { buf, pos: 0, last_origin: None }
    }

    /// True when every byte was consumed.
    pub fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    /// Read a varint (also used by containers of encoded events for their counts).
    pub fn uint(&mut self) -> Result<u64, DecodeError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self.buf.get(self.pos).ok_or(self.err("truncated number"))?;
            self.pos += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(self.err("number too long"))
    }

    fn err(&self, what: &'static str) -> DecodeError {
        DecodeError { at: self.pos, what }
    }

    fn byte(&mut self) -> Result<u8, DecodeError> {
        let b = *self.buf.get(self.pos).ok_or(self.err("truncated"))?;
        self.pos += 1;
        Ok(b)
    }

    fn bytes(&mut self) -> Result<Bytes, DecodeError> {
        let n = self.uint()?;
        let end = usize::try_from(n).ok().and_then(|n| self.pos.checked_add(n));
        match end {
            Some(end) if end <= self.buf.len() => {
                let b = self.buf.slice(self.pos..end);
                self.pos = end;
                Ok(b)
            }
            _ => Err(self.err("length beyond the end")),
        }
    }

    fn string(&mut self) -> Result<ByteStr, DecodeError> {
        let at = self.pos;
        ByteStr::from_utf8(self.bytes()?).map_err(|_| DecodeError { at, what: "string is not UTF-8" })
    }

    /// Decode the next event.
    pub fn event(&mut self) -> Result<Event, DecodeError> {
        let raw = self.bytes()?;
        let message = match self.byte()? {
            0 => None,
            1 => Some(self.string()?),
            _ => return Err(self.err("bad message flag")),
        };
        if message.is_none() && simdutf8::basic::from_utf8(&raw).is_err() {
            // `message: None` promises that the raw bytes are UTF-8.
            return Err(self.err("raw bytes without a message are not UTF-8"));
        }
        let timestamp = Timestamp(unzigzag(self.uint()?));
        let source = self.string()?;
        let path = match self.byte()? {
            0 => None,
            1 => Some(self.string()?),
            _ => return Err(self.err("bad path flag")),
        };
        let offset = self.uint()?;
        let bits = self.byte()?;
        let split_part = u32::try_from(self.uint()?).map_err(|_| self.err("split part too large"))?;
        let fields = self.fields(0)?;
        let info = match &self.last_origin {
            Some(o) if o.source == source.as_str() && o.path.as_deref() == path.as_ref().map(|p| p.as_str()) => {
                o.clone()
            }
            _ => {
                let o = OriginInfo::new(source.as_str(), path.as_ref().map(|p| p.as_str()));
                self.last_origin = Some(o.clone());
                o
            }
        };
        let mut marks = Marks::from_bits(bits);
        marks.split_part = split_part;
        Ok(Event { raw, message, fields, timestamp, origin: Origin { info, offset }, marks })
    }

    fn fields(&mut self, depth: usize) -> Result<Fields, DecodeError> {
        if depth > MAX_DEPTH {
            return Err(self.err("nested too deep"));
        }
        let n = self.uint()?;
        // Each field takes at least two bytes: never trust a count beyond what is left.
        let n = usize::try_from(n).ok().filter(|&n| n <= self.buf.len() - self.pos).ok_or(self.err("bad count"))?;
        let mut f = Fields::with_capacity(n);
        for _ in 0..n {
            let k = self.string()?;
            let v = self.value(depth)?;
            f.insert(k.as_str(), v);
        }
        Ok(f)
    }

    fn value(&mut self, depth: usize) -> Result<Value, DecodeError> {
        Ok(match self.byte()? {
            0 => Value::Null,
            1 => Value::Bool(false),
            2 => Value::Bool(true),
            3 => Value::Int(unzigzag(self.uint()?)),
            4 => {
                let end = self.pos + 8;
                let b = self.buf.get(self.pos..end).ok_or(self.err("truncated float"))?;
                let f = f64::from_le_bytes(b.try_into().expect("8 bytes"));
                self.pos = end;
                Value::Float(f)
            }
            5 => Value::Str(self.string()?),
            6 => {
                if depth >= MAX_DEPTH {
                    return Err(self.err("nested too deep"));
                }
                let n = self.uint()?;
                let n =
                    usize::try_from(n).ok().filter(|&n| n <= self.buf.len() - self.pos).ok_or(self.err("bad count"))?;
                let mut a = Vec::with_capacity(n);
                for _ in 0..n {
                    a.push(self.value(depth + 1)?);
                }
                Value::Array(a)
            }
            7 => Value::Map(self.fields(depth + 1)?),
            _ => return Err(self.err("unknown value tag")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<Event> {
        let o = OriginInfo::new("app", Some("/var/log/a \"b\".log"));
        let mut a = Event::from_line(
            Bytes::from_static(b"Payment failed for user 42"),
            Timestamp(-5),
            Origin { info: o.clone(), offset: 1 << 40 },
        );
        a.fields.insert("user", Value::Int(42));
        a.fields.insert("ratio", Value::Float(-0.25));
        a.fields.insert("ok", Value::Bool(true));
        a.fields.insert("none", Value::Null);
        let mut inner = Fields::new();
        inner.insert("k", Value::Array(vec![Value::from("x"), Value::Int(i64::MIN), Value::Map(Fields::new())]));
        a.fields.insert("nested", Value::Map(inner));
        let mut b = Event::from_line(
            Bytes::from_static(b"bad \xff\x00 bytes"),
            Timestamp(i64::MAX),
            Origin { info: OriginInfo::new("stdin", None), offset: 0 },
        );
        b.marks.set(Marks::SPLIT);
        b.marks.split_part = 3;
        let c = Event::from_line(Bytes::new(), Timestamp(0), Origin { info: o, offset: 7 });
        vec![a, b, c]
    }

    fn same(a: &Event, b: &Event) {
        assert_eq!(a.raw, b.raw);
        assert_eq!(a.message(), b.message());
        assert_eq!(a.message.is_some(), b.message.is_some());
        assert_eq!(a.fields, b.fields);
        assert_eq!(a.timestamp, b.timestamp);
        assert_eq!(a.origin.info.source, b.origin.info.source);
        assert_eq!(a.origin.info.path, b.origin.info.path);
        assert_eq!(a.origin.info.json_members(), b.origin.info.json_members());
        assert_eq!(a.origin.offset, b.origin.offset);
        assert_eq!(a.marks, b.marks);
    }

    #[test]
    fn every_part_of_an_event_survives_the_round_trip() {
        let events = sample();
        let mut buf = Vec::new();
        for e in &events {
            encode(e, &mut buf);
        }
        let mut d = Decoder::new(Bytes::from(buf));
        for e in &events {
            same(e, &d.event().unwrap());
        }
        assert!(d.is_empty());
    }

    #[test]
    fn truncated_or_damaged_input_is_an_error_not_a_panic() {
        let mut buf = Vec::new();
        for e in &sample() {
            encode(e, &mut buf);
        }
        for cut in 0..buf.len() {
            let mut d = Decoder::new(Bytes::copy_from_slice(&buf[..cut]));
            let mut n = 0;
            while !d.is_empty() {
                match d.event() {
                    Ok(_) => n += 1,
                    Err(_) => break,
                }
            }
            assert!(n < 3, "a cut at {cut} cannot decode all three events");
        }
        // Every single-byte change decodes to something or fails; it never panics.
        for i in 0..buf.len() {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut b = buf.clone();
                b[i] ^= flip;
                let mut d = Decoder::new(Bytes::from(b));
                while !d.is_empty() {
                    if d.event().is_err() {
                        break;
                    }
                }
            }
        }
    }
}
