//! `cloonix graph FILE|NAME --format dot|svg|mermaid`: the topology as a picture on
//! stdout. A file is drawn as it asks for the lab (its desired graph); a lab name as the
//! lab runs (observed). Both go through the canonical topology, so a lab drawn after
//! `apply FILE` looks exactly as FILE does. Exit 0 drawn, 1 otherwise.

use super::Output;
use super::out::{errln, out};
use cloonix::graph;
use cloonix::observe::observe_lab;
use cloonix::picture::{self, Picture};
use std::path::Path;

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Dot,
    Svg,
    Mermaid,
}

pub fn run(target: &str, format: Format) -> i32 {
    let Some(topology) = topology(target) else {
        return 1;
    };
    let p = Picture::of(&topology);
    let text = match format {
        Format::Dot => picture::dot::render(&p),
        Format::Mermaid => picture::mermaid::render(&p),
        Format::Svg => match picture::svg(&picture::dot::render(&p)) {
            Ok(svg) => svg,
            Err(e) => {
                errln!("cloonix: {e}");
                return 1;
            }
        },
    };
    out!("{text}");
    0
}

/// The topology to draw: a file's desired graph, or a running lab's observed one.
fn topology(target: &str) -> Option<cloonix::model::Topology> {
    if target == cloonix::model::STDIN || Path::new(target).is_file() {
        let loaded = super::load(Path::new(target), Output::Text)?;
        let desired = super::desired(&loaded)?;
        return Some(graph::to_topology(&desired));
    }
    if !cloonix::model::is_name(target) {
        errln!("cloonix: `{target}` is neither a topology file nor a lab name");
        return None;
    }
    let observed = observe_lab(&cloonix::host::Lab::new(target));
    if !observed.exists() {
        errln!("cloonix: no lab {target} (and no file of that name)");
        return None;
    }
    Some(graph::to_topology(&observed.graph))
}
