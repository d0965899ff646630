//! `cloonix check FILE|LAB` and `cloonix apply --wait`: run a lab's checks, each tried
//! until its `within`, and report which passed and which failed (with the last output),
//! and how long each took; exit 0 only when all pass.
//!
//! The report goes to stdout, written for a CI log: one line per check in the file's
//! order, the output of each failed one beneath it, and a last line that says it all.
//! Each check is also told on stderr as it ends, so a long wait shows its progress.

use super::Output;
use super::out::{errln, outln};
use cloonix::checks::{self, Outcome};
use cloonix::host::{Lab, intent};
use cloonix::model::Check;
use cloonix::model::units::Duration;
use std::path::Path;
use std::time::Instant;

pub fn run(target: &str, timeout: Option<Duration>, output: Output) -> i32 {
    let (lab, list) = if target == "-" || Path::new(target).is_file() {
        let Some(loaded) = super::load(Path::new(target), output) else {
            return 1;
        };
        let lab = loaded.topology.name.clone();
        if !cloonix::apply::labs().contains(&lab) {
            errln!("cloonix: lab {lab} is not on this host: `cloonix apply {target}` first");
            return 1;
        }
        (lab, loaded.topology.checks)
    } else if cloonix::model::is_name(target) {
        match intent::read_applied(&Lab::new(target)) {
            Some(applied) => (target.to_string(), applied.topology.checks),
            None if cloonix::apply::labs().iter().any(|l| l == target) => {
                errln!("cloonix: lab {target} has no record of an apply to take checks from");
                return 1;
            }
            None => {
                errln!("cloonix: no lab {target} on this host");
                return 1;
            }
        }
    } else {
        errln!("cloonix: `{target}` is neither a topology file nor a lab name");
        return 1;
    };
    let (ok, report) = wait(&lab, &list, timeout, output);
    if output == Output::Json {
        outln!("{}", serde_json::to_string_pretty(&report).expect("json"));
    }
    i32::from(!ok)
}

/// Runs the checks of `lab`, printing the text report (unless `output` is JSON): whether
/// all passed, and the report as JSON.
pub fn wait(
    lab: &str,
    list: &[Check],
    timeout: Option<Duration>,
    output: Output,
) -> (bool, serde_json::Value) {
    let text = output == Output::Text;
    if list.is_empty() {
        if text {
            outln!("Lab {lab} has no checks.");
        }
        let report = serde_json::json!({"lab": lab, "ok": true, "passed": 0, "failed": 0,
            "seconds": 0.0, "checks": []});
        return (true, report);
    }
    let limit = timeout.map(|d| std::time::Duration::from_millis(d.0));
    let longest = list.iter().map(|c| c.within.0).max().unwrap_or(0);
    let wait_ms = limit.map_or(longest, |l| (l.as_millis() as u64).min(longest));
    errln!(
        "checking lab {lab}: {} check{}, waiting up to {}",
        list.len(),
        if list.len() == 1 { "" } else { "s" },
        Duration(wait_ms)
    );
    let host_lab = Lab::new(lab);
    let exec = checks::in_lab(&host_lab);
    let started = Instant::now();
    let outcomes = checks::run(list, limit, &exec, &|o| {
        let how = if o.ok { "passed" } else { "FAILED" };
        errln!(
            "  check #{} {how} after {:.1}s: {}: {}",
            o.index,
            o.seconds,
            o.from,
            o.check
        );
    });
    let seconds = started.elapsed().as_secs_f64();
    let failed: Vec<&Outcome> = outcomes.iter().filter(|o| !o.ok).collect();
    if text {
        print_report(lab, &outcomes, seconds);
    }
    let report = serde_json::json!({
        "lab": lab, "ok": failed.is_empty(), "passed": outcomes.len() - failed.len(),
        "failed": failed.len(), "seconds": seconds, "checks": outcomes,
    });
    (failed.is_empty(), report)
}

fn print_report(lab: &str, outcomes: &[Outcome], seconds: f64) {
    outln!("Checks of lab {lab}:");
    let width = outcomes
        .iter()
        .map(|o| o.from.len() + o.check.len())
        .max()
        .unwrap_or(0)
        + 2;
    for o in outcomes {
        let what = format!("{}: {}", o.from, o.check);
        let tries = if o.tries == 1 { "try" } else { "tries" };
        outln!(
            "  {:<4} #{:<3} {what:<width$} {:>6.1}s  {} {tries}",
            if o.ok { "ok" } else { "FAIL" },
            o.index,
            o.seconds,
            o.tries
        );
        if !o.ok {
            let last = match (&o.error, o.exit_code) {
                (Some(e), _) => e.clone(),
                (None, Some(code)) => format!("exit code {code}"),
                (None, None) => "killed".into(),
            };
            outln!("         last try: {last}");
            for line in o.output.lines() {
                outln!("{}", format!("         | {line}").trim_end());
            }
        }
    }
    let failed: Vec<String> = outcomes
        .iter()
        .filter(|o| !o.ok)
        .map(|o| format!("#{} ({}: {})", o.index, o.from, o.check))
        .collect();
    if failed.is_empty() {
        outln!(
            "All {} checks of lab {lab} passed in {seconds:.1}s.",
            outcomes.len()
        );
    } else {
        outln!(
            "{} of {} checks of lab {lab} failed after {seconds:.1}s: {}",
            failed.len(),
            outcomes.len(),
            failed.join(", ")
        );
    }
}
