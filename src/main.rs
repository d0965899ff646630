//! The `cloonix` command: parses arguments, runs the library, turns errors into messages
//! and exit codes. Nothing else lives here.

mod cli;

fn main() {
    std::process::exit(cli::run());
}
