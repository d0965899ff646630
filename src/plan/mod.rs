//! The planner: pure code that diffs an observed lab against a desired one and orders the
//! actions into waves that the executor may run in parallel. It knows nothing of how a
//! resource is made; only what changed, what that means, and what must come first.

mod items;
mod render;

pub use items::{ItemChange, ItemOp};
pub use render::{Counts, render_text};

use crate::graph::{Dep, Graph, Item, Resource, ResourceId};
use petgraph::graph::DiGraph;
use petgraph::stable_graph::NodeIndex;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    Create,
    Update,
    Destroy,
}

/// One attribute that changes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    pub field: &'static str,
    pub from: String,
    pub to: String,
}

/// One action on one resource.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Step {
    pub op: Op,
    pub id: ResourceId,
    /// The resource as it will be (create, update) or as it was (destroy).
    pub resource: Resource,
    pub changes: Vec<Change>,
    /// Set when the step is half of a replacement: why it is replaced.
    pub replace: Option<String>,
    /// For an update, the resource as it is now (a driver changes from this to `resource`).
    #[serde(skip)]
    pub before: Option<Resource>,
}

impl Step {
    pub fn op_name(&self) -> &'static str {
        match self.op {
            Op::Create => "create",
            Op::Update => "update",
            Op::Destroy => "destroy",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub lab: String,
    pub steps: Vec<Step>,
    /// Indices into `steps`: every step of a wave may run once the waves before it are done.
    pub waves: Vec<Vec<usize>>,
    /// The plan at the level of the file's items, as `diff` and `apply` show it.
    pub items: Vec<ItemChange>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }
}

enum Verdict {
    Update(Vec<Change>),
    Replace(String, Vec<Change>),
}

fn compare(old: &Resource, new: &Resource) -> Option<Verdict> {
    if let Some(why) = &old.tainted {
        return Some(Verdict::Replace(why.clone(), Vec::new()));
    }
    if old == new {
        return None;
    }
    let before = old.spec.fields();
    let after = new.spec.fields();
    let mut changes = Vec::new();
    let mut replace = Vec::new();
    if std::mem::discriminant(&old.spec) != std::mem::discriminant(&new.spec) {
        return Some(Verdict::Replace(
            "it is another kind of object now".into(),
            Vec::new(),
        ));
    }
    for (a, b) in before.iter().zip(&after) {
        if a.value != b.value {
            if !b.in_place {
                replace.push(format!("{} changed", b.name));
            }
            changes.push(Change {
                field: b.name,
                from: a.value.clone(),
                to: b.value.clone(),
            });
        }
    }
    if !replace.is_empty() {
        Some(Verdict::Replace(replace.join(", "), changes))
    } else if !changes.is_empty() || old.item != new.item {
        Some(Verdict::Update(changes))
    } else {
        None
    }
}

/// What must happen to turn `observed` into `desired`.
pub fn plan(desired: &Graph, observed: &Graph) -> Plan {
    let pairs = pair_up(desired, observed);
    let mut verdicts: BTreeMap<&ResourceId, Verdict> = BTreeMap::new();
    for (want, have) in &pairs {
        if let (Some((_, new)), Some((_, old))) = (want, have)
            && let Some(v) = compare(old, new)
        {
            verdicts.insert(&new.id, v);
        }
    }
    cascade_replacements(desired, observed, &mut verdicts);

    // Each step with its node: in the observed graph for a destroy, else in the desired one.
    let mut steps = Vec::new();
    let mut creates = Vec::new();
    for (want, have) in &pairs {
        let verdict = want.and_then(|(_, r)| verdicts.get(&r.id));
        match (want, have, verdict) {
            (None, Some((ix, old)), _) => {
                steps.push((step(Op::Destroy, old, Vec::new(), None), *ix))
            }
            (Some((ix, new)), None, _) => {
                creates.push((step(Op::Create, new, Vec::new(), None), *ix))
            }
            (Some((nx, new)), Some((ox, old)), Some(Verdict::Replace(why, changes))) => {
                steps.push((
                    step(Op::Destroy, old, changes.clone(), Some(why.clone())),
                    *ox,
                ));
                creates.push((
                    step(Op::Create, new, changes.clone(), Some(why.clone())),
                    *nx,
                ));
            }
            (Some((ix, new)), Some((_, old)), Some(Verdict::Update(changes))) => {
                let mut update = step(Op::Update, new, changes.clone(), None);
                update.before = Some((*old).clone());
                creates.push((update, *ix))
            }
            _ => {}
        }
    }
    steps.append(&mut creates);
    let (steps, nodes): (Vec<Step>, Vec<NodeIndex>) = steps.into_iter().unzip();
    let waves = order(&steps, &nodes, desired, observed);
    let items = items::summarize(&steps, desired, observed);
    Plan {
        lab: desired.lab.clone(),
        steps,
        waves,
        items,
    }
}

/// Both graphs' resources side by side, matched by identity in one ordered walk.
type Entry<'g> = Option<(NodeIndex, &'g Resource)>;

fn pair_up<'g>(desired: &'g Graph, observed: &'g Graph) -> Vec<(Entry<'g>, Entry<'g>)> {
    let mut out = Vec::with_capacity(desired.len().max(observed.len()));
    let mut want = desired.entries().peekable();
    let mut have = observed.entries().peekable();
    loop {
        let order = match (want.peek(), have.peek()) {
            (None, None) => break,
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (Some(w), Some(h)) => w.1.id.cmp(&h.1.id),
        };
        out.push(match order {
            std::cmp::Ordering::Less => (want.next(), None),
            std::cmp::Ordering::Greater => (None, have.next()),
            std::cmp::Ordering::Equal => (want.next(), have.next()),
        });
    }
    out
}

fn step(op: Op, r: &Resource, changes: Vec<Change>, replace: Option<String>) -> Step {
    Step {
        op,
        id: r.id.clone(),
        resource: r.clone(),
        changes,
        replace,
        before: None,
    }
}

/// A replaced resource takes everything living in it along (a new root filesystem means the
/// files in it are written again and the container on it restarts).
fn cascade_replacements<'g>(
    desired: &'g Graph,
    observed: &'g Graph,
    verdicts: &mut BTreeMap<&'g ResourceId, Verdict>,
) {
    let mut work: Vec<&ResourceId> = verdicts
        .iter()
        .filter(|(_, v)| matches!(v, Verdict::Replace(..)))
        .map(|(id, _)| *id)
        .collect();
    while let Some(parent) = work.pop() {
        let children = observed
            .dependents(parent)
            .into_iter()
            .chain(desired.dependents(parent));
        for (child, dep) in children {
            if dep != Dep::LivesIn || !desired.contains(child) || !observed.contains(child) {
                continue;
            }
            let child = desired.get(child).map(|r| &r.id).expect("checked above");
            if matches!(verdicts.get(child), Some(Verdict::Replace(..))) {
                continue;
            }
            let changes = match verdicts.remove(child) {
                Some(Verdict::Update(c)) => c,
                _ => Vec::new(),
            };
            let why = format!("{} {} is replaced", parent.kind.as_str(), parent.name);
            verdicts.insert(child, Verdict::Replace(why, changes));
            work.push(child);
        }
    }
}

/// Orders the steps into waves: creates and updates after what they need, destroys before
/// what they needed, a replacement's destroy before its create, and a name freed before it
/// is taken again. `nodes[i]` is step i's node in its graph, so no lookup by name is needed.
fn order(
    steps: &[Step],
    nodes: &[NodeIndex],
    desired: &Graph,
    observed: &Graph,
) -> Vec<Vec<usize>> {
    let mut dag: DiGraph<usize, ()> = DiGraph::with_capacity(steps.len(), steps.len() * 2);
    let dag_nodes: Vec<_> = (0..steps.len()).map(|i| dag.add_node(i)).collect();
    // The step (if any) of each node: destroys by observed node, the others by desired node.
    let mut destroy_of = vec![None; observed.handle_bound()];
    let mut make_of = vec![None; desired.handle_bound()];
    for (i, s) in steps.iter().enumerate() {
        let table = if s.op == Op::Destroy {
            &mut destroy_of
        } else {
            &mut make_of
        };
        table[nodes[i].index()] = Some(i);
    }
    let mut edges: Vec<(usize, usize)> = Vec::new();
    for (i, s) in steps.iter().enumerate() {
        match s.op {
            Op::Destroy => {
                // Whatever stood on it goes first, or moves away first (an update); a
                // dependent made anew comes after, through its own dependencies.
                for (dependent, _) in observed.neighbors_of(nodes[i], true) {
                    if let Some(j) = destroy_of[dependent.index()] {
                        edges.push((j, i));
                    }
                    let moved = observed
                        .get_at(dependent)
                        .and_then(|r| desired.handle(&r.id));
                    if let Some(j) = moved.and_then(|m| make_of[m.index()])
                        && steps[j].op == Op::Update
                    {
                        edges.push((j, i));
                    }
                }
            }
            Op::Create | Op::Update => {
                for (dep, _) in desired.neighbors_of(nodes[i], false) {
                    if let Some(j) = make_of[dep.index()] {
                        edges.push((j, i));
                    }
                }
                if s.replace.is_some()
                    && let Some(j) = observed.handle(&s.id).and_then(|o| destroy_of[o.index()])
                {
                    edges.push((j, i));
                }
            }
        }
    }
    // Names (an interface, a host device) freed by a destroy before they are taken again.
    let mut released: HashMap<(String, String), Vec<usize>> = HashMap::new();
    for (i, s) in steps
        .iter()
        .enumerate()
        .filter(|(_, s)| s.op == Op::Destroy)
    {
        for claim in s.resource.spec.claims() {
            released.entry(claim).or_default().push(i);
        }
    }
    if !released.is_empty() {
        for (i, s) in steps
            .iter()
            .enumerate()
            .filter(|(_, s)| s.op != Op::Destroy)
        {
            for claim in s.resource.spec.claims() {
                for &j in released.get(&claim).into_iter().flatten() {
                    edges.push((j, i));
                }
            }
        }
    }
    // Parallel edges are harmless to the sort; deduplicating them (update_edge) would scan
    // the thousands of edges of a step like the switch namespace's, once per edge.
    for (a, b) in edges {
        if a != b {
            dag.add_edge(dag_nodes[a], dag_nodes[b], ());
        }
    }
    waves(&dag)
}

/// Groups a DAG's nodes by the length of the longest path that reaches them.
fn waves(dag: &DiGraph<usize, ()>) -> Vec<Vec<usize>> {
    let sorted = petgraph::algo::toposort(dag, None).expect("plans have no cycles");
    let mut level = vec![0usize; dag.node_count()];
    for n in &sorted {
        for m in dag.neighbors(*n) {
            level[m.index()] = level[m.index()].max(level[n.index()] + 1);
        }
    }
    let mut out: Vec<BTreeSet<usize>> = Vec::new();
    for n in sorted {
        let l = level[n.index()];
        if out.len() <= l {
            out.resize(l + 1, BTreeSet::new());
        }
        out[l].insert(dag[n]);
    }
    out.into_iter().map(|s| s.into_iter().collect()).collect()
}

/// Plays a plan on a model of the observed lab, checking that every step finds what it
/// needs, as the executor would on the real host. Used by the tests to prove plans right.
pub fn simulate(plan: &Plan, observed: &Graph, desired: &Graph) -> Result<Graph, String> {
    let mut g = observed.clone();
    for wave in &plan.waves {
        // Within a wave, steps may run in any order: check each against the state before it.
        let before = g.clone();
        for &i in wave {
            let s = &plan.steps[i];
            match s.op {
                Op::Destroy => {
                    // Only what lives in it cannot outlast it; `After` orders creation only.
                    let inside = before
                        .dependents(&s.id)
                        .into_iter()
                        .find(|(_, d)| *d == Dep::LivesIn);
                    if let Some((d, _)) = inside {
                        return Err(format!("{} destroyed while {} lives in it", s.id, d));
                    }
                    g.remove(&s.id)
                        .ok_or_else(|| format!("{} destroyed but absent", s.id))?;
                }
                Op::Create | Op::Update => {
                    if (s.op == Op::Create) == before.contains(&s.id) {
                        return Err(format!("{:?} of {} in the wrong state", s.op, s.id));
                    }
                    for (dep, _) in desired.deps(&s.id) {
                        if !before.contains(dep) || dep_pending(plan, wave, dep) {
                            return Err(format!("{} made before {}", s.id, dep));
                        }
                    }
                    g.insert(s.resource.clone());
                    g.clear_deps(&s.id);
                }
            }
        }
        // Edges follow the desired graph for everything made or changed in this wave.
        for &i in wave {
            let s = &plan.steps[i];
            if s.op != Op::Destroy {
                for (dep, kind) in desired.deps(&s.id) {
                    g.depend(&s.id, dep, kind);
                }
            }
        }
    }
    Ok(g)
}

fn dep_pending(plan: &Plan, wave: &[usize], dep: &ResourceId) -> bool {
    wave.iter()
        .any(|&j| plan.steps[j].id == *dep && plan.steps[j].op != Op::Destroy)
}

/// The items of `g` grouped, for the item-level view.
pub(crate) fn by_item(g: &Graph) -> HashMap<&Item, Vec<&Resource>> {
    let mut out: HashMap<&Item, Vec<&Resource>> = HashMap::with_capacity(g.len());
    for r in g.resources() {
        out.entry(&r.item).or_default().push(r);
    }
    out
}
