//! Commands, one module each, all returning their exit code.

mod diff;
mod validate;

use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "cloonix",
    version,
    about = "Network labs from a YAML file, changed live"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Check a topology file without touching anything.
    Validate {
        file: PathBuf,
        #[arg(short, long, value_enum, default_value = "text")]
        output: Output,
    },
    /// Print the JSON Schema of topology files.
    Schema,
    /// Show what `apply` would do, touching nothing (exit 0: no changes, 2: changes, 1: error).
    Diff {
        file: PathBuf,
        /// Show the low-level steps under each item.
        #[arg(short, long)]
        verbose: bool,
        #[arg(short, long, value_enum, default_value = "text")]
        output: Output,
    },
}

pub fn run() -> i32 {
    let cli = Cli::parse();
    match cli.command {
        Command::Validate { file, output } => validate::run(&file, output),
        Command::Schema => {
            let schema = cloonix::model::schema();
            println!("{}", serde_json::to_string_pretty(&schema).expect("json"));
            0
        }
        Command::Diff {
            file,
            verbose,
            output,
        } => diff::run(&file, verbose, output),
    }
}

/// Loads a file, printing its errors the way the spec wants them; `None` when invalid.
pub fn load(file: &std::path::Path) -> Option<cloonix::model::Loaded> {
    match cloonix::model::load(file) {
        Ok(loaded) => Some(loaded),
        Err(e) => {
            eprint!("{}", e.render());
            None
        }
    }
}
