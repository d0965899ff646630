//! An engine's image as a root filesystem for crun (`image: podman:REF`, `docker:REF`):
//! exported once from the engine's local store into the image cache, keyed by the engine's
//! image id, then shared read-only like any cached image (each container gets its own
//! overlay).
//!
//! The engines export containers, not images: a container of the image is made (never
//! started), its filesystem streamed out as a tar and unpacked entry by entry with the
//! `tar` crate's `unpack_in`, which never writes outside the target (no absolute or `..`
//! names, nothing through a symlink, no hard link to a file outside). Device nodes and
//! FIFOs are left out: on a host where cgroups cannot hold crun's containers they run
//! without a device allow-list, so a device node in a root filesystem could reach the
//! host's devices. The cache builds the entry in a
//! directory of its own and renames it into place once whole.

use super::super::{HostError, Result, cache, io};
use super::{Engine, cli, image, ready, remove};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Stdio;

/// The root filesystem of image `reference` of `engine`'s store, exported on first use.
pub fn rootfs(engine: Engine, reference: &str, progress: &dyn Fn(&str)) -> Result<PathBuf> {
    ready(engine)?;
    let img = image(engine, reference)?;
    let source = serde_json::json!({ "image_id": img.id });
    let dir = cache::get_or_build(engine.as_str(), source, progress, |dir| {
        progress(&format!(
            "exporting {engine} image {reference} ({})",
            img.id
        ));
        export(engine, &img.id, &dir.join("rootfs"))
    })?;
    Ok(dir.join("rootfs"))
}

/// Removes the container it holds when dropped.
struct Scratch(Engine, String);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = remove(self.0, &self.1);
    }
}

fn export(engine: Engine, image_id: &str, target: &Path) -> Result<()> {
    let id = super::run(
        engine,
        &[
            "create",
            "--network=none",
            "--pull=never",
            "--label=cloonix-export=1",
            // Never run; an image without a command of its own needs one to be created.
            "--entrypoint=/.cloonix-export",
            "--",
            image_id,
        ],
        &format!("{engine} create (to export {image_id})"),
    )?;
    let scratch = Scratch(engine, id.trim().to_string());
    let mut child = cli(engine)?
        .args(["export", "--", &scratch.1])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(io(format!("run {engine} export")))?;
    let mut stderr = child.stderr.take().expect("piped");
    let errors = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let unpacked = unpack(child.stdout.take().expect("piped"), target);
    if unpacked.is_err() {
        // Stopped reading: the engine is told so by a closed pipe.
        let _ = child.kill();
    }
    let status = child.wait().map_err(io(format!("run {engine} export")))?;
    let errors = errors.join().unwrap_or_default();
    unpacked?;
    if !status.success() {
        return Err(HostError::Command {
            what: format!("{engine} export {image_id}"),
            status: status.to_string(),
            stderr: errors.trim().to_string(),
        });
    }
    Ok(())
}

/// Unpacks a root filesystem's tar into `target`, never outside it, leaving out device
/// nodes and FIFOs; the names of what was left out. Ownership, modes (setuid, sticky) and
/// times are kept, as a root filesystem needs them.
pub fn unpack(reader: impl Read, target: &Path) -> Result<Vec<String>> {
    let what = format!("unpack into {}", target.display());
    std::fs::create_dir_all(target).map_err(io(&what))?;
    let mut archive = tar::Archive::new(reader);
    archive.set_preserve_permissions(true);
    archive.set_preserve_ownerships(true);
    archive.set_preserve_mtime(true);
    archive.set_unpack_xattrs(false);
    archive.set_overwrite(true);
    let mut left_out = Vec::new();
    for entry in archive.entries().map_err(io(&what))? {
        let mut entry = entry.map_err(io(&what))?;
        let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        match entry.header().entry_type() {
            tar::EntryType::Block | tar::EntryType::Char | tar::EntryType::Fifo => {
                left_out.push(name);
                continue;
            }
            _ => {}
        }
        entry
            .unpack_in(target)
            .map_err(io(format!("{what}: {name}")))?;
    }
    // The archive ends before its stream does (a tar is padded to whole records): read
    // it to its end, so that the writer is not cut off.
    std::io::copy(&mut archive.into_inner(), &mut std::io::sink()).map_err(io(&what))?;
    Ok(left_out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    fn header(kind: tar::EntryType, mode: u32) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        // SAFETY: geteuid has no preconditions.
        let me = unsafe { libc::geteuid() };
        h.set_uid(me.into());
        h.set_gid(me.into());
        h.set_size(0);
        h
    }

    /// Writes a raw name into a header, as a hostile archive would (the builder refuses
    /// `..` and absolute names).
    fn raw_name(h: &mut tar::Header, name: &str) {
        let gnu = h.as_gnu_mut().unwrap();
        gnu.name = [0; 100];
        gnu.name[..name.len()].copy_from_slice(name.as_bytes());
    }

    /// One archive of `(kind, name, link)` entries, each written as a hostile layer would.
    fn archive(entries: &[(tar::EntryType, &str, Option<&str>)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for &(kind, name, link) in entries {
            let mode = if kind == tar::EntryType::Directory {
                0o755
            } else {
                0o644
            };
            let mut h = header(kind, mode);
            raw_name(&mut h, name);
            let data: &[u8] = if kind == tar::EntryType::Regular {
                b"evil"
            } else {
                b""
            };
            h.set_size(data.len() as u64);
            if let Some(l) = link {
                h.set_link_name(l).unwrap();
            }
            h.set_cksum();
            b.append(&h, data).unwrap();
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn an_export_never_leaves_its_target_nor_makes_devices() {
        use tar::EntryType::{Block, Char, Fifo, Link, Regular, Symlink};
        let base = std::env::temp_dir().join(format!("cloonix-unpack-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let outside = base.join("outside");
        std::fs::create_dir_all(&outside).unwrap();
        let bait = outside.join("bait");
        std::fs::write(&bait, "host").unwrap();
        let (out, bait_s) = (outside.display().to_string(), bait.display().to_string());
        let abs = format!("{out}/abs");
        let hostile: Vec<Vec<(tar::EntryType, &str, Option<&str>)>> = vec![
            vec![(Regular, &abs, None)],
            vec![(Regular, "../dotdot", None)],
            vec![(Regular, "etc/../../dotdot2", None)],
            vec![(Symlink, "esc", Some(&out)), (Regular, "esc/through", None)],
            vec![
                (Symlink, "rel", Some("../outside")),
                (Regular, "rel/through2", None),
            ],
            vec![(Link, "hard", Some(&bait_s)), (Regular, "hard", None)],
            vec![
                (Link, "hard2", Some("../outside/bait")),
                (Regular, "hard2", None),
            ],
            vec![
                (Symlink, "esc3", Some(&out)),
                (Link, "hard3", Some("esc3/bait")),
                (Regular, "hard3", None),
            ],
            vec![(Symlink, "bait", Some(&bait_s)), (Regular, "bait", None)],
            vec![
                (Block, "dev/disk", None),
                (Char, "dev/mem", None),
                (Fifo, "run/fifo", None),
            ],
        ];
        for (i, entries) in hostile.iter().enumerate() {
            let target = base.join(format!("root{i}"));
            let _ = unpack(&archive(entries)[..], &target);
            let names: Vec<_> = std::fs::read_dir(&outside)
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            assert_eq!(names, ["bait"], "archive {i} wrote outside its target");
            assert_eq!(
                std::fs::read_to_string(&bait).unwrap(),
                "host",
                "archive {i}"
            );
            assert_eq!(std::fs::metadata(&bait).unwrap().nlink(), 1, "archive {i}");
            assert!(!base.join("dotdot").exists() && !base.join("dotdot2").exists());
            for dev in ["dev/disk", "dev/mem", "run/fifo"] {
                assert!(
                    std::fs::symlink_metadata(target.join(dev)).is_err(),
                    "{dev}"
                );
            }
        }
        // What a root filesystem needs is kept: sticky and setuid bits, owners, absolute
        // symlinks (resolved inside the container's root, later).
        let mut b = tar::Builder::new(Vec::new());
        for (kind, name, mode, link) in [
            (tar::EntryType::Directory, "tmp/", 0o1777, None),
            (tar::EntryType::Regular, "bin/su", 0o4755, None),
            (
                tar::EntryType::Symlink,
                "lib64/ld.so",
                0o777,
                Some("/lib/ld.so"),
            ),
        ] {
            let mut h = header(kind, mode);
            raw_name(&mut h, name);
            if let Some(l) = link {
                h.set_link_name(l).unwrap();
            }
            h.set_cksum();
            b.append(&h, &b""[..]).unwrap();
        }
        let target = base.join("good");
        unpack(&b.into_inner().unwrap()[..], &target).unwrap();
        let tmp = std::fs::metadata(target.join("tmp")).unwrap();
        assert_eq!(tmp.permissions().mode() & 0o7777, 0o1777);
        let su = std::fs::metadata(target.join("bin/su")).unwrap();
        assert_eq!(su.permissions().mode() & 0o7777, 0o4755);
        // SAFETY: geteuid has no preconditions.
        assert_eq!(su.uid(), unsafe { libc::geteuid() });
        assert_eq!(
            std::fs::read_link(target.join("lib64/ld.so")).unwrap(),
            Path::new("/lib/ld.so")
        );
        std::fs::remove_dir_all(&base).unwrap();
    }

    #[test]
    fn devices_and_fifos_are_left_out_and_named() {
        let base = std::env::temp_dir().join(format!("cloonix-devs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let mut b = tar::Builder::new(Vec::new());
        for (kind, name) in [
            (tar::EntryType::Char, "dev/null"),
            (tar::EntryType::Block, "dev/sda"),
            (tar::EntryType::Fifo, "run/initctl"),
        ] {
            let mut h = header(kind, 0o600);
            raw_name(&mut h, name);
            h.set_cksum();
            b.append(&h, &b""[..]).unwrap();
        }
        let mut h = header(tar::EntryType::Regular, 0o644);
        raw_name(&mut h, "etc/hostname");
        h.set_size(2);
        h.set_cksum();
        b.append(&h, &b"x\n"[..]).unwrap();
        let data = b.into_inner().unwrap();
        let left_out = unpack(&data[..], &base).unwrap();
        assert_eq!(left_out, ["dev/null", "dev/sda", "run/initctl"]);
        assert_eq!(std::fs::read(base.join("etc/hostname")).unwrap(), b"x\n");
        assert!(!base.join("dev/null").exists());
        std::fs::remove_dir_all(&base).unwrap();
    }
}
