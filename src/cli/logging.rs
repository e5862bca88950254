//! The process's one tracing subscriber: events and spans to stderr only, since stdout
//! carries results (and, for `agentops mcp`, the JSON-RPC protocol). `-v` and `-vv` pick
//! agentops' level; `RUST_LOG` adds directives after them, so it can raise or lower any
//! target (`agentops=debug`, `kube=debug`). With neither, only agentops' warnings print,
//! without timestamps, as the warnings printed before logging existed did.

use tracing_subscriber::EnvFilter;

/// The filter directives for a `-v` count, before `RUST_LOG`.
pub fn base_directives(verbose: u8) -> &'static str {
    match verbose {
        0 => "agentops=warn",
        1 => "agentops=info",
        2 => "agentops=debug",
        // every crate: kube's request spans, hyper, rmcp
        _ => "debug,agentops=trace",
    }
}

/// The filter for a `-v` count and an optional `RUST_LOG` value. A later directive for the
/// same target replaces an earlier one, so `RUST_LOG` wins over the flags; directives it
/// cannot parse are reported on stderr and skipped.
pub fn filter(verbose: u8, rust_log: Option<&str>) -> EnvFilter {
    let mut directives = base_directives(verbose).to_string();
    if let Some(extra) = rust_log.map(str::trim).filter(|s| !s.is_empty()) {
        directives.push(',');
        directives.push_str(extra);
    }
    EnvFilter::builder().parse_lossy(directives)
}

/// Installs the subscriber (once; a second call does nothing).
pub fn init(verbose: u8, rust_log: Option<&str>) {
    let detailed = verbose > 0 || rust_log.is_some_and(|s| !s.trim().is_empty());
    let builder = tracing_subscriber::fmt().with_writer(std::io::stderr).with_env_filter(filter(verbose, rust_log));
    // the default shows warnings only: a short line, no clock
    let _ = if detailed { builder.try_init() } else { builder.without_time().with_target(false).try_init() };
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::Level;

    /// (agentops debug, agentops info, agentops warn, kube-client debug) under a filter.
    fn enabled(verbose: u8, rust_log: Option<&str>) -> (bool, bool, bool, bool) {
        let subscriber =
            tracing_subscriber::fmt().with_env_filter(filter(verbose, rust_log)).with_writer(std::io::sink).finish();
        tracing::subscriber::with_default(subscriber, || {
            (
                tracing::enabled!(target: "agentops::cluster", Level::DEBUG),
                tracing::enabled!(target: "agentops::cluster", Level::INFO),
                tracing::enabled!(target: "agentops::cluster", Level::WARN),
                tracing::enabled!(target: "kube_client::client::builder", Level::DEBUG),
            )
        })
    }

    #[test]
    fn flags_set_the_level_and_rust_log_extends_or_overrides() {
        assert_eq!(enabled(0, None), (false, false, true, false), "default: agentops warnings only");
        assert_eq!(enabled(1, None), (false, true, true, false));
        assert_eq!(enabled(2, None), (true, true, true, false));
        assert_eq!(enabled(3, None), (true, true, true, true));
        assert_eq!(enabled(0, Some("agentops=debug")), (true, true, true, false));
        assert_eq!(enabled(0, Some("kube=debug")), (false, false, true, true), "kube matches kube_client");
        assert_eq!(enabled(2, Some("agentops=error")), (false, false, false, false), "RUST_LOG wins");
        assert_eq!(enabled(1, Some("  ")), (false, true, true, false));
        assert_eq!(enabled(0, Some("agentops=loud")), (false, false, true, false), "skipped");
    }
}
