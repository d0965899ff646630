//! Validate + plan of a large lab: 2,000 containers on 200 lans, two interfaces each, a file
//! and a sysctl, planned against an empty lab and against one that differs by one address.

use cloonix::graph::{self, Graph};
use cloonix::model::load_str;
use cloonix::plan;
use criterion::{Criterion, criterion_group, criterion_main};
use std::fmt::Write;
use std::hint::black_box;
use std::path::Path;

/// The same allocator as the `cloonix` binary, so that the figures are the binary's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn big_topology(changed: bool) -> String {
    let mut s = String::from("name: big\nlans:\n");
    for l in 0..200 {
        let _ = writeln!(s, "  - lan{l}");
    }
    s.push_str("endpoints:\n");
    for e in 0..2000 {
        let (a, b) = (e % 200, (e * 7 + 1) % 200);
        let last = if changed && e == 1000 {
            99
        } else {
            e % 250 + 1
        };
        let _ = write!(
            s,
            "  n{e}:\n    kind: cnt\n    eth:\n      - {{lan: lan{a}, ip: 10.{}.{a}.{last}/24}}\n      - {{lan: lan{b}, ip: 10.{}.{b}.{}/24}}\n    files:\n      /etc/motd: {{content: \"node {e}\\n\"}}\n    sysctl: {{net.ipv4.ip_forward: 1}}\n",
            e / 250,
            e / 250 + 100,
            e % 250 + 1
        );
    }
    s
}

fn bench(c: &mut Criterion) {
    let text = big_topology(false);
    let dir = Path::new(".");
    let observed = graph::desired(&load_str(&big_topology(true), dir).unwrap().topology).unwrap();
    let empty = Graph::new("big");
    let mut group = c.benchmark_group("2000 endpoints, 200 lans");
    group.sample_size(10);
    group.bench_function("validate + plan against an empty lab", |b| {
        b.iter(|| {
            let loaded = load_str(black_box(&text), dir).unwrap();
            let desired = graph::desired(&loaded.topology).unwrap();
            plan::plan(&desired, &empty)
        })
    });
    group.bench_function("validate + plan against a one-change lab", |b| {
        b.iter(|| {
            let loaded = load_str(black_box(&text), dir).unwrap();
            let desired = graph::desired(&loaded.topology).unwrap();
            let p = plan::plan(&desired, &observed);
            assert_eq!(p.counts().update, 1);
            p
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
