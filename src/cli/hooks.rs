//! `agentops hooks install`: the `prepare-commit-msg` hook that fills the editor of a plain
//! `git commit` with the drafted message.

use std::process::ExitCode;

use clap::Subcommand;

use crate::error::{Error, Result};

use super::Global;

#[derive(Debug, Subcommand)]
pub enum HooksCommand {
    /// Install .git/hooks/prepare-commit-msg (never overwrites -m/-F, merge, squash or amend
    /// messages).
    Install {
        /// Replace an existing hook that agentops did not write.
        #[arg(long)]
        force: bool,
    },
}

pub async fn run(global: &Global, cmd: HooksCommand) -> Result<ExitCode> {
    match cmd {
        HooksCommand::Install { force } => {
            let exe = std::env::current_exe()
                .map_err(|e| Error::Internal(format!("cannot find the agentops executable: {e}")))?;
            let path = crate::workflows::commit::hook::install(&global.repo, &exe, force)?;
            println!("installed {}", path.display());
            Ok(ExitCode::SUCCESS)
        }
    }
}
