//! A YAML document as a tree whose every node knows where it stands in the file.
//!
//! serde stops at the first error and forgets positions; validation must report every
//! error of a file with its line and column, so the loader works on this tree instead.
//! Duplicate keys and alias expansion without bound are caught here, while building it.

use crate::diag::{Diagnostic, Pos};
use saphyr_parser::{Event, Parser, ScalarStyle, Span};

/// Aliases may expand a document to at most this many nodes ("billion laughs" guard).
const MAX_NODES: usize = 200_000;

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

enum Frame {
    Seq(Pos, Vec<Node>, usize),
    Map(Pos, Vec<(Key, Node)>, Option<Key>, usize),
}

/// Parses one YAML document. Returns the root (None for an empty file or a syntax error)
/// and every problem found on the way.
pub fn parse(text: &str) -> (Option<Node>, Vec<Diagnostic>) {
    let mut diags = Vec::new();
    let mut stack: Vec<Frame> = Vec::new();
    let mut anchors: Vec<Option<Node>> = Vec::new();
    let mut root: Option<Node> = None;
    let mut nodes = 0usize;
    let mut docs = 0;

    for item in Parser::new_from_str(text) {
        let (event, span) = match item {
            Ok(e) => e,
            Err(e) => {
                let m = e.marker();
                diags.push(Diagnostic::new(
                    Pos {
                        line: m.line() as u32,
                        col: m.col() as u32 + 1,
                    },
                    format!("invalid YAML: {}", e.info()),
                    "fix the YAML syntax here (indentation, an unclosed quote or bracket)",
                ));
                return (None, diags);
            }
        };
        let pos = pos_of(&span);
        let finished = match event {
            Event::DocumentStart(_) => {
                docs += 1;
                if docs > 1 {
                    diags.push(Diagnostic::new(
                        pos,
                        "a topology file holds one YAML document",
                        "remove the `---` and what follows, or split it into another file",
                    ));
                    return (root, diags);
                }
                None
            }
            Event::Scalar(text, style, anchor, _) => {
                let value = if style == ScalarStyle::Plain && is_null(&text) {
                    Value::Null
                } else {
                    Value::Scalar(text.into_owned(), style == ScalarStyle::Plain)
                };
                Some((Node { pos, value }, anchor))
            }
            Event::SequenceStart(anchor, _) => {
                stack.push(Frame::Seq(pos, Vec::new(), anchor));
                None
            }
            Event::MappingStart(anchor, _) => {
                stack.push(Frame::Map(pos, Vec::new(), None, anchor));
                None
            }
            Event::SequenceEnd => match stack.pop() {
                Some(Frame::Seq(p, items, anchor)) => Some((
                    Node {
                        pos: p,
                        value: Value::Seq(items),
                    },
                    anchor,
                )),
                _ => None,
            },
            Event::MappingEnd => match stack.pop() {
                Some(Frame::Map(p, items, _, anchor)) => Some((
                    Node {
                        pos: p,
                        value: Value::Map(items),
                    },
                    anchor,
                )),
                _ => None,
            },
            Event::Alias(id) => match anchors.get(id).cloned().flatten() {
                Some(node) => {
                    nodes += count(&node);
                    Some((node, 0))
                }
                None => {
                    diags.push(Diagnostic::new(
                        pos,
                        "alias to an anchor that is not complete here",
                        "an alias may only refer to an anchor defined before it, outside itself",
                    ));
                    Some((
                        Node {
                            pos,
                            value: Value::Null,
                        },
                        0,
                    ))
                }
            },
            _ => None,
        };
        let Some((node, anchor)) = finished else {
            continue;
        };
        nodes += 1;
        if nodes > MAX_NODES {
            diags.push(Diagnostic::new(
                pos,
                format!("the document expands to more than {MAX_NODES} nodes"),
                "anchors and aliases may not multiply the document without bound",
            ));
            return (None, diags);
        }
        if anchor > 0 {
            if anchors.len() <= anchor {
                anchors.resize(anchor + 1, None);
            }
            anchors[anchor] = Some(node.clone());
        }
        match stack.last_mut() {
            None => root = Some(node),
            Some(Frame::Seq(_, items, _)) => items.push(node),
            Some(Frame::Map(_, items, pending, _)) => match pending.take() {
                None => match node.value {
                    Value::Scalar(name, _) => {
                        if let Some((first, _)) = items.iter().find(|(k, _)| k.name == name) {
                            diags.push(Diagnostic::new(
                                node.pos,
                                format!("duplicate key `{name}`"),
                                format!(
                                    "`{name}` is already given at line {}; keep one of them",
                                    first.pos.line
                                ),
                            ));
                            // The value still arrives; mark it to be dropped.
                            *pending = Some(Key {
                                name: String::new(),
                                pos: node.pos,
                            });
                        } else {
                            *pending = Some(Key {
                                name,
                                pos: node.pos,
                            });
                        }
                    }
                    Value::Null => {
                        diags.push(Diagnostic::new(
                            node.pos,
                            "empty key",
                            "every key is a name",
                        ));
                        *pending = Some(Key {
                            name: String::new(),
                            pos: node.pos,
                        });
                    }
                    _ => {
                        diags.push(Diagnostic::new(
                            node.pos,
                            "a key must be a plain name, not a list or mapping",
                            "write `name: value`",
                        ));
                        *pending = Some(Key {
                            name: String::new(),
                            pos: node.pos,
                        });
                    }
                },
                Some(key) => {
                    if !key.name.is_empty() {
                        items.push((key, node));
                    }
                }
            },
        }
    }
    (root, diags)
}

fn is_null(s: &str) -> bool {
    matches!(s, "" | "~" | "null" | "Null" | "NULL")
}

fn count(node: &Node) -> usize {
    1 + match &node.value {
        Value::Seq(items) => items.iter().map(count).sum(),
        Value::Map(items) => items.iter().map(|(_, v)| count(v)).sum(),
        _ => 0,
    }
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
        assert!(d[0].message.contains("expands to more than"));
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
