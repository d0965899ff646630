//! A picture as Graphviz DOT: an undirected graph, lans as filled ellipses, endpoints in
//! their kind's shape with the kind in small type under the name, and interfaces as
//! edges labelled with their name and addresses. Laid out by `neato` (a spring model, as
//! network diagrams are usually drawn: a ring comes out as a ring), with room between
//! nodes for the edges' labels; `dot -Tsvg` honours the graph's `layout`.

use super::{Node, Picture, shape};
use std::fmt::Write;

/// The DOT text of `p`.
pub fn render(p: &Picture) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "graph {} {{", quote(&p.lab));
    let _ = writeln!(
        s,
        "  graph [label={}, labelloc=t, layout=neato, overlap=false, sep=\"+30\", \
         fontname=\"Helvetica\", pad=0.3];",
        quote(&format!("lab {}", p.lab))
    );
    s.push_str("  node [fontname=\"Helvetica\", fontsize=11];\n");
    s.push_str("  edge [fontname=\"Helvetica\", fontsize=9, color=\"#555555\"];\n");
    for lan in &p.lans {
        let _ = writeln!(
            s,
            "  {} [label={}, shape={}, style=filled, fillcolor=\"#dbe9f6\"];",
            quote(&format!("lan:{}", lan.name)),
            label(lan),
            shape(lan.kind).0
        );
    }
    for ep in &p.endpoints {
        let _ = writeln!(
            s,
            "  {} [label={}, shape={}];",
            quote(&format!("ep:{}", ep.name)),
            label(ep),
            shape(ep.kind).0
        );
    }
    for l in &p.links {
        let _ = writeln!(
            s,
            "  {} -- {} [label={}];",
            quote(&format!("ep:{}", l.endpoint)),
            quote(&format!("lan:{}", l.lan)),
            quote(&l.label.join("\n"))
        );
    }
    s.push_str("}\n");
    s
}

/// An HTML-like label: the name, then the kind (for an endpoint) and notes in small type.
fn label(n: &Node) -> String {
    let mut small: Vec<String> = Vec::new();
    if n.kind != "lan" {
        small.push(n.kind.to_string());
    }
    small.extend(n.notes.iter().cloned());
    let mut s = format!("<{}", html(&n.name));
    for line in small {
        let _ = write!(s, "<BR/><FONT POINT-SIZE=\"9\">{}</FONT>", html(&line));
    }
    s.push('>');
    s
}

/// A DOT string: quoted, with `"` and `\` escaped and lines as `\n`.
fn quote(s: &str) -> String {
    let escaped = s
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n");
    format!("\"{escaped}\"")
}

fn html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::picture::tests::small;

    #[test]
    fn a_small_lab_as_dot() {
        let expected = r##"graph "small" {
  graph [label="lab small", labelloc=t, layout=neato, overlap=false, sep="+30", fontname="Helvetica", pad=0.3];
  node [fontname="Helvetica", fontsize=11];
  edge [fontname="Helvetica", fontsize=9, color="#555555"];
  "lan:lan1" [label=<lan1>, shape=ellipse, style=filled, fillcolor="#dbe9f6"];
  "lan:lan2" [label=<lan2<BR/><FONT POINT-SIZE="9">mtu 9000</FONT><BR/><FONT POINT-SIZE="9">spy: false</FONT>>, shape=ellipse, style=filled, fillcolor="#dbe9f6"];
  "ep:gw" [label=<gw<BR/><FONT POINT-SIZE="9">nat</FONT><BR/><FONT POINT-SIZE="9">DHCP, DNS, NAT</FONT>>, shape=hexagon];
  "ep:r1" [label=<r1<BR/><FONT POINT-SIZE="9">cnt</FONT>>, shape=box];
  "ep:r2" [label=<r2<BR/><FONT POINT-SIZE="9">cnt</FONT>>, shape=box];
  "ep:wan" [label=<wan<BR/><FONT POINT-SIZE="9">a2b</FONT><BR/><FONT POINT-SIZE="9">a→b 40ms 1% loss</FONT>>, shape=diamond];
  "ep:gw" -- "lan:lan1" [label="172.17.0.2/24"];
  "ep:r1" -- "lan:lan1" [label="eth0\n10.0.0.1/24\nfd00::1/64"];
  "ep:r2" -- "lan:lan1" [label="eth0\n10.0.0.2/24"];
  "ep:r2" -- "lan:lan2" [label="up"];
  "ep:wan" -- "lan:lan1" [label="a"];
  "ep:wan" -- "lan:lan2" [label="b"];
}
"##;
        assert_eq!(render(&crate::picture::Picture::of(&small())), expected);
    }

    #[test]
    fn text_cannot_break_out_of_its_quotes() {
        assert_eq!(quote("a\"b\\c\nd"), r#""a\"b\\c\nd""#);
        assert_eq!(html("<b>&\""), "&lt;b&gt;&amp;&quot;");
    }
}
