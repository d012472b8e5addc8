//! The layering rule, checked: monitor-common at the bottom, the loader
//! (`loader/`) above it, the features above the loader. A lower layer's
//! sources may name, of this crate, only modules of their own layer or
//! below; features import the loader, never the reverse.
//!
//! The check reads the sources, so a new `use crate::flows` (or a
//! `crate::syncookies::...` path in an expression, or a `super::` that
//! climbs out of the loader) in the loader fails here with its line.

use std::path::{Path, PathBuf};

/// (source file or directory under `src/`, the crate's top-level modules
/// it may name). Every module not listed is a feature.
const LOWER_LAYERS: &[(&str, &[&str])] = &[
    ("interfaces.rs", &[]),
    ("loader", &["loader", "interfaces"]),
];

#[derive(Debug, PartialEq, Eq)]
struct Violation {
    line: usize,
    module: String,
}

/// The crate's top-level modules (or root items) that `source`, the text
/// of a file at module depth `depth` (1: `src/x.rs` or `src/x/mod.rs`),
/// names by a `crate::` path or a `super::` path reaching the crate root.
fn crate_names(source: &str, depth: usize) -> Vec<Violation> {
    let tokens = tokenize(source);
    let mut found = Vec::new();
    // Brace depths at which inline `mod name {` blocks opened.
    let mut inline_mods: Vec<usize> = Vec::new();
    let mut braces = 0usize;
    let mut i = 0;
    while i < tokens.len() {
        let (line, tok) = (tokens[i].0, tokens[i].1.as_str());
        match tok {
            "{" => braces += 1,
            "}" => {
                braces = braces.saturating_sub(1);
                if inline_mods.last() == Some(&braces) {
                    inline_mods.pop();
                }
            }
            "mod" if tokens.get(i + 2).is_some_and(|t| t.1 == "{") => {
                inline_mods.push(braces);
            }
            "crate" if is_path_start(&tokens, i) => {
                collect_names(&tokens, i + 2, line, &mut found);
            }
            "super" if is_path_start(&tokens, i) && (i == 0 || tokens[i - 1].1 != "::") => {
                // `super::super::...`: count the climbs.
                let mut climbs = 1;
                let mut at = i + 2;
                while tokens.get(at).is_some_and(|t| t.1 == "super")
                    && tokens.get(at + 1).is_some_and(|t| t.1 == "::")
                {
                    climbs += 1;
                    at += 2;
                }
                if climbs >= depth + inline_mods.len() {
                    collect_names(&tokens, at, line, &mut found);
                }
                i = at;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    found
}

fn is_path_start(tokens: &[(usize, String)], i: usize) -> bool {
    tokens.get(i + 1).is_some_and(|t| t.1 == "::")
}

/// The first segment at `at`, or each first segment of a `{a::b, c}` group.
fn collect_names(tokens: &[(usize, String)], at: usize, line: usize, found: &mut Vec<Violation>) {
    let Some((_, first)) = tokens.get(at) else {
        return;
    };
    if first != "{" {
        found.push(Violation {
            line,
            module: first.clone(),
        });
        return;
    }
    let mut nested = 0;
    let mut expect_name = true;
    for (tok_line, tok) in &tokens[at + 1..] {
        match tok.as_str() {
            "{" => nested += 1,
            "}" if nested == 0 => return,
            "}" => nested -= 1,
            "," if nested == 0 => expect_name = true,
            name if expect_name && nested == 0 => {
                found.push(Violation {
                    line: *tok_line,
                    module: name.to_string(),
                });
                expect_name = false;
            }
            _ => {}
        }
    }
}

/// Identifiers, `::` and single punctuation, with their lines; comments,
/// string and char literals dropped (a path in them names nothing).
fn tokenize(source: &str) -> Vec<(usize, String)> {
    let chars: Vec<char> = source.chars().collect();
    let mut tokens = Vec::new();
    let mut line = 1;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '\n' {
            line += 1;
            i += 1;
        } else if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            i += 2;
            while i < chars.len() && !(chars[i] == '*' && chars.get(i + 1) == Some(&'/')) {
                line += usize::from(chars[i] == '\n');
                i += 1;
            }
            i += 2;
        } else if c == 'r' && matches!(next, Some('"' | '#')) && raw_string_end(&chars, i).is_some()
        {
            let end = raw_string_end(&chars, i).unwrap_or(chars.len());
            line += chars[i..end].iter().filter(|&&c| c == '\n').count();
            i = end;
        } else if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                // An escape may be a line continuation: count its newline.
                let len = if chars[i] == '\\' { 2 } else { 1 };
                line += chars[i..(i + len).min(chars.len())]
                    .iter()
                    .filter(|&&c| c == '\n')
                    .count();
                i += len;
            }
            i += 1;
        } else if c == '\'' && next == Some('\\') {
            // An escaped char literal: '\n', '\'', '\u{..}'.
            i += 3;
            while i < chars.len() && chars[i] != '\'' {
                i += 1;
            }
            i += 1;
        } else if c == '\'' && chars.get(i + 2) == Some(&'\'') {
            i += 3;
        } else if c.is_alphanumeric() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            tokens.push((line, chars[start..i].iter().collect()));
        } else if c == ':' && next == Some(':') {
            tokens.push((line, "::".to_string()));
            i += 2;
        } else if c.is_whitespace() {
            i += 1;
        } else {
            // Lifetimes' quotes land here too, harmlessly.
            tokens.push((line, c.to_string()));
            i += 1;
        }
    }
    tokens
}

/// With `r` at `at` opening a raw string (`r"..."`, `r#"..."#`), the index
/// just past it.
fn raw_string_end(chars: &[char], at: usize) -> Option<usize> {
    let mut i = at + 1;
    let mut hashes = 0;
    while chars.get(i) == Some(&'#') {
        hashes += 1;
        i += 1;
    }
    if chars.get(i) != Some(&'"') {
        return None;
    }
    i += 1;
    while i < chars.len() {
        if chars[i] == '"'
            && chars[i + 1..]
                .iter()
                .take(hashes)
                .filter(|&&c| c == '#')
                .count()
                == hashes
        {
            return Some(i + 1 + hashes);
        }
        i += 1;
    }
    Some(chars.len())
}

fn rust_files(path: &Path) -> Vec<PathBuf> {
    if path.is_file() {
        return vec![path.to_path_buf()];
    }
    let mut files = Vec::new();
    let entries = std::fs::read_dir(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    for entry in entries {
        let entry = entry.unwrap();
        let path = entry.path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files.sort();
    files
}

/// Module depth of a file under `src/`: `x.rs`, `x/mod.rs` 1, `x/y.rs` 2.
fn module_depth(relative: &Path) -> usize {
    let parts = relative.components().count();
    if relative.file_name().is_some_and(|n| n == "mod.rs") {
        parts - 1
    } else {
        parts
    }
}

#[test]
fn lower_layers_name_no_feature() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut offences = Vec::new();
    let mut checked = 0;
    for (root, allowed) in LOWER_LAYERS {
        let files = rust_files(&src.join(root));
        assert!(!files.is_empty(), "no sources under src/{root}");
        for file in files {
            let relative = file.strip_prefix(&src).unwrap();
            let source = std::fs::read_to_string(&file).unwrap();
            checked += 1;
            for v in crate_names(&source, module_depth(relative)) {
                if !allowed.contains(&v.module.as_str()) {
                    let text = source.lines().nth(v.line - 1).unwrap_or("").trim();
                    offences.push(format!(
                        "src/{}:{}: names crate::{} (`{text}`); src/{root} may name only {allowed:?}",
                        relative.display(),
                        v.line,
                        v.module
                    ));
                }
            }
        }
    }
    assert!(
        checked >= 8,
        "only {checked} files checked: is the loader where LOWER_LAYERS says?"
    );
    assert!(
        offences.is_empty(),
        "layering: a lower layer imports a feature (move the shared part down instead):\n{}",
        offences.join("\n")
    );
}

/// `line:module` for each name found.
fn names(source: &str, depth: usize) -> Vec<String> {
    crate_names(source, depth)
        .into_iter()
        .map(|v| format!("{}:{}", v.line, v.module))
        .collect()
}

#[test]
fn finds_crate_paths_in_imports_groups_and_expressions() {
    let source = "use crate::{flows::FlowSettings, interfaces::{self, Interface}};\n\
                  use crate::ports;\n\
                  fn f() { crate::syncookies::kfunc::patch(x); }\n\
                  use crate::{\n    loader::pins,\n    mitigation::POLICY_MAP,\n};\n";
    assert_eq!(
        names(source, 1),
        [
            "1:flows",
            "1:interfaces",
            "2:ports",
            "3:syncookies",
            "5:loader",
            "6:mitigation"
        ]
    );
}

#[test]
fn finds_super_paths_that_reach_the_crate_root() {
    // In src/loader/mod.rs one `super` is the crate root; in an inline
    // `mod tests` there, it is the loader again.
    let source =
        "use super::flows;\nmod tests {\n    use super::*;\n    use super::super::daemon;\n}\n";
    assert_eq!(names(source, 1), ["1:flows", "4:daemon"]);
    // In src/loader/pins.rs it takes two.
    let source = "use super::EBPF_OBJECT;\nuse super::super::{status, loader};\n";
    assert_eq!(names(source, 2), ["2:status", "2:loader"]);
}

#[test]
fn ignores_comments_strings_and_chars() {
    let source = "// use crate::flows;\n/* crate::ports\n */ let s = \"crate::http\";\n\
                  let r = r#\"crate::status\"#; let q = '\"'; let e = '\\'';\n\
                  fn g<'a>(x: &'a str) {}\nlet m = \"a \\\n b\";\nuse crate::detector;\n";
    assert_eq!(names(source, 1), ["8:detector"]);
}
