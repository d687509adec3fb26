//! Criterion: template mining, as `sluice templates mine --per-line` does it (mine every
//! line, remember its shape; the final template of each line is looked up at the end).
//! Issue target: ≥ 2 M lines/s per core on the corpus and on the Loghub lines repeated.
//!
//! Inputs: the shared corpus (`../shared/corpus/gen_legacy_logs.py --seed 7`, whole
//! lines, 200k of them) and the Content column of the eight Loghub 2k sets (16,000
//! lines, mined 10 times over). Without ../shared, the bundled quickstart logs.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sluice_parsers::mining::{Miner, MinerConfig};
use std::path::Path;

fn loghub(shared: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for set in ["HDFS", "Hadoop", "Spark", "BGL", "HPC", "Linux", "Mac", "OpenStack"] {
        let text = std::fs::read_to_string(shared.join(format!("loghub/{set}/{set}_2k.log_structured.csv"))).unwrap();
        // The Content column: the field before the last two (EventId, EventTemplate).
        for line in text.lines().skip(1) {
            let fields = split_csv(line);
            if fields.len() >= 3 {
                out.push(fields[fields.len() - 3].clone());
            }
        }
    }
    out
}

fn split_csv(line: &str) -> Vec<String> {
    let mut v = Vec::new();
    let mut f = String::new();
    let mut q = false;
    let mut it = line.chars().peekable();
    while let Some(c) = it.next() {
        match (q, c) {
            (true, '"') if it.peek() == Some(&'"') => {
                f.push('"');
                it.next();
            }
            (true, '"') => q = false,
            (false, '"') => q = true,
            (false, ',') => v.push(std::mem::take(&mut f)),
            (_, c) => f.push(c),
        }
    }
    v.push(f);
    v
}

fn corpus(root: &Path, shared: Option<&Path>) -> Vec<String> {
    let dir = std::env::temp_dir().join("sluice-bench-mining-corpus");
    if let Some(shared) = shared {
        if !dir.join("payments.log").exists() {
            let st = std::process::Command::new("python3")
                .arg(shared.join("corpus/gen_legacy_logs.py"))
                .args(["--seed", "7", "--bytes", "30M", "--out"])
                .arg(&dir)
                .output()
                .unwrap();
            assert!(st.status.success());
        }
    }
    let src = if dir.join("payments.log").exists() { dir } else { root.join("examples/quickstart/logs") };
    let mut lines = Vec::new();
    for e in std::fs::read_dir(&src).unwrap().flatten() {
        lines.extend(std::fs::read_to_string(e.path()).unwrap().lines().map(str::to_owned));
    }
    lines.sort_by_key(|l| l.len() % 7); // interleave services a little, deterministically
    lines.truncate(200_000);
    lines
}

fn bench(c: &mut Criterion) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let shared = root.join("../shared");
    let shared = shared.join("loghub").exists().then_some(shared.as_path());
    let mut g = c.benchmark_group("mining");
    g.sample_size(20);
    let corpus = corpus(&root, shared);
    let mut sets = vec![("corpus_lines", corpus)];
    if let Some(s) = shared {
        let lh = loghub(s);
        let mut rep = Vec::with_capacity(lh.len() * 10);
        for _ in 0..10 {
            rep.extend(lh.iter().cloned());
        }
        sets.push(("loghub_content_x10", rep));
    }
    for (name, lines) in sets {
        let bytes: usize = lines.iter().map(|l| l.len()).sum();
        eprintln!("{name}: {} lines, {:.1} bytes/line", lines.len(), bytes as f64 / lines.len() as f64);
        g.throughput(Throughput::Elements(lines.len() as u64));
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut m = Miner::new(MinerConfig::default());
                let mut shapes = Vec::with_capacity(lines.len());
                for l in &lines {
                    shapes.push(m.mine(l.as_bytes()).shape);
                }
                // The final template of every line, as --per-line prints it.
                shapes.iter().map(|&s| m.template_of_shape(s) as u64).sum::<u64>()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
