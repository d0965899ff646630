//! An endpoint's copy-on-write root filesystem: an overlay over its image, with the
//! writable layer under the lab's state directory on disk.

use super::{Facts, HostView, Needs, Refusal, Seen, StepCx};
use crate::graph::{ImageRef, Resource, ResourceId, Rootfs};
use crate::host::rootfs::{self, Paths};
use crate::host::{HostError, Lab, Result, image};
use std::path::PathBuf;

pub struct Driver;

pub fn paths(lab: &Lab, endpoint: &str) -> Paths {
    Paths {
        dir: lab.endpoint_dir(endpoint),
    }
}

fn image_dir(image: &ImageRef) -> Result<PathBuf> {
    match image {
        ImageRef::Builtin => image::busybox(),
        ImageRef::Dir { path } => Ok(PathBuf::from(path)),
        ImageRef::Recipe { name, .. } => Err(HostError::Other(format!(
            "image `{name}`: building images from Debian packages is not supported yet"
        ))),
    }
}

impl super::Driver for Driver {
    type Spec = Rootfs;
    type Receipt = ();

    fn preflight(_lab: &Lab, _host: &HostView, _r: &Resource, s: &Rootfs) -> Vec<Refusal> {
        match &s.image {
            ImageRef::Recipe { name, .. } => vec![Refusal::new(
                "image",
                format!(
                    "image `{name}`: building images from Debian packages is not supported yet"
                ),
            )],
            ImageRef::Builtin | ImageRef::Dir { .. } => Vec::new(),
        }
    }

    fn create(cx: &StepCx, s: &Rootfs) -> Result<()> {
        rootfs::mount_root(&paths(cx.lab, cx.name()), &image_dir(&s.image)?)
    }

    fn update(cx: &StepCx, _before: &Rootfs, s: &Rootfs, _r: ()) -> Result<()> {
        Self::create(cx, s)
    }

    fn destroy(cx: &StepCx, _s: &Rootfs, _r: ()) -> Result<()> {
        rootfs::remove_root(&paths(cx.lab, cx.name()))
    }

    fn needs(_lab: &Lab, _s: &Rootfs, n: &mut Needs) {
        n.mounts = true;
    }

    fn observe(lab: &Lab, facts: &Facts, id: &ResourceId, _s: &mut Rootfs, _r: &()) -> Seen {
        match facts.mounts.contains(&paths(lab, &id.name).merged()) {
            true => Seen::Present,
            false => Seen::Gone,
        }
    }

    /// Whatever is mounted under the lab's directories: only cloonix mounts there.
    fn sweep(lab: &Lab) -> Vec<(String, HostError)> {
        for m in rootfs::mounts() {
            if m.starts_with(&lab.state) || m.starts_with(&lab.run) {
                crate::host::unmount(&m);
            }
        }
        Vec::new()
    }
}
