//! `cloonix apply FILE`: observe, diff, plan, apply in waves, observe again and verify.

use super::Output;
use super::out::{errln, out, outln};
use cloonix::apply::{self, Context};
use cloonix::observe::observe;
use cloonix::plan::{self, render_text};
use std::path::Path;
use std::time::Instant;

pub struct Options {
    pub dry_run: bool,
    pub allow_host: bool,
    pub verbose: bool,
    pub output: Output,
}

pub fn run(file: &Path, o: &Options) -> i32 {
    if o.dry_run {
        return super::diff::run(file, o.verbose, o.output);
    }
    let Some(loaded) = super::load(file, o.output) else {
        return 1;
    };
    let path = file.display().to_string();
    if !loaded.host_items.is_empty() && !o.allow_host {
        errln!("cloonix: {path} reaches into this host; refusing without --allow-host:");
        for h in &loaded.host_items {
            errln!("  {path}:{}:{}: {}", h.pos.line, h.pos.col, h.what);
        }
        return 1;
    }
    let Some(desired) = super::desired(&loaded) else {
        return 1;
    };
    let lab = loaded.topology.name.clone();
    let Some(_lock) = super::lock(&lab) else {
        return 1;
    };
    let started = Instant::now();
    let observed = observe(&lab);
    let plan = plan::plan(&desired, &observed);
    if o.output == Output::Text {
        out!("{}", render_text(&plan, &path, o.verbose));
    }
    for (name, ep) in &loaded.topology.endpoints {
        if let cloonix::model::Endpoint::Cnt(c) = ep
            && (c.cpu.is_some() || c.ram.is_some())
        {
            errln!(
                "warning: {name}: cpu/ram limits {}",
                cloonix::host::crun::LIMITS_NOT_ENFORCED
            );
        }
    }
    let cx = Context::new(&lab);
    let progress = super::progress::Progress::new(plan.steps.len());
    let report = apply::execute(&plan, &desired, &cx, &|line| progress.step(line));
    progress.finish();
    // Verify by observing again; an empty plan changed nothing, so there is nothing to verify.
    let after = if plan.is_empty() {
        plan.clone()
    } else {
        plan::plan(&desired, &observe(&lab))
    };
    let converged = after.is_empty();
    let ok = report.ok() && converged;
    if o.output == Output::Json {
        let summary = serde_json::json!({
            "lab": lab, "ok": ok, "counts": plan.counts(), "steps_done": report.done,
            "failures": report.failures, "converged": converged,
            "remaining": after.items, "seconds": started.elapsed().as_secs_f64(),
        });
        outln!("{}", serde_json::to_string_pretty(&summary).expect("json"));
    } else {
        for f in &report.failures {
            outln!("error: {}: {}", f.resource, f.error);
        }
        if report.ok() && !converged {
            outln!("error: lab {lab} does not match {path} after apply; still to do:");
            out!("{}", render_text(&after, &path, true));
        }
        if ok && !plan.is_empty() {
            outln!(
                "Applied in {:.2}s: lab {lab} matches {path}.",
                started.elapsed().as_secs_f64()
            );
        }
    }
    i32::from(!ok)
}
