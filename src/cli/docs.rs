//! `cloonix completions SHELL` and `cloonix man`: shell completions and manual pages,
//! generated from the command line's own definition so they never drift from it.
//!
//! Both are printed by the binary rather than written at build time: that is how packagers
//! of Rust tools get them (`rg --generate`, `rustup completions`): run the built binary
//! into the package's tree, e.g.
//! `cloonix completions bash > /usr/share/bash-completion/completions/cloonix` and
//! `cloonix man --dir /usr/share/man/man1`. A build script would need the definition
//! shared with it and would run on every build for a file that only packaging wants.

use super::Cli;
use super::out::{errln, out};
use clap::CommandFactory;
use clap_complete::Shell;
use std::path::Path;

pub fn completions(shell: Shell) -> i32 {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "cloonix", &mut script);
    out!("{}", String::from_utf8_lossy(&script));
    0
}

/// cloonix(1) on stdout; with `dir`, it and a page per command (cloonix-apply(1), ...)
/// as files there.
pub fn man(dir: Option<&Path>) -> i32 {
    let written = match dir {
        Some(dir) => clap_mangen::generate_to(Cli::command(), dir),
        None => {
            let mut page = Vec::new();
            let rendered = clap_mangen::Man::new(Cli::command()).render(&mut page);
            out!("{}", String::from_utf8_lossy(&page));
            rendered
        }
    };
    match written {
        Ok(()) => 0,
        Err(e) => {
            let place = dir.map_or("the manual page".into(), |d| d.display().to_string());
            errln!("cloonix: cannot write {place}: {e}");
            1
        }
    }
}
