//! PII detectors. Each finds spans in a text; all are driven by cheap prefilters
//! (memchr for `@`, `%40` and `:`, memmem for `eyJ` and `AKIA`, one byte loop for
//! numeric tokens, Aho-Corasick for secret keys) so that a line without candidates
//! costs a few passes of vectorised byte search.

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use memchr::memmem;
use regex::Regex;
use std::sync::OnceLock;

/// Built-in detector kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Email,
    CreditCard,
    Ipv4,
    Ipv6,
    Phone,
    UsSsn,
    Iban,
    Jwt,
    Bearer,
    AwsKey,
    Secret,
}

pub const ALL: [Kind; 11] = [
    Kind::Email,
    Kind::CreditCard,
    Kind::Ipv4,
    Kind::Ipv6,
    Kind::Phone,
    Kind::UsSsn,
    Kind::Iban,
    Kind::Jwt,
    Kind::Bearer,
    Kind::AwsKey,
    Kind::Secret,
];

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Email => "email",
            Kind::CreditCard => "credit_card",
            Kind::Ipv4 => "ipv4",
            Kind::Ipv6 => "ipv6",
            Kind::Phone => "phone",
            Kind::UsSsn => "us_ssn",
            Kind::Iban => "iban",
            Kind::Jwt => "jwt",
            Kind::Bearer => "bearer",
            Kind::AwsKey => "aws_key",
            Kind::Secret => "secret",
        }
    }
    pub fn from_name(s: &str) -> Option<Kind> {
        ALL.iter().copied().find(|k| k.name() == s)
    }
}

/// A found value: byte range and which detector (index into the stage's detector list).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub start: usize,
    pub end: usize,
    pub det: usize,
}

#[inline]
fn is_word(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

// ---------- prefilter ----------

/// The shortest text any of `kinds` can match: `pwd=x` (5) for secrets, `a@b.io` (6)
/// for e-mail, `1.2.3.4` (7) for IPv4, `::1` (3) for IPv6, and so on; none: never.
pub fn min_len(kinds: &[Kind]) -> usize {
    kinds
        .iter()
        .map(|k| match k {
            Kind::Email => 6,
            Kind::CreditCard => 13,
            Kind::Ipv4 => 7,
            Kind::Ipv6 => 3,
            Kind::Phone => 9,
            Kind::UsSsn => 11,
            Kind::Iban => 15,
            Kind::Jwt => 14,
            Kind::Bearer => 8,
            Kind::AwsKey => 20,
            Kind::Secret => 5,
        })
        .min()
        .unwrap_or(usize::MAX)
}

/// What a text must hold for each detector to match at all, checked with vectorised
/// passes (a digit count, `memchr`) before the detector's own scan: an e-mail needs an
/// `@` or `%40`, a secret a `=` or `:` after its key (or a `_`/`-` prefix in a token
/// of 12 bytes or more), a JWT `eyJ`, IPv6 two colons, the numeric detectors enough
/// digits (see `NumericDets::min_digits`). Only what is asked is computed.
pub struct Prefilter<'a> {
    text: &'a [u8],
    digits: Option<u32>,
}

impl<'a> Prefilter<'a> {
    #[inline]
    pub fn new(text: &'a [u8]) -> Prefilter<'a> {
        Prefilter { text, digits: None }
    }

    /// Digits in the text.
    #[inline]
    pub fn digits(&mut self) -> u32 {
        let t = self.text;
        *self.digits.get_or_insert_with(|| count_digits(t))
    }

    /// Whether detector `k` can match.
    #[inline]
    pub fn may_match(&mut self, k: Kind) -> bool {
        let t = self.text;
        let n = t.len();
        match k {
            // These scan with memchr/memmem themselves: no pass is saved.
            Kind::Email | Kind::Jwt | Kind::AwsKey => true,
            Kind::Ipv6 => n >= 3 && memchr::memchr_iter(b':', t).nth(1).is_some(),
            Kind::Iban => n >= 15 && self.digits() >= 2,
            Kind::Bearer => n >= 15 && memchr::memchr2(b'B', b'b', t).is_some(),
            Kind::Secret => {
                memchr::memchr2(b'=', b':', t).is_some() || (n >= 12 && memchr::memchr2(b'_', b'-', t).is_some())
            }
            Kind::CreditCard | Kind::Ipv4 | Kind::Phone | Kind::UsSsn => self.digits() >= 4,
        }
    }
}

// ---------- email ----------

#[inline]
fn local_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'+' | b'-')
}

#[inline]
fn domain_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-')
}

/// Email around an `@` at `at` (or `%40` spanning `at..at+sep`).
fn email_at(b: &[u8], at: usize, sep: usize) -> Option<(usize, usize)> {
    let mut s = at;
    while s > 0 && local_char(b[s - 1]) {
        s -= 1;
    }
    while s < at && b[s] == b'.' {
        s += 1;
    }
    if s == at {
        return None;
    }
    let d0 = at + sep;
    let mut e = d0;
    while e < b.len() && domain_char(b[e]) {
        e += 1;
    }
    while e > d0 && (b[e - 1] == b'.' || b[e - 1] == b'-') {
        e -= 1;
    }
    let domain = &b[d0..e];
    let dot = domain.iter().rposition(|&c| c == b'.')?;
    let tld = &domain[dot + 1..];
    if dot == 0 || tld.len() < 2 || !tld.iter().all(u8::is_ascii_alphabetic) {
        return None;
    }
    Some((s, e))
}

pub fn emails(text: &str, det: usize, out: &mut Vec<Span>) {
    let b = text.as_bytes();
    for at in memchr::memchr_iter(b'@', b) {
        if let Some((s, e)) = email_at(b, at, 1) {
            out.push(Span { start: s, end: e, det });
        }
    }
    if memchr::memchr(b'%', b).is_some() {
        static F: OnceLock<memmem::Finder<'static>> = OnceLock::new();
        let f = F.get_or_init(|| memmem::Finder::new(b"%40"));
        for at in f.find_iter(b) {
            if let Some((s, e)) = email_at(b, at, 3) {
                out.push(Span { start: s, end: e, det });
            }
        }
    }
}

// ---------- numeric tokens: ipv4, ssn, credit card, phone ----------

fn luhn(digits: &[u8]) -> bool {
    let mut sum = 0u32;
    for (i, &d) in digits.iter().rev().enumerate() {
        let mut v = (d - b'0') as u32;
        if i % 2 == 1 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    sum.is_multiple_of(10)
}

static NUM_START: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = b'0';
    while c <= b'9' {
        t[c as usize] = true;
        c += 1;
    }
    t[b'+' as usize] = true;
    t[b'(' as usize] = true;
    t
};

/// The 16-byte classes the numeric scan needs (SSE2, part of every x86_64 CPU). Bytes
/// >= 0x80 compare as negative: never digits or letters, as `is_word` says.
#[cfg(target_arch = "x86_64")]
mod sse {
    use std::arch::x86_64::*;

    /// # Safety
    /// `i + 16 <= b.len()`.
    #[inline(always)]
    pub unsafe fn load(b: &[u8], i: usize) -> __m128i {
        _mm_loadu_si128(b.as_ptr().add(i) as *const __m128i)
    }
    #[inline(always)]
    pub unsafe fn in_range(x: __m128i, lo: u8, hi: u8) -> __m128i {
        _mm_and_si128(_mm_cmpgt_epi8(x, _mm_set1_epi8(lo as i8 - 1)), _mm_cmpgt_epi8(_mm_set1_epi8(hi as i8 + 1), x))
    }
    #[inline(always)]
    pub unsafe fn eq(x: __m128i, c: u8) -> __m128i {
        _mm_cmpeq_epi8(x, _mm_set1_epi8(c as i8))
    }
    #[inline(always)]
    pub unsafe fn or(a: __m128i, b: __m128i) -> __m128i {
        _mm_or_si128(a, b)
    }
    /// ASCII letters, digits, `_` and `.` (a letter either case: `x | 0x20` in a..=z).
    #[inline(always)]
    pub unsafe fn word_or_dot(x: __m128i) -> __m128i {
        or(
            or(in_range(x, b'0', b'9'), in_range(_mm_or_si128(x, _mm_set1_epi8(0x20)), b'a', b'z')),
            or(eq(x, b'_'), eq(x, b'.')),
        )
    }
    #[inline(always)]
    pub unsafe fn mask(x: __m128i) -> u32 {
        _mm_movemask_epi8(x) as u32
    }
}

/// Whether `prev`, the byte before a digit, `+` or `(`, lets a numeric token start
/// there: not a word character, `.` or `+` (part of a larger word or number).
#[inline]
fn boundary_before(prev: u8) -> bool {
    !is_word(prev) && prev != b'.' && prev != b'+'
}

/// The first index at or after `i` holding a digit, `+` or `(` at a token boundary
/// (see `boundary_before`), or `b.len()`. Such bytes are rare in most text but digits
/// inside words (hex ids, versions) are common, so this is the numeric scan's hot
/// loop: 16 bytes at a time with SSE2 (part of every x86_64 CPU), the rest one by one.
#[inline]
fn next_start(b: &[u8], mut i: usize) -> usize {
    let n = b.len();
    let scalar = |i: usize| NUM_START[b[i] as usize] && (i == 0 || boundary_before(b[i - 1]));
    if i == 0 && n > 0 {
        if scalar(0) {
            return 0;
        }
        i = 1;
    }
    #[cfg(target_arch = "x86_64")]
    // SAFETY: SSE2 is baseline on x86_64; loads stay within `b` (i >= 1 and i + 16 <= n
    // for both the block at i and the one at i - 1).
    unsafe {
        use sse::*;
        while i + 16 <= n {
            let (cur, prev) = (load(b, i), load(b, i - 1));
            let start = or(in_range(cur, b'0', b'9'), or(eq(cur, b'+'), eq(cur, b'(')));
            let inside = or(word_or_dot(prev), eq(prev, b'+'));
            let hits = mask(std::arch::x86_64::_mm_andnot_si128(inside, start));
            if hits != 0 {
                return i + hits.trailing_zeros() as usize;
            }
            i += 16;
        }
    }
    while i < n && !scalar(i) {
        i += 1;
    }
    i
}

/// Digits in `b`, 16 bytes at a time with SSE2: each byte lane counts the digits it
/// sees (a match compares as -1 and is subtracted), and one sum of absolute differences
/// adds the lanes up every 255 blocks at most (a lane holds up to 255). No population
/// count: it is not in x86_64's baseline, and in software it was a third of `Mask::find`.
#[inline]
fn count_digits(b: &[u8]) -> u32 {
    let mut n = 0u32;
    let mut i = 0;
    #[cfg(target_arch = "x86_64")]
    // SAFETY: SSE2 is baseline on x86_64; each load stays within `b`.
    unsafe {
        use sse::*;
        use std::arch::x86_64::*;
        while i + 16 <= b.len() {
            let mut lanes = _mm_setzero_si128();
            for _ in 0..((b.len() - i) / 16).min(255) {
                lanes = _mm_sub_epi8(lanes, in_range(load(b, i), b'0', b'9'));
                i += 16;
            }
            // Two sums of eight lanes each, at bits 0 and 64 (each at most 2040).
            let sums = _mm_sad_epu8(lanes, _mm_setzero_si128());
            n += _mm_cvtsi128_si32(sums) as u32 + _mm_extract_epi16::<4>(sums) as u32;
        }
    }
    n + b[i..].iter().map(|&c| (c.wrapping_sub(b'0') < 10) as u32).sum::<u32>()
}

/// The first index at or after `i` that is not a word character or `.` (the end of
/// a word or number a token turned out to be part of: hex ids, versions, `528ms`),
/// 16 bytes at a time with SSE2 like `next_start`.
#[inline]
fn word_end(b: &[u8], mut i: usize) -> usize {
    let n = b.len();
    #[cfg(target_arch = "x86_64")]
    // SAFETY: SSE2 is baseline on x86_64; each load stays within `b`.
    unsafe {
        use sse::*;
        while i + 16 <= n {
            let other = !mask(word_or_dot(load(b, i))) & 0xffff;
            if other != 0 {
                return i + other.trailing_zeros() as usize;
            }
            i += 16;
        }
    }
    while i < n && (is_word(b[i]) || b[i] == b'.') {
        i += 1;
    }
    i
}

/// Which numeric detectors a stage wants (indices into its detector list).
#[derive(Debug, Clone, Copy, Default)]
pub struct NumericDets {
    pub ipv4: Option<usize>,
    pub ssn: Option<usize>,
    pub card: Option<usize>,
    pub phone: Option<usize>,
}

impl NumericDets {
    pub fn any(&self) -> bool {
        self.ipv4.is_some() || self.ssn.is_some() || self.card.is_some() || self.phone.is_some()
    }
    /// The fewest digits a text needs for any of these to match (an IPv4 address has
    /// 4, a phone number 8, an SSN 9, a card number 13).
    pub fn min_digits(&self) -> u32 {
        [(self.ipv4, 4), (self.phone, 8), (self.ssn, 9), (self.card, 13)]
            .iter()
            .filter(|(d, _)| d.is_some())
            .map(|&(_, n)| n)
            .min()
            .unwrap_or(u32::MAX)
    }
}

/// Scan digit tokens that start at a word boundary: digit groups joined by single
/// `.`, `-` or space separators (and an optional leading `+` or `(ddd) `).
pub fn numeric(text: &str, d: NumericDets, out: &mut Vec<Span>) {
    let b = text.as_bytes();
    let n = b.len();
    let mut i = 0;
    let mut groups: [(usize, usize); 8] = [(0, 0); 8];
    while i < n {
        // Skip to the next byte that can start a number.
        i = next_start(b, i);
        if i >= n {
            break;
        }
        let c = b[i];
        let starts = (c.is_ascii_digit() || ((c == b'+' || c == b'(') && i + 1 < n && b[i + 1].is_ascii_digit()))
            && (i == 0 || boundary_before(b[i - 1]));
        if !starts {
            i += 1;
            continue;
        }
        let start = i;
        let plus = c == b'+';
        let paren = c == b'(';
        if plus || paren {
            i += 1;
        }
        // Collect digit groups and separators.
        let mut g = 0usize;
        let mut seps = [0u8; 8];
        loop {
            let gs = i;
            while i < n && b[i].is_ascii_digit() {
                i += 1;
            }
            if i == gs {
                break;
            }
            if g < 8 {
                groups[g] = (gs, i);
            }
            g += 1;
            if paren && g == 1 {
                // (ddd) ddd-dddd
                if i + 1 < n && b[i] == b')' && b[i + 1] == b' ' && i + 2 < n && b[i + 2].is_ascii_digit() {
                    seps[0] = b')';
                    i += 2;
                    continue;
                }
                break;
            }
            if i + 1 < n && matches!(b[i], b'.' | b'-' | b' ') && b[i + 1].is_ascii_digit() && g < 8 {
                seps[g - 1] = b[i];
                i += 1;
                continue;
            }
            break;
        }
        let end = i;
        if g == 0
            || g > 8
            || (end < n && (is_word(b[end]) || (b[end] == b'.' && end + 1 < n && b[end + 1].is_ascii_digit())))
        {
            // Part of a larger word or number: skip the rest of it.
            i = word_end(b, i);
            continue;
        }
        let mut lens = [0usize; 8];
        for (k, (a, z)) in groups[..g].iter().enumerate() {
            lens[k] = z - a;
        }
        let lens = &lens[..g];
        let digits: usize = lens.iter().sum();
        let all_sep = |s: u8| seps[..g - 1].iter().all(|&x| x == s);
        let found = if paren {
            (g == 3 && lens == [3, 3, 4] && seps[1] == b'-').then_some(d.phone).flatten()
        } else if plus {
            (8..=15).contains(&digits).then_some(d.phone).flatten()
        } else if g == 4 && all_sep(b'.') && lens.iter().all(|&l| l <= 3) {
            let ok = groups[..4].iter().all(|&(a, z)| text[a..z].parse::<u16>().is_ok_and(|v| v <= 255));
            ok.then_some(d.ipv4).flatten()
        } else if g == 3 && lens == [3, 2, 4] && all_sep(b'-') {
            let area = &text[groups[0].0..groups[0].1];
            (area != "000" && area != "666" && !area.starts_with('9')).then_some(d.ssn).flatten()
        } else if (13..=19).contains(&digits) && (g == 1 || all_sep(b' ') || all_sep(b'-')) {
            let mut buf = [0u8; 19];
            let mut k = 0;
            for &(a, z) in &groups[..g] {
                for &x in &b[a..z] {
                    buf[k] = x;
                    k += 1;
                }
            }
            luhn(&buf[..k]).then_some(d.card).flatten()
        } else if g == 3 && lens == [3, 3, 4] && (all_sep(b'-') || all_sep(b'.')) {
            d.phone
        } else {
            None
        };
        if let Some(det) = found {
            out.push(Span { start, end, det });
        }
    }
}

// ---------- ipv6 ----------

pub fn ipv6(text: &str, det: usize, out: &mut Vec<Span>) {
    let b = text.as_bytes();
    let mut last_end = 0;
    for c in memchr::memchr_iter(b':', b) {
        if c < last_end {
            continue;
        }
        let ok = |x: u8| x.is_ascii_hexdigit() || x == b':' || x == b'.';
        let mut s = c;
        while s > 0 && ok(b[s - 1]) {
            s -= 1;
        }
        let mut e = c;
        while e < b.len() && ok(b[e]) {
            e += 1;
        }
        last_end = e;
        if (s > 0 && is_word(b[s - 1])) || (e < b.len() && is_word(b[e])) {
            continue;
        }
        let cand = &text[s..e];
        let colons = cand.bytes().filter(|&x| x == b':').count();
        if colons >= 2 && (cand.contains("::") || colons == 7) && cand.parse::<std::net::Ipv6Addr>().is_ok() {
            out.push(Span { start: s, end: e, det });
        }
    }
}

// ---------- iban ----------

fn iban_valid(s: &[u8]) -> bool {
    // Move the first four characters to the end, letters → numbers, mod 97 == 1.
    let mut rem: u32 = 0;
    for &c in s[4..].iter().chain(&s[..4]) {
        let v = if c.is_ascii_digit() {
            (c - b'0') as u32
        } else if c.is_ascii_uppercase() {
            (c - b'A') as u32 + 10
        } else {
            return false;
        };
        rem = if v >= 10 { (rem * 100 + v) % 97 } else { (rem * 10 + v) % 97 };
    }
    rem == 1
}

pub fn iban(text: &str, det: usize, out: &mut Vec<Span>) {
    let b = text.as_bytes();
    let n = b.len();
    let mut i = 0;
    while i + 15 <= n {
        while i + 15 <= n && !b[i].is_ascii_uppercase() {
            i += 1;
        }
        if i + 15 > n {
            break;
        }
        if !(b[i].is_ascii_uppercase()
            && b[i + 1].is_ascii_uppercase()
            && b[i + 2].is_ascii_digit()
            && b[i + 3].is_ascii_digit())
            || (i > 0 && is_word(b[i - 1]))
        {
            i += 1;
            continue;
        }
        // Compact or grouped by single spaces in fours.
        let mut buf = [0u8; 34];
        let mut k = 0;
        let mut j = i;
        while j < n && k < 34 {
            if b[j].is_ascii_uppercase() || b[j].is_ascii_digit() {
                buf[k] = b[j];
                k += 1;
                j += 1;
            } else if b[j] == b' '
                && k % 4 == 0
                && j + 1 < n
                && (b[j + 1].is_ascii_uppercase() || b[j + 1].is_ascii_digit())
            {
                j += 1;
            } else {
                break;
            }
        }
        if (15..=34).contains(&k) && (j >= n || !is_word(b[j])) && iban_valid(&buf[..k]) {
            out.push(Span { start: i, end: j, det });
            i = j;
        } else {
            i += 1;
        }
    }
}

// ---------- tokens: jwt, bearer, aws, secrets ----------

#[inline]
fn b64url(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'-' || c == b'_'
}

pub fn jwt(text: &str, det: usize, out: &mut Vec<Span>) {
    static F: OnceLock<memmem::Finder<'static>> = OnceLock::new();
    let f = F.get_or_init(|| memmem::Finder::new(b"eyJ"));
    let b = text.as_bytes();
    for s in f.find_iter(b) {
        if s > 0 && b64url(b[s - 1]) {
            continue;
        }
        let mut e = s;
        let mut parts = 1;
        let mut part_len = 0;
        let mut short = false;
        while e < b.len() {
            if b64url(b[e]) {
                part_len += 1;
            } else if b[e] == b'.' && parts < 3 && e + 1 < b.len() && b64url(b[e + 1]) {
                short |= part_len < 4;
                parts += 1;
                part_len = 0;
            } else {
                break;
            }
            e += 1;
        }
        if parts == 3 && !short && part_len >= 4 {
            out.push(Span { start: s, end: e, det });
        }
    }
}

#[inline]
fn token_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~' | b'+' | b'/' | b'=')
}

pub fn bearer(text: &str, det: usize, out: &mut Vec<Span>) {
    static AC: OnceLock<AhoCorasick> = OnceLock::new();
    let ac = AC.get_or_init(|| AhoCorasickBuilder::new().build(["Bearer ", "bearer ", "BEARER "]).unwrap());
    let b = text.as_bytes();
    for m in ac.find_iter(b) {
        let s = m.end();
        let mut e = s;
        while e < b.len() && token_char(b[e]) {
            e += 1;
        }
        if e - s >= 8 {
            out.push(Span { start: s, end: e, det });
        }
    }
}

pub fn aws_key(text: &str, det: usize, out: &mut Vec<Span>) {
    static F: OnceLock<memmem::Finder<'static>> = OnceLock::new();
    // Both prefixes end in "IA" after A/S + K/S: find "IA" and check the two before.
    let f = F.get_or_init(|| memmem::Finder::new(b"IA"));
    let b = text.as_bytes();
    for ia in f.find_iter(b) {
        if ia < 2 {
            continue;
        }
        let s = ia - 2;
        if !(b[s] == b'A' && (b[s + 1] == b'K' || b[s + 1] == b'S')) {
            continue;
        }
        {
            let e = s + 20;
            if e <= b.len()
                && (s == 0 || !b[s - 1].is_ascii_alphanumeric())
                && b[s + 4..e].iter().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
                && (e == b.len() || !b[e].is_ascii_alphanumeric())
            {
                out.push(Span { start: s, end: e, det });
            }
        }
    }
}

const SECRET_PREFIXES: [&str; 6] = ["sk_live_", "sk_test_", "rk_live_", "rk_test_", "ghp_", "xoxb-"];
const SECRET_KEYS: [&str; 12] = [
    "password",
    "passwd",
    "pwd",
    "secret",
    "api_key",
    "apikey",
    "api-key",
    "access_token",
    "refresh_token",
    "client_secret",
    "private_key",
    "auth_token",
];

pub fn secrets(text: &str, det: usize, out: &mut Vec<Span>) {
    static AC: OnceLock<(AhoCorasick, usize)> = OnceLock::new();
    let (ac, n_prefix) = AC.get_or_init(|| {
        // Case variants instead of case-insensitive matching: that keeps the automaton's
        // SIMD prefilter, several times faster on text without any of the words.
        let mut pats: Vec<String> = SECRET_PREFIXES.iter().map(|p| p.to_string()).collect();
        for k in SECRET_KEYS {
            let mut cap = k.to_string();
            cap[..1].make_ascii_uppercase();
            pats.extend([k.to_string(), k.to_ascii_uppercase(), cap]);
        }
        (AhoCorasickBuilder::new().match_kind(MatchKind::LeftmostLongest).build(&pats).unwrap(), SECRET_PREFIXES.len())
    });
    let b = text.as_bytes();
    for m in ac.find_iter(b) {
        if m.start() > 0 && b[m.start() - 1].is_ascii_alphanumeric() {
            continue;
        }
        if m.pattern().as_usize() < *n_prefix {
            // A token with a known secret prefix: the whole token.
            let mut e = m.end();
            while e < b.len() && (b[e].is_ascii_alphanumeric() || b[e] == b'_' || b[e] == b'-') {
                e += 1;
            }
            if e - m.end() >= 8 {
                out.push(Span { start: m.start(), end: e, det });
            }
            continue;
        }
        // key=value, key: value, "key":"value": mask the value.
        let mut v = m.end();
        if v < b.len() && b[v] == b'"' {
            v += 1;
        }
        if v >= b.len() || !(b[v] == b'=' || b[v] == b':') {
            continue;
        }
        v += 1;
        while v < b.len() && b[v] == b' ' {
            v += 1;
        }
        let quoted = v < b.len() && (b[v] == b'"' || b[v] == b'\'');
        if quoted {
            v += 1;
        }
        let mut e = v;
        while e < b.len() && !matches!(b[e], b' ' | b'&' | b'"' | b'\'' | b';' | b',' | b'}' | b')') {
            e += 1;
        }
        if e > v {
            out.push(Span { start: v, end: e, det });
        }
    }
}

pub fn custom(text: &str, re: &Regex, det: usize, out: &mut Vec<Span>) {
    for m in re.find_iter(text) {
        if m.end() > m.start() {
            out.push(Span { start: m.start(), end: m.end(), det });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find(kind: Kind, text: &str) -> Vec<&str> {
        let mut v = Vec::new();
        let d = NumericDets { ipv4: Some(0), ssn: Some(1), card: Some(2), phone: Some(3) };
        let want = match kind {
            Kind::Ipv4 => 0,
            Kind::UsSsn => 1,
            Kind::CreditCard => 2,
            Kind::Phone => 3,
            _ => 0,
        };
        match kind {
            Kind::Email => emails(text, 0, &mut v),
            Kind::Ipv6 => ipv6(text, 0, &mut v),
            Kind::Iban => iban(text, 0, &mut v),
            Kind::Jwt => jwt(text, 0, &mut v),
            Kind::Bearer => bearer(text, 0, &mut v),
            Kind::AwsKey => aws_key(text, 0, &mut v),
            Kind::Secret => secrets(text, 0, &mut v),
            _ => {
                numeric(text, d, &mut v);
                v.retain(|s| s.det == want);
            }
        }
        v.iter().map(|s| &text[s.start..s.end]).collect()
    }

    #[test]
    fn emails_plain_and_url_encoded() {
        assert_eq!(find(Kind::Email, "to jane.doe42@mail.example.org."), vec!["jane.doe42@mail.example.org"]);
        assert_eq!(
            find(Kind::Email, "/api/orders?email=jane.doe42%40example.co.uk&x=1"),
            vec!["jane.doe42%40example.co.uk"]
        );
        assert!(find(Kind::Email, "user@localhost and @handle and a@b.c1").is_empty());
    }

    /// Strings of every length up to `max_len`, 200 per length, drawn from `alphabet`
    /// with an arbitrary byte now and then (a fixed xorshift sequence).
    fn random_strings(alphabet: &[u8], max_len: usize) -> impl Iterator<Item = Vec<u8>> + '_ {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        (0..max_len).flat_map(|len| std::iter::repeat_n(len, 200)).map(move |len| {
            (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    if x.is_multiple_of(7) {
                        (x >> 8) as u8
                    } else {
                        alphabet[(x >> 16) as usize % alphabet.len()]
                    }
                })
                .collect()
        })
    }

    /// The vectorised skip finds exactly the positions the byte-by-byte rule finds.
    #[test]
    fn next_start_matches_the_scalar_rule() {
        for v in random_strings(b"0123456789+(._-aZ _\xff/:@\x7f\x80z{`", 80) {
            for i in 0..=v.len() {
                let want = (i..v.len())
                    .find(|&j| NUM_START[v[j] as usize] && (j == 0 || boundary_before(v[j - 1])))
                    .unwrap_or(v.len());
                assert_eq!(next_start(&v, i), want, "{v:?} from {i}");
            }
        }
    }

    #[test]
    fn count_digits_counts_every_digit() {
        for v in random_strings(b"7a0:9/", 70) {
            assert_eq!(count_digits(&v), v.iter().filter(|c| c.is_ascii_digit()).count() as u32);
        }
        // Past 255 blocks of digits (a lane's limit) and around it.
        for len in [4079, 4080, 4081, 4096, 8161, 100_003] {
            let digits = vec![b'7'; len];
            assert_eq!(count_digits(&digits), len as u32);
            let mixed: Vec<u8> = (0..len).map(|i| if i % 3 == 0 { b'x' } else { b'0' }).collect();
            assert_eq!(count_digits(&mixed), (len - len.div_ceil(3)) as u32);
        }
    }

    /// The vectorised word skip stops where the byte-by-byte rule stops.
    #[test]
    fn word_end_matches_the_scalar_rule() {
        for v in random_strings(b"0123456789._-aZz@`{[ \xff\x80/", 70) {
            for i in 0..=v.len() {
                let want = (i..v.len()).find(|&j| !(is_word(v[j]) || v[j] == b'.')).unwrap_or(v.len());
                assert_eq!(word_end(&v, i), want, "{v:?} from {i}");
            }
        }
    }

    #[test]
    fn numbers() {
        assert_eq!(find(Kind::Ipv4, "from 203.0.113.161 port 50015"), vec!["203.0.113.161"]);
        assert!(find(Kind::Ipv4, "version 1.2.3.4.5 and 999.1.1.1 and v1.2.3.4").is_empty());
        assert_eq!(find(Kind::UsSsn, "ssn=123-45-6789 phone"), vec!["123-45-6789"]);
        assert_eq!(
            find(Kind::CreditCard, "Card 4111 1111 1111 1111 ok 4111-1111-1111-1111 and 4111111111111111"),
            vec!["4111 1111 1111 1111", "4111-1111-1111-1111", "4111111111111111"]
        );
        assert!(
            find(Kind::CreditCard, "4111111111111112 ORD-64395127 2026-11-21 01:01:35,654 1795314873123").is_empty()
        );
        assert_eq!(
            find(Kind::Phone, "phone=+12345550123 or (555) 123-4567 or 555-123-4567"),
            vec!["+12345550123", "(555) 123-4567", "555-123-4567"]
        );
        assert!(find(Kind::Phone, "pay_f1bd078849e5bf0c 6b4b066d6bd6aa4f amount_cents=57750 in 528ms").is_empty());
    }

    #[test]
    fn tokens() {
        let jwt_s = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U";
        assert_eq!(find(Kind::Jwt, &format!("token {jwt_s} end")), vec![jwt_s]);
        assert_eq!(find(Kind::Bearer, "Authorization: Bearer abc.def-123456"), vec!["abc.def-123456"]);
        assert_eq!(find(Kind::AwsKey, "key AKIAIOSFODNN7EXAMPLE used"), vec!["AKIAIOSFODNN7EXAMPLE"]);
        assert_eq!(
            find(Kind::Secret, "API key sk_live_4eC39HqLyjWDarjtT1zdp7dc used"),
            vec!["sk_live_4eC39HqLyjWDarjtT1zdp7dc"]
        );
        assert_eq!(
            find(Kind::Secret, "login password=hunter2&user=x {\"api_key\": \"abc123\"}"),
            vec!["hunter2", "abc123"]
        );
        assert_eq!(
            find(Kind::Ipv6, "from 2001:db8::8a2e:370:7334 at 01:02:03 mac aa:bb:cc:dd:ee:ff"),
            vec!["2001:db8::8a2e:370:7334"]
        );
        assert_eq!(
            find(Kind::Iban, "IBAN DE89 3704 0044 0532 0130 00 and GB82WEST12345698765432 bad GB82WEST12345698765433"),
            vec!["DE89 3704 0044 0532 0130 00", "GB82WEST12345698765432"]
        );
    }
}
