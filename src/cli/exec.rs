//! `cloonix exec LAB NODE -- CMD...` and `cloonix shell LAB NODE`: the command's own exit
//! code; 125 for cloonix's own errors.

use super::out::errln;
use cloonix::apply::Context;
use cloonix::host::crun;
use std::collections::BTreeMap;

pub fn run(lab: &str, node: &str, argv: &[String], tty: bool) -> i32 {
    let cx = Context::new(lab);
    let id = cx.container_id(node);
    if crun::pid(&cx.dirs.crun_root(), &id).is_none() {
        errln!("cloonix: no running container {node} in lab {lab}");
        return 125;
    }
    let env = container_env(&cx, node);
    match crun::exec_command(&cx.dirs.crun_root(), &id, &env, tty, argv).status() {
        // crun says 255 when it could not start the command: tell why, as shells do.
        Ok(status) if status.code() == Some(255) => {
            match crun::lookup(&cx.paths(node).merged(), &argv[0]) {
                crun::Lookup::Missing => 127,
                crun::Lookup::NotExecutable => 126,
                crun::Lookup::Found => 255,
            }
        }
        Ok(status) => status.code().unwrap_or(125),
        Err(e) => {
            errln!("cloonix: crun: {e}");
            125
        }
    }
}

/// The container's `env`, as recorded when it was made.
fn container_env(cx: &Context, node: &str) -> BTreeMap<String, String> {
    cloonix::host::intent::read_all(&cx.dirs)
        .into_iter()
        .find_map(|r| match r.resource.spec {
            cloonix::graph::Spec::Container(c) if r.resource.id.name == node => Some(c.env),
            _ => None,
        })
        .unwrap_or_default()
}
