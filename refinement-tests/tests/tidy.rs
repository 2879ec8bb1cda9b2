//! Repository hygiene: every Rust file says what it owns, and every action and invariant the
//! model defines is documented in `spec/PROTOCOL.md` under the same name.

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
    for a in zab_model::action::TLA_NAMES {
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
