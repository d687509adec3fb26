//! Step 1, masking: byte classes, token scanning and the token kinds that are variables.

use super::*;

pub(super) const C_SPACE: u8 = 1;
pub(super) const C_DIGIT: u8 = 2;
pub(super) const C_ALPHA: u8 = 4;
pub(super) const C_SEP: u8 = 8;
pub(super) const C_DOT: u8 = 16;
pub(super) const C_AT: u8 = 32;
pub(super) const C_EQ: u8 = 64;
pub(super) const C_COLON: u8 = 128;

/// Byte classes, one table lookup per byte.
pub(super) static CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        t[i] = if b.is_ascii_whitespace() {
            C_SPACE
        } else if b.is_ascii_digit() {
            C_DIGIT
        } else if b.is_ascii_alphabetic() || b >= 0x80 {
            C_ALPHA
        } else {
            let sep = matches!(
                b,
                b'.' | b':'
                    | b'-'
                    | b'_'
                    | b'/'
                    | b','
                    | b';'
                    | b'+'
                    | b'#'
                    | b'('
                    | b')'
                    | b'['
                    | b']'
                    | b'{'
                    | b'}'
                    | b'<'
                    | b'>'
                    | b'|'
                    | b'='
                    | b'\''
                    | b'"'
                    | b'%'
                    | b'@'
                    | b'*'
                    | b'\\'
                    | b'&'
                    | b'?'
                    | b'!'
                    | b'$'
                    | b'~'
            );
            (if sep { C_SEP } else { 0 })
                | if b == b'.' {
                    C_DOT
                } else if b == b'@' {
                    C_AT
                } else if b == b'=' {
                    C_EQ
                } else if b == b':' {
                    C_COLON
                } else {
                    0
                }
        };
        i += 1;
    }
    t
};

/// End of the token starting at `start` (the next whitespace byte) and which of
/// digits, `.`, `@`, `=`, `:` it holds (`C_*` bits), eight bytes at a time.
#[inline]
pub(super) fn token_scan(msg: &[u8], start: usize) -> (usize, u8) {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    // High bit of each byte equal to zero; false positives only above a true one, so
    // "is there any" and "where is the first" are exact.
    #[inline(always)]
    pub(super) fn zero_bytes(x: u64) -> u64 {
        x.wrapping_sub(ONES) & !x & HIGH
    }
    let n = msg.len();
    let mut e = start;
    let mut flags = 0u8;
    while e + 8 <= n {
        let w = u64::from_le_bytes(msg[e..e + 8].try_into().unwrap());
        let space = zero_bytes(w ^ (ONES * 0x20))
            | zero_bytes(w ^ (ONES * 0x09))
            | zero_bytes(w ^ (ONES * 0x0a))
            | zero_bytes(w ^ (ONES * 0x0d))
            | zero_bytes(w ^ (ONES * 0x0c));
        let within = if space == 0 { HIGH } else { HIGH & ((1u64 << (space.trailing_zeros() & !7)) - 1) };
        // ASCII digits: at least '0' and below ':' (computed on 7 bits, so no carry
        // crosses bytes; bytes ≥ 0x80 are excluded).
        let low = w & LOW7;
        let digit = (low + ONES * 0x50) & !(low + ONES * 0x46) & !w & HIGH;
        let pick = |m: u64, bit: u8| if m & within != 0 { bit } else { 0 };
        flags |= pick(digit, C_DIGIT)
            | pick(zero_bytes(w ^ (ONES * b'.' as u64)), C_DOT)
            | pick(zero_bytes(w ^ (ONES * b'@' as u64)), C_AT)
            | pick(zero_bytes(w ^ (ONES * b'=' as u64)), C_EQ)
            | pick(zero_bytes(w ^ (ONES * b':' as u64)), C_COLON);
        if space != 0 {
            return (e + (space.trailing_zeros() / 8) as usize, flags);
        }
        e += 8;
    }
    while e < n {
        let c = CLASS[msg[e] as usize];
        if c & C_SPACE != 0 {
            break;
        }
        flags |= c & (C_DIGIT | C_DOT | C_AT | C_EQ | C_COLON);
        e += 1;
    }
    (e, flags)
}

#[inline]
pub(super) fn is_alnum(b: u8) -> bool {
    CLASS[b as usize] & (C_DIGIT | C_ALPHA) != 0
}

/// Walks a message and produces masked tokens. Reused buffers; no allocation per line
/// once warm.
#[derive(Default)]
pub(super) struct Masker {
    /// Hash of the masked token sequence, computed while masking.
    pub(super) hash: u64,
    /// Rules switched off ([`rule`](super::rule) bits).
    pub(super) off: u32,
    pub(super) pieces: Vec<Piece>,
    /// Per token: range into `pieces`, or None for a whole-token variable.
    pub(super) toks: Vec<Option<(usize, usize)>>,
    pub(super) user: Vec<(usize, usize)>,
}

#[inline]
pub(super) fn is_sep(b: u8) -> bool {
    CLASS[b as usize] & C_SEP != 0
}

impl Masker {
    /// Mask `msg` into `self.toks` / `self.pieces` (offsets into `msg`).
    /// Mask `msg`; with `build`, also record the tokens (for a new shape).
    pub(super) fn run(&mut self, msg: &[u8], masks: &[regex::Regex], build: bool) {
        self.pieces.clear();
        self.toks.clear();
        self.user.clear();
        self.hash = 0;
        if !masks.is_empty() {
            if let Ok(s) = std::str::from_utf8(msg) {
                for m in masks {
                    for f in m.find_iter(s) {
                        if f.start() < f.end() {
                            self.user.push((f.start(), f.end()));
                        }
                    }
                }
                self.user.sort_unstable();
            }
        }
        let n = msg.len();
        let mut i = 0;
        let mut prev_var = false;
        while i < n {
            while i < n && CLASS[msg[i] as usize] & C_SPACE != 0 {
                i += 1;
            }
            if i >= n {
                break;
            }
            let start = i;
            let (end, seen) = token_scan(msg, start);
            let dots = if seen & C_DOT != 0 && seen & C_DIGIT != 0 {
                msg[start..end].iter().filter(|&&b| b == b'.').count()
            } else {
                0
            };
            i = end;
            let tok = &msg[start..end];
            let (digits, at, eq) = (seen & C_DIGIT != 0, seen & C_AT != 0, seen & C_EQ != 0);
            // A unit after a number belongs to it: `512 KB`, `30 ms`. Punctuation after
            // the unit stays literal (`(16.0 KB, free 400.0 MB)` → `(<*> <*>, free <*> <*>)`)
            // so a parameter never takes a bracket of the text around it.
            if prev_var && !digits && tok.len() <= 7 && self.off & rule::UNITS == 0 && is_unit(tok) {
                let (_, trail) = Self::framing(tok);
                if trail == 0 {
                    continue;
                }
                let p0 = self.pieces.len();
                self.push_framed(start, end, 0, trail);
                self.end_token(msg, p0, build);
                prev_var = false;
                continue;
            }
            if !self.user.is_empty() && self.user_covers(start, end) {
                self.push_var(prev_var, build);
                prev_var = true;
                continue;
            }
            // Whole-token variables (paths, URLs, addresses, host names, dates) are
            // recognised inside the brackets and `:`, `,`, `;` framing them, which stay
            // literal: `(/var/log/x):` → `(<*>):`.
            // (Most tokens neither start nor end with punctuation, or cannot be one of
            // these variables whatever their framing: no framing to look for.)
            let opened = tok.iter().take_while(|&&b| matches!(b, b'(' | b'[' | b'{')).count();
            let first = tok.get(opened).copied().unwrap_or(0);
            let candidate = at
                || (digits && dots >= 2)
                || seen & C_COLON != 0
                || matches!(first, b'/' | b'.' | b'~' | b'h' | b'\\')
                || first.is_ascii_uppercase()
                || tok.len() <= 4;
            let framed =
                candidate && (opened > 0 || matches!(tok[tok.len() - 1], b')' | b']' | b'}' | b':' | b',' | b';'));
            let (lead, trail) = if framed { Self::outer_framing(tok) } else { (0, 0) };
            let inner = &tok[lead..tok.len() - trail];
            let whole_var = ((inner.len() > 2
                && (matches!(inner[0], b'/' | b'.' | b'~' | b'h' | b'\\') || inner[1] == b':')
                && is_path_or_url(inner))
                || (at && is_email(inner))
                || (!digits
                    && self.off & rule::DATE_WORDS == 0
                    && inner.len() >= 3
                    && inner.len() <= 10
                    && inner[0].is_ascii_uppercase()
                    && is_date_word(inner))
                || (digits && dots >= 2 && self.off & rule::HOSTS_WITH_DIGITS == 0 && is_host_with_digits(inner))
                || (seen & C_COLON != 0 && inner.len() >= 3 && is_ipv6(inner))
                || (inner.len() == 2 && is_empty_pair(inner)))
                // (Not one whose brackets do not balance: `http://{"a":"b` keeps its `{`.)
                && (!has_bracket(inner) || bytes_balance(inner));
            // An empty pair of brackets is a value left empty: `()` is `(<*>)` with nothing
            // in it, the same token as `(host.name)` is.
            let (lead, trail) =
                if whole_var && lead == 0 && trail == 0 && tok.len() == 2 && tok[0] != b'"' && tok[0] != b'\'' {
                    (1, 1)
                } else {
                    (lead, trail)
                };
            if whole_var && lead == 0 && trail == 0 {
                self.push_var(prev_var, build);
                prev_var = true;
                continue;
            }
            if whole_var {
                let p0 = self.pieces.len();
                self.push_framed(start, end, lead, trail);
                self.end_token(msg, p0, build);
                prev_var = false;
                continue;
            }
            if !digits && !eq {
                // A plain word: no variable inside.
                self.hash = mix(hash_bytes(self.hash, tok), SEP_HASH);
                if build {
                    let p0 = self.pieces.len();
                    self.pieces.push(Piece::Lit(start, end));
                    self.toks.push(Some((p0, p0 + 1)));
                }
                prev_var = false;
                continue;
            }
            let p0 = self.pieces.len();
            let all_var = self.mask_token(msg, start, end);
            // Punctuation around a variable stays literal: `user <*>: <*>`, `(<*>,`,
            // `<*>)`, `[<*>]`. A parameter never carries the brackets of the text
            // around it, so a template's brackets balance wherever its lines' do.
            // A bracket between the variables (`0x7fa8(2004)`, `*)0)`) keeps the token as
            // its pieces: collapsing it would take the bracket into a parameter.
            let all_var = all_var
                && (self.pieces.len() - p0 <= 2
                    || !self.pieces[p0..].iter().enumerate().any(|(k, p)| match *p {
                        Piece::Lit(a, b) => {
                            k > 0 && k + 1 < self.pieces.len() - p0 && msg[a..b].iter().any(|c| b"()[]{}".contains(c))
                        }
                        Piece::Var => false,
                    }));
            let (lead, trail) = if all_var { Self::framing(tok) } else { (0, 0) };
            // Nor does a bracket the framing leaves inside (`0[-]`: the `]` frames, the
            // `[` would be taken): the token keeps its pieces, `<*>[-]`.
            let all_var = all_var && !has_bracket(&tok[lead..tok.len() - trail]);
            if all_var && lead == 0 && trail == 0 {
                self.pieces.truncate(p0);
                self.push_var(prev_var, build);
                prev_var = true;
                continue;
            }
            if all_var {
                self.pieces.truncate(p0);
                self.push_framed(start, end, lead, trail);
            }
            self.end_token(msg, p0, build);
            prev_var = false;
        }
    }

    /// One variable with `lead` bytes of literal text before it and `trail` after it.
    fn push_framed(&mut self, start: usize, end: usize, lead: usize, trail: usize) {
        if lead > 0 {
            self.pieces.push(Piece::Lit(start, start + lead));
        }
        self.pieces.push(Piece::Var);
        if trail > 0 {
            self.pieces.push(Piece::Lit(end - trail, end));
        }
    }

    /// The token made of pieces `p0..` is complete: hash it, and keep it when building.
    fn end_token(&mut self, msg: &[u8], p0: usize, build: bool) {
        self.hash_pieces(msg, p0);
        if build {
            self.toks.push(Some((p0, self.pieces.len())));
        } else {
            self.pieces.truncate(p0);
        }
    }

    /// How many bytes of `tok` (a token holding only variables and separators) frame it:
    /// opening brackets before, closing brackets and `:`, `,`, `;` after. At least one
    /// byte is left for the variable.
    fn framing(tok: &[u8]) -> (usize, usize) {
        // Brackets before the value, with the punctuation among them (`*)0)`: `*)` is text;
        // `******1234` has no bracket: all value).
        let run = tok
            .iter()
            .take_while(|&&b| {
                matches!(
                    b,
                    b'(' | b'[' | b'{' | b')' | b']' | b'}' | b'<' | b'*' | b'&' | b'|' | b'=' | b':' | b',' | b';'
                )
            })
            .count();
        let lead = if tok[..run].iter().any(|b| b"([{)]}".contains(b)) { run } else { 0 };
        // After the value: closing brackets, `:`, `,`, `;`, and an opening bracket that
        // starts the next part (`01:23:02.14[`). A full stop after a closing bracket ends
        // a sentence: `(TID 4).`
        let stop =
            usize::from(tok.len() >= 2 && tok.ends_with(b".") && matches!(tok[tok.len() - 2], b')' | b']' | b'}'));
        let trail = stop
            + tok[lead..tok.len() - stop]
                .iter()
                .rev()
                .take_while(|&&b| matches!(b, b')' | b']' | b'}' | b'>' | b':' | b',' | b';' | b'(' | b'[' | b'{'))
                .count();
        if lead + trail >= tok.len() {
            (0, 0)
        } else {
            (lead, trail)
        }
    }

    /// The brackets and `:`, `,`, `;` around a token: opening brackets before it, and
    /// after it closing brackets the token does not open itself (`(x)` inside a URL
    /// stays) and `:`, `,`, `;`. At least one byte is left inside.
    fn outer_framing(tok: &[u8]) -> (usize, usize) {
        let lead = tok.iter().take_while(|&&b| matches!(b, b'(' | b'[' | b'{')).count();
        let body = &tok[lead..];
        // The common case, no bracket at either end (`failed:`, `42,`): no counting.
        let plain = body.iter().rev().take_while(|&&b| matches!(b, b':' | b',' | b';')).count();
        if lead == 0 && (plain == body.len() || !matches!(body[body.len() - 1 - plain], b')' | b']' | b'}')) {
            return if plain >= tok.len() { (0, 0) } else { (0, plain) };
        }
        // Opening and closing brackets of each kind in the body, in one pass.
        let mut n = [0usize; 6];
        for &b in body {
            match b {
                b'(' => n[0] += 1,
                b')' => n[1] += 1,
                b'[' => n[2] += 1,
                b']' => n[3] += 1,
                b'{' => n[4] += 1,
                b'}' => n[5] += 1,
                _ => {}
            }
        }
        let mut trail = 0;
        while trail < body.len() {
            let b = body[body.len() - 1 - trail];
            // A closing bracket is framing when the body does not open it itself.
            let k = match b {
                b':' | b',' | b';' => None,
                b')' => Some(0),
                b']' => Some(2),
                b'}' => Some(4),
                _ => break,
            };
            if let Some(k) = k {
                if n[k + 1] <= n[k] {
                    break;
                }
                n[k + 1] -= 1;
            }
            trail += 1;
        }
        // The brackets left inside must pair up among themselves (`[2001:db8::1]:443`
        // keeps its `[`: the `]` inside closes it).
        let paired = n[0] == n[1] && n[2] == n[3] && n[4] == n[5];
        if lead + trail >= tok.len() || !paired {
            (0, 0)
        } else {
            (lead, trail)
        }
    }

    /// A whole-token variable; one after another fold into one.
    #[inline]
    pub(super) fn push_var(&mut self, prev_var: bool, build: bool) {
        if !prev_var {
            self.hash = mix(mix(self.hash, VAR_HASH), SEP_HASH);
            if build {
                self.toks.push(None);
            }
        }
    }

    pub(super) fn user_covers(&self, start: usize, end: usize) -> bool {
        self.user.iter().any(|&(s, e)| s <= start && e >= end)
    }

    /// Pieces of one token; true when it holds no letters outside variables.
    pub(super) fn mask_token(&mut self, msg: &[u8], start: usize, end: usize) -> bool {
        let p0 = self.pieces.len();
        let tok = &msg[start..end];
        let mut lit_from = start;
        let mut has_word = false;
        let mut has_var = false;
        let mut j = start;
        // key=value whose value is a host name: the value is a variable.
        let value_from = memchr::memchr(b'=', tok)
            .filter(|&k| {
                self.off & rule::HOST_VALUES == 0 && k > 0 && k + 1 < tok.len() && is_host(&tok[k + 1..], false)
            })
            .map(|k| start + k + 1);
        while j < end {
            if let Some(v) = value_from {
                if j == v {
                    let mut vend = end;
                    while vend > v && matches!(msg[vend - 1], b')' | b']' | b',' | b';' | b'.' | b':' | b'}') {
                        vend -= 1;
                    }
                    if vend > v {
                        if lit_from < j {
                            self.pieces.push(Piece::Lit(lit_from, j));
                        }
                        self.pieces.push(Piece::Var);
                        has_var = true;
                        lit_from = vend;
                        j = vend;
                        continue;
                    }
                }
            }
            if is_alnum(msg[j])
                || (msg[j] == b'-'
                    && j + 1 < end
                    && msg[j + 1].is_ascii_digit()
                    && (j == start || !is_alnum(msg[j - 1])))
            {
                let rs = j;
                let mut digit;
                if msg[j] == b'-' {
                    j += 1;
                }
                let mut seen = 0u8;
                while j < end {
                    let c = CLASS[msg[j] as usize];
                    if c & (C_DIGIT | C_ALPHA) == 0 {
                        break;
                    }
                    seen |= c;
                    j += 1;
                }
                digit = seen & C_DIGIT != 0;
                // Interface and device names (`eth0`, `awdl0`, `ee0`): letters and one digit.
                let run = &msg[rs..j];
                if digit
                    && self.off & rule::DEVICE_NAMES == 0
                    && run.len() <= 6
                    && run.len() >= 3
                    && run[..run.len() - 1].iter().all(u8::is_ascii_alphabetic)
                    && run[run.len() - 1].is_ascii_digit()
                {
                    digit = false;
                }
                if digit {
                    if lit_from < rs {
                        self.pieces.push(Piece::Lit(lit_from, rs));
                    }
                    self.pieces.push(Piece::Var);
                    has_var = true;
                    lit_from = j;
                } else {
                    has_word = true;
                }
            } else {
                if !is_sep(msg[j]) {
                    has_word = true;
                }
                j += 1;
            }
        }
        if lit_from < end {
            self.pieces.push(Piece::Lit(lit_from, end));
        }
        // One id written in parts (`attempt_1445_0020_m_000000_0`, `R02-M1-N0-C:J12`):
        // variables joined by separators and one- or two-letter words are one variable.
        let ps = &self.pieces[p0..];
        if let (Some(f), Some(l)) =
            (ps.iter().position(|x| *x == Piece::Var), ps.iter().rposition(|x| *x == Piece::Var))
        {
            if l > f + 1
                && self.off & rule::JOINED_IDS == 0
                && ps[f..=l].iter().all(|x| match *x {
                    Piece::Var => true,
                    // (Not across a bracket: `0x7f(115)` is two values, and the
                    // brackets stay in the template.)
                    Piece::Lit(a, b) => {
                        !msg[a..b].iter().any(|c| b"()[]{}".contains(c))
                            && msg[a..b]
                                .split(|&c| is_sep(c))
                                .all(|w| w.len() <= 2 && w.iter().all(u8::is_ascii_alphabetic))
                    }
                })
            {
                let tail: Vec<Piece> = ps[l + 1..].to_vec();
                self.pieces.truncate(p0 + f + 1);
                self.pieces.extend(tail);
                let ps = &self.pieces[p0..];
                has_word = ps.iter().any(|x| match *x {
                    Piece::Var => false,
                    Piece::Lit(a, b) => msg[a..b].iter().any(|&c| !is_sep(c)),
                });
            }
        }
        has_var && !has_word
    }

    /// Hash of the masked token sequence.
    /// Add one token made of pieces `p0..` to the running hash. A token of one literal
    /// piece hashes like a plain word.
    #[inline]
    pub(super) fn hash_pieces(&mut self, msg: &[u8], p0: usize) {
        let mut h = self.hash;
        for p in &self.pieces[p0..] {
            h = match *p {
                Piece::Var => mix(h, VAR_HASH ^ 1),
                Piece::Lit(s, e) => hash_bytes(h, &msg[s..e]),
            };
        }
        self.hash = mix(h, SEP_HASH);
    }

    pub(super) fn shape_tokens(&self, msg: &[u8]) -> Vec<Tok> {
        self.toks
            .iter()
            .map(|t| match t {
                None => Tok::Var,
                Some((a, b)) => {
                    let mut s = String::new();
                    for p in &self.pieces[*a..*b] {
                        match *p {
                            Piece::Var => s.push_str(VAR),
                            Piece::Lit(x, y) => s.push_str(&String::from_utf8_lossy(&msg[x..y])),
                        }
                    }
                    Tok::Lit(s.into())
                }
            })
            .collect()
    }
}

/// URLs and paths with at least two slashes (`/var/log/x`, `./a/b`, `~/x/y`).
/// Any of `()[]{}` in `t`: one branch-free pass (it runs on every value token).
#[inline]
pub(super) fn has_bracket(t: &[u8]) -> bool {
    // `[` and `]` are `{` and `}` without the 0x20 bit; `(` and `)` have it. (Control
    // bytes 0x08 and 0x09 pass too: a token holding one keeps its pieces, harmlessly.)
    t.iter().fold(false, |a, &b| a | matches!(b | 0x20, b'(' | b')' | b'{' | b'}'))
}

pub(super) fn is_path_or_url(t: &[u8]) -> bool {
    t.starts_with(b"http://")
        || t.starts_with(b"https://")
        || ((t[0] == b'/' || t.starts_with(b"./") || t.starts_with(b"~/")) && memchr::memchr(b'/', &t[1..]).is_some())
        // Windows: `C:\Windows\x.dll`, `\\host\share\x`.
        || (t.len() > 3 && t[0].is_ascii_alphabetic() && t[1] == b':' && t[2] == b'\\')
        || (t.len() > 3 && t.starts_with(b"\\\\") && memchr::memchr(b'\\', &t[2..]).is_some())
}

/// Units written after a number.
pub(super) fn is_unit(t: &[u8]) -> bool {
    let t = t.strip_suffix(b",").or_else(|| t.strip_suffix(b")")).unwrap_or(t);
    matches!(
        t,
        b"B" | b"KB"
            | b"MB"
            | b"GB"
            | b"TB"
            | b"KiB"
            | b"MiB"
            | b"GiB"
            | b"TiB"
            | b"kB"
            | b"bytes"
            | b"ms"
            | b"us"
            | b"ns"
            | b"s"
            | b"sec"
            | b"secs"
            | b"seconds"
            | b"msec"
            | b"millis"
            | b"minutes"
            | b"min"
            | b"mins"
            | b"%"
    )
}

/// Month and weekday names (timestamps written out): `Jul`, `Sun`, `March,`.
pub(super) fn is_date_word(t: &[u8]) -> bool {
    let t = t.strip_suffix(b",").unwrap_or(t);
    matches!(
        t,
        b"Jan"
            | b"Feb"
            | b"Mar"
            | b"Apr"
            | b"May"
            | b"Jun"
            | b"Jul"
            | b"Aug"
            | b"Sep"
            | b"Oct"
            | b"Nov"
            | b"Dec"
            | b"Mon"
            | b"Tue"
            | b"Wed"
            | b"Thu"
            | b"Fri"
            | b"Sat"
            | b"Sun"
            | b"January"
            | b"February"
            | b"March"
            | b"April"
            | b"June"
            | b"July"
            | b"August"
            | b"September"
            | b"October"
            | b"November"
            | b"December"
            | b"Monday"
            | b"Tuesday"
            | b"Wednesday"
            | b"Thursday"
            | b"Friday"
            | b"Saturday"
            | b"Sunday"
    )
}

/// A DNS name with a digit in it (`lns-vlq-45-81.adsl.proxad.net`,
/// `MSRA-SA-41.fareast.corp.microsoft.com:8030`), inside brackets or not: at least three
/// labels, the first with a digit or `-`, a lower-case alphabetic top-level label, an
/// optional `:port`. Dotted names such as `org.apache.hadoop.v2.Foo` are not.
pub(super) fn is_host_with_digits(t: &[u8]) -> bool {
    is_host(t, true)
}

/// Host name test; `strict` also requires a digit, and a digit or `-` in the first label.
pub(super) fn is_host(t: &[u8], strict: bool) -> bool {
    let t = t.strip_prefix(b"(").or_else(|| t.strip_prefix(b"[")).unwrap_or(t);
    let t = t.strip_suffix(b")").or_else(|| t.strip_suffix(b"]")).or_else(|| t.strip_suffix(b",")).unwrap_or(t);
    let t = match memchr::memrchr(b':', t) {
        Some(c) if c + 1 < t.len() && t[c + 1..].iter().all(u8::is_ascii_digit) => &t[..c],
        _ => t,
    };
    // Quick rejection first: the top-level label is lower-case letters.
    match memchr::memrchr(b'.', t) {
        Some(d) if t.len() > d + 2 && t[d + 1..].iter().all(u8::is_ascii_lowercase) => {}
        _ => return false,
    }
    if strict && !t.iter().any(u8::is_ascii_digit) {
        return false;
    }
    let mut n = 0;
    let mut last: &[u8] = &[];
    for (i, l) in t.split(|&b| b == b'.').enumerate() {
        if l.is_empty() || !l.iter().all(|&b| b.is_ascii_alphanumeric() || b == b'-') {
            return false;
        }
        if i == 0 && strict && !l.iter().any(|&b| b.is_ascii_digit() || b == b'-') {
            return false;
        }
        n += 1;
        last = l;
    }
    n >= 3 && (2..=6).contains(&last.len()) && last.iter().all(u8::is_ascii_lowercase)
}

/// An IPv6 address (`fe80::abcd`, `[2001:db8::1]:443`): hex groups and colons, with
/// `::` or seven colons.
pub(super) fn is_ipv6(t: &[u8]) -> bool {
    let t = t.strip_prefix(b"[").unwrap_or(t);
    let t = match memchr::memchr(b']', t) {
        Some(i) => &t[..i],
        None => t.strip_suffix(b",").unwrap_or(t),
    };
    // One pass, stopping at the first byte that cannot be in an address.
    let (mut colons, mut double, mut prev) = (0, false, 0u8);
    for &b in t {
        if b == b':' {
            colons += 1;
            double |= prev == b':';
        } else if !(b.is_ascii_hexdigit() || b == b'.') {
            return false;
        }
        prev = b;
    }
    colons >= 2 && (double || colons == 7)
}

/// An empty value: `()`, `[]`, `{}`, `""`, `''`, `<>`.
pub(super) fn is_empty_pair(t: &[u8]) -> bool {
    matches!(t, b"()" | b"[]" | b"{}" | b"\"\"" | b"''" | b"<>")
}

pub(super) fn is_email(t: &[u8]) -> bool {
    match memchr::memchr(b'@', t) {
        Some(at) if at > 0 => {
            t[at + 1..].contains(&b'.') && t[..at].iter().all(|&b| is_alnum(b) || b"._%+-".contains(&b))
        }
        _ => false,
    }
}
