//! A lab's `checks`: assertions a CI job waits on. Each runs in its `from` endpoint through
//! the endpoint kind's exec, and is tried again (about once a second) until it passes or its
//! `within` is over; all run at once, a few at a time.
//!
//! What each runs, so that any image with a shell will do:
//! * `ping: ADDR`: `ping -c 1 -W 1 ADDR` (busybox's ping or iputils-ping): one echo, a
//!   second for its answer, so that a check is tried about once a second;
//! * `tcp: HOST:PORT`: a connection opened and closed through bash's `/dev/tcp` under
//!   `timeout` where the image has both (Debian's minbase does), else `nc -z` (netcat), else
//!   busybox's `nc HOST PORT -e true`;
//! * `exec`: the command (a string through `/bin/sh -c`, or an argv); it passes with exit
//!   code `expect_exit` (default 0) and, if given, `expect_output` in its output.
//!
//! Host and port reach the endpoint as arguments of the shell, never as shell text.

use crate::host::{Lab, intent};
use crate::kinds::{self, Capture, ExecRequest};
use crate::model::{Check, Command};
use serde::Serialize;
use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long after one try of a check its next one starts, at the soonest.
const INTERVAL: Duration = Duration::from_secs(1);
/// How many checks are tried at once.
const PARALLEL: usize = 8;
/// The longest one ping or tcp try may take (they bound themselves to 1-3 s).
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);
/// How far past the end of its time a ping or tcp try may go to end by itself.
const PROBE_GRACE: Duration = Duration::from_millis(300);
/// The least time a try is given, even near the end of its check's `within`.
const MIN_TRY: Duration = Duration::from_millis(500);
/// How much of a failed check's last output its report keeps.
const MAX_OUTPUT: usize = 2000;

const TCP_PROBE: &str = r#"if command -v bash >/dev/null 2>&1 && command -v timeout >/dev/null 2>&1; then
  exec timeout 3 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$1" "$2"
fi
if nc -h 2>&1 | grep -q -e -z; then exec nc -z -w 3 "$1" "$2"; fi
exec nc -w 3 "$1" "$2" -e true"#;

/// The check as its report names it: `ping 10.0.0.2`, `tcp 10.0.0.2:80`, `exec ...`.
pub fn describe(c: &Check) -> String {
    if let Some(a) = &c.ping {
        return format!("ping {a}");
    }
    if let Some(t) = &c.tcp {
        return format!("tcp {t}");
    }
    let mut s = match &c.exec {
        Some(Command::Shell(s)) => format!("exec `{s}`"),
        Some(Command::Argv(a)) => format!("exec {a:?}"),
        None => "nothing".to_string(),
    };
    if let Some(code) = c.expect_exit.filter(|c| *c != 0) {
        s.push_str(&format!(", exit {code}"));
    }
    if let Some(out) = &c.expect_output {
        s.push_str(&format!(", output containing {out:?}"));
    }
    s
}

/// The argv a check runs in its endpoint.
pub fn probe(c: &Check) -> Vec<String> {
    if let Some(a) = &c.ping {
        return ["ping", "-c", "1", "-W", "1", a].map(String::from).to_vec();
    }
    if let Some((host, port)) = c.tcp.as_deref().and_then(crate::model::tcp_target) {
        return vec![
            "/bin/sh".into(),
            "-c".into(),
            TCP_PROBE.into(),
            "sh".into(),
            host,
            port.to_string(),
        ];
    }
    match &c.exec {
        Some(Command::Shell(s)) => vec!["/bin/sh".into(), "-c".into(), s.clone()],
        Some(Command::Argv(a)) => a.clone(),
        None => vec!["false".into()],
    }
}

/// One try of a check: the command's exit code and output, or why it could not run.
#[derive(Debug, Clone, Default)]
pub struct Attempt {
    pub code: Option<i32>,
    pub output: String,
    /// cloonix's own failure (the endpoint is not running, the try timed out).
    pub error: Option<String>,
}

/// Whether a try passed its check.
pub fn passes(c: &Check, a: &Attempt) -> bool {
    if a.error.is_some() {
        return false;
    }
    let code_ok = a.code == Some(c.expect_exit.unwrap_or(0));
    let output_ok = c
        .expect_output
        .as_ref()
        .is_none_or(|want| a.output.contains(want.as_str()));
    code_ok && (c.exec.is_none() || output_ok)
}

/// How a check ended.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// Its place in the file's `checks`, from 1.
    pub index: usize,
    pub from: String,
    pub check: String,
    pub ok: bool,
    pub tries: u32,
    /// From the start of the checks to its end.
    pub seconds: f64,
    /// Of the last try.
    pub exit_code: Option<i32>,
    /// Of the last try, trimmed (its end, when long).
    pub output: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Runs in an endpoint: `(endpoint, argv, timeout)`.
pub type Exec<'a> = dyn Fn(&str, &[String], Duration) -> Attempt + Sync + 'a;

struct Pending {
    index: usize,
    ready: Instant,
    tries: u32,
    last: Attempt,
}

/// Runs every check until it passes or its `within` (cut short by `limit`) is over,
/// `PARALLEL` at a time; `done` hears of each as it ends. The outcomes, in the file's order.
pub fn run(
    checks: &[Check],
    limit: Option<Duration>,
    exec: &Exec,
    done: &(dyn Fn(&Outcome) + Sync),
) -> Vec<Outcome> {
    let start = Instant::now();
    let deadline = |c: &Check| {
        let within = Duration::from_millis(c.within.0);
        start + limit.map_or(within, |l| within.min(l))
    };
    let queue: Mutex<VecDeque<Pending>> = Mutex::new(
        (0..checks.len())
            .map(|index| Pending {
                index,
                ready: start,
                tries: 0,
                last: Attempt::default(),
            })
            .collect(),
    );
    let outcomes: Mutex<Vec<Outcome>> = Mutex::new(Vec::new());
    // The checks not ended: an empty queue only means that the others are being tried.
    let unfinished = std::sync::atomic::AtomicUsize::new(checks.len());
    let worker = || {
        while unfinished.load(std::sync::atomic::Ordering::SeqCst) > 0 {
            let Some(mut p) = queue.lock().expect("no panics while held").pop_front() else {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            };
            let c = &checks[p.index];
            let end = deadline(c);
            std::thread::sleep(p.ready.saturating_duration_since(Instant::now()));
            let began = Instant::now();
            let left = end.saturating_duration_since(began).max(MIN_TRY);
            // A ping or tcp try ends by itself (1-3 s): a little past the end, so that the
            // last one says what it saw rather than being cut off a moment before.
            let budget = match c.exec {
                Some(_) => left,
                None => (left + PROBE_GRACE).min(PROBE_TIMEOUT),
            };
            p.last = exec(&c.from, &probe(c), budget);
            p.tries += 1;
            let ok = passes(c, &p.last);
            // Once a second; the last try starts `MIN_TRY` before the end, so that a
            // check is tried up to the end of its time, and never after it.
            let mut next = began + INTERVAL;
            if next + MIN_TRY > end {
                next = end.checked_sub(MIN_TRY).unwrap_or(end);
            }
            if ok || next <= began || Instant::now() >= end {
                let outcome = Outcome {
                    index: p.index + 1,
                    from: c.from.clone(),
                    check: describe(c),
                    ok,
                    tries: p.tries,
                    seconds: start.elapsed().as_secs_f64(),
                    exit_code: p.last.code,
                    output: tail(&p.last.output),
                    error: p.last.error.clone(),
                };
                done(&outcome);
                outcomes.lock().expect("no panics while held").push(outcome);
                unfinished.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
            } else {
                p.ready = next;
                queue.lock().expect("no panics while held").push_back(p);
            }
        }
    };
    std::thread::scope(|s| {
        for _ in 0..PARALLEL.min(checks.len()) {
            s.spawn(worker);
        }
    });
    let mut out = outcomes.into_inner().expect("no panics while held");
    out.sort_by_key(|o| o.index);
    out
}

/// The end of a command's output, trimmed, at most `MAX_OUTPUT` bytes.
fn tail(output: &str) -> String {
    let t = output.trim();
    if t.len() <= MAX_OUTPUT {
        return t.to_string();
    }
    let mut from = t.len() - MAX_OUTPUT;
    while !t.is_char_boundary(from) {
        from += 1;
    }
    format!("...{}", &t[from..])
}

/// Runs commands in the endpoints of a running lab, through each endpoint's kind, as
/// `cloonix exec` does; the lab's records are read again when an endpoint cannot be
/// reached (an apply may have replaced it meanwhile).
pub fn in_lab(lab: &Lab) -> impl Fn(&str, &[String], Duration) -> Attempt + Sync + '_ {
    let records = Mutex::new(intent::read_all(lab));
    move |endpoint: &str, argv: &[String], timeout: Duration| {
        let capture = Capture::new(timeout);
        let req = ExecRequest {
            argv,
            tty: false,
            capture: Some(&capture),
        };
        let item = crate::graph::Item::Endpoint(endpoint.to_string());
        // Copied out, so that the lock is not held while the command runs.
        let mine: Vec<intent::Record> = records
            .lock()
            .expect("no panics while held")
            .iter()
            .filter(|r| r.resource.item == item)
            .cloned()
            .collect();
        let ran = mine
            .iter()
            .find_map(|r| kinds::exec(lab, &r.resource, &r.receipt, &req));
        let attempt = match ran {
            Some(Ok(code)) => Attempt {
                code: Some(code),
                output: capture.output(),
                error: None,
            },
            Some(Err(e)) => Attempt {
                code: None,
                output: capture.output(),
                error: Some(e.to_string()),
            },
            None => Attempt {
                code: None,
                output: String::new(),
                error: Some(format!(
                    "no endpoint {endpoint} in lab {} runs commands",
                    lab.name
                )),
            },
        };
        if attempt.error.is_some() {
            *records.lock().expect("no panics while held") = intent::read_all(lab);
        }
        attempt
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::units::Duration as Within;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn check(from: &str, ping: Option<&str>, exec: Option<&str>, within_ms: u64) -> Check {
        Check {
            from: from.into(),
            ping: ping.map(String::from),
            tcp: None,
            exec: exec.map(|e| Command::Shell(e.into())),
            expect_exit: None,
            expect_output: None,
            within: Within(within_ms),
        }
    }

    #[test]
    fn probes_keep_addresses_out_of_shell_text() {
        let mut c = check("r1", None, None, 1000);
        c.tcp = Some("[fd00::2]:80".into());
        let argv = probe(&c);
        assert_eq!(&argv[..2], ["/bin/sh", "-c"]);
        assert_eq!(&argv[3..], ["sh", "fd00::2", "80"]);
        assert!(!argv[2].contains("fd00"));
        let p = probe(&check("r1", Some("10.0.0.2"), None, 1000));
        assert_eq!(p, ["ping", "-c", "1", "-W", "1", "10.0.0.2"]);
    }

    #[test]
    fn exec_checks_want_their_exit_code_and_output() {
        let mut c = check("r1", None, Some("cat /x"), 1000);
        c.expect_output = Some("hello".into());
        let a = |code, out: &str| Attempt {
            code: Some(code),
            output: out.into(),
            error: None,
        };
        assert!(passes(&c, &a(0, "well hello there")));
        assert!(!passes(&c, &a(0, "bye")));
        assert!(!passes(&c, &a(1, "hello")));
        c.expect_exit = Some(3);
        assert!(passes(&c, &a(3, "hello")));
        assert_eq!(
            describe(&c),
            "exec `cat /x`, exit 3, output containing \"hello\""
        );
    }

    #[test]
    fn a_check_is_tried_until_it_passes_or_its_time_is_over() {
        let tries = AtomicU32::new(0);
        let exec = |from: &str, _argv: &[String], _t: Duration| -> Attempt {
            match from {
                // Passes on its third try.
                "late" if tries.fetch_add(1, Ordering::SeqCst) >= 2 => Attempt {
                    code: Some(0),
                    ..Default::default()
                },
                "late" | "never" => Attempt {
                    code: Some(1),
                    output: "unreachable".into(),
                    error: None,
                },
                _ => Attempt {
                    code: Some(0),
                    ..Default::default()
                },
            }
        };
        let checks = [
            check("now", Some("10.0.0.1"), None, 5000),
            check("late", Some("10.0.0.2"), None, 10_000),
            check("never", Some("10.0.0.3"), None, 1500),
        ];
        let heard = Mutex::new(Vec::new());
        let t = Instant::now();
        let out = run(&checks, None, &exec, &|o| {
            heard.lock().unwrap().push(o.index)
        });
        let took = t.elapsed();
        assert_eq!(
            out.iter().map(|o| o.ok).collect::<Vec<_>>(),
            [true, true, false]
        );
        assert_eq!(out.iter().map(|o| o.tries).collect::<Vec<_>>()[..2], [1, 3]);
        assert_eq!(out[2].output, "unreachable");
        assert!(out[2].seconds >= 1.0 && out[2].seconds < 2.5, "{out:?}");
        assert!(took < Duration::from_secs(4), "{took:?}");
        assert_eq!(heard.lock().unwrap().len(), 3);
        // --timeout cuts every within short.
        let out = run(
            &checks[2..],
            Some(Duration::from_millis(600)),
            &exec,
            &|_| {},
        );
        assert!(!out[0].ok && out[0].seconds < 1.5, "{out:?}");
    }
}
