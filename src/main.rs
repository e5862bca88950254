//! The agentops binary: parse the command line, run, map errors to exit codes
//! (0 success, 1 findings or drift, 2 usage or internal errors).

use std::process::ExitCode;

fn main() -> ExitCode {
    match agentops::cli::run() {
        Ok(code) => code,
        Err(e) => {
            let e = anyhow::Error::from(e);
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
