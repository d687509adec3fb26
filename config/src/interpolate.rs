//! `${VAR}` and `${VAR:-default}` in string values; `$$` is a literal `$`.

use crate::spans::PathSeg;

/// Interpolate one string. Errors name the missing variable or the malformed reference.
pub fn interpolate(s: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, crate::ValueError> {
    if !s.contains('$') {
        return Ok(s.to_string());
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(r) = after.strip_prefix('$') {
            out.push('$');
            rest = r;
        } else if let Some(r) = after.strip_prefix('{') {
            let end =
                r.find('}').ok_or_else(|| format!("unterminated `${{` in \"{s}\" (write `$$` for a literal `$`)"))?;
            let inner = &r[..end];
            let (name, default) = match inner.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (inner, None),
            };
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!("invalid environment variable name `{name}` in \"{s}\"").into());
            }
            match (env(name), default) {
                (Some(v), _) if !(v.is_empty() && default.is_some()) => out.push_str(&v),
                (_, Some(d)) => out.push_str(d),
                (Some(v), None) => out.push_str(&v),
                (None, None) => {
                    return Err(format!(
                        "environment variable `{name}` is not set (write `${{{name}:-default}}` to give a default)"
                    )
                    .into())
                }
            }
            rest = &r[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

pub(crate) type InterpErrors = Vec<(Vec<PathSeg>, String)>;

pub(crate) fn interpolate_table(
    t: toml::Table,
    path: &mut Vec<PathSeg>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<toml::Table, InterpErrors> {
    let mut errs = Vec::new();
    let mut out = toml::Table::new();
    for (k, v) in t {
        path.push(PathSeg::Key(k.clone()));
        match interpolate_value(v, path, env) {
            Ok(v) => {
                out.insert(k, v);
            }
            Err(e) => errs.extend(e),
        }
        path.pop();
    }
    if errs.is_empty() {
        Ok(out)
    } else {
        Err(errs)
    }
}

fn interpolate_value(
    v: toml::Value,
    path: &mut Vec<PathSeg>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<toml::Value, InterpErrors> {
    match v {
        toml::Value::String(s) => interpolate(&s, env)
            .map(toml::Value::String)
            .map_err(|m| vec![(path.clone(), format!("`{}`: {m}", crate::spans::dotted(path)))]),
        toml::Value::Array(a) => {
            let mut errs = Vec::new();
            let mut out = Vec::with_capacity(a.len());
            for (i, item) in a.into_iter().enumerate() {
                path.push(PathSeg::Index(i));
                match interpolate_value(item, path, env) {
                    Ok(v) => out.push(v),
                    Err(e) => errs.extend(e),
                }
                path.pop();
            }
            if errs.is_empty() {
                Ok(toml::Value::Array(out))
            } else {
                Err(errs)
            }
        }
        toml::Value::Table(t) => interpolate_table(t, path, env).map(toml::Value::Table),
        other => Ok(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(k: &str) -> Option<String> {
        match k {
            "HOST" => Some("db1".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn forms() {
        assert_eq!(interpolate("a ${HOST} b", &env).unwrap(), "a db1 b");
        assert_eq!(interpolate("${NOPE:-x:y}", &env).unwrap(), "x:y");
        assert_eq!(interpolate("${EMPTY:-d}", &env).unwrap(), "d");
        assert_eq!(interpolate("${EMPTY}", &env).unwrap(), "");
        assert_eq!(interpolate("cost $$5 $x", &env).unwrap(), "cost $5 $x");
        let e = interpolate("${NOPE}", &env).unwrap_err().0;
        assert!(e.contains("`NOPE` is not set"), "{e}");
        assert!(interpolate("${HOST", &env).unwrap_err().0.contains("unterminated"));
    }
}
