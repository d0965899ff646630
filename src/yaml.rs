//! A YAML document as a tree whose every node knows where it stands in the file.
//!
//! serde stops at the first error and forgets positions; validation must report every
//! error of a file with its line and column, so the loader works on this tree instead.
//! Duplicate keys, nesting too deep and aliases that multiply the document are caught here,
//! while building it, before they can cost memory or time.

use crate::diag::{Diagnostic, MAX_ERRORS, Pos};
use saphyr_parser::{Event, Parser, ScalarStyle, Span};
use std::collections::HashMap;

/// Mappings and lists may nest this deep. A topology needs about six levels; the bound keeps
/// a hostile file from making the tree (and every recursive walk of it) arbitrarily deep.
pub const MAX_DEPTH: usize = 128;

/// Aliases may expand a document to at most this many times its own size ("billion laughs"
/// guard). Relative, not fixed, so that a large file written out in full is never refused.
pub const MAX_EXPANSION: usize = 10;

/// Beyond this many keys a mapping looks its keys up in a hash index, so that duplicate
/// detection stays linear for a mapping of a hundred thousand endpoints.
const INDEX_KEYS_FROM: usize = 16;

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub pos: Pos,
    pub value: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    /// The scalar's text and whether it was written plain (unquoted), which decides
    /// whether `true` or `12` are a boolean and a number or just text.
    Scalar(String, bool),
    Seq(Vec<Node>),
    /// Keys keep their order and position; a repeated key is reported and dropped.
    Map(Vec<(Key, Node)>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    pub name: String,
    pub pos: Pos,
}

impl Node {
    /// The node as JSON, with plain scalars resolved by YAML's core schema (`1` is a number,
    /// `true` a boolean); used to hold raw files against the JSON Schema.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match &self.value {
            Value::Null => J::Null,
            Value::Scalar(s, false) => J::String(s.clone()),
            Value::Scalar(s, true) => match s.as_str() {
                "true" | "True" | "TRUE" => J::Bool(true),
                "false" | "False" | "FALSE" => J::Bool(false),
                _ => s
                    .parse::<i64>()
                    .map(J::from)
                    .or_else(|_| s.parse::<f64>().map(J::from))
                    .unwrap_or_else(|_| J::String(s.clone())),
            },
            Value::Seq(items) => J::Array(items.iter().map(Node::to_json).collect()),
            Value::Map(items) => J::Object(
                items
                    .iter()
                    .map(|(k, v)| (k.name.clone(), v.to_json()))
                    .collect(),
            ),
        }
    }

    pub fn kind_name(&self) -> &'static str {
        match &self.value {
            Value::Null => "nothing",
            Value::Scalar(..) => "a scalar",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }
}

fn pos_of(span: &Span) -> Pos {
    Pos {
        line: span.start.line() as u32,
        col: span.start.col() as u32 + 1,
    }
}

/// A list or mapping whose end has not come yet.
struct Frame {
    pos: Pos,
    anchor: usize,
    /// Where it starts, in characters, and how many characters aliases had added by then:
    /// an anchored collection's expanded size is known when it ends.
    start: usize,
    added_before: usize,
    body: Body,
}

enum Body {
    Seq(Vec<Node>),
    Map(MapBody),
}

#[derive(Default)]
struct MapBody {
    items: Vec<(Key, Node)>,
    /// The key whose value comes next; an empty name drops the value (the key was refused).
    pending: Option<Key>,
    /// The line of each key, kept once the mapping has [`INDEX_KEYS_FROM`] keys.
    index: HashMap<String, u32>,
}

impl MapBody {
    /// The line where `name` was first given, if it was.
    fn line_of(&self, name: &str) -> Option<u32> {
        if self.index.is_empty() {
            self.items
                .iter()
                .find(|(k, _)| k.name == name)
                .map(|(k, _)| k.pos.line)
        } else {
            self.index.get(name).copied()
        }
    }

    fn push(&mut self, key: Key, value: Node) {
        if self.items.len() + 1 >= INDEX_KEYS_FROM {
            if self.index.is_empty() {
                for (k, _) in &self.items {
                    self.index.insert(k.name.clone(), k.pos.line);
                }
            }
            self.index.insert(key.name.clone(), key.pos.line);
        }
        self.items.push((key, value));
    }
}

/// An anchored node, and its size in characters once the aliases inside it are expanded.
#[derive(Clone)]
struct Anchor {
    node: Node,
    size: usize,
}

/// Why parsing stopped before the end of the text.
struct Stop;

/// The tree under construction, and what the limits need to know.
struct Builder {
    diags: Vec<Diagnostic>,
    stack: Vec<Frame>,
    anchors: Vec<Option<Anchor>>,
    root: Option<Node>,
    docs: usize,
    /// The document's own size in characters, and how many characters aliases added to it.
    size: usize,
    added: usize,
}

/// Parses one YAML document. Returns the root (None for an empty file, or when parsing had
/// to stop: a syntax error or a limit) and every problem found on the way.
pub fn parse(text: &str) -> (Option<Node>, Vec<Diagnostic>) {
    let mut b = Builder {
        diags: Vec::new(),
        stack: Vec::new(),
        anchors: Vec::new(),
        root: None,
        docs: 0,
        size: text.chars().count(),
        added: 0,
    };
    for item in Parser::new_from_str(text) {
        let step = match item {
            Ok((event, span)) => b.event(event, span),
            Err(e) => {
                let m = e.marker();
                let pos = Pos {
                    line: m.line() as u32,
                    col: m.col() as u32 + 1,
                };
                b.stop(
                    pos,
                    format!("invalid YAML: {}", e.info()),
                    "fix the YAML syntax here (indentation, an unclosed quote or bracket)",
                )
            }
        };
        if step.is_err() {
            // A second document keeps what the first one built; every other stop has none.
            let root = if b.docs > 1 { b.root } else { None };
            return (root, b.diags);
        }
    }
    (b.root, b.diags)
}

impl Builder {
    fn stop<T>(&mut self, pos: Pos, message: String, hint: &str) -> Result<T, Stop> {
        self.diags.push(Diagnostic::new(pos, message, hint));
        Err(Stop)
    }

    /// Keeps an error and goes on, unless the file has too many to be worth reading on.
    fn report(&mut self, d: Diagnostic) -> Result<(), Stop> {
        if self.diags.len() >= MAX_ERRORS {
            return self.stop(
                d.pos,
                format!("more than {MAX_ERRORS} errors; the rest of the file is not read"),
                "fix these first",
            );
        }
        self.diags.push(d);
        Ok(())
    }

    fn event(&mut self, event: Event, span: Span) -> Result<(), Stop> {
        let pos = pos_of(&span);
        let (node, anchor, size) = match event {
            Event::DocumentStart(_) => {
                self.docs += 1;
                if self.docs > 1 {
                    return self.stop(
                        pos,
                        "a topology file holds one YAML document".into(),
                        "remove the `---` and what follows, or split it into another file",
                    );
                }
                return Ok(());
            }
            Event::Scalar(text, style, anchor, _) => {
                let value = if style == ScalarStyle::Plain && is_null(&text) {
                    Value::Null
                } else {
                    // Exactly sized: the scanner's buffer has room to spare, and a large
                    // file holds millions of these.
                    Value::Scalar(String::from(&*text), style == ScalarStyle::Plain)
                };
                (Node { pos, value }, anchor, span.len())
            }
            Event::SequenceStart(anchor, _) => {
                return self.open(pos, span, anchor, Body::Seq(Vec::new()));
            }
            Event::MappingStart(anchor, _) => {
                return self.open(pos, span, anchor, Body::Map(MapBody::default()));
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let Some(f) = self.stack.pop() else {
                    return Ok(());
                };
                // Without the room that pushing left: most collections hold two or three items.
                let value = match f.body {
                    Body::Seq(mut items) => {
                        items.shrink_to_fit();
                        Value::Seq(items)
                    }
                    Body::Map(mut m) => {
                        m.items.shrink_to_fit();
                        Value::Map(m.items)
                    }
                };
                let size = span.end.index().saturating_sub(f.start) + self.added - f.added_before;
                (Node { pos: f.pos, value }, f.anchor, size)
            }
            Event::Alias(id) => (self.alias(id, pos, &span)?, 0, 0),
            _ => return Ok(()),
        };
        if anchor > 0 {
            if self.anchors.len() <= anchor {
                self.anchors.resize(anchor + 1, None);
            }
            self.anchors[anchor] = Some(Anchor {
                node: node.clone(),
                size,
            });
        }
        self.attach(node)
    }

    fn open(&mut self, pos: Pos, span: Span, anchor: usize, body: Body) -> Result<(), Stop> {
        if self.stack.len() >= MAX_DEPTH {
            return self.stop(
                pos,
                format!("the document nests deeper than {MAX_DEPTH} levels"),
                "a topology needs a handful of levels; lists and mappings may not nest without bound",
            );
        }
        self.stack.push(Frame {
            pos,
            anchor,
            start: span.start.index(),
            added_before: self.added,
            body,
        });
        Ok(())
    }

    /// The anchored node that an alias stands for, counting what it adds to the document.
    fn alias(&mut self, id: usize, pos: Pos, span: &Span) -> Result<Node, Stop> {
        let Some(Some(anchor)) = self.anchors.get(id) else {
            self.report(Diagnostic::new(
                pos,
                "alias to an anchor that is not complete here",
                "an alias may only refer to an anchor defined before it, outside itself",
            ))?;
            return Ok(Node {
                pos,
                value: Value::Null,
            });
        };
        self.added += anchor.size.saturating_sub(span.len());
        if self.size + self.added > MAX_EXPANSION * self.size {
            return self.stop(
                pos,
                format!("aliases expand the document to more than {MAX_EXPANSION} times its size"),
                "anchors and aliases may not multiply the document; write the repeated parts out",
            );
        }
        Ok(anchor.node.clone())
    }

    /// Puts a finished node where it belongs: the root, a list, or a mapping's key or value.
    fn attach(&mut self, node: Node) -> Result<(), Stop> {
        let map = match self.stack.last_mut() {
            None => {
                self.root = Some(node);
                return Ok(());
            }
            Some(Frame {
                body: Body::Seq(items),
                ..
            }) => {
                items.push(node);
                return Ok(());
            }
            Some(Frame {
                body: Body::Map(m), ..
            }) => m,
        };
        if let Some(key) = map.pending.take() {
            if !key.name.is_empty() {
                map.push(key, node);
            }
            return Ok(());
        }
        // A refused key still has a value coming; an empty name marks it to be dropped.
        let mut key = Key {
            name: String::new(),
            pos: node.pos,
        };
        let problem = match node.value {
            Value::Scalar(name, _) => match map.line_of(&name) {
                Some(line) => Some((
                    format!("duplicate key `{name}`"),
                    format!("`{name}` is already given at line {line}; keep one of them"),
                )),
                None => {
                    key.name = name;
                    None
                }
            },
            Value::Null => Some(("empty key".into(), "every key is a name".into())),
            _ => Some((
                "a key must be a plain name, not a list or mapping".into(),
                "write `name: value`".into(),
            )),
        };
        map.pending = Some(key);
        match problem {
            Some((message, hint)) => self.report(Diagnostic::new(node.pos, message, hint)),
            None => Ok(()),
        }
    }
}

fn is_null(s: &str) -> bool {
    matches!(s, "" | "~" | "null" | "Null" | "NULL")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based() {
        let (root, d) = parse("a: 1\nb:\n  c: x\n");
        assert!(d.is_empty());
        let Value::Map(items) = root.unwrap().value else {
            panic!()
        };
        assert_eq!(items[1].0.pos, Pos { line: 2, col: 1 });
        let Value::Map(inner) = &items[1].1.value else {
            panic!()
        };
        assert_eq!(inner[0].1.pos, Pos { line: 3, col: 6 });
    }

    #[test]
    fn duplicate_key_is_reported_at_the_second() {
        let (_, d) = parse("a: 1\nb: 2\na: 3\n");
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].pos, Pos { line: 3, col: 1 });
        assert!(d[0].message.contains("duplicate key `a`"));
    }

    #[test]
    fn alias_bomb_is_refused() {
        let mut s = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..9 {
            let p = i - 1;
            s.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        let (root, d) = parse(&s);
        assert!(root.is_none());
        assert!(
            d[0].message.contains("more than 10 times its size"),
            "{d:?}"
        );
    }

    #[test]
    fn aliases_within_ten_times_the_document_are_expanded() {
        let s = "a: &x [1, 2, 3, 4, 5, 6, 7, 8]\nb: [*x, *x, *x, *x, *x]\n";
        let (root, d) = parse(s);
        assert!(d.is_empty(), "{d:?}");
        let Value::Map(items) = root.unwrap().value else {
            panic!()
        };
        let Value::Seq(b) = &items[1].1.value else {
            panic!()
        };
        assert_eq!(b[4], items[0].1);
    }

    #[test]
    fn nesting_is_bounded() {
        let nested = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        let (root, d) = parse(&nested(MAX_DEPTH));
        assert!(root.is_some() && d.is_empty(), "{d:?}");
        let (root, d) = parse(&nested(MAX_DEPTH + 1));
        assert!(root.is_none());
        assert_eq!(d.len(), 1);
        assert_eq!(
            d[0].pos,
            Pos {
                line: 1,
                col: MAX_DEPTH as u32 + 1
            }
        );
        assert!(d[0].message.contains("deeper than 128 levels"));
    }

    #[test]
    fn duplicate_keys_are_found_in_large_mappings() {
        let mut s: String = (0..1000).map(|i| format!("k{i}: {i}\n")).collect();
        s.push_str("k17: again\n");
        let (_, d) = parse(&s);
        assert_eq!(d.len(), 1, "{d:?}");
        assert_eq!(d[0].pos.line, 1001);
        assert!(d[0].hint.contains("line 18"));
    }

    #[test]
    fn syntax_error_has_a_position() {
        let (root, d) = parse("a: [1, 2\nb: 3\n");
        assert!(root.is_none());
        assert_eq!(d.len(), 1);
        assert!(d[0].message.starts_with("invalid YAML"));
    }

    #[test]
    fn quoted_and_plain_scalars_differ() {
        let (root, _) = parse("a: '1'\nb: 1\nc: ~\n");
        let Value::Map(items) = root.unwrap().value else {
            panic!()
        };
        assert_eq!(items[0].1.value, Value::Scalar("1".into(), false));
        assert_eq!(items[1].1.value, Value::Scalar("1".into(), true));
        assert_eq!(items[2].1.value, Value::Null);
    }
}
