//! NDJSON encoding of events: one JSON object per line, fields at the top level,
//! `message` holds the text, `timestamp` is RFC 3339 UTC.
//!
//! Layout of one line:
//! `{"timestamp":…,"message":…,<fields…>,"source":…,"file":…,"offset":…,<marks…>}`.
//! Marks are only present when set: `"invalid_utf8":true,"raw_base64":"…"`,
//! `"contains_nul":true`, `"split_part":N,"split_last":bool`, `"no_newline":true`.

use crate::{time, Event, Fields, Marks, Timestamp, Value};
use base64::Engine as _;

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

/// True if any byte of `x` is < 0x20, `"` or `\`.
#[inline(always)]
fn word_needs_escape(x: u64) -> bool {
    let lt20 = x.wrapping_sub(LO * 0x20) & !x;
    let q = x ^ (LO * b'"' as u64);
    let q = q.wrapping_sub(LO) & !q;
    let b = x ^ (LO * b'\\' as u64);
    let b = b.wrapping_sub(LO) & !b;
    (lt20 | q | b) & HI != 0
}

#[inline(always)]
fn byte_needs_escape(c: u8) -> bool {
    c < 0x20 || c == b'"' || c == b'\\'
}

/// Append `s` as a JSON string literal (with quotes).
#[inline]
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut start = 0;
    let mut i = 0;
    let n = bytes.len();
    while i < n {
        // Skip 8 clean bytes at a time.
        while i + 8 <= n {
            let w = u64::from_le_bytes(bytes[i..i + 8].try_into().unwrap());
            if word_needs_escape(w) {
                break;
            }
            i += 8;
        }
        while i < n && !byte_needs_escape(bytes[i]) {
            i += 1;
            if i & 7 == 0 && i + 8 <= n {
                break;
            }
        }
        if i >= n {
            break;
        }
        let c = bytes[i];
        if !byte_needs_escape(c) {
            continue;
        }
        out.extend_from_slice(&bytes[start..i]);
        match c {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            _ => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(b"\\u00");
                out.push(HEX[(c >> 4) as usize]);
                out.push(HEX[(c & 15) as usize]);
            }
        }
        i += 1;
        start = i;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// Append a JSON value.
pub fn write_value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Int(i) => out.extend_from_slice(itoa::Buffer::new().format(*i).as_bytes()),
        Value::Float(f) => {
            if f.is_finite() {
                out.extend_from_slice(ryu::Buffer::new().format_finite(*f).as_bytes())
            } else {
                out.extend_from_slice(b"null")
            }
        }
        Value::Str(s) => write_str(out, s.as_str()),
        Value::Array(a) => {
            out.push(b'[');
            for (i, v) in a.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(out, v);
            }
            out.push(b']');
        }
        Value::Map(m) => write_map(out, m),
    }
}

fn write_map(out: &mut Vec<u8>, m: &Fields) {
    out.push(b'{');
    for (i, (k, v)) in m.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_str(out, k);
        out.push(b':');
        write_value(out, v);
    }
    out.push(b'}');
}

/// Keys written from the event itself; fields with these names are not repeated.
const RESERVED: [&str; 4] = ["timestamp", "message", "offset", "source"];

/// Caches the formatted RFC 3339 text of the last second seen, so that encoding a batch
/// formats each distinct second once.
#[derive(Default)]
pub struct Encoder {
    last_sec: i64,
    last_text: Vec<u8>,
}

impl Encoder {
    pub fn new() -> Encoder {
        Encoder { last_sec: i64::MIN, last_text: Vec::new() }
    }

    fn write_timestamp(&mut self, out: &mut Vec<u8>, ts: Timestamp) {
        if ts.subsec_nanos() == 0 {
            if ts.secs() != self.last_sec {
                self.last_sec = ts.secs();
                self.last_text.clear();
                time::write_rfc3339(&mut self.last_text, ts);
            }
            out.extend_from_slice(&self.last_text);
        } else {
            time::write_rfc3339(out, ts);
        }
    }

    /// Append one event as a JSON object followed by `\n`.
    pub fn encode_event(&mut self, out: &mut Vec<u8>, e: &Event) {
        out.extend_from_slice(b"{\"timestamp\":\"");
        self.write_timestamp(out, e.timestamp);
        out.extend_from_slice(b"\",\"message\":");
        write_str(out, e.message());
        for (k, v) in e.fields.iter() {
            if RESERVED.contains(&k) {
                continue;
            }
            out.push(b',');
            write_str(out, k);
            out.push(b':');
            write_value(out, v);
        }
        out.push(b',');
        out.extend_from_slice(e.origin.info.json_members().as_bytes());
        out.extend_from_slice(b",\"offset\":");
        out.extend_from_slice(itoa::Buffer::new().format(e.origin.offset).as_bytes());
        if !e.marks.is_empty() {
            write_marks(out, e);
        }
        out.extend_from_slice(b"}\n");
    }
}

#[cold]
fn write_marks(out: &mut Vec<u8>, e: &Event) {
    let m = &e.marks;
    if m.has(Marks::INVALID_UTF8) {
        out.extend_from_slice(b",\"invalid_utf8\":true,\"raw_base64\":\"");
        let enc = base64::engine::general_purpose::STANDARD.encode(&e.raw);
        out.extend_from_slice(enc.as_bytes());
        out.push(b'"');
    }
    if m.has(Marks::CONTAINS_NUL) {
        out.extend_from_slice(b",\"contains_nul\":true");
    }
    if m.split_part > 0 {
        out.extend_from_slice(b",\"split_part\":");
        out.extend_from_slice(itoa::Buffer::new().format(m.split_part).as_bytes());
        out.extend_from_slice(if m.has(Marks::SPLIT_LAST) {
            b",\"split_last\":true".as_slice()
        } else {
            b",\"split_last\":false".as_slice()
        });
    }
    if m.has(Marks::NO_NEWLINE) {
        out.extend_from_slice(b",\"no_newline\":true");
    }
}

/// Convenience: encode one event with a fresh encoder.
pub fn encode_event(out: &mut Vec<u8>, e: &Event) {
    Encoder::new().encode_event(out, e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Origin, OriginInfo};
    use bytes::Bytes;

    fn esc(s: &str) -> String {
        let mut v = Vec::new();
        write_str(&mut v, s);
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn escapes_match_serde_json_semantics() {
        let cases = [
            "",
            "plain ascii text that is long enough for several words",
            "quote \" and backslash \\ here",
            "tab\tnl\ncr\r nul\0 bell\x07 end",
            "ünïcödé ✓ and \"mixed\" 0123456789abcdef\x1f",
            "12345678\"",
            "1234567\\",
        ];
        for c in cases {
            let enc = esc(c);
            let back: String = serde_json_roundtrip(&enc);
            assert_eq!(back, c, "for {enc}");
        }
    }

    // Minimal JSON string decoder for the test (no serde dependency in this crate).
    fn serde_json_roundtrip(s: &str) -> String {
        let inner = &s[1..s.len() - 1];
        let mut out = String::new();
        let mut it = inner.chars();
        while let Some(c) = it.next() {
            if c == '\\' {
                match it.next().unwrap() {
                    '"' => out.push('"'),
                    '\\' => out.push('\\'),
                    'n' => out.push('\n'),
                    'r' => out.push('\r'),
                    't' => out.push('\t'),
                    'u' => {
                        let h: String = it.by_ref().take(4).collect();
                        out.push(char::from_u32(u32::from_str_radix(&h, 16).unwrap()).unwrap());
                    }
                    o => panic!("bad escape {o}"),
                }
            } else {
                assert!(c as u32 >= 0x20 && c != '"', "unescaped {c:?} in {s}");
                out.push(c);
            }
        }
        out
    }

    #[test]
    fn event_line_layout() {
        let origin = Origin { info: OriginInfo::new("app", Some("/var/log/a.log")), offset: 42 };
        let mut e = Event::from_line(Bytes::from_static(b"hello \"x\""), Timestamp(0), origin);
        e.fields.insert("level", Value::from("info"));
        e.fields.insert("n", Value::Int(3));
        let mut out = Vec::new();
        encode_event(&mut out, &e);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"timestamp\":\"1970-01-01T00:00:00Z\",\"message\":\"hello \\\"x\\\"\",\"level\":\"info\",\"n\":3,\"source\":\"app\",\"file\":\"/var/log/a.log\",\"offset\":42}\n"
        );
    }

    #[test]
    fn invalid_utf8_keeps_raw_bytes() {
        let origin = Origin { info: OriginInfo::new("s", None), offset: 0 };
        let e = Event::from_line(Bytes::from_static(b"bad \xff\xfe byte\0"), Timestamp(0), origin);
        assert!(e.marks.has(Marks::INVALID_UTF8));
        assert!(e.marks.has(Marks::CONTAINS_NUL));
        let mut out = Vec::new();
        encode_event(&mut out, &e);
        let s = String::from_utf8(out).unwrap();
        assert!(s.contains("\"message\":\"bad \u{fffd}\u{fffd} byte\\u0000\""), "{s}");
        let b64 = base64::engine::general_purpose::STANDARD.encode(b"bad \xff\xfe byte\0");
        assert!(s.contains(&format!("\"raw_base64\":\"{b64}\"")), "{s}");
    }
}
