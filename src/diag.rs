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
        let line = source.lines().nth(self.pos.line.saturating_sub(1) as usize);
        self.render_at(path, line)
    }

    fn render_at(&self, path: &str, line: Option<&str>) -> String {
        let mut out = format!(
            "{path}:{}:{}: error: {}\n",
            self.pos.line, self.pos.col, self.message
        );
        if let Some(line) = line {
            let (shown, col) = window(line, self.pos.col.saturating_sub(1) as usize);
            let gutter = self.pos.line.to_string();
            let pad = " ".repeat(gutter.len());
            let caret = " ".repeat(col);
            let _ = writeln!(out, " {pad} |\n {gutter} | {shown}\n {pad} | {caret}^");
        }
        if !self.hint.is_empty() {
            let _ = writeln!(out, "  = hint: {}", self.hint);
        }
        out
    }
}

/// Characters of a line shown on each side of the column: a line longer than that (a
/// whole file written on one line) is cut, so that each error prints a few hundred bytes.
const CONTEXT: usize = 60;

/// The part of `line` around character `col` that is shown, and where `col` falls in it.
fn window(line: &str, col: usize) -> (String, usize) {
    let len = line.chars().count();
    if len <= 2 * CONTEXT {
        return (line.to_string(), col);
    }
    let start = col
        .saturating_sub(CONTEXT)
        .min(len.saturating_sub(2 * CONTEXT));
    let mut shown: String = line.chars().skip(start).take(2 * CONTEXT).collect();
    let mut col = col - start;
    if start > 0 {
        shown.insert(0, '…');
        col += 1;
    }
    if start + 2 * CONTEXT < len {
        shown.push('…');
    }
    (shown, col)
}

/// Errors kept for one file. A hostile file can hold millions (32 MiB of one duplicate
/// key); past this many only their number is kept, so memory and output stay bounded.
pub const MAX_ERRORS: usize = 1000;

/// All the problems found in one file, in file order.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{} error(s) in the topology file", .0.len())]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    /// Sorts `diags` into file order and keeps the first [`MAX_ERRORS`]; `omitted` more were
    /// found but not kept. What is left out is said in one last error, so that a reader of
    /// the output never takes the list for complete.
    pub fn bounded(mut diags: Vec<Diagnostic>, omitted: usize) -> Diagnostics {
        diags.sort_by_key(|d| d.pos);
        let omitted = omitted + diags.len().saturating_sub(MAX_ERRORS);
        diags.truncate(MAX_ERRORS);
        if omitted > 0 {
            let pos = diags.last().map(|d| d.pos).unwrap_or_default();
            diags.push(Diagnostic::new(
                pos,
                format!("{omitted} more error(s) after this one are not shown"),
                format!("only the first {MAX_ERRORS} errors of a file are listed"),
            ));
        }
        Diagnostics(diags)
    }

    /// Renders every diagnostic, reading `source` once: they are in file order.
    pub fn render(&self, path: &str, source: &str) -> String {
        let mut lines = source.lines();
        let mut current: Option<&str> = None;
        let mut at = 0u32;
        let mut out = String::new();
        for d in &self.0 {
            if d.pos.line < at || at == 0 {
                // Out of order (not from `bounded`): start over.
                lines = source.lines();
                current = None;
                at = 0;
            }
            while at < d.pos.line {
                current = lines.next();
                at += 1;
            }
            out.push_str(&d.render_at(path, current));
        }
        out
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
    fn long_lines_are_cut_around_the_column() {
        let line = format!("{}X{}", "a".repeat(500), "b".repeat(500));
        let text = Diagnostic::new(Pos { line: 1, col: 501 }, "bad", "").render("f", &line);
        let shown = text.lines().nth(2).unwrap();
        let caret = text.lines().nth(3).unwrap();
        assert!(shown.len() < 200, "{shown}");
        assert_eq!(
            shown.find('X'),
            caret.find('^').map(|c| c + '…'.len_utf8() - 1)
        );
        let short = Diagnostic::new(Pos { line: 1, col: 3 }, "bad", "").render("f", "abcdef");
        assert!(short.contains(" 1 | abcdef\n   |   ^\n"));
    }

    #[test]
    fn errors_past_the_limit_are_counted() {
        let d = |line| Diagnostic::new(Pos { line, col: 1 }, "bad", "");
        let all: Vec<Diagnostic> = (1..=MAX_ERRORS as u32 + 5).rev().map(d).collect();
        let kept = Diagnostics::bounded(all, 7).0;
        assert_eq!(kept.len(), MAX_ERRORS + 1);
        assert_eq!(kept[0].pos.line, 1);
        assert!(kept[MAX_ERRORS].message.starts_with("12 more error(s)"));
        let text = Diagnostics(kept).render("f", &"x\n".repeat(2000));
        assert_eq!(text.matches(": error: ").count(), MAX_ERRORS + 1);
    }

    #[test]
    fn suggestions_are_close_words_only() {
        assert_eq!(did_you_mean("lna", ["lan", "ip", "mac"]), Some("lan"));
        assert_eq!(did_you_mean("zzzzzz", ["lan", "ip"]), None);
    }
}
