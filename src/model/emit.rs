//! Writes a topology as YAML in one canonical layout: block style, fields in the order of
//! the types, maps sorted, multi-line text as literal blocks. `diff` compares two of these
//! line by line, and `status -o yaml` prints one that `apply` accepts.

use super::Topology;
use serde_json::Value;

pub fn to_yaml(t: &Topology) -> String {
    let value = serde_json::to_value(t).expect("the model serializes");
    let mut out = String::new();
    block(&mut out, &value, 0);
    out
}

fn block(out: &mut String, v: &Value, indent: usize) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                out.push_str(&" ".repeat(indent));
                entry(out, k, v, indent);
            }
        }
        Value::Array(items) => {
            for item in items {
                out.push_str(&" ".repeat(indent));
                list_item(out, item, indent);
            }
        }
        _ => {
            out.push_str(&" ".repeat(indent));
            out.push_str(&scalar(v, indent));
            out.push('\n');
        }
    }
}

/// `key: value`, the caller having written the indentation.
fn entry(out: &mut String, k: &str, v: &Value, indent: usize) {
    out.push_str(&string(k, indent));
    out.push(':');
    if is_inline(v) {
        out.push(' ');
        out.push_str(&scalar(v, indent + 2));
        out.push('\n');
    } else {
        out.push('\n');
        block(out, v, indent + 2);
    }
}

/// `- item`, the caller having written the indentation.
fn list_item(out: &mut String, v: &Value, indent: usize) {
    out.push_str("- ");
    match v {
        Value::Object(map) if !map.is_empty() => {
            for (i, (k, v)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(&" ".repeat(indent + 2));
                }
                entry(out, k, v, indent + 2);
            }
        }
        Value::Array(items) if !items.is_empty() => {
            let flow: Vec<String> = items.iter().map(|i| scalar(i, 0)).collect();
            if items.iter().all(is_plain_scalar) {
                out.push_str(&format!("[{}]\n", flow.join(", ")));
            } else {
                out.push('\n');
                block(out, v, indent + 2);
            }
        }
        _ => {
            out.push_str(&scalar(v, indent + 2));
            out.push('\n');
        }
    }
}

fn is_inline(v: &Value) -> bool {
    match v {
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty() || a.iter().all(is_plain_scalar),
        _ => true,
    }
}

fn is_plain_scalar(v: &Value) -> bool {
    match v {
        Value::String(s) => !s.contains('\n'),
        Value::Object(_) | Value::Array(_) => false,
        _ => true,
    }
}

fn scalar(v: &Value, indent: usize) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => string(s, indent),
        Value::Object(_) => "{}".into(),
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().map(|i| scalar(i, indent)).collect();
            format!("[{}]", parts.join(", "))
        }
    }
}

/// A string plain where YAML reads it back as the same string, else quoted, and multi-line
/// text as a literal block so that a diff shows which line of a file changed.
fn string(s: &str, indent: usize) -> String {
    if s.contains('\n') && literal_ok(s) {
        let chomp = if s.ends_with("\n\n") {
            "+"
        } else if s.ends_with('\n') {
            ""
        } else {
            "-"
        };
        let pad = " ".repeat(indent);
        let body: Vec<String> = s
            .trim_end_matches('\n')
            .split('\n')
            .map(|l| {
                if l.is_empty() {
                    String::new()
                } else {
                    format!("{pad}{l}")
                }
            })
            .collect();
        let mut out = format!("|{chomp}\n{}", body.join("\n"));
        if chomp == "+" {
            for _ in 0..(s.len() - s.trim_end_matches('\n').len() - 1) {
                out.push('\n');
            }
        }
        return out;
    }
    if needs_quotes(s) {
        serde_json::to_string(s).expect("strings serialize")
    } else {
        s.to_string()
    }
}

/// A literal block cannot start with a space or hold tabs and other controls faithfully.
fn literal_ok(s: &str) -> bool {
    !s.starts_with(' ') && !s.starts_with('\n') && s.chars().all(|c| c == '\n' || !c.is_control())
}

fn needs_quotes(s: &str) -> bool {
    let reserved = matches!(
        s.to_ascii_lowercase().as_str(),
        "" | "~" | "null" | "true" | "false" | "yes" | "no" | "on" | "off" | "y" | "n"
    );
    reserved
        || s.parse::<f64>().is_ok()
        || s.starts_with(|c: char| " -?:,[]{}#&*!|>'\"%@`".contains(c))
        || s.ends_with(' ')
        || s.contains(": ")
        || s.contains(" #")
        || s.ends_with(':')
        || s.chars().any(|c| c.is_control())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yaml::{self, Value as Y};

    fn round_trip(s: &str) -> String {
        let text = format!("k: {}\n", string(s, 2));
        let (root, d) = yaml::parse(&text);
        assert!(d.is_empty(), "{text}: {d:?}");
        let Y::Map(items) = root.unwrap().value else {
            panic!()
        };
        match &items[0].1.value {
            Y::Scalar(v, _) => v.clone(),
            Y::Null => String::new(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn strings_read_back_as_written() {
        for s in [
            "plain",
            "",
            "true",
            "12",
            "1.5",
            "a: b",
            "- x",
            "#x",
            "x #y",
            "line\n",
            "two\nlines",
            "keep\n\n\n",
            "tab\there",
            "  lead",
            "{x}",
            "ends:",
            "null",
            "10.0.0.1/24",
        ] {
            assert_eq!(round_trip(s), s, "{s:?}");
        }
    }
}
