//! Fitting a shape to a template whose `<*>` may span tokens, and the parameters of a
//! line by alignment (memoised: no exponential time on hostile lines).

use super::*;

/// Does shape token `b` fit template token `a`: `<*>` takes any token, a literal with
/// `<*>` parts (`user=<*>`, `(<*>)`, `blk_<*>`) any token that fills each part with
/// something, other literals only themselves.
pub(super) fn tok_fits(a: &Tok, b: &Tok) -> bool {
    match (a, b) {
        // A variable never takes a bracket or a double quote without its pair: the
        // template keeps them (`<*>]` is not covered by `<*>`).
        (Tok::Var, Tok::Var) => true,
        (Tok::Var, Tok::Lit(y)) => paired(y.as_bytes()),
        (Tok::Lit(x), Tok::Lit(y)) => {
            x == y
                // (A quoted phrase of a template, which may hold several words, is covered
                // only by a token that takes several words too.)
                || (x.contains(VAR) && (phrase_quote(y).is_none() || phrase_quote(x).is_some()) && {
                    // The shape token's own `<*>` parts are values: a literal `<` or `>` of
                    // the pattern must not match inside one. Each becomes the byte 0xFF,
                    // which no UTF-8 text holds (a NUL did: a line's own NULs matched it).
                    let mut marked = Vec::with_capacity(y.len());
                    for (i, part) in y.split(VAR).enumerate() {
                        if i > 0 {
                            marked.push(0xFF);
                        }
                        marked.extend_from_slice(part.as_bytes());
                    }
                    let y = marked;
                    let mut parts = Vec::new();
                    sub_params(x, &y, &mut parts) && parts.iter().all(|p| !p.is_empty())
                })
        }
        (Tok::Lit(_), Tok::Var) => false,
    }
}

/// Brackets nest and double quotes pair in `t`: what a variable may take.
pub(super) fn paired(t: &[u8]) -> bool {
    !has_bracket_or_quote(t) || (bytes_balance(t) && t.iter().filter(|&&b| b == b'"').count() % 2 == 0)
}

fn has_bracket_or_quote(t: &[u8]) -> bool {
    has_bracket(t) || memchr::memchr(b'"', t).is_some()
}

/// The quote of a template token whose value is a quoted phrase (`"<*>"`,
/// `query="<*>"`, `reason='<*>'`): its `<*>` may take several words.
pub(super) fn phrase_quote(s: &str) -> Option<u8> {
    let b = s.as_bytes();
    let n = b.len();
    if n < 5 {
        return None;
    }
    let q = b[n - 1];
    if !matches!(q, b'"' | b'\'') || &b[n - 4..n - 1] != VAR.as_bytes() || b[n - 5] != q {
        return None;
    }
    let prefix = &s[..n - 5];
    (!prefix.contains(VAR) && !prefix.contains(q as char) && (prefix.is_empty() || prefix.ends_with(['=', ':'])))
        .then_some(q)
}

/// The words `k` of which a phrase token takes at `j`: `k` words from `j` joined by a
/// space, with the quote only at the two ends (a phrase never runs past its own quote).
pub(super) fn phrase_words<'a>(q: u8, words: impl Iterator<Item = &'a [u8]>, max: usize) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut joined = Vec::new();
    for (k, w) in words.take(max).enumerate() {
        if k > 0 {
            // The previous word ended the phrase: stop.
            if joined.last() == Some(&q) && joined.len() > 1 {
                break;
            }
            joined.push(b' ');
        }
        joined.extend_from_slice(w);
        out.push(joined.clone());
    }
    out
}

/// Does `toks` fit template `tt`, where a `<*>` may take one or more tokens?
pub(super) fn fits_with_spans(tt: &[Tok], toks: &[Tok]) -> bool {
    // Memoised on (template position, token position): polynomial, whatever the input.
    pub(super) fn go(tt: &[Tok], toks: &[Tok], i: usize, j: usize, failed: &mut [bool]) -> bool {
        let slot = i * (toks.len() + 1) + j;
        if failed[slot] {
            return false;
        }
        let ok = match tt.get(i) {
            None => j == toks.len(),
            Some(Tok::Var) => {
                let max = (toks.len() - j).saturating_sub(tt.len() - i - 1);
                let mut span = Vec::new();
                (1..=max).any(|k| {
                    span.extend_from_slice(toks[j + k - 1].text().as_bytes());
                    paired(&span) && go(tt, toks, i + 1, j + k, failed)
                })
            }
            Some(a @ Tok::Lit(s)) if phrase_quote(s).is_some() => {
                let q = phrase_quote(s).unwrap_or(b'"');
                let max = (toks.len() - j).saturating_sub(tt.len() - i - 1);
                let texts = toks[j..].iter().map(|t| t.text().as_bytes());
                phrase_words(q, texts, max).iter().enumerate().any(|(k, joined)| {
                    let b = Tok::Lit(String::from_utf8_lossy(joined).into());
                    tok_fits(a, &b) && go(tt, toks, i + 1, j + k + 1, failed)
                })
            }
            Some(a) => toks.get(j).is_some_and(|b| tok_fits(a, b)) && go(tt, toks, i + 1, j + 1, failed),
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
pub(super) fn align(
    tt: &[Tok],
    words: &[&[u8]],
    ti: usize,
    wi: usize,
    out: &mut Vec<Vec<u8>>,
    failed: &mut [bool],
) -> bool {
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
            Some(_) if phrase_quote(s).is_some() => {
                let q = phrase_quote(s).unwrap_or(b'"');
                let max = words.len().saturating_sub(wi).saturating_sub(tt.len() - ti - 1);
                let spans = phrase_words(q, words[wi..].iter().copied(), max);
                spans.iter().enumerate().rev().any(|(k, joined)| {
                    out.truncate(mark);
                    sub_params(s, joined, out) && align(tt, words, ti + 1, wi + k + 1, out, failed)
                })
            }
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
pub(super) fn sub_params(pattern: &str, word: &[u8], out: &mut Vec<Vec<u8>>) -> bool {
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
