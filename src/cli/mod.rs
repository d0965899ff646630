//! Commands, one module each, all returning their exit code.

mod apply;
mod capture;
mod check;
mod console;
mod destroy;
mod diff;
mod docs;
mod exec;
mod graph;
mod images;
mod out;
mod progress;
mod status;
mod validate;

use clap::{Parser, Subcommand, ValueEnum};
use out::{err, errln, outln};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "cloonix",
    version,
    about = "Network labs from a YAML file, changed live",
    after_long_help = EXIT_STATUS
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// What `--help` and the manual page say of exit codes (spec §2).
const EXIT_STATUS: &str = "\
Exit status: 0 done; 1 any failure, and any usage error. diff: 0 no changes, 2 changes \
pending, 1 error. exec and shell: the command's own code; 125 cloonix's own error, 126 not \
executable, 127 not found.";

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Check a topology file without touching anything.
    Validate {
        /// The topology file; `-` reads standard input.
        file: PathBuf,
        #[arg(short, long, value_enum, default_value = "text")]
        output: Output,
    },
    /// Print the JSON Schema of topology files.
    Schema,
    /// List the cached images (root filesystems, kernels), or prune those no lab uses.
    Images {
        #[command(subcommand)]
        action: Option<images::Action>,
        #[arg(short, long, value_enum, default_value = "text")]
        output: Output,
    },
    /// Make the lab match FILE: observe, plan, apply, verify (exit 0 done, 1 any failure).
    Apply {
        /// The topology file; `-` reads standard input (relative paths in it are then
        /// relative to the current directory).
        file: PathBuf,
        /// Only show what would change (= diff).
        #[arg(long)]
        dry_run: bool,
        /// Allow what reaches into this host: phy, privileged, paths outside the file's directory.
        #[arg(long)]
        allow_host: bool,
        /// After a successful apply, run the file's checks (exit 1 unless all pass).
        #[arg(long)]
        wait: bool,
        /// How long --wait waits at most, e.g. `90s` or `2m` (default: the longest `within`).
        #[arg(long, requires = "wait", value_name = "D")]
        timeout: Option<cloonix::model::units::Duration>,
        #[arg(short, long)]
        verbose: bool,
        #[arg(short, long, value_enum, default_value = "text")]
        output: Output,
    },
    /// Run the checks of FILE, or those of LAB's last apply (exit 0 all pass, 1 otherwise).
    Check {
        /// A topology file (`-` reads standard input) or a lab name.
        target: String,
        /// How long to wait at most, e.g. `90s` or `2m` (default: the longest `within`).
        #[arg(long, value_name = "D")]
        timeout: Option<cloonix::model::units::Duration>,
        #[arg(short, long, value_enum, default_value = "text")]
        output: Output,
    },
    /// Remove a lab and everything it made (exit 0 also when there was nothing).
    Destroy {
        /// A lab name, or a topology file to read it from.
        target: String,
        #[arg(short, long, value_enum, default_value = "text")]
        output: Output,
    },
    /// The labs, or one lab's state.
    Status {
        lab: Option<String>,
        #[arg(short, long, value_enum, default_value = "table")]
        output: status::Format,
    },
    /// Run a command in an endpoint: its exit code, 125 for cloonix's own errors.
    Exec {
        lab: String,
        node: String,
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Open a shell on an endpoint (on a VM with a terminal: its serial console).
    Shell { lab: String, node: String },
    /// Live frames of a lan, or of one port, as pcap: `cloonix capture ring lan12 | tcpdump
    /// -r -`. A count on stderr; stops on Ctrl-C, SIGTERM, a closed stdout or `-c N`.
    Capture {
        lab: String,
        /// A lan name, or one port as `ENDPOINT.IFACE` (e.g. `r1.eth0`, `wan.a`).
        target: String,
        /// Write the pcap to FILE instead of stdout (`-` is stdout).
        #[arg(short = 'w', long = "write", value_name = "FILE")]
        write: Option<PathBuf>,
        /// Stop after N frames.
        #[arg(short = 'c', long = "count", value_name = "N",
              value_parser = clap::value_parser!(u64).range(1..))]
        count: Option<u64>,
    },
    /// The topology as a picture on stdout: a file as it asks for the lab, or a running lab.
    Graph {
        /// A topology file (`-` reads standard input), or a lab name.
        target: String,
        #[arg(short, long, value_enum, default_value = "dot")]
        format: graph::Format,
    },
    /// Attach to a VM's serial console; Ctrl-] leaves (without a terminal: standard input
    /// goes to the console until it ends and the console is quiet for a second).
    Console { lab: String, node: String },
    /// Print a shell completion script, e.g. `cloonix completions bash >
    /// /usr/share/bash-completion/completions/cloonix`.
    Completions { shell: clap_complete::Shell },
    /// Print the manual page cloonix(1) as roff, or with --dir write it and one page per
    /// command there (for packagers: `cloonix man --dir /usr/share/man/man1`).
    Man {
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// cloonix's own data-plane helper (started by apply, one per a2b or c2c endpoint).
    #[command(hide = true)]
    Helper(cloonix::helper::Args),
    /// Show what `apply` would do, touching nothing (exit 0: no changes, 2: changes, 1: error).
    Diff {
        /// The topology file; `-` reads standard input (relative paths in it are then
        /// relative to the current directory).
        file: PathBuf,
        /// Show the low-level steps under each item.
        #[arg(short, long)]
        verbose: bool,
        #[arg(short, long, value_enum, default_value = "text")]
        output: Output,
    },
}

pub fn run() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage(&e),
    };
    let code = command(cli.command);
    // A report that could not be written (other than to a reader that left) is a failure.
    if out::finish() { 1 } else { code }
}

/// Prints clap's help, version or usage error, and says how to exit. clap's own exit code
/// for a usage error is 2, which `diff` uses for "changes pending": the spec gives usage
/// errors 1, and 125 under `exec` and `shell`, whose other codes are the command's own.
fn usage(e: &clap::Error) -> i32 {
    // Help and version go to stdout, which may be closed (`--help | head`); never mind.
    let _ = e.print();
    if !e.use_stderr() {
        return 0;
    }
    let subcommand = std::env::args_os().nth(1);
    match subcommand.as_ref().and_then(|s| s.to_str()) {
        Some("exec" | "shell") => 125,
        _ => 1,
    }
}

fn command(command: Command) -> i32 {
    match command {
        Command::Validate { file, output } => validate::run(&file, output),
        Command::Images { action, output } => images::run(action, output),
        Command::Schema => {
            let schema = cloonix::model::schema();
            outln!("{}", serde_json::to_string_pretty(&schema).expect("json"));
            0
        }
        Command::Diff {
            file,
            verbose,
            output,
        } => diff::run(&file, verbose, output),
        Command::Apply {
            file,
            dry_run,
            allow_host,
            wait,
            timeout,
            verbose,
            output,
        } => apply::run(
            &file,
            &apply::Options {
                dry_run,
                allow_host,
                wait: wait.then_some(timeout),
                verbose,
                output,
            },
        ),
        Command::Check {
            target,
            timeout,
            output,
        } => check::run(&target, timeout, output),
        Command::Destroy { target, output } => destroy::run(&target, output),
        Command::Status { lab, output } => status::run(lab.as_deref(), output),
        Command::Exec { lab, node, command } => exec::run(&lab, &node, &command, false),
        // A terminal only when there is one: without, the shell reads its standard input.
        Command::Shell { lab, node } => {
            let tty = std::io::IsTerminal::is_terminal(&std::io::stdin());
            exec::run(&lab, &node, &["/bin/sh".into()], tty)
        }
        Command::Capture {
            lab,
            target,
            write,
            count,
        } => capture::run(
            &lab,
            &target,
            &capture::Options {
                write: write.as_deref(),
                count,
            },
        ),
        Command::Graph { target, format } => graph::run(&target, format),
        Command::Console { lab, node } => console::run(&lab, &node),
        Command::Completions { shell } => docs::completions(shell),
        Command::Man { dir } => docs::man(dir.as_deref()),
        Command::Helper(args) => cloonix::helper::main(args),
    }
}

/// The lab's lock, saying so when another apply or destroy makes it wait; `None` (after
/// printing why) when it cannot be had.
pub fn lock(lab: &str) -> Option<cloonix::apply::LabLock> {
    let waiting = || errln!("waiting for another apply or destroy of lab {lab}");
    cloonix::apply::LabLock::take(lab, waiting)
        .map_err(|e| errln!("cloonix: {e}"))
        .ok()
}

/// The desired graph of a loaded file; `None` (after printing why) when it has none.
pub fn desired(loaded: &cloonix::model::Loaded) -> Option<cloonix::graph::Graph> {
    cloonix::graph::desired(&loaded.topology)
        .map_err(|e| errln!("cloonix: {e}"))
        .ok()
}

/// Loads a file, printing its errors the way the spec wants them (and, with `-o json`, as
/// a report on stdout too); `None` when invalid.
pub fn load(file: &std::path::Path, output: Output) -> Option<cloonix::model::Loaded> {
    match cloonix::model::load(file) {
        Ok(loaded) => Some(loaded),
        Err(e) => {
            err!("{}", e.render());
            if output == Output::Json {
                let mut report = load_failure(&e);
                report["ok"] = false.into();
                outln!("{}", serde_json::to_string_pretty(&report).expect("json"));
            }
            None
        }
    }
}

/// A file that failed to load, as `validate -o json` reports it: each error with its line,
/// column, message and hint; an error of the whole file (unreadable, too large) at line 0.
pub fn load_failure(e: &cloonix::model::LoadError) -> serde_json::Value {
    let errors = match e {
        cloonix::model::LoadError::Invalid { diagnostics, .. } => serde_json::json!(diagnostics.0),
        other => {
            serde_json::json!([{"line": 0, "col": 0, "message": other.to_string(), "hint": ""}])
        }
    };
    serde_json::json!({"file": e.path(), "valid": false, "errors": errors})
}

/// One reason a file cannot be applied here, at its place in the file.
pub struct Refused {
    pub pos: cloonix::diag::Pos,
    pub message: String,
    /// Lifted by `--allow-host`.
    pub host_item: bool,
}

/// Every reason a file cannot be applied here: what reaches into the host (lifted by
/// `--allow-host`), and what the host refuses (a tap's name taken, a kind with no driver
/// yet), found by the kinds' preflight without touching anything. `apply` refuses them;
/// `diff` lists them.
pub fn refusals(
    loaded: &cloonix::model::Loaded,
    desired: &cloonix::graph::Graph,
    lab: &cloonix::host::Lab,
) -> cloonix::host::Result<Vec<Refused>> {
    use cloonix::graph::Item;
    let mut out: Vec<Refused> = loaded
        .host_items
        .iter()
        .map(|h| Refused {
            pos: h.pos,
            message: format!(
                "{} reaches into this host (allowed with --allow-host)",
                h.what
            ),
            host_item: true,
        })
        .collect();
    for (r, refusal) in cloonix::kinds::preflight_all(lab, desired)? {
        let endpoint = match &r.item {
            Item::Endpoint(e) | Item::Interface(e, _) => e.as_str(),
            Item::Lab | Item::Lan(_) => "",
        };
        let hint = if refusal.host_item {
            " (allowed with --allow-host)"
        } else {
            ""
        };
        out.push(Refused {
            pos: loaded.position(endpoint, refusal.field),
            message: format!("{}{hint}", refusal.message),
            host_item: refusal.host_item,
        });
    }
    Ok(out)
}
