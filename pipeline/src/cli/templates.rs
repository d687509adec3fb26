//! `sluice templates mine`: learn the templates of a legacy service's logs.

use sluice_event::ByteStr;
use sluice_parsers::mining::{Miner, MinerConfig, Template, Tok, VAR};
use sluice_parsers::{Context, Format, Parsed};
use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

#[derive(clap::Subcommand)]
pub enum Action {
    /// Read logs (files, or standard input), print the learned templates with counts
    /// and an example each, most frequent first.
    Mine(Options),
}

#[derive(clap::Args)]
pub struct Options {
    /// Header format to strip first, in the `parse` stage's language, e.g.
    /// "{timestamp} {level} [{logger}] {message}" or a preset (syslog, json, ...);
    /// `none` mines whole lines. Default, for each file: the preset or common layout
    /// whose header at least 9 in 10 of its first 1,000 lines carry, if one does (named
    /// on stderr), else none. Lines that do not fit are mined whole.
    #[arg(long, value_name = "FORMAT")]
    pub format: Option<String>,
    /// strftime layout of {timestamp} in --format (default: recognised).
    #[arg(long, value_name = "LAYOUT")]
    pub timestamp_format: Option<String>,
    /// Also write the templates as a file `parse` loads with `templates_file`.
    #[arg(long, value_name = "OUT")]
    pub toml: Option<PathBuf>,
    /// Instead of the summary, print one NDJSON object per input line, in order:
    /// the template_id and template of the final template the line belongs to.
    #[arg(long)]
    pub per_line: bool,
    /// Distinct words at one position before templates differing only there merge.
    #[arg(long, default_value_t = 4)]
    pub min_distinct: usize,
    /// Templates kept in memory (least recently seen forgotten beyond).
    #[arg(long, default_value_t = 100_000)]
    pub max_templates: usize,
    /// Extra variable pattern (a regex); may be repeated.
    #[arg(long = "mask", value_name = "REGEX")]
    pub masks: Vec<String>,
    /// Templates printed in the summary.
    #[arg(long, default_value_t = 50)]
    pub top: usize,
    /// Log files (default: standard input).
    pub files: Vec<PathBuf>,
}

pub fn main(action: Action) -> ExitCode {
    match action {
        Action::Mine(o) => run(o),
    }
}

pub fn run(o: Options) -> ExitCode {
    let masks = match o
        .masks
        .iter()
        .map(|m| regex::Regex::new(m).map_err(|e| format!("--mask {m:?}: {e}")))
        .collect::<Result<Vec<_>, _>>()
    {
        Ok(m) => m,
        Err(e) => {
            eprintln!("sluice templates mine: {e}");
            return ExitCode::from(2);
        }
    };
    let header = match o.format.as_deref() {
        None => Header::Undecided,
        Some("none") => Header::Whole,
        Some(f) => match Format::compile(f, o.timestamp_format.as_deref()) {
            Ok(f) => Header::Strip(f),
            Err(e) => {
                eprintln!("sluice templates mine: --format: {e}");
                return ExitCode::from(2);
            }
        },
    };
    let mut m = Lines {
        miner: Miner::new(MinerConfig {
            max_templates: o.max_templates,
            min_distinct: o.min_distinct,
            masks,
            ..MinerConfig::default()
        }),
        header,
        sample: Vec::new(),
        sample_bytes: 0,
        headers: o.format.iter().filter(|f| *f != "none").cloned().collect(),
        source: String::new(),
        ctx: Context::default(),
        parsed: Parsed::default(),
        shapes: Vec::new(),
        per_line: o.per_line,
        lines: 0,
        header_misses: 0,
    };
    let started = Instant::now();
    // A progress line on stderr, at most four times a second, when it is a terminal.
    let progress = std::io::stderr().is_terminal();
    let mut last_progress = Instant::now();
    let mut shown_progress = false;
    let mut bytes_total = 0u64;
    let inputs: Vec<Option<PathBuf>> =
        if o.files.is_empty() { vec![None] } else { o.files.iter().cloned().map(Some).collect() };
    let detecting = o.format.is_none();
    for input in inputs {
        let name = input.as_ref().map_or("<stdin>".into(), |p| p.display().to_string());
        // Each file gets its own header (several services' logs may be mined together).
        if detecting {
            m.header = Header::Undecided;
            m.source = name.clone();
        }
        let mut reader: Box<dyn Read> = match &input {
            Some(p) => match std::fs::File::open(p) {
                Ok(f) => Box::new(f),
                Err(e) => {
                    eprintln!("sluice templates mine: {name}: {e}");
                    return ExitCode::from(1);
                }
            },
            None => Box::new(std::io::stdin().lock()),
        };
        // Read 1 MiB at a time; complete lines are mined, the rest waits for more.
        let mut pending: Vec<u8> = Vec::with_capacity(1 << 21);
        let mut chunk = vec![0u8; 1 << 20];
        loop {
            let got = match reader.read(&mut chunk) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    eprintln!("sluice templates mine: {name}: {e}");
                    return ExitCode::from(1);
                }
            };
            pending.extend_from_slice(&chunk[..got]);
            let upto = if got == 0 {
                pending.len()
            } else {
                match memchr::memrchr(b'\n', &pending) {
                    Some(i) => i + 1,
                    None => continue,
                }
            };
            let data = bytes::Bytes::copy_from_slice(&pending[..upto]);
            pending.drain(..upto);
            bytes_total += data.len() as u64;
            let mut start = 0;
            while start < data.len() {
                let end = memchr::memchr(b'\n', &data[start..]).map_or(data.len(), |i| start + i);
                let mut line_end = end;
                if line_end > start && data[line_end - 1] == b'\r' {
                    line_end -= 1;
                }
                let line = data.slice(start..line_end);
                start = end + 1;
                m.push(line);
                if progress && m.lines.is_multiple_of(1 << 16) && last_progress.elapsed().as_millis() >= 250 {
                    last_progress = Instant::now();
                    shown_progress = true;
                    eprint!(
                        "\r{} lines, {} MB, {} templates, {:.0} s ",
                        m.lines,
                        bytes_total / 1_000_000,
                        m.miner.templates().len(),
                        started.elapsed().as_secs_f64()
                    );
                }
            }
            if got == 0 {
                break;
            }
        }
        m.decide();
    }
    let Lines { miner, shapes, lines, header_misses, headers, .. } = m;
    let secs = started.elapsed().as_secs_f64();
    if shown_progress {
        eprintln!();
    }
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(1 << 16, stdout.lock());
    let templates = miner.templates();
    let res = (|| -> std::io::Result<()> {
        if o.per_line {
            // One cached JSON object per template, then one copy per line.
            let mut cache: Vec<Option<Vec<u8>>> = Vec::new();
            for &s in &shapes {
                let t = miner.template_of_shape(s) as usize;
                if cache.len() <= t {
                    cache.resize(t + 1, None);
                }
                let j = cache[t].get_or_insert_with(|| {
                    let tpl = miner.template(t as u32);
                    let mut v = serde_json::to_vec(&serde_json::json!({ "template_id": tpl.id, "template": tpl.text }))
                        .unwrap();
                    v.push(b'\n');
                    v
                });
                out.write_all(j)?;
            }
        } else {
            for t in templates.iter().take(o.top) {
                writeln!(out, "{:>9}  {}", t.count, t.text)?;
                writeln!(out, "           e.g. {}", t.example)?;
            }
            if templates.len() > o.top {
                writeln!(out, "… and {} more templates (--top N shows more)", templates.len() - o.top)?;
            }
        }
        out.flush()
    })();
    if let Err(e) = res {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            eprintln!("sluice templates mine: {e}");
            return ExitCode::from(1);
        }
    }
    if let Some(path) = &o.toml {
        if let Err(e) = std::fs::write(path, to_toml(&templates, lines, &headers)) {
            eprintln!("sluice templates mine: {}: {e}", path.display());
            return ExitCode::from(1);
        }
    }
    eprintln!(
        "{lines} lines, {} templates ({} shapes), {:.2} s ({:.2} M lines/s){}",
        templates.len(),
        miner.shape_count(),
        secs,
        lines as f64 / secs.max(1e-9) / 1e6,
        if header_misses > 0 {
            format!("; {header_misses} lines did not fit the header format and were mined whole")
        } else {
            String::new()
        }
    );
    ExitCode::SUCCESS
}

/// Lines looked at to detect their header format: the first 1,000, or fewer when they
/// reach 4 MiB (huge lines wait in memory no longer than that before being mined).
const SAMPLE: usize = 1000;
const SAMPLE_BYTES: usize = 4 << 20;

/// What is done with each line's header.
enum Header {
    /// Not known yet: the first lines wait in `sample` while it is detected.
    Undecided,
    /// Lines are mined whole.
    Whole,
    /// Lines are mined after this format's header (whole when they do not fit it).
    Strip(Format),
}

/// The lines being mined, through the header format once it is known.
struct Lines {
    miner: Miner,
    header: Header,
    sample: Vec<bytes::Bytes>,
    sample_bytes: usize,
    /// The header formats the messages were mined after (given or detected), each once.
    headers: Vec<String>,
    /// The input being read (named when its header is detected).
    source: String,
    ctx: Context,
    parsed: Parsed,
    shapes: Vec<u32>,
    per_line: bool,
    lines: u64,
    header_misses: u64,
}

impl Lines {
    fn push(&mut self, line: bytes::Bytes) {
        self.lines += 1;
        match &self.header {
            Header::Undecided => {
                self.sample_bytes += line.len();
                self.sample.push(line);
                if self.sample.len() == SAMPLE || self.sample_bytes >= SAMPLE_BYTES {
                    self.decide();
                }
            }
            _ => self.mine(&line),
        }
    }

    /// Settle the format (from the sample, unless given) and mine the sampled lines.
    fn decide(&mut self) {
        if let Header::Undecided = self.header {
            self.header = Header::Whole;
            if let Some((name, n, f)) = detect(&self.sample, &self.ctx) {
                eprintln!(
                    "sluice templates mine: {}: {n} of the first {} lines have `{name}` headers: mining \
                     their messages (`--format none` mines whole lines)",
                    self.source,
                    self.sample.len()
                );
                if !self.headers.iter().any(|h| h == name) {
                    self.headers.push(name.to_string());
                }
                self.header = Header::Strip(f);
            }
        }
        for line in std::mem::take(&mut self.sample) {
            self.mine(&line);
        }
    }

    fn mine(&mut self, line: &bytes::Bytes) {
        let mined = match &self.header {
            Header::Strip(f) => {
                self.parsed.clear();
                let msg = ByteStr::from_utf8(line.clone())
                    .ok()
                    .and_then(|s| f.parse(&s, &self.ctx, &mut self.parsed).ok().and(self.parsed.message.take()));
                match msg {
                    Some(m) => self.miner.mine(m.as_bytes()),
                    None => {
                        self.header_misses += 1;
                        self.miner.mine(line)
                    }
                }
            }
            _ => self.miner.mine(line),
        };
        if self.per_line {
            self.shapes.push(mined.shape);
        }
    }
}

/// Header layouts of the common logging libraries' documented defaults and examples, in
/// the `parse` stage's format language, tried after the presets: log4j's
/// `%d %p [%t] %c: %m` and `%d %p %c: %m`, logback's `%d [%thread] %level %logger - %msg`,
/// Python's `%(asctime)s - %(name)s - %(levelname)s - %(message)s`. A line fits one only
/// with a level name where `{level}` is and a recognised timestamp where `{timestamp}`
/// is (a layout's placeholders alone would take any words).
const LAYOUTS: [&str; 4] = [
    "{timestamp} {level} [{thread}] {logger}: {message}",
    "{timestamp} {level} {logger}: {message}",
    "{timestamp} [{thread}] {level} {logger} - {message}",
    "{timestamp} - {logger} - {level} - {message}",
];

/// The preset or layout whose header at least 9 in 10 of the sampled lines (10 or more)
/// carry, and how many do, among the presets that leave a message (syslog, JSON or
/// logfmt with a message key, Go's `log`, klog) and `LAYOUTS`: mined whole, lines whose
/// headers differ (RFC 3164 and RFC 5424 syslog in one file) never share a template, and
/// header fields (thread names) can split one (raw Loghub Linux, Mac and Hadoop files:
/// 0.69, 0.25 and 0.73 whole, 0.94, 0.95 and 0.99 by message).
fn detect(sample: &[bytes::Bytes], ctx: &Context) -> Option<(&'static str, usize, Format)> {
    if sample.len() < 10 {
        return None;
    }
    let lines: Vec<ByteStr> = sample.iter().filter_map(|l| ByteStr::from_utf8(l.clone()).ok()).collect();
    let mut parsed = Parsed::default();
    let mut fits = |name: &str, f: &Format, s: &ByteStr| {
        parsed.clear();
        // A header was found: the message is a strict part of the line. The syslog
        // parser takes any timestamp and word as a header, so it must also have found
        // the program's name (`sshd[42]:`, RFC 5424's APP-NAME), which other formats'
        // lines do not have there.
        f.parse(s, ctx, &mut parsed).is_ok()
            && parsed.message.as_ref().is_some_and(|m| !m.as_str().is_empty() && m.as_str().len() < s.as_str().len())
            && (name != "syslog" || parsed.fields.get("appname").is_some())
            && (!name.contains("{level}") || parsed.level.is_some())
            && (!name.contains("{timestamp}") || parsed.timestamp.is_some())
    };
    let mut best: Option<(&'static str, usize, Format)> = None;
    for &name in sluice_parsers::PRESETS.iter().chain(&LAYOUTS) {
        let Ok(f) = Format::compile(name, None) else { continue };
        let n = lines.iter().filter(|s| fits(name, &f, s)).count();
        // The most lines; on a tie the first (layouts are listed most specific first).
        if best.as_ref().is_none_or(|&(_, b, _)| n > b) {
            best = Some((name, n, f));
        }
    }
    best.filter(|&(_, n, _)| n * 10 >= sample.len() * 9)
}

/// Lower-case letters of a word (`Payment` → `payment`), or None if it has none or
/// anything but letters and trailing punctuation.
fn word_name(w: &str) -> Option<String> {
    let w = w.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    (!w.is_empty() && w.chars().all(|c| c.is_ascii_alphabetic() || c == '_')).then(|| w.to_ascii_lowercase())
}

/// A readable event name from the template's words before its first variable (up to
/// five): `Payment failed for user <*>: …` → `payment_failed_for_user`.
pub fn event_name(t: &Template) -> String {
    let mut words: Vec<String> = Vec::new();
    for tok in &t.tokens {
        match tok {
            Tok::Lit(s) if !s.contains(VAR) => words.extend(word_name(s)),
            _ if !words.is_empty() => break,
            _ => {}
        }
        if words.len() == 5 {
            break;
        }
    }
    if words.is_empty() {
        "event".into()
    } else {
        words.join("_")
    }
}

const STOPWORDS: [&str; 22] = [
    "a", "an", "the", "for", "from", "to", "of", "in", "on", "at", "by", "with", "after", "before", "is", "was", "are",
    "and", "or", "as", "into", "via",
];

/// A placeholder name from the word before it, unless that is a stop word.
fn hint_of(prev: &Option<String>) -> Option<String> {
    prev.clone().filter(|w| !STOPWORDS.contains(&w.as_str()))
}

/// The template as a `parse` pattern: `<*>` become named placeholders (named after the
/// word before them, or `key` of `key=<*>`), braces are escaped.
pub fn pattern(t: &Template) -> String {
    let mut out = String::new();
    let mut used: Vec<String> = Vec::new();
    let name_for = |hint: Option<String>, used: &mut Vec<String>| {
        unique(hint.filter(|h| !h.is_empty()).unwrap_or_else(|| "value".into()), used)
    };
    let mut prev_word: Option<String> = None;
    for (i, tok) in t.tokens.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        match tok {
            Tok::Var => {
                let n = name_for(hint_of(&prev_word.take()), &mut used);
                out.push('{');
                out.push_str(&n);
                out.push('}');
            }
            Tok::Lit(s) => {
                let parts: Vec<&str> = s.split(VAR).collect();
                for (j, part) in parts.iter().enumerate() {
                    out.push_str(&part.replace('{', "{{").replace('}', "}}"));
                    if j + 1 < parts.len() {
                        // key=<*> → key; else the word before (`payment pay_<*>` →
                        // payment); else the token's own prefix (`blk_<*>` → blk).
                        let tail: String = part
                            .chars()
                            .rev()
                            .skip_while(|c| !c.is_ascii_alphabetic())
                            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                            .collect::<Vec<_>>()
                            .into_iter()
                            .rev()
                            .collect();
                        let hint = if part.ends_with('=') { word_name(&tail) } else { None }
                            .or_else(|| hint_of(&prev_word))
                            .or_else(|| word_name(&tail));
                        let n = name_for(hint, &mut used);
                        out.push('{');
                        out.push_str(&n);
                        out.push('}');
                    }
                }
                prev_word = if s.contains(VAR) { None } else { word_name(s) };
            }
        }
    }
    out
}

/// `base`, or `base_2`, `base_3`, … if taken; recorded in `used`.
fn unique(base: String, used: &mut Vec<String>) -> String {
    let mut n = base.clone();
    let mut k = 2;
    while used.contains(&n) {
        n = format!("{base}_{k}");
        k += 1;
    }
    used.push(n.clone());
    n
}

fn to_toml(templates: &[&Template], lines: u64, headers: &[String]) -> String {
    let mut s = format!(
        "# Templates mined by `sluice templates mine` from {lines} lines, most frequent first.\n# Rename events and placeholders as you like, then load with `templates_file`.\n"
    );
    for h in headers {
        let q = toml::Value::String(h.to_string()).to_string();
        s.push_str(&format!("# They match the messages after this header, for the `parse` stage: format = {q}\n"));
    }
    let mut names: Vec<String> = Vec::new();
    for t in templates {
        let n = unique(event_name(t), &mut names);
        let q = |x: &str| toml::Value::String(x.to_string()).to_string();
        s.push_str(&format!(
            "\n[[templates]]\nevent = {}\npattern = {}\n# {} lines, e.g. {}\n",
            q(&n),
            q(&pattern(t)),
            t.count,
            t.example.replace('\n', " ")
        ));
    }
    s
}
