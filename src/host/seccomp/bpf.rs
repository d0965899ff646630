//! The container's seccomp filter compiled to BPF once per run of cloonix, handed to crun
//! in the annotation [`ANNOTATION`] instead of being compiled again by every `crun run`.
//!
//! Why: crun compiles the `linux.seccomp` section with libseccomp on each `crun run`
//! (Debian's crun 1.8.1 is built without libgcrypt, so its cache of compiled filters is
//! off). Measured on a 2-core host, a `crun run` of a lab container took about 88 ms with
//! the section and 50 ms without, which made an apply of 300 containers about 9 s instead
//! of 7 s. Every non-privileged container of a run gets one of two filters (with and
//! without MKNOD), so compiling each once and handing crun the program is the same work
//! done twice instead of 300 times.
//!
//! What crun does with the annotation (`src/libcrun/container.c` and `seccomp.c`, crun
//! 1.8.1): when `run.oci.seccomp_bpf_data` is set, `crun run` base64-decodes it into the
//! container's `seccomp.bpf` state file in place of compiling `linux.seccomp`, and loads
//! that program with `seccomp(SECCOMP_SET_MODE_FILTER)` as it would its own; `crun exec`
//! reads the same state file, so processes started later get the same filter. The
//! section's `flags` and `listenerPath` are still read from `linux.seccomp`, so the
//! section stays in the config beside the annotation (which also keeps the filter on with
//! a runtime that does not know the annotation).
//!
//! [`compile`] is crun 1.8.1's `libcrun_generate_seccomp`, step by step, on the same
//! section and with the same library (libseccomp, through the `libseccomp` crate), so
//! that the program is the one crun would have made: on this host the two are identical
//! byte for byte (see the tests). In particular:
//! * `defaultAction` with `defaultErrnoRet`, EPERM when that is not given;
//! * each of `architectures`, with or without its `SCMP_ARCH_` prefix, in any case;
//! * each rule's action with its `errnoRet` (EPERM when not given); a rule whose action is
//!   the default action is left out, as libseccomp would refuse it;
//! * each syscall name that this libseccomp resolves; names it does not know are skipped,
//!   as crun skips them (crun fails on them only under the annotation
//!   `run.oci.seccomp_fail_unknown_syscall`, which cloonix never sets);
//! * the rule's argument conditions (at most the first six), ANDed in one rule, except
//!   when one argument index is compared twice: then each condition becomes a rule of its
//!   own, as crun does, since libseccomp refuses two conditions on one argument;
//! * no filter attribute is changed from libseccomp's defaults, as crun changes none.

use libseccomp::error::SeccompError as LibError;
use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};
use serde_json::Value;
use std::io::{Read, Seek};

/// The OCI annotation crun reads the compiled program from (base64 of the raw
/// `struct sock_filter` array).
pub const ANNOTATION: &str = "run.oci.seccomp_bpf_data";

/// crun's default errno for `SCMP_ACT_ERRNO` and `SCMP_ACT_TRACE` without `errnoRet`.
const EPERM: u32 = libc::EPERM as u32;

#[derive(Debug, thiserror::Error)]
pub enum BpfError {
    /// The section is not one crun would compile; `at` is a JSON path into it.
    #[error("seccomp section: {at}: {why}")]
    Section { at: String, why: String },
    #[error("libseccomp: {0}")]
    Lib(#[from] LibError),
    #[error("exporting the seccomp program: {0}")]
    Export(std::io::Error),
}

type Result<T> = std::result::Result<T, BpfError>;

fn section_error(at: impl Into<String>, why: impl Into<String>) -> BpfError {
    BpfError::Section {
        at: at.into(),
        why: why.into(),
    }
}

/// The section compiled to the raw BPF program crun would load: a whole number of 8-byte
/// `struct sock_filter` instructions.
pub fn compile(section: &Value) -> Result<Vec<u8>> {
    let ctx = filter(section)?;
    // libseccomp 2.5 exports to a file descriptor only (export to memory is 2.6's).
    let fd = rustix::fs::memfd_create("cloonix-seccomp", rustix::fs::MemfdFlags::CLOEXEC)
        .map_err(|e| BpfError::Export(e.into()))?;
    let mut file = std::fs::File::from(fd);
    ctx.export_bpf(&file)?;
    let mut program = Vec::new();
    file.rewind().map_err(BpfError::Export)?;
    file.read_to_end(&mut program).map_err(BpfError::Export)?;
    if program.is_empty() || program.len() % 8 != 0 {
        return Err(BpfError::Export(std::io::Error::other(format!(
            "libseccomp gave {} bytes, not whole 8-byte instructions",
            program.len()
        ))));
    }
    Ok(program)
}

/// The value of [`ANNOTATION`] for the section: its program, base64-encoded.
pub fn annotation(section: &Value) -> Result<String> {
    use base64::Engine;
    Ok(base64::engine::general_purpose::STANDARD.encode(compile(section)?))
}

/// crun's `get_seccomp_action`: the action named, with `errno` for the two that take one
/// (libseccomp keeps its low 16 bits, as the C macros do).
fn action(name: &str, errno: u32, at: &str) -> Result<ScmpAction> {
    let errno = errno as u16;
    Ok(match name {
        "SCMP_ACT_ALLOW" => ScmpAction::Allow,
        "SCMP_ACT_ERRNO" => ScmpAction::Errno(errno.into()),
        "SCMP_ACT_KILL" | "SCMP_ACT_KILL_THREAD" => ScmpAction::KillThread,
        "SCMP_ACT_KILL_PROCESS" => ScmpAction::KillProcess,
        "SCMP_ACT_LOG" => ScmpAction::Log,
        "SCMP_ACT_TRAP" => ScmpAction::Trap,
        "SCMP_ACT_TRACE" => ScmpAction::Trace(errno),
        "SCMP_ACT_NOTIFY" => ScmpAction::Notify,
        other => return Err(section_error(at, format!("unknown action {other:?}"))),
    })
}

/// The action of the section's default or of one rule: `action` with `errnoRet` (crun's
/// default EPERM when absent), refused where crun refuses an errno.
fn action_of(obj: &Value, action_key: &str, errno_key: &str, at: &str) -> Result<ScmpAction> {
    let name = obj
        .get(action_key)
        .and_then(Value::as_str)
        .ok_or_else(|| section_error(format!("{at}{action_key}"), "missing"))?;
    let errno = match obj.get(errno_key) {
        None | Some(Value::Null) => EPERM,
        Some(v) => {
            if !matches!(name, "SCMP_ACT_ERRNO" | "SCMP_ACT_TRACE") {
                return Err(section_error(
                    format!("{at}{errno_key}"),
                    format!("an errno is given for {name}, which takes none"),
                ));
            }
            v.as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| section_error(format!("{at}{errno_key}"), "expected a u32"))?
        }
    };
    action(name, errno, &format!("{at}{action_key}"))
}

/// crun's architecture names: `SCMP_ARCH_X86_64`, `x86_64`, in any case.
fn arch(name: &str) -> Result<ScmpArch> {
    let bare = name.strip_prefix("SCMP_ARCH_").unwrap_or(name);
    format!("SCMP_ARCH_{}", bare.to_ascii_uppercase())
        .parse()
        .map_err(|_| section_error("architectures", format!("unknown architecture {name:?}")))
}

fn operator(op: &str, value: u64, at: &str) -> Result<ScmpCompareOp> {
    Ok(match op {
        "SCMP_CMP_NE" => ScmpCompareOp::NotEqual,
        "SCMP_CMP_LT" => ScmpCompareOp::Less,
        "SCMP_CMP_LE" => ScmpCompareOp::LessOrEqual,
        "SCMP_CMP_EQ" => ScmpCompareOp::Equal,
        "SCMP_CMP_GE" => ScmpCompareOp::GreaterEqual,
        "SCMP_CMP_GT" => ScmpCompareOp::Greater,
        // libseccomp's MASKED_EQ compares (arg & datum_a) == datum_b, and crun passes
        // `value` as datum_a and `valueTwo` as datum_b.
        "SCMP_CMP_MASKED_EQ" => ScmpCompareOp::MaskedEqual(value),
        other => return Err(section_error(at, format!("unknown operator {other:?}"))),
    })
}

/// One argument condition as crun builds it: datum_a is `value`, datum_b `valueTwo`
/// (libseccomp reads datum_b for MASKED_EQ only).
fn comparison(arg: &Value, at: &str) -> Result<(u32, ScmpArgCompare)> {
    let number = |key: &str| -> Result<u64> {
        match arg.get(key) {
            None | Some(Value::Null) => Ok(0),
            Some(v) => v
                .as_u64()
                .ok_or_else(|| section_error(format!("{at}.{key}"), "expected a u64")),
        }
    };
    let index = u32::try_from(number("index")?)
        .ok()
        .filter(|&i| i < 6)
        .ok_or_else(|| section_error(format!("{at}.index"), "not below 6"))?;
    let (value, value_two) = (number("value")?, number("valueTwo")?);
    let op = arg
        .get("op")
        .and_then(Value::as_str)
        .ok_or_else(|| section_error(format!("{at}.op"), "missing"))?;
    let op = operator(op, value, &format!("{at}.op"))?;
    let datum = match op {
        ScmpCompareOp::MaskedEqual(_) => value_two,
        _ => value,
    };
    Ok((index, ScmpArgCompare::new(index, op, datum)))
}

/// The filter of the section, rule by rule as `libcrun_generate_seccomp` adds them.
fn filter(section: &Value) -> Result<ScmpFilterContext> {
    let default = action_of(section, "defaultAction", "defaultErrnoRet", "")?;
    let mut ctx = ScmpFilterContext::new(default)?;

    let list = |key: &str| -> Result<&[Value]> {
        match section.get(key) {
            None | Some(Value::Null) => Ok(&[]),
            Some(Value::Array(a)) => Ok(a),
            Some(_) => Err(section_error(key, "expected an array")),
        }
    };
    for (i, a) in list("architectures")?.iter().enumerate() {
        let name = a
            .as_str()
            .ok_or_else(|| section_error(format!("architectures[{i}]"), "expected a string"))?;
        // add_arch succeeds on an architecture already there, as crun ignores EEXIST.
        ctx.add_arch(arch(name)?)?;
    }

    for (i, rule) in list("syscalls")?.iter().enumerate() {
        let at = format!("syscalls[{i}].");
        let act = action_of(rule, "action", "errnoRet", &at)?;
        if act == default {
            continue;
        }
        // crun distinguishes an absent `args` from an empty one, but both add the rule
        // with no condition.
        let args = match rule.get("args") {
            None | Some(Value::Null) => &[][..],
            Some(Value::Array(a)) => &a[..],
            Some(_) => return Err(section_error(format!("{at}args"), "expected an array")),
        };
        // crun looks at the first six conditions only.
        let conditions = args
            .iter()
            .take(6)
            .enumerate()
            .map(|(k, a)| comparison(a, &format!("{at}args[{k}]")))
            .collect::<Result<Vec<_>>>()?;
        let mut seen = [false; 6];
        let repeated = conditions
            .iter()
            .any(|(index, _)| std::mem::replace(&mut seen[*index as usize], true));
        let conditions: Vec<ScmpArgCompare> = conditions.into_iter().map(|(_, c)| c).collect();

        let names = match rule.get("names") {
            Some(Value::Array(a)) => &a[..],
            None | Some(Value::Null) => &[][..],
            Some(_) => return Err(section_error(format!("{at}names"), "expected an array")),
        };
        for (j, name) in names.iter().enumerate() {
            let name = name
                .as_str()
                .ok_or_else(|| section_error(format!("{at}names[{j}]"), "expected a string"))?;
            // crun: `unknown seccomp syscall ... ignored`.
            let Ok(syscall) = ScmpSyscall::from_name(name) else {
                continue;
            };
            if repeated {
                for c in &conditions {
                    ctx.add_rule_conditional(act, syscall, std::slice::from_ref(c))?;
                }
            } else {
                ctx.add_rule_conditional(act, syscall, &conditions)?;
            }
        }
    }
    Ok(ctx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The two sections a run of cloonix compiles: Docker's profile resolved for the lab
    /// capabilities, with and without MKNOD.
    fn resolved(mknod: bool) -> Value {
        crate::host::oci::filter(mknod).unwrap().clone()
    }

    #[test]
    fn the_resolved_profile_compiles_to_whole_instructions() {
        for mknod in [false, true] {
            let program = compile(&resolved(mknod)).unwrap();
            assert!(!program.is_empty());
            assert_eq!(program.len() % 8, 0, "{} bytes", program.len());
            // The same section gives the same program: configs stay comparable.
            assert_eq!(compile(&resolved(mknod)).unwrap(), program);
            let text = annotation(&resolved(mknod)).unwrap();
            use base64::Engine;
            let back = base64::engine::general_purpose::STANDARD
                .decode(text)
                .unwrap();
            assert_eq!(back, program);
        }
    }

    /// Decoded instructions: (code, jt, jf, k).
    fn instructions(program: &[u8]) -> Vec<(u16, u8, u8, u32)> {
        program
            .chunks_exact(8)
            .map(|i| {
                (
                    u16::from_ne_bytes([i[0], i[1]]),
                    i[2],
                    i[3],
                    u32::from_ne_bytes([i[4], i[5], i[6], i[7]]),
                )
            })
            .collect()
    }

    const BPF_RET_K: u16 = 0x06;
    const ACT_ERRNO: u32 = 0x0005_0000;
    const ACT_ALLOW: u32 = 0x7fff_0000;

    fn returns(program: &[u8]) -> Vec<u32> {
        instructions(program)
            .into_iter()
            .filter(|i| i.0 == BPF_RET_K)
            .map(|i| i.3)
            .collect()
    }

    #[test]
    fn actions_and_errnos_reach_the_program() {
        let p = compile(&json!({
            "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38,
            "syscalls": [
                {"names": ["getpid"], "action": "SCMP_ACT_ALLOW"},
                {"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
                {"names": ["gettid"], "action": "SCMP_ACT_ERRNO"}
            ]
        }))
        .unwrap();
        let r = returns(&p);
        for want in [ACT_ALLOW, ACT_ERRNO | 38, ACT_ERRNO | 13, ACT_ERRNO | 1] {
            assert!(r.contains(&want), "{want:#x} not in {r:x?}");
        }
        // Without defaultErrnoRet, the default errno is EPERM.
        let p = compile(&json!({"defaultAction": "SCMP_ACT_ERRNO"})).unwrap();
        assert!(returns(&p).contains(&(ACT_ERRNO | 1)));
    }

    #[test]
    fn a_rule_with_the_default_action_and_unknown_names_are_skipped() {
        let base = compile(&json!({"defaultAction": "SCMP_ACT_ALLOW"})).unwrap();
        let same = compile(&json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [
                {"names": ["getpid"], "action": "SCMP_ACT_ALLOW"},
                {"names": ["no_such_syscall_anywhere"], "action": "SCMP_ACT_ERRNO"}
            ]
        }))
        .unwrap();
        assert_eq!(base, same);
    }

    #[test]
    fn architectures_are_read_as_crun_reads_them() {
        let with = |a: Value| {
            compile(
                &json!({"defaultAction": "SCMP_ACT_ALLOW", "architectures": a,
                "syscalls": [{"names": ["getpid"], "action": "SCMP_ACT_ERRNO"}]}),
            )
        };
        let full = with(json!([
            "SCMP_ARCH_X86_64",
            "SCMP_ARCH_X86",
            "SCMP_ARCH_X32"
        ]))
        .unwrap();
        assert_eq!(
            with(json!(["x86_64", "x86", "X32", "SCMP_ARCH_X86"])).unwrap(),
            full
        );
        // The prefix is recognised in capitals only, as crun's `has_prefix` does.
        assert!(with(json!(["scmp_arch_x86"])).is_err());
        assert!(with(json!(["SCMP_ARCH_VAX"])).is_err());
    }

    #[test]
    fn one_argument_compared_twice_becomes_two_rules() {
        let p = |args: Value| {
            compile(&json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
                {"names": ["personality"], "action": "SCMP_ACT_ERRNO", "args": args}]}))
            .unwrap()
        };
        let twice = p(json!([
            {"index": 0, "value": 1, "op": "SCMP_CMP_EQ"},
            {"index": 0, "value": 2, "op": "SCMP_CMP_EQ"}
        ]));
        let two_rules = compile(&json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["personality"], "action": "SCMP_ACT_ERRNO",
             "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}]},
            {"names": ["personality"], "action": "SCMP_ACT_ERRNO",
             "args": [{"index": 0, "value": 2, "op": "SCMP_CMP_EQ"}]}
        ]}))
        .unwrap();
        assert_eq!(twice, two_rules);
        // valueTwo matters to MASKED_EQ only.
        let eq =
            |two: u64| p(json!([{"index": 0, "value": 8, "valueTwo": two, "op": "SCMP_CMP_EQ"}]));
        assert_eq!(eq(0), eq(5));
        let masked = |two: u64| {
            p(json!([{"index": 0, "value": 8, "valueTwo": two, "op": "SCMP_CMP_MASKED_EQ"}]))
        };
        assert_ne!(masked(0), masked(8));
    }

    #[test]
    fn sections_crun_would_refuse_are_refused() {
        for bad in [
            json!({}),
            json!({"defaultAction": "SCMP_ACT_NOPE"}),
            json!({"defaultAction": "SCMP_ACT_ALLOW", "defaultErrnoRet": 1}),
            json!({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
                {"names": ["getpid"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 6, "value": 0, "op": "SCMP_CMP_EQ"}]}]}),
            json!({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
                {"names": ["getpid"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 0, "op": "EQ"}]}]}),
        ] {
            assert!(compile(&bad).is_err(), "{bad}");
        }
    }
}
