use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_sluice");

pub fn sluice() -> Command {
    let mut c = Command::new(BIN);
    c.env("SLUICE_LOG", "info");
    c
}

/// A free loopback port (bound then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub struct Sluice {
    pub child: Child,
    pub stderr_path: PathBuf,
}

impl Sluice {
    /// Start `sluice run --config <dir>/sluice.toml` with `config` written there.
    pub fn start(dir: &Path, config: &str) -> Sluice {
        Sluice::start_with_env(dir, config, &[])
    }

    pub fn start_with_env(dir: &Path, config: &str, env: &[(&str, String)]) -> Sluice {
        let cfg = dir.join("sluice.toml");
        std::fs::write(&cfg, config).unwrap();
        let stderr_path = dir.join(format!("stderr-{:x}.log", rand_u64()));
        let child = sluice()
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .args(["run", "--config", cfg.to_str().unwrap()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr_path).unwrap())
            .spawn()
            .expect("spawn sluice");
        Sluice { child, stderr_path }
    }

    pub fn signal(&self, sig: i32) {
        unsafe {
            libc::kill(self.child.id() as i32, sig);
        }
    }

    pub fn kill9(mut self) {
        self.signal(libc::SIGKILL);
        let _ = self.child.wait();
    }

    /// SIGTERM and wait for exit; returns the exit code.
    pub fn terminate(&mut self, timeout: Duration) -> i32 {
        self.signal(libc::SIGTERM);
        self.wait_exit(timeout)
    }

    pub fn wait_exit(&mut self, timeout: Duration) -> i32 {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st.code().unwrap_or(-1);
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("sluice did not exit within {timeout:?}; stderr:\n{}", self.stderr());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    pub fn rss_kib(&self) -> u64 {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
        s.lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for Sluice {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn rand_u64() -> u64 {
    let mut b = [0u8; 8];
    std::fs::File::open("/dev/urandom").unwrap().read_exact(&mut b).unwrap();
    u64::from_le_bytes(b)
}

/// The value of metric `name` of `component` on sluice's /metrics (0 if absent or the
/// API is not up yet).
pub fn metric(api: u16, name: &str, component: &str) -> f64 {
    let Some((_, body)) = http_get(api, "/metrics", None) else { return 0.0 };
    let label = format!("component=\"{component}\"");
    body.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) && l.contains(&label))
        .find_map(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0.0)
}

/// Every complete NDJSON line of the `.ndjson` files in `dir`, in file-name order.
pub fn read_events(dir: &Path) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else { return out };
    let mut paths: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
    paths.sort();
    for p in paths {
        if p.extension().is_some_and(|e| e == "ndjson") {
            let text = std::fs::read_to_string(&p).unwrap();
            // A line still being written (no newline yet) is read on the next call.
            let complete = &text[..text.rfind('\n').map_or(0, |i| i + 1)];
            for line in complete.lines() {
                out.push(
                    serde_json::from_str(line)
                        .unwrap_or_else(|e| panic!("bad NDJSON line in {}: {e}: {line}", p.display())),
                );
            }
        }
    }
    out
}

/// Count of each `message` in the output.
pub fn message_counts(dir: &Path) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for e in read_events(dir) {
        *m.entry(e["message"].as_str().unwrap().to_string()).or_default() += 1;
    }
    m
}

/// Poll `f` until it returns true or `timeout` passes.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    f()
}

/// A minimal HTTP/1.1 GET against loopback; returns (status, body).
pub fn http_get(port: u16, path: &str, token: Option<&str>) -> Option<(u16, String)> {
    use std::io::Write;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let auth = token.map(|t| format!("Authorization: Bearer {t}\r\n")).unwrap_or_default();
    write!(s, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Connection: close\r\n\r\n").ok()?;
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).ok()?;
    let text = String::from_utf8_lossy(&resp).to_string();
    let status: u16 = text.split_whitespace().nth(1)?.parse().ok()?;
    let body_start = text.find("\r\n\r\n")? + 4;
    let head = &text[..body_start];
    let mut body = text[body_start..].to_string();
    if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        body = dechunk(&body);
    }
    Some((status, body))
}

fn dechunk(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find("\r\n") {
        let n = usize::from_str_radix(rest[..i].trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[i + 2..i + 2 + n]);
        rest = &rest[i + 2 + n + 2..];
    }
    out
}

/// Config header shared by tests: a data dir and the API off unless a port is given.
pub fn header(dir: &Path, api_port: Option<u16>) -> String {
    let api = match api_port {
        Some(p) => format!("[api]\naddress = \"127.0.0.1:{p}\"\n"),
        None => "[api]\nenabled = false\n".to_string(),
    };
    format!("data_dir = \"{}\"\n{api}", dir.join("data").display())
}

/// `../shared` beside the repository, if present (it is in CI, not on a user's
/// machine). Absent, the test skips with a message, or fails when SLUICE_REQUIRE_TOOLS
/// is set (CI sets it): a test that needs it never passes silently there.
pub fn shared_dir() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared");
    if p.join("corpus/gen_legacy_logs.py").exists() {
        return Some(p.canonicalize().unwrap());
    }
    assert!(
        std::env::var_os("SLUICE_REQUIRE_TOOLS").is_none(),
        "../shared (the corpus generator and the Loghub sets) is required: SLUICE_REQUIRE_TOOLS is set"
    );
    eprintln!("SKIP: ../shared is absent (the corpus generator and the Loghub sets)");
    None
}

pub fn repo_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").canonicalize().unwrap()
}

/// A command-line tool the test needs, from PATH. Missing: the test skips with a message
/// on a user's machine, and fails when SLUICE_REQUIRE_TOOLS is set (CI sets it).
pub fn tool(name: &str, debian_package: &str) -> Option<PathBuf> {
    find_tool(name, &[], &format!("apt-get install {debian_package}"))
}

/// [`tool`] that also looks in `places` (before PATH); `install` says how to get it.
pub fn find_tool(name: &str, places: &[PathBuf], install: &str) -> Option<PathBuf> {
    let in_path =
        || std::env::var_os("PATH").and_then(|p| std::env::split_paths(&p).map(|d| d.join(name)).find(|f| f.is_file()));
    let found = places.iter().find(|p| p.is_file()).cloned().or_else(in_path);
    if found.is_none() {
        assert!(
            std::env::var_os("SLUICE_REQUIRE_TOOLS").is_none(),
            "`{name}` is required (SLUICE_REQUIRE_TOOLS is set): {install}"
        );
        eprintln!("SKIP: `{name}` is not installed ({install})");
    }
    found
}

/// A named pipe at `p` (a sink writing to it blocks until somebody reads).
pub fn mkfifo(p: &Path) {
    let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
}

/// Read NDJSON lines from `reader` until `n` lines have arrived (panics if it closes first).
pub fn read_lines_from(reader: &mut impl std::io::Read, n: usize) {
    let mut got = 0usize;
    let mut buf = vec![0u8; 1 << 20];
    let mut carry = 0usize;
    while got < n {
        let k = reader.read(&mut buf[carry..]).unwrap();
        assert!(k > 0, "pipe closed after {got} lines");
        let end = carry + k;
        let last_nl = buf[..end].iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
        got += buf[..last_nl].iter().filter(|&&b| b == b'\n').count();
        buf.copy_within(last_nl..end, 0);
        carry = end - last_nl;
    }
    assert_eq!(got, n);
}

/// Tests share one machine and one disk. A test whose assertion depends on how quickly
/// fsync returns (the duplicates bound after `kill -9`: checkpoints are fsynced) takes
/// [`quiet_disk`]; tests that write tens of megabytes take [`disk_heavy`], so the two
/// never overlap (heavy tests still run beside each other and beside everything else).
static DISK: std::sync::RwLock<()> = std::sync::RwLock::new(());

pub fn quiet_disk() -> std::sync::RwLockWriteGuard<'static, ()> {
    DISK.write().unwrap_or_else(|e| e.into_inner())
}

pub fn disk_heavy() -> std::sync::RwLockReadGuard<'static, ()> {
    DISK.read().unwrap_or_else(|e| e.into_inner())
}
