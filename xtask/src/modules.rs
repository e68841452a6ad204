//! The module graph must have no cycle: `cargo-modules` resolves every path
//! (imports, inline `crate::` paths, re-exports) into "uses" edges between
//! modules, and this checks the graph it prints for strongly connected
//! components (Tarjan's algorithm). A grep of `use` lines would miss inline
//! paths and re-exports.

use std::{
    collections::{BTreeMap, BTreeSet},
    process::Command,
};

use anyhow::{Result, bail};
use lab::run_quiet;

/// The crates and targets checked, as `cargo modules` selects them.
const TARGETS: &[&[&str]] = &[
    &["-p", "sensor", "--lib"],
    &["-p", "sensor", "--lib", "--cfg-test"],
    &["-p", "sensor", "--bin", "siem-sensor"],
    &["-p", "lab", "--lib"],
    &["-p", "xtask", "--bin", "xtask"],
];

/// Fails naming every cycle of modules found in any target.
///
/// # Errors
/// `cargo modules` failed, or a cycle exists.
pub fn check_acyclic() -> Result<()> {
    let mut cycles = Vec::new();
    for target in TARGETS {
        let out = run_quiet(
            Command::new("cargo")
                .args(["modules", "dependencies", "--no-externs", "--no-sysroot"])
                .args(["--no-fns", "--no-traits", "--no-types"])
                .args(*target),
        )?;
        let graph = uses_edges(&String::from_utf8_lossy(&out.stdout));
        for cycle in strongly_connected(&graph) {
            cycles.push(format!("{}: {}", target.join(" "), cycle.join(" <-> ")));
        }
    }
    if !cycles.is_empty() {
        bail!("module cycles:\n{}", cycles.join("\n"));
    }
    println!("modules: no cycle in {} targets", TARGETS.len());
    Ok(())
}

/// The "uses" edges of a `cargo modules dependencies` DOT graph:
/// `"a" -> "b" [label="uses", ...]`.
fn uses_edges(dot: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in dot.lines().filter(|l| l.contains(r#"[label="uses""#)) {
        let quoted: Vec<&str> = line.split('"').collect();
        if let [_, from, _, to, ..] = quoted[..] {
            edges
                .entry(from.to_owned())
                .or_default()
                .insert(to.to_owned());
        }
    }
    edges
}

/// Every strongly connected component of more than one node, each sorted.
fn strongly_connected(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct Tarjan<'g> {
        graph: &'g BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'g str, (usize, usize)>,
        stack: Vec<&'g str>,
        on_stack: BTreeSet<&'g str>,
        found: Vec<Vec<String>>,
    }
    impl<'g> Tarjan<'g> {
        fn visit(&mut self, v: &'g str) {
            let n = self.index.len();
            self.index.insert(v, (n, n));
            self.stack.push(v);
            self.on_stack.insert(v);
            for w in self.graph.get(v).into_iter().flatten() {
                let w = w.as_str();
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let low = self.index[w].1.min(self.index[v].1);
                    self.index.entry(v).and_modify(|e| e.1 = low);
                } else if self.on_stack.contains(w) {
                    let low = self.index[w].0.min(self.index[v].1);
                    self.index.entry(v).and_modify(|e| e.1 = low);
                }
            }
            let (number, low) = self.index[v];
            if number == low {
                let mut component = Vec::new();
                while let Some(w) = self.stack.pop() {
                    self.on_stack.remove(w);
                    component.push(w.to_owned());
                    if w == v {
                        break;
                    }
                }
                if component.len() > 1 {
                    component.sort();
                    self.found.push(component);
                }
            }
        }
    }
    let mut t = Tarjan {
        graph,
        index: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for v in graph.keys() {
        if !t.index.contains_key(v.as_str()) {
            t.visit(v);
        }
    }
    t.found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_cycle_and_nothing_in_a_tree() {
        let dot = r#"
            "a" -> "b" [label="uses", color="x"];
            "b" -> "c" [label="uses", color="x"];
            "c" -> "a" [label="uses", color="x"];
            "c" -> "d" [label="uses", color="x"];
            "a" -> "d" [label="owns", color="x"];
        "#;
        let graph = uses_edges(dot);
        assert_eq!(strongly_connected(&graph), vec![vec!["a", "b", "c"]]);
        let tree = uses_edges(r#""a" -> "b" [label="uses"]; "a" -> "c" [label="uses"];"#);
        assert!(strongly_connected(&tree).is_empty());
    }
}
