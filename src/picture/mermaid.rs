//! A picture as a Mermaid flowchart (what GitHub and GitLab draw in Markdown): lans as
//! stadiums, endpoints in their kind's shape, interfaces as links labelled with their
//! name and addresses. Node ids are `l_`/`e_` and the name with `-` as `_` (names have no
//! `_`), so no name can meet a Mermaid keyword such as `end`.

use super::{Node, Picture, shape};
use std::fmt::Write;

/// The Mermaid text of `p`.
pub fn render(p: &Picture) -> String {
    let mut s = format!("%% lab {}\nflowchart LR\n", p.lab);
    for n in p.lans.iter().chain(&p.endpoints) {
        let (_, open, close) = shape(n.kind);
        let _ = writeln!(s, "  {}{open}\"{}\"{close}", id(n), label(n));
    }
    for l in &p.links {
        let text = l
            .label
            .iter()
            .map(|t| text(t))
            .collect::<Vec<_>>()
            .join("<br/>");
        let edge = match text.is_empty() {
            true => "---".to_string(),
            false => format!("---|\"{text}\"|"),
        };
        let _ = writeln!(
            s,
            "  e_{} {edge} l_{}",
            l.endpoint.replace('-', "_"),
            l.lan.replace('-', "_")
        );
    }
    s
}

fn id(n: &Node) -> String {
    let prefix = if n.kind == "lan" { "l_" } else { "e_" };
    format!("{prefix}{}", n.name.replace('-', "_"))
}

/// The name, then the kind (for an endpoint) and notes, one per line.
fn label(n: &Node) -> String {
    let mut lines = vec![text(&n.name)];
    if n.kind != "lan" {
        lines.push(format!("<i>{}</i>", n.kind));
    }
    lines.extend(n.notes.iter().map(|t| text(t)));
    lines.join("<br/>")
}

/// Text inside a quoted Mermaid label: quotes and markup as entities.
fn text(s: &str) -> String {
    s.replace('&', "#amp;")
        .replace('"', "#quot;")
        .replace('<', "#lt;")
        .replace('>', "#gt;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::picture::tests::small;

    #[test]
    fn a_small_lab_as_mermaid() {
        let expected = r#"%% lab small
flowchart LR
  l_lan1(["lan1"])
  l_lan2(["lan2<br/>mtu 9000<br/>spy: false"])
  e_gw{{"gw<br/><i>nat</i><br/>DHCP, DNS, NAT"}}
  e_r1["r1<br/><i>cnt</i>"]
  e_r2["r2<br/><i>cnt</i>"]
  e_wan{"wan<br/><i>a2b</i><br/>a→b 40ms 1% loss"}
  e_gw ---|"172.17.0.2/24"| l_lan1
  e_r1 ---|"eth0<br/>10.0.0.1/24<br/>fd00::1/64"| l_lan1
  e_r2 ---|"eth0<br/>10.0.0.2/24"| l_lan1
  e_r2 ---|"up"| l_lan2
  e_wan ---|"a"| l_lan1
  e_wan ---|"b"| l_lan2
"#;
        assert_eq!(render(&crate::picture::Picture::of(&small())), expected);
    }

    #[test]
    fn ids_never_meet_keywords() {
        let n = Node {
            name: "end-1".into(),
            kind: "cnt",
            notes: Vec::new(),
        };
        assert_eq!(id(&n), "e_end_1");
    }
}
