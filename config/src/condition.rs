//! The condition language shared by `filter`, `route`, `sample` and `metrics`.
//!
//! ```toml
//! when = { level = ["error", "fatal"], event = "retry", service = "payments" }  # all must hold
//! when = { exists = "trace_id" }
//! when = { matches = { message = "timed? ?out" } }
//! when = { duration_ms = { gt = 1000 } }            # gt, gte, lt, lte, eq, ne
//! when = { level_at_least = "warn" }
//! when = { any = [{ event = "retry" }, { status = 504 }] }
//! when = { not = { level = "debug" } }
//! ```
//! A table with several keys means all of them. A field key compares equal (a value) or
//! any-of (an array); `message` is the event's message; a dotted key (`a.b`) reaches into
//! nested maps when no field has that exact name. Numbers compare numerically also
//! against numeric text (`status = 504` matches `"504"`). Conditions are compiled once
//! (regexes included) and evaluated without allocating.

use regex::Regex;
use serde::de::{Deserialize, Deserializer, Error as _};
use sluice_event::{Event, Level, Value};

/// A compiled condition.
#[derive(Debug, Clone)]
pub enum Condition {
    True,
    All(Vec<Condition>),
    Any(Vec<Condition>),
    Not(Box<Condition>),
    Exists(String),
    Matches(String, Regex),
    OneOf(String, Vec<Literal>),
    Compare(String, Op, f64),
    LevelAtLeast(Level),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Gt,
    Gte,
    Lt,
    Lte,
    Eq,
    Ne,
}

/// A literal to compare against, with its numeric value precomputed.
#[derive(Debug, Clone)]
pub struct Literal {
    text: String,
    num: Option<f64>,
    boolean: Option<bool>,
}

impl<'de> Deserialize<'de> for Condition {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = toml::Value::deserialize(d)?;
        Condition::from_toml(&v).map_err(D::Error::custom)
    }
}

fn literal(v: &toml::Value) -> Result<Literal, String> {
    Ok(match v {
        toml::Value::String(s) => {
            Literal { text: s.clone(), num: s.parse().ok().filter(|f: &f64| f.is_finite()), boolean: None }
        }
        toml::Value::Integer(i) => Literal { text: i.to_string(), num: Some(*i as f64), boolean: None },
        toml::Value::Float(f) => Literal { text: f.to_string(), num: Some(*f), boolean: None },
        toml::Value::Boolean(b) => Literal { text: b.to_string(), num: None, boolean: Some(*b) },
        other => return Err(format!("expected a string, number or boolean, found {}", other.type_str())),
    })
}

fn number(v: &toml::Value, what: &str) -> Result<f64, String> {
    match v {
        toml::Value::Integer(i) => Ok(*i as f64),
        toml::Value::Float(f) => Ok(*f),
        other => Err(format!("`{what}` expects a number, found {}", other.type_str())),
    }
}

impl Condition {
    /// Compile a `when` value.
    pub fn from_toml(v: &toml::Value) -> Result<Condition, crate::ValueError> {
        let toml::Value::Table(t) = v else {
            return Err(
                format!("a condition is a table such as {{ level = \"error\" }}, found {}", v.type_str()).into()
            );
        };
        let mut all = Vec::new();
        for (k, v) in t {
            all.push(match k.as_str() {
                "any" | "all" => {
                    let toml::Value::Array(items) = v else { return Err(format!("`{k}` expects an array of conditions").into()) };
                    let cs = items.iter().map(Condition::from_toml).collect::<Result<Vec<_>, _>>()?;
                    if k == "any" {
                        Condition::Any(cs)
                    } else {
                        Condition::All(cs)
                    }
                }
                "not" => Condition::Not(Box::new(Condition::from_toml(v)?)),
                "exists" => match v {
                    toml::Value::String(f) => Condition::Exists(f.clone()),
                    _ => return Err("`exists` expects a field name".into()),
                },
                "level_at_least" => {
                    let s = v.as_str().ok_or("`level_at_least` expects a level name")?;
                    Condition::LevelAtLeast(Level::from_name(s).ok_or_else(|| {
                        format!("`level_at_least`: unknown level `{s}`, expected one of trace, debug, info, warn, error, fatal")
                    })?)
                }
                "matches" => {
                    let toml::Value::Table(m) = v else { return Err("`matches` expects { field = \"regex\" }".into()) };
                    let mut cs = Vec::new();
                    for (f, re) in m {
                        let re = re.as_str().ok_or_else(|| format!("`matches.{f}` expects a regex string"))?;
                        let r = Regex::new(re).map_err(|e| format!("`matches.{f}`: invalid regex: {e}"))?;
                        cs.push(Condition::Matches(f.clone(), r));
                    }
                    Condition::All(cs)
                }
                field => match v {
                    toml::Value::Array(items) => {
                        let lits = items.iter().map(literal).collect::<Result<Vec<_>, _>>().map_err(|e| format!("`{field}`: {e}"))?;
                        Condition::OneOf(field.to_string(), lits)
                    }
                    toml::Value::Table(ops) => {
                        let mut cs = Vec::new();
                        for (op, val) in ops {
                            let o = match op.as_str() {
                                "gt" => Op::Gt,
                                "gte" => Op::Gte,
                                "lt" => Op::Lt,
                                "lte" => Op::Lte,
                                "eq" => Op::Eq,
                                "ne" => Op::Ne,
                                other => {
                                    return Err(format!(
                                        "`{field}.{other}`: unknown comparison, expected `gt`, `gte`, `lt`, `lte`, `eq` or `ne`"
                                    ).into())
                                }
                            };
                            cs.push(Condition::Compare(field.to_string(), o, number(val, &format!("{field}.{op}"))?));
                        }
                        Condition::All(cs)
                    }
                    other => Condition::OneOf(field.to_string(), vec![literal(other).map_err(|e| format!("`{field}`: {e}"))?]),
                },
            });
        }
        Ok(match all.len() {
            0 => Condition::True,
            1 => all.pop().unwrap(),
            _ => Condition::All(all),
        })
    }

    /// Evaluate against an event.
    pub fn eval(&self, e: &Event) -> bool {
        match self {
            Condition::True => true,
            Condition::All(cs) => cs.iter().all(|c| c.eval(e)),
            Condition::Any(cs) => cs.iter().any(|c| c.eval(e)),
            Condition::Not(c) => !c.eval(e),
            Condition::Exists(f) => lookup(e, f).is_some_and(|v| !matches!(v, Found::Value(Value::Null))),
            Condition::Matches(f, re) => lookup(e, f).is_some_and(|v| v.as_text().is_some_and(|t| re.is_match(t))),
            Condition::OneOf(f, lits) => lookup(e, f).is_some_and(|v| lits.iter().any(|l| v.equals(l))),
            Condition::Compare(f, op, n) => lookup(e, f).and_then(|v| v.as_num()).is_some_and(|x| match op {
                Op::Gt => x > *n,
                Op::Gte => x >= *n,
                Op::Lt => x < *n,
                Op::Lte => x <= *n,
                Op::Eq => x == *n,
                Op::Ne => x != *n,
            }),
            Condition::LevelAtLeast(min) => {
                match e.fields.get("level").and_then(Value::as_str).and_then(Level::from_name) {
                    Some(r) => r >= *min,
                    None => false,
                }
            }
        }
    }
}

enum Found<'a> {
    Message(&'a str),
    Value(&'a Value),
}

impl Found<'_> {
    fn as_text(&self) -> Option<&str> {
        match self {
            Found::Message(m) => Some(m),
            Found::Value(v) => v.as_str(),
        }
    }
    fn as_num(&self) -> Option<f64> {
        match self {
            Found::Message(m) => m.trim().parse().ok(),
            Found::Value(Value::Int(i)) => Some(*i as f64),
            Found::Value(Value::Float(f)) => Some(*f),
            Found::Value(Value::Str(s)) => s.as_str().trim().parse().ok(),
            Found::Value(_) => None,
        }
    }
    fn equals(&self, l: &Literal) -> bool {
        match self {
            Found::Value(Value::Bool(b)) => l.boolean == Some(*b),
            Found::Value(Value::Int(_)) | Found::Value(Value::Float(_)) => l.num.is_some() && self.as_num() == l.num,
            _ => match self.as_text() {
                Some(t) => {
                    t == l.text
                        || (l.boolean.is_none() && l.num.is_some() && t.parse::<f64>().ok() == l.num && !t.is_empty())
                }
                None => false,
            },
        }
    }
}

impl Condition {
    /// The texts a string field must equal for this condition to hold, when the
    /// condition requires that (`{ event = "x" }`, or such a term inside `all`). None when
    /// it does not, or when a literal is numeric or boolean (those also match other
    /// spellings). Lets a caller skip whole conditions after one look at the field.
    pub fn required_texts(&self, field: &str) -> Option<Vec<&str>> {
        match self {
            Condition::OneOf(f, lits) if f == field => lits
                .iter()
                .all(|l| l.num.is_none() && l.boolean.is_none())
                .then(|| lits.iter().map(|l| l.text.as_str()).collect()),
            Condition::All(cs) => cs.iter().find_map(|c| c.required_texts(field)),
            _ => None,
        }
    }
}

fn lookup<'a>(e: &'a Event, path: &str) -> Option<Found<'a>> {
    if path == "message" {
        return Some(Found::Message(e.message()));
    }
    if let Some(v) = e.fields.get(path) {
        return Some(Found::Value(v));
    }
    if !path.contains('.') {
        return e.meta(path).map(Found::Message);
    }
    let mut parts = path.split('.');
    let mut cur = e.fields.get(parts.next()?)?;
    for p in parts {
        match cur {
            Value::Map(m) => cur = m.get(p)?,
            _ => return None,
        }
    }
    Some(Found::Value(cur))
}

impl schemars::JsonSchema for Condition {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Condition".into()
    }
    fn inline_schema() -> bool {
        true
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": "object", "format": "condition" })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_event::{Fields, Origin, OriginInfo, Timestamp};

    fn ev(msg: &str, fields: &[(&str, Value)]) -> Event {
        let mut e =
            Event::from_line(bytes_of(msg), Timestamp(0), Origin { info: OriginInfo::new("s", None), offset: 0 });
        for (k, v) in fields {
            e.fields.insert(*k, v.clone());
        }
        e
    }

    fn bytes_of(s: &str) -> bytes::Bytes {
        bytes::Bytes::copy_from_slice(s.as_bytes())
    }

    fn cond(t: &str) -> Condition {
        let v: toml::Table = toml::from_str(&format!("when = {t}")).unwrap();
        Condition::from_toml(&v["when"]).unwrap()
    }

    #[test]
    fn language() {
        let mut nested = Fields::new();
        nested.insert("code", Value::Int(7));
        let e = ev(
            "Gateway timed out",
            &[
                ("level", Value::from("error")),
                ("event", Value::from("retry")),
                ("status", Value::from("504")),
                ("duration_ms", Value::Int(1500)),
                ("ok", Value::Bool(false)),
                ("sd", Value::Map(nested)),
            ],
        );
        assert!(cond(r#"{ level = ["error", "fatal"], event = "retry" }"#).eval(&e));
        assert!(!cond(r#"{ level = ["error", "fatal"], event = "other" }"#).eval(&e));
        assert!(cond("{ status = 504 }").eval(&e));
        assert!(cond("{ duration_ms = { gt = 1000, lte = 1500 } }").eval(&e));
        assert!(!cond("{ duration_ms = { lt = 1000 } }").eval(&e));
        assert!(cond(r#"{ exists = "status" }"#).eval(&e));
        assert!(!cond(r#"{ exists = "trace_id" }"#).eval(&e));
        assert!(cond(r#"{ matches = { message = "timed? ?out" } }"#).eval(&e));
        assert!(cond(r#"{ level_at_least = "warn" }"#).eval(&e));
        assert!(!cond(r#"{ level_at_least = "fatal" }"#).eval(&e));
        assert!(cond(r#"{ any = [{ event = "x" }, { ok = false }] }"#).eval(&e));
        assert!(cond(r#"{ not = { event = "x" } }"#).eval(&e));
        assert!(cond("{ 'sd.code' = 7 }").eval(&e));
        assert!(cond("{}").eval(&e));
        assert_eq!(cond(r#"{ event = ["a", "b"], level = "x" }"#).required_texts("event"), Some(vec!["a", "b"]));
        assert_eq!(cond(r#"{ all = [{ status = 5 }, { event = "a" }] }"#).required_texts("event"), Some(vec!["a"]));
        assert_eq!(cond(r#"{ event = 5 }"#).required_texts("event"), None);
        assert_eq!(cond(r#"{ any = [{ event = "a" }, { x = 1 }] }"#).required_texts("event"), None);
        // `source` is the source component's name unless a field of that name exists.
        assert!(cond(r#"{ source = "s" }"#).eval(&e));
        let mut f = ev("x", &[("source", Value::from("field"))]);
        assert!(cond(r#"{ source = "field" }"#).eval(&f));
        f.fields = Fields::new();
        assert!(cond(r#"{ source = "s" }"#).eval(&f));
    }

    #[test]
    fn errors() {
        let bad = |t: &str| {
            let v: toml::Table = toml::from_str(&format!("when = {t}")).unwrap();
            Condition::from_toml(&v["when"]).unwrap_err().0
        };
        assert!(bad(r#"{ level_at_least = "loud" }"#).contains("unknown level `loud`"));
        assert!(bad(r#"{ matches = { message = "(" } }"#).contains("invalid regex"));
        assert!(bad("{ d = { above = 3 } }").contains("unknown comparison"));
        assert!(bad("{ any = 3 }").contains("expects an array"));
        assert!(bad("3").contains("a condition is a table"));
    }
}
