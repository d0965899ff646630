//! The command line keeps its contract (spec §2) under hostile and careless use: inputs
//! that never end, closed pipes, wrong arguments, machine-readable output on failure.
//! None of these tests builds a lab.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What a run of `cloonix` did.
struct Ran {
    code: i32,
    out: String,
    err: String,
}

/// One invocation: arguments, and optionally standard input and a working directory.
struct Run {
    cmd: Command,
    stdin: Option<Vec<u8>>,
}

fn cloonix(args: &[&str]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cloonix"));
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    Run { cmd, stdin: None }
}

impl Run {
    fn stdin(mut self, text: &str) -> Run {
        self.stdin = Some(text.as_bytes().to_vec());
        self
    }

    fn stdin_from(mut self, file: &str) -> Run {
        self.cmd.stdin(std::fs::File::open(file).unwrap());
        self
    }

    fn dir(mut self, dir: &Path) -> Run {
        self.cmd.current_dir(dir);
        self
    }

    /// Runs it to the end; a run that takes over a minute is killed and fails the test,
    /// so an input that never ends cannot hang the suite.
    fn run(mut self) -> Ran {
        if self.stdin.is_some() {
            self.cmd.stdin(Stdio::piped());
        }
        let mut child = self.cmd.spawn().unwrap();
        if let Some(bytes) = self.stdin.take() {
            let mut w = child.stdin.take().unwrap();
            std::thread::spawn(move || {
                let _ = w.write_all(&bytes);
            });
        }
        let pipe = |mut r: Box<dyn Read + Send>| {
            std::thread::spawn(move || {
                let mut v = Vec::new();
                let _ = r.read_to_end(&mut v);
                String::from_utf8_lossy(&v).into_owned()
            })
        };
        let out = pipe(Box::new(child.stdout.take().unwrap()));
        let err = pipe(Box::new(child.stderr.take().unwrap()));
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("cloonix did not end within a minute");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        Ran {
            code: status.code().unwrap_or(-1),
            out: out.join().unwrap(),
            err: err.join().unwrap(),
        }
    }
}

/// A scratch directory of one test, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let d = std::env::temp_dir().join(format!("cloonix-cli-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        Scratch(d)
    }

    fn file(&self, name: &str, bytes: impl AsRef<[u8]>) -> String {
        let p = self.0.join(name);
        std::fs::write(&p, bytes).unwrap();
        p.display().to_string()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const VALID: &str = "name: clitest\nlans: [l]\nendpoints:\n  r1: {kind: cnt, eth: [{lan: l}]}\n";

/// The lines of stderr that report an error.
fn error_lines(err: &str) -> Vec<&str> {
    err.lines().filter(|l| l.contains("error")).collect()
}

#[test]
fn a_device_is_refused_at_once() {
    let r = cloonix(&["validate", "/dev/zero"]).run();
    assert_eq!(r.code, 1);
    assert_eq!(
        r.err,
        "/dev/zero: error: this is a character device, not a topology file\n"
    );
}

#[test]
fn standard_input_that_never_ends_is_cut_at_32_mib() {
    let r = cloonix(&["validate", "-"]).stdin_from("/dev/zero").run();
    assert_eq!(r.code, 1, "{}", r.err);
    assert_eq!(
        r.err,
        "-: error: larger than 32 MiB, the most a topology file may hold\n"
    );
}

#[test]
fn an_unreadable_file_is_reported_once() {
    let s = Scratch::new("once");
    let latin1 = s.file("latin1.yaml", b"name: caf\xe9\n");
    let missing = s.0.join("missing.yaml").display().to_string();
    let dir = s.0.display().to_string();
    for (path, message) in [
        (
            &latin1,
            format!("{latin1}:1:10: error: the file is not UTF-8 text"),
        ),
        (
            &missing,
            format!("{missing}: error: cannot read: No such file"),
        ),
        (&dir, format!("{dir}: error: this is a directory")),
    ] {
        for cmd in ["validate", "diff", "apply"] {
            let r = cloonix(&[cmd, path]).run();
            assert_eq!(r.code, 1, "{cmd} {path}");
            let errors = error_lines(&r.err);
            assert_eq!(errors.len(), 1, "{cmd} {path}:\n{}", r.err);
            assert!(errors[0].starts_with(&message), "{cmd}:\n{}", r.err);
        }
    }
}

#[test]
fn a_dash_reads_standard_input() {
    let r = cloonix(&["validate", "-"]).stdin(VALID).run();
    assert_eq!(r.code, 0, "{}", r.err);
    assert_eq!(r.out, "-: valid (lab clitest)\n");
    let r = cloonix(&["validate", "-"]).stdin("name: Bad\n").run();
    assert_eq!(r.code, 1);
    assert!(
        r.err.starts_with("-:1:7: error: invalid lab name `Bad`"),
        "{}",
        r.err
    );
}

/// A relative `source` in a document read from standard input is relative to the current
/// directory, for diff and for apply alike.
#[test]
fn relative_paths_of_standard_input_are_relative_to_the_current_directory() {
    let s = Scratch::new("stdin-dir");
    s.file("motd", "from the current directory\n");
    let doc = format!("{VALID}    files:\n      /etc/motd: {{source: motd}}\n").replace(
        "{kind: cnt, eth: [{lan: l}]}\n",
        "\n    kind: cnt\n    eth: [{lan: l}]\n",
    );
    let r = cloonix(&["diff", "-"]).stdin(&doc).dir(&s.0).run();
    assert_eq!(r.code, 2, "{}", r.err);
    assert!(r.out.contains("from the current directory"), "{}", r.out);
    // apply refuses a privileged container without --allow-host: the file was read.
    let doc = doc.replace("kind: cnt\n", "kind: cnt\n    privileged: true\n");
    let r = cloonix(&["apply", "-"]).stdin(&doc).dir(&s.0).run();
    assert_eq!(r.code, 1);
    assert!(r.err.contains("reaches into this host"), "{}", r.err);
    assert!(
        r.err.contains("-:6:17: error: a privileged container"),
        "{}",
        r.err
    );
    let r = cloonix(&["diff", "-"]).stdin(&doc).run();
    assert_eq!(r.code, 1);
    assert!(r.err.contains("-:9:27: error: source `motd`"), "{}", r.err);
}

fn ring() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("topologies/ring.yaml")
        .display()
        .to_string()
}

/// Runs `cloonix args` with stdout (or stderr) a pipe whose reader has already gone, as
/// behind `| head -1` once head has its line; returns the exit code and the other stream.
fn with_closed(args: &[&str], stream: &str) -> (i32, String) {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cloonix"));
    cmd.args(args).stdin(Stdio::null());
    if stream == "stdout" {
        cmd.stdout(writer).stderr(Stdio::piped());
    } else {
        cmd.stderr(writer).stdout(Stdio::piped());
    }
    let out = cmd.output().unwrap();
    let other = if stream == "stdout" {
        out.stderr
    } else {
        out.stdout
    };
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&other).into(),
    )
}

/// Every command that prints, behind `| head`: it exits as it would have, quietly.
#[test]
fn a_closed_stdout_is_not_an_error() {
    let ring = ring();
    for (args, code) in [
        (vec!["schema"], 0),
        (vec!["validate", &ring], 0),
        (vec!["validate", "-o", "json", &ring], 0),
        (vec!["diff", &ring], 2),
        (vec!["diff", "-o", "json", &ring], 2),
        (vec!["diff", "-v", &ring], 2),
        (vec!["apply", "--dry-run", &ring], 2),
        (vec!["status", "-o", "json"], 0),
        (vec!["--help"], 0),
        (vec!["--version"], 0),
        (vec!["diff", "--help"], 0),
        (vec!["completions", "bash"], 0),
        (vec!["man"], 0),
    ] {
        let (got, err) = with_closed(&args, "stdout");
        assert_eq!(got, code, "cloonix {args:?}: {err}");
        assert!(!err.contains("panicked"), "cloonix {args:?}: {err}");
        assert_eq!(err, "", "cloonix {args:?}");
    }
}

/// Errors go to stderr; one that has gone (`2>&1 | head -1`) changes nothing either.
#[test]
fn a_closed_stderr_is_not_an_error() {
    let s = Scratch::new("closed-stderr");
    let bad = s.file("bad.yaml", "name: x\nlans: [a]\nlanz: []\n");
    for cmd in ["validate", "diff", "apply"] {
        let (got, out) = with_closed(&[cmd, &bad], "stderr");
        assert_eq!(got, 1, "cloonix {cmd}: {out}");
    }
    let (got, _) = with_closed(&["diff", "--bogus"], "stderr");
    assert_ne!(got, 101);
}

/// A report that cannot be written for another reason (a full disk) is a failure, said once.
#[test]
fn a_full_stdout_is_an_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_cloonix"))
        .arg("schema")
        .stdout(
            std::fs::File::options()
                .write(true)
                .open("/dev/full")
                .unwrap(),
        )
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "cloonix: cannot write to standard output: No space left on device (os error 28)\n"
    );
}

/// clap's usage errors exit 2, which for `diff` means "changes pending": every usage error
/// exits 1, 125 under exec and shell (whose other codes are the command's own).
#[test]
fn usage_errors_exit_1_or_125_under_exec() {
    let ring = ring();
    for (args, code) in [
        (vec!["diff", "--bogus", &ring], 1),
        (vec!["diff", "-o", "xml", &ring], 1),
        (vec!["diff"], 1),
        (vec!["validate"], 1),
        (vec!["apply", &ring, &ring], 1),
        (vec!["status", "-o", "xml"], 1),
        (vec!["bogus"], 1),
        (vec![], 1),
        (vec!["exec", "lab"], 125),
        (vec!["exec", "lab", "node"], 125),
        (vec!["exec", "lab", "node", "ls"], 125),
        (vec!["exec", "--bogus", "lab", "node", "--", "ls"], 125),
        (vec!["shell", "lab"], 125),
    ] {
        let r = cloonix(&args).run();
        assert_eq!(r.code, code, "cloonix {args:?}: {}", r.err);
        assert!(
            r.err.contains("Usage") || r.err.starts_with("error:"),
            "{args:?}: {}",
            r.err
        );
        assert_eq!(r.out, "", "cloonix {args:?}");
    }
    for args in [
        vec!["--help"],
        vec!["--version"],
        vec!["diff", "--help"],
        vec!["help", "exec"],
    ] {
        let r = cloonix(&args).run();
        assert_eq!(r.code, 0, "cloonix {args:?}: {}", r.err);
        assert!(r.out.contains("cloonix"), "cloonix {args:?}: {}", r.out);
        assert_eq!(r.err, "", "cloonix {args:?}");
    }
}

/// With `-o json`, a file that fails to load is a JSON report on stdout, shaped as
/// `validate -o json` shapes it, and still the rendered errors on stderr.
#[test]
fn json_output_reports_a_file_that_fails_to_load() {
    let s = Scratch::new("json-fail");
    let bad = s.file("bad.yaml", "name: x\nlans: [a]\nlanz: []\n");
    let missing = s.0.join("missing.yaml").display().to_string();
    for cmd in ["apply", "diff", "destroy", "validate"] {
        let r = cloonix(&[cmd, "-o", "json", &bad]).run();
        assert_eq!(r.code, 1, "{cmd}: {}", r.err);
        let report: serde_json::Value =
            serde_json::from_str(&r.out).unwrap_or_else(|e| panic!("{cmd}: {e}: {:?}", r.out));
        assert_eq!(report["file"], bad.as_str(), "{cmd}");
        assert_eq!(report["valid"], false, "{cmd}");
        if cmd != "validate" {
            assert_eq!(report["ok"], false, "{cmd}");
            assert!(
                r.err
                    .starts_with(&format!("{bad}:3:1: error: unknown key `lanz`"))
            );
        }
        let e = &report["errors"][0];
        assert_eq!((&e["line"], &e["col"]), (&3.into(), &1.into()), "{cmd}");
        assert_eq!(e["message"], "unknown key `lanz` in the topology", "{cmd}");
        assert_eq!(e["hint"], "did you mean `lans`?", "{cmd}");
    }
    for cmd in ["apply", "diff"] {
        let r = cloonix(&[cmd, "-o", "json", &missing]).run();
        assert_eq!(r.code, 1);
        let report: serde_json::Value = serde_json::from_str(&r.out).unwrap();
        assert_eq!(report["errors"][0]["line"], 0);
        assert!(
            report["errors"][0]["message"]
                .as_str()
                .unwrap()
                .starts_with("cannot read")
        );
    }
}

/// `status -o yaml` wrote a modeline, and the schema an `$id`, naming an address that
/// serves nothing: neither the schema nor anything the program prints names a site.
#[test]
fn nothing_points_at_an_address_that_serves_nothing() {
    let r = cloonix(&["schema"]).run();
    assert_eq!(r.code, 0);
    let schema: serde_json::Value = serde_json::from_str(&r.out).unwrap();
    assert!(schema.get("$id").is_none(), "{}", schema["$id"]);
    let binary = std::fs::read(env!("CARGO_BIN_EXE_cloonix")).unwrap();
    assert!(!String::from_utf8_lossy(&binary).contains("cloonix.dev"));
}

const COMMANDS: [&str; 10] = [
    "validate",
    "schema",
    "apply",
    "destroy",
    "status",
    "exec",
    "shell",
    "diff",
    "completions",
    "man",
];

#[test]
fn completion_scripts_know_every_command() {
    for shell in ["bash", "zsh", "fish"] {
        let r = cloonix(&["completions", shell]).run();
        assert_eq!(r.code, 0, "{shell}: {}", r.err);
        assert!(r.out.len() > 1000, "{shell}: {}", r.out);
        for command in COMMANDS {
            assert!(r.out.contains(command), "{shell} lacks {command}");
        }
        assert!(r.out.contains("allow-host"), "{shell}");
    }
    assert_eq!(cloonix(&["completions", "tcsh"]).run().code, 1);
}

#[test]
fn manual_pages_cover_every_command() {
    let r = cloonix(&["man"]).run();
    assert_eq!(r.code, 0, "{}", r.err);
    assert!(r.out.contains(".TH cloonix 1"), "{}", r.out);
    for command in COMMANDS {
        assert!(
            r.out.contains(&format!("cloonix\\-{command}(1)")),
            "{command}"
        );
    }
    let s = Scratch::new("man");
    let r = cloonix(&["man", "--dir", &s.0.display().to_string()]).run();
    assert_eq!(r.code, 0, "{}", r.err);
    for command in COMMANDS {
        let page = std::fs::read_to_string(s.0.join(format!("cloonix-{command}.1"))).unwrap();
        assert!(page.contains(&format!(".TH cloonix-{command} 1")), "{page}");
    }
    assert!(s.0.join("cloonix.1").is_file());
}
