//! The kustomize engine: finds the real kustomize (or `kubectl kustomize`), builds leaves in
//! parallel, caches results on disk keyed by a hash of every input a build reaches, and
//! classifies kustomize's nested errors by their innermost cause.

mod classify;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::repo::Repo;
pub use classify::{BuildError, classify};

/// Bumped whenever the cache entry format or the key recipe changes.
const CACHE_FORMAT: &str = "agentops-kustomize-cache-v1";

/// A kustomize program and how to call it.
#[derive(Debug, Clone)]
pub struct Kustomize {
    pub program: PathBuf,
    /// `kubectl kustomize DIR` rather than `kustomize build DIR`.
    pub via_kubectl: bool,
    /// Path, size and modification time of the binary: part of every cache key.
    identity: String,
}

impl Kustomize {
    fn new(program: PathBuf) -> Result<Kustomize> {
        let meta = std::fs::metadata(&program)
            .map_err(|e| Error::KustomizeBroken { path: program.display().to_string(), message: e.to_string() })?;
        let via_kubectl = program.file_name().is_some_and(|n| n.to_string_lossy().starts_with("kubectl"));
        let mtime =
            meta.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).map_or(0, |d| d.as_nanos());
        let identity = format!("{}|{}|{}|{}", program.display(), meta.len(), mtime, via_kubectl);
        Ok(Kustomize { program, via_kubectl, identity })
    }

    /// Finds kustomize: an explicit path (flag or config), `kustomize` on PATH, `kubectl` on
    /// PATH, then `.tools/bin` in the working directory or above the agentops executable.
    pub fn locate(explicit: Option<&Path>) -> Result<Kustomize> {
        if let Some(p) = explicit {
            if !p.is_file() {
                return Err(Error::KustomizeBroken { path: p.display().to_string(), message: "no such file".into() });
            }
            // builds run in the repo's directory: a relative path must not depend on it
            return Kustomize::new(std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf()));
        }
        let names = ["kustomize", "kubectl"];
        match names.iter().find_map(|n| which(n)).or_else(|| tools_bin(&names)) {
            Some(p) => Kustomize::new(p),
            None => Err(Error::KustomizeNotFound),
        }
    }

    /// The command that builds `dir`.
    pub fn command(&self, dir: &Path) -> Command {
        let mut c = Command::new(&self.program);
        if self.via_kubectl {
            c.arg("kustomize");
        } else {
            c.arg("build");
        }
        c.arg(dir);
        // kustomize runs are short and many run at once: one Go thread each and no garbage
        // collection below a memory limit cut their CPU time by a quarter (measured in
        // docs/benchmarks.md). The user's own settings win.
        for (k, v) in [("GOMAXPROCS", "1"), ("GOGC", "off"), ("GOMEMLIMIT", "1GiB")] {
            if std::env::var_os(k).is_none() {
                c.env(k, v);
            }
        }
        c
    }
}

fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(name)).find(|p| p.is_file())
}

/// The first of `names` in `.tools/bin` of the working directory or a directory above the
/// agentops executable (where `scripts/setup-tools` puts kubectl).
fn tools_bin(names: &[&str]) -> Option<PathBuf> {
    let mut roots: Vec<PathBuf> = std::env::current_dir().into_iter().collect();
    if let Ok(exe) = std::env::current_exe() {
        roots.extend(exe.ancestors().skip(1).map(Path::to_path_buf));
    }
    roots.iter().find_map(|root| names.iter().map(|n| root.join(".tools/bin").join(n)).find(|p| p.is_file()))
}

/// A program on PATH, else in `.tools/bin` (see [`Kustomize::locate`]), e.g. `kubectl`.
pub fn find_program(name: &str) -> Option<PathBuf> {
    which(name).or_else(|| tools_bin(&[name]))
}

/// Where build results are cached.
pub fn default_cache_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("AGENTOPS_CACHE_DIR") {
        return Some(PathBuf::from(d));
    }
    dirs::cache_dir().map(|d| d.join("agentops"))
}

/// The result of one build.
#[derive(Debug, Clone)]
pub struct BuildOutput {
    /// Rendered YAML on success.
    pub stdout: String,
    /// kustomize's error text on failure.
    pub error: Option<String>,
    pub cached: bool,
}

#[derive(Serialize, Deserialize)]
struct CacheEntry {
    format: String,
    key: String,
    stdout: String,
    check: String,
}

#[derive(Debug, Default, Clone, Copy, Serialize)]
pub struct EngineStats {
    pub builds: usize,
    pub cache_hits: usize,
}

/// Builds kustomizations with caching. Shared between threads.
#[derive(Debug)]
pub struct Engine {
    pub kustomize: Kustomize,
    cache_dir: Option<PathBuf>,
    file_hashes: Mutex<HashMap<PathBuf, String>>,
    builds: AtomicUsize,
    hits: AtomicUsize,
}

impl Engine {
    pub fn new(kustomize: Kustomize, cache_dir: Option<PathBuf>) -> Engine {
        Engine {
            kustomize,
            cache_dir: cache_dir.map(|d| d.join("kustomize")),
            file_hashes: Mutex::default(),
            builds: AtomicUsize::new(0),
            hits: AtomicUsize::new(0),
        }
    }

    pub fn stats(&self) -> EngineStats {
        EngineStats { builds: self.builds.load(Ordering::Relaxed), cache_hits: self.hits.load(Ordering::Relaxed) }
    }

    /// Forgets file hashes, for callers that edit files between builds.
    pub fn invalidate(&self) {
        if let Ok(mut h) = self.file_hashes.lock() {
            h.clear();
        }
    }

    /// Cache key of a kustomization directory: every file it reaches, by content.
    pub fn key(&self, repo: &Repo, dir: &str) -> String {
        let closure = repo.closure(dir);
        let mut h = blake3::Hasher::new();
        h.update(CACHE_FORMAT.as_bytes());
        h.update(self.kustomize.identity.as_bytes());
        h.update(dir.as_bytes());
        for f in &closure.files {
            h.update(b"\0");
            h.update(f.as_bytes());
            h.update(b"\0");
            h.update(self.file_hash(&repo.abs(f)).as_bytes());
        }
        h.finalize().to_hex().to_string()
    }

    fn file_hash(&self, path: &Path) -> String {
        if let Ok(m) = self.file_hashes.lock()
            && let Some(h) = m.get(path)
        {
            return h.clone();
        }
        let h = match std::fs::read(path) {
            Ok(bytes) => blake3::hash(&bytes).to_hex().to_string(),
            Err(_) if path.is_dir() => "dir".to_string(),
            Err(_) => "missing".to_string(),
        };
        if let Ok(mut m) = self.file_hashes.lock() {
            m.insert(path.to_path_buf(), h.clone());
        }
        h
    }

    /// Builds one kustomization directory (repo-relative).
    pub fn build(&self, repo: &Repo, dir: &str) -> BuildOutput {
        let key = self.key(repo, dir);
        if let Some(stdout) = self.cache_get(&key) {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return BuildOutput { stdout, error: None, cached: true };
        }
        self.builds.fetch_add(1, Ordering::Relaxed);
        let out = self.kustomize.command(&repo.abs(dir)).current_dir(&repo.root).output();
        match out {
            Ok(o) if o.status.success() => {
                let stdout = String::from_utf8_lossy(&o.stdout).into_owned();
                self.cache_put(&key, &stdout);
                BuildOutput { stdout, error: None, cached: false }
            }
            Ok(o) => {
                let mut err = String::from_utf8_lossy(&o.stderr).trim().to_string();
                if err.is_empty() {
                    err = format!("kustomize exited with {}", o.status);
                }
                BuildOutput { stdout: String::new(), error: Some(err), cached: false }
            }
            Err(e) => BuildOutput {
                stdout: String::new(),
                error: Some(format!("could not run {}: {e}", self.kustomize.program.display())),
                cached: false,
            },
        }
    }

    fn entry_path(&self, key: &str) -> Option<PathBuf> {
        self.cache_dir.as_ref().map(|d| d.join(&key[..2]).join(format!("{key}.json")))
    }

    /// A cached rendering, if present and intact. A corrupt or mismatched entry is ignored.
    fn cache_get(&self, key: &str) -> Option<String> {
        let text = std::fs::read(self.entry_path(key)?).ok()?;
        let entry: CacheEntry = serde_json::from_slice(&text).ok()?;
        let intact = entry.format == CACHE_FORMAT
            && entry.key == key
            && entry.check == blake3::hash(entry.stdout.as_bytes()).to_hex().as_str();
        intact.then_some(entry.stdout)
    }

    /// Stores a successful rendering. Failures are not cached: they are cheap to redo and a
    /// fix outside the known inputs must be seen. Cache write errors only cost speed.
    fn cache_put(&self, key: &str, stdout: &str) {
        let Some(path) = self.entry_path(key) else {
            return;
        };
        let entry = CacheEntry {
            format: CACHE_FORMAT.into(),
            key: key.into(),
            stdout: stdout.into(),
            check: blake3::hash(stdout.as_bytes()).to_hex().to_string(),
        };
        let Ok(bytes) = serde_json::to_vec(&entry) else {
            return;
        };
        let Some(parent) = path.parent() else { return };
        if std::fs::create_dir_all(parent).is_err() {
            return;
        }
        let tmp = parent.join(format!(".{key}.{}.tmp", std::process::id()));
        if std::fs::write(&tmp, bytes).is_ok() && std::fs::rename(&tmp, &path).is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
    }
}

/// How many builds run at once: two per core, so one build's process start-up overlaps
/// another's work (measured best on 2 cores, see docs/benchmarks.md).
pub fn default_jobs() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get()) * 2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_explicit_binary_is_an_error() {
        let err = Kustomize::locate(Some(Path::new("/nonexistent/kustomize"))).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/kustomize"), "{err}");
    }

    #[test]
    fn not_found_message_says_how_to_install() {
        let msg = Error::KustomizeNotFound.to_string();
        assert!(msg.contains("scripts/setup-tools") && msg.contains("--kustomize"), "{msg}");
    }
}
