//! Where every key and value of the document is, by path.

use std::collections::HashMap;
use std::ops::Range;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PathSeg {
    Key(String),
    Index(usize),
}

/// `sources.app.include[2]`
pub fn dotted(path: &[PathSeg]) -> String {
    let mut s = String::new();
    for seg in path {
        match seg {
            PathSeg::Key(k) => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(k);
            }
            PathSeg::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

/// The inverse of [`dotted`]: `tail.window` or `rules[2].rate` as path segments.
pub fn parse_dotted(key: &str) -> Vec<PathSeg> {
    let mut out = Vec::new();
    for part in key.split('.').filter(|p| !p.is_empty()) {
        let (name, mut rest) = part.split_once('[').map_or((part, ""), |(n, r)| (n, r));
        if !name.is_empty() {
            out.push(PathSeg::Key(name.to_string()));
        }
        while let Some((idx, after)) = rest.split_once(']') {
            match idx.parse() {
                Ok(i) => out.push(PathSeg::Index(i)),
                Err(_) => out.push(PathSeg::Key(idx.to_string())),
            }
            rest = after.strip_prefix('[').unwrap_or(after);
        }
    }
    out
}

/// Where a key (absent for array items and the root) and its value are.
type KeyValueSpans = (Option<Range<usize>>, Range<usize>);

#[derive(Debug, Default)]
pub struct SpanIndex {
    map: HashMap<Vec<PathSeg>, KeyValueSpans>,
}

impl SpanIndex {
    /// Byte offset for a diagnostic about `path`: its key (if `prefer_key`) or value;
    /// for a path that is not in the document (a missing key), its nearest ancestor.
    pub fn locate(&self, path: &[PathSeg], prefer_key: bool) -> usize {
        for n in (0..=path.len()).rev() {
            if let Some((key, value)) = self.map.get(&path[..n]) {
                let exact = n == path.len();
                return match (exact && !prefer_key, key) {
                    (false, Some(k)) => k.start,
                    _ => value.start,
                };
            }
        }
        0
    }

    fn walk(&mut self, path: &mut Vec<PathSeg>, key: Option<Range<usize>>, v: &Spanned<DeValue<'_>>) {
        self.map.insert(path.clone(), (key, v.span()));
        match v.get_ref() {
            DeValue::Table(t) => self.walk_table(path, t),
            DeValue::Array(a) => {
                for (i, item) in a.iter().enumerate() {
                    path.push(PathSeg::Index(i));
                    self.walk(path, None, item);
                    path.pop();
                }
            }
            _ => {}
        }
    }

    fn walk_table(&mut self, path: &mut Vec<PathSeg>, t: &DeTable<'_>) {
        for (k, v) in t.iter() {
            path.push(PathSeg::Key(k.get_ref().to_string()));
            self.walk(path, Some(k.span()), v);
            path.pop();
        }
    }
}

/// Parse the document: its values, and the span of everything in it.
pub fn parse(text: &str) -> Result<(toml::Table, SpanIndex), (String, Range<usize>)> {
    let doc = DeTable::parse(text).map_err(|e| (e.message().trim_end().to_string(), e.span().unwrap_or(0..0)))?;
    let mut index = SpanIndex::default();
    index.map.insert(Vec::new(), (None, 0..0));
    index.walk_table(&mut Vec::new(), doc.get_ref());
    let table: toml::Table =
        text.parse().map_err(|e: toml::de::Error| (e.message().trim_end().to_string(), e.span().unwrap_or(0..0)))?;
    Ok((table, index))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotted_round_trip() {
        for k in ["tail.window", "rules[2].rate", "include[0]", "a"] {
            assert_eq!(dotted(&parse_dotted(k)), k);
        }
    }
}
