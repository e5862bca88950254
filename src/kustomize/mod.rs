//! The kustomize engine: finds the real kustomize (or `kubectl kustomize`), builds leaves in
//! parallel, caches results on disk keyed by a hash of every input a build reaches, and
//! classifies kustomize's nested errors by their innermost cause.

mod classify;

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::limits::{Limits, human_bytes};
use crate::error::{Error, Result};
use crate::repo::{Closure, Repo};
pub use classify::{BuildError, classify};

/// Bumped whenever the cache entry format or the key recipe changes.
const CACHE_FORMAT: &str = "agentops-kustomize-cache-v2";

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
        self.command_within(dir, Limits::default().kustomize_memory_mb)
    }

    /// The command that builds `dir`, its Go memory limit at half of `memory_mb`.
    fn command_within(&self, dir: &Path, memory_mb: u64) -> Command {
        let mut c = Command::new(&self.program);
        if self.via_kubectl {
            c.arg("kustomize");
        } else {
            c.arg("build");
        }
        c.arg(dir);
        // kustomize runs are short and many run at once: one Go thread each and no garbage
        // collection below a memory limit cut their CPU time by a quarter (measured in
        // docs/benchmarks.md). The soft limit sits at half of the hard one (the rlimit in
        // `run_limited`), so the collector runs long before the hard limit is near. The
        // user's own settings win.
        let soft = format!("{}MiB", (memory_mb / 2).max(64));
        for (k, v) in [("GOMAXPROCS", "1"), ("GOGC", "off"), ("GOMEMLIMIT", soft.as_str())] {
            if std::env::var_os(k).is_none() {
                c.env(k, v);
            }
        }
        c
    }

    /// Runs kustomize on `dir` within the limits: a hard memory limit on the child
    /// (RLIMIT_DATA, which counts the heap a Go program maps but not the address space it
    /// only reserves), a wall-clock limit (the child's process group is killed), and at most
    /// `render_bytes` of output read.
    pub fn run_limited(&self, dir: &Path, cwd: &Path, limits: &Limits) -> Run {
        let mut cmd = self.command_within(dir, limits.kustomize_memory_mb);
        cmd.current_dir(cwd).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        #[cfg(unix)]
        {
            use std::os::unix::process::CommandExt;
            cmd.process_group(0);
            let bytes = limits.kustomize_memory_mb.saturating_mul(1 << 20) as libc::rlim_t;
            // SAFETY: setrlimit is async-signal-safe and touches no memory of the parent.
            unsafe {
                cmd.pre_exec(move || {
                    let lim = libc::rlimit { rlim_cur: bytes, rlim_max: bytes };
                    if libc::setrlimit(libc::RLIMIT_DATA, &lim) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => return Run::failed(format!("could not run {}: {e}", self.program.display())),
        };
        let pid = child.id();
        let render_bytes = limits.render_bytes;
        let stdout = child.stdout.take().map(|out| {
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                // past the limit the pipe is closed: kustomize's next write ends it
                let over = out.take(render_bytes.saturating_add(1)).read_to_end(&mut buf).is_ok()
                    && buf.len() as u64 > render_bytes;
                (buf, over)
            })
        });
        let stderr = child.stderr.take().map(|err| {
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                let mut err = err;
                let _ = (&mut err).take(STDERR_KEPT).read_to_end(&mut buf);
                // the rest (a Go runtime's goroutine dump) is drained so the child never blocks
                let _ = std::io::copy(&mut err, &mut std::io::sink());
                buf
            })
        });
        let (tx, rx) = std::sync::mpsc::channel();
        let waiter = std::thread::spawn(move || {
            let _ = tx.send(child.wait());
        });
        let limit = Duration::from_secs(limits.kustomize_seconds.max(1));
        let (status, timed_out) = match rx.recv_timeout(limit) {
            Ok(s) => (s, false),
            Err(_) => {
                kill_group(pid);
                (rx.recv().unwrap_or_else(|_| Err(std::io::Error::other("lost the child"))), true)
            }
        };
        let _ = waiter.join();
        let (stdout, output_over) = stdout.and_then(|h| h.join().ok()).unwrap_or_default();
        let stderr = stderr.and_then(|h| h.join().ok()).unwrap_or_default();
        Run {
            status: status.ok(),
            stdout,
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
            timed_out,
            output_over,
        }
    }
}

/// What kustomize's own error output is kept of (the rest is drained unread).
const STDERR_KEPT: u64 = 64 << 10;

#[cfg(unix)]
fn kill_group(pid: u32) {
    if let Ok(pid) = i32::try_from(pid) {
        // SAFETY: kill has no memory effects; the group is the child's own (process_group(0)).
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
}

#[cfg(not(unix))]
fn kill_group(_pid: u32) {}

/// One kustomize run.
#[derive(Debug, Default)]
pub struct Run {
    /// None when the child could not be waited for.
    pub status: Option<std::process::ExitStatus>,
    pub stdout: Vec<u8>,
    /// The start of kustomize's error output.
    pub stderr: String,
    pub timed_out: bool,
    pub output_over: bool,
}

impl Run {
    fn failed(message: String) -> Run {
        Run { stderr: message, ..Run::default() }
    }

    /// Whether the Go runtime died for want of memory (the rlimit, or the machine).
    pub fn out_of_memory(&self) -> bool {
        [
            "fatal error: runtime: out of memory",
            "fatal error: runtime: cannot allocate memory",
            "out of memory allocating",
            "failed to reserve page summary memory",
        ]
        .iter()
        .any(|m| self.stderr.contains(m))
    }

    pub fn success(&self) -> bool {
        self.status.is_some_and(|s| s.success()) && !self.timed_out && !self.output_over
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
    /// kustomize's error text on failure (or a [`Refusal`]'s).
    pub error: Option<String>,
    pub cached: bool,
    /// The rendered objects, parsed once: kept in the cache entry as JSON beside the text,
    /// so a warm run reads them without the YAML parser. None when the output did not parse
    /// (then [`BuildOutput::values`] says why).
    pub objects: Option<std::sync::Arc<Vec<serde_json::Value>>>,
}

impl BuildOutput {
    fn failed(error: String) -> BuildOutput {
        BuildOutput { stdout: String::new(), error: Some(error), cached: false, objects: None }
    }

    /// The rendered objects: the parsed ones the build kept, else the output parsed now.
    pub fn values(&self) -> Result<Vec<serde_json::Value>, crate::config::yaml::YamlError> {
        match &self.objects {
            Some(objects) => Ok(objects.as_ref().clone()),
            None => crate::config::yaml::parse_values(&self.stdout),
        }
    }
}

/// A file's content hash now, read within the limit ("missing", "dir" or "unreadable" when
/// there is no content to hash).
fn hash_now(path: &Path, limit: u64) -> String {
    match crate::config::limits::read_file(path, limit) {
        Ok(bytes) => blake3::hash(&bytes).to_hex().to_string(),
        Err(_) if path.is_dir() => "dir".to_string(),
        Err(crate::config::limits::ReadError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            "missing".to_string()
        }
        Err(_) => "unreadable".to_string(),
    }
}

#[derive(Serialize, Deserialize)]
struct CacheEntry {
    format: String,
    key: String,
    stdout: String,
    check: String,
    /// The objects of `stdout`, parsed (absent when it did not parse).
    #[serde(default)]
    objects: Option<Vec<serde_json::Value>>,
}

#[derive(Debug, Default, Clone, Copy, Serialize)]
pub struct EngineStats {
    pub builds: usize,
    pub cache_hits: usize,
}

/// A build agentops did not run, or stopped: which limit, the file (and line) at fault and
/// what to do. Its text (`Display`) is the build's error, which [`classify`] reads back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// input-limit, cycle, changed, time-limit, memory-limit, output-limit
    pub class: &'static str,
    pub file: String,
    pub line: Option<u32>,
    pub message: String,
}

/// How a refusal's text starts; [`classify`] recognizes it.
const REFUSAL_PREFIX: &str = "not built (";

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let line = self.line.map(|l| format!(":{l}")).unwrap_or_default();
        write!(f, "{REFUSAL_PREFIX}{}): {}{line}: {}", self.class, self.file, self.message)
    }
}

impl Refusal {
    /// Reads a refusal back from a build error's text.
    pub fn parse(text: &str) -> Option<Refusal> {
        let rest = text.strip_prefix(REFUSAL_PREFIX)?;
        let (class, rest) = rest.split_once("): ")?;
        let class = REFUSAL_CLASSES.iter().find(|c| **c == class)?;
        let (place, message) = rest.split_once(": ")?;
        let (file, line) = match place.rsplit_once(':') {
            Some((f, l)) if l.parse::<u32>().is_ok() => (f, l.parse().ok()),
            _ => (place, None),
        };
        Some(Refusal { class, file: file.to_string(), line, message: message.to_string() })
    }
}

const REFUSAL_CLASSES: [&str; 6] = ["input-limit", "cycle", "changed", "time-limit", "memory-limit", "output-limit"];

/// Builds kustomizations with caching. Shared between threads.
#[derive(Debug)]
pub struct Engine {
    pub kustomize: Kustomize,
    cache_dir: Option<PathBuf>,
    file_hashes: Mutex<HashMap<PathBuf, String>>,
    /// Files outside the repo's YAML (generator inputs, .json resources) already inspected.
    inspected: Mutex<HashMap<PathBuf, Option<String>>>,
    builds: AtomicUsize,
    hits: AtomicUsize,
}

impl Engine {
    pub fn new(kustomize: Kustomize, cache_dir: Option<PathBuf>) -> Engine {
        Engine {
            kustomize,
            cache_dir: cache_dir.map(|d| d.join("kustomize")),
            file_hashes: Mutex::default(),
            inspected: Mutex::default(),
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
        if let Ok(mut h) = self.inspected.lock() {
            h.clear();
        }
    }

    /// Cache key of a kustomization directory: every file it reaches, by content (the
    /// content the repo scan read, for the repo's YAML files).
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
            h.update(self.known_hash(repo, f).as_bytes());
        }
        h.finalize().to_hex().to_string()
    }

    /// A file's hash as this run knows it: from the repo scan, else read once.
    fn known_hash(&self, repo: &Repo, file: &str) -> String {
        match repo.files.get(file).and_then(|f| f.hash.clone()) {
            Some(h) => h,
            None => self.file_hash(repo, &repo.abs(file)),
        }
    }

    fn file_hash(&self, repo: &Repo, path: &Path) -> String {
        if let Ok(m) = self.file_hashes.lock()
            && let Some(h) = m.get(path)
        {
            return h.clone();
        }
        let h = hash_now(path, repo.config.limits.file_bytes);
        if let Ok(mut m) = self.file_hashes.lock() {
            m.insert(path.to_path_buf(), h.clone());
        }
        h
    }

    /// Why `dir` must not be handed to kustomize, if it must not: a file it reaches that the
    /// reader refused (too large, an alias bomb, not a regular file, not readable, changed
    /// while read), or kustomizations that reference each other in a loop.
    pub fn preflight(&self, repo: &Repo, closure: &Closure) -> Option<Refusal> {
        if let Some(c) = closure.cycles.first() {
            return Some(Refusal { class: "cycle", file: c.file.clone(), line: Some(c.line), message: c.describe() });
        }
        for f in &closure.files {
            let problem = match repo.files.get(f) {
                Some(sf) => match &sf.docs {
                    Err(e) if e.is_refusal() => Some((Some(e.line), e.message.clone())),
                    _ => None,
                },
                None => self.inspect(repo, f).map(|m| (None, m)),
            };
            if let Some((line, message)) = problem {
                let class = if message.contains("changed while") { "changed" } else { "input-limit" };
                return Some(Refusal { class, file: f.clone(), line, message });
            }
        }
        None
    }

    /// Reads a file kustomize would read that the repo scan did not (a generator input, a
    /// `.json` resource) within the same limits; YAML in it must not be an alias bomb.
    fn inspect(&self, repo: &Repo, file: &str) -> Option<String> {
        let path = repo.abs(file);
        if let Ok(m) = self.inspected.lock()
            && let Some(r) = m.get(&path)
        {
            return r.clone();
        }
        let r = match crate::config::limits::read_file(&path, repo.config.limits.file_bytes) {
            Ok(bytes) => match crate::config::yaml::parse_bytes(&bytes, repo.config.limits.file_bytes) {
                Err(e) if e.kind == crate::config::yaml::YamlErrorKind::Aliases => {
                    Some(format!("line {}: {}", e.line, e.message))
                }
                _ => None,
            },
            Err(crate::config::limits::ReadError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(_) if path.is_dir() => None,
            Err(e) => Some(e.to_string()),
        };
        if let Ok(mut m) = self.inspected.lock() {
            m.insert(path, r.clone());
        }
        r
    }

    /// Builds one kustomization directory (repo-relative), within the repo's limits
    /// (`limits:` in .agentops.yaml): nothing the reader refused reaches kustomize, and
    /// kustomize itself is bounded in time, memory and output.
    pub fn build(&self, repo: &Repo, dir: &str) -> BuildOutput {
        let started = std::time::Instant::now();
        let out = self.build_inner(repo, dir);
        let cache = if out.cached { "hit" } else { "miss" };
        tracing::debug!(
            %dir,
            %cache,
            ok = out.error.is_none(),
            seconds = started.elapsed().as_secs_f64(),
            "kustomize build"
        );
        out
    }

    fn build_inner(&self, repo: &Repo, dir: &str) -> BuildOutput {
        let closure = repo.closure(dir);
        if let Some(r) = self.preflight(repo, &closure) {
            return BuildOutput::failed(r.to_string());
        }
        let key = self.key(repo, dir);
        if let Some((stdout, objects)) = self.cache_get(&key) {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return BuildOutput { stdout, error: None, cached: true, objects: objects.map(std::sync::Arc::new) };
        }
        self.builds.fetch_add(1, Ordering::Relaxed);
        let limits = &repo.config.limits;
        let run = self.kustomize.run_limited(&repo.abs(dir), &repo.root, limits);
        let leaf_file =
            repo.kustomizations.get(dir).map_or_else(|| format!("{dir}/kustomization.yaml"), |k| k.file.clone());
        let stopped = |class: &'static str, message: String| {
            BuildOutput::failed(Refusal { class, file: leaf_file.clone(), line: None, message }.to_string())
        };
        if run.timed_out {
            return stopped(
                "time-limit",
                format!(
                    "kustomize was stopped after {} s (limits.kustomize_seconds in .agentops.yaml). A remote base \
                     or Helm chart waiting on the network, or a very large generator, is the usual cause; raise the \
                     limit if the overlay is simply big",
                    limits.kustomize_seconds
                ),
            );
        }
        if run.output_over {
            return stopped(
                "output-limit",
                format!(
                    "kustomize's output passed {} (limits.render_bytes in .agentops.yaml) and was cut off. Patches \
                     or generators multiplying objects are the usual cause; raise the limit if the overlay is simply big",
                    human_bytes(limits.render_bytes)
                ),
            );
        }
        if !run.success() && run.out_of_memory() {
            return stopped(
                "memory-limit",
                format!(
                    "kustomize ran out of its {} MiB of memory (limits.kustomize_memory_mb in .agentops.yaml). YAML \
                     aliases that expand enormously in a file agentops does not read (a remote base), or a huge \
                     generator, is the usual cause; raise the limit if the overlay is simply big",
                    limits.kustomize_memory_mb
                ),
            );
        }
        // A file that changed while kustomize read it makes the rendering (or the failure)
        // disagree with what the scan read, and would poison the cache: refused.
        if let Some(f) =
            closure.files.iter().find(|f| hash_now(&repo.abs(f), limits.file_bytes) != self.known_hash(repo, f))
        {
            return BuildOutput::failed(
                Refusal {
                    class: "changed",
                    file: f.clone(),
                    line: None,
                    message: "the file changed while agentops read the repo and built this overlay; the result \
                              is not used. Run again once the repo is stable"
                        .into(),
                }
                .to_string(),
            );
        }
        if !run.success() {
            let mut err = run.stderr.trim().to_string();
            if err.is_empty() {
                err = match run.status {
                    Some(s) => format!("kustomize exited with {s}"),
                    None => format!("could not run {}", self.kustomize.program.display()),
                };
            }
            return BuildOutput::failed(err);
        }
        let stdout = String::from_utf8_lossy(&run.stdout).into_owned();
        let objects = crate::config::yaml::parse_values(&stdout).ok();
        self.cache_put(&key, &stdout, objects.as_deref());
        BuildOutput { stdout, error: None, cached: false, objects: objects.map(std::sync::Arc::new) }
    }

    fn entry_path(&self, key: &str) -> Option<PathBuf> {
        self.cache_dir.as_ref().map(|d| d.join(&key[..2]).join(format!("{key}.json")))
    }

    /// A cached rendering, if present and intact. A corrupt or mismatched entry is ignored.
    fn cache_get(&self, key: &str) -> Option<(String, Option<Vec<serde_json::Value>>)> {
        let text = std::fs::read(self.entry_path(key)?).ok()?;
        let entry: CacheEntry = serde_json::from_slice(&text).ok()?;
        let intact = entry.format == CACHE_FORMAT
            && entry.key == key
            && entry.check == blake3::hash(entry.stdout.as_bytes()).to_hex().as_str();
        intact.then_some((entry.stdout, entry.objects))
    }

    /// Stores a successful rendering. Failures are not cached: they are cheap to redo and a
    /// fix outside the known inputs must be seen. Cache write errors only cost speed.
    fn cache_put(&self, key: &str, stdout: &str, objects: Option<&[serde_json::Value]>) {
        let Some(path) = self.entry_path(key) else {
            return;
        };
        let entry = CacheEntry {
            format: CACHE_FORMAT.into(),
            key: key.into(),
            stdout: stdout.into(),
            check: blake3::hash(stdout.as_bytes()).to_hex().to_string(),
            objects: objects.map(<[serde_json::Value]>::to_vec),
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
