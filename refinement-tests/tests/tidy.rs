//! Repository hygiene: every Rust file says what it owns, every action and invariant the
//! model defines is documented in `spec/PROTOCOL.md` under the same name, no crate has an
//! import cycle, and the server's protocol core names its role state as the model does.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable dir") {
        let path = entry.expect("dir entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if path.is_dir() {
            if !matches!(name, "target" | ".git" | ".venv") && !name.starts_with('.') {
                rust_files(&path, out);
            }
        } else if name.ends_with(".rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_rust_file_opens_with_a_module_doc() {
    let mut files = Vec::new();
    rust_files(&root(), &mut files);
    assert!(files.len() > 10);
    let missing: Vec<_> = files
        .iter()
        .filter(|f| {
            !std::fs::read_to_string(f)
                .unwrap_or_default()
                .starts_with("//!")
        })
        .collect();
    assert!(
        missing.is_empty(),
        "files without a `//!` first line: {missing:?}"
    );
}

#[test]
fn every_action_and_invariant_is_in_protocol_md() {
    let protocol = std::fs::read_to_string(root().join("spec/PROTOCOL.md")).expect("PROTOCOL.md");
    for a in zab_spec::ActionKind::model_actions().map(zab_spec::ActionKind::tla_name) {
        assert!(
            protocol.contains(&format!("**{a}(")) || protocol.contains(&format!("`{a}`")),
            "{a}"
        );
    }
    let ids = zab_model::invariants::invariants::<zab_spec::ZnodeTxn>()
        .into_iter()
        .chain(zab_model::invariants::examples())
        .map(|i| i.id);
    for id in ids {
        assert!(
            protocol.contains(&format!("| `{id}` |")),
            "invariant {id} not in PROTOCOL.md"
        );
    }
}

// ----- no import cycles ------------------------------------------------------------------

/// A module path inside a crate (`["service", "queue"]`).
type ModPath = Vec<String>;

/// The module path of a source file under `src/` (`a/mod.rs` and `a.rs` are `a`).
fn module_of(src: &Path, file: &Path) -> ModPath {
    let rel = file.strip_prefix(src).expect("under src");
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

/// The text without comments (doc links name modules without importing them).
fn strip_comments(text: &str) -> String {
    text.lines()
        .map(|l| l.find("//").map_or(l, |k| &l[..k]))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The production part of a file's text (without its `#[cfg(test)] mod … { … }` blocks),
/// and the names of the test-only submodules it declares (`#[cfg(test)] mod name;`): test
/// code may reach any module, the graph that must stay acyclic is the one that ships.
fn production_text(text: &str) -> (String, Vec<String>) {
    let mut out = String::new();
    let mut test_mods = Vec::new();
    let mut rest = text;
    while let Some(k) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..k]);
        let after = rest[k + "#[cfg(test)]".len()..].trim_start();
        let item = after.strip_prefix("pub ").unwrap_or(after);
        let Some(decl) = item.strip_prefix("mod ") else {
            rest = &rest[k + "#[cfg(test)]".len()..];
            continue;
        };
        let name: String = decl
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        let decl = decl[name.len()..].trim_start();
        if let Some(tail) = decl.strip_prefix(';') {
            test_mods.push(name);
            rest = tail;
        } else if let Some(body) = decl.strip_prefix('{') {
            let mut depth = 1;
            let mut end = body.len();
            for (i, c) in body.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    _ => {}
                }
                if depth == 0 {
                    end = i + 1;
                    break;
                }
            }
            rest = &body[end..];
        } else {
            rest = decl;
        }
    }
    out.push_str(rest);
    (out, test_mods)
}

/// Parses a use tree at the start of `s` (`a::b`, `a::{b, c::d}`, `*`) into paths.
fn use_tree(s: &str) -> (Vec<ModPath>, usize) {
    let bytes = s.as_bytes();
    let mut i = 0;
    let mut prefix: ModPath = Vec::new();
    loop {
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        if i < bytes.len() && bytes[i] == b'{' {
            i += 1;
            let mut out = Vec::new();
            loop {
                let (paths, used) = use_tree(&s[i..]);
                i += used;
                out.extend(paths.into_iter().map(|p| [prefix.clone(), p].concat()));
                while i < bytes.len() && (bytes[i].is_ascii_whitespace() || bytes[i] == b',') {
                    i += 1;
                }
                if i >= bytes.len() || bytes[i] == b'}' {
                    return (out, i + 1);
                }
            }
        }
        let start = i;
        while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
            i += 1;
        }
        if i == start {
            return (vec![prefix], i);
        }
        prefix.push(s[start..i].to_string());
        if s[i..].starts_with("::") {
            i += 2;
        } else {
            return (vec![prefix], i);
        }
    }
}

/// Every module path `file` names through `crate::` or `super::`, made absolute.
fn references(module: &[String], text: &str) -> Vec<ModPath> {
    let text = strip_comments(text);
    // `super` of `a/b.rs` is `a`; of `a/mod.rs` and `a.rs` (module `a`) the crate root.
    let parent = module[..module.len().saturating_sub(1)].to_vec();
    let mut out = Vec::new();
    for (key, base) in [("crate::", Vec::new()), ("super::", parent)] {
        let mut from = 0;
        while let Some(k) = text[from..].find(key) {
            let at = from + k;
            from = at + key.len();
            let boundary = at == 0 || {
                let c = text.as_bytes()[at - 1];
                !(c.is_ascii_alphanumeric() || c == b'_' || c == b':')
            };
            if boundary {
                let (paths, _) = use_tree(&text[from..]);
                out.extend(paths.into_iter().map(|p| [base.clone(), p].concat()));
            }
        }
    }
    out
}

/// Finds a cycle in `edges`, if any, as the list of its nodes.
fn find_cycle(
    edges: &std::collections::BTreeMap<ModPath, std::collections::BTreeSet<ModPath>>,
) -> Option<Vec<ModPath>> {
    fn visit(
        n: &[String],
        edges: &std::collections::BTreeMap<ModPath, std::collections::BTreeSet<ModPath>>,
        state: &mut std::collections::BTreeMap<ModPath, u8>,
        stack: &mut Vec<ModPath>,
    ) -> Option<Vec<ModPath>> {
        state.insert(n.to_vec(), 1);
        stack.push(n.to_vec());
        for m in edges.get(n).into_iter().flatten() {
            match state.get(m) {
                Some(1) => {
                    let k = stack.iter().position(|x| x == m).unwrap_or(0);
                    return Some(stack[k..].to_vec());
                }
                Some(_) => {}
                None => {
                    if let Some(c) = visit(m, edges, state, stack) {
                        return Some(c);
                    }
                }
            }
        }
        stack.pop();
        state.insert(n.to_vec(), 2);
        None
    }
    let mut state = std::collections::BTreeMap::new();
    for n in edges.keys() {
        if !state.contains_key(n) {
            if let Some(c) = visit(n, edges, &mut state, &mut Vec::new()) {
                return Some(c);
            }
        }
    }
    None
}

/// The import graph of one crate, at two levels: its top-level modules, and the files of
/// each directory module among themselves (a file's parent `mod.rs` does not count: Rust
/// nests a directory's files in it).
fn import_cycles(krate: &str) -> Vec<String> {
    use std::collections::{BTreeMap, BTreeSet};
    let src = root().join(krate).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.retain(|f| !f.starts_with(src.join("bin")));
    let mut texts = BTreeMap::new();
    let mut test_only: BTreeSet<ModPath> = BTreeSet::new();
    for f in &files {
        let m = module_of(&src, f);
        let (text, test_mods) =
            production_text(&std::fs::read_to_string(f).expect("readable source"));
        test_only.extend(test_mods.into_iter().map(|t| [m.clone(), vec![t]].concat()));
        texts.insert(f.clone(), text);
    }
    // Test-only modules and everything under them are left out.
    files.retain(|f| {
        let m = module_of(&src, f);
        !(1..=m.len()).any(|k| test_only.contains(&m[..k]))
    });
    let modules: BTreeSet<ModPath> = files.iter().map(|f| module_of(&src, f)).collect();
    let mut levels: [BTreeMap<ModPath, BTreeSet<ModPath>>; 2] = Default::default();
    for f in &files {
        let m = module_of(&src, f);
        if m.is_empty() {
            continue;
        }
        for r in references(&m, &texts[f]) {
            // The longest prefix that is a module (a file) of the crate.
            let Some(t) = (1..=r.len())
                .rev()
                .map(|k| r[..k].to_vec())
                .find(|p| modules.contains(p))
            else {
                continue;
            };
            if m[0] != t[0] {
                levels[0]
                    .entry(m[..1].to_vec())
                    .or_default()
                    .insert(t[..1].to_vec());
            } else if m.len() >= 2 && t.len() >= 2 && m[1] != t[1] {
                levels[1]
                    .entry(m[..2].to_vec())
                    .or_default()
                    .insert(t[..2].to_vec());
            }
        }
    }
    levels
        .iter()
        .filter_map(find_cycle)
        .map(|c| {
            let names: Vec<String> = c.iter().chain(c.first()).map(|p| p.join("::")).collect();
            format!("{krate}: {}", names.join(" -> "))
        })
        .collect()
}

#[test]
fn the_module_import_graph_of_every_crate_is_acyclic() {
    let cycles: Vec<String> = ["spec", "zk", "model", "impl", "refinement-tests", "bench"]
        .into_iter()
        .flat_map(import_cycles)
        .collect();
    assert!(cycles.is_empty(), "import cycles: {cycles:#?}");
}

#[test]
fn the_import_cycle_check_finds_a_cycle() {
    // `a` names `b` in a grouped use, `b` names `a` in an expression: a cycle.
    let a = references(&["a".into()], "use crate::{b::X, c};\n// crate::d\n");
    assert!(a.contains(&vec!["b".to_string(), "X".to_string()]));
    assert!(a.contains(&vec!["c".to_string()]));
    assert!(!a.iter().any(|p| p[0] == "d"), "comments do not count");
    let b = references(&["b".into()], "fn f() { crate::a::g() }");
    assert_eq!(b, vec![vec!["a".to_string(), "g".to_string()]]);
    let nested = references(&["s".into(), "q".into()], "use super::r::T;");
    assert_eq!(
        nested,
        vec![vec!["s".to_string(), "r".to_string(), "T".to_string()]]
    );
    let (prod, test_mods) = production_text(
        "use crate::a;\n#[cfg(test)]\nmod kit;\n#[cfg(test)]\nmod tests {\n    use crate::b;\n    fn f() {}\n}\nfn g() {}\n",
    );
    assert_eq!(test_mods, vec!["kit".to_string()]);
    assert!(prod.contains("crate::a") && prod.contains("fn g()") && !prod.contains("crate::b"));
    let mut edges = std::collections::BTreeMap::new();
    edges.insert(vec!["a".to_string()], [vec!["b".to_string()]].into());
    edges.insert(vec!["b".to_string()], [vec!["a".to_string()]].into());
    assert!(find_cycle(&edges).is_some());
    edges.remove(&vec!["b".to_string()]);
    assert!(find_cycle(&edges).is_none());
}

// ----- the server names its state as the model does ------------------------------------------

/// The `pub` fields of `struct NAME` in a Rust source text.
fn struct_fields(text: &str, decl: &str, vis: &str) -> Vec<String> {
    let Some(start) = text.find(decl) else {
        return Vec::new();
    };
    let body = &text[start..];
    let end = body.find("\n}").unwrap_or(body.len());
    body[..end]
        .lines()
        .filter_map(|l| l.trim().strip_prefix(vis))
        .filter_map(|l| l.split(':').next())
        .map(|n| n.trim().to_string())
        .filter(|n| n.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
        .collect()
}

#[test]
fn the_cores_role_state_has_the_models_names() {
    let read = |p: &str| std::fs::read_to_string(root().join(p)).expect(p);
    let model = read("model/src/state.rs");
    for (model_struct, core_file, core_struct) in [
        (
            "pub struct LeaderVars",
            "impl/src/core/leader.rs",
            "pub(crate) struct Leader",
        ),
        (
            "pub struct FollowerVars",
            "impl/src/core/follower.rs",
            "pub(crate) struct Follower",
        ),
    ] {
        let wanted = struct_fields(&model, model_struct, "pub ");
        assert!(wanted.len() >= 5, "{model_struct}: {wanted:?}");
        let core = struct_fields(&read(core_file), core_struct, "pub(crate) ");
        let missing: Vec<_> = wanted.iter().filter(|f| !core.contains(f)).collect();
        assert!(
            missing.is_empty(),
            "{core_file} `{core_struct}` lacks the model's {missing:?} (it has {core:?})"
        );
    }
}
