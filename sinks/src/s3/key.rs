//! Object keys: `key_template` such as `logs/{service}/{date}/{hour}/{instance}-{seq}.ndjson.zst`.
//!
//! Placeholders: any event field (`{service}`; `{source}` is the source component when no
//! field has that name), the event's UTC time (`{date}` = YYYY-MM-DD, `{year}`, `{month}`,
//! `{day}`, `{hour}`, `{minute}`), `{instance}` (unique per running sluice) and `{seq}`
//! (a counter per instance, zero-padded so keys sort in the order objects were opened).
//! Events whose rendered key (without `{seq}`) is the same share an object: that text is
//! the partition.
//!
//! Field values are made safe for a key: characters other than `A-Z a-z 0-9 . _ -` become
//! `_` (a `/` in a value never creates a level of "directories"), values are cut at 64
//! bytes, `.` and `..` become `_`, and an event without the field gets `_missing`.

use sluice_event::{time::civil_from_days, Event, Value};
use std::fmt::Write as _;

/// Marks where `{seq}` goes in a rendered partition (a value never contains it).
const SEQ_MARK: char = '\u{0}';
const MAX_VALUE: usize = 64;

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Lit(String),
    Field(String),
    Date,
    Year,
    Month,
    Day,
    Hour,
    Minute,
    Instance,
    Seq,
}

#[derive(Debug, Clone)]
pub struct KeyTemplate {
    parts: Vec<Part>,
    uses_time: bool,
}

impl KeyTemplate {
    /// Parse a template. It must contain `{instance}` and `{seq}`: without them two
    /// objects (of two instances, or of one partition) could get the same key and the
    /// second would replace the first.
    pub fn parse(t: &str) -> Result<KeyTemplate, String> {
        let mut parts = Vec::new();
        let mut rest = t;
        while let Some(i) = rest.find('{') {
            if i > 0 {
                parts.push(Part::Lit(rest[..i].to_string()));
            }
            let end = rest[i..].find('}').ok_or_else(|| format!("unclosed `{{` in \"{t}\""))? + i;
            let name = &rest[i + 1..end];
            parts.push(match name {
                "date" => Part::Date,
                "year" => Part::Year,
                "month" => Part::Month,
                "day" => Part::Day,
                "hour" => Part::Hour,
                "minute" => Part::Minute,
                "instance" => Part::Instance,
                "seq" => Part::Seq,
                f if !f.is_empty() && f.chars().all(|c| c.is_alphanumeric() || c == '_' || c == '.' || c == '-') => {
                    Part::Field(f.to_string())
                }
                other => return Err(format!("`{{{other}}}` in \"{t}\" is not a field name")),
            });
            rest = &rest[end + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Lit(rest.to_string()));
        }
        if rest.contains('}') || parts.iter().any(|p| matches!(p, Part::Lit(l) if l.contains('}'))) {
            return Err(format!("unmatched `}}` in \"{t}\""));
        }
        for (p, name) in [(Part::Instance, "{instance}"), (Part::Seq, "{seq}")] {
            if !parts.contains(&p) {
                return Err(format!(
                    "\"{t}\" has no `{name}`: every object needs a key no other object gets \
                     (`{{instance}}` differs between running sluice processes, `{{seq}}` between the objects of one)"
                ));
            }
        }
        if t.starts_with('/') {
            return Err(format!("\"{t}\" starts with `/`: S3 keys are relative to the bucket"));
        }
        let uses_time = parts
            .iter()
            .any(|p| matches!(p, Part::Date | Part::Year | Part::Month | Part::Day | Part::Hour | Part::Minute));
        Ok(KeyTemplate { parts, uses_time })
    }

    /// The event fields the template puts in keys.
    pub fn fields(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Field(f) => Some(f.as_str()),
            _ => None,
        })
    }

    /// Render the partition of `e` into `out` (cleared first): the key with a mark
    /// where the sequence number goes. Allocates nothing once `out` has grown.
    pub fn render_partition(&self, e: &Event, instance: &str, out: &mut String) {
        out.clear();
        let (mut y, mut mo, mut d, mut h, mut mi) = (0, 0, 0, 0, 0);
        if self.uses_time {
            let secs = e.timestamp.secs();
            let (yy, mm, dd) = civil_from_days(secs.div_euclid(86_400));
            let sod = secs.rem_euclid(86_400);
            (y, mo, d, h, mi) = (yy, mm, dd, sod / 3600, (sod % 3600) / 60);
        }
        for p in &self.parts {
            let _ = match p {
                Part::Lit(l) => {
                    out.push_str(l);
                    Ok(())
                }
                Part::Field(f) => {
                    push_value(out, e, f);
                    Ok(())
                }
                Part::Date => write!(out, "{y:04}-{mo:02}-{d:02}"),
                Part::Year => write!(out, "{y:04}"),
                Part::Month => write!(out, "{mo:02}"),
                Part::Day => write!(out, "{d:02}"),
                Part::Hour => write!(out, "{h:02}"),
                Part::Minute => write!(out, "{mi:02}"),
                Part::Instance => {
                    out.push_str(instance);
                    Ok(())
                }
                Part::Seq => {
                    out.push(SEQ_MARK);
                    Ok(())
                }
            };
        }
    }
}

/// The object key: the partition with its sequence number in place.
pub fn object_key(partition: &str, seq: u64) -> String {
    partition.replace(SEQ_MARK, &format!("{seq:08}"))
}

/// Append the field's value, made safe for a key.
fn push_value(out: &mut String, e: &Event, field: &str) {
    let start = out.len();
    match e.fields.get(field) {
        Some(Value::Str(s)) => push_safe(out, s.as_str()),
        Some(Value::Int(i)) => {
            let _ = write!(out, "{i}");
        }
        Some(Value::Bool(b)) => {
            let _ = write!(out, "{b}");
        }
        Some(Value::Float(f)) => push_safe(out, &f.to_string()),
        Some(Value::Null) | None => match e.meta(field) {
            Some(m) => push_safe(out, m),
            None => out.push_str("_missing"),
        },
        Some(_) => out.push_str("_structured"),
    }
    let v = &out[start..];
    if v.is_empty() || v == "." || v == ".." {
        out.truncate(start);
        out.push('_');
    }
}

fn push_safe(out: &mut String, v: &str) {
    for (n, c) in v.chars().enumerate() {
        if n >= MAX_VALUE {
            break;
        }
        out.push(if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') { c } else { '_' });
    }
}

/// An identifier unique to this run of sluice: the start time (UTC, to the second, so
/// the keys of successive runs sort in time) and 32 random bits.
pub fn new_instance_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let now = sluice_event::Timestamp::now();
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(now.0 as u64);
    h.write_u32(std::process::id());
    let secs = now.secs();
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    format!("{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z-{:08x}", sod / 3600, (sod % 3600) / 60, sod % 60, h.finish() as u32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_event::{Origin, OriginInfo, Timestamp};

    fn event(fields: &[(&str, Value)], secs: i64) -> Event {
        let origin = Origin { info: OriginInfo::new("app", None), offset: 0 };
        let mut e = Event::from_line("x".into(), Timestamp::from_secs(secs), origin);
        for (k, v) in fields {
            e.fields.insert(*k, v.clone());
        }
        e
    }

    #[test]
    fn renders_fields_time_instance_and_seq() {
        let t = KeyTemplate::parse("logs/{service}/{date}/{hour}/{instance}-{seq}.ndjson.zst").unwrap();
        // 2026-11-30T03:44:26Z
        let e = event(&[("service", "orders".into())], 1_796_010_266);
        let mut p = String::new();
        t.render_partition(&e, "I", &mut p);
        assert_eq!(object_key(&p, 7), "logs/orders/2026-11-30/03/I-00000007.ndjson.zst");
        assert_eq!(t.fields().collect::<Vec<_>>(), ["service"]);
    }

    #[test]
    fn values_are_made_safe_and_missing_fields_named() {
        let t = KeyTemplate::parse("{a}/{b}/{c}/{source}/{n}/{instance}{seq}").unwrap();
        let e = event(&[("a", "../etc/pass wd".into()), ("c", "..".into()), ("n", Value::Int(-3))], 0);
        let mut p = String::new();
        t.render_partition(&e, "I", &mut p);
        assert_eq!(object_key(&p, 1), ".._etc_pass_wd/_missing/_/app/-3/I00000001");
        let long = "x".repeat(500);
        let e = event(&[("a", long.as_str().into())], 0);
        t.render_partition(&e, "I", &mut p);
        assert!(p.starts_with(&format!("{}/", "x".repeat(64))), "{p}");
    }

    #[test]
    fn templates_without_unique_parts_are_refused() {
        assert!(KeyTemplate::parse("logs/{date}/{seq}.ndjson").unwrap_err().contains("{instance}"));
        assert!(KeyTemplate::parse("logs/{date}/{instance}.ndjson").unwrap_err().contains("{seq}"));
        assert!(KeyTemplate::parse("logs/{date/{instance}{seq}").is_err());
        assert!(KeyTemplate::parse("logs/{}/{instance}{seq}").is_err());
        assert!(KeyTemplate::parse("/logs/{instance}{seq}").is_err());
        assert!(KeyTemplate::parse("logs}/{instance}{seq}").is_err());
    }

    #[test]
    fn instance_ids_differ_and_start_with_the_time() {
        let a = new_instance_id();
        let b = new_instance_id();
        assert_ne!(a, b);
        assert_eq!(a.len(), "20261130T034426Z-0123abcd".len(), "{a}");
        assert!(a.starts_with("20"), "{a}");
    }
}
