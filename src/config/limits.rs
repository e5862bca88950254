//! Limits on untrusted input: every repo file agentops reads, every kustomize it runs, every
//! HTTP body it receives. A pull request, a cluster or a model endpoint can send anything;
//! what agentops takes from them is bounded in size and time, and going over a limit is a
//! clear message that names the limit and the `.agentops.yaml` key that raises it
//! (`limits:`, see docs/configuration.md and docs/validate.md).

use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::config::yaml::YamlErrorKind;

/// `limits:` in `.agentops.yaml`. Every key is optional.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest repo file agentops reads or lets kustomize read, in bytes (default 16 MiB).
    pub file_bytes: u64,
    /// Wall-clock limit of one kustomize run, in seconds (default 120).
    pub kustomize_seconds: u64,
    /// Memory limit of one kustomize run, in MiB (default 2048): the data segment rlimit of the
    /// child process (RLIMIT_DATA), with GOMEMLIMIT at half of it unless GOMEMLIMIT is set.
    pub kustomize_memory_mb: u64,
    /// Largest rendering read from one kustomize run, in bytes (default 64 MiB).
    pub render_bytes: u64,
    /// Largest HTTP response body read from a cluster or Prometheus, in bytes (default 64 MiB).
    pub response_bytes: u64,
}

pub const DEFAULT_FILE_BYTES: u64 = 16 << 20;
pub const DEFAULT_RESPONSE_BYTES: u64 = 64 << 20;
/// A model's answer (a chat completion) is far smaller than a cluster's list; this bounds it.
pub const MODEL_RESPONSE_BYTES: u64 = 16 << 20;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            file_bytes: DEFAULT_FILE_BYTES,
            kustomize_seconds: 120,
            kustomize_memory_mb: 2048,
            render_bytes: 64 << 20,
            response_bytes: DEFAULT_RESPONSE_BYTES,
        }
    }
}

/// Bytes for people: "12.0 MiB", "640 KiB", "512 bytes".
pub fn human_bytes(n: u64) -> String {
    const MIB: u64 = 1 << 20;
    if n >= MIB {
        format!("{:.1} MiB", n as f64 / MIB as f64)
    } else if n >= 1024 {
        format!("{} KiB", n / 1024)
    } else {
        format!("{n} bytes")
    }
}

/// Why a file was not read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error(
        "the file is {}, over the {} per-file limit; agentops does not read it and does not hand it to kustomize. \
         Split it, or raise limits.file_bytes in .agentops.yaml",
        human_bytes(*size),
        human_bytes(*limit)
    )]
    TooLarge { size: u64, limit: u64 },
    #[error("not a regular file ({0}); agentops reads only regular files (a FIFO or device would block or never end)")]
    NotRegular(&'static str),
    #[error("the file changed while agentops read it ({0}); run again once it is stable")]
    Changed(String),
    #[error("cannot read it: {0}")]
    Io(std::io::Error),
}

impl ReadError {
    pub fn yaml_kind(&self) -> YamlErrorKind {
        match self {
            ReadError::TooLarge { .. } => YamlErrorKind::TooLarge,
            _ => YamlErrorKind::Unreadable,
        }
    }
}

fn file_kind(t: std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() {
            return "a FIFO";
        }
        if t.is_socket() {
            return "a socket";
        }
        if t.is_char_device() || t.is_block_device() {
            return "a device";
        }
    }
    if t.is_dir() { "a directory" } else { "not a regular file" }
}

/// Reads a whole file of at most `limit` bytes. Refuses what is not a regular file before
/// opening it (and again on the open file, so a swap cannot slip a FIFO in), a file larger
/// than the limit without reading it, and a file whose size or modification time changed
/// while it was read.
pub fn read_file(path: &Path, limit: u64) -> Result<Vec<u8>, ReadError> {
    let before = std::fs::metadata(path).map_err(ReadError::Io)?;
    if !before.is_file() {
        return Err(ReadError::NotRegular(file_kind(before.file_type())));
    }
    if before.len() > limit {
        return Err(ReadError::TooLarge { size: before.len(), limit });
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // never block in open() on a FIFO swapped in after the check above
        opts.custom_flags(libc::O_NONBLOCK);
    }
    let file = opts.open(path).map_err(ReadError::Io)?;
    let opened = file.metadata().map_err(ReadError::Io)?;
    if !opened.is_file() {
        return Err(ReadError::NotRegular(file_kind(opened.file_type())));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(opened.len().min(limit)).unwrap_or(0));
    let mut take = (&file).take(limit.saturating_add(1));
    take.read_to_end(&mut bytes).map_err(ReadError::Io)?;
    let read = bytes.len() as u64;
    if read > limit {
        return Err(ReadError::TooLarge { size: read, limit });
    }
    let after = file.metadata().map_err(ReadError::Io)?;
    let changed = if read != before.len() || after.len() != before.len() {
        Some(format!("{} bytes when agentops looked, {read} read, {} after", before.len(), after.len()))
    } else if after.modified().ok() != before.modified().ok() {
        Some("modified during the read".to_string())
    } else {
        None
    };
    match changed {
        Some(c) => Err(ReadError::Changed(c)),
        None => Ok(bytes),
    }
}

/// Reads a whole text file within the limit (not UTF-8: an error naming the line).
pub fn read_text(path: &Path, limit: u64) -> Result<String, crate::Error> {
    let io = |m: String| crate::Error::Io { path: path.display().to_string(), err: std::io::Error::other(m) };
    let bytes = read_file(path, limit).map_err(|e| match e {
        ReadError::Io(err) => crate::Error::Io { path: path.display().to_string(), err },
        other => io(other.to_string()),
    })?;
    String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let line = e.as_bytes().get(..at).unwrap_or_default().iter().filter(|b| **b == b'\n').count() + 1;
        io(format!("not UTF-8 text (line {line})"))
    })
}

/// A body went over its limit.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "{what} sent more than {}{}; agentops refused it without reading the rest. {hint}",
    human_bytes(*limit),
    size.map(|s| format!(" (a response of {})", human_bytes(s))).unwrap_or_default()
)]
pub struct BodyTooLarge {
    pub what: String,
    pub limit: u64,
    /// The size the sender announced, when it did.
    pub size: Option<u64>,
    pub hint: &'static str,
}

/// Reads a reqwest response body of at most `limit` bytes: refused on a larger
/// Content-Length before reading, and stopped as soon as the bytes pass the limit.
pub async fn read_body(
    mut resp: reqwest::Response,
    limit: u64,
    what: &str,
    hint: &'static str,
) -> Result<Vec<u8>, BodyLimitError> {
    let too_large = |size: Option<u64>| BodyTooLarge { what: what.to_string(), limit, size, hint };
    if let Some(len) = resp.content_length()
        && len > limit
    {
        return Err(BodyLimitError::TooLarge(too_large(Some(len))));
    }
    let mut out = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(BodyLimitError::Http)? {
        if (out.len() + chunk.len()) as u64 > limit {
            return Err(BodyLimitError::TooLarge(too_large(None)));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

#[derive(Debug, thiserror::Error)]
pub enum BodyLimitError {
    #[error("{0}")]
    TooLarge(BodyTooLarge),
    #[error("{0}")]
    Http(reqwest::Error),
}

/// Whether an error (or any error in its source chain) is a body limit being passed, and its
/// message when it is.
pub fn body_limit_in(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(b) = err.downcast_ref::<BodyTooLarge>() {
            return Some(b.to_string());
        }
        cur = err.source();
    }
    None
}

/// A tower layer that bounds every response body of an HTTP client (kube's): a larger
/// Content-Length is refused before the body is read, and a body that streams past the limit
/// fails with [`BodyTooLarge`] at the first byte over it. Watches are exempt: a watch is a
/// stream that lasts, not one answer.
#[derive(Debug, Clone)]
pub struct ResponseLimitLayer {
    pub limit: u64,
    pub what: String,
}

impl<S> tower::Layer<S> for ResponseLimitLayer {
    type Service = ResponseLimit<S>;
    fn layer(&self, inner: S) -> ResponseLimit<S> {
        ResponseLimit { inner, limit: self.limit, what: self.what.clone() }
    }
}

#[derive(Debug, Clone)]
pub struct ResponseLimit<S> {
    inner: S,
    limit: u64,
    what: String,
}

const CLUSTER_HINT: &str = "Narrow the query (a namespace, a label selector, one name), or raise limits.response_bytes \
                            in .agentops.yaml";

impl<S, ReqB, B> tower::Service<http::Request<ReqB>> for ResponseLimit<S>
where
    S: tower::Service<http::Request<ReqB>, Response = http::Response<B>>,
    S::Error: Into<tower::BoxError>,
    S::Future: Send + 'static,
    B: http_body::Body<Data = bytes::Bytes> + Unpin,
    B::Error: Into<tower::BoxError>,
{
    type Response = http::Response<LimitedBody<B>>;
    type Error = tower::BoxError;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: http::Request<ReqB>) -> Self::Future {
        let watch = req.uri().query().is_some_and(|q| q.split('&').any(|p| p == "watch=true" || p == "watch=1"));
        let limit = if watch { u64::MAX } else { self.limit };
        let what = format!("{} ({} {})", self.what, req.method(), req.uri().path());
        let fut = self.inner.call(req);
        Box::pin(async move {
            let resp = fut.await.map_err(Into::into)?;
            let announced = resp
                .headers()
                .get(http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            if let Some(len) = announced
                && len > limit
            {
                let e = BodyTooLarge { what, limit, size: Some(len), hint: CLUSTER_HINT };
                return Err(Box::new(e) as tower::BoxError);
            }
            Ok(resp.map(|inner| LimitedBody::new(inner, limit, what, CLUSTER_HINT, None)))
        })
    }
}

/// A response body that fails once it passes its limit (at once, when its announced length
/// does).
#[derive(Debug)]
pub struct LimitedBody<B> {
    inner: B,
    limit: u64,
    read: u64,
    what: String,
    hint: &'static str,
    announced: Option<u64>,
}

impl<B> LimitedBody<B> {
    pub fn new(inner: B, limit: u64, what: String, hint: &'static str, announced: Option<u64>) -> LimitedBody<B> {
        LimitedBody { inner, limit, read: 0, what, hint, announced }
    }

    fn too_large(&mut self) -> tower::BoxError {
        let what = std::mem::take(&mut self.what);
        Box::new(BodyTooLarge { what, limit: self.limit, size: self.announced, hint: self.hint })
    }
}

/// A reqwest response whose body fails once it passes `limit` bytes (at the first read when
/// its Content-Length already does), for readers that take the body themselves (async-openai).
pub fn bound_response(resp: reqwest::Response, limit: u64, what: &str, hint: &'static str) -> reqwest::Response {
    use reqwest::ResponseBuilderExt;
    let url = resp.url().clone();
    let announced = resp.content_length().filter(|n| *n > limit);
    let (parts, body) = http::Response::<reqwest::Body>::from(resp).into_parts();
    let body = reqwest::Body::wrap(LimitedBody::new(body, limit, what.to_string(), hint, announced));
    let mut out = http::Response::new(body);
    *out.status_mut() = parts.status;
    *out.version_mut() = parts.version;
    *out.headers_mut() = parts.headers;
    let mut builder = http::response::Builder::new().url(url);
    if let Some(ext) = builder.extensions_mut() {
        out.extensions_mut().extend(std::mem::take(ext));
    }
    reqwest::Response::from(out)
}

impl<B> http_body::Body for LimitedBody<B>
where
    B: http_body::Body<Data = bytes::Bytes> + Unpin,
    B::Error: Into<tower::BoxError>,
{
    type Data = bytes::Bytes;
    type Error = tower::BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, Self::Error>>> {
        use std::task::Poll;
        let this = &mut *self;
        if this.announced.is_some() {
            return Poll::Ready(Some(Err(this.too_large())));
        }
        match std::pin::Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                this.read = this.read.saturating_add(frame.data_ref().map_or(0, |d| d.len() as u64));
                if this.read > this.limit {
                    return Poll::Ready(Some(Err(this.too_large())));
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_within_the_limit_and_refuses_beyond() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.yaml");
        std::fs::write(&p, "a: 1\n").unwrap();
        assert_eq!(read_file(&p, 5).unwrap(), b"a: 1\n");
        let err = read_file(&p, 4).unwrap_err();
        assert!(matches!(err, ReadError::TooLarge { size: 5, limit: 4 }), "{err:?}");
        assert!(err.to_string().contains("limits.file_bytes"), "{err}");
        let err = read_file(dir.path(), 100).unwrap_err();
        assert!(matches!(err, ReadError::NotRegular("a directory")), "{err:?}");
    }

    #[cfg(unix)]
    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pipe.yaml");
        let ok = std::process::Command::new("mkfifo").arg(&p).status().is_ok_and(|s| s.success());
        assert!(ok, "mkfifo");
        let err = read_file(&p, 100).unwrap_err();
        assert!(matches!(err, ReadError::NotRegular("a FIFO")), "{err:?}");
    }

    #[cfg(unix)]
    #[test]
    fn a_symlink_loop_is_an_error_not_a_hang() {
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(dir.path().join("b.yaml"), dir.path().join("a.yaml")).unwrap();
        std::os::unix::fs::symlink(dir.path().join("a.yaml"), dir.path().join("b.yaml")).unwrap();
        let err = read_file(&dir.path().join("a.yaml"), 100).unwrap_err();
        assert!(matches!(err, ReadError::Io(_)), "{err:?}");
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human_bytes(512), "512 bytes");
        assert_eq!(human_bytes(2048), "2 KiB");
        assert_eq!(human_bytes(50 << 20), "50.0 MiB");
    }
}
