//! Syslog over a stream (RFC 6587), as the syslog source reads it: each frame is either octet-counted
//! (`LEN SP MSG`) or ends at a newline. The choice is made per frame from its first byte
//! (a digit: octet counting), so a connection may even mix the two.
//!
//! A frame longer than `max` bytes is emitted in marked parts (`split_part`,
//! `split_last`) as it arrives, like an over-long line of the file source: nothing is
//! dropped and memory stays bounded. A count that is not a number (`12x `) or has no
//! space within 10 digits is not octet counting: the frame falls back to a newline.

use bytes::{Buf, Bytes, BytesMut};
use sluice_event::Marks;

/// One frame (or part of an over-long frame): its bytes, where it started in the
/// stream, and the split marks.
#[derive(Debug)]
pub struct Frame {
    pub bytes: Bytes,
    pub offset: u64,
    pub marks: Marks,
}

/// Digits of the longest count accepted (a 9-digit count is up to ~1 GB).
const MAX_COUNT_DIGITS: usize = 9;

#[derive(Debug)]
enum State {
    /// At the start of a frame.
    Start,
    /// Inside an octet-counted frame: bytes still to come, parts emitted so far.
    Counted { remaining: usize, part: u32 },
    /// Inside a newline-terminated frame that already exceeded `max`: parts emitted.
    LongLine { part: u32 },
}

/// Frames syslog messages out of the bytes of one connection.
pub struct Framer {
    max: usize,
    buf: BytesMut,
    state: State,
    offset: u64,
}

impl Framer {
    pub fn new(max_message_bytes: usize) -> Framer {
        Framer { max: max_message_bytes.max(16), buf: BytesMut::new(), state: State::Start, offset: 0 }
    }

    /// Bytes held for an unfinished frame.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// Feed bytes read from the connection; complete frames (and parts) go to `out`.
    pub fn push(&mut self, data: &[u8], out: &mut impl FnMut(Frame)) {
        self.buf.extend_from_slice(data);
        while self.step(out) {}
    }

    /// The connection ended: emit what is held (an unterminated last frame).
    pub fn finish(&mut self, out: &mut impl FnMut(Frame)) {
        while self.step(out) {}
        if self.buf.is_empty() {
            return;
        }
        let n = self.buf.len();
        let bytes = self.buf.split_to(n).freeze();
        let mut marks = Marks::default();
        marks.set(Marks::NO_NEWLINE);
        match self.state {
            State::Counted { part, .. } | State::LongLine { part } if part > 0 => {
                marks.set(Marks::SPLIT);
                marks.set(Marks::SPLIT_LAST);
                marks.split_part = part + 1;
            }
            _ => {}
        }
        self.emit(bytes, marks, out);
        self.state = State::Start;
    }

    fn emit(&mut self, bytes: Bytes, marks: Marks, out: &mut impl FnMut(Frame)) {
        let offset = self.offset;
        self.offset += bytes.len() as u64;
        out(Frame { bytes: trim_end(bytes), offset, marks });
    }

    /// One framing step; false when more input is needed.
    fn step(&mut self, out: &mut impl FnMut(Frame)) -> bool {
        match self.state {
            State::Start => {
                // Blank lines between frames carry nothing.
                let skip = self.buf.iter().take_while(|&&b| b == b'\n' || b == b'\r').count();
                if skip > 0 {
                    self.buf.advance(skip);
                    self.offset += skip as u64;
                }
                let Some(&first) = self.buf.first() else { return false };
                if first.is_ascii_digit() {
                    let digits = self.buf.iter().take(MAX_COUNT_DIGITS + 1).take_while(|b| b.is_ascii_digit()).count();
                    match self.buf.get(digits) {
                        None if digits <= MAX_COUNT_DIGITS => return false, // the count is still arriving
                        Some(b' ') if digits <= MAX_COUNT_DIGITS => {
                            let count: usize = std::str::from_utf8(&self.buf[..digits]).unwrap().parse().unwrap();
                            self.buf.advance(digits + 1);
                            self.offset += digits as u64 + 1;
                            self.state = State::Counted { remaining: count, part: 0 };
                            return true;
                        }
                        // Not a count: a newline-framed message that starts with digits.
                        _ => {}
                    }
                }
                self.newline_frame(0, out)
            }
            State::Counted { remaining, part } => {
                if remaining <= self.max && self.buf.len() >= remaining {
                    let bytes = self.buf.split_to(remaining).freeze();
                    let marks = last_part_marks(part);
                    self.state = State::Start;
                    self.emit(bytes, marks, out);
                    return true;
                }
                if remaining > self.max && self.buf.len() >= self.max {
                    let bytes = self.buf.split_to(self.max).freeze();
                    let mut marks = Marks::default();
                    marks.set(Marks::SPLIT);
                    marks.split_part = part + 1;
                    self.state = State::Counted { remaining: remaining - self.max, part: part + 1 };
                    self.emit(bytes, marks, out);
                    return true;
                }
                false
            }
            State::LongLine { part } => self.newline_frame(part, out),
        }
    }

    fn newline_frame(&mut self, part: u32, out: &mut impl FnMut(Frame)) -> bool {
        let limit = self.buf.len().min(self.max + 1);
        match memchr::memchr(b'\n', &self.buf[..limit]) {
            Some(nl) if nl <= self.max => {
                let bytes = self.buf.split_to(nl).freeze();
                self.buf.advance(1);
                let marks = last_part_marks(part);
                self.state = State::Start;
                self.emit(bytes, marks, out);
                self.offset += 1;
                true
            }
            _ if self.buf.len() > self.max => {
                // Over-long: emit a part at a UTF-8 boundary, keep reading the frame.
                let mut cut = self.max;
                while cut > 0 && (self.buf[cut] & 0xC0) == 0x80 {
                    cut -= 1;
                }
                let cut = if cut == 0 { self.max } else { cut };
                let bytes = self.buf.split_to(cut).freeze();
                let mut marks = Marks::default();
                marks.set(Marks::SPLIT);
                marks.split_part = part + 1;
                self.state = State::LongLine { part: part + 1 };
                self.emit(bytes, marks, out);
                true
            }
            _ => false,
        }
    }
}

/// Marks of the end of a frame after `part` earlier parts: none for a whole frame, the
/// last part's marks for a frame that was split.
fn last_part_marks(part: u32) -> Marks {
    let mut marks = Marks::default();
    if part > 0 {
        marks.set(Marks::SPLIT);
        marks.set(Marks::SPLIT_LAST);
        marks.split_part = part + 1;
    }
    marks
}

/// Senders end octet-counted frames with a newline or CRLF at times; it is not content.
fn trim_end(mut b: Bytes) -> Bytes {
    while matches!(b.last(), Some(b'\n' | b'\r')) {
        b.truncate(b.len() - 1);
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(max: usize, chunks: &[&[u8]]) -> Vec<(String, u32, bool, bool)> {
        let mut f = Framer::new(max);
        let mut got = Vec::new();
        let mut push = |l: Frame| {
            got.push((
                String::from_utf8_lossy(&l.bytes).into_owned(),
                l.marks.split_part,
                l.marks.has(Marks::SPLIT),
                l.marks.has(Marks::SPLIT_LAST),
            ))
        };
        for c in chunks {
            f.push(c, &mut push);
        }
        f.finish(&mut push);
        got
    }

    fn texts(max: usize, chunks: &[&[u8]]) -> Vec<String> {
        frames(max, chunks).into_iter().map(|f| f.0).collect()
    }

    #[test]
    fn newline_and_octet_counting_mixed_and_split_anywhere() {
        let stream = b"<13>1 - h a - - - hello\n11 <13>counted23 <14>with\nnewline inside\n<15>last";
        let want = ["<13>1 - h a - - - hello", "<13>counted", "<14>with\nnewline inside", "<15>last"];
        assert_eq!(texts(1024, &[stream]), want);
        // Every way of cutting the stream into two reads gives the same frames.
        for cut in 0..stream.len() {
            assert_eq!(texts(1024, &[&stream[..cut], &stream[cut..]]), want, "cut at {cut}");
        }
        // Byte by byte.
        let bytes: Vec<&[u8]> = stream.chunks(1).collect();
        assert_eq!(texts(1024, &bytes), want);
    }

    #[test]
    fn digits_that_are_not_a_count_fall_back_to_newline() {
        assert_eq!(texts(1024, &[b"2024-01-01 boot\n12x oops\n"]), ["2024-01-01 boot", "12x oops"]);
        assert_eq!(texts(1024, &[b"12345678901234 long number\n"]), ["12345678901234 long number"]);
    }

    #[test]
    fn long_frames_are_split_in_marked_parts_nothing_dropped() {
        let body = "x".repeat(50);
        let counted = format!("50 {body}");
        let got = frames(20, &[counted.as_bytes(), b"3 end"]);
        assert_eq!(got.len(), 4, "{got:?}");
        assert_eq!(got.iter().take(3).map(|f| f.0.as_str()).collect::<String>(), body);
        assert_eq!((got[0].1, got[0].2, got[0].3), (1, true, false));
        assert_eq!((got[2].1, got[2].2, got[2].3), (3, true, true));
        assert_eq!(got[3].0, "end");
        let line = format!("{}\nnext\n", "y".repeat(45));
        let got = frames(20, &[line.as_bytes()]);
        assert_eq!(got.iter().take(3).map(|f| f.0.as_str()).collect::<String>(), "y".repeat(45));
        assert!(got[2].3, "last part marked");
        assert_eq!(got[3].0, "next");
    }

    #[test]
    fn garbage_never_panics_and_memory_is_bounded() {
        let mut seed = 7u64;
        let mut f = Framer::new(64);
        for _ in 0..2000 {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let n = (seed >> 58) as usize;
            let chunk: Vec<u8> = (0..n).map(|i| (seed >> (i % 56)) as u8).collect();
            f.push(&chunk, &mut |_| {});
            assert!(f.pending() <= 64 + 64 + MAX_COUNT_DIGITS + 1, "held {}", f.pending());
        }
        f.finish(&mut |_| {});
    }
}
