//! The syslog source with real senders: util-linux `logger` (RFC 3164 and 5424, UDP and
//! TCP, octet counting), syslog-ng's `loggen` (load, no loss over TCP, TLS) and
//! `openssl s_client` (client certificates). Without the tools the tests skip with a
//! message, unless SLUICE_REQUIRE_TOOLS is set (CI sets it).

use crate::harness::*;
use std::collections::HashSet;
use std::io::Write;
use std::net::{TcpStream, UdpSocket};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

fn config(dir: &Path, api: u16, sources: &str) -> String {
    format!(
        "{}{sources}\n[sinks.f]\ntype = \"file\"\ninputs = [\"s\"]\npath = \"{}/out/syslog.ndjson\"\n",
        header(dir, Some(api)),
        dir.display()
    )
}

fn wait_ready(api: u16, s: &Sluice) {
    let ok =
        wait_until(Duration::from_secs(20), || http_get(api, "/health/ready", None).is_some_and(|(c, _)| c == 200));
    assert!(ok, "sluice did not become ready; stderr:\n{}", s.stderr());
}

fn events(dir: &Path) -> Vec<serde_json::Value> {
    read_events(&dir.join("out"))
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn logger_rfc3164_and_rfc5424_over_udp_and_tcp() {
    let Some(logger) = tool("logger", "bsdutils") else { return };
    let dir = tempfile::tempdir().unwrap();
    let (api, udp, tcp) = (free_port(), free_port(), free_port());
    let cfg = config(
        dir.path(),
        api,
        &format!(
            "[sources.s]\ntype = \"syslog\"\nmode = \"udp\"\naddress = \"127.0.0.1:{udp}\"\n\
             [sources.t]\ntype = \"syslog\"\nmode = \"tcp\"\naddress = \"127.0.0.1:{tcp}\"\n"
        ),
    )
    .replace("inputs = [\"s\"]", "inputs = [\"s\", \"t\"]");
    let mut s = Sluice::start(dir.path(), &cfg);
    wait_ready(api, &s);
    let port = |p: u16| p.to_string();
    run(Command::new(&logger).args(["--server", "127.0.0.1", "--port", &port(udp), "--udp", "--rfc3164"]).args([
        "-t",
        "billing",
        "-p",
        "local3.err",
        "Payment failed for user 42: Card declined",
    ]));
    run(Command::new(&logger).args(["--server", "127.0.0.1", "--port", &port(udp), "--udp", "--rfc5424"]).args([
        "--msgid",
        "ORD7",
        "--sd-id",
        "order@32473",
        "--sd-param",
        "id=\"A-17\"",
        "-t",
        "orders",
        "-p",
        "user.warning",
        "order submitted",
    ]));
    run(Command::new(&logger)
        .args(["--server", "127.0.0.1", "--port", &port(tcp), "--tcp", "--octet-count", "--rfc5424"])
        .args(["-t", "gw", "-p", "daemon.info", "counted over tcp"]));
    run(Command::new(&logger).args(["--server", "127.0.0.1", "--port", &port(tcp), "--tcp", "--rfc3164"]).args([
        "-t",
        "gw",
        "-p",
        "daemon.notice",
        "newline over tcp",
    ]));
    assert!(wait_until(Duration::from_secs(10), || events(dir.path()).len() >= 4), "{}", s.stderr());
    assert_eq!(s.terminate(Duration::from_secs(20)), 0);
    let ev = events(dir.path());
    let by_msg = |m: &str| ev.iter().find(|e| e["message"] == m).unwrap_or_else(|| panic!("no `{m}` in {ev:#?}"));

    let a = by_msg("Payment failed for user 42: Card declined");
    assert_eq!(
        (a["appname"].as_str(), a["facility"].as_str(), a["level"].as_str()),
        (Some("billing"), Some("local3"), Some("error"))
    );
    assert_eq!(a["peer"], "127.0.0.1");
    assert!(a["host"].as_str().is_some_and(|h| !h.is_empty()), "{a}");
    assert_eq!(a["source"], "s");
    let b = by_msg("order submitted");
    assert_eq!(
        (b["msgid"].as_str(), b["level"].as_str(), b["appname"].as_str()),
        (Some("ORD7"), Some("warn"), Some("orders"))
    );
    assert_eq!(b["structured_data"]["order@32473"]["id"], "A-17");
    assert!(b["timestamp"].as_str().unwrap().contains('.'), "RFC 5424 keeps sub-second time: {b}");
    let c = by_msg("counted over tcp");
    assert_eq!((c["facility"].as_str(), c["source"].as_str()), (Some("daemon"), Some("t")));
    let d = by_msg("newline over tcp");
    assert_eq!(d["level"], "info", "notice is info");
    assert_eq!(ev.len(), 4);
}

/// Parse the `count=` loggen reports, and every `seq: N` in the output.
fn seqs(dir: &Path) -> (usize, HashSet<u64>) {
    let ev = events(dir);
    let mut seen = HashSet::new();
    for e in &ev {
        let m = e["message"].as_str().unwrap_or("");
        if let Some(i) = m.find("seq: ") {
            let n: String = m[i + 5..].chars().take_while(|c| c.is_ascii_digit()).collect();
            seen.insert(n.parse().unwrap());
        }
    }
    (ev.len(), seen)
}

#[test]
fn loggen_over_tcp_loses_nothing_with_either_framing() {
    let _disk = disk_heavy();
    let Some(loggen) = tool("loggen", "syslog-ng-core") else { return };
    for octet_counting in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let (api, tcp) = (free_port(), free_port());
        let cfg = config(
            dir.path(),
            api,
            &format!("[sources.s]\ntype = \"syslog\"\nmode = \"tcp\"\naddress = \"127.0.0.1:{tcp}\"\n"),
        );
        let mut s = Sluice::start(dir.path(), &cfg);
        wait_ready(api, &s);
        let n = 100_000;
        let mut cmd = Command::new(&loggen);
        cmd.args(["--inet", "--stream", "--number", &n.to_string(), "--rate", "1000000", "--size", "200", "--quiet"]);
        cmd.args(["--active-connections", "2"]);
        if octet_counting {
            cmd.arg("--syslog-proto");
        }
        run(cmd.args(["127.0.0.1", &tcp.to_string()]));
        let total = 2 * n;
        let got = wait_until(Duration::from_secs(30), || seqs(dir.path()).0 >= total);
        assert_eq!(s.terminate(Duration::from_secs(20)), 0);
        let (count, distinct) = seqs(dir.path());
        assert!(got, "octet counting {octet_counting}: {count} of {total} messages arrived");
        assert_eq!(count, total, "octet counting {octet_counting}: nothing lost or duplicated");
        // Two connections each number their messages from 0 (or 1): every number twice.
        assert!(distinct.len() >= n - 1, "every sequence number arrived: {}", distinct.len());
        let ev = events(dir.path());
        assert!(ev.iter().all(|e| e.get("parse_error").is_none()), "every message parsed: {}", ev[0]);
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    run(Command::new("openssl").args(args).current_dir(dir).stdout(Stdio::null()));
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate, signed by the CA.
pub(crate) fn certificates(dir: &Path) {
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
    openssl(
        dir,
        &[
            &["req", "-x509"][..],
            &ec,
            &["-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=sluice test CA"],
        ]
        .concat(),
    );
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    std::fs::write(dir.join("client.ext"), "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n").unwrap();
    for who in ["server", "client"] {
        let (key, csr, crt, ext) =
            (format!("{who}.key"), format!("{who}.csr"), format!("{who}.crt"), format!("{who}.ext"));
        openssl(dir, &[&["req"][..], &ec, &["-keyout", &key, "-out", &csr, "-subj", &format!("/CN={who}")]].concat());
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &crt,
                "-days",
                "2",
                "-extfile",
                &ext,
            ],
        );
    }
}

#[test]
fn tls_with_loggen_and_client_certificates() {
    let (Some(loggen), Some(_)) = (tool("loggen", "syslog-ng-core"), tool("openssl", "openssl")) else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    certificates(d);
    // Server authentication only: loggen's TLS client.
    let (api, port) = (free_port(), free_port());
    let tls = format!("tls = {{ crt_file = \"{0}/server.crt\", key_file = \"{0}/server.key\" }}", d.display());
    let cfg = config(
        d,
        api,
        &format!("[sources.s]\ntype = \"syslog\"\nmode = \"tls\"\naddress = \"127.0.0.1:{port}\"\n{tls}\n"),
    );
    let mut s = Sluice::start(d, &cfg);
    wait_ready(api, &s);
    run(Command::new(&loggen)
        .args(["--use-ssl", "--number", "5000", "--rate", "100000", "--quiet"])
        .args(["127.0.0.1", &port.to_string()]));
    assert!(
        wait_until(Duration::from_secs(20), || events(d).len() >= 5000),
        "{} of 5000; {}",
        events(d).len(),
        s.stderr()
    );
    assert_eq!(s.terminate(Duration::from_secs(20)), 0);
    assert_eq!(seqs(d).0, 5000);
    assert_eq!(seqs(d).1.len(), 5000);

    // Client certificates required: a client with one is read, one without is refused.
    std::fs::remove_dir_all(d.join("out")).unwrap();
    let (api, port) = (free_port(), free_port());
    let tls = format!(
        "tls = {{ crt_file = \"{0}/server.crt\", key_file = \"{0}/server.key\", ca_file = \"{0}/ca.crt\" }}",
        d.display()
    );
    let cfg = config(
        d,
        api,
        &format!("[sources.s]\ntype = \"syslog\"\nmode = \"tls\"\naddress = \"127.0.0.1:{port}\"\n{tls}\n"),
    );
    let mut s = Sluice::start(d, &cfg);
    wait_ready(api, &s);
    let send = |with_cert: bool, msg: &str| {
        let mut c = Command::new("openssl");
        c.args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{port}"),
            "-CAfile",
            "ca.crt",
            "-quiet",
            "-no_ign_eof",
            "-verify_return_error",
        ]);
        if with_cert {
            c.args(["-cert", "client.crt", "-key", "client.key"]);
        }
        let mut child =
            c.current_dir(d).stdin(Stdio::piped()).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        let _ = child.stdin.take().unwrap().write_all(format!("<14>Nov 30 10:00:00 web nginx: {msg}\n").as_bytes());
        // s_client exits at the end of its input; never wait for it forever.
        if !wait_until(Duration::from_secs(10), || child.try_wait().unwrap().is_some()) {
            let _ = child.kill();
        }
        let _ = child.wait();
    };
    send(false, "without a client certificate");
    send(true, "with a client certificate");
    assert!(wait_until(Duration::from_secs(10), || !events(d).is_empty()), "{}", s.stderr());
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(s.terminate(Duration::from_secs(20)), 0);
    let msgs: Vec<String> = events(d).iter().map(|e| e["message"].as_str().unwrap().to_string()).collect();
    assert_eq!(msgs, ["with a client certificate"]);
}

#[test]
fn garbage_floods_and_slow_clients_do_not_stop_the_source() {
    let dir = tempfile::tempdir().unwrap();
    let (api, udp, tcp) = (free_port(), free_port(), free_port());
    let cfg = config(
        dir.path(),
        api,
        &format!(
            "[sources.s]\ntype = \"syslog\"\nmode = \"tcp\"\naddress = \"127.0.0.1:{tcp}\"\nmax_connections = 4\nmax_message_bytes = 1024\n\
             [sources.u]\ntype = \"syslog\"\nmode = \"udp\"\naddress = \"127.0.0.1:{udp}\"\nmax_message_bytes = 1024\n"
        ),
    )
    .replace("inputs = [\"s\"]", "inputs = [\"s\", \"u\"]");
    let mut s = Sluice::start(dir.path(), &cfg);
    wait_ready(api, &s);

    // A half-open client: a partial frame, then silence, holding its connection.
    let mut slow = TcpStream::connect(("127.0.0.1", tcp)).unwrap();
    slow.write_all(b"<13>Nov 30 10:00:00 h app: never fini").unwrap();
    // Garbage over TCP and UDP: binary noise, a bogus octet count, NUL bytes, a
    // datagram over the size limit.
    let mut junk = TcpStream::connect(("127.0.0.1", tcp)).unwrap();
    let mut noise: Vec<u8> = (0..20_000u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    noise.extend_from_slice(b"\n99999999 <13>short\n\0\0\0\n");
    junk.write_all(&noise).unwrap();
    drop(junk);
    let u = UdpSocket::bind("127.0.0.1:0").unwrap();
    u.send_to(b"\xff\xfe\x00garbage", ("127.0.0.1", udp)).unwrap();
    u.send_to(&vec![b'a'; 3000], ("127.0.0.1", udp)).unwrap();
    u.send_to(b"<13>Nov 30 10:00:00 h app: good datagram", ("127.0.0.1", udp)).unwrap();
    // A flood of connections beyond max_connections: refused and counted.
    let flood: Vec<TcpStream> = (0..10).filter_map(|_| TcpStream::connect(("127.0.0.1", tcp)).ok()).collect();
    std::thread::sleep(Duration::from_millis(300));
    drop(flood);
    std::thread::sleep(Duration::from_millis(300));
    // A well-behaved client still gets through while the slow one holds its connection.
    let mut good = TcpStream::connect(("127.0.0.1", tcp)).unwrap();
    good.write_all(b"<13>Nov 30 10:00:00 h app: good over tcp\n").unwrap();
    drop(good);
    assert!(
        wait_until(Duration::from_secs(10), || {
            let ev = events(dir.path());
            ev.iter().any(|e| e["message"] == "good over tcp") && ev.iter().any(|e| e["message"] == "good datagram")
        }),
        "{}",
        s.stderr()
    );
    let metrics = http_get(api, "/metrics", None).unwrap().1;
    let refused: f64 = metrics
        .lines()
        .find(|l| l.starts_with("sluice_syslog_connections_refused_total") && l.contains("component=\"s\""))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0.0);
    assert!(refused >= 1.0, "connections beyond max_connections are counted:\n{metrics}");
    drop(slow);
    assert_eq!(s.terminate(Duration::from_secs(20)), 0, "{}", s.stderr());
    let ev = events(dir.path());
    // The slow client's unfinished frame is kept when its connection ends.
    assert!(ev.iter().any(|e| e["message"] == "never fini"), "{ev:#?}");
    let big = ev.iter().find(|e| e["message"].as_str().is_some_and(|m| m.starts_with("aaaa"))).unwrap();
    assert_eq!((big["truncated"].as_bool(), big["message"].as_str().unwrap().len()), (Some(true), 1024));
    let bad = ev.iter().find(|e| e.get("invalid_utf8").is_some()).expect("the invalid UTF-8 datagram is kept, marked");
    assert!(bad["parse_error"].is_string());
}

/// A sink that cannot keep up (a FIFO nobody reads yet) paces a TCP sender: sluice stops
/// reading, the sender's writes stall, memory stays bounded; once the sink reads again,
/// every message arrives.
#[test]
fn tcp_reads_are_paced_by_backpressure() {
    let _disk = disk_heavy();
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let fifo = out.join("pipe.ndjson");
    mkfifo(&fifo);
    let (api, tcp) = (free_port(), free_port());
    let cfg = format!(
        "{}[pipeline]\nbuffer_batches = 2\n[sources.s]\ntype = \"syslog\"\nmode = \"tcp\"\naddress = \"127.0.0.1:{tcp}\"\n[sinks.f]\ntype = \"file\"\ninputs = [\"s\"]\npath = \"{}\"\n",
        header(dir.path(), Some(api)),
        fifo.display()
    );
    let s = Sluice::start(dir.path(), &cfg);
    wait_ready(api, &s);
    let n = 400_000usize;
    let line = |i: usize| format!("<14>Nov 30 10:00:00 web app: message {i:08} {}\n", "x".repeat(60));
    let total_bytes: usize = (0..n).map(|i| line(i).len()).sum();
    let written = Arc::new(AtomicUsize::new(0));
    let w = written.clone();
    let sender = std::thread::spawn(move || {
        let mut c = TcpStream::connect(("127.0.0.1", tcp)).unwrap();
        let mut chunk = String::new();
        for i in 0..n {
            chunk.push_str(&line(i));
            if chunk.len() > 64 << 10 || i + 1 == n {
                c.write_all(chunk.as_bytes()).unwrap();
                w.fetch_add(chunk.len(), Ordering::Relaxed);
                chunk.clear();
            }
        }
    });
    std::thread::sleep(Duration::from_secs(2));
    let stalled_at = written.load(Ordering::Relaxed);
    let rss = s.rss_kib();
    assert!(stalled_at < total_bytes / 2, "the sender was not held back: {stalled_at} of {total_bytes} bytes written");
    assert!(rss < 100 * 1024, "RSS {rss} KiB while the sink is blocked");
    read_lines_from(&mut std::fs::File::open(&fifo).unwrap(), n);
    sender.join().unwrap();
    eprintln!("syslog backpressure: sender held at {stalled_at} of {total_bytes} bytes, RSS {rss} KiB");
    drop(s);
}
