//! Errors that point into the topology file: `PATH:LINE:COLUMN: error: MESSAGE`, the line
//! itself with a caret under the column, and a hint of what would be right.

use serde::Serialize;
use std::fmt::Write;

/// A place in the file; both numbers start at 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Default)]
pub struct Pos {
    pub line: u32,
    pub col: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Diagnostic {
    #[serde(flatten)]
    pub pos: Pos,
    pub message: String,
    pub hint: String,
}

impl Diagnostic {
    pub fn new(pos: Pos, message: impl Into<String>, hint: impl Into<String>) -> Self {
        Diagnostic {
            pos,
            message: message.into(),
            hint: hint.into(),
        }
    }

    /// Renders the diagnostic the way compilers do, so editors and CI logs link to it.
    pub fn render(&self, path: &str, source: &str) -> String {
        let mut out = format!(
            "{path}:{}:{}: error: {}\n",
            self.pos.line, self.pos.col, self.message
        );
        if let Some(line) = source.lines().nth(self.pos.line.saturating_sub(1) as usize) {
            let gutter = self.pos.line.to_string();
            let pad = " ".repeat(gutter.len());
            let caret = " ".repeat(self.pos.col.saturating_sub(1) as usize);
            let _ = writeln!(out, " {pad} |\n {gutter} | {line}\n {pad} | {caret}^");
        }
        if !self.hint.is_empty() {
            let _ = writeln!(out, "  = hint: {}", self.hint);
        }
        out
    }
}

/// All the problems found in one file, in file order.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{} error(s) in the topology file", .0.len())]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    pub fn render(&self, path: &str, source: &str) -> String {
        self.0.iter().map(|d| d.render(path, source)).collect()
    }
}

/// The closest of `candidates` to `word`, when it is close enough to be a likely typo.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (distance(word, c), c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 3))
        .min()
        .map(|(_, c)| c)
}

fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_points_at_the_column() {
        let d = Diagnostic::new(Pos { line: 2, col: 3 }, "bad", "good");
        let text = d.render("f.yaml", "a: 1\nb: 2\n");
        assert!(text.starts_with("f.yaml:2:3: error: bad\n"));
        assert!(text.contains(" 2 | b: 2\n   |   ^\n"));
        assert!(text.ends_with("  = hint: good\n"));
    }

    #[test]
    fn suggestions_are_close_words_only() {
        assert_eq!(did_you_mean("lna", ["lan", "ip", "mac"]), Some("lan"));
        assert_eq!(did_you_mean("zzzzzz", ["lan", "ip"]), None);
    }
}
