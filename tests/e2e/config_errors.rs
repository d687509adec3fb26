use crate::harness::*;

/// Run `sluice validate` on `text`; returns (exit code, stdout, stderr with the
/// temp path replaced by `CFG`).
fn validate(text: &str) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bad.toml");
    std::fs::write(&p, text).unwrap();
    let out =
        sluice().args(["validate", "--config", p.to_str().unwrap()]).env_remove("SLUICE_TEST_UNSET").output().unwrap();
    let path = p.to_str().unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stdout).replace(path, "CFG"),
        String::from_utf8_lossy(&out.stderr).replace(path, "CFG"),
    )
}

fn expect_error(text: &str, expected: &str) {
    let (code, _, err) = validate(text);
    assert_eq!(code, 2, "stderr: {err}");
    assert!(err.lines().any(|l| l.starts_with(expected)), "expected a line starting with\n  {expected}\ngot:\n{err}");
}

const SRC: &str = "[sources.app]\ntype = \"file\"\ninclude = [\"/tmp/x/*.log\"]\n";
const SINK: &str = "[sinks.out]\ntype = \"console\"\ninputs = [\"app\"]\n";

#[test]
fn unknown_key_names_key_line_and_expected() {
    expect_error(
        &format!("[sources.app]\ntype = \"file\"\ninclude = [\"/tmp/x/*.log\"]\nread_form = \"end\"\n{SINK}"),
        "CFG:4:1: `sources.app.read_form`: unknown key `read_form`, expected one of `include`, `exclude`, `read_from`",
    );
    expect_error(
        &format!("dta_dir = \"/x\"\n{SRC}{SINK}"),
        "CFG:1:1: unknown key `dta_dir`, expected one of `data_dir`, `api`",
    );
    expect_error(
        &format!("{SRC}{SINK}[api]\nadress = \"0.0.0.0:1\"\n"),
        "CFG:8:1: `api.adress`: unknown key `adress`, expected one of `address`, `enabled`, `token`",
    );
}

#[test]
fn unknown_type_lists_known_types() {
    expect_error(
        &format!("[sources.app]\ntype = \"fiel\"\n{SINK}"),
        "CFG:2:8: `sources.app.type`: unknown source type `fiel`, expected one of `file`, `stdin`, `syslog` or `kafka`",
    );
    expect_error(
        &format!("{SRC}[sinks.out]\ntype = \"kafka2\"\ninputs = [\"app\"]\n"),
        "CFG:5:8: `sinks.out.type`: unknown sink type `kafka2`, expected one of `file`, `console`, `blackhole`, `loki` or `s3`",
    );
}

#[test]
fn wrong_value_types_point_at_value() {
    expect_error(
        &format!("[sources.app]\ntype = \"file\"\ninclude = \"/tmp/*.log\"\n{SINK}"),
        "CFG:3:11: `sources.app.include`: invalid type: string \"/tmp/*.log\", expected a sequence",
    );
    expect_error(
        &format!("{SRC}max_line_bytes = \"1 MB-ish\"\n{SINK}"),
        "CFG:4:18: `sources.app.max_line_bytes`: invalid size \"1 MB-ish\": unknown unit `MB-ish`, expected KiB, MiB or GiB",
    );
    expect_error(
        &format!("{SRC}read_from = \"middle\"\n{SINK}"),
        "CFG:4:13: `sources.app.read_from`: unknown variant `middle`, expected `beginning` or `end`",
    );
    expect_error(
        &format!("{SRC}{SINK}[pipeline]\nbuffer_batches = -1\n"),
        "CFG:8:18: `pipeline.buffer_batches`: invalid value: integer `-1`, expected usize",
    );
}

#[test]
fn graph_errors() {
    expect_error(
        &format!("{SRC}[sinks.out]\ntype = \"console\"\ninputs = [\"ap\"]\n"),
        "CFG:6:11: `sinks.out.inputs[0]`: unknown component `ap`, expected one of `app`",
    );
    expect_error(
        &format!("{SRC}[transforms.a]\ntype = \"filter\"\ninputs = [\"app\", \"b\"]\n[transforms.b]\ntype = \"filter\"\ninputs = [\"a\"]\n{SINK}"),
        "CFG:6:10: `transforms.a.inputs`: cycle in the pipeline graph: a -> b -> a",
    );
    expect_error(&format!("{SRC}[sinks.out]\ntype = \"console\"\n"), "CFG:4:8: `sinks.out`: missing key `inputs`");
    expect_error(&format!("{SRC}[sources.app2]\ninclude = []\n{SINK}"), "CFG:4:10: `sources.app2`: missing key `type`");
    expect_error(
        &format!("{SRC}[sinks.out]\ntype = \"file\"\ninputs = [\"app\"]\n"),
        "CFG:4:8: `sinks.out`: missing key `path`",
    );
}

#[test]
fn option_checks_and_env() {
    expect_error(
        &format!("{SRC}[sinks.out]\ntype = \"file\"\ninputs = [\"app\"]\npath = \"/tmp/{{host}}.ndjson\"\n"),
        "CFG:7:8: `sinks.out.path`: unknown placeholder `{host}`",
    );
    expect_error(
        &format!("[sources.app]\ntype = \"file\"\ninclude = [\"${{SLUICE_TEST_UNSET}}/*.log\"]\n{SINK}"),
        "CFG:3:12: `sources.app.include[0]`: environment variable `SLUICE_TEST_UNSET` is not set",
    );
    expect_error("[sources.app\ntype = \"file\"\n", "CFG:1:");
}

#[test]
fn valid_config_prints_one_line_summary() {
    let (code, out, err) = validate(&format!(
        "{SRC}{SINK}[sinks.f]\ntype = \"file\"\ninputs = [\"app\"]\npath = \"/tmp/${{SLUICE_TEST_UNSET:-x}}.ndjson\"\n"
    ));
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().count(), 1);
    assert_eq!(
        out.trim(),
        "CFG: ok: 1 sources: [app (file)]; 0 transforms: []; 2 sinks: [out (console) <- app, f (file) <- app]"
    );
}

#[test]
fn help_and_version() {
    let out = sluice().arg("--version").output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("sluice "));
    let out = sluice().arg("--help").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("run") && text.contains("validate"), "{text}");
    // The embedded quickstart config is valid.
    let out = sluice().arg("validate").output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn typed_values_and_semantic_errors_point_at_the_nested_key() {
    let sample = |body: &str| {
        format!("{SRC}[transforms.s]\ntype = \"sample\"\ninputs = [\"app\"]\nrate = 10\n{body}\n[sinks.out]\ntype = \"console\"\ninputs = [\"s\"]\n")
    };
    // A duration that does not parse, inside an inline table: its own key, line, column.
    expect_error(
        &sample("tail = { window = \"10 parsecs\", keep_if = { level = \"error\" } }"),
        "CFG:8:19: `transforms.s.tail.window`: invalid duration \"10 parsecs\": unknown unit `parsecs`",
    );
    // A bare number where a duration belongs: the unit is not guessed.
    expect_error(
        &format!("[sources.app]\ntype = \"file\"\ninclude = [\"/tmp/x/*.log\"]\npoll_interval = 50\n{SINK}"),
        "CFG:4:17: `sources.app.poll_interval`: invalid type: integer `50`, expected a duration such as \"500ms\"",
    );
    // A semantic error found by the build step, also at the nested key.
    expect_error(
        &sample("[transforms.s.tail]\nwindow = \"10s\"\nkeep_if = { level = \"error\" }\nmax_traces = 0"),
        "CFG:11:14: `transforms.s.tail.max_traces`: must be at least 1",
    );
    expect_error(
        &sample("keep_level_at_least = \"loud\""),
        "CFG:8:23: `transforms.s.keep_level_at_least`: unknown level `loud`, expected one of trace, debug, info, warn, error, fatal or none",
    );
    // Sizes take units or a number of bytes.
    let (code, _, err) = validate(&format!(
        "[pipeline]\nbatch_max_bytes = \"256KiB\"\ndrain_timeout = \"1m\"\n[sources.app]\ntype = \"file\"\ninclude = [\"/tmp/x/*.log\"]\nmax_line_bytes = 65536\n{SINK}"
    ));
    assert_eq!(code, 0, "{err}");
}

#[test]
fn labels_may_not_read_fields_marked_sensitive() {
    let cfg = format!(
        "{SRC}[transforms.pii]\ntype = \"mask\"\ninputs = [\"app\"]\nsensitive_fields = [\"user_id\"]\n\
         [sinks.loki]\ntype = \"loki\"\ninputs = [\"pii\"]\nendpoint = \"http://127.0.0.1:3100\"\n\
         labels = {{ service = \"{{source}}\", user = \"{{user_id}}\" }}\nstructured_metadata = [\"user_id\"]\n"
    );
    expect_error(
        &cfg,
        "CFG:12:41: `sinks.loki.labels.user`: `user_id` is marked sensitive by `transforms.pii`; labels are indexed and leave sluice: put it in `structured_metadata` (masked) instead",
    );
    // In structured metadata (masked whole by the stage) it is fine.
    let ok = cfg.replace(", user = \"{user_id}\"", "");
    let (code, _, err) = validate(&ok);
    assert_eq!(code, 0, "{err}");
}

#[test]
fn s3_keys_may_not_read_fields_marked_sensitive() {
    let cfg = format!(
        "{SRC}[transforms.pii]\ntype = \"mask\"\ninputs = [\"app\"]\nsensitive_fields = [\"user_id\"]\n\
         [sinks.archive]\ntype = \"s3\"\ninputs = [\"pii\"]\nbucket = \"logs\"\n\
         key_template = \"logs/{{user_id}}/{{instance}}-{{seq}}.ndjson.zst\"\n"
    );
    expect_error(
        &cfg,
        "CFG:12:16: `sinks.archive.key_template`: `user_id` is marked sensitive by `transforms.pii`; object keys are listed in clear and leave sluice: partition by a field that is not personal data",
    );
    let (code, _, err) = validate(&cfg.replace("{user_id}", "{source}"));
    assert_eq!(code, 0, "{err}");
}

/// `buffer_batches` and `workers` take positive integers, and only transforms take
/// `workers`; each error points at the value.
#[test]
fn edge_and_worker_counts_are_checked() {
    expect_error(
        &format!("{SRC}[sinks.out]\ntype = \"console\"\ninputs = [\"app\"]\nbuffer_batches = 0\n"),
        "CFG:7:18: `sinks.out.buffer_batches`: expected a positive integer",
    );
    expect_error(
        &format!("{SRC}[sinks.out]\ntype = \"console\"\ninputs = [\"app\"]\nworkers = 2\n"),
        "CFG:7:11: `sinks.out.workers`: only transforms take `workers`",
    );
    expect_error(
        &format!(
            "{SRC}[transforms.m]\ntype = \"mask\"\ninputs = [\"app\"]\nworkers = \"two\"\n{}",
            SINK.replace("app", "m")
        ),
        "CFG:7:11: `transforms.m.workers`: expected a positive integer",
    );
}

/// A sink's `buffer`: the keys of its type only, known values, only on sinks; each
/// error points at the key or value.
#[test]
fn sink_buffers_are_checked() {
    let sink = |buffer: &str| format!("{SRC}[sinks.out]\ntype = \"console\"\ninputs = [\"app\"]\nbuffer = {buffer}\n");
    expect_error(
        &sink("{ type = \"disk\", max_events = 5 }"),
        "CFG:7:40: `sinks.out.buffer.max_events`: `max_events` is for memory buffers; a disk buffer takes `max_bytes`",
    );
    expect_error(
        &sink("{ type = \"tape\" }"),
        "CFG:7:19: `sinks.out.buffer.type`: unknown variant `tape`, expected `memory` or `disk`",
    );
    expect_error(
        &sink("{ type = \"memory\", when_full = \"drop_oldest\" }"),
        "CFG:7:41: `sinks.out.buffer.when_full`: unknown variant `drop_oldest`, expected `block` or `drop_newest`",
    );
    expect_error(
        &sink("{ type = \"disk\", max_bytes = \"10KiB\" }"),
        "CFG:7:39: `sinks.out.buffer.max_bytes`: `max_bytes` must be at least 1MiB",
    );
    expect_error(
        &sink("{ type = \"disk\", size = \"1GiB\" }"),
        "CFG:7:27: `sinks.out.buffer.size`: unknown key `size`, expected one of `type`, `max_events`, `max_bytes`, `when_full`",
    );
    expect_error(
        &format!(
            "{SRC}[transforms.m]\ntype = \"mask\"\ninputs = [\"app\"]\nbuffer = {{ type = \"disk\" }}\n{}",
            SINK.replace("app", "m")
        ),
        "CFG:7:1: `transforms.m.buffer`: only sinks take `buffer`",
    );
    let (code, _, err) = validate(&sink("{ type = \"disk\", max_bytes = \"2GiB\", when_full = \"drop_newest\" }"));
    assert_eq!(code, 0, "{err}");
}
