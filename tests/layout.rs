//! The crate's layout rules, checked from the source text: no two top-level modules depend on each
//! other, directly or through others (design.md: "Dependencies point down this table's data flow").
//!
//! A dependency is a `crate::<module>` path in non-test code: a file's text before its first
//! `#[cfg(test)]`, comments left out, and files that are test modules (`#[cfg(test)] mod x;`)
//! skipped entirely.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

type Graph = BTreeMap<String, BTreeSet<String>>;

#[test]
fn no_top_level_modules_depend_on_each_other() {
    let graph = dependency_graph(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    assert!(
        graph.len() >= 10,
        "expected every top-level module in the graph, got {graph:?}"
    );
    if let Some(cycle) = find_cycle(&graph) {
        panic!(
            "top-level modules import each other: {}\nfull graph: {graph:#?}",
            cycle.join(" -> ")
        );
    }
}

#[test]
fn the_cycle_finder_names_a_cycle_through_several_modules() {
    let graph = graph_of(&[
        ("ingest", &["forward", "exposition"]),
        ("exposition", &["prompb"]),
        ("forward", &["queue", "scrape"]),
        ("scrape", &["ingest"]),
        ("queue", &[]),
        ("prompb", &[]),
    ]);
    assert_eq!(
        find_cycle(&graph),
        Some(
            vec!["forward", "scrape", "ingest", "forward"]
                .into_iter()
                .map(String::from)
                .collect()
        )
    );
}

#[test]
fn the_cycle_finder_accepts_a_layered_graph() {
    let graph = graph_of(&[
        ("server", &["ingest", "scrape", "admin"]),
        ("admin", &["scrape", "forward"]),
        ("ingest", &["forward", "exposition"]),
        ("scrape", &["forward", "exposition"]),
        ("forward", &["queue"]),
        ("exposition", &[]),
        ("queue", &[]),
    ]);
    assert_eq!(find_cycle(&graph), None);
}

#[test]
fn comments_and_test_code_are_not_dependencies() {
    let text = "//! Used by [`crate::scrape`].\nuse crate::prompb::Label;\n/// See crate::admin.\n\
                fn f() { crate::util::now_ms(); }\n#[cfg(test)]\nmod tests { use crate::queue; }\n";
    let refs: BTreeSet<String> = crate_references(non_test_code(text)).collect();
    assert_eq!(refs, ["prompb", "util"].map(String::from).into());
}

fn graph_of(edges: &[(&str, &[&str])]) -> Graph {
    edges
        .iter()
        .map(|(from, to)| (from.to_string(), to.iter().map(|t| t.to_string()).collect()))
        .collect()
}

/// Top-level module of every non-test source file under `src`, mapped to the other top-level
/// modules it names.
fn dependency_graph(src: &Path) -> Graph {
    let mut files = Vec::new();
    collect_rs_files(src, &mut files);
    let test_files = test_module_files(&files);
    let mut graph = Graph::new();
    for file in &files {
        let rel = file.strip_prefix(src).expect("under src");
        let top = match rel.components().next() {
            Some(c) => c
                .as_os_str()
                .to_string_lossy()
                .trim_end_matches(".rs")
                .to_owned(),
            None => continue,
        };
        if top == "lib" || top == "main" {
            continue;
        }
        let deps = graph.entry(top.clone()).or_default();
        if test_files.contains(file) {
            continue;
        }
        let text = fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        deps.extend(crate_references(non_test_code(&text)).filter(|m| *m != top));
    }
    graph
}

fn collect_rs_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            collect_rs_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Files declared as `#[cfg(test)] mod name;`: `name.rs` or `name/mod.rs` beside the declaring
/// file (in its folder when the declaring file is a `mod.rs`, `lib.rs` or `main.rs`).
fn test_module_files(files: &[PathBuf]) -> BTreeSet<PathBuf> {
    let mut out = BTreeSet::new();
    for file in files {
        let text = fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let stem = file.file_stem().expect("file name").to_string_lossy();
        let parent = file.parent().expect("in a folder");
        let dir = if matches!(stem.as_ref(), "mod" | "lib" | "main") {
            parent.to_path_buf()
        } else {
            parent.join(stem.as_ref())
        };
        let mut lines = text.lines().map(str::trim);
        while let Some(line) = lines.next() {
            if line != "#[cfg(test)]" {
                continue;
            }
            let Some(next) = lines.next() else { break };
            if let Some(name) = next.strip_prefix("mod ").and_then(|r| r.strip_suffix(';')) {
                out.insert(dir.join(format!("{name}.rs")));
                out.insert(dir.join(name).join("mod.rs"));
            }
        }
    }
    out
}

/// The text before the first `#[cfg(test)]`, without comment lines.
fn non_test_code(text: &str) -> String {
    let code = text.split("#[cfg(test)]").next().unwrap_or("");
    code.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .map(|l| l.split(" // ").next().unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The `<module>` of every `crate::<module>` in `code`.
fn crate_references(code: String) -> impl Iterator<Item = String> {
    let mut found = Vec::new();
    let mut rest = code.as_str();
    while let Some(at) = rest.find("crate::") {
        let preceded_by_ident = rest[..at]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_alphanumeric() || c == '_');
        rest = &rest[at + "crate::".len()..];
        let end = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        if !preceded_by_ident && end > 0 {
            found.push(rest[..end].to_owned());
        }
    }
    found.into_iter()
}

/// A cycle as `a -> b -> ... -> a`, if the graph has one (depth-first, in name order).
fn find_cycle(graph: &Graph) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &Graph,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|n| n == node) {
            let mut cycle = path[start..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}
