//! A file written into an endpoint's root filesystem, resolved inside the root.

use super::{Facts, Seen, StepCx};
use crate::graph::{FileSpec, ResourceId};
use crate::host::{Lab, Result, rootfs};

pub struct Driver;

fn mode(f: &FileSpec) -> u32 {
    f.mode
        .as_deref()
        .and_then(|m| u32::from_str_radix(m, 8).ok())
        .unwrap_or(0o644)
}

impl super::Driver for Driver {
    type Spec = FileSpec;
    type Receipt = ();

    fn create(cx: &StepCx, f: &FileSpec) -> Result<()> {
        let root = super::rootfs::paths(cx.lab, &f.endpoint).merged();
        rootfs::write_file(&root, &f.path, f.content.as_bytes(), mode(f))
    }

    fn update(cx: &StepCx, _before: &FileSpec, f: &FileSpec, _r: ()) -> Result<()> {
        Self::create(cx, f)
    }

    fn destroy(cx: &StepCx, f: &FileSpec, _r: ()) -> Result<()> {
        // Going with its root filesystem anyway.
        if cx.lab.tearing_down {
            return Ok(());
        }
        let root = super::rootfs::paths(cx.lab, &f.endpoint).merged();
        // The file goes with its root when the root goes; alone, it is removed.
        if root.exists() {
            rootfs::remove_file(&root, &f.path)?;
        }
        Ok(())
    }

    fn observe(lab: &Lab, _facts: &Facts, _id: &ResourceId, f: &mut FileSpec, _r: &()) -> Seen {
        let root = super::rootfs::paths(lab, &f.endpoint).merged();
        match rootfs::read_file(&root, &f.path) {
            Some(content) => {
                f.content = content;
                Seen::Present
            }
            None => Seen::Gone,
        }
    }
}
