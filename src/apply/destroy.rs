//! `destroy`: the plan to nothing, then each kind's sweep for what an interrupted apply
//! made without recording it, then the lab's directories. Everything is matched by this
//! lab's exact names and recorded identities: no other lab's object, and nothing of the
//! host's, is touched.

use super::{Failure, Report, execute};
use crate::graph::{Graph, Kind};
use crate::host::{Lab, netns};
use crate::observe::observe_lab;

/// Removes a lab and everything it made; `None` when there was nothing of it on this host.
pub fn destroy(name: &str, progress: &(dyn Fn(&str) + Sync)) -> Option<Report> {
    let mut lab = Lab::new(name);
    lab.tearing_down = true;
    if !exists(&lab) {
        return None;
    }
    let observed = observe_lab(&lab);
    for e in &observed.entries {
        crate::kinds::hasten(&lab, &e.resource, &e.receipt);
    }
    let empty = Graph::new(name);
    let plan = crate::plan::plan(&empty, &observed.graph);
    let mut report = execute(
        &plan,
        &empty,
        &lab,
        &observed.receipts(),
        progress,
        progress,
    );
    for kind in Kind::ALL {
        for (what, e) in crate::kinds::sweep(kind, &lab) {
            report.failures.push(Failure {
                resource: what,
                error: e.to_string(),
            });
        }
    }
    for dir in [&lab.run, &lab.state] {
        if let Err(e) = crate::host::remove_tree(dir) {
            report.failures.push(Failure {
                resource: dir.display().to_string(),
                error: e.to_string(),
            });
        }
    }
    Some(report)
}

/// Whether anything of the lab is on this host: its directories, a namespace, or cgroups.
fn exists(lab: &Lab) -> bool {
    let prefix = lab.switch_ns();
    lab.run.exists()
        || lab.state.exists()
        || crate::host::cgroups::any(&lab.name)
        || netns::list(&prefix)
            .iter()
            .any(|n| *n == prefix || n.starts_with(&format!("{prefix}_")))
}
