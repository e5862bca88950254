//! The agentops binary: parse the command line, run, map errors to exit codes
//! (0 success, 1 findings or drift, 2 usage or internal errors; 141 when the reader of its
//! output went away, as for a process ended by SIGPIPE).

use std::any::Any;
use std::process::ExitCode;

/// Whether a panic is `println!` failing because stdout's reader closed the pipe
/// (`agentops journal | head -1`).
fn is_broken_pipe(payload: &(dyn Any + Send)) -> bool {
    let text = payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied())
        .unwrap_or_default();
    text.starts_with("failed printing to std") && text.contains("Broken pipe")
}

fn main() -> ExitCode {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !is_broken_pipe(info.payload()) {
            default_hook(info);
        }
    }));
    match std::panic::catch_unwind(agentops::cli::run) {
        Ok(Ok(code)) => code,
        Ok(Err(e)) => {
            let e = anyhow::Error::from(e);
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
        Err(p) if is_broken_pipe(&*p) => ExitCode::from(141),
        Err(p) => std::panic::resume_unwind(p),
    }
}
