//! Every TOML snippet in README.md and docs/ passes `sluice validate`.
//!
//! A snippet that defines components is completed the way a reader would: inputs it
//! names but does not define become `stdin` sources, and one console sink reads every
//! component. Files it names (templates, lookup tables) are created empty in the
//! working directory. A snippet that is only options of a stage (no `[table]` header)
//! (or a list of alternatives) must be marked `<!-- partial -->` on the line before its
//! fence.

use crate::harness::*;
use std::collections::BTreeSet;
use std::path::Path;

struct Snippet {
    file: String,
    line: usize,
    text: String,
    partial: bool,
}

fn snippets() -> Vec<Snippet> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = vec![root.join("README.md")];
    let mut docs: Vec<_> = std::fs::read_dir(root.join("docs"))
        .map(|rd| rd.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|e| e == "md")).collect())
        .unwrap_or_default();
    docs.sort();
    files.extend(docs);
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let mut i = 0;
        while i < lines.len() {
            if lines[i].trim() == "```toml" {
                let partial = i > 0 && lines[i - 1].trim().starts_with("<!-- partial");
                let start = i + 1;
                let mut j = start;
                while j < lines.len() && lines[j].trim() != "```" {
                    j += 1;
                }
                out.push(Snippet {
                    file: f.file_name().unwrap().to_string_lossy().into_owned(),
                    line: start,
                    text: lines[start..j].join("\n") + "\n",
                    partial,
                });
                i = j;
            }
            i += 1;
        }
    }
    out
}

/// Add stub sources for undefined inputs and a sink reading every component.
fn complete(text: &str) -> String {
    let doc: toml::Table = text.parse().unwrap();
    let mut defined = BTreeSet::new();
    let mut wanted = BTreeSet::new();
    let mut has_sink = false;
    for kind in ["sources", "transforms", "sinks"] {
        if let Some(t) = doc.get(kind).and_then(|v| v.as_table()) {
            has_sink |= kind == "sinks";
            for (name, c) in t {
                if kind != "sinks" {
                    defined.insert(name.clone());
                }
                for i in c.get("inputs").and_then(|v| v.as_array()).into_iter().flatten() {
                    let i = i.as_str().unwrap();
                    wanted.insert(i.split('.').next().unwrap().to_string());
                }
            }
        }
    }
    let mut out = text.to_string();
    for name in wanted.difference(&defined) {
        out.push_str(&format!("\n[sources.{name}]\ntype = \"stdin\"\n"));
    }
    if !has_sink {
        let all: Vec<String> = defined.iter().chain(wanted.difference(&defined)).map(|n| format!("\"{n}\"")).collect();
        out.push_str(&format!("\n[sinks.doc_check]\ntype = \"console\"\ninputs = [{}]\n", all.join(", ")));
    }
    out
}

#[test]
fn every_toml_snippet_in_the_docs_validates() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("templates")).unwrap();
    std::fs::write(dir.path().join("templates/orders.toml"), "templates = []\n").unwrap();
    std::fs::write(dir.path().join("tenants.csv"), "user_id,tenant,plan\n42,acme,gold\n").unwrap();
    let all = snippets();
    assert!(all.len() >= 7, "found the README's snippets: {}", all.len());
    let mut validated = 0;
    for s in &all {
        let place = format!("{}:{}", s.file, s.line);
        if s.partial {
            continue;
        }
        let parsed: Result<toml::Table, _> = s.text.parse();
        assert!(parsed.is_ok(), "{place}: not valid TOML: {:?}", parsed.err());
        let is_config = s.text.lines().any(|l| l.trim_start().starts_with('[') || l.starts_with("data_dir"));
        assert!(is_config, "{place}: options without a table; mark it `<!-- partial -->` if it is meant to be partial");
        let cfg = dir.path().join("snippet.toml");
        std::fs::write(&cfg, complete(&s.text)).unwrap();
        let out = sluice()
            .args(["validate", "--config", cfg.to_str().unwrap()])
            .current_dir(dir.path())
            .env("SLUICE_API_TOKEN", "t")
            .env("SERVICE", "svc")
            .env("SLUICE_MASK_KEY", "k")
            .env("KAFKA_PASSWORD", "p")
            .env("LOKI_TOKEN", "t")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{place}: the snippet does not validate:\n{}\n--- as checked:\n{}",
            String::from_utf8_lossy(&out.stderr),
            complete(&s.text)
        );
        validated += 1;
    }
    assert!(validated >= 5, "most snippets are whole configs or components: {validated}");
}
