//! The image cache: everything cloonix builds once and shares read-only — the built-in
//! busybox root, root filesystems built from Debian packages, engine images exported for
//! crun, the built-in VM kernel and initramfs — each in `/var/lib/cloonix/images/<id>/`.
//!
//! An entry is built in a directory of its own beside the cache, its `meta.json` written
//! last, then renamed into place: an entry without `meta.json` is never used, and a
//! half-built one is never seen under its final name. Builds of one id are serialised
//! across processes by a lock file, so two applies that need the same image build it
//! once; `prune` takes the same lock, so it never removes an entry being built.

use super::{HostError, IMAGE_ROOT, Result, io};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// What an entry is, written last into its directory.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Meta {
    /// Its directory's name: `<kind>-<first 16 hex digits of key>`.
    pub id: String,
    /// What sort of thing it is: `busybox`, `debian`, `docker`, `podman`, `vm-guest`...
    pub kind: String,
    /// What it was made from (a recipe, an engine image id, program versions).
    pub source: serde_json::Value,
    /// The hash of `kind` and `source`: the same recipe gives the same key.
    pub key: String,
    /// Its size on disk, in bytes.
    pub size: u64,
    /// When it was made (RFC 3339).
    pub created: String,
}

/// The key of what an entry is made from.
pub fn key(kind: &str, source: &serde_json::Value) -> String {
    let text = serde_json::to_string(&(kind, source)).expect("json");
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The id (directory name) of the entry made from `source`: `<kind>-<16 hex digits>`.
pub fn id(kind: &str, source: &serde_json::Value) -> String {
    format!("{kind}-{}", &key(kind, source)[..16])
}

/// A cache in a directory: the host's is [`IMAGE_ROOT`] (the free functions of this
/// module); tests use one of their own.
pub struct Cache {
    pub root: PathBuf,
}

fn host() -> Cache {
    Cache {
        root: PathBuf::from(IMAGE_ROOT),
    }
}

/// The host's cache, its root private first (see host::private_roots).
fn host_private() -> Result<Cache> {
    super::private_roots()?;
    Ok(host())
}

/// See [`Cache::meta`].
pub fn meta(id: &str) -> Option<Meta> {
    host().meta(id)
}

/// See [`Cache::get_or_build`].
pub fn get_or_build(
    kind: &str,
    source: serde_json::Value,
    progress: &dyn Fn(&str),
    build: impl FnOnce(&Path) -> Result<()>,
) -> Result<PathBuf> {
    host_private()?.get_or_build(kind, source, progress, build)
}

/// See [`Cache::list`].
pub fn list() -> Vec<Meta> {
    host().list()
}

/// See [`Cache::prune`].
pub fn prune(in_use: &std::collections::BTreeSet<String>) -> Result<Vec<Meta>> {
    host_private()?.prune(in_use)
}

fn private_dir(dir: &Path) -> Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(dir)
        .map_err(io(format!("create {}", dir.display())))
}

/// Held while an entry is built or pruned; released by the kernel if the process dies.
struct EntryLock(#[allow(dead_code)] File);

impl Cache {
    fn lock(&self, id: &str, wait: bool) -> Result<Option<EntryLock>> {
        let dir = self.root.join(".locks");
        private_dir(&dir)?;
        let path = dir.join(format!("{id}.lock"));
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
            .map_err(io(format!("open {}", path.display())))?;
        let how = if wait {
            libc::LOCK_EX
        } else {
            libc::LOCK_EX | libc::LOCK_NB
        };
        // SAFETY: flock on a descriptor we own.
        if unsafe { libc::flock(file.as_raw_fd(), how) } != 0 {
            let e = std::io::Error::last_os_error();
            if !wait && e.raw_os_error() == Some(libc::EWOULDBLOCK) {
                return Ok(None);
            }
            return Err(io("lock an image")(e));
        }
        Ok(Some(EntryLock(file)))
    }

    /// The entry `id`'s metadata, if it is complete.
    pub fn meta(&self, id: &str) -> Option<Meta> {
        let text = std::fs::read(self.root.join(id).join("meta.json")).ok()?;
        serde_json::from_slice(&text).ok()
    }
}

fn disk_usage(path: &Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    if meta.is_dir() {
        std::fs::read_dir(path)
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .map(|e| disk_usage(&e.path()))
                    .sum()
            })
            .unwrap_or(0)
            + meta.len()
    } else {
        meta.len()
    }
}

impl Cache {
    /// The directory of the entry made from `source`, built by `build` on first use: `build`
    /// fills the directory it is given. `progress` is told when a build starts and when it has
    /// to wait for another process building the same entry.
    pub fn get_or_build(
        &self,
        kind: &str,
        source: serde_json::Value,
        progress: &dyn Fn(&str),
        build: impl FnOnce(&Path) -> Result<()>,
    ) -> Result<PathBuf> {
        let key = key(kind, &source);
        let id = id(kind, &source);
        let dir = self.root.join(&id);
        if self.meta(&id).is_some() {
            return Ok(dir);
        }
        private_dir(&self.root)?;
        let _lock = match self.lock(&id, false)? {
            Some(l) => l,
            None => {
                progress(&format!("waiting for another build of image {id}"));
                self.lock(&id, true)?
                    .expect("a blocking lock is had or fails")
            }
        };
        if self.meta(&id).is_some() {
            return Ok(dir);
        }
        // Left by a build that was killed: not complete, so not used.
        let _ = super::remove_tree(&dir);
        let tmp = self.root.join(format!(".build-{id}"));
        let _ = super::remove_tree(&tmp);
        private_dir(&tmp)?;
        progress(&format!("building image {id}"));
        if let Err(e) = build(&tmp) {
            let _ = super::remove_tree(&tmp);
            return Err(e);
        }
        let meta = Meta {
            id: id.clone(),
            kind: kind.to_string(),
            source,
            key,
            size: disk_usage(&tmp),
            created: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        };
        let text = serde_json::to_vec_pretty(&meta).expect("json");
        std::fs::write(tmp.join("meta.json"), text).map_err(io("write the image's meta.json"))?;
        std::fs::rename(&tmp, &dir).map_err(io(format!("install image {id}")))?;
        Ok(dir)
    }

    /// Every complete entry of the cache.
    pub fn list(&self) -> Vec<Meta> {
        let Ok(dir) = std::fs::read_dir(&self.root) else {
            return Vec::new();
        };
        let mut out: Vec<Meta> = dir
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| !n.starts_with('.'))
            .filter_map(|n| self.meta(&n))
            .collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        out
    }

    /// Removes the complete entries whose ids are not in `in_use`, skipping any being built
    /// or pruned by another process meanwhile; the removed entries.
    pub fn prune(&self, in_use: &std::collections::BTreeSet<String>) -> Result<Vec<Meta>> {
        let mut removed = Vec::new();
        for m in self.list() {
            if in_use.contains(&m.id) {
                continue;
            }
            let Some(_lock) = self.lock(&m.id, false)? else {
                continue;
            };
            let dir = self.root.join(&m.id);
            // Made unusable first (no meta.json), then removed: a crash half-way leaves an
            // incomplete entry, which the next build removes.
            std::fs::remove_file(dir.join("meta.json")).map_err(io(format!("prune {}", m.id)))?;
            super::remove_tree(&dir)?;
            removed.push(m);
        }
        Ok(removed)
    }
}

/// An error for a build step, naming the image.
pub fn build_error(id: &str, what: impl std::fmt::Display) -> HostError {
    HostError::Other(format!("building image {id}: {what}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> Cache {
        let root =
            std::env::temp_dir().join(format!("cloonix-cache-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        Cache { root }
    }

    #[test]
    fn an_entry_is_built_once_and_only_whole() {
        let c = scratch("once");
        let src = serde_json::json!({"recipe": 1});
        let builds = std::cell::Cell::new(0);
        let build = |dir: &Path| {
            builds.set(builds.get() + 1);
            std::fs::write(dir.join("data"), "x").map_err(io("test"))
        };
        let a = c.get_or_build("test", src.clone(), &|_| {}, build).unwrap();
        let b = c.get_or_build("test", src.clone(), &|_| {}, build).unwrap();
        assert_eq!((a.clone(), builds.get()), (b, 1));
        assert!(a.join("data").exists() && a.join("meta.json").exists());
        // A failed build leaves nothing that passes for an entry.
        let failed = c.get_or_build("test", serde_json::json!(2), &|_| {}, |_| {
            Err(HostError::Other("no".into()))
        });
        assert!(failed.is_err());
        assert_eq!(c.list().len(), 1);
        // An entry without meta.json (a build killed half-way) is rebuilt.
        let id = c.list()[0].id.clone();
        std::fs::remove_file(a.join("meta.json")).unwrap();
        assert!(c.meta(&id).is_none());
        c.get_or_build("test", src, &|_| {}, build).unwrap();
        assert_eq!(builds.get(), 2);
        std::fs::remove_dir_all(&c.root).unwrap();
    }

    #[test]
    fn prune_keeps_what_is_used_and_what_is_being_built() {
        let c = scratch("prune");
        let mk = |n: u32| {
            c.get_or_build("test", serde_json::json!(n), &|_| {}, |_| Ok(()))
                .unwrap()
        };
        let ids: Vec<String> = (0..3)
            .map(|n| mk(n).file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        let held = c.lock(&ids[2], true).unwrap();
        let used = std::collections::BTreeSet::from([ids[0].clone()]);
        let removed: Vec<String> = c.prune(&used).unwrap().into_iter().map(|m| m.id).collect();
        assert_eq!(removed, vec![ids[1].clone()]);
        drop(held);
        let left: Vec<String> = c.list().into_iter().map(|m| m.id).collect();
        let mut kept = vec![ids[0].clone(), ids[2].clone()];
        kept.sort();
        assert_eq!(left, kept);
        std::fs::remove_dir_all(&c.root).unwrap();
    }
}
