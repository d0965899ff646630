//! An endpoint's copy-on-write root filesystem: an overlay over its image, with the
//! writable layer under the lab's state directory on disk.

use super::{Facts, HostView, Needs, Refusal, Seen, StepCx};
use crate::graph::{ImageRef, Resource, ResourceId, Rootfs};
use crate::host::rootfs::{self, Paths};
use crate::host::{HostError, Lab, Result, debian, image};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The cache id of an image directory (`<cache>/<id>/rootfs`), if it is in the cache.
fn cache_id(dir: &Path) -> Option<String> {
    let entry = dir.parent()?;
    (entry.parent()? == Path::new(crate::host::IMAGE_ROOT))
        .then(|| entry.file_name()?.to_str().map(String::from))
        .flatten()
}

pub struct Driver;

pub fn paths(lab: &Lab, endpoint: &str) -> Paths {
    Paths {
        dir: lab.endpoint_dir(endpoint),
    }
}

/// The image a root filesystem was made from, for `cloonix images` to tell which labs use
/// which cached image.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Receipt {
    /// The id of its image in the cache; None for a directory of the user's.
    pub image: Option<String>,
}

fn image_dir(image: &ImageRef, progress: &dyn Fn(&str)) -> Result<PathBuf> {
    match image {
        ImageRef::Builtin => image::busybox(progress),
        ImageRef::Dir { path } => Ok(PathBuf::from(path)),
        ImageRef::Recipe { name, debian } => crate::host::debian::image(name, debian, progress),
    }
}

impl super::Driver for Driver {
    type Spec = Rootfs;
    type Receipt = Receipt;

    /// An image to build needs mmdebstrap and package sources for its suite: said before
    /// anything is touched, unless the image is built already.
    fn preflight(_lab: &Lab, _host: &HostView, _r: &Resource, s: &Rootfs) -> Vec<Refusal> {
        let ImageRef::Recipe {
            name,
            debian: recipe,
        } = &s.image
        else {
            return Vec::new();
        };
        if debian::cached(recipe).is_some() {
            return Vec::new();
        }
        if let Err(e) = debian::source(recipe) {
            return vec![Refusal::new("image", format!("image `{name}`: {e}"))];
        }
        if !debian::can_build() {
            return vec![Refusal::new(
                "image",
                format!(
                    "image `{name}` is built with mmdebstrap, which is not installed: apt-get install mmdebstrap"
                ),
            )];
        }
        Vec::new()
    }

    fn create(cx: &StepCx, s: &Rootfs) -> Result<Receipt> {
        let dir = image_dir(&s.image, cx.progress)?;
        rootfs::mount_root(&paths(cx.lab, cx.name()), &dir)?;
        Ok(Receipt {
            image: cache_id(&dir),
        })
    }

    fn update(cx: &StepCx, _before: &Rootfs, s: &Rootfs, _r: Receipt) -> Result<Receipt> {
        Self::create(cx, s)
    }

    fn destroy(cx: &StepCx, _s: &Rootfs, _r: Receipt) -> Result<()> {
        rootfs::remove_root(&paths(cx.lab, cx.name()))
    }

    fn needs(_lab: &Lab, _s: &Rootfs, n: &mut Needs) {
        n.mounts = true;
    }

    fn observe(lab: &Lab, facts: &Facts, id: &ResourceId, _s: &mut Rootfs, _r: &Receipt) -> Seen {
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
