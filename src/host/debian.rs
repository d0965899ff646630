//! Root filesystems built from a `debian: {suite, packages}` recipe with mmdebstrap, from
//! the host's package sources, once per recipe: in the image cache, shared read-only
//! (each container gets its own overlay over it).
//!
//! What the recipe holds reaches mmdebstrap only as argv elements that cannot be options:
//! the loader accepts package names and suites only in Debian's own spelling (never
//! starting with `-`), the packages go in one `--include=a,b` element, and `--` comes
//! before the suite. mmdebstrap runs as root in a mount namespace of its own, so that the
//! /proc, /sys and /dev it mounts into the new root vanish with it even when it is
//! killed, and never stay under the cache for a later cleanup to walk into; and it is
//! told to end when the cloonix thread that started it does.
//!
//! The image is `minbase` (Essential packages and apt: a shell, coreutils, bash) plus the
//! packages. Checks run in it through its shell: `ping` checks need a ping (`iputils-ping`),
//! `tcp` checks use bash (`/dev/tcp`) and coreutils' `timeout`, which minbase has.

use super::{HostError, Result, cache, io, sources};
use crate::model::DebianImage;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Bumped when the way images are built changes, so that cached ones are rebuilt.
const LAYOUT: u32 = 1;
const VARIANT: &str = "minbase";
/// How many of mmdebstrap's last lines a failure shows.
const TAIL: usize = 25;

/// What an image is made from: the recipe (packages sorted, as their order does not
/// matter), the package sources it is fetched from, the architecture and the variant.
pub fn source(recipe: &DebianImage) -> Result<serde_json::Value> {
    let entries = sources::for_suite(
        &sources::host_entries(),
        &recipe.suite,
        sources::host_codename().as_deref(),
    )
    .ok_or_else(|| {
        HostError::Other(format!(
            "no Debian package sources on this host can serve suite `{}` (none in /etc/apt/sources.list or /etc/apt/sources.list.d/ with a `main` component)",
            recipe.suite
        ))
    })?;
    let mut packages = recipe.packages.clone();
    packages.sort();
    packages.dedup();
    Ok(serde_json::json!({
        "suite": recipe.suite,
        "packages": packages,
        "variant": VARIANT,
        "arch": arch()?,
        "sources": sources::render(&entries),
        "layout": LAYOUT,
    }))
}

/// The cache id of a recipe's image on this host.
pub fn cache_id(recipe: &DebianImage) -> Result<String> {
    Ok(cache::id("debian", &source(recipe)?))
}

/// The image's root filesystem if it is built already.
pub fn cached(recipe: &DebianImage) -> Option<PathBuf> {
    let id = cache_id(recipe).ok()?;
    cache::meta(&id).map(|_| Path::new(super::IMAGE_ROOT).join(id).join("rootfs"))
}

/// Whether mmdebstrap is there to build images.
pub fn can_build() -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join("mmdebstrap").is_file()))
        .unwrap_or(false)
}

/// The root filesystem of image `name` made from `recipe`, built on first use; `progress`
/// hears each stage of a build.
pub fn image(name: &str, recipe: &DebianImage, progress: &dyn Fn(&str)) -> Result<PathBuf> {
    let source = source(recipe)?;
    let told = |m: &str| progress(&format!("image {name}: {m}"));
    let dir = cache::get_or_build("debian", source.clone(), &told, |dir| {
        if !can_build() {
            return Err(HostError::Missing {
                program: "mmdebstrap".into(),
                package: "mmdebstrap",
            });
        }
        build(dir, &source, &told)
    })?;
    Ok(dir.join("rootfs"))
}

fn arch() -> Result<String> {
    static ARCH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    if let Some(a) = ARCH.get() {
        return Ok(a.clone());
    }
    let out = super::run(
        Command::new("dpkg").arg("--print-architecture"),
        "ask dpkg for the host's architecture",
    )?;
    Ok(ARCH.get_or_init(|| out.trim().to_string()).clone())
}

/// The host's apt proxy settings, for the build's apt: a host that reaches its mirror
/// through a proxy builds through it too.
fn proxy_options() -> Vec<String> {
    ["Acquire::http::Proxy", "Acquire::https::Proxy"]
        .iter()
        .filter_map(|key| {
            let out = Command::new("apt-config")
                .args(["shell", "V", key])
                .stderr(Stdio::null())
                .output()
                .ok()?;
            let text = String::from_utf8_lossy(&out.stdout);
            let value = text.trim().strip_prefix("V='")?.strip_suffix('\'')?;
            (!value.is_empty() && !value.contains(['"', '\n', ';']))
                .then(|| format!("--aptopt={key} \"{value}\""))
        })
        .collect()
}

/// The argv of mmdebstrap for the recipe in `source`, building into `root` from the
/// sources file `list`.
fn argv(source: &serde_json::Value, root: &Path, list: &Path) -> Vec<std::ffi::OsString> {
    let mut out: Vec<std::ffi::OsString> = vec![
        format!("--variant={VARIANT}").into(),
        "--mode=root".into(),
        "--format=directory".into(),
    ];
    let packages: Vec<&str> = source["packages"]
        .as_array()
        .map(|a| a.iter().filter_map(|p| p.as_str()).collect())
        .unwrap_or_default();
    if !packages.is_empty() {
        out.push(format!("--include={}", packages.join(",")).into());
    }
    out.extend(proxy_options().into_iter().map(Into::into));
    out.push("--".into());
    out.push(source["suite"].as_str().unwrap_or_default().into());
    out.push(root.into());
    out.push(list.into());
    out
}

/// Builds into `dir`: `rootfs/`, the sources it came from, and mmdebstrap's log.
fn build(dir: &Path, source: &serde_json::Value, progress: &dyn Fn(&str)) -> Result<()> {
    let list = dir.join("debian.sources");
    std::fs::write(&list, source["sources"].as_str().unwrap_or_default())
        .map_err(io("write the image's package sources"))?;
    let log_path = dir.join("build.log");
    let mut log = std::fs::File::create(&log_path).map_err(io("create the build log"))?;
    let mut cmd = Command::new("mmdebstrap");
    cmd.args(argv(source, &dir.join("rootfs"), &list))
        .env("LC_ALL", "C.UTF-8")
        .stdin(Stdio::null())
        .stdout(Stdio::from(log.try_clone().map_err(io("build log"))?))
        .stderr(Stdio::piped());
    // SAFETY: between fork and exec only syscalls run, on constant C strings.
    unsafe {
        cmd.pre_exec(|| {
            // Ended (and so cleaned up after) with the step that started it, when
            // cloonix is killed: never left building into a directory a later build
            // takes over.
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0
                || libc::unshare(libc::CLONE_NEWNS) != 0
                || libc::mount(
                    c"none".as_ptr(),
                    c"/".as_ptr(),
                    std::ptr::null(),
                    libc::MS_REC | libc::MS_PRIVATE,
                    std::ptr::null(),
                ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(io("start mmdebstrap"))?;
    let mut tail: std::collections::VecDeque<String> = Default::default();
    if let Some(err) = child.stderr.take() {
        for line in BufReader::new(err).lines().map_while(|l| l.ok()) {
            let _ = writeln!(log, "{line}");
            if let Some(stage) = line.strip_prefix("I: ") {
                progress(stage);
            }
            if tail.len() == TAIL {
                tail.pop_front();
            }
            tail.push_back(line);
        }
    }
    let status = child.wait().map_err(io("wait for mmdebstrap"))?;
    if status.success() {
        return Ok(());
    }
    Err(HostError::Command {
        what: format!(
            "mmdebstrap (suite {}, packages {})",
            source["suite"].as_str().unwrap_or_default(),
            source["packages"]
        ),
        status: status.to_string(),
        stderr: tail.into_iter().collect::<Vec<_>>().join("\n"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packages_reach_mmdebstrap_as_one_include_before_the_suite() {
        let source = serde_json::json!({"suite": "bookworm", "packages": ["frr", "iproute2"]});
        let a = argv(
            &source,
            Path::new("/c/rootfs"),
            Path::new("/c/debian.sources"),
        );
        let a: Vec<String> = a.iter().map(|s| s.to_string_lossy().into_owned()).collect();
        assert!(a.contains(&"--include=frr,iproute2".to_string()));
        let dashes = a.iter().position(|s| s == "--").unwrap();
        assert_eq!(
            &a[dashes + 1..],
            ["bookworm", "/c/rootfs", "/c/debian.sources"]
        );
        let none = argv(
            &serde_json::json!({"suite": "bookworm", "packages": []}),
            Path::new("/r"),
            Path::new("/l"),
        );
        assert!(
            !none
                .iter()
                .any(|s| s.to_string_lossy().starts_with("--include"))
        );
    }
}
