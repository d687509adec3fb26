//! Splits a byte stream into lines without copying: complete lines are slices of the
//! chunk that was read. Lines longer than `max_line_bytes` are cut into parts at UTF-8
//! boundaries and marked (`split_part`, `split_last`); nothing is dropped.

use bytes::{Bytes, BytesMut};
use sluice_event::{Event, Marks, Origin, OriginInfo, Timestamp};
use std::sync::Arc;

pub struct LineSplitter {
    max: usize,
    /// Bytes of an unfinished line carried over from earlier chunks.
    partial: BytesMut,
    /// Stream offset of `partial[0]` (equivalently: end of everything emitted).
    partial_start: u64,
    /// Parts of the current over-long line emitted so far.
    split_part: u32,
}

/// One line handed to the caller.
pub struct Line {
    pub bytes: Bytes,
    pub offset: u64,
    /// Offset just past this line, including its terminator.
    pub end: u64,
    pub marks: Marks,
    /// Known to be UTF-8 without NUL bytes (checked once for the whole chunk it came
    /// from), so the event skips its own checks.
    pub clean: bool,
}

impl Line {
    /// The event for this line, with the splitter's marks added to the event's own.
    #[inline]
    pub fn into_event(self, ts: Timestamp, origin: &Arc<OriginInfo>) -> Event {
        let origin = Origin { info: origin.clone(), offset: self.offset };
        let mut e = if self.clean {
            // SAFETY: `clean` is set only for lines of a region checked to be UTF-8
            // without NUL bytes (`LineSplitter::push`).
            unsafe { Event::from_clean_line(self.bytes, ts, origin) }
        } else {
            Event::from_line(self.bytes, ts, origin)
        };
        for bit in [Marks::SPLIT, Marks::SPLIT_LAST, Marks::NO_NEWLINE] {
            if self.marks.has(bit) {
                e.marks.set(bit);
            }
        }
        e.marks.split_part = self.marks.split_part;
        e
    }
}

impl LineSplitter {
    pub fn new(max_line_bytes: usize, start: u64) -> LineSplitter {
        LineSplitter { max: max_line_bytes.max(16), partial: BytesMut::new(), partial_start: start, split_part: 0 }
    }

    /// Offset up to which every byte has been emitted as (part of) a line.
    pub fn consumed(&self) -> u64 {
        self.partial_start
    }

    /// Bytes held for an unfinished line.
    pub fn pending(&self) -> usize {
        self.partial.len()
    }

    /// Feed the next chunk of the stream (it starts at offset `consumed() + pending()`).
    pub fn push(&mut self, chunk: Bytes, out: &mut impl FnMut(Line)) {
        let mut pos = 0usize;
        let base = self.partial_start + self.partial.len() as u64;
        if !self.partial.is_empty() {
            match memchr::memchr(b'\n', &chunk) {
                Some(i) => {
                    self.partial.extend_from_slice(&chunk[..i]);
                    let line = std::mem::take(&mut self.partial).freeze();
                    let off = self.partial_start;
                    self.partial_start = base + i as u64 + 1;
                    let end = self.partial_start;
                    self.emit_line(line, off, end, false, out);
                    pos = i + 1;
                }
                None => {
                    self.partial.extend_from_slice(&chunk);
                    self.cut_oversized_partial(out);
                    return;
                }
            }
        }
        let scan_from = pos;
        // The complete lines of this chunk, checked once: one vectorised pass over the
        // region costs far less than one call per line.
        let clean = memchr::memrchr(b'\n', &chunk[scan_from..]).is_some_and(|last| {
            let region = &chunk[scan_from..scan_from + last];
            simdutf8::basic::from_utf8(region).is_ok() && memchr::memchr(0, region).is_none()
        });
        for nl in memchr::memchr_iter(b'\n', &chunk[scan_from..]) {
            let end = scan_from + nl;
            let off = base + pos as u64;
            self.partial_start = base + end as u64 + 1;
            let line_end = self.partial_start;
            self.emit_line(chunk.slice(pos..end), off, line_end, clean, out);
            pos = end + 1;
        }
        if pos < chunk.len() {
            self.partial_start = base + pos as u64;
            self.partial.extend_from_slice(&chunk[pos..]);
            self.cut_oversized_partial(out);
        }
    }

    /// Emit what is held as a final line without a newline (end of input).
    pub fn finish(&mut self, out: &mut impl FnMut(Line)) {
        if self.partial.is_empty() {
            return;
        }
        let line = std::mem::take(&mut self.partial).freeze();
        let off = self.partial_start;
        self.partial_start += line.len() as u64;
        let mut marks_out = |mut l: Line| {
            l.marks.set(Marks::NO_NEWLINE);
            out(l)
        };
        let end = self.partial_start;
        self.emit_line_raw(line, off, end, false, &mut marks_out);
    }

    fn emit_line(&mut self, mut line: Bytes, off: u64, end: u64, clean: bool, out: &mut impl FnMut(Line)) {
        if line.last() == Some(&b'\r') {
            line.truncate(line.len() - 1);
        }
        self.emit_line_raw(line, off, end, clean, out)
    }

    fn emit_line_raw(&mut self, line: Bytes, off: u64, line_end: u64, clean: bool, out: &mut impl FnMut(Line)) {
        if line.len() <= self.max && self.split_part == 0 {
            out(Line { bytes: line, offset: off, end: line_end, marks: Marks::default(), clean });
            return;
        }
        // Over-long line (or the tail of one): emit parts, the last one marked.
        let mut rest = line;
        let mut off = off;
        loop {
            let last = rest.len() <= self.max;
            let cut = if last { rest.len() } else { utf8_cut(&rest, self.max) };
            let part = rest.split_to(cut);
            self.split_part += 1;
            let mut marks = Marks::default();
            marks.split_part = self.split_part;
            marks.set(Marks::SPLIT);
            if last {
                marks.set(Marks::SPLIT_LAST);
            }
            let len = part.len() as u64;
            let end = if last { line_end } else { off + len };
            out(Line { bytes: part, offset: off, end, marks, clean: false });
            off += len;
            if last {
                self.split_part = 0;
                return;
            }
        }
    }

    fn cut_oversized_partial(&mut self, out: &mut impl FnMut(Line)) {
        while self.partial.len() > self.max {
            let cut = utf8_cut(&self.partial, self.max);
            let part = self.partial.split_to(cut).freeze();
            self.split_part += 1;
            let mut marks = Marks::default();
            marks.split_part = self.split_part;
            marks.set(Marks::SPLIT);
            let off = self.partial_start;
            self.partial_start += part.len() as u64;
            out(Line { bytes: part, offset: off, end: self.partial_start, marks, clean: false });
        }
    }
}

/// A cut position at most `max`, moved back (at most 3 bytes) so that it does not split
/// a UTF-8 sequence.
fn utf8_cut(b: &[u8], max: usize) -> usize {
    let mut cut = max.min(b.len());
    let mut back = 0;
    while cut > 0 && cut < b.len() && back < 3 && (b[cut] & 0xC0) == 0x80 {
        cut -= 1;
        back += 1;
    }
    if cut == 0 {
        max
    } else {
        cut
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (bytes, offset, part, last part) of each line.
    type Got = (Vec<u8>, u64, u32, bool);

    fn run(max: usize, chunks: &[&[u8]], finish: bool) -> (Vec<Got>, u64) {
        let mut s = LineSplitter::new(max, 100);
        let mut got = Vec::new();
        let mut f = |l: Line| {
            assert!(l.end >= l.offset + l.bytes.len() as u64);
            got.push((l.bytes.to_vec(), l.offset, l.marks.split_part, l.marks.has(Marks::SPLIT_LAST)))
        };
        for c in chunks {
            s.push(Bytes::copy_from_slice(c), &mut f);
        }
        if finish {
            s.finish(&mut f);
        }
        (got, s.consumed())
    }

    #[test]
    fn lines_across_chunks_and_offsets() {
        let (got, consumed) = run(1024, &[b"ab\ncd", b"e\r\nf", b"g\nhalf"], false);
        let lines: Vec<_> = got.iter().map(|g| (String::from_utf8(g.0.clone()).unwrap(), g.1)).collect();
        assert_eq!(lines, vec![("ab".into(), 100), ("cde".into(), 103), ("fg".into(), 108)]);
        assert_eq!(consumed, 111);
        let (got, _) = run(1024, &[b"p", b"q\nx\ny\n\nz\nw"], false);
        let lines: Vec<_> = got.iter().map(|g| (String::from_utf8(g.0.clone()).unwrap(), g.1)).collect();
        assert_eq!(
            lines,
            vec![("pq".into(), 100), ("x".into(), 103), ("y".into(), 105), ("".into(), 107), ("z".into(), 108)]
        );
        let (got, consumed) = run(1024, &[b"x\nhalf"], true);
        assert_eq!(got[1].0, b"half");
        assert_eq!(consumed, 106);
    }

    #[test]
    fn long_lines_are_split_and_marked() {
        let long = vec![b'a'; 40];
        let mut input = long.clone();
        input.extend_from_slice(b"\nshort\n");
        // Fed in small chunks so the partial buffer has to be cut too.
        let chunks: Vec<&[u8]> = input.chunks(7).collect();
        let (got, consumed) = run(16, &chunks, false);
        let sizes: Vec<_> = got.iter().map(|g| (g.0.len(), g.2, g.3)).collect();
        assert_eq!(sizes, vec![(16, 1, false), (16, 2, false), (8, 3, true), (5, 0, false)]);
        let joined: Vec<u8> = got[..3].iter().flat_map(|g| g.0.clone()).collect();
        assert_eq!(joined, long);
        assert_eq!(got[1].1, 116);
        assert_eq!(consumed, 100 + input.len() as u64);
    }

    #[test]
    fn split_respects_utf8() {
        let s = "é".repeat(20); // 40 bytes of 2-byte chars
        let input = format!("{s}\n");
        let (got, _) = run(17, &[input.as_bytes()], false);
        for g in &got {
            assert!(std::str::from_utf8(&g.0).is_ok());
        }
        let joined: Vec<u8> = got.iter().flat_map(|g| g.0.clone()).collect();
        assert_eq!(joined, s.as_bytes());
    }

    /// Lines are marked clean only when their chunk's complete lines are all UTF-8
    /// without NUL; the events of unclean chunks still get their own marks.
    #[test]
    fn clean_only_when_the_chunk_is() {
        let info = OriginInfo::new("t", None);
        let run = |chunks: &[&[u8]]| {
            let mut s = LineSplitter::new(1 << 20, 0);
            let mut got = Vec::new();
            for c in chunks {
                s.push(Bytes::copy_from_slice(c), &mut |l: Line| got.push(l));
            }
            s.finish(&mut |l: Line| got.push(l));
            got.into_iter()
                .map(|l| {
                    let clean = l.clean;
                    let e = l.into_event(Timestamp(0), &info);
                    (clean, e.marks.has(Marks::INVALID_UTF8), e.marks.has(Marks::CONTAINS_NUL), e.message().to_string())
                })
                .collect::<Vec<_>>()
        };
        let got = run(&[b"a\nb\n"]);
        assert!(got.iter().all(|g| g.0 && !g.1 && !g.2));
        let got = run(&[b"ok\nbad \xff\nnul \0 x\n"]);
        let flags: Vec<_> = got.iter().map(|g| (g.0, g.1, g.2)).collect();
        assert_eq!(flags, [(false, false, false), (false, true, false), (false, false, true)]);
        assert_eq!(got[1].3, "bad \u{fffd}");
        // A line completed from a previous chunk is checked on its own.
        let got = run(&[b"par", b"t \xff\nnext\n"]);
        assert_eq!((got[0].0, got[0].1), (false, true));
        assert_eq!((got[1].0, got[1].1), (true, false));
    }
}
