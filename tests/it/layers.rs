//! The layer map of `src/lib.rs` is true: each top-level module names (as `crate::…`) only
//! the modules below it, and the layers above the engine reach it through its front
//! door (the names `crate::engine` exports), never through its modules.

use std::collections::BTreeSet;
use std::path::Path;

/// Each layer and what it may use. Keep in step with the map in `src/lib.rs`.
const RULES: &[(&str, &[&str])] = &[
    ("domain", &[]),
    ("security", &["domain"]),
    ("config", &["domain"]),
    ("metrics", &["domain"]),
    ("store", &["domain", "security", "config"]),
    ("notify", &["domain", "config", "metrics"]),
    ("analytics", &["domain"]),
    ("personalization", &["domain"]),
    ("integrations", &["domain", "config"]),
    (
        "engine",
        &[
            "domain",
            "security",
            "store",
            "config",
            "metrics",
            "notify",
            "analytics",
            "personalization",
            "integrations",
        ],
    ),
    ("jobs", &["domain", "config", "engine"]),
    ("api", &["domain", "config", "metrics", "engine"]),
    ("server", &["config", "engine", "api", "jobs"]),
    ("loadgen", &["domain", "security", "personalization"]),
    (
        "cli",
        &[
            "domain",
            "config",
            "engine",
            "server",
            "jobs",
            "loadgen",
            "analytics",
            "personalization",
            "security",
        ],
    ),
];

/// Layers that may use the engine only through the names it exports.
const FRONT_DOOR_ONLY: &[&str] = &["jobs", "api", "server", "cli"];

/// Every `crate::<name>` in `text`, with what follows the name.
fn crate_paths(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("crate::") {
        let after = &rest[i + "crate::".len()..];
        let name: String = after
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        let tail: String = after[name.len()..].chars().take(400).collect();
        rest = &after[name.len()..];
        out.push((name, tail));
    }
    out
}

/// Whether what follows `crate::engine` names one of its modules: `::module::…`, or a
/// `::{…}` group with one (`crate::engine::Name` and `{A, B}` are the front door).
fn into_module(tail: &str) -> bool {
    let Some(t) = tail.strip_prefix("::") else {
        return false;
    };
    let lower = |item: &str| {
        item.trim()
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase())
    };
    match t.strip_prefix('{') {
        Some(group) => group
            .split('}')
            .next()
            .unwrap_or_default()
            .split(',')
            .any(lower),
        None => lower(t),
    }
}

fn files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn each_layer_uses_only_the_layers_below_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut broken = BTreeSet::new();
    for (layer, allowed) in RULES {
        let mut sources = Vec::new();
        let folder = src.join(layer);
        if folder.is_dir() {
            files(&folder, &mut sources);
        }
        let file = src.join(format!("{layer}.rs"));
        if file.is_file() {
            sources.push(file);
        }
        assert!(!sources.is_empty(), "layer {layer} has no sources");
        for path in sources {
            let text = std::fs::read_to_string(&path).unwrap();
            let shown = path.strip_prefix(&src).unwrap().display().to_string();
            for (name, tail) in crate_paths(&text) {
                if name == *layer {
                    continue;
                }
                if !allowed.contains(&name.as_str()) {
                    broken.insert(format!("{shown}: {layer} uses crate::{name}"));
                }
                if name == "engine" && FRONT_DOOR_ONLY.contains(layer) && into_module(&tail) {
                    let path: String = tail.chars().take_while(|c| *c != ';').collect();
                    broken.insert(format!("{shown}: {layer} reaches into crate::engine{path}"));
                }
            }
        }
    }
    assert!(broken.is_empty(), "layer map broken:\n{}", {
        let v: Vec<_> = broken.into_iter().collect();
        v.join("\n")
    });
}

#[test]
fn the_checker_sees_a_breach() {
    let found =
        crate_paths("use crate::engine::user::UserActor;\nlet x = crate::domain::ids::UserId;");
    assert_eq!(found[0].0, "engine");
    assert!(found[0].1.starts_with("::user"));
    assert_eq!(found[1].0, "domain");
    assert!(into_module(&found[0].1));
    assert!(!into_module("::UserManager;"));
    assert!(!into_module("::{Principal, UserSession};"));
    assert!(into_module("::{Principal, events::Realtime};"));
}
