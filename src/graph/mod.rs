//! A lab as a graph of resources with dependency edges. The same type holds the desired lab
//! (built from the file by [`build`]) and the observed one (built by the observers from the
//! real objects and the intent cloonix recorded), so the planner compares like with like.

mod build;
mod canonical;
pub mod names;
mod resource;

pub use build::{BuildError, desired};
pub use canonical::to_topology;
pub use resource::*;

use petgraph::Direction;
use petgraph::stable_graph::{NodeIndex, StableDiGraph};
use std::collections::BTreeMap;

/// How one resource depends on another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Dep {
    /// It exists inside the other: it goes when the other goes, and a replaced parent means a
    /// replaced child (a file lives in a root filesystem, a veth end in a namespace).
    LivesIn,
    /// It only needs the other to exist first (a container starts once its veths are up).
    After,
}

#[derive(Debug, Clone, Default)]
pub struct Graph {
    pub lab: String,
    graph: StableDiGraph<Resource, Dep>,
    /// Ordered, so that every walk over a graph (and so every plan) comes out the same.
    index: BTreeMap<ResourceId, NodeIndex>,
}

impl Graph {
    pub fn new(lab: &str) -> Self {
        Graph {
            lab: lab.to_string(),
            ..Default::default()
        }
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    pub fn id(&self, kind: Kind, name: impl Into<String>) -> ResourceId {
        ResourceId {
            kind,
            lab: self.lab.clone(),
            name: name.into(),
        }
    }

    /// Adds or replaces a resource, keeping its edges.
    pub fn insert(&mut self, resource: Resource) -> NodeIndex {
        match self.index.get(&resource.id) {
            Some(&ix) => {
                self.graph[ix] = resource;
                ix
            }
            None => {
                let id = resource.id.clone();
                let ix = self.graph.add_node(resource);
                self.index.insert(id, ix);
                ix
            }
        }
    }

    /// Adds a resource with its dependencies, given by handle (as builders hold them).
    pub fn add(&mut self, resource: Resource, deps: &[(NodeIndex, Dep)]) -> NodeIndex {
        let ix = self.insert(resource);
        for &(to, dep) in deps {
            if self.graph.find_edge(ix, to).is_none() {
                self.graph.add_edge(ix, to, dep);
            }
        }
        ix
    }

    /// The handle of a resource, for [`Graph::add`].
    pub fn handle(&self, id: &ResourceId) -> Option<NodeIndex> {
        self.index.get(id).copied()
    }

    /// Records that `from` depends on `to`; both must be present.
    pub fn depend(&mut self, from: &ResourceId, to: &ResourceId, dep: Dep) {
        let (a, b) = (self.index[from], self.index[to]);
        if self.graph.find_edge(a, b).is_none() {
            self.graph.add_edge(a, b, dep);
        }
    }

    pub fn remove(&mut self, id: &ResourceId) -> Option<Resource> {
        let ix = self.index.remove(id)?;
        self.graph.remove_node(ix)
    }

    /// Drops every dependency of `id` (before giving it a new set).
    pub fn clear_deps(&mut self, id: &ResourceId) {
        let Some(&ix) = self.index.get(id) else {
            return;
        };
        let edges: Vec<_> = self
            .graph
            .edges_directed(ix, Direction::Outgoing)
            .map(|e| petgraph::visit::EdgeRef::id(&e))
            .collect();
        for e in edges {
            self.graph.remove_edge(e);
        }
    }

    pub fn get(&self, id: &ResourceId) -> Option<&Resource> {
        self.index.get(id).map(|&ix| &self.graph[ix])
    }

    pub fn get_at(&self, ix: NodeIndex) -> Option<&Resource> {
        self.graph.node_weight(ix)
    }

    pub fn contains(&self, id: &ResourceId) -> bool {
        self.index.contains_key(id)
    }

    /// Every resource, in a stable order.
    pub fn resources(&self) -> impl Iterator<Item = &Resource> {
        self.index.values().map(|&ix| &self.graph[ix])
    }

    /// Every resource with its handle, in the same order as [`Graph::resources`].
    pub fn entries(&self) -> impl Iterator<Item = (NodeIndex, &Resource)> {
        self.index.values().map(|&ix| (ix, &self.graph[ix]))
    }

    /// One past the largest handle, to size tables indexed by handle.
    pub fn handle_bound(&self) -> usize {
        petgraph::visit::NodeIndexable::node_bound(&self.graph)
    }

    /// Handles of what the resource at `ix` depends on (or, `incoming`, of its dependents),
    /// with how.
    pub fn neighbors_of(
        &self,
        ix: NodeIndex,
        incoming: bool,
    ) -> impl Iterator<Item = (NodeIndex, Dep)> + '_ {
        let dir = if incoming {
            Direction::Incoming
        } else {
            Direction::Outgoing
        };
        self.graph.edges_directed(ix, dir).map(move |e| {
            let other = if incoming {
                petgraph::visit::EdgeRef::source(&e)
            } else {
                petgraph::visit::EdgeRef::target(&e)
            };
            (other, *e.weight())
        })
    }

    /// What `id` depends on.
    pub fn deps(&self, id: &ResourceId) -> Vec<(&ResourceId, Dep)> {
        self.neighbors(id, Direction::Outgoing)
    }

    /// What depends on `id`.
    pub fn dependents(&self, id: &ResourceId) -> Vec<(&ResourceId, Dep)> {
        self.neighbors(id, Direction::Incoming)
    }

    fn neighbors(&self, id: &ResourceId, dir: Direction) -> Vec<(&ResourceId, Dep)> {
        let Some(&ix) = self.index.get(id) else {
            return Vec::new();
        };
        self.graph
            .edges_directed(ix, dir)
            .map(|e| {
                let other = if dir == Direction::Outgoing {
                    petgraph::visit::EdgeRef::target(&e)
                } else {
                    petgraph::visit::EdgeRef::source(&e)
                };
                (&self.graph[other].id, *e.weight())
            })
            .collect()
    }
}

impl Graph {
    /// How `other` differs from this graph, one line per difference: resources, and what
    /// lives in what. `After` edges only order creation and are left out.
    pub fn differences(&self, other: &Graph) -> Vec<String> {
        let mut out = Vec::new();
        if self.lab != other.lab {
            out.push(format!("lab {} vs {}", self.lab, other.lab));
        }
        let lives_in = |g: &Graph, id: &ResourceId| {
            let mut v: Vec<ResourceId> = g
                .deps(id)
                .into_iter()
                .filter(|(_, d)| *d == Dep::LivesIn)
                .map(|(t, _)| t.clone())
                .collect();
            v.sort();
            v
        };
        for r in self.resources() {
            match other.get(&r.id) {
                None => out.push(format!("only left: {}", r.id)),
                Some(o) if o != r => out.push(format!("differs: {}", r.id)),
                Some(_) if lives_in(self, &r.id) != lives_in(other, &r.id) => {
                    out.push(format!("lives elsewhere: {}", r.id))
                }
                _ => {}
            }
        }
        for r in other.resources().filter(|r| !self.contains(&r.id)) {
            out.push(format!("only right: {}", r.id));
        }
        out
    }
}

impl PartialEq for Graph {
    fn eq(&self, other: &Self) -> bool {
        self.differences(other).is_empty()
    }
}
