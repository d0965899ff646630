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
    if output == Output::Json {
        let summary = serde_json::json!({"lab": lab, "ok": report.ok(), "steps_done": report.done, "failures": report.failures});
        outln!("{}", serde_json::to_string_pretty(&summary).expect("json"));
    } else {
        for f in &report.failures {
            outln!("error: {}: {}", f.resource, f.error);
        }
        if report.ok() {
            outln!("Lab {lab} destroyed.");
        }
    }
    i32::from(!report.ok())
}
