//! An endpoint's copy-on-write root filesystem: an overlay over its image, with the
//! writable layer under the lab's state directory on disk.

use super::{Facts, HostView, Needs, Refusal, Seen, StepCx};
use crate::graph::{ImageRef, Resource, ResourceId, Rootfs};
use crate::host::crun;
use crate::host::process;
use crate::host::rootfs::{self, Paths};
use crate::host::{HostError, Lab, Result, debian, engine, image};
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
        ImageRef::Engine { engine, reference } => {
            engine::export::rootfs(*engine, reference, progress)
        }
    }
}

impl super::Driver for Driver {
    type Spec = Rootfs;
    type Receipt = Receipt;

    /// What an image needs before anything is touched: to be built, mmdebstrap and
    /// package sources for its suite (unless it is built already); to be exported, an
    /// engine that answers and has it.
    fn preflight(_lab: &Lab, _host: &HostView, _r: &Resource, s: &Rootfs) -> Vec<Refusal> {
        match &s.image {
            ImageRef::Recipe {
                name,
                debian: recipe,
            } => {
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
            ImageRef::Engine { engine, reference } => engine::ready(*engine)
                .and_then(|()| engine::image(*engine, reference))
                .err()
                .map(|e| Refusal::new("image", e.to_string()))
                .into_iter()
                .collect(),
            ImageRef::Builtin | ImageRef::Dir { .. } => Vec::new(),
        }
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

    /// Whatever still runs on the root goes first: a container that an interrupted apply
    /// started without recording it (its crun state is still there; a recorded container
    /// is gone by now, with its state), recognised by its root directory while it exists.
    fn destroy(cx: &StepCx, _s: &Rootfs, _r: Receipt) -> Result<()> {
        let p = paths(cx.lab, cx.name());
        if crun::exists(&cx.lab.crun_root(), &cx.lab.container_id(cx.name())) {
            process::kill_all(&process::find_rooted_in(&[p.merged()]))?;
        }
        rootfs::remove_root(&p)
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
    /// What runs on them goes first (one pass over /proc for all), then the mounts.
    fn sweep(lab: &Lab) -> Vec<(String, HostError)> {
        let ours: Vec<PathBuf> = rootfs::mounts()
            .into_iter()
            .filter(|m| m.starts_with(&lab.state) || m.starts_with(&lab.run))
            .collect();
        let killed = process::kill_all(&process::find_rooted_in(&ours));
        for m in &ours {
            crate::host::unmount(m);
        }
        match killed {
            Ok(()) => Vec::new(),
            Err(e) => vec![("processes on the lab's roots".into(), e)],
        }
    }
}
