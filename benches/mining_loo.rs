//! Leave-one-out accuracy of template mining over the Loghub 2k sets in
//! `../shared/loghub` (or `--loghub DIR`): how well the miner's settings chosen on the
//! other sets do on the one left out.
//!
//! ```text
//! cargo run --release -p sluice-benches --bin mining-loo [-- --loghub DIR]
//! ```
//! Every set is mined whole (`templates mine --per-line`: each line gets its final
//! template) and scored by grouping accuracy (a line counts when the lines sharing its
//! template are exactly those sharing its true event).
//!
//! 1. Each of the miner's rules (`mining::rule`, named by the kind of token they
//!    handle) is switched off alone: the change per set shows which sets a rule helps
//!    and which it hurts.
//! 2. Leave-one-out: for each set, the configuration is chosen on the *other* sets (a
//!    rule is switched off when that raises their average; then the pair of numeric
//!    settings, `min_distinct` and `min_context`, with the best average on a grid) and
//!    scored on the set left out. The shipped defaults' score is in-sample (the rules
//!    were written looking at these sets); a rule or setting that only helps the set it
//!    was written for shows up as a gap between the two averages.

use std::path::PathBuf;

use sluice_parsers::mining::{grouping_accuracy, rule, Miner, MinerConfig};

const MIN_DISTINCT: [usize; 6] = [2, 3, 4, 5, 6, 8];
const MIN_CONTEXT: [usize; 6] = [0, 1, 2, 3, 4, 5];

/// Lines (the `Content` column) and true event ids of one structured Loghub CSV.
fn load(dir: &std::path::Path, set: &str) -> (Vec<String>, Vec<String>) {
    let path = dir.join(format!("{set}/{set}_2k.log_structured.csv"));
    let mut r = csv::Reader::from_path(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let head = r.headers().unwrap().clone();
    let col = |name: &str| head.iter().position(|h| h == name).unwrap_or_else(|| panic!("{set}: no {name} column"));
    let (content, event) = (col("Content"), col("EventId"));
    r.records().map(|rec| rec.unwrap()).map(|rec| (rec[content].to_string(), rec[event].to_string())).unzip()
}

/// Mine `lines` whole and give each its final template.
fn score(cfg: MinerConfig, lines: &[String], truth: &[String]) -> f64 {
    let mut m = Miner::new(cfg);
    let shapes: Vec<u32> = lines.iter().map(|l| m.mine(l.as_bytes()).shape).collect();
    let pred: Vec<u32> = shapes.iter().map(|&s| m.template_of_shape(s)).collect();
    grouping_accuracy(&pred, truth)
}

fn main() {
    let shared = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared");
    let mut dir = shared.join("loghub");
    let mut corpus_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/mining-corpus");
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        match (k.as_str(), it.next()) {
            ("--loghub", Some(v)) => dir = v.into(),
            ("--corpus", Some(v)) => corpus_dir = v.into(),
            _ => panic!("usage: mining-loo [--loghub DIR] [--corpus DIR]"),
        }
    }
    let mut sets: Vec<String> = std::fs::read_dir(&dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|s| dir.join(format!("{s}/{s}_2k.log_structured.csv")).exists())
                .collect()
        })
        .unwrap_or_default();
    sets.sort();
    if sets.len() < 2 {
        println!("SKIP: no Loghub sets under {} (../shared is absent?)", dir.display());
        return;
    }
    let data: Vec<(Vec<String>, Vec<String>)> = sets.iter().map(|s| load(&dir, s)).collect();
    let corpus = load_corpus(&shared, &corpus_dir);
    let defaults = MinerConfig::default();
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let cfg = |d: usize, c: usize, off: u32| MinerConfig {
        min_distinct: d,
        min_context: c,
        rules_off: off,
        ..MinerConfig::default()
    };
    let run_all = |c: &MinerConfig| -> Vec<f64> { data.iter().map(|(l, t)| score(c.clone(), l, t)).collect() };
    let run_corpus = |c: &MinerConfig| -> Vec<f64> { corpus.iter().map(|(_, l, t)| score(c.clone(), l, t)).collect() };
    let corpus_at_defaults = run_corpus(&defaults);
    let at_defaults = run_all(&defaults);
    println!("{} sets: {}", sets.len(), sets.join(", "));

    // 1. Each rule switched off alone, at the default settings: what it does per set.
    println!("\nEach rule switched off (accuracy change per set; + means the rule hurts that set):");
    print!("{:<32}", "rule");
    for s in &sets {
        print!(" {:>8}", &s[..s.len().min(8)]);
    }
    println!(" {:>8}  helps/hurts  {:>8}", "average", "corpus");
    // off_acc[r][s]: accuracy with rule r off.
    let mut off_acc = Vec::new();
    for (bit, name) in rule::ALL {
        let a = run_all(&cfg(defaults.min_distinct, defaults.min_context, bit));
        print!("{name:<32}");
        for (x, d) in a.iter().zip(&at_defaults) {
            print!(" {:>+8.4}", x - d);
        }
        let helps = a.iter().zip(&at_defaults).filter(|(x, d)| *x < *d).count();
        let hurts = a.iter().zip(&at_defaults).filter(|(x, d)| *x > *d).count();
        let c = if corpus.is_empty() {
            0.0
        } else {
            mean(&run_corpus(&cfg(defaults.min_distinct, defaults.min_context, bit)))
        };
        println!(
            " {:>+8.4}  {helps}/{hurts}        {:>+8.4}",
            mean(&a) - mean(&at_defaults),
            c - mean(&corpus_at_defaults)
        );
        off_acc.push(a);
    }

    // 2. Leave-one-out: for each set, the rules and settings are chosen on the others
    // (a rule is switched off when that raises the others' average; then the best pair
    // of settings on the grid, ties to the defaults) and applied to it.
    let grid: Vec<(usize, usize)> =
        MIN_DISTINCT.iter().flat_map(|&d| MIN_CONTEXT.iter().map(move |&c| (d, c))).collect();
    let others =
        |v: &[f64], s: usize| mean(&v.iter().enumerate().filter(|(i, _)| *i != s).map(|(_, a)| *a).collect::<Vec<_>>());
    for strict in [false, true] {
        if strict {
            println!("\nStrict: a rule stays on only when it raises the other sets' average (one that only changes");
            println!("the set left out is switched off for it):");
        } else {
            println!("\nLeave-one-out (grid min_distinct {MIN_DISTINCT:?} × min_context {MIN_CONTEXT:?}; a rule is");
            println!("switched off when that raises the other sets' average):");
        }
        println!("{:<10} {:>9} {:>9}  chosen on the other sets", "set", "defaults", "held out");
        let mut loo = Vec::new();
        for (s, name) in sets.iter().enumerate() {
            let mut off = 0;
            for (r, (bit, _)) in rule::ALL.iter().enumerate() {
                let (without, with) = (others(&off_acc[r], s), others(&at_defaults, s));
                if without > with + 1e-12 || (strict && without >= with - 1e-12) {
                    off |= bit;
                }
            }
            let mut best = (defaults.min_distinct, defaults.min_context);
            let mut best_acc = if off == 0 { at_defaults.clone() } else { run_all(&cfg(best.0, best.1, off)) };
            for &(d, c) in &grid {
                if (d, c) == best {
                    continue;
                }
                let a = run_all(&cfg(d, c, off));
                if others(&a, s) > others(&best_acc, s) + 1e-12 {
                    best = (d, c);
                    best_acc = a;
                }
            }
            let switched: Vec<&str> = rule::ALL.iter().filter(|(b, _)| off & b != 0).map(|(_, n)| *n).collect();
            let chosen = format!(
                "min_distinct {}, min_context {}{}",
                best.0,
                best.1,
                if switched.is_empty() { String::new() } else { format!("; off: {}", switched.join(", ")) }
            );
            println!("{name:<10} {:>9.4} {:>9.4}  {chosen}", at_defaults[s], best_acc[s]);
            loo.push(best_acc[s]);
        }
        println!("{:<10} {:>9.4} {:>9.4}", "average", mean(&at_defaults), mean(&loo));
    }
    if !corpus.is_empty() {
        println!("\nThe generated corpus (seven services, first line of each record; the truth's event per record),");
        println!("never used to choose the settings, with the defaults:");
        for ((name, lines, _), a) in corpus.iter().zip(&corpus_at_defaults) {
            println!("{name:<10} {a:>9.4}  ({} records)", lines.len());
        }
        println!("{:<10} {:>9.4}", "average", mean(&corpus_at_defaults));
    }
}

/// The generated corpus with its truth (`gen_legacy_logs.py --seed 11 --bytes 4M --truth`),
/// made in `dir` when it is not there: per service, the first line of every record and
/// the record's event. Empty when neither it nor the generator is there.
fn load_corpus(shared: &std::path::Path, dir: &std::path::Path) -> Vec<(String, Vec<String>, Vec<String>)> {
    let gen = shared.join("corpus/gen_legacy_logs.py");
    if !dir.join("truth").exists() && gen.exists() {
        let ok = std::process::Command::new("python3")
            .arg(&gen)
            .args(["--seed", "11", "--bytes", "4M", "--out"])
            .arg(dir.join("logs"))
            .arg("--truth")
            .arg(dir.join("truth"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "gen_legacy_logs.py failed");
    }
    let mut out = Vec::new();
    for service in ["payments", "orders", "gateway", "access", "auth", "cart", "search"] {
        let (Ok(text), Ok(truth)) = (
            std::fs::read(dir.join(format!("logs/{service}.log"))),
            std::fs::read_to_string(dir.join(format!("truth/{service}.ndjson"))),
        ) else {
            continue;
        };
        let lines: Vec<String> = text.split(|&b| b == b'\n').map(|l| String::from_utf8_lossy(l).into_owned()).collect();
        let (mut first, mut events) = (Vec::new(), Vec::new());
        for rec in truth.lines() {
            let v: serde_json::Value = serde_json::from_str(rec).expect("truth line");
            let n = v["line"].as_u64().expect("line") as usize;
            first.push(lines[n - 1].clone());
            events.push(v["event"].as_str().expect("event").to_string());
        }
        out.push((service.to_string(), first, events));
    }
    out
}
