//! `cloonix status [NAME]`: the labs, or one lab's switch, lans, endpoints, interfaces,
//! health and run results, and what its last apply asked for that it lacks; `-o yaml` is a
//! topology file that reproduces the lab. Exit 0 when the lab is up, 1 otherwise.

use super::out::{errln, out, outln};
use cloonix::apply;
use cloonix::graph;
use cloonix::host::{Lab, intent};
use cloonix::model::to_yaml;
use cloonix::observe::observe_lab;
use cloonix::plan;
use cloonix::status::{Health, LabStatus, LastApply};

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Yaml,
    Json,
}

pub fn run(lab: Option<&str>, format: Format) -> i32 {
    let Some(name) = lab else {
        let labs = apply::labs();
        match format {
            Format::Json => outln!("{}", serde_json::json!({"labs": labs})),
            _ => labs.iter().for_each(|l| outln!("{l}")),
        }
        return 0;
    };
    if !cloonix::model::is_name(name) {
        errln!("cloonix: no lab {name}");
        return 1;
    }
    let lab = Lab::new(name);
    let observed = observe_lab(&lab);
    if !observed.exists() {
        errln!("cloonix: no lab {name}");
        return 1;
    }
    let mut status = observed.status();
    if let Some(applied) = intent::read_applied(&lab) {
        status.pending = pending(&applied.topology, &observed.graph);
        status.last_apply = Some(LastApply {
            file: applied.file,
            at: applied.at,
            ok: applied.ok,
        });
        status.settle();
    }
    let topology = graph::to_topology(&observed.graph);
    match format {
        Format::Yaml => out!("{}", to_yaml(&topology)),
        Format::Json => {
            let mut value = serde_json::to_value(&status).expect("json");
            value["topology"] = serde_json::to_value(&topology).expect("json");
            outln!("{}", serde_json::to_string_pretty(&value).expect("json"));
        }
        Format::Table => out!("{}", table(&status)),
    }
    i32::from(status.state != Health::Up)
}

/// What the last apply asked for and the lab lacks or has otherwise, as plan lines.
fn pending(asked: &cloonix::model::Topology, observed: &graph::Graph) -> Vec<String> {
    let Ok(desired) = graph::desired(asked) else {
        return Vec::new();
    };
    let plan = plan::plan(&desired, observed);
    plan::render_text(&plan, "", false)
        .lines()
        .filter(|l| {
            let t = l.trim_start();
            ["+ ", "- ", "~ ", "-/+ "].iter().any(|p| t.starts_with(p))
        })
        .map(|l| l.trim().to_string())
        .collect()
}

fn table(s: &LabStatus) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = write!(out, "lab {}: {}", s.lab, s.state.as_str());
    if let Some(a) = &s.last_apply {
        let how = if a.ok { "" } else { " (that apply failed)" };
        let _ = write!(out, "  last applied from {} at {}{how}", a.file, a.at);
    }
    let _ = writeln!(out);
    let daemons: Vec<String> = s
        .switch
        .daemons
        .iter()
        .map(|(n, d)| {
            let state = if d.running { "" } else { " NOT RUNNING" };
            format!("{n} pid {}{state}", d.pid)
        })
        .collect();
    let _ = writeln!(
        out,
        "  switch {}  datapath {}  {}",
        s.switch.state.as_str(),
        s.switch.datapath.as_deref().unwrap_or("-"),
        daemons.join(", ")
    );
    for (name, lan) in &s.lans {
        let _ = writeln!(out, "  lan {name}  {}  mtu {}", lan.state.as_str(), lan.mtu);
    }
    for (name, ep) in &s.endpoints {
        let pid = ep.pid.map(|p| format!("  pid {p}")).unwrap_or_default();
        let _ = writeln!(out, "  {} {name}  {}{pid}", ep.kind, ep.state.as_str());
        for (iface, i) in &ep.interfaces {
            let state = match i.state {
                Health::Up => String::new(),
                other => format!("  {}", other.as_str()),
            };
            let _ = writeln!(
                out,
                "    {iface}  {}  {}  {}{state}",
                i.lan.as_deref().unwrap_or("-"),
                i.mac.as_deref().unwrap_or("-"),
                i.ips.join(" ")
            );
        }
        if let Some(a) = &ep.a2b {
            for (dir, d) in [("a_to_b", &a.a_to_b), ("b_to_a", &a.b_to_a)] {
                let _ = writeln!(out, "    {dir}  {}", direction(d));
            }
        }
        if let Some(c) = &ep.c2c {
            let seen = c
                .last_seen_ms
                .map(|ms| format!("{:.1}s ago", ms as f64 / 1000.0))
                .unwrap_or_else(|| "never".into());
            let _ = writeln!(
                out,
                "    link {}  {} {} -> {}  vni {}  last seen {seen}  loss {}%  frames out {} in {} dropped {}",
                c.state.as_str(),
                serde_json::to_value(c.role)
                    .ok()
                    .and_then(|v| v.as_str().map(String::from))
                    .unwrap_or_default(),
                c.local,
                c.peer.as_deref().unwrap_or("-"),
                c.vni,
                c.loss,
                c.frames_out,
                c.frames_in,
                c.dropped
            );
        }
        for r in &ep.run {
            let state = if r.ok() {
                "ok".to_string()
            } else {
                cloonix::kinds::describe_failure(r)
            };
            let _ = writeln!(out, "    run `{}`: {state}", r.command);
        }
        for n in &ep.notes {
            let _ = writeln!(out, "    {n}");
        }
        for p in &ep.problems {
            let _ = writeln!(out, "    problem: {p}");
        }
    }
    for n in &s.notes {
        let _ = writeln!(out, "  note: {n}");
    }
    if !s.pending.is_empty() {
        let _ = writeln!(
            out,
            "  not as the last apply asked (the next apply does it):"
        );
        for p in &s.pending {
            let _ = writeln!(out, "    {p}");
        }
    }
    out
}

/// One direction of an a2b: its settings, then what it did.
fn direction(d: &cloonix::status::DirectionStatus) -> String {
    let s = d.settings;
    let mut parts: Vec<String> = Vec::new();
    if let Some(v) = s.delay {
        parts.push(format!("delay {v}"));
    }
    if let Some(v) = s.jitter {
        parts.push(format!("jitter {v}"));
    }
    if let Some(v) = s.loss {
        parts.push(format!("loss {v}"));
    }
    if let Some(v) = s.rate {
        parts.push(format!("rate {v}"));
    }
    if parts.is_empty() {
        parts.push("unimpaired".into());
    }
    let c = d.counters;
    format!(
        "{}  forwarded {}  dropped by loss {}  dropped by queue {}  queued {}",
        parts.join(" "),
        c.forwarded,
        c.dropped_loss,
        c.dropped_queue,
        d.queued
    )
}
