//! Progress on stderr: a bar on a terminal, one plain line per step elsewhere (CI logs).
//! Failures are always printed as lines, so they stay on screen.

use super::out::errln;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;

pub enum Progress {
    Bar(ProgressBar),
    Lines,
}

impl Progress {
    pub fn new(steps: usize) -> Progress {
        if !std::io::stderr().is_terminal() || steps == 0 {
            return Progress::Lines;
        }
        let bar = ProgressBar::new(steps as u64);
        bar.set_style(
            ProgressStyle::with_template("  [{bar:30}] {pos}/{len} {wide_msg}")
                .expect("a valid template")
                .progress_chars("=> "),
        );
        Progress::Bar(bar)
    }

    /// Told of each step as it ends.
    pub fn step(&self, line: &str) {
        match self {
            Progress::Bar(bar) if !line.starts_with("FAILED") => {
                bar.inc(1);
                bar.set_message(line.to_string());
            }
            Progress::Bar(bar) => {
                bar.inc(1);
                bar.println(format!("  {line}"));
            }
            Progress::Lines => errln!("  {line}"),
        }
    }

    /// Told of what a long step is doing (an image build): the bar's message on a
    /// terminal, a line elsewhere; never counted as a step.
    pub fn note(&self, line: &str) {
        match self {
            Progress::Bar(bar) => bar.set_message(line.to_string()),
            Progress::Lines => errln!("  {line}"),
        }
    }

    pub fn finish(&self) {
        if let Progress::Bar(bar) = self {
            bar.finish_and_clear();
        }
    }
}
