//! End-to-end benchmark over the shared corpus (1 GiB by default): `cat` of the files,
//! tail → blackhole, tail → NDJSON file (W2), the whole legacy pipeline (W1: parse →
//! mask → sample → file), the parse pipeline with and without metrics, and template
//! mining.
//!
//! ```text
//! cargo build --release -p sluice-pipeline -p sluice-benches
//! target/release/e2e-bench [--bytes 1G] [--runs 3] [--data DIR] [--sluice PATH]
//!                          [--only cat,blackhole,file,w1,parse,slow,mine] [--w1-hash HEX]
//! ```
//! Generates the corpus with `../shared/corpus/gen_legacy_logs.py --seed 7
//! --incident 0.6,0.05` when DIR has none (and says so and exits 0 when ../shared is
//! absent), runs each scenario `--runs` times with a fresh data_dir and
//! `stop_at_eof = true`, and prints the median wall time with its range, MB/s, the
//! median CPU seconds (user + system, from wait4) and the median peak RSS of each.
//! Every scenario's output is counted and compared with what it must be (the blackhole
//! through the totals sluice logs at exit, files by their lines); a mismatch fails the
//! run. W1's output is sorted and hashed: `--w1-hash` fails the run when it differs
//! (the check that an optimisation changed nothing).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

struct Args {
    bytes: String,
    runs: usize,
    data: PathBuf,
    sluice: PathBuf,
    out: PathBuf,
    only: Vec<String>,
    w1_hash: Option<String>,
}

fn parse_args() -> Args {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
    let mut a = Args {
        bytes: "1G".into(),
        runs: 3,
        data: root.join("target/bench-data"),
        sluice: root.join("target/release/sluice"),
        out: root.join("target/bench-out"),
        only: ["cat", "blackhole", "file", "w1", "parse", "slow", "mine"].map(String::from).to_vec(),
        w1_hash: None,
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
            "--only" => a.only = v.split(',').map(String::from).collect(),
            "--w1-hash" => a.w1_hash = Some(v),
            _ => panic!("unknown option {k} (expected --bytes, --runs, --data, --sluice, --out, --only, --w1-hash)"),
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

/// One timed run of a command.
struct Run {
    wall: f64,
    /// User + system CPU seconds of the child (wait4's rusage: its own, not inherited).
    cpu: f64,
    /// Peak RSS in KiB: the child's own `VmHWM`, sampled every 5 ms (`ru_maxrss` is
    /// not used: on Linux it inherits the parent's high-water mark across fork/exec).
    rss_kib: u64,
    code: i32,
}

fn timed(cmd: &mut Command) -> Run {
    // Start every run with no dirty pages left by an earlier one (outputs of GBs), so a
    // run pays for its own writes only, not for the writeback of the run before.
    // SAFETY: sync(2) takes no arguments and cannot fail.
    unsafe { libc::sync() };
    let t = Instant::now();
    // Reaped below with wait4 (for its rusage), not through `Child`.
    let pid = cmd.spawn().expect("spawn").id() as i32;
    let status_path = format!("/proc/{pid}/status");
    let mut peak = 0u64;
    loop {
        if let Ok(s) = std::fs::read_to_string(&status_path) {
            if let Some(v) = s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| l.split_whitespace().nth(1)) {
                peak = peak.max(v.parse().unwrap_or(0));
            }
        }
        let mut status = 0;
        // SAFETY: waiting for our own child; rusage is a plain struct we own.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        let r = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut ru) };
        if r == pid {
            let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
            let code = if libc::WIFEXITED(status) { libc::WEXITSTATUS(status) } else { -1 };
            return Run {
                wall: t.elapsed().as_secs_f64(),
                cpu: tv(ru.ru_utime) + tv(ru.ru_stime),
                rss_kib: peak,
                code,
            };
        }
        assert!(r == 0, "wait4: {}", std::io::Error::last_os_error());
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

fn count_lines(p: &Path) -> u64 {
    count_newlines(std::fs::File::open(p).unwrap())
}

/// Newlines read from `f` until it ends.
fn count_newlines(mut f: impl std::io::Read) -> u64 {
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = f.read(&mut buf).unwrap();
        if k == 0 {
            return n;
        }
        n += memchr::memchr_iter(b'\n', &buf[..k]).count() as u64;
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// A stable hash of a file's lines in sorted order (FNV-1a over the sorted lines): the
/// same for the same set of output lines whatever order workers wrote them in.
fn sorted_lines_hash(p: &Path) -> String {
    let text = std::fs::read(p).unwrap();
    let mut lines: Vec<&[u8]> = text.split(|&b| b == b'\n').filter(|l| !l.is_empty()).collect();
    lines.sort_unstable();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for l in lines {
        for &b in l.iter().chain(b"\n") {
            h ^= b as u64;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    format!("{h:016x}")
}

/// The `events_out` of component `name` in the totals sluice logs at exit (JSON logs).
fn total_out(stderr: &Path, name: &str) -> Option<u64> {
    let text = std::fs::read_to_string(stderr).ok()?;
    let want = format!("\"component\":\"{name}\"");
    let line = text.lines().find(|l| l.contains("\"totals\"") && l.contains(&want))?;
    let at = line.find("\"events_out\":")? + "\"events_out\":".len();
    line[at..].chars().take_while(char::is_ascii_digit).collect::<String>().parse().ok()
}

/// Times and sizes of a scenario's runs, printed as one line.
#[derive(Default)]
struct Stats {
    wall: Vec<f64>,
    cpu: Vec<f64>,
    rss: Vec<f64>,
}

impl Stats {
    fn push(&mut self, r: &Run) {
        self.wall.push(r.wall);
        self.cpu.push(r.cpu);
        self.rss.push(r.rss_kib as f64 / 1024.0);
    }
    fn print(&self, name: &str, mb: f64, extra: &str) -> f64 {
        let t = median(self.wall.clone());
        let lo = self.wall.iter().cloned().fold(f64::MAX, f64::min);
        let hi = self.wall.iter().cloned().fold(0.0, f64::max);
        let rss = if self.rss.iter().any(|&r| r > 0.0) {
            format!(
                "  peak RSS {:>6.1} MiB (max {:.1})",
                median(self.rss.clone()),
                self.rss.iter().cloned().fold(0.0, f64::max)
            )
        } else {
            String::new()
        };
        println!(
            "{name:<26} median {t:>7.3} s ({lo:.3}–{hi:.3})  {:>7.1} MB/s  CPU {:>6.2} s{rss}{extra}",
            mb / t,
            median(self.cpu.clone()),
        );
        t
    }
}

struct Bench {
    a: Args,
    corpus: PathBuf,
    root: PathBuf,
    mb: f64,
    lines: u64,
}

impl Bench {
    /// A fresh `out_dir` and `data_dir` for the next run.
    fn prepare(&self, out_dir: &Path) {
        let _ = std::fs::remove_dir_all(self.a.out.join("data"));
        let _ = std::fs::remove_dir_all(out_dir);
        std::fs::create_dir_all(out_dir).unwrap();
    }

    /// Run `sluice run` on `cfg` with the corpus environment and time it (it must exit
    /// 0); stderr (JSON logs, the totals at exit) goes to the returned file.
    fn run(&self, cfg: &str, out_dir: &Path) -> (Run, PathBuf) {
        let cfg_path = self.a.out.join("bench.toml");
        std::fs::write(&cfg_path, cfg).unwrap();
        let err_path = self.a.out.join("stderr.log");
        let r = timed(
            Command::new(&self.a.sluice)
                .args(["run", "--config"])
                .arg(&cfg_path)
                .env("SLUICE_LOG", "warn,sluice::totals=info")
                .env("CORPUS_DIR", &self.corpus)
                .env("OUT_DIR", out_dir)
                .env("DATA_DIR", self.a.out.join("data"))
                .env("SLUICE_EXAMPLES", self.root.join("examples"))
                .env("SLUICE_API_ADDRESS", "127.0.0.1:0")
                .stdout(std::process::Stdio::null())
                .stderr(std::fs::File::create(&err_path).unwrap()),
        );
        if r.code != 0 {
            panic!("sluice failed ({}): {}", r.code, std::fs::read_to_string(&err_path).unwrap_or_default());
        }
        (r, err_path)
    }

    /// `prepare`, then `run`.
    fn sluice(&self, cfg: &str, out_dir: &Path) -> (Run, PathBuf) {
        self.prepare(out_dir);
        self.run(cfg, out_dir)
    }

    fn ndjson_lines(dir: &Path) -> u64 {
        std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "ndjson"))
            .map(|e| count_lines(&e.path()))
            .sum()
    }
}

fn main() {
    let a = parse_args();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf();
    let corpus = a.data.join(format!("seed7-{}-incident", a.bytes));
    if corpus_files(&corpus).is_empty() {
        let gen = root.join("../shared/corpus/gen_legacy_logs.py");
        if !gen.exists() {
            println!("SKIP: {} not found (../shared is absent); nothing to benchmark", gen.display());
            return;
        }
        println!("generating {} of corpus into {} ...", a.bytes, corpus.display());
        let st = Command::new("python3")
            .arg(&gen)
            .args(["--seed", "7", "--incident", "0.6,0.05", "--bytes", &a.bytes, "--out"])
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
    let b = Bench { a, corpus: corpus.clone(), root: root.clone(), mb, lines };
    let only = |s: &str| b.a.only.iter().any(|o| o == s);

    // Baseline: cat of the same files into one file.
    let mut cat_t = None;
    if only("cat") || only("file") {
        let cat_out = b.a.out.join("cat.out");
        let mut st = Stats::default();
        for _ in 0..b.a.runs {
            let f = std::fs::File::create(&cat_out).unwrap();
            let r = timed(Command::new("cat").args(&files).stdout(f));
            assert_eq!(r.code, 0);
            st.push(&r);
        }
        let _ = std::fs::remove_file(&cat_out);
        cat_t = Some(st.print("cat > file", mb, ""));
    }

    let out_dir = b.a.out.join("out");
    // Pass-through: tail → blackhole, tail → NDJSON file (W2).
    let pass = |sink: &str| {
        format!(
            "data_dir = \"${{DATA_DIR}}\"\n[api]\nenabled = false\n[sources.corpus]\ntype = \"file\"\ninclude = [\"${{CORPUS_DIR}}/*.log\"]\nstop_at_eof = true\n[sinks.out]\ninputs = [\"corpus\"]\n{sink}\n"
        )
    };
    if only("blackhole") {
        let mut st = Stats::default();
        for _ in 0..b.a.runs {
            let (r, err) = b.sluice(&pass("type = \"blackhole\""), &out_dir);
            assert_eq!(total_out(&err, "out"), Some(lines), "the blackhole must take every line");
            st.push(&r);
        }
        st.print("tail -> blackhole", mb, "");
    }
    if only("file") {
        let mut st = Stats::default();
        // The kernel's share: `cat` writing as many bytes as W2 writes (its own output,
        // copied), interleaved with the W2 runs.
        let mut same = Stats::default();
        let mut out_bytes = 0;
        for _ in 0..b.a.runs {
            let (r, _) = b.sluice(&pass("type = \"file\"\npath = \"${OUT_DIR}/out.ndjson\""), &out_dir);
            let out = out_dir.join("out.ndjson");
            assert_eq!(count_lines(&out), lines, "every line must be written");
            st.push(&r);
            out_bytes = std::fs::metadata(&out).unwrap().len();
            let copy = b.a.out.join("cat-same-bytes.out");
            let c = timed(Command::new("cat").arg(&out).stdout(std::fs::File::create(&copy).unwrap()));
            assert_eq!(c.code, 0);
            same.push(&c);
            let _ = std::fs::remove_file(&copy);
        }
        let t = st.print("tail -> ndjson file (W2)", mb, "");
        if let Some(c) = cat_t {
            println!("{:<26} {:.2}× cat", "", c / t);
        }
        let name = format!("cat of W2's {:.0} MB", out_bytes as f64 / 1e6);
        let s = same.print(&name, mb, "");
        println!("{:<26} W2 {:.2}× cat writing the same bytes", "", s / t);
    }

    // The examples/corpus config (7 sources, 7 parse stages with header formats,
    // templates, JSON, logfmt, syslog, Java multiline) is the base of W1 and of the
    // parse scenarios.
    let base = std::fs::read_to_string(root.join("examples/corpus/sluice.toml"))
        .unwrap()
        .replace("stop_at_eof = false", "stop_at_eof = true");
    let parses = "inputs = [\"payments_parse\", \"orders_parse\", \"gateway_parse\", \"access_parse\", \"auth_parse\", \"cart_parse\", \"search_parse\"]";
    let signals_at = base.find("# --- signals:").expect("the example has a signals stage");
    let sampling_at = base.find("# --- sampling").expect("the example has a sampling stage");
    let sources_and_parse = &base[..signals_at];

    // W1: the whole legacy pipeline into one NDJSON file.
    let w1 = format!(
        "{sources_and_parse}\n[transforms.pii]\ntype = \"mask\"\n{parses}\ndetectors = [\"email\", \"credit_card\", \"ipv4\", \"phone\", \"us_ssn\", \"jwt\", \"secret\"]\nmode = \"redact\"\n\n[transforms.sampled]\ntype = \"sample\"\ninputs = [\"pii\"]\nrate = 10\nkey_field = \"trace_id\"\n\n[sinks.events]\ntype = \"file\"\ninputs = [\"sampled\"]\npath = \"${{OUT_DIR}}/w1.ndjson\"\n"
    );
    let mut w1_events = None;
    if only("w1") {
        let mut st = Stats::default();
        let mut hashes = Vec::new();
        let mut count = 0;
        for _ in 0..b.a.runs {
            let (r, err) = b.sluice(&w1, &out_dir);
            count = count_lines(&out_dir.join("w1.ndjson"));
            assert_eq!(total_out(&err, "events"), Some(count), "the file must hold what the sink took");
            hashes.push(sorted_lines_hash(&out_dir.join("w1.ndjson")));
            st.push(&r);
        }
        hashes.dedup();
        assert_eq!(hashes.len(), 1, "W1 output differs between runs: {hashes:?}");
        st.print("W1 parse-mask-sample-file", mb, &format!("  ({count} events, sorted hash {})", hashes[0]));
        w1_events = Some(count);
        if let Some(want) = &b.a.w1_hash {
            assert_eq!(&hashes[0], want, "W1 output differs from the expected one");
        }
    }

    if only("parse") {
        // The example's parse stages, then straight to the sink, or through its `signals`
        // stage (five metrics: three counters with labels, a counter, a histogram).
        let sink = |inputs: &str| {
            format!(
                "\n[sinks.events]\ntype = \"file\"\n{inputs}\npath = \"${{OUT_DIR:-out/corpus}}/{{source}}.ndjson\"\n"
            )
        };
        let without = format!("{sources_and_parse}{}", sink(parses));
        let with_metrics = format!("{}{}", &base[..sampling_at], sink("inputs = [\"signals\"]"));
        assert_eq!(with_metrics.matches("[[transforms.signals.").count(), 5, "five metrics");
        let mut medians = Vec::new();
        for (name, cfg) in [("tail -> parse -> file", without), ("  + 5 metrics", with_metrics)] {
            let mut st = Stats::default();
            let mut n = 0;
            for _ in 0..b.a.runs {
                let (r, err) = b.sluice(&cfg, &out_dir);
                n = Bench::ndjson_lines(&out_dir);
                assert_eq!(total_out(&err, "events"), Some(n), "the files must hold what the sink took");
                st.push(&r);
            }
            medians.push(st.print(name, mb, &format!("  ({n} events out)")));
        }
        println!("five metrics cost {:+.1}% of the parse pipeline's time", (medians[1] / medians[0] - 1.0) * 100.0);
    }

    if only("slow") {
        slow_sink(&b, "W2", &pass("type = \"file\"\npath = \"${OUT_DIR}/out.ndjson\""), "out.ndjson", lines);
        let events = w1_events.unwrap_or_else(|| {
            b.sluice(&w1, &out_dir);
            count_lines(&out_dir.join("w1.ndjson"))
        });
        slow_sink(&b, "W1", &w1, "w1.ndjson", events);
    }

    if only("mine") {
        mine(&b, &files);
    }
    let _ = std::fs::remove_dir_all(&out_dir);
}

/// A scenario whose sink stalls: its output is a FIFO whose reader stops for the first
/// `PAUSE` (every edge fills, the sources stop reading), then reads as fast as it can.
/// Reported: the time after the pause against the same scenario with a reader that
/// never stops (the same FIFO, 1 MiB of pipe buffer), and the peak RSS while held.
/// `lines`: what the reader must count.
fn slow_sink(b: &Bench, name: &str, cfg: &str, file: &str, lines: u64) {
    const PAUSE: f64 = 3.0;
    let out_dir = b.a.out.join("out");
    let mut held = Stats::default();
    let mut free = Stats::default();
    for _ in 0..b.a.runs {
        for pause in [0.0, PAUSE] {
            b.prepare(&out_dir);
            let fifo = out_dir.join(file);
            let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
            // SAFETY: a path we own.
            assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
            let reader = std::thread::spawn(move || {
                use std::os::fd::AsRawFd;
                let f = std::fs::File::open(&fifo).unwrap();
                // SAFETY: fcntl on a descriptor we own (F_SETPIPE_SZ; failure is harmless).
                unsafe { libc::fcntl(f.as_raw_fd(), libc::F_SETPIPE_SZ, 1 << 20) };
                std::thread::sleep(std::time::Duration::from_secs_f64(pause));
                count_newlines(f)
            });
            let (mut r, _) = b.run(cfg, &out_dir);
            assert_eq!(reader.join().unwrap(), lines, "every line must reach the reader");
            r.wall -= pause;
            if pause > 0.0 {
                held.push(&r)
            } else {
                free.push(&r)
            }
        }
    }
    let t0 = free.print(&format!("{name} into a FIFO"), b.mb, "");
    let t1 = held.print(&format!("  after a {PAUSE:.0} s stall"), b.mb, "");
    println!("{:<26} {:+.1}% after the stall", "", (t1 / t0 - 1.0) * 100.0);
}

/// Template mining, as users run it: `sluice templates mine --per-line` over the corpus
/// files (whole lines) and over the Loghub Content lines repeated 100 times.
fn mine(b: &Bench, files: &[PathBuf]) {
    let mut inputs: Vec<(String, Vec<PathBuf>, u64)> = vec![("corpus".into(), files.to_vec(), b.lines)];
    let loghub = b.root.join("../shared/loghub");
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
        let path = b.a.out.join("loghub-x100.txt");
        std::fs::write(&path, content.repeat(100)).unwrap();
        let n = count_lines(&path);
        inputs.push(("loghub content x100".into(), vec![path], n));
    }
    for (name, paths, n) in inputs {
        let mut st = Stats::default();
        for _ in 0..b.a.runs {
            let r = timed(
                Command::new(&b.a.sluice)
                    .args(["templates", "mine", "--per-line"])
                    .args(&paths)
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null()),
            );
            assert_eq!(r.code, 0, "templates mine failed");
            st.push(&r);
        }
        let mb: f64 = paths.iter().map(|p| std::fs::metadata(p).unwrap().len() as f64).sum::<f64>() / 1e6;
        st.print(&format!("mine --per-line {name}"), mb, &format!("  ({n} lines)"));
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
