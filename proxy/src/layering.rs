//! A test that the crate's modules import each other in one direction only (no cycles).
//!
//! Each file's `crate::`, `super::` and `self::` paths, and `use child::` lines in a
//! `mod.rs`, name the modules it depends on (its `mod tests` excluded); `lib.rs` only
//! declares and re-exports, so it is left out. The graph must have no cycle.
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

type Graph = BTreeMap<String, BTreeSet<String>>;

/// Module path (`http1::head`) of a file under `src/`.
fn module_of(rel: &Path) -> String {
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    if parts.last().is_some_and(|p| p == "mod" || p == "lib") {
        parts.pop();
    }
    parts.join("::")
}

fn read_modules(dir: &Path, root: &Path, out: &mut BTreeMap<String, String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            read_modules(&path, root, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let src = std::fs::read_to_string(&path).unwrap();
            out.insert(module_of(path.strip_prefix(root).unwrap()), src);
        }
    }
}

/// The module a path like `crate::http1::ReqBody` or `super::conn::Io` lives in.
fn resolve(mods: &BTreeMap<String, String>, cur: &str, path: &[&str]) -> Option<String> {
    let cur: Vec<&str> = cur.split("::").filter(|s| !s.is_empty()).collect();
    let (mut base, rest): (Vec<&str>, &[&str]) = match *path.first()? {
        "crate" => (Vec::new(), &path[1..]),
        "super" => (cur[..cur.len().saturating_sub(1)].to_vec(), &path[1..]),
        "self" => (cur.clone(), &path[1..]),
        _ => (cur.clone(), path),
    };
    let floor = base.len();
    base.extend_from_slice(rest);
    (floor + 1..=base.len())
        .rev()
        .map(|n| base[..n].join("::"))
        .find(|m| mods.contains_key(m))
}

/// Every `crate::`, `super::` or `self::` path in `src`, brace groups expanded one level.
fn paths(src: &str) -> Vec<Vec<&str>> {
    let mut out = Vec::new();
    let is_ident = |c: char| c.is_alphanumeric() || c == '_';
    for (i, _) in src.match_indices("::") {
        let head_start = src[..i].rfind(|c: char| !is_ident(c)).map_or(0, |j| j + 1);
        let head = &src[head_start..i];
        if !matches!(head, "crate" | "super" | "self") {
            continue;
        }
        let tail = &src[i + 2..];
        let end = tail
            .find(|c: char| !(is_ident(c) || c == ':'))
            .unwrap_or(tail.len());
        let mut p = vec![head];
        p.extend(tail[..end].split("::").filter(|s| !s.is_empty()));
        if tail[end..].starts_with('{') {
            let group = &tail[end + 1..tail[end..].find('}').map_or(end + 1, |j| end + j)];
            for item in group.split(',') {
                let item = item.trim().split([' ', ':']).next().unwrap_or("");
                if !item.is_empty() {
                    let mut q = p.clone();
                    q.push(item);
                    out.push(q);
                }
            }
        }
        out.push(p);
    }
    out
}

fn graph() -> Graph {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut mods = BTreeMap::new();
    read_modules(&root, &root, &mut mods);
    let mut g = Graph::new();
    for (m, src) in mods.iter().filter(|(m, _)| !m.is_empty()) {
        let src = src.split("#[cfg(test)]\nmod tests").next().unwrap_or("");
        let mut deps = BTreeSet::new();
        for p in paths(src) {
            deps.extend(resolve(&mods, m, &p));
        }
        // `use child::Item;` in a `mod.rs`.
        for line in src.lines() {
            let line = line.trim_start();
            let line = line.strip_prefix("pub(crate) ").unwrap_or(line);
            if let Some(rest) = line.strip_prefix("use ") {
                let first = rest.split("::").next().unwrap_or("");
                let child = format!("{m}::{first}");
                if mods.contains_key(&child) {
                    deps.insert(child);
                }
            }
        }
        deps.retain(|d| d != m && !d.is_empty());
        g.insert(m.clone(), deps);
    }
    g
}

/// A cycle of `g`, if there is one (its first module repeated at its end).
fn cycle(g: &Graph) -> Option<Vec<String>> {
    fn visit(g: &Graph, u: &str, stack: &mut Vec<String>, done: &mut BTreeSet<String>) -> bool {
        if let Some(i) = stack.iter().position(|s| s == u) {
            stack.drain(..i);
            stack.push(u.to_string());
            return true;
        }
        if done.contains(u) {
            return false;
        }
        stack.push(u.to_string());
        for v in g.get(u).into_iter().flatten() {
            if visit(g, v, stack, done) {
                return true;
            }
        }
        stack.pop();
        done.insert(u.to_string());
        false
    }
    let mut done = BTreeSet::new();
    for u in g.keys() {
        let mut stack = Vec::new();
        if visit(g, u, &mut stack, &mut done) {
            return Some(stack);
        }
    }
    None
}

#[test]
fn modules_import_in_one_direction() {
    let g = graph();
    // The request path, in order: each imports the next, never back.
    for (from, to) in [
        ("server", "handle"),
        ("handle", "forward"),
        ("forward", "pool"),
        ("pool", "http1"),
        ("response", "pool"),
    ] {
        assert!(g[from].contains(to), "{from} -> {to}: {g:#?}");
    }
    assert_eq!(cycle(&g), None, "{g:#?}");
}

#[test]
fn the_cycle_check_finds_a_cycle() {
    let mut g = graph();
    g.get_mut("http1").unwrap().insert("forward".into());
    let c = cycle(&g).expect("a cycle");
    assert_eq!(c.first(), c.last());
    assert!(c.contains(&"forward".to_string()), "{c:?}");
}
