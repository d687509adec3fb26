//! `{name}` / `{name:type}` placeholders shared by format strings and templates.

use sluice_event::{ByteStr, Value};
use smol_str::SmolStr;

/// How a captured value is checked and typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Str,
    Int,
    Float,
    Ip,
    Hex,
    /// `{timestamp}` in a format string: extent found by timestamp recognition.
    Timestamp,
    /// `{level}`: normalised.
    Level,
    /// `{message}`: the rest of the line.
    Message,
}

/// Parse the inside of `{…}`: `name` or `name:type`.
pub fn parse_spec(spec: &str) -> Result<(SmolStr, Kind), crate::PatternError> {
    let (name, ty) = match spec.split_once(':') {
        Some((n, t)) => (n.trim(), Some(t.trim())),
        None => (spec.trim(), None),
    };
    if name.is_empty()
        || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '@' || c == '-')
    {
        return Err(format!("invalid placeholder name `{{{spec}}}` (letters, digits, `_`, `.`, `-`, `@`)").into());
    }
    let kind = match ty {
        None => match name {
            "timestamp" => Kind::Timestamp,
            "level" => Kind::Level,
            "message" => Kind::Message,
            _ => Kind::Str,
        },
        Some("int") => Kind::Int,
        Some("float") => Kind::Float,
        Some("ip") => Kind::Ip,
        Some("hex") => Kind::Hex,
        Some("str") | Some("string") => Kind::Str,
        Some(other) => {
            return Err(format!(
                "unknown placeholder type `{other}` in `{{{spec}}}`, expected `int`, `float`, `ip`, `hex` or `str`"
            )
            .into())
        }
    };
    Ok((SmolStr::new(name), kind))
}

/// One piece of a pattern: literal text (`Ok`) or a placeholder's name and kind (`Err`).
pub type Part = Result<String, (SmolStr, Kind)>;

/// Split a pattern into literal text and placeholders. `{{` and `}}` are literal braces.
pub fn split_pattern(p: &str) -> Result<Vec<Part>, crate::PatternError> {
    let mut out: Vec<Part> = Vec::new();
    let mut lit = String::new();
    let b = p.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'{' if b.get(i + 1) == Some(&b'{') => {
                lit.push('{');
                i += 2;
            }
            b'}' if b.get(i + 1) == Some(&b'}') => {
                lit.push('}');
                i += 2;
            }
            b'{' => {
                let end = p[i..].find('}').ok_or_else(|| format!("unclosed `{{` at byte {i} in \"{p}\""))? + i;
                if !lit.is_empty() {
                    out.push(Ok(std::mem::take(&mut lit)));
                }
                if matches!(out.last(), Some(Err(_))) {
                    return Err(format!(
                        "placeholders `{{{}}}` at byte {i} in \"{p}\" follows another placeholder directly; put literal text between them",
                        &p[i + 1..end]
                    ).into());
                }
                out.push(Err(parse_spec(&p[i + 1..end])?));
                i = end + 1;
            }
            b'}' => {
                return Err(format!("unmatched `}}` at byte {i} in \"{p}\" (write `}}}}` for a literal brace)").into())
            }
            _ => {
                let ch = p[i..].chars().next().unwrap();
                lit.push(ch);
                i += ch.len_utf8();
            }
        }
    }
    if !lit.is_empty() {
        out.push(Ok(lit));
    }
    let mut seen = std::collections::HashSet::new();
    for part in &out {
        if let Err((name, _)) = part {
            if !seen.insert(name.clone()) {
                return Err(format!("placeholder `{{{name}}}` appears twice in \"{p}\"").into());
            }
        }
    }
    Ok(out)
}

/// Check and type a captured value. `None` if it does not fit the kind.
#[inline]
pub fn typed(kind: Kind, text: &str, src: &ByteStr) -> Option<Value> {
    match kind {
        Kind::Str | Kind::Message | Kind::Timestamp | Kind::Level => Some(Value::Str(src.slice_str(text))),
        Kind::Int => text.parse::<i64>().ok().map(Value::Int),
        Kind::Float => {
            if text.bytes().all(|c| c.is_ascii_digit() || matches!(c, b'.' | b'-' | b'+' | b'e' | b'E')) {
                text.parse::<f64>().ok().filter(|f| f.is_finite()).map(Value::Float)
            } else {
                None
            }
        }
        Kind::Ip => text.parse::<std::net::IpAddr>().ok().map(|_| Value::Str(src.slice_str(text))),
        Kind::Hex => {
            let t = text.strip_prefix("0x").unwrap_or(text);
            (!t.is_empty() && t.bytes().all(|c| c.is_ascii_hexdigit())).then(|| Value::Str(src.slice_str(text)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits() {
        let p = split_pattern("Payment failed for user {user_id:int}: {error}").unwrap();
        assert_eq!(p.len(), 4);
        assert_eq!(p[0], Ok("Payment failed for user ".to_string()));
        assert_eq!(p[1], Err((SmolStr::new("user_id"), Kind::Int)));
        assert!(split_pattern("{a}{b}").unwrap_err().0.contains("follows another placeholder"));
        assert!(split_pattern("{a:date}").unwrap_err().0.contains("unknown placeholder type `date`"));
        assert!(split_pattern("x {a").unwrap_err().0.contains("unclosed"));
        assert!(split_pattern("{a} {a}").unwrap_err().0.contains("appears twice"));
        assert_eq!(split_pattern("{{literal}}").unwrap(), vec![Ok("{literal}".to_string())]);
    }
}
