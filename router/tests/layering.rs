//! The router's modules depend on each other one way: no module imports one at its own level or above
//! (ARCHITECTURE.md, "Invariants"). A new `use crate::...` that points up or sideways fails here.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::Path;

/// Each module's level: a module may import only modules of a lower level.
const LEVELS: &[(&str, u32)] = &[
    ("reload", 0),
    ("auth", 1),
    ("cli", 1),
    ("explanation", 1),
    ("quota", 1),
    ("telemetry", 1),
    ("tls", 1),
    ("client", 2),
    ("config", 2),
    ("health", 2),
    ("metrics", 2),
    ("policy", 2),
    ("drift", 3),
    ("listen", 3),
    ("remote", 3),
    ("error", 4),
    ("request", 5),
    ("engine", 6),
    ("convert", 7),
    ("layers", 7),
    ("admin", 8),
    ("inference", 8),
    ("service", 8),
    ("server", 9),
];

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The `crate::<module>` names a source text uses.
fn crate_modules(text: &str) -> Vec<String> {
    text.match_indices("crate::")
        .map(|(at, _)| {
            text[at + "crate::".len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect()
        })
        .collect()
}

#[test]
fn dependencies_inside_the_router_point_one_way() {
    let levels: BTreeMap<&str, u32> = LEVELS.iter().copied().collect();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut violations = Vec::new();
    for file in files {
        let relative = file.strip_prefix(&src).unwrap();
        let first = relative.iter().next().unwrap().to_string_lossy();
        let module = first.trim_end_matches(".rs");
        if module == "lib" || module == "main" {
            continue;
        }
        let level = *levels
            .get(module)
            .unwrap_or_else(|| panic!("module {module} has no level in LEVELS: give it one"));
        let text = std::fs::read_to_string(&file).unwrap();
        for used in crate_modules(&text) {
            if used == module {
                continue;
            }
            let Some(&used_level) = levels.get(used.as_str()) else {
                violations.push(format!("{}: crate::{used} has no level", relative.display()));
                continue;
            };
            if used_level >= level {
                violations.push(format!(
                    "{} (level {level}) uses crate::{used} (level {used_level})",
                    relative.display()
                ));
            }
        }
    }
    assert!(
        violations.is_empty(),
        "dependencies pointing up or sideways:\n{}",
        violations.join("\n")
    );
}

#[test]
fn the_checker_sees_a_cycle() {
    assert_eq!(
        crate_modules("use crate::engine::Engine;\nuse crate::policy::{self};"),
        ["engine", "policy"]
    );
}
