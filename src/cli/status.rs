//! `cloonix status [NAME]`: the labs, or one lab's lans, endpoints, interfaces, health and
//! run results; `-o yaml` is a topology file that reproduces the lab.

use super::out::{errln, out, outln};
use cloonix::apply::{self, Context};
use cloonix::graph::{self, Item, Spec};
use cloonix::host::crun;
use cloonix::model::to_yaml;
use cloonix::observe::observe;

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Yaml,
    Json,
}

pub fn run(lab: Option<&str>, format: Format) -> i32 {
    let Some(lab) = lab else {
        let labs = apply::labs();
        match format {
            Format::Json => outln!("{}", serde_json::json!({"labs": labs})),
            _ => labs.iter().for_each(|l| outln!("{l}")),
        }
        return 0;
    };
    let g = observe(lab);
    if g.is_empty() {
        errln!("cloonix: no lab {lab}");
        return 1;
    }
    let topology = graph::to_topology(&g);
    let cx = Context::new(lab);
    let runs = |ep: &str| -> Vec<crun::RunResult> {
        std::fs::read(cx.paths(ep).runs())
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    };
    match format {
        Format::Yaml => out!("{}", to_yaml(&topology)),
        Format::Json => {
            let endpoints: serde_json::Map<String, serde_json::Value> = topology
                .endpoints
                .keys()
                .map(|e| {
                    let pid = crun::pid(&cx.dirs.crun_root(), &cx.container_id(e));
                    (
                        e.clone(),
                        serde_json::json!({"pid": pid, "running": pid.is_some(), "run": runs(e)}),
                    )
                })
                .collect();
            outln!(
                "{}",
                serde_json::to_string_pretty(
                    &serde_json::json!({"lab": lab, "topology": topology, "endpoints": endpoints})
                )
                .expect("json")
            );
        }
        Format::Table => {
            outln!("lab {lab}");
            for (name, lan) in &topology.lans {
                outln!("  lan {name}  mtu {}", lan.mtu);
            }
            for (name, ep) in &topology.endpoints {
                let pid = crun::pid(&cx.dirs.crun_root(), &cx.container_id(name));
                let health = match pid {
                    Some(p) => format!("running (pid {p})"),
                    None if ep.kind() == "cnt" => "NOT RUNNING".into(),
                    None => "up".into(),
                };
                outln!("  {} {name}  {health}", ep.kind());
                if let cloonix::model::Endpoint::Cnt(c) = ep
                    && (c.cpu.is_some() || c.ram.is_some())
                {
                    outln!("    cpu/ram limits {}", crun::LIMITS_NOT_ENFORCED);
                }
                for r in g.resources() {
                    if let (Item::Interface(e, i), Spec::Veth(v)) = (&r.item, &r.spec)
                        && e == name
                    {
                        let ips: Vec<String> = v.ips.iter().map(|c| c.to_string()).collect();
                        outln!("    {i}  {}  {}", v.mac, ips.join(" "));
                    }
                }
                for r in runs(name) {
                    let state = if r.ok() {
                        "ok".to_string()
                    } else {
                        apply::actions::describe_failure(&r)
                    };
                    outln!("    run `{}`: {state}", r.command);
                }
            }
        }
    }
    0
}
