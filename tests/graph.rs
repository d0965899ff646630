//! `cloonix graph` of files (no lab, no root): every shipped topology draws as a valid
//! SVG, the DOT text has a node per endpoint and lan, Mermaid is written, and a host
//! without Graphviz gets a message naming the Debian package.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn graph(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cloonix"))
        .arg("graph")
        .args(args)
        .output()
        .unwrap()
}

fn shipped() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("topologies");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty());
    files
}

#[test]
fn every_shipped_topology_is_a_valid_svg_with_each_lan_and_endpoint() {
    for path in shipped() {
        let t = cloonix::model::load(&path).unwrap().topology;
        let out = graph(&[path.to_str().unwrap(), "--format", "svg"]);
        let svg = String::from_utf8(out.stdout).unwrap();
        assert!(
            out.status.success(),
            "{}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        // Graphviz writes SVG 1.1's DOCTYPE.
        let options = roxmltree::ParsingOptions {
            allow_dtd: true,
            ..Default::default()
        };
        let doc = roxmltree::Document::parse_with_options(&svg, options)
            .unwrap_or_else(|e| panic!("{}: not XML: {e}", path.display()));
        assert_eq!(doc.root_element().tag_name().name(), "svg");
        let titles: Vec<&str> = doc
            .descendants()
            .filter(|n| n.has_tag_name("title"))
            .filter_map(|n| n.text())
            .collect();
        for lan in t.lans.keys() {
            assert!(
                titles.contains(&format!("lan:{lan}").as_str()),
                "{lan} in {titles:?}"
            );
        }
        for ep in t.endpoints.keys() {
            assert!(
                titles.contains(&format!("ep:{ep}").as_str()),
                "{ep} in {titles:?}"
            );
        }
    }
}

#[test]
fn dot_has_a_node_per_endpoint_and_lan_and_an_edge_per_interface() {
    let ring = Path::new(env!("CARGO_MANIFEST_DIR")).join("topologies/ring.yaml");
    let out = graph(&[ring.to_str().unwrap()]);
    assert!(out.status.success());
    let dot = String::from_utf8(out.stdout).unwrap();
    assert!(dot.starts_with("graph \"ring\" {"), "{dot}");
    let nodes: Vec<&str> = dot.lines().filter(|l| l.contains("shape=")).collect();
    assert_eq!(nodes.len(), 10, "5 lans and 5 routers: {dot}");
    for n in 1..=5 {
        assert!(
            dot.contains(&format!("\"ep:r{n}\" [label=<r{n}<BR/>")),
            "{dot}"
        );
    }
    assert!(
        dot.contains("\"ep:r1\" -- \"lan:lan12\" [label=\"eth0\\n10.0.12.1/24\"]"),
        "{dot}"
    );
    assert_eq!(dot.lines().filter(|l| l.contains(" -- ")).count(), 10);
}

#[test]
fn mermaid_is_a_flowchart_of_the_same() {
    let ring = Path::new(env!("CARGO_MANIFEST_DIR")).join("topologies/ring.yaml");
    let out = graph(&[ring.to_str().unwrap(), "--format", "mermaid"]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("flowchart LR"), "{text}");
    assert!(
        text.contains("e_r1 ---|\"eth0<br/>10.0.12.1/24\"| l_lan12"),
        "{text}"
    );
}

#[test]
fn without_graphviz_svg_names_the_package_and_dot_still_works() {
    let ring = Path::new(env!("CARGO_MANIFEST_DIR")).join("topologies/ring.yaml");
    let run = |format: &str| {
        Command::new(env!("CARGO_BIN_EXE_cloonix"))
            .args(["graph", ring.to_str().unwrap(), "--format", format])
            .env("PATH", "/nonexistent")
            .output()
            .unwrap()
    };
    let out = run("svg");
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("`dot` is not installed: apt-get install graphviz"),
        "{err}"
    );
    assert!(run("dot").status.success(), "DOT text needs no Graphviz");
}

#[test]
fn what_is_neither_file_nor_lab_is_refused() {
    let out = graph(&["no/such.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("neither a topology file nor a lab name")
    );
    let out = graph(&["topologies/ring.yaml", "--format", "png"]);
    assert_eq!(out.status.code(), Some(1), "a usage error exits 1");
}

#[test]
fn the_readme_picture_is_of_ring_as_it_is() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let svg = std::fs::read_to_string(root.join("docs/ring.svg")).unwrap();
    let options = roxmltree::ParsingOptions {
        allow_dtd: true,
        ..Default::default()
    };
    let doc = roxmltree::Document::parse_with_options(&svg, options).unwrap();
    let mut drawn: Vec<String> = doc
        .descendants()
        .filter(|n| n.has_tag_name("title"))
        .filter_map(|n| n.text())
        .filter(|t| t.starts_with("lan:") || t.starts_with("ep:"))
        .map(String::from)
        .collect();
    drawn.sort();
    let t = cloonix::model::load(&root.join("topologies/ring.yaml"))
        .unwrap()
        .topology;
    let mut nodes: Vec<String> = t.lans.keys().map(|l| format!("lan:{l}")).collect();
    for (name, ep) in &t.endpoints {
        nodes.push(format!("ep:{name}"));
        if let cloonix::model::Endpoint::Cnt(c) = ep {
            nodes.extend(c.eth.iter().map(|e| format!("ep:{name}--lan:{}", e.lan)));
        }
    }
    nodes.sort();
    assert_eq!(
        drawn, nodes,
        "docs/ring.svg is stale: cloonix graph topologies/ring.yaml --format svg > docs/ring.svg"
    );
}
