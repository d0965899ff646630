//! `cloonix destroy NAME|FILE`: remove a lab and everything it made; 0 also when there was
//! nothing to destroy.

use super::Output;
use super::out::{errln, outln};
use cloonix::apply;
use std::path::Path;

pub fn run(target: &str, output: Output) -> i32 {
    let lab = if Path::new(target).is_file() {
        match super::load(Path::new(target), output) {
            Some(l) => l.topology.name,
            None => return 1,
        }
    } else if cloonix::model::is_name(target) {
        target.to_string()
    } else {
        errln!("cloonix: `{target}` is neither a topology file nor a lab name");
        return 1;
    };
    let Some(_lock) = super::lock(&lab) else {
        return 1;
    };
    let progress = super::progress::Progress::Lines;
    let report = apply::destroy(&lab, &|line| progress.step(line));
    let (existed, ok) = match &report {
        Some(r) => (true, r.ok()),
        None => (false, true),
    };
    if output == Output::Json {
        let summary = serde_json::json!({
            "lab": lab, "ok": ok, "existed": existed,
            "steps_done": report.as_ref().map_or(0, |r| r.done),
            "failures": report.as_ref().map(|r| r.failures.clone()).unwrap_or_default(),
        });
        outln!("{}", serde_json::to_string_pretty(&summary).expect("json"));
    } else {
        match &report {
            None => outln!("Lab {lab}: nothing to destroy."),
            Some(r) if r.ok() => outln!("Lab {lab} destroyed."),
            Some(r) => r
                .failures
                .iter()
                .for_each(|f| outln!("error: {}: {}", f.resource, f.error)),
        }
    }
    i32::from(!ok)
}
