//! `cloonix apply FILE`: refuse what cannot be applied, then observe, diff, plan, apply in
//! waves, observe again and verify.

use super::Output;
use super::out::{errln, out, outln};
use cloonix::apply;
use cloonix::host::{Lab, intent};
use cloonix::kinds::LIMITS_NOT_ENFORCED;
use cloonix::model::{Endpoint, Loaded};
use cloonix::observe::observe_lab;
use cloonix::plan::{self, render_text};
use std::path::Path;
use std::time::Instant;

pub struct Options {
    pub dry_run: bool,
    pub allow_host: bool,
    /// `--wait [--timeout D]`: run the file's checks after a successful apply.
    pub wait: Option<Option<cloonix::model::units::Duration>>,
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
    let Some(desired) = super::desired(&loaded) else {
        return 1;
    };
    let lab = Lab::new(&loaded.topology.name);
    if !refusals(&loaded, &desired, &lab, &path, o) {
        return 1;
    }
    let Some(_lock) = super::lock(&lab.name) else {
        return 1;
    };
    let started = Instant::now();
    // What killed captures left: not part of the lab, and not the plan's to show.
    match cloonix::capture::reap(&lab) {
        Ok(gone) if !gone.is_empty() => {
            errln!("removed what killed captures left: {}", gone.join(", "))
        }
        Ok(_) => {}
        Err(e) => errln!("warning: could not remove what killed captures left: {e}"),
    }
    let observed = observe_lab(&lab);
    let plan = plan::plan(&desired, &observed.graph);
    let previous = intent::read_applied(&lab);
    if o.output == Output::Text {
        if let Some(p) = previous.as_ref().filter(|p| p.file != absolute(file)) {
            outln!(
                "note: lab {} was last applied from {} at {}; this apply makes it match {path}",
                lab.name,
                p.file,
                p.at
            );
        }
        out!("{}", render_text(&plan, &path, o.verbose));
    }
    let mut containers = false;
    for (name, ep) in &loaded.topology.endpoints {
        // podman and docker enforce limits with cgroups of their own.
        if let Endpoint::Cnt(c) = ep
            && c.runtime.engine().is_none()
        {
            containers = true;
            if (c.cpu.is_some() || c.ram.is_some()) && !cloonix::host::cgroups::held() {
                errln!("warning: {name}: cpu/ram limits {LIMITS_NOT_ENFORCED}");
            }
        }
    }
    if let (true, Some(note)) = (containers, cloonix::host::cgroups::unusable_note()) {
        errln!("note: {note}");
    }
    let mut applied = intent::Applied {
        file: absolute(file),
        at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        ok: false,
        topology: loaded.topology.clone(),
    };
    if let Err(e) = intent::write_applied(&lab, &applied) {
        errln!("cloonix: {e}");
        return 1;
    }
    let progress = super::progress::Progress::new(plan.steps.len());
    let report = apply::execute(
        &plan,
        &desired,
        &lab,
        &observed.receipts(),
        &|line| progress.step(line),
        &|line| progress.note(line),
    );
    progress.finish();
    // Verify by observing again; an empty plan changed nothing, so there is nothing to verify.
    let after = if plan.is_empty() {
        plan.clone()
    } else {
        plan::plan(&desired, &observe_lab(&lab).graph)
    };
    let converged = after.is_empty();
    let ok = report.ok() && converged;
    applied.ok = ok;
    if let Err(e) = intent::write_applied(&lab, &applied) {
        errln!("cloonix: {e}");
    }
    let seconds = started.elapsed().as_secs_f64();
    if o.output == Output::Json {
        let mut summary = serde_json::json!({
            "lab": lab.name, "ok": ok, "counts": plan.counts(), "steps_done": report.done,
            "failures": report.failures, "converged": converged,
            "remaining": after.items, "seconds": seconds,
        });
        if let (true, Some(timeout)) = (ok, o.wait) {
            // The checks only read the lab: another apply need not wait for them.
            drop(_lock);
            let (passed, checks) =
                super::check::wait(&lab.name, &loaded.topology.checks, timeout, o.output);
            summary["applied"] = true.into();
            summary["ok"] = passed.into();
            summary["checks"] = checks;
            outln!("{}", serde_json::to_string_pretty(&summary).expect("json"));
            return i32::from(!passed);
        }
        outln!("{}", serde_json::to_string_pretty(&summary).expect("json"));
    } else {
        for f in &report.failures {
            outln!("error: {}: {}", f.resource, f.error);
        }
        if report.ok() && !converged {
            outln!(
                "error: lab {} does not match {path} after apply; still to do:",
                lab.name
            );
            out!("{}", render_text(&after, &path, true));
        }
        if ok && !plan.is_empty() {
            outln!("Applied in {seconds:.2}s: lab {} matches {path}.", lab.name);
        }
        if let (true, Some(timeout)) = (ok, o.wait) {
            drop(_lock);
            let (passed, _) =
                super::check::wait(&lab.name, &loaded.topology.checks, timeout, o.output);
            return i32::from(!passed);
        }
    }
    i32::from(!ok)
}

/// The file's path as the lab's record keeps it.
fn absolute(file: &Path) -> String {
    std::path::absolute(file)
        .unwrap_or_else(|_| file.to_path_buf())
        .display()
        .to_string()
}

/// Every reason the file cannot be applied here, at its place in the file (see
/// [`super::refusals`]), printed as text or as the JSON report of a failed load; true when
/// there is none. Nothing is touched either way.
fn refusals(
    loaded: &Loaded,
    desired: &cloonix::graph::Graph,
    lab: &Lab,
    path: &str,
    o: &Options,
) -> bool {
    let mut errors: Vec<(cloonix::diag::Pos, String)> = match super::refusals(loaded, desired, lab)
    {
        Ok(all) => all
            .into_iter()
            .filter(|r| !(r.host_item && o.allow_host))
            .map(|r| (r.pos, r.message))
            .collect(),
        Err(e) => {
            errln!("cloonix: {e}");
            return false;
        }
    };
    errors.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    errors.dedup();
    if errors.is_empty() {
        return true;
    }
    if o.output == Output::Json {
        let list: Vec<serde_json::Value> = errors
            .iter()
            .map(|(pos, m)| serde_json::json!({"line": pos.line, "col": pos.col, "message": m, "hint": ""}))
            .collect();
        let report = serde_json::json!({"file": path, "valid": true, "ok": false, "errors": list});
        outln!("{}", serde_json::to_string_pretty(&report).expect("json"));
    }
    errln!(
        "cloonix: lab {} cannot be applied here; nothing was touched:",
        lab.name
    );
    for (pos, m) in &errors {
        errln!("{path}:{}:{}: error: {m}", pos.line, pos.col);
    }
    false
}
