//! The seccomp filter of a container: Docker's default profile, resolved for one
//! container into the OCI runtime-spec `linux.seccomp` object that crun loads.
//!
//! Why a profile and not a hand-written list: the profile is what Docker ships and keeps
//! up to date with new syscalls; a lab container run by cloonix is confined as a Docker
//! container with the same capabilities would be, no more and no less. Docker's rather than
//! podman's (Debian's `/usr/share/containers/seccomp.json`): podman's allows `unshare`,
//! `mount` and namespace-making `clone` outright and leaves them to the kernel's capability
//! checks, so a container could still make a user namespace; Docker's refuses them without
//! SYS_ADMIN. The profile is moby's `profiles/seccomp/default.json` (Apache-2.0, moby commit
//! b985e2313a8676e18072b442911fc8f64f17d440), embedded so that no package is needed.
//!
//! The profile is in Docker's format, which is *not* what crun reads: its rules carry conditions (`includes`/`excludes` on capabilities, architectures
//! and kernel version) and its architectures are given as an `archMap`. Podman and Docker
//! resolve those conditions before handing the result to the runtime; [`resolve`] does the
//! same, following moby's `profiles/seccomp.setupSeccomp` (and containers/common's copy of
//! it) step by step, so that a container gets the rules podman would give it:
//!
//! * `archMap`: the entry whose `architecture` is the target's (`SCMP_ARCH_X86_64` on
//!   x86_64) becomes `architectures`, followed by its `subArchitectures` (`SCMP_ARCH_X86`,
//!   `SCMP_ARCH_X32`), so that 32-bit syscall entry points are filtered too and not left to
//!   the default action of a filter that does not know them.
//! * A rule is skipped when `excludes.arches` names the target, when any of `excludes.caps`
//!   is held, or when the kernel is at least `excludes.minKernel`; and when
//!   `includes.arches` does not name the target, when any of `includes.caps` is missing, or
//!   when the kernel is older than `includes.minKernel`.
//! * Arches in rules are libseccomp's native names (`amd64`, `x86`, `x32`, `arm64`...),
//!   compared with the target's exactly as moby does: on x86_64 only `amd64` matches, so a
//!   rule for `x86` or `x32` alone is left out even though those sub-architectures are
//!   filtered.
//! * Rules keep their order. Order matters to libseccomp: when two unconditional rules name
//!   the same syscall, the first one added wins and the later one is ignored (tried with
//!   crun 1.8.1 and libseccomp 2.5.4). Podman's profile relies on it for `setns`, which is
//!   in its big allow list and again in the EPERM list for containers without SYS_ADMIN:
//!   the allow wins, and the kernel's own capability check is what stops `setns`. crun
//!   also drops any rule whose action equals the default action before adding the rest.
//! * Syscall names are passed on as they are, including names this host's libseccomp does
//!   not know: crun skips each with an `unknown seccomp syscall ... ignored` message (shown
//!   only with `crun --debug` in 1.8.1) and goes on, unless the annotation
//!   `run.oci.seccomp_fail_unknown_syscall` is set. Podman relies on that too, as profiles
//!   are often newer than the libseccomp they meet.
//!
//! Where this module is stricter than moby, it is so that a broken profile fails at once
//! with a message instead of at `crun run` or, worse, silently:
//! * a profile without `defaultAction` is an error (moby would run the container without
//!   any filter when it also has no rules);
//! * every rule is checked (actions, operators, argument indexes, errno values), also the
//!   rules left out for this container, so that a profile error does not appear only for
//!   some capability sets;
//! * `errno` names (containers/common's extension, e.g. `"EPERM"`) are understood when no
//!   `errnoRet` number is given, and a disagreement between the two is an error, since
//!   Docker would use the number and podman the name.
//!
//! Capability names may be given with or without the `CAP_` prefix and in any case; both
//! the container's set and the profile's are compared in the `CAP_NAME` form. The set to
//! give is the container's bounding set, which is what podman and Docker compare with.

pub mod bpf;

use serde_json::{Map, Value};

/// Docker's default profile, as moby ships it.
const DOCKER_DEFAULT: &str = include_str!("seccomp/docker-default.json");

#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("the seccomp profile is not valid JSON: {0}")]
    Json(serde_json::Error),
    /// The profile is JSON but not a profile crun could be given; `at` is a JSON path
    /// into the profile, e.g. `syscalls[3].args[0].op`.
    #[error("seccomp profile: {at}: {why}")]
    Invalid { at: String, why: String },
    #[error("unknown architecture `{0}` (expected e.g. x86_64, aarch64, amd64, arm64)")]
    UnknownArch(String),
    #[error("cannot tell the running kernel's version: {0}")]
    Kernel(String),
}

type Result<T> = std::result::Result<T, SeccompError>;

/// One target architecture: the names it may be given by, the libseccomp native name that
/// profile rules use in `includes.arches`/`excludes.arches`, and the libseccomp arch token
/// that `archMap` entries are keyed on (moby's `goToNative` and `nativeToSeccomp`).
struct Arch {
    aliases: &'static [&'static str],
    native: &'static str,
    scmp: &'static str,
}

const ARCHES: &[Arch] = &[
    Arch {
        aliases: &["x86_64", "amd64"],
        native: "amd64",
        scmp: "SCMP_ARCH_X86_64",
    },
    Arch {
        aliases: &["x86", "i386", "i686", "386"],
        native: "x86",
        scmp: "SCMP_ARCH_X86",
    },
    Arch {
        aliases: &["aarch64", "arm64"],
        native: "arm64",
        scmp: "SCMP_ARCH_AARCH64",
    },
    Arch {
        aliases: &["arm"],
        native: "arm",
        scmp: "SCMP_ARCH_ARM",
    },
    Arch {
        aliases: &["loongarch64", "loong64"],
        native: "loongarch64",
        scmp: "SCMP_ARCH_LOONGARCH64",
    },
    Arch {
        aliases: &["mips"],
        native: "mips",
        scmp: "SCMP_ARCH_MIPS",
    },
    Arch {
        aliases: &["mipsel", "mipsle"],
        native: "mipsel",
        scmp: "SCMP_ARCH_MIPSEL",
    },
    Arch {
        aliases: &["mips64"],
        native: "mips64",
        scmp: "SCMP_ARCH_MIPS64",
    },
    Arch {
        aliases: &["mips64n32"],
        native: "mips64n32",
        scmp: "SCMP_ARCH_MIPS64N32",
    },
    Arch {
        aliases: &["mipsel64", "mips64el", "mips64le"],
        native: "mipsel64",
        scmp: "SCMP_ARCH_MIPSEL64",
    },
    Arch {
        aliases: &["mipsel64n32"],
        native: "mipsel64n32",
        scmp: "SCMP_ARCH_MIPSEL64N32",
    },
    Arch {
        aliases: &["ppc", "powerpc"],
        native: "ppc",
        scmp: "SCMP_ARCH_PPC",
    },
    Arch {
        aliases: &["ppc64", "powerpc64"],
        native: "ppc64",
        scmp: "SCMP_ARCH_PPC64",
    },
    Arch {
        aliases: &["ppc64le", "powerpc64le"],
        native: "ppc64le",
        scmp: "SCMP_ARCH_PPC64LE",
    },
    Arch {
        aliases: &["riscv64"],
        native: "riscv64",
        scmp: "SCMP_ARCH_RISCV64",
    },
    Arch {
        aliases: &["s390"],
        native: "s390",
        scmp: "SCMP_ARCH_S390",
    },
    Arch {
        aliases: &["s390x"],
        native: "s390x",
        scmp: "SCMP_ARCH_S390X",
    },
];

/// The actions crun understands (its `get_seccomp_action`); anything else would only fail
/// later, inside `crun run`.
const ACTIONS: &[&str] = &[
    "SCMP_ACT_KILL",
    "SCMP_ACT_KILL_PROCESS",
    "SCMP_ACT_KILL_THREAD",
    "SCMP_ACT_TRAP",
    "SCMP_ACT_ERRNO",
    "SCMP_ACT_TRACE",
    "SCMP_ACT_ALLOW",
    "SCMP_ACT_LOG",
    "SCMP_ACT_NOTIFY",
];

/// Actions that take an errno value; crun refuses `errnoRet` on any other.
const ERRNO_ACTIONS: &[&str] = &["SCMP_ACT_ERRNO", "SCMP_ACT_TRACE"];

const OPERATORS: &[&str] = &[
    "SCMP_CMP_NE",
    "SCMP_CMP_LT",
    "SCMP_CMP_LE",
    "SCMP_CMP_EQ",
    "SCMP_CMP_GE",
    "SCMP_CMP_GT",
    "SCMP_CMP_MASKED_EQ",
];

/// Errno names a profile may give in `errno`/`defaultErrno`, with this target's values
/// (containers/common's `errnoArch` table; errno numbers differ between architectures).
const ERRNOS: &[(&str, i32)] = &[
    ("EPERM", libc::EPERM),
    ("ENOENT", libc::ENOENT),
    ("ESRCH", libc::ESRCH),
    ("EINTR", libc::EINTR),
    ("EIO", libc::EIO),
    ("ENXIO", libc::ENXIO),
    ("E2BIG", libc::E2BIG),
    ("ENOEXEC", libc::ENOEXEC),
    ("EBADF", libc::EBADF),
    ("ECHILD", libc::ECHILD),
    ("EAGAIN", libc::EAGAIN),
    ("ENOMEM", libc::ENOMEM),
    ("EACCES", libc::EACCES),
    ("EFAULT", libc::EFAULT),
    ("EBUSY", libc::EBUSY),
    ("EEXIST", libc::EEXIST),
    ("EXDEV", libc::EXDEV),
    ("ENODEV", libc::ENODEV),
    ("ENOTDIR", libc::ENOTDIR),
    ("EISDIR", libc::EISDIR),
    ("EINVAL", libc::EINVAL),
    ("ENFILE", libc::ENFILE),
    ("EMFILE", libc::EMFILE),
    ("ENOTTY", libc::ENOTTY),
    ("ETXTBSY", libc::ETXTBSY),
    ("EFBIG", libc::EFBIG),
    ("ENOSPC", libc::ENOSPC),
    ("ESPIPE", libc::ESPIPE),
    ("EROFS", libc::EROFS),
    ("EMLINK", libc::EMLINK),
    ("EPIPE", libc::EPIPE),
    ("EDOM", libc::EDOM),
    ("ERANGE", libc::ERANGE),
    ("ENOSYS", libc::ENOSYS),
    ("ENOTSUP", libc::ENOTSUP),
    ("EOPNOTSUPP", libc::EOPNOTSUPP),
    ("EAFNOSUPPORT", libc::EAFNOSUPPORT),
    ("EPROTONOSUPPORT", libc::EPROTONOSUPPORT),
];

/// The `linux.seccomp` object for a container on this host: the default profile resolved
/// for this build's architecture, the running kernel and the container's capabilities.
pub fn for_container(caps: &[&str]) -> Result<Value> {
    let profile: Value = serde_json::from_str(DOCKER_DEFAULT).map_err(SeccompError::Json)?;
    resolve(&profile, std::env::consts::ARCH, caps, running_kernel()?)
}

/// The running kernel's version as (kernel, major), e.g. (6, 1) for `6.1.0-18-amd64`:
/// what `minKernel` conditions are compared with. Like moby, only the first two numbers
/// count, so `6.1.0-18-amd64` and `6.1-rc5` are both 6.1.
pub fn running_kernel() -> Result<(u32, u32)> {
    // SAFETY: utsname is plain bytes, and uname fills it in (or fails) without keeping it.
    let mut uts: libc::utsname = unsafe { std::mem::zeroed() };
    if unsafe { libc::uname(&mut uts) } != 0 {
        return Err(SeccompError::Kernel(
            std::io::Error::last_os_error().to_string(),
        ));
    }
    let release: Vec<u8> = uts
        .release
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    let release = String::from_utf8_lossy(&release);
    parse_release(&release)
        .ok_or_else(|| SeccompError::Kernel(format!("unexpected release {release:?}")))
}

/// moby's `parseRelease`: `Sscanf("%d.%d")`, so digits, a dot, digits, and anything after.
fn parse_release(release: &str) -> Option<(u32, u32)> {
    let (kernel, rest) = release.split_once('.')?;
    let digits = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    Some((kernel.parse().ok()?, rest[..digits].parse().ok()?))
}

/// Resolves a Docker-format profile into the runtime-spec `linux.seccomp` object.
///
/// `arch` is the target (`x86_64`, `aarch64`, or Go's names `amd64`, `arm64`...), `caps`
/// the container's bounding set (`NET_RAW` or `CAP_NET_RAW`), `kernel` the host kernel as
/// (kernel, major), see [`running_kernel`]. Pure: the same arguments give the same value,
/// which keeps container configs reproducible and comparable between applies.
pub fn resolve(profile: &Value, arch: &str, caps: &[&str], kernel: (u32, u32)) -> Result<Value> {
    let arch = ARCHES
        .iter()
        .find(|a| a.aliases.contains(&arch) || a.scmp == arch)
        .ok_or_else(|| SeccompError::UnknownArch(arch.to_string()))?;
    let caps: Vec<String> = caps.iter().map(|c| cap_name(c)).collect();
    let profile = profile
        .as_object()
        .ok_or_else(|| invalid("(top)", "expected a JSON object"))?;

    let mut out = Map::new();

    let default_action = action(profile.get("defaultAction"), "defaultAction")?;
    out.insert("defaultAction".into(), default_action.into());
    let default_errno = errno(
        profile.get("defaultErrnoRet"),
        profile.get("defaultErrno"),
        "defaultErrnoRet",
    )?;
    if let Some(n) = default_errno {
        out.insert("defaultErrnoRet".into(), n.into());
    }

    let architectures = string_list(profile.get("architectures"), "architectures")?;
    let arch_map = match profile.get("archMap") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a.clone(),
        Some(_) => return Err(invalid("archMap", "expected an array")),
    };
    if !architectures.is_empty() && !arch_map.is_empty() {
        return Err(invalid(
            "architectures",
            "both 'architectures' and 'archMap' are given; use one",
        ));
    }
    let mut arches = architectures;
    for (i, entry) in arch_map.iter().enumerate() {
        let at = format!("archMap[{i}]");
        let name = entry
            .get("architecture")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid(&at, "expected an 'architecture' string"))?;
        let subs = string_list(
            entry.get("subArchitectures"),
            &format!("{at}.subArchitectures"),
        )?;
        if name == arch.scmp && arches.is_empty() {
            arches.push(name.to_string());
            arches.extend(subs);
        }
    }
    if !arches.is_empty() {
        out.insert("architectures".into(), arches.into());
    }

    // Runtime-spec fields the profile may set and moby passes on unchanged.
    let flags = string_list(profile.get("flags"), "flags")?;
    if !flags.is_empty() {
        out.insert("flags".into(), flags.into());
    }
    for key in ["listenerPath", "listenerMetadata"] {
        match profile.get(key) {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) if s.is_empty() => {}
            Some(v @ Value::String(_)) => {
                out.insert(key.into(), v.clone());
            }
            Some(_) => return Err(invalid(key, "expected a string")),
        }
    }

    let rules = match profile.get("syscalls") {
        None | Some(Value::Null) => &[][..],
        Some(Value::Array(a)) => &a[..],
        Some(_) => return Err(invalid("syscalls", "expected an array")),
    };
    let mut syscalls = Vec::new();
    for (i, rule) in rules.iter().enumerate() {
        let at = format!("syscalls[{i}]");
        let (applies, syscall) = rule_for(rule, &at, arch.native, &caps, kernel)?;
        if applies {
            syscalls.push(syscall);
        }
    }
    out.insert("syscalls".into(), syscalls.into());
    Ok(Value::Object(out))
}

/// Checks one profile rule and converts it; the bool tells whether it applies to this
/// container. Every rule is converted, applicable or not, so that a mistake in the profile
/// shows whatever the capabilities.
fn rule_for(
    rule: &Value,
    at: &str,
    arch: &str,
    caps: &[String],
    kernel: (u32, u32),
) -> Result<(bool, Value)> {
    let rule = rule
        .as_object()
        .ok_or_else(|| invalid(at, "expected an object"))?;

    let mut names = string_list(rule.get("names"), &format!("{at}.names"))?;
    match rule.get("name") {
        None | Some(Value::Null) => {}
        Some(Value::String(n)) if n.is_empty() => {}
        Some(Value::String(n)) => {
            if !names.is_empty() {
                return Err(invalid(at, "both 'name' and 'names' are given; use one"));
            }
            names.push(n.clone());
        }
        Some(_) => return Err(invalid(&format!("{at}.name"), "expected a string")),
    }

    let act = action(rule.get("action"), &format!("{at}.action"))?;
    let errno_ret = errno(
        rule.get("errnoRet"),
        rule.get("errno"),
        &format!("{at}.errnoRet"),
    )?;
    if errno_ret.is_some() && !ERRNO_ACTIONS.contains(&act) {
        return Err(invalid(
            &format!("{at}.errnoRet"),
            &format!("an errno is given for {act}, which takes none"),
        ));
    }
    let args = match rule.get("args") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a
            .iter()
            .enumerate()
            .map(|(k, arg)| argument(arg, &format!("{at}.args[{k}]")))
            .collect::<Result<Vec<_>>>()?,
        Some(_) => return Err(invalid(&format!("{at}.args"), "expected an array")),
    };

    let excludes = Filter::read(rule.get("excludes"), &format!("{at}.excludes"))?;
    let includes = Filter::read(rule.get("includes"), &format!("{at}.includes"))?;
    let excluded = excludes.arches.iter().any(|a| a == arch)
        || excludes.caps.iter().any(|c| caps.contains(c))
        || excludes.min_kernel.is_some_and(|min| kernel >= min);
    let included = (includes.arches.is_empty() || includes.arches.iter().any(|a| a == arch))
        && includes.caps.iter().all(|c| caps.contains(c))
        && includes.min_kernel.is_none_or(|min| kernel >= min);

    let mut out = Map::new();
    out.insert("names".into(), names.into());
    out.insert("action".into(), act.into());
    if let Some(n) = errno_ret {
        out.insert("errnoRet".into(), n.into());
    }
    if !args.is_empty() {
        out.insert("args".into(), args.into());
    }
    Ok((!excluded && included, Value::Object(out)))
}

/// A rule's `includes` or `excludes`.
struct Filter {
    arches: Vec<String>,
    caps: Vec<String>,
    min_kernel: Option<(u32, u32)>,
}

impl Filter {
    fn read(v: Option<&Value>, at: &str) -> Result<Filter> {
        let empty = Filter {
            arches: Vec::new(),
            caps: Vec::new(),
            min_kernel: None,
        };
        let f = match v {
            None | Some(Value::Null) => return Ok(empty),
            Some(Value::Object(f)) => f,
            Some(_) => return Err(invalid(at, "expected an object")),
        };
        let min_kernel = match f.get("minKernel") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.is_empty() => None,
            Some(Value::String(s)) => Some(parse_min_kernel(s).ok_or_else(|| {
                invalid(
                    &format!("{at}.minKernel"),
                    &format!("expected \"<kernel>.<major>\" such as \"4.8\", got {s:?}"),
                )
            })?),
            Some(_) => return Err(invalid(&format!("{at}.minKernel"), "expected a string")),
        };
        Ok(Filter {
            arches: string_list(f.get("arches"), &format!("{at}.arches"))?,
            caps: string_list(f.get("caps"), &format!("{at}.caps"))?
                .iter()
                .map(|c| cap_name(c))
                .collect(),
            min_kernel,
        })
    }
}

/// moby's `KernelVersion.UnmarshalJSON`: exactly two numbers below 256, not 0.0.
fn parse_min_kernel(s: &str) -> Option<(u32, u32)> {
    let (kernel, major) = s.split_once('.')?;
    let (kernel, major) = (kernel.parse::<u8>().ok()?, major.parse::<u8>().ok()?);
    if (kernel, major) == (0, 0) {
        return None;
    }
    Some((kernel.into(), major.into()))
}

/// One syscall argument condition, checked against what crun accepts: an index below 6
/// (syscalls have six argument registers), 64-bit values, a known operator.
fn argument(arg: &Value, at: &str) -> Result<Value> {
    let arg = arg
        .as_object()
        .ok_or_else(|| invalid(at, "expected an object"))?;
    let number = |key: &str, required: bool| -> Result<u64> {
        match arg.get(key) {
            None | Some(Value::Null) if required => Err(invalid(&format!("{at}.{key}"), "missing")),
            None | Some(Value::Null) => Ok(0),
            Some(v) => v.as_u64().ok_or_else(|| {
                invalid(
                    &format!("{at}.{key}"),
                    "expected an unsigned 64-bit integer",
                )
            }),
        }
    };
    let index = number("index", true)?;
    if index >= 6 {
        return Err(invalid(
            &format!("{at}.index"),
            &format!("argument index {index} is not below 6"),
        ));
    }
    let value = number("value", true)?;
    let value_two = number("valueTwo", false)?;
    let op = arg
        .get("op")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid(&format!("{at}.op"), "expected a string"))?;
    if !OPERATORS.contains(&op) {
        return Err(invalid(
            &format!("{at}.op"),
            &format!("unknown operator {op:?}"),
        ));
    }
    let mut out = Map::new();
    out.insert("index".into(), index.into());
    out.insert("value".into(), value.into());
    out.insert("valueTwo".into(), value_two.into());
    out.insert("op".into(), op.into());
    Ok(Value::Object(out))
}

fn action<'a>(v: Option<&'a Value>, at: &str) -> Result<&'a str> {
    let a = v
        .and_then(Value::as_str)
        .ok_or_else(|| invalid(at, "expected an action string such as SCMP_ACT_ERRNO"))?;
    if ACTIONS.contains(&a) {
        Ok(a)
    } else {
        Err(invalid(at, &format!("unknown action {a:?}")))
    }
}

/// The errno of a rule: the number when given (moby reads only that), else the name
/// (containers/common's `errno`); an error when both are given and disagree.
fn errno(number: Option<&Value>, name: Option<&Value>, at: &str) -> Result<Option<u32>> {
    let number = match number {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| invalid(at, "expected an unsigned 32-bit integer"))?,
        ),
    };
    let named = match name {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.is_empty() => None,
        Some(Value::String(s)) => Some(
            s.parse::<u32>()
                .ok()
                .or_else(|| {
                    ERRNOS
                        .iter()
                        .find(|(n, _)| n == s)
                        .map(|&(_, v)| v.unsigned_abs())
                })
                .ok_or_else(|| invalid(at, &format!("unknown errno name {s:?}")))?,
        ),
        Some(_) => return Err(invalid(at, "expected an errno name string")),
    };
    match (number, named) {
        (Some(n), Some(m)) if n != m => Err(invalid(
            at,
            &format!("errnoRet {n} disagrees with its errno name, which is {m} here"),
        )),
        (Some(n), _) => Ok(Some(n)),
        (None, m) => Ok(m),
    }
}

fn string_list(v: Option<&Value>, at: &str) -> Result<Vec<String>> {
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(a)) => a
            .iter()
            .map(|s| {
                s.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| invalid(at, "expected an array of strings"))
            })
            .collect(),
        Some(_) => Err(invalid(at, "expected an array of strings")),
    }
}

/// `net_raw`, `NET_RAW` and `CAP_NET_RAW` are all `CAP_NET_RAW`.
fn cap_name(c: &str) -> String {
    let c = c.to_ascii_uppercase();
    if c.starts_with("CAP_") {
        c
    } else {
        format!("CAP_{c}")
    }
}

fn invalid(at: &str, why: &str) -> SeccompError {
    SeccompError::Invalid {
        at: at.to_string(),
        why: why.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const X86_64: &str = "x86_64";
    const NEW: (u32, u32) = (6, 1);

    /// The names of the resolved rules, one list per rule, in order.
    fn names(resolved: &Value) -> Vec<Vec<String>> {
        resolved["syscalls"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                r["names"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|n| n.as_str().unwrap().to_string())
                    .collect()
            })
            .collect()
    }

    /// The rules naming `syscall`, in order.
    fn rules_for<'a>(resolved: &'a Value, syscall: &str) -> Vec<&'a Value> {
        resolved["syscalls"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["names"].as_array().unwrap().iter().any(|n| n == syscall))
            .collect()
    }

    /// What happens to `syscall` called with no argument conditions met specially: the
    /// action of the first rule naming it without arguments, as libseccomp keeps the first.
    fn unconditional(resolved: &Value, syscall: &str) -> Option<String> {
        rules_for(resolved, syscall)
            .into_iter()
            .find(|r| r.get("args").is_none())
            .map(|r| r["action"].as_str().unwrap().to_string())
    }

    fn small() -> Value {
        json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "defaultErrnoRet": 38,
            "archMap": [
                {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]},
                {"architecture": "SCMP_ARCH_X86_64",
                 "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]}
            ],
            "syscalls": [
                {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW", "args": [],
                 "comment": "", "includes": {}, "excludes": {}},
                {"names": ["arch_prctl"], "action": "SCMP_ACT_ALLOW",
                 "includes": {"arches": ["amd64", "x32"]}},
                {"names": ["set_tls"], "action": "SCMP_ACT_ALLOW",
                 "includes": {"arches": ["arm", "arm64"]}},
                {"names": ["iopl"], "action": "SCMP_ACT_ALLOW",
                 "excludes": {"arches": ["amd64"]}},
                {"names": ["ptrace"], "action": "SCMP_ACT_ALLOW",
                 "includes": {"caps": ["CAP_SYS_PTRACE"]}},
                {"names": ["ptrace"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
                 "errno": "EPERM", "excludes": {"caps": ["CAP_SYS_PTRACE"]}},
                {"names": ["bpf"], "action": "SCMP_ACT_ALLOW",
                 "includes": {"caps": ["CAP_SYS_ADMIN", "CAP_BPF"]}},
                {"names": ["perf_event_open"], "action": "SCMP_ACT_ALLOW",
                 "excludes": {"caps": ["CAP_SYS_ADMIN", "CAP_PERFMON"]}},
                {"names": ["process_vm_readv"], "action": "SCMP_ACT_ALLOW",
                 "includes": {"minKernel": "4.8"}},
                {"names": ["landlock_create_ruleset"], "action": "SCMP_ACT_ERRNO",
                 "errnoRet": 38, "excludes": {"minKernel": "5.13"}},
                {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
                 "includes": {"caps": ["CAP_SYS_ADMIN"]}},
                {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 2114060288, "op": "SCMP_CMP_MASKED_EQ"}],
                 "excludes": {"caps": ["CAP_SYS_ADMIN"], "arches": ["s390", "s390x"]}},
                {"names": ["socket"], "action": "SCMP_ACT_ERRNO", "errnoRet": 22,
                 "args": [
                    {"index": 0, "value": 16, "valueTwo": 0, "op": "SCMP_CMP_EQ"},
                    {"index": 2, "value": 9, "valueTwo": 0, "op": "SCMP_CMP_EQ"}
                 ],
                 "excludes": {"caps": ["CAP_AUDIT_WRITE"]}},
                {"name": "clone3", "action": "SCMP_ACT_ERRNO", "errno": "ENOSYS"}
            ]
        })
    }

    #[test]
    fn arch_map_gives_the_target_and_its_sub_arches() {
        let r = resolve(&small(), X86_64, &[], NEW).unwrap();
        assert_eq!(
            r["architectures"],
            json!(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"])
        );
        let r = resolve(&small(), "aarch64", &[], NEW).unwrap();
        assert_eq!(
            r["architectures"],
            json!(["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"])
        );
        // Go's name and the libseccomp token name the same target.
        assert_eq!(
            resolve(&small(), "amd64", &[], NEW).unwrap(),
            resolve(&small(), "SCMP_ARCH_X86_64", &[], NEW).unwrap()
        );
        // No entry for the target: no list, libseccomp then filters the native arch only.
        let r = resolve(&small(), "riscv64", &[], NEW).unwrap();
        assert!(r.get("architectures").is_none());
        assert!(matches!(
            resolve(&small(), "vax", &[], NEW),
            Err(SeccompError::UnknownArch(_))
        ));
    }

    #[test]
    fn default_action_and_errno_pass_through() {
        let r = resolve(&small(), X86_64, &[], NEW).unwrap();
        assert_eq!(r["defaultAction"], "SCMP_ACT_ERRNO");
        assert_eq!(r["defaultErrnoRet"], 38);
        // containers/common's name form alone is understood too.
        let p = json!({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrno": "EPERM"});
        assert_eq!(resolve(&p, X86_64, &[], NEW).unwrap()["defaultErrnoRet"], 1);
        let p = json!({"defaultAction": "SCMP_ACT_ALLOW"});
        let r = resolve(&p, X86_64, &[], NEW).unwrap();
        assert!(r.get("defaultErrnoRet").is_none());
        assert_eq!(r["syscalls"], json!([]));
    }

    #[test]
    fn includes_and_excludes_of_arches() {
        let r = resolve(&small(), X86_64, &[], NEW).unwrap();
        assert!(!rules_for(&r, "arch_prctl").is_empty());
        assert!(rules_for(&r, "set_tls").is_empty());
        assert!(rules_for(&r, "iopl").is_empty());
        let r = resolve(&small(), "aarch64", &[], NEW).unwrap();
        assert!(rules_for(&r, "arch_prctl").is_empty());
        assert!(!rules_for(&r, "set_tls").is_empty());
        assert!(!rules_for(&r, "iopl").is_empty());
        // The x86 sub-architecture is filtered on x86_64, but a rule for x86 alone is not
        // included there: moby compares with the target's own name only.
        let p = json!({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
            {"names": ["vm86"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["x86"]}}
        ]});
        assert!(names(&resolve(&p, X86_64, &[], NEW).unwrap()).is_empty());
    }

    #[test]
    fn includes_need_every_cap_and_excludes_any() {
        let r = resolve(&small(), X86_64, &[], NEW).unwrap();
        assert_eq!(
            unconditional(&r, "ptrace").as_deref(),
            Some("SCMP_ACT_ERRNO")
        );
        assert_eq!(rules_for(&r, "ptrace")[0]["errnoRet"], 1);
        assert!(rules_for(&r, "bpf").is_empty());
        assert!(!rules_for(&r, "perf_event_open").is_empty());

        let r = resolve(&small(), X86_64, &["SYS_PTRACE", "sys_admin"], NEW).unwrap();
        assert_eq!(
            unconditional(&r, "ptrace").as_deref(),
            Some("SCMP_ACT_ALLOW")
        );
        assert_eq!(rules_for(&r, "ptrace").len(), 1);
        assert!(rules_for(&r, "bpf").is_empty(), "CAP_BPF is missing");
        assert!(rules_for(&r, "perf_event_open").is_empty());

        let r = resolve(&small(), X86_64, &["CAP_SYS_ADMIN", "CAP_BPF"], NEW).unwrap();
        assert!(!rules_for(&r, "bpf").is_empty());
        let r = resolve(&small(), X86_64, &["PERFMON"], NEW).unwrap();
        assert!(rules_for(&r, "perf_event_open").is_empty());
    }

    #[test]
    fn min_kernel_in_includes_and_excludes() {
        let r = resolve(&small(), X86_64, &[], (4, 7)).unwrap();
        assert!(rules_for(&r, "process_vm_readv").is_empty());
        assert!(!rules_for(&r, "landlock_create_ruleset").is_empty());
        for kernel in [(4, 8), (4, 20), (5, 0)] {
            let r = resolve(&small(), X86_64, &[], kernel).unwrap();
            assert!(!rules_for(&r, "process_vm_readv").is_empty(), "{kernel:?}");
        }
        let r = resolve(&small(), X86_64, &[], (5, 13)).unwrap();
        assert!(rules_for(&r, "landlock_create_ruleset").is_empty());
        // 3.20 is older than 4.8 although its major number is larger.
        let r = resolve(&small(), X86_64, &[], (3, 20)).unwrap();
        assert!(rules_for(&r, "process_vm_readv").is_empty());

        for bad in ["4", "4.8.1", "x.1", "0.0", "300.1"] {
            let p = json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                {"names": ["a"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": bad}}
            ]});
            let err = resolve(&p, X86_64, &[], NEW).unwrap_err().to_string();
            assert!(
                err.contains("syscalls[0].includes.minKernel"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn clone_keeps_its_namespace_flag_condition_without_sys_admin() {
        let r = resolve(&small(), X86_64, &[], NEW).unwrap();
        let clone = rules_for(&r, "clone");
        assert_eq!(clone.len(), 1);
        assert_eq!(
            clone[0]["args"],
            json!([{"index": 0, "value": 2114060288u64, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}])
        );
        assert_eq!(unconditional(&r, "clone"), None);
        let r = resolve(&small(), X86_64, &["SYS_ADMIN"], NEW).unwrap();
        let clone = rules_for(&r, "clone");
        assert_eq!(clone.len(), 1);
        assert!(clone[0].get("args").is_none());
    }

    #[test]
    fn args_and_errno_ret_are_carried() {
        let r = resolve(&small(), X86_64, &[], NEW).unwrap();
        let socket = rules_for(&r, "socket");
        assert_eq!(
            socket[0],
            &json!({
                "names": ["socket"], "action": "SCMP_ACT_ERRNO", "errnoRet": 22,
                "args": [
                    {"index": 0, "value": 16, "valueTwo": 0, "op": "SCMP_CMP_EQ"},
                    {"index": 2, "value": 9, "valueTwo": 0, "op": "SCMP_CMP_EQ"}
                ]
            })
        );
        // Empty args and Docker-only fields (comment, includes, errno) are not passed on.
        assert_eq!(
            rules_for(&r, "read")[0],
            &json!({"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"})
        );
        // The legacy single 'name', and an errno given by name only.
        assert_eq!(
            rules_for(&r, "clone3")[0],
            &json!({"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38})
        );
        let r = resolve(&small(), X86_64, &["AUDIT_WRITE"], NEW).unwrap();
        assert!(rules_for(&r, "socket").is_empty());
    }

    #[test]
    fn rule_order_is_kept() {
        let r = resolve(&small(), X86_64, &[], (5, 4)).unwrap();
        let first: Vec<String> = names(&r).into_iter().map(|n| n[0].clone()).collect();
        assert_eq!(
            first,
            [
                "read",
                "arch_prctl",
                "ptrace",
                "perf_event_open",
                "process_vm_readv",
                "landlock_create_ruleset",
                "clone",
                "socket",
                "clone3"
            ]
        );
    }

    #[test]
    fn broken_profiles_are_refused_with_their_place() {
        let cases = [
            (json!([]), "(top)"),
            (json!({"syscalls": []}), "defaultAction"),
            (json!({"defaultAction": "SCMP_ACT_NOPE"}), "defaultAction"),
            (
                json!({"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86_64"],
                       "archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": []}]}),
                "architectures",
            ),
            (
                json!({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
                    {"name": "a", "names": ["b"], "action": "SCMP_ACT_ALLOW"}]}),
                "syscalls[0]",
            ),
            (
                json!({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
                    {"names": ["a"], "action": "SCMP_ACT_ALLOW", "errnoRet": 1}]}),
                "syscalls[0].errnoRet",
            ),
            (
                json!({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
                    {"names": ["a"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1, "errno": "ENOSYS"}]}),
                "syscalls[0].errnoRet",
            ),
            (
                json!({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
                    {"names": ["a"], "action": "SCMP_ACT_ALLOW",
                     "args": [{"index": 6, "value": 0, "op": "SCMP_CMP_EQ"}]}]}),
                "syscalls[0].args[0].index",
            ),
            (
                json!({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
                    {"names": ["a"], "action": "SCMP_ACT_ALLOW",
                     "args": [{"index": 0, "value": -1, "op": "SCMP_CMP_EQ"}]}]}),
                "syscalls[0].args[0].value",
            ),
            (
                json!({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
                    {"names": ["a"], "action": "SCMP_ACT_ALLOW",
                     "args": [{"index": 0, "value": 1, "op": "EQ"}]}]}),
                "syscalls[0].args[0].op",
            ),
            // A broken rule is refused even when it does not apply to this container.
            (
                json!({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
                    {"names": ["a"], "action": "SCMP_ACT_KILLME",
                     "includes": {"caps": ["CAP_SYS_ADMIN"]}}]}),
                "syscalls[0].action",
            ),
        ];
        for (profile, at) in cases {
            match resolve(&profile, X86_64, &[], NEW) {
                Err(SeccompError::Invalid { at: got, .. }) => assert_eq!(got, at, "{profile}"),
                other => panic!("{profile}: {other:?}"),
            }
        }
    }

    #[test]
    fn kernel_release_parsing() {
        assert_eq!(parse_release("6.1.0-18-amd64"), Some((6, 1)));
        assert_eq!(parse_release("3.12-1-amd64"), Some((3, 12)));
        assert_eq!(parse_release("6.18.44-fc-v595"), Some((6, 18)));
        assert_eq!(parse_release("5.10"), Some((5, 10)));
        assert_eq!(parse_release("6"), None);
        assert_eq!(parse_release("x.1"), None);
        let (kernel, _) = running_kernel().unwrap();
        assert!(kernel >= 3);
    }

    /// The OCI default set plus what a lab router needs; no SYS_ADMIN, SYS_PTRACE,
    /// SYS_MODULE or MKNOD.
    const LAB_CAPS: &[&str] = &[
        "CHOWN",
        "DAC_OVERRIDE",
        "FOWNER",
        "FSETID",
        "KILL",
        "SETGID",
        "SETUID",
        "SETPCAP",
        "NET_BIND_SERVICE",
        "SYS_CHROOT",
        "AUDIT_WRITE",
        "SETFCAP",
        "NET_ADMIN",
        "NET_RAW",
    ];

    fn docker() -> Value {
        serde_json::from_str(DOCKER_DEFAULT).unwrap()
    }

    fn allowed_outright(r: &Value, syscall: &str) -> bool {
        rules_for(r, syscall)
            .iter()
            .any(|x| x["action"] == "SCMP_ACT_ALLOW" && x.get("args").is_none())
    }

    /// The embedded profile gates what makes namespaces and mounts on SYS_ADMIN, and the
    /// rest as Docker documents it.
    #[test]
    fn docker_default_profile() {
        let p = docker();
        let lab = resolve(&p, X86_64, LAB_CAPS, NEW).unwrap();
        let mut more = LAB_CAPS.to_vec();
        more.extend(["SYS_ADMIN", "SYS_PTRACE"]);
        let admin = resolve(&p, X86_64, &more, NEW).unwrap();
        assert_eq!(lab["defaultErrnoRet"], 1);
        assert_eq!(
            lab["architectures"],
            json!(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"])
        );
        for s in ["mount", "unshare", "setns", "umount2"] {
            assert!(!allowed_outright(&lab, s), "{s}");
            assert!(allowed_outright(&admin, s), "{s}");
        }
        // clone: only the rule that masks out the namespace flags, without SYS_ADMIN.
        let clone = rules_for(&lab, "clone");
        assert_eq!(clone.len(), 1);
        assert_eq!(clone[0]["args"][0]["op"], "SCMP_CMP_MASKED_EQ");
        assert!(allowed_outright(&admin, "clone"));
        // clone3 gets ENOSYS without SYS_ADMIN, so that libc falls back to clone.
        let clone3 = rules_for(&lab, "clone3");
        assert_eq!(clone3[0]["errnoRet"], libc::ENOSYS);
        assert!(!allowed_outright(&lab, "init_module"));
        // Stable: resolving again gives the same bytes.
        let again = resolve(&p, X86_64, LAB_CAPS, NEW).unwrap();
        assert_eq!(lab.to_string(), again.to_string());
        assert_eq!(
            for_container(LAB_CAPS).unwrap()["defaultAction"],
            "SCMP_ACT_ERRNO"
        );
    }
}
