//! printf templates → named events, matched in one pass.
//!
//! `Payment failed for user {user_id}: {error}` matches
//! `Payment failed for user 42: Card declined` and yields `event`, a stable
//! `template_id` and the typed placeholders.
//!
//! Matching names a few candidate templates, verifies them most specific first (most
//! literal characters, then declaration order), and the first that matches wins:
//! - a template that starts with literal text (most printf messages do) can only match
//!   a message starting with that text: one anchored Aho-Corasick walk over the first
//!   literals finds them, and stops where the message's start stops matching any;
//! - a template that starts with a placeholder has its longest literal as an *anchor*:
//!   one unanchored scan of the whole message finds the anchors present (only built
//!   when some template needs it);
//! - templates without any literal text are tried last.
//!
//! Either way the candidates include every template that can match, so which one wins
//! does not depend on how they were found. The cost is an automaton walk plus a handful
//! of verifications, whether there are ten templates or five hundred.

use crate::placeholder::{self, Kind};
use aho_corasick::automaton::OverlappingState;
use aho_corasick::{AhoCorasick, AhoCorasickBuilder, Anchored, Input, MatchKind, StartKind};
use memchr::memmem;
use sluice_event::{ByteStr, Fields};
use smol_str::SmolStr;

#[derive(Debug, Clone)]
pub struct TemplateSpec {
    pub event: String,
    pub pattern: String,
}

#[derive(Debug)]
// Built once per pattern and walked in order on every line: the finder stays inline
// (no pointer chase per literal); the few wasted bytes per placeholder do not matter.
#[allow(clippy::large_enum_variant)]
enum Piece {
    Lit(String, memmem::Finder<'static>),
    Ph(SmolStr, Kind),
}

#[derive(Debug)]
struct Compiled {
    event: ByteStr,
    id: ByteStr,
    pattern: String,
    pieces: Vec<Piece>,
    literal_len: usize,
}

/// A compiled set of templates.
#[derive(Debug)]
pub struct TemplateSet {
    templates: Vec<Compiled>,
    /// First literals of the templates that start with one (anchored searches only).
    prefixes: Group,
    /// Longest literals of the templates that start with a placeholder.
    anchors: Group,
    /// Templates with no literal text (match anything of the right shape).
    unanchored: Vec<u32>,
}

/// Literals in one automaton, each naming the templates it stands for.
#[derive(Debug, Default)]
struct Group {
    ac: Option<AhoCorasick>,
    /// Pattern index → templates (`matches` orders the candidates).
    templates: Vec<Vec<u32>>,
}

impl Group {
    fn add(&mut self, literals: &mut Vec<String>, literal: &str, template: u32) {
        match literals.iter().position(|x| x == literal) {
            Some(k) => self.templates[k].push(template),
            None => {
                literals.push(literal.to_string());
                self.templates.push(vec![template]);
            }
        }
    }

    fn build(mut self, literals: &[String], start: StartKind) -> Result<Group, crate::PatternError> {
        if !literals.is_empty() {
            let ac = AhoCorasickBuilder::new()
                .match_kind(MatchKind::Standard)
                .start_kind(start)
                .build(literals)
                .map_err(|e| format!("cannot build the template matcher: {e}"))?;
            self.ac = Some(ac);
        }
        Ok(self)
    }
}

/// Per-thread scratch space, reused across messages (no allocation per match).
#[derive(Default)]
pub struct Scratch {
    candidates: Vec<u32>,
    seen: Vec<u32>,
    generation: u32,
    caps: Vec<(usize, usize)>,
}

/// A successful match.
pub struct Match<'t> {
    pub event: &'t ByteStr,
    pub template_id: &'t ByteStr,
    pub pattern: &'t str,
}

/// A stable id for a template text: 16 hex digits of its 64-bit FNV-1a hash.
pub fn template_id(pattern: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in pattern.as_bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

impl TemplateSet {
    pub fn compile(specs: &[TemplateSpec]) -> Result<TemplateSet, crate::PatternError> {
        let mut templates = Vec::with_capacity(specs.len());
        for (i, s) in specs.iter().enumerate() {
            if s.event.trim().is_empty() {
                return Err(format!("template {i}: `event` must not be empty").into());
            }
            let parts =
                placeholder::split_pattern(&s.pattern).map_err(|e| format!("template {i} (`{}`): {e}", s.event))?;
            if parts.is_empty() {
                return Err(format!("template {i} (`{}`): the pattern is empty", s.event).into());
            }
            let mut pieces = Vec::new();
            let mut literal_len = 0;
            for p in parts {
                match p {
                    Ok(l) => {
                        literal_len += l.len();
                        let f = memmem::Finder::new(l.as_bytes()).into_owned();
                        pieces.push(Piece::Lit(l, f));
                    }
                    Err((name, kind)) => pieces.push(Piece::Ph(name, kind)),
                }
            }
            templates.push(Compiled {
                event: ByteStr::interned(s.event.trim()),
                id: ByteStr::interned(&template_id(&s.pattern)),
                pattern: s.pattern.clone(),
                pieces,
                literal_len,
            });
        }
        let (mut prefixes, mut first_literals) = (Group::default(), Vec::new());
        let (mut anchors, mut longest_literals) = (Group::default(), Vec::new());
        let mut unanchored = Vec::new();
        for (i, t) in templates.iter().enumerate() {
            let literals = || {
                t.pieces.iter().filter_map(|p| match p {
                    Piece::Lit(l, _) => Some(l),
                    _ => None,
                })
            };
            match (&t.pieces[0], literals().max_by_key(|l| l.len())) {
                (Piece::Lit(first, _), _) => prefixes.add(&mut first_literals, first, i as u32),
                (_, Some(longest)) => anchors.add(&mut longest_literals, longest, i as u32),
                (_, None) => unanchored.push(i as u32),
            }
        }
        let prefixes = prefixes.build(&first_literals, StartKind::Anchored)?;
        let anchors = anchors.build(&longest_literals, StartKind::Unanchored)?;
        Ok(TemplateSet { templates, prefixes, anchors, unanchored })
    }

    pub fn len(&self) -> usize {
        self.templates.len()
    }

    pub fn is_empty(&self) -> bool {
        self.templates.is_empty()
    }

    /// Match `msg`; on success, add the typed placeholders to `fields` (zero-copy slices
    /// of `msg`) and return the template.
    pub fn matches<'t>(&'t self, msg: &ByteStr, fields: &mut Fields, sc: &mut Scratch) -> Option<Match<'t>> {
        let text = msg.as_str();
        sc.candidates.clear();
        if sc.seen.len() < self.templates.len() {
            sc.seen.resize(self.templates.len(), 0);
        }
        sc.generation = sc.generation.wrapping_add(1);
        if sc.generation == 0 {
            sc.seen.iter_mut().for_each(|x| *x = 0);
            sc.generation = 1;
        }
        if let Some(ac) = &self.prefixes.ac {
            // Every first literal the message starts with (a template is under one only).
            let input = Input::new(text).anchored(Anchored::Yes);
            let mut state = OverlappingState::start();
            loop {
                ac.try_find_overlapping(input.clone(), &mut state).expect("an anchored automaton");
                let Some(m) = state.get_match() else { break };
                sc.candidates.extend_from_slice(&self.prefixes.templates[m.pattern().as_usize()]);
            }
        }
        if let Some(ac) = &self.anchors.ac {
            for m in ac.find_overlapping_iter(text) {
                for &t in &self.anchors.templates[m.pattern().as_usize()] {
                    if sc.seen[t as usize] != sc.generation {
                        sc.seen[t as usize] = sc.generation;
                        sc.candidates.push(t);
                    }
                }
            }
        }
        let mut cands = std::mem::take(&mut sc.candidates);
        if cands.len() > 1 {
            cands.sort_unstable_by_key(|&i| self.specificity(i));
        }
        cands.extend_from_slice(&self.unanchored);
        let mut found = None;
        for &i in &cands {
            let t = &self.templates[i as usize];
            if verify(t, text, &mut sc.caps) {
                // The placeholders, then `event` and `template_id` the caller adds.
                fields.reserve(sc.caps.len() + 2);
                let mut k = 0;
                for p in &t.pieces {
                    if let Piece::Ph(name, kind) = p {
                        let (a, b) = sc.caps[k];
                        k += 1;
                        if let Some(v) = placeholder::typed(*kind, &text[a..b], msg) {
                            fields.insert(name.clone(), v);
                        }
                    }
                }
                found = Some(Match { event: &t.event, template_id: &t.id, pattern: &t.pattern });
                break;
            }
        }
        sc.candidates = cands;
        found
    }
}

impl TemplateSet {
    /// The order candidates are tried in: most literal characters first, then declaration
    /// order.
    fn specificity(&self, i: u32) -> (std::cmp::Reverse<usize>, u32) {
        (std::cmp::Reverse(self.templates[i as usize].literal_len), i)
    }

    /// The template `matches` must pick, found by checking every template, most
    /// specific first: slow, for tests and fuzzing.
    #[doc(hidden)]
    pub fn winner_by_checking_all(&self, text: &str) -> Option<Match<'_>> {
        let mut order: Vec<u32> = (0..self.templates.len() as u32).collect();
        order.sort_by_key(|&i| self.specificity(i));
        let mut caps = Vec::new();
        let t = &self.templates
            [order.into_iter().find(|&i| verify(&self.templates[i as usize], text, &mut caps))? as usize];
        Some(Match { event: &t.event, template_id: &t.id, pattern: &t.pattern })
    }
}

/// Does `text` match template `t`? Records placeholder spans in `caps`.
fn verify(t: &Compiled, text: &str, caps: &mut Vec<(usize, usize)>) -> bool {
    caps.clear();
    let b = text.as_bytes();
    let mut pos = 0usize;
    let n = t.pieces.len();
    for (i, p) in t.pieces.iter().enumerate() {
        match p {
            Piece::Lit(l, _) => {
                if !b[pos..].starts_with(l.as_bytes()) {
                    return false;
                }
                pos += l.len();
            }
            Piece::Ph(_, kind) => {
                let end = if i + 1 == n {
                    b.len()
                } else {
                    let Piece::Lit(_, f) = &t.pieces[i + 1] else { unreachable!() };
                    // Non-empty value: search from the next byte.
                    if pos >= b.len() {
                        return false;
                    }
                    match f.find(&b[pos + 1..]) {
                        Some(k) => pos + 1 + k,
                        None => return false,
                    }
                };
                if end <= pos || !text.is_char_boundary(end) {
                    return false;
                }
                if !kind_ok(*kind, &text[pos..end]) {
                    return false;
                }
                caps.push((pos, end));
                pos = end;
            }
        }
    }
    pos == b.len()
}

#[inline]
fn kind_ok(kind: Kind, v: &str) -> bool {
    match kind {
        Kind::Int => {
            let d = v.strip_prefix('-').unwrap_or(v);
            !d.is_empty() && d.len() <= 18 && d.bytes().all(|c| c.is_ascii_digit())
        }
        Kind::Float => v.parse::<f64>().is_ok_and(|f| f.is_finite()),
        Kind::Ip => v.parse::<std::net::IpAddr>().is_ok(),
        Kind::Hex => {
            let t = v.strip_prefix("0x").unwrap_or(v);
            !t.is_empty() && t.bytes().all(|c| c.is_ascii_hexdigit())
        }
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_event::Value;

    fn set(specs: &[(&str, &str)]) -> TemplateSet {
        TemplateSet::compile(
            &specs
                .iter()
                .map(|(e, p)| TemplateSpec { event: e.to_string(), pattern: p.to_string() })
                .collect::<Vec<_>>(),
        )
        .unwrap()
    }

    fn m(ts: &TemplateSet, msg: &str) -> Option<(String, Fields)> {
        let mut f = Fields::new();
        let mut sc = Scratch::default();
        ts.matches(&ByteStr::from(msg), &mut f, &mut sc).map(|m| (m.event.to_string(), f))
    }

    #[test]
    fn matches_and_types() {
        let ts = set(&[
            ("payment_failed", "Payment failed for user {user_id:int}: {error}"),
            ("payment_ok", "Payment {payment_id} succeeded in {duration_ms:int}ms"),
            ("health", "health check ok"),
        ]);
        let (e, f) = m(&ts, "Payment failed for user 42: Card declined: no funds").unwrap();
        assert_eq!(e, "payment_failed");
        assert_eq!(f.get("user_id"), Some(&Value::Int(42)));
        assert_eq!(f.get("error").unwrap().as_str(), Some("Card declined: no funds"));
        let (e, f) = m(&ts, "Payment pay_1 succeeded in 528ms").unwrap();
        assert_eq!(e, "payment_ok");
        assert_eq!(f.get("duration_ms"), Some(&Value::Int(528)));
        assert_eq!(m(&ts, "health check ok").unwrap().0, "health");
        assert!(m(&ts, "health check ok!").is_none());
        assert!(m(&ts, "Payment failed for user abc: x").is_none());
        assert!(m(&ts, "nothing").is_none());
    }

    #[test]
    fn most_specific_wins_deterministically() {
        let ts = set(&[
            ("generic", "User {user} logged {how}"),
            ("specific", "User {user} logged in"),
            ("any", "{anything}"),
        ]);
        assert_eq!(m(&ts, "User bob logged in").unwrap().0, "specific");
        assert_eq!(m(&ts, "User bob logged out").unwrap().0, "generic");
        assert_eq!(m(&ts, "something else").unwrap().0, "any");
        assert_eq!(template_id("User {user} logged in"), template_id("User {user} logged in"));
        assert_ne!(template_id("a"), template_id("b"));
    }

    #[test]
    fn hundreds_of_templates() {
        let mut specs = Vec::new();
        for i in 0..500 {
            specs.push((format!("ev{i}"), format!("Operation op{i} finished with code {{code:int}} for {{who}}")));
        }
        let ts = TemplateSet::compile(
            &specs.iter().map(|(e, p)| TemplateSpec { event: e.clone(), pattern: p.clone() }).collect::<Vec<_>>(),
        )
        .unwrap();
        let (e, f) = m(&ts, "Operation op377 finished with code 7 for alice").unwrap();
        assert_eq!(e, "ev377");
        assert_eq!(f.get("code"), Some(&Value::Int(7)));
    }

    /// Whatever way the candidates are found (first literal, longest literal, none), the
    /// winner is the one a check of every template, most specific first, would pick.
    #[test]
    fn candidates_never_change_the_winner() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        // Words that share prefixes and overlap, so first literals nest.
        let words = ["a", "ab", "abc", "User ", "User b", "x=", " in", "1", ": ", "done"];
        for _ in 0..300 {
            let mut specs = Vec::new();
            for t in 0..1 + next(8) {
                let mut p = String::new();
                for _ in 0..1 + next(4) {
                    if next(3) == 0 {
                        p.push_str(["{v}", "{n:int}"][next(2)]);
                    } else {
                        p.push_str(words[next(words.len())]);
                    }
                }
                if placeholder::split_pattern(&p).is_ok() {
                    specs.push(TemplateSpec { event: format!("e{t}"), pattern: p });
                }
            }
            let Ok(ts) = TemplateSet::compile(&specs) else { continue };
            for _ in 0..50 {
                let mut msg = String::new();
                for _ in 0..1 + next(5) {
                    msg.push_str([words[next(words.len())], "42", "q"][next(3).min(next(3))]);
                }
                let mut sc = Scratch::default();
                let got = ts.matches(&ByteStr::from(msg.as_str()), &mut Fields::new(), &mut sc).map(|t| t.pattern);
                assert_eq!(got, ts.winner_by_checking_all(&msg).map(|t| t.pattern), "{specs:?} on {msg:?}");
            }
        }
    }
}
