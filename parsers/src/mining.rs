//! Template mining: learn printf templates (`Payment failed for user <*>: <*>`) from
//! messages nobody wrote a template for. Online, bounded, deterministic.
//!
//! How a message becomes a template:
//! 1. **Masking.** The message is split on whitespace. Inside each token, every run of
//!    letters and digits that contains a digit is a variable (`blk_-123` → `blk_<*>`,
//!    `ORD-00042` → `ORD-<*>`, `30000ms`, `0x1f`, ports, hex and numeric ids); variables
//!    joined by separators and one- or two-letter words are one variable
//!    (`attempt_1445_0020_m_000000_0` → `attempt_<*>`). Interface names (`eth0`, `ee0`)
//!    are words. Whole tokens that are e-mail addresses, URLs, paths, IPv6 addresses, host names with a
//!    digit, month and weekday names, or empty values (`()`, `""`) are variables, as is
//!    the value of `key=host.name`. A token made only of variables and separators
//!    (`10.0.0.1:8080`, a UUID, `1.5s`, `12:00:01`, `"x1"`) is one variable; a unit
//!    after it (`512 KB`, `30 ms`) belongs to it; consecutive variable tokens fold into
//!    one, so a variable spanning a different number of tokens does not split a
//!    template (Drain3 #66). Quoted words (`'Active'`) and word values of `key=value`
//!    are not masked: they are usually states, and merge only by step 3. User masks
//!    (regexes) run first.
//! 2. **Shapes.** The masked token sequence is a *shape*, found by a 64-bit hash in one
//!    map lookup: the whole per-line cost once a shape has been seen.
//! 3. **Templates.** A new shape joins an existing template it fits (a `<*>` may take
//!    one or more tokens), or starts its own. Templates that differ in one word only
//!    are kept apart until that position has shown `min_distinct` (4) different words,
//!    twice that if every one is capitalised (`Started`, `GET`): a few values
//!    (`opened`/`closed`, `up`/`down`, `Paused`/`Resumed`) are different messages, not a
//!    variable (the Drain3 #109 merge); many values (user names, host names) are one.
//!    A word generalises only with `min_context` (3) other words in the template, and
//!    the first word with one more: short messages are named by their words (`boot
//!    (command <*>)`, `cupsd startup succeeded`).
//!
//! Ids: `template_id` is the FNV-1a hash of the template text, the same in every
//! process. When templates generalise, the merged template gets a new id (its text
//! changed); the old ids stay known as aliases, [`Miner::resolve`] maps any id seen
//! before to the template that absorbed it, and lines mined earlier keep the id they
//! were given.

use std::collections::HashMap;

/// The text of a variable in a template.
pub const VAR: &str = "<*>";

#[derive(Debug, Clone)]
pub struct MinerConfig {
    /// Templates kept; the least recently seen are forgotten beyond this.
    pub max_templates: usize,
    /// Distinct words at one position before templates differing only there merge.
    pub min_distinct: usize,
    /// User masks: text matching any of these is a variable (applied before the rest).
    pub masks: Vec<regex::Regex>,
    /// Other literal tokens a template needs before one of its words may generalise.
    pub min_context: usize,
}

impl Default for MinerConfig {
    fn default() -> Self {
        MinerConfig { max_templates: 10_000, min_distinct: 4, masks: Vec::new(), min_context: 3 }
    }
}

use sluice_event::hash::{hash_bytes, mix, HashKeyed as IdMap};

const VAR_HASH: u64 = 0x9e37_79b9_7f4a_7c15;
const SEP_HASH: u64 = 0x2545_f491_4f6c_dd1d;

/// One piece of a masked token.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Piece {
    Lit(usize, usize),
    Var,
}

/// A token of a shape or template: literal text (which may contain `<*>` for masked
/// parts of the token) or a whole-token variable.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Tok {
    Var,
    Lit(Box<str>),
}

impl Tok {
    fn text(&self) -> &str {
        match self {
            Tok::Var => VAR,
            Tok::Lit(s) => s,
        }
    }
}

const C_SPACE: u8 = 1;
const C_DIGIT: u8 = 2;
const C_ALPHA: u8 = 4;
const C_SEP: u8 = 8;
const C_DOT: u8 = 16;
const C_AT: u8 = 32;
const C_EQ: u8 = 64;
const C_COLON: u8 = 128;

/// Byte classes, one table lookup per byte.
static CLASS: [u8; 256] = {
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
fn token_scan(msg: &[u8], start: usize) -> (usize, u8) {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    // High bit of each byte equal to zero; false positives only above a true one, so
    // "is there any" and "where is the first" are exact.
    #[inline(always)]
    fn zero_bytes(x: u64) -> u64 {
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
fn is_alnum(b: u8) -> bool {
    CLASS[b as usize] & (C_DIGIT | C_ALPHA) != 0
}

/// Walks a message and produces masked tokens. Reused buffers; no allocation per line
/// once warm.
#[derive(Default)]
struct Masker {
    /// Hash of the masked token sequence, computed while masking.
    hash: u64,
    pieces: Vec<Piece>,
    /// Per token: range into `pieces`, or None for a whole-token variable.
    toks: Vec<Option<(usize, usize)>>,
    user: Vec<(usize, usize)>,
}

#[inline]
fn is_sep(b: u8) -> bool {
    CLASS[b as usize] & C_SEP != 0
}

impl Masker {
    /// Mask `msg` into `self.toks` / `self.pieces` (offsets into `msg`).
    /// Mask `msg`; with `build`, also record the tokens (for a new shape).
    fn run(&mut self, msg: &[u8], masks: &[regex::Regex], build: bool) {
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
            // A unit after a number belongs to it: `512 KB`, `30 ms`.
            if prev_var && !digits && tok.len() <= 7 && is_unit(tok) {
                continue;
            }
            let whole_var = (!self.user.is_empty() && self.user_covers(start, end))
                || (tok.len() > 2
                    && (tok[0] == b'/' || tok[0] == b'.' || tok[0] == b'~' || tok[0] == b'h')
                    && is_path_or_url(tok))
                || (at && is_email(tok))
                || (!digits && tok.len() >= 3 && tok.len() <= 10 && tok[0].is_ascii_uppercase() && is_date_word(tok))
                || (digits && dots >= 2 && is_host_with_digits(tok))
                || (seen & C_COLON != 0 && tok.len() >= 3 && is_ipv6(tok))
                || (tok.len() == 2 && is_empty_pair(tok));
            if whole_var {
                self.push_var(prev_var, build);
                prev_var = true;
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
            if all_var && !(end - start > 1 && matches!(msg[end - 1], b':' | b',' | b';')) {
                self.pieces.truncate(p0);
                self.push_var(prev_var, build);
                prev_var = true;
                continue;
            }
            if all_var {
                // `42:` keeps its punctuation: `user <*>: <*>`.
                self.pieces.truncate(p0);
                self.pieces.push(Piece::Var);
                self.pieces.push(Piece::Lit(end - 1, end));
            }
            self.hash_pieces(msg, p0);
            if build {
                self.toks.push(Some((p0, self.pieces.len())));
            } else {
                self.pieces.truncate(p0);
            }
            prev_var = false;
        }
    }

    /// A whole-token variable; one after another fold into one.
    #[inline]
    fn push_var(&mut self, prev_var: bool, build: bool) {
        if !prev_var {
            self.hash = mix(mix(self.hash, VAR_HASH), SEP_HASH);
            if build {
                self.toks.push(None);
            }
        }
    }

    fn user_covers(&self, start: usize, end: usize) -> bool {
        self.user.iter().any(|&(s, e)| s <= start && e >= end)
    }

    /// Pieces of one token; true when it holds no letters outside variables.
    fn mask_token(&mut self, msg: &[u8], start: usize, end: usize) -> bool {
        let p0 = self.pieces.len();
        let tok = &msg[start..end];
        let mut lit_from = start;
        let mut has_word = false;
        let mut has_var = false;
        let mut j = start;
        // key=value whose value is a host name: the value is a variable.
        let value_from = memchr::memchr(b'=', tok)
            .filter(|&k| k > 0 && k + 1 < tok.len() && is_host(&tok[k + 1..], false))
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
                && ps[f..=l].iter().all(|x| match *x {
                    Piece::Var => true,
                    Piece::Lit(a, b) => {
                        msg[a..b].split(|&c| is_sep(c)).all(|w| w.len() <= 2 && w.iter().all(u8::is_ascii_alphabetic))
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
    fn hash_pieces(&mut self, msg: &[u8], p0: usize) {
        let mut h = self.hash;
        for p in &self.pieces[p0..] {
            h = match *p {
                Piece::Var => mix(h, VAR_HASH ^ 1),
                Piece::Lit(s, e) => hash_bytes(h, &msg[s..e]),
            };
        }
        self.hash = mix(h, SEP_HASH);
    }

    fn shape_tokens(&self, msg: &[u8]) -> Vec<Tok> {
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
fn is_path_or_url(t: &[u8]) -> bool {
    t.starts_with(b"http://")
        || t.starts_with(b"https://")
        || ((t[0] == b'/' || t.starts_with(b"./") || t.starts_with(b"~/")) && memchr::memchr(b'/', &t[1..]).is_some())
}

/// Units written after a number.
fn is_unit(t: &[u8]) -> bool {
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
fn is_date_word(t: &[u8]) -> bool {
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
fn is_host_with_digits(t: &[u8]) -> bool {
    is_host(t, true)
}

/// Host name test; `strict` also requires a digit, and a digit or `-` in the first label.
fn is_host(t: &[u8], strict: bool) -> bool {
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
fn is_ipv6(t: &[u8]) -> bool {
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
fn is_empty_pair(t: &[u8]) -> bool {
    matches!(t, b"()" | b"[]" | b"{}" | b"\"\"" | b"''" | b"<>")
}

fn is_email(t: &[u8]) -> bool {
    match memchr::memchr(b'@', t) {
        Some(at) if at > 0 => {
            t[at + 1..].contains(&b'.') && t[..at].iter().all(|&b| is_alnum(b) || b"._%+-".contains(&b))
        }
        _ => false,
    }
}

/// A learned template.
#[derive(Debug, Clone)]
pub struct Template {
    pub tokens: Vec<Tok>,
    /// Lines mined into this template (including templates merged into it).
    pub count: u64,
    /// Stable id: FNV-1a of the text, 16 hex digits.
    pub id: String,
    pub text: String,
    /// An example line (the first seen).
    pub example: String,
    /// Ids of templates merged into this one.
    pub aliases: Vec<String>,
    /// Set when this template was merged into another (index).
    merged_into: Option<u32>,
    last_seen: u64,
}

/// Result of mining one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mined {
    /// Index of the shape (stable for this miner; use with [`Miner::template_of_shape`]).
    pub shape: u32,
    /// Index of the template now holding the message.
    pub template: u32,
}

struct Shape {
    template: u32,
}

/// The online template miner.
pub struct Miner {
    cfg: MinerConfig,
    masker: Masker,
    shapes: IdMap<u32>,
    shape_list: Vec<Shape>,
    templates: Vec<Template>,
    /// Live templates by token count.
    by_len: HashMap<usize, Vec<u32>>,
    /// (len, position, hash of the other tokens) → (distinct words seen there, members).
    families: IdMap<Family>,
    clock: u64,
    live: usize,
}

#[derive(Default)]
struct Family {
    words: Vec<u64>,
    members: Vec<u32>,
    /// Every word so far starts with a capital (`Started`, `GET`): states and verbs,
    /// which need twice as many distinct values to count as a variable.
    capitalised: bool,
}

impl Miner {
    pub fn new(cfg: MinerConfig) -> Miner {
        Miner {
            cfg,
            masker: Masker::default(),
            shapes: IdMap::default(),
            shape_list: Vec::new(),
            templates: Vec::new(),
            by_len: HashMap::new(),
            families: IdMap::default(),
            clock: 0,
            live: 0,
        }
    }

    pub fn config(&self) -> &MinerConfig {
        &self.cfg
    }

    /// Mine one message.
    pub fn mine(&mut self, msg: &[u8]) -> Mined {
        self.clock += 1;
        self.masker.run(msg, &self.cfg.masks, false);
        let h = self.masker.hash;
        if let Some(&s) = self.shapes.get(&h) {
            let t = self.root(self.shape_list[s as usize].template);
            self.shape_list[s as usize].template = t;
            let tpl = &mut self.templates[t as usize];
            tpl.count += 1;
            tpl.last_seen = self.clock;
            return Mined { shape: s, template: t };
        }
        self.masker.run(msg, &self.cfg.masks, true);
        let toks = self.masker.shape_tokens(msg);
        let t = match self.find_fit(&toks) {
            Some(t) => t,
            None => self.add_template(toks, msg),
        };
        let t = self.root(t);
        let tpl = &mut self.templates[t as usize];
        tpl.count += 1;
        tpl.last_seen = self.clock;
        let s = self.shape_list.len() as u32;
        self.shape_list.push(Shape { template: t });
        self.shapes.insert(h, s);
        if self.live > self.cfg.max_templates {
            self.evict();
        }
        Mined { shape: s, template: t }
    }

    /// Distinct masked token sequences seen (each one map entry).
    pub fn shape_count(&self) -> usize {
        self.shapes.len()
    }

    /// The template a shape belongs to now (after later merges).
    pub fn template_of_shape(&self, shape: u32) -> u32 {
        self.root(self.shape_list[shape as usize].template)
    }

    pub fn template(&self, t: u32) -> &Template {
        &self.templates[t as usize]
    }

    /// Live templates (not merged into another), most frequent first.
    pub fn templates(&self) -> Vec<&Template> {
        let mut v: Vec<&Template> =
            self.templates.iter().filter(|t| t.merged_into.is_none() && !t.tokens.is_empty()).collect();
        v.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.text.cmp(&b.text)));
        v
    }

    /// The live template that an id (current or an alias) now belongs to.
    pub fn resolve(&self, id: &str) -> Option<&Template> {
        let i = self.templates.iter().position(|t| t.id == id)?;
        Some(&self.templates[self.root(i as u32) as usize])
    }

    fn root(&self, mut t: u32) -> u32 {
        while let Some(n) = self.templates[t as usize].merged_into {
            t = n;
        }
        t
    }

    /// A live template the shape fits: same length with `<*>` where they differ, or a
    /// `<*>` that takes several tokens.
    fn find_fit(&self, toks: &[Tok]) -> Option<u32> {
        if let Some(c) = self.by_len.get(&toks.len()) {
            for &t in c {
                let tt = &self.templates[t as usize].tokens;
                if tt.iter().zip(toks).all(|(a, b)| a == b || *a == Tok::Var) {
                    return Some(t);
                }
            }
        }
        // A variable spanning more tokens: templates shorter by 1..=4 with a <*>.
        for d in 1..=4usize {
            if d >= toks.len() {
                break;
            }
            if let Some(c) = self.by_len.get(&(toks.len() - d)) {
                for &t in c {
                    let tt = &self.templates[t as usize].tokens;
                    // Cheap checks first: the ends must agree unless a <*> is there.
                    let ends = |a: Option<&Tok>, b: Option<&Tok>| a == Some(&Tok::Var) || a == b;
                    if ends(tt.first(), toks.first())
                        && ends(tt.last(), toks.last())
                        && tt.contains(&Tok::Var)
                        && fits_with_spans(tt, toks)
                    {
                        return Some(t);
                    }
                }
            }
        }
        None
    }

    fn add_template(&mut self, toks: Vec<Tok>, example: &[u8]) -> u32 {
        let t = self.push_template(toks, String::from_utf8_lossy(example).into_owned(), Vec::new());
        self.register_families(t);
        t
    }

    fn push_template(&mut self, tokens: Vec<Tok>, example: String, aliases: Vec<String>) -> u32 {
        let text = tokens.iter().map(Tok::text).collect::<Vec<_>>().join(" ");
        let id = crate::templates::template_id(&text);
        let t = self.templates.len() as u32;
        self.by_len.entry(tokens.len()).or_default().push(t);
        self.templates.push(Template {
            tokens,
            count: 0,
            id,
            text,
            example,
            aliases,
            merged_into: None,
            last_seen: self.clock,
        });
        self.live += 1;
        t
    }

    fn family_key(tokens: &[Tok], p: usize) -> u64 {
        let mut h = mix(tokens.len() as u64, p as u64);
        for (i, t) in tokens.iter().enumerate() {
            h = if i == p {
                mix(h, SEP_HASH)
            } else {
                match t {
                    Tok::Var => mix(h, VAR_HASH),
                    Tok::Lit(s) => hash_bytes(h, s.as_bytes()),
                }
            };
        }
        h
    }

    /// Record the template's words in the families of each position; merge a family
    /// that reaches `min_distinct` different words.
    fn register_families(&mut self, t: u32) {
        let n = self.templates[t as usize].tokens.len();
        // Short messages are named by their words (`boot (command <*>)`, `cupsd startup
        // succeeded`): a position generalises only with enough other words around it.
        let literals = self.templates[t as usize].tokens.iter().filter(|x| **x != Tok::Var).count();
        let min_context = self.cfg.min_context;
        for p in 0..n {
            if literals < min_context + 1 {
                break;
            }
            if p == 0 && literals < min_context + 2 {
                continue;
            }
            let (word, cap) = match &self.templates[t as usize].tokens[p] {
                Tok::Var => continue,
                Tok::Lit(s) => (
                    hash_bytes(0, s.as_bytes()),
                    s.trim_start_matches(|c: char| !c.is_ascii_alphanumeric())
                        .starts_with(|c: char| c.is_ascii_uppercase()),
                ),
            };
            let key = Self::family_key(&self.templates[t as usize].tokens, p);
            let f = self.families.entry(key).or_insert_with(|| Family { capitalised: true, ..Family::default() });
            if !f.words.contains(&word) {
                f.words.push(word);
                f.capitalised &= cap;
            }
            f.members.push(t);
            let need = self.cfg.min_distinct.max(2) * if f.capitalised { 2 } else { 1 };
            if f.words.len() >= need {
                let members: Vec<u32> = std::mem::take(&mut f.members);
                self.families.remove(&key);
                self.merge_at(members, p);
                return; // the merged template registers its own families
            }
        }
    }

    /// Merge live templates (differing only at `p`) into one with `<*>` at `p`.
    fn merge_at(&mut self, members: Vec<u32>, p: usize) {
        let mut live: Vec<u32> = members.into_iter().map(|m| self.root(m)).collect();
        live.sort_unstable();
        live.dedup();
        live.retain(|&m| self.templates[m as usize].tokens.len() > p);
        let Some(&first) = live.first() else { return };
        let mut tokens = self.templates[first as usize].tokens.clone();
        // `user=root`, `user=guest`, … → `user=<*>`.
        let key = match &tokens[p] {
            Tok::Lit(s) => s
                .find('=')
                .map(|k| &s[..=k])
                .filter(|k| {
                    live.iter()
                        .all(|&m| matches!(&self.templates[m as usize].tokens[p], Tok::Lit(x) if x.starts_with(*k)))
                })
                .map(|k| format!("{k}{VAR}")),
            Tok::Var => None,
        };
        tokens[p] = match key {
            Some(k) => Tok::Lit(k.into()),
            None => Tok::Var,
        };
        // Fold into a neighbouring <*>.
        if tokens[p] == Tok::Var && (p > 0 && tokens[p - 1] == Tok::Var)
            || (p + 1 < tokens.len() && tokens[p + 1] == Tok::Var)
        {
            tokens.remove(p);
        }
        let mut aliases = Vec::new();
        let mut count = 0;
        for &m in &live {
            let tm = &self.templates[m as usize];
            aliases.push(tm.id.clone());
            aliases.extend(tm.aliases.iter().cloned());
            count += tm.count;
        }
        let example = self.templates[first as usize].example.clone();
        // The merged template may already exist (or be covered by one).
        let target = match self.find_fit(&tokens) {
            Some(t) if !live.contains(&t) => t,
            _ => {
                let t = self.push_template(tokens, example, Vec::new());
                self.templates[t as usize].last_seen = self.clock;
                t
            }
        };
        for &m in &live {
            if m != target {
                self.templates[m as usize].merged_into = Some(target);
                let len = self.templates[m as usize].tokens.len();
                if let Some(v) = self.by_len.get_mut(&len) {
                    v.retain(|&x| x != m);
                }
                self.live -= 1;
            }
        }
        let tt = &mut self.templates[target as usize];
        tt.count += count;
        tt.aliases.extend(aliases);
        tt.aliases.retain(|a| *a != tt.id);
        self.register_families(target);
    }

    /// Forget the least recently seen tenth of the templates (their shapes too).
    fn evict(&mut self) {
        let mut live: Vec<(u64, u32)> = self
            .templates
            .iter()
            .enumerate()
            .filter(|(_, t)| t.merged_into.is_none() && t.count > 0)
            .map(|(i, t)| (t.last_seen, i as u32))
            .collect();
        live.sort_unstable();
        let drop_n = (self.cfg.max_templates / 10).max(1);
        let gone: std::collections::HashSet<u32> = live.iter().take(drop_n).map(|&(_, t)| t).collect();
        for &t in &gone {
            let len = self.templates[t as usize].tokens.len();
            if let Some(v) = self.by_len.get_mut(&len) {
                v.retain(|&x| x != t);
            }
            let tm = &mut self.templates[t as usize];
            tm.count = 0;
            tm.tokens.clear();
            tm.example.clear();
            tm.aliases.clear();
            self.live -= 1;
        }
        // Shapes of forgotten templates are forgotten too (they are re-learned if seen).
        let roots: Vec<u32> = self.shape_list.iter().map(|s| self.root(s.template)).collect();
        self.shapes.retain(|_, s| !gone.contains(&roots[*s as usize]));
        self.families.retain(|_, f| {
            f.members.retain(|m| !gone.contains(m));
            !f.members.is_empty()
        });
    }

    /// The variable values of `msg` for template `t`, in order (empty if it does not
    /// fit, which happens only for a template changed by later merges).
    pub fn params(&mut self, msg: &[u8], t: u32) -> Vec<String> {
        let tpl = &self.templates[t as usize].tokens;
        let words: Vec<&[u8]> = msg.split(|b| b.is_ascii_whitespace()).filter(|w| !w.is_empty()).collect();
        let mut out = Vec::new();
        let mut failed = vec![false; (tpl.len() + 1) * (words.len() + 1)];
        if align(tpl, &words, 0, 0, &mut out, &mut failed) {
            out.into_iter().map(|s| String::from_utf8_lossy(&s).into_owned()).collect()
        } else {
            Vec::new()
        }
    }

    /// Rebuild from saved templates (text, count, aliases); shapes are re-learned.
    pub fn restore(&mut self, saved: impl IntoIterator<Item = (String, u64, Vec<String>, String)>) {
        for (text, count, aliases, example) in saved {
            let tokens: Vec<Tok> = text
                .split(' ')
                .filter(|s| !s.is_empty())
                .map(|s| if s == VAR { Tok::Var } else { Tok::Lit(s.into()) })
                .collect();
            if tokens.is_empty() || self.find_fit(&tokens).is_some() {
                continue;
            }
            let t = self.push_template(tokens, example, aliases);
            self.templates[t as usize].count = count;
            self.register_families(t);
        }
    }
}

/// Does `toks` fit template `tt`, where a `<*>` may take one or more tokens?
fn fits_with_spans(tt: &[Tok], toks: &[Tok]) -> bool {
    // Memoised on (template position, token position): polynomial, whatever the input.
    fn go(tt: &[Tok], toks: &[Tok], i: usize, j: usize, failed: &mut [bool]) -> bool {
        let slot = i * (toks.len() + 1) + j;
        if failed[slot] {
            return false;
        }
        let ok = match tt.get(i) {
            None => j == toks.len(),
            Some(Tok::Var) => {
                (1..=(toks.len() - j).saturating_sub(tt.len() - i - 1)).any(|k| go(tt, toks, i + 1, j + k, failed))
            }
            Some(a) => toks.get(j).is_some_and(|b| a == b) && go(tt, toks, i + 1, j + 1, failed),
        };
        failed[slot] = !ok;
        ok
    }
    let mut failed = vec![false; (tt.len() + 1) * (toks.len() + 1)];
    go(tt, toks, 0, 0, &mut failed)
}

/// Align message words with a template, collecting variable values. Failed
/// (template position, word position) pairs are remembered, so a line that does not
/// fit costs polynomial time, not exponential.
fn align(tt: &[Tok], words: &[&[u8]], ti: usize, wi: usize, out: &mut Vec<Vec<u8>>, failed: &mut [bool]) -> bool {
    if ti == tt.len() {
        return wi == words.len();
    }
    let slot = ti * (words.len() + 1) + wi;
    if failed[slot] {
        return false;
    }
    let mark = out.len();
    let ok = match &tt[ti] {
        Tok::Var => {
            let rest = tt.len() - ti - 1;
            let max = words.len().saturating_sub(wi).saturating_sub(rest);
            let mut ok = false;
            for k in (1..=max).rev() {
                out.truncate(mark);
                out.push(words[wi..wi + k].join(&b' '));
                if align(tt, words, ti + 1, wi + k, out, failed) {
                    ok = true;
                    break;
                }
            }
            ok
        }
        Tok::Lit(s) => match words.get(wi) {
            None => false,
            Some(w) if !s.contains(VAR) => s.as_bytes() == *w && align(tt, words, ti + 1, wi + 1, out, failed),
            Some(w) => sub_params(s, w, out) && align(tt, words, ti + 1, wi + 1, out, failed),
        },
    };
    if !ok {
        out.truncate(mark);
        failed[slot] = true;
    }
    ok
}

/// Values of the `<*>` parts of one token (`blk_<*>` against `blk_-42`).
fn sub_params(pattern: &str, word: &[u8], out: &mut Vec<Vec<u8>>) -> bool {
    let parts: Vec<&str> = pattern.split(VAR).collect();
    let mut pos = 0;
    let first = parts[0].as_bytes();
    if !word.starts_with(first) {
        return false;
    }
    pos += first.len();
    for (i, lit) in parts.iter().enumerate().skip(1) {
        let lit = lit.as_bytes();
        let last = i == parts.len() - 1;
        let end = if last {
            if !word[pos..].ends_with(lit) || word.len() - lit.len() < pos {
                return false;
            }
            word.len() - lit.len()
        } else if lit.is_empty() {
            word.len()
        } else {
            match memchr::memmem::find(&word[pos..], lit) {
                Some(k) => pos + k,
                None => return false,
            }
        };
        out.push(word[pos..end].to_vec());
        pos = end + lit.len();
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mine_all(lines: &[&str]) -> (Miner, Vec<Mined>) {
        let mut m = Miner::new(MinerConfig::default());
        let r = lines.iter().map(|l| m.mine(l.as_bytes())).collect();
        (m, r)
    }

    fn text(m: &Miner, r: Mined) -> String {
        m.template(m.template_of_shape(r.shape)).text.clone()
    }

    #[test]
    fn token_end_finds_every_kind_of_whitespace() {
        for ws in [" ", "\t", "\n", "\r", "\x0c"] {
            for k in 0..20 {
                let m = format!("{}{ws}tail \u{e9}x", "\u{e9}a".repeat(k));
                let want = m.find(ws).unwrap();
                assert_eq!(token_scan(m.as_bytes(), 0).0, want, "{m:?}");
            }
        }
        assert_eq!(token_scan(b"abcdefghijklmnop", 3).0, 16);
        // Flags agree with a byte-by-byte scan, wherever the token starts and ends.
        let text = "ab1 \u{e9}x. a@b=c:d 0123456789abcdef/ \u{ff}9 zz.yy:9 q=\u{100}";
        let b = text.as_bytes();
        for start in 0..b.len() {
            let (end, flags) = token_scan(b, start);
            let mut want = 0u8;
            let mut e = start;
            while e < b.len() && !b[e].is_ascii_whitespace() {
                want |= CLASS[b[e] as usize] & (C_DIGIT | C_DOT | C_AT | C_EQ | C_COLON);
                e += 1;
            }
            assert_eq!((end, flags), (e, want), "from {start}");
        }
    }

    #[test]
    fn masks_typed_variables() {
        let (m, r) = mine_all(&[
            "Payment failed for user 42: Card declined",
            "PacketResponder 1 for block blk_-6952295868487656571 terminating",
            "addStoredBlock: 10.251.73.220:50010 is added to blk_7128370237687728475 size 67108864",
            "request 3fa85f64-5717-4562-b3fc-2c963f66afa6 took 1.5s from /var/lib/x/y.db for a@b.com",
            "order ORD-00042 shipped via https://x.example/track?id=1 status=ok",
            "Component \"x1234\" is in the unavailable state (HWID=3180)",
            "connection from 1.2.3.4 () at Sun Jul 10 03:55:15 2005",
            "peer fe80::abcd joined via [2001:db8::ff]:443 and ::",
        ]);
        assert_eq!(text(&m, r[0]), "Payment failed for user <*>: Card declined");
        assert_eq!(text(&m, r[1]), "PacketResponder <*> for block blk_<*> terminating");
        assert_eq!(text(&m, r[2]), "addStoredBlock: <*> is added to blk_<*> size <*>");
        assert_eq!(text(&m, r[3]), "request <*> took <*> from <*> for <*>");
        assert_eq!(text(&m, r[4]), "order ORD-<*> shipped via <*> status=ok");
        assert_eq!(text(&m, r[5]), "Component <*> is in the unavailable state (HWID=<*>)");
        assert_eq!(text(&m, r[6]), "connection from <*> at <*>");
        assert_eq!(text(&m, r[7]), "peer <*> joined via <*> and ::");
    }

    #[test]
    fn words_with_few_values_stay_apart_many_merge() {
        let mut lines = vec!["session opened for user root", "session closed for user root"];
        let users = ["alice", "bob", "carol", "dave", "erin"];
        let owned: Vec<String> = users.iter().map(|u| format!("Invalid user {u} from host")).collect();
        lines.extend(owned.iter().map(String::as_str));
        let (m, r) = mine_all(&lines);
        assert_ne!(
            m.template_of_shape(r[0].shape),
            m.template_of_shape(r[1].shape),
            "opened/closed are different messages"
        );
        let t = m.template_of_shape(r[2].shape);
        assert!(r[2..].iter().all(|x| m.template_of_shape(x.shape) == t), "user names merge");
        assert_eq!(m.template(t).text, "Invalid user <*> from host");
        assert_eq!(m.template(t).aliases.len(), 4, "the merged templates' ids are kept as aliases");
        assert_eq!(
            m.resolve(&m.template(m.template_of_shape(r[2].shape)).aliases[0]).unwrap().text,
            "Invalid user <*> from host"
        );
    }

    #[test]
    fn a_variable_spanning_more_tokens_does_not_split() {
        let (m, r) = mine_all(&[
            "took 5 ms total",
            "took 5 10 15 ms total",
            "user alice logged in",
            "user bob logged in",
            "user carol logged in",
            "user dave logged in",
            "user John Smith logged in",
        ]);
        assert_eq!(m.template_of_shape(r[0].shape), m.template_of_shape(r[1].shape));
        assert_eq!(
            m.template_of_shape(r[2].shape),
            m.template_of_shape(r[6].shape),
            "a two-word name fits the learned <*>"
        );
        assert_eq!(text(&m, r[6]), "user <*> logged in");
    }

    #[test]
    fn matching_long_lines_against_many_variables_is_fast() {
        // 60 variables against 400 words that do not fit: exponential without memos.
        let tt: Vec<Tok> = (0..60).flat_map(|_| [Tok::Var, Tok::Lit("x".into())]).collect();
        let words: Vec<&[u8]> =
            (0..400).map(|i| if i % 3 == 0 { &b"x"[..] } else { &b"y"[..] }).chain([&b"z"[..]]).collect();
        let started = std::time::Instant::now();
        let mut out = Vec::new();
        let mut failed = vec![false; (tt.len() + 1) * (words.len() + 1)];
        assert!(!align(&tt, &words, 0, 0, &mut out, &mut failed));
        let toks: Vec<Tok> = words.iter().map(|w| Tok::Lit(String::from_utf8_lossy(w).into())).collect();
        assert!(!fits_with_spans(&tt, &toks));
        assert!(started.elapsed() < std::time::Duration::from_secs(5), "{:?}", started.elapsed());
    }

    #[test]
    fn user_masks_make_variables() {
        let mut m = Miner::new(MinerConfig {
            masks: vec![regex::Regex::new(r"\bcolor-[a-z]+").unwrap()],
            ..MinerConfig::default()
        });
        let a = m.mine(b"paint the wall color-red now");
        let b = m.mine(b"paint the wall color-blue now");
        assert_eq!(m.template_of_shape(a.shape), m.template_of_shape(b.shape));
        assert_eq!(m.template(m.template_of_shape(a.shape)).text, "paint the wall <*> now");
    }

    #[test]
    fn params_in_order_and_stable_ids() {
        let (mut m, r) = mine_all(&["Payment failed for user 42: Card declined"]);
        let t = m.template_of_shape(r[0].shape);
        assert_eq!(m.params(b"Payment failed for user 42: Card declined", t), ["42"]);
        let (m2, r2) = mine_all(&["Payment failed for user 7: Card declined"]);
        assert_eq!(
            m.template(t).id,
            m2.template(m2.template_of_shape(r2[0].shape)).id,
            "same text, same id in any process"
        );
        let (mut m3, r3) = mine_all(&["copied 10.0.0.1:80 blk_-5 in 3 ms"]);
        let t3 = m3.template_of_shape(r3[0].shape);
        assert_eq!(
            m3.params(b"copied 10.0.0.1:80 blk_-5 in 3 ms", t3),
            ["10.0.0.1:80", "-5", "3 ms"],
            "a unit goes with its number"
        );
    }

    #[test]
    fn bounded_memory_evicts_least_recently_seen() {
        let letters = |mut i: usize| {
            let mut s = String::new();
            loop {
                s.push(char::from(b'a' + (i % 26) as u8));
                i /= 26;
                if i == 0 {
                    return s;
                }
            }
        };
        let mut m = Miner::new(MinerConfig { max_templates: 50, ..MinerConfig::default() });
        for i in 0..500 {
            let w = letters(i);
            m.mine(format!("{w} {w}x end").as_bytes());
            m.mine(b"kept alive message");
        }
        let live = m.templates();
        assert!(live.len() <= 51, "{} templates", live.len());
        assert!(live.iter().any(|t| t.text == "kept alive message"), "the recently seen template stays");
        assert!(!live.iter().any(|t| t.text == "a ax end"), "the oldest is forgotten");
    }
}
