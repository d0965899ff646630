//! `cloonix apply FILE`: refuse what cannot be applied, then observe, diff, plan, apply in
//! waves, observe again and verify.

use super::Output;
use cloonix::apply;
use cloonix::host::{Lab, intent};
use cloonix::kinds::{self, LIMITS_NOT_ENFORCED};
use cloonix::model::{Endpoint, Loaded};
use cloonix::observe::observe_lab;
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
    let Some(loaded) = super::load(file) else {
        return 1;
    };
    let path = file.display().to_string();
    let Some(desired) = super::desired(&loaded) else {
        return 1;
    };
    let lab = Lab::new(&loaded.topology.name);
    if !refusals(&loaded, &desired, &lab, &path, o.allow_host) {
        return 1;
    }
    let Some(_lock) = super::lock(&lab.name) else {
        return 1;
    };
    let started = Instant::now();
    let observed = observe_lab(&lab);
    let plan = plan::plan(&desired, &observed.graph);
    let previous = intent::read_applied(&lab);
    if o.output == Output::Text {
        if let Some(p) = previous.as_ref().filter(|p| p.file != absolute(file)) {
            println!(
                "note: lab {} was last applied from {} at {}; this apply makes it match {path}",
                lab.name, p.file, p.at
            );
        }
        print!("{}", render_text(&plan, &path, o.verbose));
    }
    let mut containers = false;
    for (name, ep) in &loaded.topology.endpoints {
        if let Endpoint::Cnt(c) = ep {
            containers = true;
            if c.cpu.is_some() || c.ram.is_some() {
                eprintln!("warning: {name}: cpu/ram limits {LIMITS_NOT_ENFORCED}");
            }
        }
    }
    if containers {
        eprintln!("note: {}", cloonix::host::oci::NO_CGROUPS);
    }
    let mut applied = intent::Applied {
        file: absolute(file),
        at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        ok: false,
        topology: loaded.topology.clone(),
    };
    if let Err(e) = intent::write_applied(&lab, &applied) {
        eprintln!("cloonix: {e}");
        return 1;
    }
    let progress = super::progress::Progress::new(plan.steps.len());
    let report = apply::execute(&plan, &desired, &lab, &observed.receipts(), &|line| {
        progress.step(line)
    });
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
        eprintln!("cloonix: {e}");
    }
    if o.output == Output::Json {
        let summary = serde_json::json!({
            "lab": lab.name, "ok": ok, "counts": plan.counts(), "steps_done": report.done,
            "failures": report.failures, "converged": converged,
            "remaining": after.items, "seconds": started.elapsed().as_secs_f64(),
        });
        println!("{}", serde_json::to_string_pretty(&summary).expect("json"));
    } else {
        for f in &report.failures {
            println!("error: {}: {}", f.resource, f.error);
        }
        if report.ok() && !converged {
            println!(
                "error: lab {} does not match {path} after apply; still to do:",
                lab.name
            );
            print!("{}", render_text(&after, &path, true));
        }
        if ok && !plan.is_empty() {
            println!(
                "Applied in {:.2}s: lab {} matches {path}.",
                started.elapsed().as_secs_f64(),
                lab.name
            );
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

/// Prints every reason the file cannot be applied here, each at its place in the file;
/// true when there is none. Nothing is touched either way.
fn refusals(
    loaded: &Loaded,
    desired: &cloonix::graph::Graph,
    lab: &Lab,
    path: &str,
    allow_host: bool,
) -> bool {
    let found = match kinds::preflight_all(lab, desired) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("cloonix: {e}");
            return false;
        }
    };
    let mut lines = Vec::new();
    for (r, refusal) in &found {
        if refusal.host_item && allow_host {
            continue;
        }
        let endpoint = match &r.item {
            cloonix::graph::Item::Endpoint(e) | cloonix::graph::Item::Interface(e, _) => e.as_str(),
            cloonix::graph::Item::Lab | cloonix::graph::Item::Lan(_) => "",
        };
        let pos = loaded.position(endpoint, refusal.field);
        let hint = if refusal.host_item {
            " (allowed with --allow-host)"
        } else {
            ""
        };
        lines.push(format!(
            "{path}:{}:{}: error: {}{hint}",
            pos.line, pos.col, refusal.message
        ));
    }
    lines.sort();
    lines.dedup();
    if !loaded.host_items.is_empty() && !allow_host {
        eprintln!("cloonix: {path} reaches into this host; refusing without --allow-host:");
        for h in &loaded.host_items {
            eprintln!("  {path}:{}:{}: {}", h.pos.line, h.pos.col, h.what);
        }
        if lines.is_empty() {
            return false;
        }
    }
    if lines.is_empty() {
        return true;
    }
    eprintln!(
        "cloonix: lab {} cannot be applied here; nothing was touched:",
        lab.name
    );
    for l in lines {
        eprintln!("{l}");
    }
    false
}
