//! Change notification for the file source: inotify (through `notify`) on the
//! directories the include globs can match, telling the reader which paths changed, so
//! quiet files cost nothing. When a directory cannot be watched (it does not exist yet,
//! the inotify watch limit is reached, a file system without inotify such as NFS), the
//! reader polls, as it does without a watcher.

use notify::{EventKind, RecursiveMode, Watcher};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

pub struct Watch {
    _watcher: notify::RecommendedWatcher,
    rx: Receiver<notify::Result<notify::Event>>,
    /// Every include pattern's directory is watched.
    pub complete: bool,
}

/// What happened since the last look.
#[derive(Default)]
pub struct Changes {
    pub paths: HashSet<PathBuf>,
    /// Files were created, removed or renamed: rescan the globs.
    pub rescan: bool,
    /// Events were lost (queue overflow): check everything.
    pub overflow: bool,
}

/// The directory to watch for a glob, and whether below it too: the components before
/// the first one with a glob character; recursive when a glob component is not last.
pub fn watch_root(pattern: &str) -> (PathBuf, RecursiveMode) {
    let is_glob = |c: &str| c.contains(['*', '?', '[', '{']);
    let p = Path::new(pattern);
    let comps: Vec<&str> = p.iter().map(|c| c.to_str().unwrap_or("")).collect();
    let first_glob = comps.iter().position(|c| is_glob(c)).unwrap_or(comps.len().saturating_sub(1));
    let mut root = PathBuf::new();
    for c in &comps[..first_glob] {
        root.push(c);
    }
    if root.as_os_str().is_empty() {
        root.push(".");
    }
    let recursive = first_glob + 1 < comps.len();
    (root, if recursive { RecursiveMode::Recursive } else { RecursiveMode::NonRecursive })
}

impl Watch {
    /// Watch the roots of `patterns`. None when inotify is unavailable altogether.
    pub fn start(patterns: &[String]) -> Option<Watch> {
        let (tx, rx) = std::sync::mpsc::channel();
        let mut watcher = match notify::recommended_watcher(move |ev| {
            let _ = tx.send(ev);
        }) {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!(error = %e, "file change notification unavailable; polling files");
                return None;
            }
        };
        let mut complete = true;
        let mut roots: Vec<(PathBuf, RecursiveMode)> = patterns.iter().map(|p| watch_root(p)).collect();
        roots.sort_by(|a, b| a.0.cmp(&b.0));
        roots.dedup_by(|a, b| a.0 == b.0);
        for (root, mode) in roots {
            if let Err(e) = watcher.watch(&root, mode) {
                complete = false;
                let limit = matches!(&e.kind, notify::ErrorKind::MaxFilesWatch)
                    || e.to_string().contains("No space left on device");
                if limit {
                    tracing::warn!(dir = %root.display(), "inotify watch limit reached (fs.inotify.max_user_watches); polling this directory");
                } else {
                    tracing::warn!(dir = %root.display(), error = %e, "cannot watch directory; polling it");
                }
            }
        }
        Some(Watch { _watcher: watcher, rx, complete })
    }

    /// Wait up to `timeout` for a change, then take every change queued.
    pub fn wait(&self, timeout: Duration) -> Changes {
        let deadline = std::time::Instant::now() + timeout;
        let mut c = Changes::default();
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(ev) => self.add(&mut c, ev),
                Err(RecvTimeoutError::Timeout) => return c,
                Err(RecvTimeoutError::Disconnected) => {
                    c.overflow = true;
                    return c;
                }
            }
            while let Ok(ev) = self.rx.try_recv() {
                self.add(&mut c, ev);
            }
            // Opens and closes alone are not changes: keep waiting.
            if !c.paths.is_empty() || c.rescan || c.overflow {
                return c;
            }
        }
    }

    /// Take every change queued, without waiting.
    pub fn take(&self) -> Changes {
        let mut c = Changes::default();
        while let Ok(ev) = self.rx.try_recv() {
            self.add(&mut c, ev);
        }
        c
    }

    fn add(&self, c: &mut Changes, ev: notify::Result<notify::Event>) {
        match ev {
            Ok(ev) => {
                if ev.need_rescan() {
                    c.overflow = true;
                }
                match ev.kind {
                    EventKind::Create(_)
                    | EventKind::Remove(_)
                    | EventKind::Modify(notify::event::ModifyKind::Name(_)) => c.rescan = true,
                    EventKind::Access(_) => return,
                    _ => {}
                }
                c.paths.extend(ev.paths);
            }
            Err(_) => c.overflow = true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roots_stop_at_the_first_glob() {
        assert_eq!(watch_root("/var/log/app/*.log"), (PathBuf::from("/var/log/app"), RecursiveMode::NonRecursive));
        assert_eq!(watch_root("/var/log/*/x.log"), (PathBuf::from("/var/log"), RecursiveMode::Recursive));
        assert_eq!(watch_root("/var/log/**/*.log"), (PathBuf::from("/var/log"), RecursiveMode::Recursive));
        assert_eq!(watch_root("/var/log/app.log"), (PathBuf::from("/var/log"), RecursiveMode::NonRecursive));
        assert_eq!(watch_root("*.log"), (PathBuf::from("."), RecursiveMode::NonRecursive));
    }

    #[test]
    fn reports_writes_and_creations() {
        let dir = tempfile::tempdir().unwrap();
        let pattern = format!("{}/*.log", dir.path().display());
        let w = Watch::start(&[pattern]).expect("inotify");
        assert!(w.complete);
        let f = dir.path().join("a.log");
        std::fs::write(&f, "x\n").unwrap();
        let mut c = w.wait(Duration::from_secs(5));
        std::thread::sleep(Duration::from_millis(50));
        let more = w.take();
        c.paths.extend(more.paths);
        c.rescan |= more.rescan;
        assert!(c.rescan && c.paths.contains(&f), "{:?}", c.paths);
        use std::io::Write;
        std::fs::OpenOptions::new().append(true).open(&f).unwrap().write_all(b"y\n").unwrap();
        let c = w.wait(Duration::from_secs(5));
        assert!(c.paths.contains(&f));
    }
}
