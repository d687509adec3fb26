use super::*;

fn mine_all(lines: &[&str]) -> (Miner, Vec<Mined>) {
    let mut m = Miner::new(MinerConfig::default());
    let r = lines.iter().map(|l| m.mine(l.as_bytes())).collect();
    (m, r)
}

fn text(m: &Miner, r: Mined) -> String {
    m.template(m.template_of_shape(r.shape)).text.clone()
}

#[test]
fn token_end_finds_every_kind_of_whitespace() {
    for ws in [" ", "\t", "\n", "\r", "\x0c"] {
        for k in 0..20 {
            let m = format!("{}{ws}tail \u{e9}x", "\u{e9}a".repeat(k));
            let want = m.find(ws).unwrap();
            assert_eq!(token_scan(m.as_bytes(), 0).0, want, "{m:?}");
        }
    }
    assert_eq!(token_scan(b"abcdefghijklmnop", 3).0, 16);
    // Flags agree with a byte-by-byte scan, wherever the token starts and ends.
    let text = "ab1 \u{e9}x. a@b=c:d 0123456789abcdef/ \u{ff}9 zz.yy:9 q=\u{100}";
    let b = text.as_bytes();
    for start in 0..b.len() {
        let (end, flags) = token_scan(b, start);
        let mut want = 0u8;
        let mut e = start;
        while e < b.len() && !b[e].is_ascii_whitespace() {
            want |= CLASS[b[e] as usize] & (C_DIGIT | C_DOT | C_AT | C_EQ | C_COLON);
            e += 1;
        }
        assert_eq!((end, flags), (e, want), "from {start}");
    }
}

#[test]
fn masks_typed_variables() {
    let (m, r) = mine_all(&[
        "Payment failed for user 42: Card declined",
        "PacketResponder 1 for block blk_-6952295868487656571 terminating",
        "addStoredBlock: 10.251.73.220:50010 is added to blk_7128370237687728475 size 67108864",
        "request 3fa85f64-5717-4562-b3fc-2c963f66afa6 took 1.5s from /var/lib/x/y.db for a@b.com",
        "order ORD-00042 shipped via https://x.example/track?id=1 status=ok",
        "Component \"x1234\" is in the unavailable state (HWID=3180)",
        "connection from 1.2.3.4 () at Sun Jul 10 03:55:15 2005",
        "peer fe80::abcd joined via [2001:db8::ff]:443 and ::",
    ]);
    assert_eq!(text(&m, r[0]), "Payment failed for user <*>: Card declined");
    assert_eq!(text(&m, r[1]), "PacketResponder <*> for block blk_<*> terminating");
    assert_eq!(text(&m, r[2]), "addStoredBlock: <*> is added to blk_<*> size <*>");
    assert_eq!(text(&m, r[3]), "request <*> took <*> from <*> for <*>");
    assert_eq!(text(&m, r[4]), "order ORD-<*> shipped via <*> status=ok");
    assert_eq!(text(&m, r[5]), "Component <*> is in the unavailable state (HWID=<*>)");
    assert_eq!(text(&m, r[6]), "connection from <*> (<*>) at <*>");
    assert_eq!(text(&m, r[7]), "peer <*> joined via <*> and ::");
}

#[test]
fn words_with_few_values_stay_apart_many_merge() {
    let mut lines = vec!["session opened for user root", "session closed for user root"];
    let users = ["alice", "bob", "carol", "dave", "erin"];
    let owned: Vec<String> = users.iter().map(|u| format!("Invalid user {u} from host")).collect();
    lines.extend(owned.iter().map(String::as_str));
    let (m, r) = mine_all(&lines);
    assert_ne!(
        m.template_of_shape(r[0].shape),
        m.template_of_shape(r[1].shape),
        "opened/closed are different messages"
    );
    let t = m.template_of_shape(r[2].shape);
    assert!(r[2..].iter().all(|x| m.template_of_shape(x.shape) == t), "user names merge");
    assert_eq!(m.template(t).text, "Invalid user <*> from host");
    assert_eq!(m.template(t).aliases.len(), 4, "the merged templates' ids are kept as aliases");
    assert_eq!(
        m.resolve(&m.template(m.template_of_shape(r[2].shape)).aliases[0]).unwrap().text,
        "Invalid user <*> from host"
    );
}

#[test]
fn a_variable_spanning_more_tokens_does_not_split() {
    let (m, r) = mine_all(&[
        "took 5 ms total",
        "took 5 10 15 ms total",
        "user alice logged in",
        "user bob logged in",
        "user carol logged in",
        "user dave logged in",
        "user John Smith logged in",
    ]);
    assert_eq!(m.template_of_shape(r[0].shape), m.template_of_shape(r[1].shape));
    assert_eq!(
        m.template_of_shape(r[2].shape),
        m.template_of_shape(r[6].shape),
        "a two-word name fits the learned <*>"
    );
    assert_eq!(text(&m, r[6]), "user <*> logged in");
}

#[test]
fn matching_long_lines_against_many_variables_is_fast() {
    // 60 variables against 400 words that do not fit: exponential without memos.
    let tt: Vec<Tok> = (0..60).flat_map(|_| [Tok::Var, Tok::Lit("x".into())]).collect();
    let words: Vec<&[u8]> =
        (0..400).map(|i| if i % 3 == 0 { &b"x"[..] } else { &b"y"[..] }).chain([&b"z"[..]]).collect();
    let started = std::time::Instant::now();
    let mut out = Vec::new();
    let mut failed = vec![false; (tt.len() + 1) * (words.len() + 1)];
    assert!(!align(&tt, &words, 0, 0, &mut out, &mut failed));
    let toks: Vec<Tok> = words.iter().map(|w| Tok::Lit(String::from_utf8_lossy(w).into())).collect();
    assert!(!fits_with_spans(&tt, &toks));
    assert!(started.elapsed() < std::time::Duration::from_secs(5), "{:?}", started.elapsed());
}

#[test]
fn user_masks_make_variables() {
    let mut m = Miner::new(MinerConfig {
        masks: vec![regex::Regex::new(r"\bcolor-[a-z]+").unwrap()],
        ..MinerConfig::default()
    });
    let a = m.mine(b"paint the wall color-red now");
    let b = m.mine(b"paint the wall color-blue now");
    assert_eq!(m.template_of_shape(a.shape), m.template_of_shape(b.shape));
    assert_eq!(m.template(m.template_of_shape(a.shape)).text, "paint the wall <*> now");
}

#[test]
fn params_in_order_and_stable_ids() {
    let (mut m, r) = mine_all(&["Payment failed for user 42: Card declined"]);
    let t = m.template_of_shape(r[0].shape);
    assert_eq!(m.params(b"Payment failed for user 42: Card declined", t), ["42"]);
    let (m2, r2) = mine_all(&["Payment failed for user 7: Card declined"]);
    assert_eq!(
        m.template(t).id,
        m2.template(m2.template_of_shape(r2[0].shape)).id,
        "same text, same id in any process"
    );
    let (mut m3, r3) = mine_all(&["copied 10.0.0.1:80 blk_-5 in 3 ms"]);
    let t3 = m3.template_of_shape(r3[0].shape);
    assert_eq!(
        m3.params(b"copied 10.0.0.1:80 blk_-5 in 3 ms", t3),
        ["10.0.0.1:80", "-5", "3 ms"],
        "a unit goes with its number"
    );
}

#[test]
fn bounded_memory_evicts_least_recently_seen() {
    let letters = |mut i: usize| {
        let mut s = String::new();
        loop {
            s.push(char::from(b'a' + (i % 26) as u8));
            i /= 26;
            if i == 0 {
                return s;
            }
        }
    };
    let mut m = Miner::new(MinerConfig { max_templates: 50, ..MinerConfig::default() });
    for i in 0..500 {
        let w = letters(i);
        m.mine(format!("{w} {w}x end").as_bytes());
        m.mine(b"kept alive message");
    }
    let live = m.templates();
    assert!(live.len() <= 51, "{} templates", live.len());
    assert!(live.iter().any(|t| t.text == "kept alive message"), "the recently seen template stays");
    assert!(!live.iter().any(|t| t.text == "a ax end"), "the oldest is forgotten");

    // The places where fields were seen are forgotten with their templates: messages that
    // never merge (two words differ at once), each with a `[t-<*>]` field.
    let mut m = Miner::new(MinerConfig { max_templates: 50, ..MinerConfig::default() });
    for i in 0..2000 {
        let w = letters(i);
        m.mine(format!("task {w} started {w}x in [t-{i}] with more words").as_bytes());
    }
    let places: usize = m.contexts.values().map(|c| c.members.len()).sum();
    assert!(places <= 2 * 51, "{places} field places kept for {} templates", m.templates().len());
}

/// `key=value` words that merge keep their key even when a variable follows: the merge
/// folded a new <*> into a neighbouring one with `a && b || c`, so a literal `user=<*>`
/// next to a <*> was removed (`login <*> ok`).
#[test]
fn a_key_value_merge_keeps_its_key_beside_a_variable() {
    let owned: Vec<String> = ["alice", "bob", "carol", "dave", "erin"]
        .iter()
        .enumerate()
        .map(|(i, u)| format!("accepted login for user={u} {} times today", 17 + i * 7))
        .collect();
    let lines: Vec<&str> = owned.iter().map(String::as_str).collect();
    let (m, r) = mine_all(&lines);
    // The four lines that merged: the key stays (it was lost before: `for <*> times`).
    for x in &r[..4] {
        assert_eq!(text(&m, *x), "accepted login for user=<*> <*> times today");
    }
    // (A later line is not yet matched by a `key=<*>` word: issue #17, class 1.)
}

/// A parameter does not carry the brackets or punctuation around it: the template
/// keeps them, balanced as in its lines (#17, class 2).
#[test]
fn brackets_around_a_variable_stay_in_the_template() {
    let (m, r) = mine_all(&[
        "Bounds(1, 2 - 1080, 1920) done",
        "Bounds(3, 4 - 720, 1280) done",
        "Retrying charge (attempt 2 of 3) reason=declined",
        "Retrying charge (attempt 3 of 5) reason=declined",
        "queue sizes [12] [7]",
        "queue sizes [3] [41]",
    ]);
    let t: Vec<String> = r.into_iter().map(|x| text(&m, x)).collect();
    assert_eq!(t[1], "Bounds(<*>, <*> - <*>, <*>) done");
    assert_eq!(t[3], "Retrying charge (attempt <*> of <*>) reason=declined");
    assert_eq!(t[5], "queue sizes [<*>] [<*>]");
}

/// `../shared/loghub` beside the repository (CI has it; on a user's machine the test
/// skips with a message, and fails when SLUICE_REQUIRE_TOOLS is set).
fn loghub_dir() -> Option<std::path::PathBuf> {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/loghub");
    if p.join("HDFS/HDFS_2k.log_structured.csv").exists() {
        return Some(p);
    }
    assert!(
        std::env::var_os("SLUICE_REQUIRE_TOOLS").is_none(),
        "../shared/loghub is required: SLUICE_REQUIRE_TOOLS is set"
    );
    eprintln!("SKIP: ../shared/loghub is absent");
    None
}

/// The `Content` column of a Loghub structured CSV (quoted fields, `""` escapes).
fn loghub_contents(dir: &std::path::Path, set: &str) -> Vec<String> {
    let text = std::fs::read_to_string(dir.join(format!("{set}/{set}_2k.log_structured.csv"))).unwrap();
    let mut rows: Vec<Vec<String>> = Vec::new();
    let (mut row, mut field, mut quoted) = (Vec::new(), String::new(), false);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            ('"', _) => quoted = !quoted,
            (',', false) => row.push(std::mem::take(&mut field)),
            ('\n', false) => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            ('\r', false) => {}
            (c, _) => field.push(c),
        }
    }
    let content = rows[0].iter().position(|h| h == "Content").unwrap();
    rows[1..].iter().map(|r| r[content].clone()).collect()
}

/// Mine `lines` with the defaults and check the two properties: each line is its final
/// template with its parameters put back, and a template's brackets balance whenever
/// all of its lines' do. Returns the failures and the number of templates.
fn check_properties(name: &str, lines: &[String]) -> (Vec<String>, usize) {
    check_properties_with(MinerConfig::default(), name, lines)
}

fn check_properties_with(cfg: MinerConfig, name: &str, lines: &[String]) -> (Vec<String>, usize) {
    let mut failures = Vec::new();
    let mut m = Miner::new(cfg);
    let mined: Vec<Mined> = lines.iter().map(|l| m.mine(l.as_bytes())).collect();
    let mut lines_balance: std::collections::HashMap<u32, bool> = std::collections::HashMap::new();
    for (line, r) in lines.iter().zip(&mined) {
        let t = m.template_of_shape(r.shape);
        let text = m.template(t).text.clone();
        let params = m.params(line.as_bytes(), t);
        let words: Vec<&str> = line.split_ascii_whitespace().collect();
        let mut rebuilt = String::new();
        let mut params = params.iter();
        for (i, part) in text.split(VAR).enumerate() {
            if i > 0 {
                rebuilt.push_str(params.next().map_or("\u{0}missing\u{0}", |s| s.as_str()));
            }
            rebuilt.push_str(part);
        }
        if rebuilt != words.join(" ") || params.next().is_some() {
            failures.push(format!("{name}: `{line}` is not `{text}` with its params: `{rebuilt}`"));
        }
        *lines_balance.entry(t).or_insert(true) &= brackets_balance(line);
    }
    let templates = lines_balance.len();
    for (t, balanced) in lines_balance {
        let text = &m.template(t).text;
        if balanced && !brackets_balance(text) {
            failures.push(format!("{name}: `{text}` lost a bracket its lines balance"));
        }
    }
    (failures, templates)
}

/// Over the eight shared Loghub sets: each line is its final template with its
/// parameters put back (the template keeps every literal character), and a template's
/// brackets balance whenever all of its lines' do (a parameter never carries the
/// brackets around it).
#[test]
fn every_line_is_its_template_with_its_params_and_brackets_stay_in_templates() {
    let Some(dir) = loghub_dir() else { return };
    let mut failures = Vec::new();
    let mut templates_checked = 0;
    for set in ["HDFS", "Hadoop", "Spark", "BGL", "HPC", "Linux", "Mac", "OpenStack"] {
        let (f, n) = check_properties(set, &loghub_contents(&dir, set));
        failures.extend(f);
        templates_checked += n;
    }
    eprintln!("{templates_checked} templates, {} failures", failures.len());
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
}

/// The same two properties over the shared corpus generator's seven services (2 MB,
/// whole lines with their headers, stack traces included), one miner per service.
#[test]
fn corpus_lines_are_their_templates_with_their_params() {
    let Some(dir) = loghub_dir() else { return };
    let script = dir.join("../corpus/gen_legacy_logs.py");
    let out = std::env::temp_dir().join(format!("sluice-mining-corpus-{}", std::process::id()));
    let status = std::process::Command::new("python3")
        .arg(&script)
        .args(["--seed", "3", "--bytes", "2M", "--out"])
        .arg(&out)
        .arg("--truth")
        .arg(out.join("truth"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("python3 runs the corpus generator");
    assert!(status.success());
    let mut failures = Vec::new();
    let mut templates = 0;
    let mut accuracy = Vec::new();
    for service in ["payments", "orders", "gateway", "access", "auth", "cart", "search"] {
        let text = std::fs::read_to_string(out.join(format!("{service}.log"))).unwrap();
        let lines: Vec<String> = text.lines().map(str::to_string).collect();
        assert!(lines.len() > 50, "{service}: {} lines", lines.len());
        let (f, n) = check_properties(service, &lines);
        failures.extend(f);
        templates += n;
        // Grouping accuracy against the generator's events (first line of each record).
        let truth = std::fs::read_to_string(out.join(format!("truth/{service}.ndjson"))).unwrap();
        let field = |rec: &str, key: &str| -> String {
            let at = rec.find(&format!("\"{key}\":")).expect(key) + key.len() + 3;
            rec[at..].split(['"', ',', '}']).find(|s| !s.is_empty()).unwrap().to_string()
        };
        let (mut first, mut events) = (Vec::new(), Vec::new());
        for rec in truth.lines() {
            first.push(lines[field(rec, "line").parse::<usize>().unwrap() - 1].clone());
            events.push(field(rec, "event"));
        }
        let mut m = Miner::new(MinerConfig::default());
        let shapes: Vec<u32> = first.iter().map(|l| m.mine(l.as_bytes()).shape).collect();
        let pred: Vec<u32> = shapes.iter().map(|&s| m.template_of_shape(s)).collect();
        let ga = grouping_accuracy(&pred, &events);
        eprintln!("corpus {service}: grouping accuracy {ga:.3}");
        accuracy.push((service, ga));
    }
    let _ = std::fs::remove_dir_all(&out);
    eprintln!("corpus: {templates} templates, {} failures", failures.len());
    // Whole lines of unknown format, settings never chosen on this data: the field,
    // quoted-phrase and prefix rules brought it from 0.41 to 0.84 (auth has two syslog
    // header formats and stays at 0; the others are at 0.89 or more).
    let avg = accuracy.iter().map(|(_, a)| a).sum::<f64>() / accuracy.len() as f64;
    assert!(avg >= 0.80, "corpus grouping accuracy {avg:.3}: {accuracy:?}");
    for (service, ga) in &accuracy {
        assert!(*service == "auth" || *ga >= 0.85, "{service}: {ga:.3}");
    }
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
}

/// A template without a word of its own (`<*>`, from a line that is one number) is not
/// a catch-all: short messages whose words differ keep their own templates.
#[test]
fn short_messages_do_not_fall_into_an_all_variable_template() {
    let (m, r) = mine_all(&[
        "1234567",
        "deleting /tmp/a",
        "done",
        "flushQueue -- 42",
        "deleting /tmp/b",
        "flushQueue -- 43",
        "done",
        "0xdeadbeef",
        "started",
        "stopping now",
    ]);
    let got: Vec<String> = r.iter().map(|x| text(&m, *x)).collect();
    assert_eq!(
        got,
        [
            "<*>",
            "deleting <*>",
            "done",
            "flushQueue -- <*>",
            "deleting <*>",
            "flushQueue -- <*>",
            "done",
            "<*>",
            "started",
            "stopping now"
        ]
    );
}

/// A word that is partly a value already (a host name and port, a dotted method and a
/// line number, an id with parts) generalises without the context short messages need:
/// one template, not one per prefix. A capitalised one needs eight values, like states.
#[test]
fn words_that_are_partly_values_generalise_in_short_messages() {
    let mut lines = Vec::new();
    for (i, w) in ["release", "acquire", "borrow", "evict", "close", "open"].iter().enumerate() {
        lines.push(format!("pool call org.acme.net.Pool.{w}:{} took 3 ms", 400 + i));
    }
    for (i, h) in [
        "db-primary.internal",
        "db-primary.internal",
        "db-replica.internal",
        "cache.internal",
        "db-primary.internal",
        "queue.internal",
    ]
    .iter()
    .enumerate()
    {
        lines.push(format!("connected to {h}:{}", 5432 + i));
    }
    for (i, a) in ["abc", "def", "ghi", "jkl", "mno", "pqr", "stu", "vwx"].iter().enumerate() {
        lines.push(format!("Installing Bundle_for_KB{}~{a}~x86~~1.0.{i} now", 1234560 + i));
    }
    let refs: Vec<&str> = lines.iter().map(|s| s.as_str()).collect();
    let (m, r) = mine_all(&refs);
    let mut got: Vec<String> = r.iter().map(|x| text(&m, *x)).collect();
    got.dedup();
    // The prefix every line shares stays literal; the hosts share none.
    assert_eq!(got, ["pool call org.acme.net.Pool.<*> took <*>", "connected to <*>", "Installing Bundle_for_<*> now"]);
}

/// The property failures on a saved fuzz input: its UTF-8 lines without `<*>` in them,
/// mined with the fuzz target's quick merges (`min_distinct = 2`).
fn fuzz_input_failures(data: &[u8]) -> Vec<String> {
    let lines: Vec<String> = data
        .split(|&b| b == b'\n')
        .filter_map(|l| std::str::from_utf8(l).ok())
        .filter(|l| !l.contains(VAR))
        .map(str::to_string)
        .collect();
    check_properties_with(MinerConfig { min_distinct: 2, ..MinerConfig::default() }, "fuzz", &lines).0
}

/// A fuzz finding: after quick merges a template whose root had changed shape (a token
/// folded away by another merge) was merged with a family it no longer fitted, and a
/// line ended in a template it does not fit (no parameters). Every line of the input
/// now fits its template.
#[test]
fn merges_keep_only_members_that_fit() {
    let data = include_bytes!("../../../fuzz/regressions/mining-params-1");
    let failures = fuzz_input_failures(data);
    assert!(failures.iter().all(|f| f.contains("lost a bracket")), "{failures:?}");
}

/// A fuzz finding: an opening bracket at the end of an all-variable token (`01:23:02.14[`)
/// went into the variable, and the template kept only its `]`.
#[test]
fn an_opening_bracket_after_a_value_stays_in_the_template() {
    let data = include_bytes!("../../../fuzz/regressions/mining-bracket-2");
    let failures = fuzz_input_failures(data);
    assert!(failures.is_empty(), "{failures:?}");
    let (m, r) = mine_all(&["at 01:23:02.14[ worker-1] done"]);
    assert_eq!(text(&m, r[0]), "at <*>[ worker-<*>] done");
}

#[test]
fn a_rule_switched_off_no_longer_applies() {
    let text_with = |off: u32, lines: &[&str]| {
        let mut m = Miner::new(MinerConfig { rules_off: off, ..MinerConfig::default() });
        let r: Vec<Mined> = lines.iter().map(|l| m.mine(l.as_bytes())).collect();
        text(&m, *r.last().unwrap())
    };
    let sizes = ["flushed block of 512 KB to disk", "flushed block of 12 MB to disk"];
    assert_eq!(text_with(0, &sizes[..1]), "flushed block of <*> to disk");
    assert_eq!(text_with(rule::UNITS, &sizes[..1]), "flushed block of <*> KB to disk");
    let day = ["cron started on Tue at boot time"];
    assert_eq!(text_with(0, &day), "cron started on <*> at boot time");
    assert_eq!(text_with(rule::DATE_WORDS, &day), "cron started on Tue at boot time");
    // Four capitalised states merge only with the rule off (it asks for eight).
    let states = [
        "job 1 state is Running now",
        "job 2 state is Paused now",
        "job 3 state is Stopped now",
        "job 4 state is Failed now",
    ];
    assert_eq!(text_with(0, &states), "job <*> state is Failed now");
    assert_eq!(text_with(rule::CAPITALISED, &states), "job <*> state is <*> now");
}

/// A fuzz finding: a value followed by brackets the framing keeps only partly (`0[-]`:
/// the `]` frames the token, the `[` went into the variable); such a token keeps its
/// pieces.
#[test]
fn a_bracket_left_inside_a_framed_value_keeps_the_token_as_pieces() {
    let data = include_bytes!("../../../fuzz/regressions/mining-bracket-5");
    let failures = fuzz_input_failures(data);
    assert!(failures.is_empty(), "{failures:?}");
    let (m, r) = mine_all(&["INFO [payments.health] 3 0[-] h.e"]);
    assert_eq!(text(&m, r[0]), "INFO [payments.health] <*> <*>[-] h.e");
}

/// A field with few values (three thread pools) that varies in several messages at the
/// same place is a variable; before, each pool split every message. Plain words that vary
/// the same way (`opened`/`closed`) keep the usual count.
#[test]
fn a_field_varying_in_several_messages_is_a_variable() {
    let mut lines = Vec::new();
    for (i, pool) in ["scheduler-1", "kafka-producer-2", "http-nio-8080-exec-3"].iter().enumerate() {
        lines.push(format!(
            "01:00:0{i} [{pool}] [traceId=4bf{i}2a] INFO OrderService - Order ORD-{i} created for user {i}"
        ));
        lines.push(format!(
            "01:00:0{i} [{pool}] [traceId=9c{i}e1d] INFO OrderService - Order ORD-{i} submitted in {i}ms"
        ));
    }
    let refs: Vec<&str> = lines.iter().map(|s| s.as_str()).collect();
    let texts = |off: u32| {
        let mut m = Miner::new(MinerConfig { rules_off: off, ..MinerConfig::default() });
        let r: Vec<Mined> = refs.iter().map(|l| m.mine(l.as_bytes())).collect();
        let mut t: Vec<String> = r.iter().map(|x| text(&m, *x)).collect();
        t.sort();
        t.dedup();
        t
    };
    assert_eq!(
        texts(0),
        [
            "<*> [<*>] [traceId=<*>] INFO OrderService - Order ORD-<*> created for user <*>",
            "<*> [<*>] [traceId=<*>] INFO OrderService - Order ORD-<*> submitted in <*>",
        ]
    );
    assert_eq!(texts(rule::RECURRING).len(), 6);
    let (m, r) = mine_all(&[
        "the session was opened for user 1 now",
        "the session was closed for user 2 now",
        "the channel was opened for user 3 now",
        "the channel was closed for user 4 now",
    ]);
    let mut got: Vec<String> = r.iter().map(|x| text(&m, *x)).collect();
    got.dedup();
    assert_eq!(got.len(), 4, "{got:?}");
}

/// Quoted phrases of different lengths between the same words are one value whose `<*>`
/// takes several words (`query="<*>"`, a user agent `"<*>"`); a phrase never runs past
/// its closing quote, and the parameters give each line back.
#[test]
fn quoted_phrases_of_any_length_are_one_value() {
    let queries = ["desk lamp", "usb-c cable", "red shoes", "winter jacket for kids", "lamp", "coffee grinder"];
    let mut lines: Vec<String> = queries
        .iter()
        .enumerate()
        .map(|(i, q)| format!("level=info msg=\"query served\" index=products query=\"{q}\" took={i}ms"))
        .collect();
    lines.push("level=info msg=\"query served\" index=products query=\"a b c d e f g h i j k\" took=9ms".into());
    let refs: Vec<&str> = lines.iter().map(|s| s.as_str()).collect();
    let (mut m, r) = mine_all(&refs);
    let mut got: Vec<String> = r.iter().map(|x| text(&m, *x)).collect();
    got.dedup();
    assert_eq!(got.last().unwrap(), "level=info msg=\"query served\" index=products query=\"<*>\" took=<*>");
    let t = m.template_of_shape(r[0].shape);
    assert_eq!(m.params(lines[3].as_bytes(), t), ["winter jacket for kids", "3ms"]);
    assert!(check_properties("phrases", &lines).0.is_empty());
    // The referrer and the user agent are two phrases, not one.
    let ua = [
        "Mozilla/5.0 (X11; Linux x86_64) Chrome/120",
        "curl/8.5.0",
        "okhttp/4.12.0",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) Mobile/15E148",
        "python-requests/2.31",
    ];
    let lines: Vec<String> =
        ua.iter().map(|u| format!("request GET /api/orders answered 200 \"-\" \"{u}\" 0.5")).collect();
    let refs: Vec<&str> = lines.iter().map(|s| s.as_str()).collect();
    let (m, r) = mine_all(&refs);
    assert_eq!(text(&m, r[4]), "request GET <*> answered <*> \"-\" \"<*>\" <*>");
    assert!(check_properties("agents", &lines).0.is_empty());
}

/// A fuzz finding: words sharing the first bytes of different multi-byte characters
/// (raw, not UTF-8, lines are mined too) made the framing cut inside a character, a
/// panic. Every raw line of the input is mined as the fuzz target mines it.
#[test]
fn framing_never_cuts_inside_a_character() {
    let data = include_bytes!("../../../fuzz/regressions/mining-utf8-10");
    for cfg in [
        MinerConfig { max_templates: 8, min_distinct: 2, ..MinerConfig::default() },
        MinerConfig { min_distinct: 2, ..MinerConfig::default() },
    ] {
        let mut m = Miner::new(cfg);
        for line in data.split(|&b| b == b'\n') {
            let r = m.mine(line);
            let _ = m.params(line, r.template);
        }
    }
    assert!(fuzz_input_failures(data).is_empty());
}

/// A fuzz finding: a `<*>` took a token ending in an unpaired bracket (`+0000]` of a line
/// glued to another), as one of several tokens it spans and when a wider template absorbed
/// one with `<*>]`, and the template lost the `]`. A variable takes brackets and double
/// quotes only in pairs.
#[test]
fn a_variable_takes_brackets_only_in_pairs() {
    let data = include_bytes!("../../../fuzz/regressions/mining-bracket-12");
    assert!(fuzz_input_failures(data).is_empty());
    let (m, r) = mine_all(&["took 3 ms (pool main] at 01:02", "took 4 ms (pool main] at 01:03"]);
    assert!(text(&m, r[1]).contains(']'), "{}", text(&m, r[1]));
}

#[test]
fn windows_paths_are_values_like_unix_ones() {
    let (m, r) = mine_all(&[
        r"Loaded Servicing Stack v6.1.7601.23505 with Core: C:\Windows\winsxs\amd64_stack_6.1.7601.23505_none_681aa\cbscore.dll",
        r"opened share \\fileserver\builds\nightly for reading",
    ]);
    assert_eq!(text(&m, r[0]), "Loaded Servicing Stack <*> with Core: <*>");
    assert_eq!(text(&m, r[1]), "opened share <*> for reading");
}

/// Fuzz findings whose inputs now keep both properties (each line is its template with
/// its parameters; no template loses a bracket its lines balance).
#[test]
fn fuzz_findings_keep_the_properties() {
    let findings: [(&str, &[u8]); 7] = [
        // Words whose closing bracket sits in different places (`…}` and `…"}<*>`) merged
        // into a variable that took the `}`; no framing keeps it, so they are not merged.
        ("mining-bracket-3", include_bytes!("../../../fuzz/regressions/mining-bracket-3")),
        // A closing bracket after punctuation before a value (`:]2218Failed`) went into
        // the variable.
        ("mining-bracket-4", include_bytes!("../../../fuzz/regressions/mining-bracket-4")),
        // A URL glued to a JSON object (`http://{"time":…`) was one whole-token variable
        // and took the `{`: a path, URL or address whose brackets do not balance is
        // masked by its parts.
        ("mining-bracket-6", include_bytes!("../../../fuzz/regressions/mining-bracket-6")),
        // A pattern's literal NUL bytes matched a shape token's own `<*>` (which the fit
        // check marked with a NUL): the mark is now a byte no UTF-8 text holds.
        ("mining-nul-7", include_bytes!("../../../fuzz/regressions/mining-nul-7")),
        // A quoted phrase (`"<*>"`, several words) was merged into a one-word pattern
        // (`<*>"`): a phrase is covered only by a token that takes several words.
        ("mining-phrase-8", include_bytes!("../../../fuzz/regressions/mining-phrase-8")),
        // A field whose words no framing balances (`[traceId=<*>]`, `[traceId=<*>`)
        // became a bare `<*>` that took the bracket.
        ("mining-field-9", include_bytes!("../../../fuzz/regressions/mining-field-9")),
        // `grin` and `grinder"` merged into a `<*>` that took the closing quote, and a
        // quoted phrase then covered a template whose lines close it elsewhere: a
        // variable takes double quotes only in pairs.
        ("mining-phrase-11", include_bytes!("../../../fuzz/regressions/mining-phrase-11")),
    ];
    for (name, data) in findings {
        let failures = fuzz_input_failures(data);
        assert!(failures.is_empty(), "{name}: {failures:?}");
    }
}
