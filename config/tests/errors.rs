use serde::Deserialize;
use sluice_config::{Config, Errors};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct FileSource {
    include: Vec<String>,
    #[serde(default)]
    max_line_bytes: Option<u64>,
}

fn env(k: &str) -> Option<String> {
    (k == "LOGDIR").then(|| "/var/log".to_string())
}

fn parse(text: &str) -> Result<Config, Errors> {
    Config::parse("test.toml", text, &env)
}

fn decode_err(text: &str) -> String {
    let cfg = parse(text).expect("structurally valid");
    let c = cfg.component("app").unwrap();
    cfg.decode::<FileSource>(c).unwrap_err().to_string()
}

#[test]
fn unknown_component_key_points_at_key() {
    let e = decode_err("[sources.app]\ntype = \"file\"\ninclude = [\"a\"]\n  inclde = [\"b\"]\n");
    assert!(e.starts_with("test.toml:4:3: `sources.app.inclde`: unknown key `inclde`, expected"), "{e}");
}

#[test]
fn wrong_type_points_at_value() {
    let e = decode_err("[sources.app]\ntype = \"file\"\ninclude = [\"a\"]\nmax_line_bytes = \"big\"\n");
    assert!(
        e.starts_with("test.toml:4:18: `sources.app.max_line_bytes`: invalid type: string \"big\", expected u64"),
        "{e}"
    );
    let e = decode_err("[sources.app]\ntype = \"file\"\ninclude = [\"a\", 3]\n");
    assert!(
        e.starts_with("test.toml:3:17: `sources.app.include[1]`: invalid type: integer `3`, expected a string"),
        "{e}"
    );
}

#[test]
fn missing_key_points_at_table() {
    let e = decode_err("[sources.app]\ntype = \"file\"\n");
    assert!(e.starts_with("test.toml:1:10: `sources.app`: missing key `include`"), "{e}");
}

#[test]
fn top_level_and_graph_errors() {
    let e = parse("data_dir = \"x\"\ndatadir = 1\n").unwrap_err().to_string();
    assert!(e.starts_with("test.toml:2:1: unknown key `datadir`, expected one of `data_dir`"), "{e}");

    let e = parse("[sources.a]\ntype = \"file\"\n[sinks.b]\ntype = \"console\"\ninputs = [\"nope\"]\n")
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("test.toml:5:11: `sinks.b.inputs[0]`: unknown component `nope`, expected one of `a`"), "{e}");

    let cyc = "[sources.s]\ntype=\"stdin\"\n[transforms.x]\ntype=\"filter\"\ninputs=[\"s\",\"y\"]\n[transforms.y]\ntype=\"filter\"\ninputs=[\"x\"]\n";
    let e = parse(cyc).unwrap_err().to_string();
    assert!(e.contains("cycle in the pipeline graph: x -> y -> x"), "{e}");
    assert!(e.starts_with("test.toml:5:8:"), "{e}");

    let e = parse("[sinks.b]\ntype = \"console\"\n").unwrap_err().to_string();
    assert!(e.contains("`sinks.b`: missing key `inputs`"), "{e}");

    let e = parse("[api]\nadress = \"x\"\n").unwrap_err().to_string();
    assert!(e.starts_with("test.toml:2:1: `api.adress`: unknown key `adress`"), "{e}");

    let e = parse("[sources.a]\ninclude = []\n").unwrap_err().to_string();
    assert!(e.contains("`sources.a`: missing key `type`"), "{e}");
}

#[test]
fn syntax_errors_are_located() {
    let e = parse("[sources.a]\ntype = \"file\nx = 1\n").unwrap_err().to_string();
    assert!(e.starts_with("test.toml:2:"), "{e}");
}

#[test]
fn env_interpolation() {
    let cfg = parse("[sources.app]\ntype = \"file\"\ninclude = [\"${LOGDIR}/*.log\", \"${OTHER:-/tmp}/x\"]\n").unwrap();
    let c = cfg.component("app").unwrap();
    let f: FileSource = cfg.decode(c).unwrap();
    assert_eq!(f.include, vec!["/var/log/*.log", "/tmp/x"]);
    let e = parse("[sources.app]\ntype = \"file\"\ninclude = [\"${MISSING}/x\"]\n").unwrap_err().to_string();
    assert!(
        e.starts_with("test.toml:3:12: `sources.app.include[0]`: environment variable `MISSING` is not set"),
        "{e}"
    );
}
