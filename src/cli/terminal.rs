//! What the CLI shows on the terminal while work runs: the approval prompt of a write step and
//! the progress of long workflows (on stderr, so stdout keeps the results).

use std::io::{BufRead, IsTerminal, Write};
use std::sync::Mutex;

use crate::exec::{Approver, Step};
use crate::workflows::Progress;

/// Asks on the terminal: `y` approves, anything else (or no terminal) denies.
pub struct StdinApprover;

impl Approver for StdinApprover {
    fn approve(&self, step: &Step) -> bool {
        if !std::io::stdin().is_terminal() {
            eprintln!(
                "{} ({:?}) needs approval and there is no terminal to ask on: not run; pass --yes to approve",
                step.tool, step.effect
            );
            return false;
        }
        let mut err = std::io::stderr();
        let args = serde_json::to_string_pretty(&step.args).unwrap_or_default();
        let _ =
            write!(err, "\n{} ({:?})\n  {}\n{}\nApprove? [y/N] ", step.tool, step.effect, step.summary, indent(&args));
        let _ = err.flush();
        let mut line = String::new();
        if std::io::stdin().lock().read_line(&mut line).is_err() {
            return false;
        }
        matches!(line.trim(), "y" | "Y" | "yes" | "Yes")
    }
}

fn indent(s: &str) -> String {
    s.lines().map(|l| format!("    {l}")).collect::<Vec<_>>().join("\n")
}

/// Progress on stderr: on a terminal one transient line naming what settled last, cleared at
/// the end (the result lists everything, and a terminal shows stderr and stdout together);
/// in logs (stderr not a terminal) a line each as it settles.
#[derive(Default)]
pub struct StderrProgress {
    bar: Mutex<Option<indicatif::ProgressBar>>,
}

impl Progress for StderrProgress {
    fn settled(&self, name: &str, line: &str) {
        if !std::io::stderr().is_terminal() {
            eprintln!("  {line}");
            return;
        }
        let Ok(mut bar) = self.bar.lock() else { return };
        let bar = bar.get_or_insert_with(|| {
            let bar = indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr());
            if let Ok(style) = indicatif::ProgressStyle::with_template("{spinner} {msg}") {
                bar.set_style(style);
            }
            bar
        });
        bar.set_message(format!("{name} settled"));
    }

    fn done(&self) {
        if let Ok(mut bar) = self.bar.lock()
            && let Some(bar) = bar.take()
        {
            bar.finish_and_clear();
        }
    }
}

/// The CLI's progress, for a workflow context.
pub fn progress() -> std::sync::Arc<dyn Progress> {
    std::sync::Arc::new(StderrProgress::default())
}
