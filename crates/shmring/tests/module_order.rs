//! The crate's modules depend on each other in one direction: every `use crate::x…` and
//! every `crate::x::` path in `src/` names a module that `docs/ARCHITECTURE.md` lists *before*
//! the module it is written in ("The order of the modules"), and no two modules import each
//! other, directly or through others.
//!
//! A module is a file directly under `src/` or a directory there (`ring/` with everything
//! in it is the module `ring`); `lib.rs` is the crate root `lib`, and a path to an item of the
//! root (`crate::Channel`, `crate::Result`) counts as an import of `lib`, and the root imports
//! every module it declares. Comments are not
//! code: a doc link to a higher module is no import.
#![cfg(not(loom))] // reads files; nothing to model

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

const DOC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/ARCHITECTURE.md");
const SRC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src");
/// The line after which ARCHITECTURE.md lists the modules, lowest layer first.
const MARKER: &str = "<!-- module-order -->";

/// The module order stated in ARCHITECTURE.md: the numbered list after [`MARKER`], one
/// `` `module` `` at the start of each item.
fn stated_order() -> Vec<String> {
    let doc = fs::read_to_string(DOC).expect("read docs/ARCHITECTURE.md");
    let after = doc
        .split_once(MARKER)
        .unwrap_or_else(|| panic!("docs/ARCHITECTURE.md has no {MARKER} line"))
        .1;
    let mut order = Vec::new();
    for line in after.lines().skip_while(|l| l.trim().is_empty()) {
        let Some((num, rest)) = line.trim().split_once(". `") else {
            break; // the list ends at the first line that is not an item
        };
        assert!(
            num.chars().all(|c| c.is_ascii_digit()),
            "not a list item: {line:?}"
        );
        let name = rest.split('`').next().unwrap();
        order.push(name.to_owned());
    }
    assert!(
        order.len() > 3,
        "the module list after {MARKER} is too short: {order:?}"
    );
    order
}

/// Every `.rs` file under `dir`, with the top-level module it belongs to.
fn files(dir: &Path, module: Option<&str>, out: &mut Vec<(String, String)>) {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .expect("read src/")
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        let stem = path.file_stem().unwrap().to_str().unwrap().to_owned();
        if path.is_dir() {
            files(&path, Some(module.unwrap_or(&stem)), out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let m = module.map_or(stem, str::to_owned);
            out.push((m, path.to_str().unwrap().to_owned()));
        }
    }
}

/// The code of a file without its comments (`//` to the end of the line; the sources have no
/// block comments) and string literals.
fn code_of(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let mut in_str = false;
        let mut prev = ' ';
        let mut kept = String::new();
        let mut chars = line.chars().peekable();
        while let Some(c) = chars.next() {
            if in_str {
                if c == '"' && prev != '\\' {
                    in_str = false;
                }
                prev = if prev == '\\' && c == '\\' { ' ' } else { c };
                continue;
            }
            if c == '/' && chars.peek() == Some(&'/') {
                break;
            }
            if c == '"' {
                in_str = true;
                prev = ' ';
                continue;
            }
            kept.push(c);
        }
        out.push_str(&kept);
        out.push('\n');
    }
    out
}

/// The modules a file's code names: `crate::x` anywhere (a `use` line or a path), and each
/// name inside `use crate::{x, y::z}`. `x` is kept as written (a module or a root item).
fn imports(code: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        // Not part of a longer identifier (`$crate::` is a macro's own crate: the same thing).
        let before = rest[..i].chars().next_back();
        rest = &rest[i + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').expect("a closed use group");
            for part in group[..end].split(',') {
                let name: String = part
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    found.push(name);
                }
            }
            continue;
        }
        let name: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if !name.is_empty() {
            found.push(name);
        }
    }
    found
}

/// Module → the other modules it imports, with the file of each import.
fn graph() -> BTreeMap<String, BTreeMap<String, String>> {
    let mut list = Vec::new();
    files(Path::new(SRC), None, &mut list);
    let modules: BTreeSet<String> = list.iter().map(|(m, _)| m.clone()).collect();
    let mut graph: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for (module, path) in &list {
        let text = fs::read_to_string(path).unwrap();
        let deps = graph.entry(module.clone()).or_default();
        let code = code_of(&text);
        let mut names = imports(&code);
        if module == "lib" {
            // The root uses the modules it declares by their own names (`pub use ring::…`).
            names.extend(
                modules
                    .iter()
                    .filter(|m| code.contains(&format!("mod {m};")))
                    .cloned(),
            );
        }
        for name in names {
            // `crate::Channel`, `crate::Result`: items of the root.
            let target = if modules.contains(&name) {
                name
            } else {
                "lib".to_owned()
            };
            if &target != module {
                let short = path.rsplit_once("/src/").unwrap().1.to_owned();
                deps.entry(target).or_insert(short);
            }
        }
    }
    graph
}

/// A cycle in `graph` as the modules along it, if there is one.
fn find_cycle(graph: &BTreeMap<String, BTreeMap<String, String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeMap<String, String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == node) {
            let mut cycle = path[i..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for dep in graph.get(node).into_iter().flat_map(|d| d.keys()) {
            if let Some(c) = visit(dep, graph, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    for node in graph.keys() {
        if let Some(c) = visit(node, graph, &mut Vec::new(), &mut done) {
            return Some(c);
        }
    }
    None
}

#[test]
fn the_parser_sees_imports_and_cycles() {
    // The checks below can only fail if these hold.
    let code = code_of(
        "use crate::a::X;\nuse crate::{b, c::Y};\nlet z = crate::d::f(); // crate::e\n\
         let s = \"crate::f\";\n$crate::g::h();\n",
    );
    assert_eq!(imports(&code), ["a", "b", "c", "d", "g"]);
    let edge = |a: &str, b: &str| {
        (
            a.to_owned(),
            BTreeMap::from([(b.to_owned(), String::new())]),
        )
    };
    let cyclic = BTreeMap::from([edge("x", "y"), edge("y", "z"), edge("z", "x")]);
    assert_eq!(find_cycle(&cyclic).unwrap(), ["x", "y", "z", "x"]);
    let acyclic = BTreeMap::from([edge("x", "y"), edge("y", "z")]);
    assert_eq!(find_cycle(&acyclic), None);
}

#[test]
fn no_module_imports_against_the_stated_order() {
    let order = stated_order();
    let rank: BTreeMap<&str, usize> = order
        .iter()
        .enumerate()
        .map(|(i, m)| (m.as_str(), i))
        .collect();
    assert_eq!(rank.len(), order.len(), "a module listed twice: {order:?}");
    let graph = graph();
    let mut problems = Vec::new();
    for module in graph.keys() {
        if !rank.contains_key(module.as_str()) {
            problems.push(format!(
                "module `{module}` is missing from the order in docs/ARCHITECTURE.md"
            ));
        }
    }
    for listed in &order {
        if !graph.contains_key(listed) {
            problems.push(format!(
                "docs/ARCHITECTURE.md lists `{listed}`, which is not a module of src/"
            ));
        }
    }
    for (module, deps) in &graph {
        let Some(&here) = rank.get(module.as_str()) else {
            continue;
        };
        for (dep, file) in deps {
            if rank.get(dep.as_str()).is_some_and(|&there| there > here) {
                problems.push(format!(
                    "{file}: module `{module}` imports `{dep}`, which docs/ARCHITECTURE.md \
                     puts above it"
                ));
            }
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

#[test]
fn no_import_cycle() {
    let graph = graph();
    if let Some(cycle) = find_cycle(&graph) {
        let steps: Vec<String> = cycle
            .windows(2)
            .map(|w| format!("{} -> {} (in {})", w[0], w[1], graph[&w[0]][&w[1]]))
            .collect();
        panic!("import cycle: {}", steps.join(", "));
    }
}
