//! The configuration reference (`docs/reference.md`), generated from the config
//! structs: every component type in the registry and every option, with its type,
//! default and doc comment (through each struct's JSON schema).
//!
//! A test regenerates the file and fails when the committed one is stale or when an
//! option has no doc comment; `SLUICE_BLESS=1 cargo test -p sluice-pipeline reference`
//! rewrites it.

use crate::registry::{Entry, SINKS, SOURCES, TRANSFORMS};
use serde_json::{Map, Value};
use std::fmt::Write;

/// One option row: its dotted path, type, default and description.
#[derive(Debug)]
pub struct Row {
    pub path: String,
    pub ty: String,
    pub default: String,
    pub doc: String,
}

/// Every option of a schema, nested tables flattened into dotted rows.
pub fn rows(schema: &schemars::Schema) -> Vec<Row> {
    let root = schema.as_value();
    let defs = root.get("$defs").and_then(Value::as_object).cloned().unwrap_or_default();
    let mut out = Vec::new();
    walk(root, "", &defs, &mut out, 0);
    out
}

fn resolve<'a>(v: &'a Value, defs: &'a Map<String, Value>) -> &'a Value {
    match v.get("$ref").and_then(Value::as_str).and_then(|r| r.strip_prefix("#/$defs/")) {
        Some(name) => defs.get(name).map_or(v, |d| resolve(d, defs)),
        None => v,
    }
}

/// The schema without its `null` alternative (an `Option`), and whether it had one.
fn non_null<'a>(v: &'a Value, defs: &'a Map<String, Value>) -> &'a Value {
    let v = resolve(v, defs);
    if let Some(alts) = v.get("anyOf").and_then(Value::as_array) {
        let rest: Vec<&Value> = alts.iter().filter(|a| a.get("type") != Some(&Value::from("null"))).collect();
        if rest.len() == 1 {
            return resolve(rest[0], defs);
        }
    }
    v
}

fn is_table(v: &Value) -> bool {
    v.get("properties").is_some()
}

fn walk(v: &Value, prefix: &str, defs: &Map<String, Value>, out: &mut Vec<Row>, depth: usize) {
    let v = non_null(v, defs);
    let Some(props) = v.get("properties").and_then(Value::as_object) else { return };
    let required: Vec<&str> = v
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    for (name, p) in props {
        let path = format!("{prefix}{name}");
        let inner = non_null(p, defs);
        let doc = p
            .get("description")
            .or_else(|| inner.get("description"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .replace('\n', " ");
        let default = match p.get("default") {
            Some(Value::Null) | None if required.contains(&name.as_str()) => "required".to_string(),
            Some(Value::Null) | None => "none".to_string(),
            Some(d) => format!("`{}`", toml_like(d)),
        };
        out.push(Row { path: path.clone(), ty: type_name(inner, defs), default, doc });
        if depth < 4 {
            if is_table(inner) {
                walk(inner, &format!("{path}."), defs, out, depth + 1);
            } else if let Some(items) = inner.get("items") {
                let items = non_null(items, defs);
                if is_table(items) {
                    walk(items, &format!("{path}[]."), defs, out, depth + 1);
                }
            }
        }
    }
}

fn toml_like(v: &Value) -> String {
    match v {
        Value::Array(a) => format!("[{}]", a.iter().map(toml_like).collect::<Vec<_>>().join(", ")),
        Value::Object(o) if o.is_empty() => "{}".into(),
        other => other.to_string(),
    }
}

fn type_name(v: &Value, defs: &Map<String, Value>) -> String {
    let v = non_null(v, defs);
    if let Some(f) = v.get("format").and_then(Value::as_str) {
        if matches!(f, "duration" | "size" | "level" | "level or none" | "condition") {
            return f.to_string();
        }
    }
    if let Some(vals) = v.get("enum").and_then(Value::as_array) {
        return vals.iter().map(|x| format!("`{x}`")).collect::<Vec<_>>().join(" \\| ");
    }
    if let Some(alts) = v.get("oneOf").or_else(|| v.get("anyOf")).and_then(Value::as_array) {
        let names: Vec<String> = alts
            .iter()
            .map(|a| match a.get("const") {
                Some(c) => format!("`{c}`"),
                None => type_name(a, defs),
            })
            .collect();
        return names.join(" \\| ");
    }
    if is_table(v) {
        return "table".into();
    }
    let ty = match v.get("type") {
        // `["string", "null"]`: an optional value.
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).find(|t| *t != "null"),
        Some(t) => t.as_str(),
        None => None,
    };
    match ty {
        Some("array") => match v.get("items") {
            Some(i) if is_table(non_null(i, defs)) => "array of tables".into(),
            Some(i) => format!("array of {}", type_name(i, defs)),
            None => "array".into(),
        },
        Some("object") => match v.get("additionalProperties") {
            Some(a) if a.is_object() => format!("table of {}", type_name(a, defs)),
            _ => "table".into(),
        },
        Some("integer") => "integer".into(),
        Some("number") => "number".into(),
        Some("boolean") => "boolean".into(),
        Some("string") => "string".into(),
        Some(t) => t.into(),
        None => "any".into(),
    }
}

fn section<B>(doc: &mut String, kind: &str, table: &[Entry<B>]) {
    let _ = writeln!(doc, "## {kind}\n");
    for e in table {
        let schema = (e.schema)();
        let about = schema.as_value().get("description").and_then(Value::as_str).unwrap_or("").replace('\n', " ");
        let _ = writeln!(doc, "### `type = \"{}\"`\n", e.type_name);
        if !about.is_empty() {
            let _ = writeln!(doc, "{about}\n");
        }
        table_of(doc, &rows(&schema));
    }
}

fn table_of(doc: &mut String, rows: &[Row]) {
    if rows.is_empty() {
        doc.push_str("No options.\n\n");
        return;
    }
    doc.push_str("| option | type | default | description |\n|---|---|---|---|\n");
    for r in rows {
        let _ = writeln!(doc, "| `{}` | {} | {} | {} |", r.path, r.ty, r.default, r.doc.replace('|', "\\|"));
    }
    doc.push('\n');
}

/// The whole reference, as committed in `docs/reference.md`.
pub fn render() -> String {
    let mut doc = String::from(
        "# Configuration reference\n\n\
         Generated from the config structs and their doc comments (`pipeline/src/reference.rs`);\n\
         do not edit by hand: `SLUICE_BLESS=1 cargo test -p sluice-pipeline reference` rewrites it.\n\
         Types: `duration` is a string such as `\"500ms\"`, `\"10s\"`, `\"5m\"`; `size` is `\"64MiB\"` or a\n\
         number of bytes; `level` is one of `trace`, `debug`, `info`, `warn`, `error`, `fatal`;\n\
         `condition` is a table such as `{ level_at_least = \"error\" }` (see the README).\n\
         Every component also takes `type`, `inputs` (transforms and sinks) and `buffer_batches`;\n\
         the stateless transforms (`filter`, `mask`, `regex`, `route`) take `workers`, the threads\n\
         they run on (default: one per core).\n\n\
         ## Top level\n\n\
         | option | type | default | description |\n|---|---|---|---|\n\
         | `data_dir` | string | `\".sluice-data\"` | Where checkpoints and other state are kept (one sluice process per directory). |\n\n",
    );
    doc.push_str("### `[api]`\n\n");
    table_of(&mut doc, &rows(&schemars::schema_for!(sluice_config::ApiConfig)));
    doc.push_str("### `[pipeline]`\n\n");
    table_of(&mut doc, &rows(&schemars::schema_for!(sluice_config::PipelineConfig)));
    doc.push_str("### `[[tests]]`\n\nRun by `sluice test` (ignored by `sluice run`).\n\n");
    table_of(&mut doc, &rows(&schemars::schema_for!(sluice_config::cases::TestCase)));
    section(&mut doc, "Sources (`[sources.NAME]`)", SOURCES);
    section(&mut doc, "Transforms (`[transforms.NAME]`)", TRANSFORMS);
    doc.push_str(
        "### A sink's `buffer`\n\n\
         Every sink takes `buffer = { type = \"memory\" | \"disk\", ... }`: what its input waits in.\n\
         A disk buffer keeps batches in `data_dir/buffers/<sink>/` and acknowledges them to the source\n\
         once they are on disk (one `fdatasync` per group of batches): they survive `kill -9` and are\n\
         delivered after a restart. `when_full = \"block\"` holds the producers back (and with them every\n\
         sink sharing their source); `\"drop_newest\"` drops what does not fit and counts it in\n\
         `sluice_events_dropped_total{reason=\"buffer_full\"}`.\n\n",
    );
    table_of(&mut doc, &rows(&schemars::schema_for!(sluice_sinks::buffer::BufferConfig)));
    section(&mut doc, "Sinks (`[sinks.NAME]`)", SINKS);
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_option_has_a_doc_comment() {
        let mut missing = Vec::new();
        let mut all = vec![
            ("api".to_string(), schemars::schema_for!(sluice_config::ApiConfig)),
            ("pipeline".to_string(), schemars::schema_for!(sluice_config::PipelineConfig)),
            ("tests".to_string(), schemars::schema_for!(sluice_config::cases::TestCase)),
            ("buffer".to_string(), schemars::schema_for!(sluice_sinks::buffer::BufferConfig)),
        ];
        all.extend(SOURCES.iter().map(|e| (format!("sources type {}", e.type_name), (e.schema)())));
        all.extend(TRANSFORMS.iter().map(|e| (format!("transforms type {}", e.type_name), (e.schema)())));
        all.extend(SINKS.iter().map(|e| (format!("sinks type {}", e.type_name), (e.schema)())));
        for (what, schema) in &all {
            for r in rows(schema) {
                if r.doc.trim().is_empty() {
                    missing.push(format!("{what}: `{}`", r.path));
                }
            }
        }
        assert!(missing.is_empty(), "options without a doc comment:\n{}", missing.join("\n"));
    }

    #[test]
    fn reference_is_up_to_date() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/reference.md");
        let fresh = render();
        if std::env::var_os("SLUICE_BLESS").is_some() {
            std::fs::write(&path, &fresh).unwrap();
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == fresh,
            "docs/reference.md is stale: run `SLUICE_BLESS=1 cargo test -p sluice-pipeline reference` and commit it"
        );
    }

    #[test]
    fn rows_follow_nested_tables_with_types_and_defaults() {
        let schema = (TRANSFORMS.iter().find(|e| e.type_name == "sample").unwrap().schema)();
        let rows = rows(&schema);
        let find = |p: &str| rows.iter().find(|r| r.path == p).unwrap_or_else(|| panic!("no row {p}: {rows:?}"));
        assert_eq!(find("tail.window").ty, "duration");
        assert_eq!(find("tail.max_bytes").default, "`\"256MiB\"`");
        assert_eq!(find("keep_level_at_least").default, "`\"warn\"`");
        assert_eq!(find("rate").default, "required");
        assert_eq!(find("rules[].when").ty, "condition");
    }
}
