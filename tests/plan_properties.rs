//! Properties of the planner over random topologies: the plan from A to B, played on a
//! model of A, yields B; a lab that matches its file plans nothing; and no step ever names
//! a resource of another lab.

use cloonix::graph::{self, Graph};
use cloonix::model::units::{Cidr, Duration, Percent};
use cloonix::model::*;
use cloonix::plan::{self, simulate};
use proptest::prelude::*;
use std::collections::BTreeMap;

/// Reads choices from a byte string, so that proptest shrinks topologies by shrinking bytes.
struct Choices<'a>(std::slice::Iter<'a, u8>);

impl Choices<'_> {
    fn pick(&mut self, n: usize) -> usize {
        self.0.next().map(|b| *b as usize % n.max(1)).unwrap_or(0)
    }
    fn flip(&mut self) -> bool {
        self.pick(2) == 1
    }
}

fn topology(bytes: &[u8]) -> Topology {
    let mut c = Choices(bytes.iter());
    let lan_names: Vec<String> = (0..1 + c.pick(5)).map(|i| format!("l{i}")).collect();
    let mut lans = BTreeMap::new();
    for l in &lan_names {
        let mtu = if c.pick(4) == 0 { 9000 } else { DEFAULT_MTU };
        lans.insert(l.clone(), Lan { mtu, spy: true });
    }
    let mut endpoints = BTreeMap::new();
    for _ in 0..c.pick(7) {
        let name = format!("e{}", c.pick(8));
        let lan = |c: &mut Choices| lan_names[c.pick(lan_names.len())].clone();
        let ep = match c.pick(5) {
            0 | 1 => {
                let eth = (0..c.pick(4))
                    .map(|j| Eth {
                        name: format!("eth{j}"),
                        lan: lan(&mut c),
                        ip: vec![
                            format!("10.0.{}.{}/24", c.pick(3), 1 + c.pick(3))
                                .parse::<Cidr>()
                                .unwrap(),
                        ],
                        mac: None,
                    })
                    .collect();
                let mut files = BTreeMap::new();
                if c.flip() {
                    let content = ["a\n", "b\n"][c.pick(2)].to_string();
                    files.insert(
                        "/etc/motd".into(),
                        File {
                            content: Some(content),
                            source: None,
                            mode: None,
                        },
                    );
                }
                let mut env = BTreeMap::new();
                if c.flip() {
                    env.insert("ROLE".into(), ["core", "edge"][c.pick(2)].into());
                }
                // Engine containers too: a runtime change replaces the endpoint.
                let runtime = [
                    Runtime::Crun,
                    Runtime::Crun,
                    Runtime::Podman,
                    Runtime::Docker,
                ][c.pick(4)];
                let image = match runtime {
                    Runtime::Crun => BUILTIN_IMAGE.into(),
                    Runtime::Podman | Runtime::Docker => "localhost/router:1".into(),
                };
                Endpoint::Cnt(Container {
                    runtime,
                    image,
                    eth,
                    files,
                    run: Vec::new(),
                    run_timeout: DEFAULT_RUN_TIMEOUT,
                    env,
                    sysctl: BTreeMap::new(),
                    privileged: false,
                    cpu: None,
                    ram: None,
                })
            }
            2 => Endpoint::Nat(Nat {
                lan: lan(&mut c),
                subnet: default_nat_subnet(),
                dns: [vec![], vec!["9.9.9.9".parse().unwrap()]][c.pick(2)].clone(),
            }),
            3 => Endpoint::Tap(Tap {
                lan: lan(&mut c),
                name: None,
                ip: Vec::new(),
            }),
            _ if lan_names.len() >= 2 => {
                let a = c.pick(lan_names.len());
                let b = (a + 1 + c.pick(lan_names.len() - 1)) % lan_names.len();
                let delay = [None, Some(Duration(40)), Some(Duration(80))][c.pick(3)];
                let loss = [None, Some(Percent(10_000))][c.pick(2)];
                Endpoint::A2b(A2b {
                    a: lan_names[a].clone(),
                    b: lan_names[b].clone(),
                    a_to_b: Impairment {
                        delay,
                        loss,
                        ..Default::default()
                    },
                    b_to_a: Impairment::default(),
                })
            }
            _ => Endpoint::Nat(Nat {
                lan: lan(&mut c),
                subnet: default_nat_subnet(),
                dns: Vec::new(),
            }),
        };
        endpoints.insert(name, ep);
    }
    Topology {
        name: "prop".into(),
        lans,
        images: BTreeMap::new(),
        endpoints,
        checks: Vec::new(),
    }
}

fn graph_of(bytes: &[u8]) -> Graph {
    graph::desired(&topology(bytes)).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn a_plan_turns_its_observed_lab_into_the_desired_one(
        a in proptest::collection::vec(any::<u8>(), 0..60),
        b in proptest::collection::vec(any::<u8>(), 0..60),
    ) {
        let (ga, gb) = (graph_of(&a), graph_of(&b));
        let p = plan::plan(&gb, &ga);
        let reached = simulate(&p, &ga, &gb).map_err(TestCaseError::fail)?;
        prop_assert!(reached.differences(&gb).is_empty(), "{:?}", reached.differences(&gb));
        prop_assert!(p.steps.iter().all(|s| s.id.lab == "prop"));
        prop_assert!(plan::plan(&gb, &reached).is_empty());
    }

    #[test]
    fn from_nothing_and_back_to_nothing(a in proptest::collection::vec(any::<u8>(), 0..60)) {
        let ga = graph_of(&a);
        let empty = Graph::new("prop");
        let up = plan::plan(&ga, &empty);
        prop_assert!(simulate(&up, &empty, &ga).map_err(TestCaseError::fail)?.differences(&ga).is_empty());
        let down = plan::plan(&empty, &ga);
        prop_assert!(simulate(&down, &ga, &empty).map_err(TestCaseError::fail)?.is_empty());
        prop_assert!(plan::plan(&ga, &ga).is_empty());
    }

    #[test]
    fn small_edits_stay_small(a in proptest::collection::vec(any::<u8>(), 4..60), at in any::<usize>(), to in any::<u8>()) {
        // One changed choice: the plan must still play out and be idempotent.
        let mut b = a.clone();
        let i = at % b.len();
        b[i] = to;
        let (ga, gb) = (graph_of(&a), graph_of(&b));
        let p = plan::plan(&gb, &ga);
        let reached = simulate(&p, &ga, &gb).map_err(TestCaseError::fail)?;
        prop_assert!(reached.differences(&gb).is_empty());
    }
}
