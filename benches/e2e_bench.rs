//! End-to-end benchmark: tail → blackhole and tail → NDJSON file over the shared
//! corpus (1 GiB by default), beside `cat` of the same files.
//!
//! ```text
//! cargo build --release -p sluice-pipeline -p sluice-benches
//! target/release/e2e-bench [--bytes 1G] [--runs 3] [--data DIR] [--sluice PATH]
//! ```
//! Generates the corpus with `../shared/corpus/gen_legacy_logs.py --seed 7` when
//! DIR has none (and says so and exits 0 when ../shared is absent), runs each scenario
//! `--runs` times with a fresh data_dir and `stop_at_eof = true`, and prints the median
//! wall time, MB/s, events/s and peak RSS (from wait4) of each.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

struct Args {
    bytes: String,
    runs: usize,
    data: PathBuf,
    sluice: PathBuf,
    out: PathBuf,
}

fn parse_args() -> Args {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
    let mut a = Args {
        bytes: "1G".into(),
        runs: 3,
        data: root.join("target/bench-data"),
        sluice: root.join("target/release/sluice"),
        out: root.join("target/bench-out"),
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let v = it.next().unwrap_or_else(|| panic!("{k} needs a value"));
        match k.as_str() {
            "--bytes" => a.bytes = v,
            "--runs" => a.runs = v.parse().unwrap(),
            "--data" => a.data = v.into(),
            "--sluice" => a.sluice = v.into(),
            "--out" => a.out = v.into(),
            _ => panic!("unknown option {k} (expected --bytes, --runs, --data, --sluice, --out)"),
        }
    }
    a
}

fn corpus_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|e| e == "log")).collect())
        .unwrap_or_default();
    v.sort();
    v
}

/// Run a command, return (seconds, peak RSS in KiB, exit status). The peak is the
/// child's own `VmHWM`, sampled every 5 ms until it exits (`ru_maxrss` from wait4 is
/// not used: on Linux it inherits the parent's high-water mark across fork/exec).
fn timed(cmd: &mut Command) -> (f64, u64, i32) {
    let t = Instant::now();
    let mut child = cmd.spawn().expect("spawn");
    let status_path = format!("/proc/{}/status", child.id());
    let mut peak = 0u64;
    let code = loop {
        if let Ok(s) = std::fs::read_to_string(&status_path) {
            if let Some(v) = s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)) {
                peak = peak.max(v.parse().unwrap_or(0));
            }
        }
        if let Some(st) = child.try_wait().unwrap() {
            break st.code().unwrap_or(-1);
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    (t.elapsed().as_secs_f64(), peak, code)
}

fn count_lines(p: &Path) -> u64 {
    use std::io::Read;
    let mut f = std::fs::File::open(p).unwrap();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = f.read(&mut buf).unwrap();
        if k == 0 {
            return n;
        }
        n += buf[..k].iter().filter(|&&b| b == b'\n').count() as u64;
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    let a = parse_args();
    let corpus = a.data.join(format!("seed7-{}", a.bytes));
    if corpus_files(&corpus).is_empty() {
        let gen = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus/gen_legacy_logs.py");
        if !gen.exists() {
            println!("SKIP: {} not found (../shared is absent); nothing to benchmark", gen.display());
            return;
        }
        println!("generating {} of corpus into {} ...", a.bytes, corpus.display());
        let st = Command::new("python3")
            .arg(&gen)
            .args(["--seed", "7", "--bytes", &a.bytes, "--out"])
            .arg(&corpus)
            .status()
            .expect("python3");
        assert!(st.success(), "generator failed");
    }
    let files = corpus_files(&corpus);
    let total: u64 = files.iter().map(|f| std::fs::metadata(f).unwrap().len()).sum();
    let lines: u64 = files.iter().map(|f| count_lines(f)).sum();
    let mb = total as f64 / 1e6;
    println!("corpus: {} files, {:.1} MB, {} lines; sluice {}", files.len(), mb, lines, a.sluice.display());
    println!("machine: {} cores, {}", num_cpus(), cpu_model());
    std::fs::create_dir_all(&a.out).unwrap();

    // Baseline: cat of the same files into one file.
    let cat_out = a.out.join("cat.out");
    let mut times = Vec::new();
    for _ in 0..a.runs {
        let f = std::fs::File::create(&cat_out).unwrap();
        let (s, _, code) = timed(Command::new("cat").args(&files).stdout(f));
        assert_eq!(code, 0);
        times.push(s);
    }
    let _ = std::fs::remove_file(&cat_out);
    let t = median(times);
    println!("{:<24} median {:>7.3} s  {:>8.1} MB/s", "cat > file", t, mb / t);

    for (name, sink) in [
        ("tail -> blackhole", "type = \"blackhole\"".to_string()),
        ("tail -> ndjson file", format!("type = \"file\"\npath = \"{}/out.ndjson\"", a.out.display())),
    ] {
        let mut times = Vec::new();
        let mut rss = Vec::new();
        for _ in 0..a.runs {
            let data_dir = a.out.join("data");
            let _ = std::fs::remove_dir_all(&data_dir);
            let _ = std::fs::remove_file(a.out.join("out.ndjson"));
            let cfg = format!(
                "data_dir = \"{}\"\n[api]\nenabled = false\n[sources.corpus]\ntype = \"file\"\ninclude = [\"{}/*.log\"]\nstop_at_eof = true\n[sinks.out]\ninputs = [\"corpus\"]\n{sink}\n",
                data_dir.display(),
                corpus.display()
            );
            let cfg_path = a.out.join("bench.toml");
            std::fs::write(&cfg_path, cfg).unwrap();
            let (s, r, code) = timed(
                Command::new(&a.sluice)
                    .args(["run", "--config"])
                    .arg(&cfg_path)
                    .env("SLUICE_LOG", "warn")
                    .stdout(std::process::Stdio::null()),
            );
            assert_eq!(code, 0, "sluice failed");
            if sink.contains("file") {
                let out_lines = count_lines(&a.out.join("out.ndjson"));
                assert_eq!(out_lines, lines, "every line must be written");
            }
            times.push(s);
            rss.push(r as f64);
        }
        let t = median(times);
        println!(
            "{:<24} median {:>7.3} s  {:>8.1} MB/s  {:>6.2} M events/s  peak RSS {:>6.1} MiB",
            name,
            t,
            mb / t,
            lines as f64 / t / 1e6,
            median(rss) / 1024.0
        );
    }
    let _ = std::fs::remove_file(a.out.join("out.ndjson"));

    // Full parse: the examples/corpus config (7 sources, 7 parse stages with header
    // formats, templates, JSON, logfmt, syslog, Java multiline) → NDJSON per service;
    // then the same with a `metrics` stage of five metrics in front of the sink.
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
    let base = std::fs::read_to_string(root.join("examples/corpus/sluice.toml"))
        .unwrap()
        .replace("stop_at_eof = false", "stop_at_eof = true");
    // The example's parse stages, then either straight to the sink, or through its
    // `signals` stage (five metrics: three counters with labels, a counter, a
    // histogram); its sampler is left out of both.
    let parses = "inputs = [\"payments_parse\", \"orders_parse\", \"gateway_parse\", \"access_parse\", \"auth_parse\", \"cart_parse\", \"search_parse\"]";
    let sink = |inputs: &str| {
        format!("\n[sinks.events]\ntype = \"file\"\n{inputs}\npath = \"${{OUT_DIR:-out/corpus}}/{{source}}.ndjson\"\n")
    };
    let signals_at = base.find("# --- signals:").expect("the example has a signals stage");
    let sampling_at = base.find("# --- sampling").expect("the example has a sampling stage");
    let without = format!("{}{}", &base[..signals_at], sink(parses));
    let with_metrics = format!("{}{}", &base[..sampling_at], sink("inputs = [\"signals\"]"));
    assert_eq!(with_metrics.matches("[[transforms.signals.").count(), 5, "five metrics");
    let mut medians = Vec::new();
    for (name, cfg) in [("tail -> parse -> file", without), ("  + 5 metrics", with_metrics)] {
        let cfg_path = a.out.join("corpus.toml");
        std::fs::write(&cfg_path, cfg).unwrap();
        let mut times = Vec::new();
        let mut rss = Vec::new();
        let out_dir = a.out.join("corpus-out");
        for _ in 0..a.runs {
            let _ = std::fs::remove_dir_all(a.out.join("data"));
            let _ = std::fs::remove_dir_all(&out_dir);
            let (s, r, code) = timed(
                Command::new(&a.sluice)
                    .args(["run", "--config"])
                    .arg(&cfg_path)
                    .env("SLUICE_LOG", "warn")
                    .env("CORPUS_DIR", &corpus)
                    .env("OUT_DIR", &out_dir)
                    .env("DATA_DIR", a.out.join("data"))
                    .env("SLUICE_EXAMPLES", root.join("examples"))
                    .env("SLUICE_API_ADDRESS", "127.0.0.1:0")
                    .stdout(std::process::Stdio::null()),
            );
            assert_eq!(code, 0, "sluice failed");
            times.push(s);
            rss.push(r as f64);
        }
        let out_lines: u64 = std::fs::read_dir(&out_dir)
            .unwrap()
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "ndjson"))
            .map(|e| count_lines(&e.path()))
            .sum();
        let t = median(times);
        medians.push(t);
        println!(
            "{:<24} median {:>7.3} s  {:>8.1} MB/s  {:>6.2} M lines/s  peak RSS {:>6.1} MiB  ({} events out)",
            name,
            t,
            mb / t,
            lines as f64 / t / 1e6,
            median(rss) / 1024.0,
            out_lines
        );
        let _ = std::fs::remove_dir_all(&out_dir);
    }
    println!("five metrics cost {:+.1}% of the parse pipeline's time", (medians[1] / medians[0] - 1.0) * 100.0);

    // Template mining, as users run it: `sluice templates mine --per-line` over the
    // corpus files (whole lines) and over the Loghub Content lines repeated 100 times.
    let mut inputs: Vec<(String, Vec<PathBuf>, u64)> = vec![("corpus".into(), files.clone(), lines)];
    let loghub = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/loghub");
    if loghub.exists() {
        let mut content = String::new();
        for set in ["HDFS", "Hadoop", "Spark", "BGL", "HPC", "Linux", "Mac", "OpenStack"] {
            let out = Command::new("python3")
                .args([
                    "-c",
                    "import csv,sys; [print(r['Content']) for r in csv.DictReader(open(sys.argv[1], newline=''))]",
                ])
                .arg(loghub.join(format!("{set}/{set}_2k.log_structured.csv")))
                .output()
                .expect("python3");
            content.push_str(&String::from_utf8_lossy(&out.stdout));
        }
        let path = a.out.join("loghub-x100.txt");
        std::fs::write(&path, content.repeat(100)).unwrap();
        let n = count_lines(&path);
        inputs.push(("loghub content x100".into(), vec![path], n));
    }
    for (name, paths, n) in inputs {
        let mut times = Vec::new();
        let mut rss = Vec::new();
        for _ in 0..a.runs {
            let (s, r, code) = timed(
                Command::new(&a.sluice)
                    .args(["templates", "mine", "--per-line"])
                    .args(&paths)
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null()),
            );
            assert_eq!(code, 0, "templates mine failed");
            times.push(s);
            rss.push(r as f64);
        }
        let t = median(times);
        println!("templates mine --per-line, {name:<20} median {t:>7.3} s  {:>6.2} M lines/s  peak RSS {:>6.1} MiB  ({n} lines)", n as f64 / t / 1e6, median(rss) / 1024.0);
    }
}

fn num_cpus() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}
