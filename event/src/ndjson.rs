//! NDJSON encoding of events: one JSON object per line, fields at the top level,
//! `message` holds the text, `timestamp` is RFC 3339 UTC.
//!
//! Layout of one line:
//! `{"timestamp":…,"message":…,<fields…>,"source":…,"file":…,"offset":…,<marks…>}`.
//! Marks are only present when set: `"invalid_utf8":true,"raw_base64":"…"`,
//! `"contains_nul":true`, `"split_part":N,"split_last":bool`, `"no_newline":true`.

use crate::{time, Event, Fields, Marks, Timestamp, Value};
use base64::Engine as _;

#[inline(always)]
fn byte_needs_escape(c: u8) -> bool {
    c < 0x20 || c == b'"' || c == b'\\'
}

/// The first index at or after `i` whose byte needs escaping, or `b.len()`: 16 bytes at
/// a time with SSE2 (part of every x86_64 CPU), the rest one by one.
#[inline]
fn next_escape(b: &[u8], mut i: usize) -> usize {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: SSE2 is baseline on x86_64; each load stays within `b`.
        unsafe {
            use std::arch::x86_64::*;
            let ctl = _mm_set1_epi8(0x1f);
            let quote = _mm_set1_epi8(b'"' as i8);
            let backslash = _mm_set1_epi8(b'\\' as i8);
            while i + 16 <= b.len() {
                let x = _mm_loadu_si128(b.as_ptr().add(i) as *const __m128i);
                // x <= 0x1f unsigned: max(x, 0x1f) == 0x1f.
                let low = _mm_cmpeq_epi8(_mm_max_epu8(x, ctl), ctl);
                let hit = _mm_or_si128(low, _mm_or_si128(_mm_cmpeq_epi8(x, quote), _mm_cmpeq_epi8(x, backslash)));
                let mask = _mm_movemask_epi8(hit) as u32;
                if mask != 0 {
                    return i + mask.trailing_zeros() as usize;
                }
                i += 16;
            }
        }
    }
    while i < b.len() && !byte_needs_escape(b[i]) {
        i += 1;
    }
    i
}

/// Append `s` as a JSON string literal (with quotes).
#[inline]
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut start = 0;
    loop {
        let i = next_escape(bytes, start);
        out.extend_from_slice(&bytes[start..i]);
        let Some(&c) = bytes.get(i) else { break };
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
        start = i + 1;
    }
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
/// formats each distinct second once (and only the fraction of each event).
#[derive(Default)]
pub struct Encoder {
    last_sec: i64,
    last_text: Vec<u8>,
}

impl Encoder {
    pub fn new() -> Encoder {
        Encoder { last_sec: i64::MIN, last_text: Vec::new() }
    }

    #[inline]
    fn write_timestamp(&mut self, out: &mut Vec<u8>, ts: Timestamp) {
        if ts.secs() != self.last_sec || self.last_text.is_empty() {
            self.last_sec = ts.secs();
            self.last_text.clear();
            time::write_rfc3339_secs(&mut self.last_text, ts.secs());
        }
        out.extend_from_slice(&self.last_text);
        time::write_rfc3339_fraction(out, ts.subsec_nanos());
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

    /// Text that is mostly escapes (six output bytes for one input byte), appended after
    /// what the buffer already holds, in buffers of several starting capacities: the
    /// earlier bytes stay and every escape decodes back.
    #[test]
    fn dense_escapes_after_existing_bytes_round_trip() {
        for len in 0..70 {
            for pattern in ["\u{1}", "\"a", "\\\n", "é\u{1f}x"] {
                let s: String = pattern.chars().cycle().take(len).collect();
                for cap in [0, 1, 7, 64] {
                    let mut v = Vec::with_capacity(cap);
                    v.extend_from_slice(b"[1,");
                    write_str(&mut v, &s);
                    v.push(b']');
                    let back: (u8, String) = serde_json::from_slice(&v).unwrap();
                    assert_eq!(back.1, s, "{}", String::from_utf8_lossy(&v));
                }
            }
        }
    }

    /// Every special byte at every position of strings around the 16-byte blocks of the
    /// vectorised scan decodes back to itself.
    #[test]
    fn escapes_at_every_position_round_trip() {
        for len in 0..50 {
            for at in 0..len {
                for special in ["\"", "\\", "\n", "\u{1}", "\u{1f}", "é", "\u{7f}"] {
                    let s: String = (0..len).map(|i| if i == at { special } else { "a" }).collect();
                    let enc = esc(&s);
                    assert_eq!(serde_json::from_str::<String>(&enc).unwrap(), s, "{enc}");
                }
            }
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
