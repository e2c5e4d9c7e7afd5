//! Nothing crosses the C ABI as a panic: every exported function of the C
//! API runs its body inside the panic boundary (`ffi::boundary`), which turns
//! a Rust panic into `SPINDLE_EPANIC`.
//!
//! The boundary itself is unit-tested in `src/ffi/mod.rs`; this test reads the
//! sources of `src/ffi/` and fails when an export is added without it.

use std::fs;
use std::path::Path;

/// Exports whose body cannot panic at run time, with the reason.
const WITHOUT_BOUNDARY: &[(&str, &str)] = &[
    (
        "spindle_version",
        "returns a constant evaluated at compile time",
    ),
    (
        "spindle_strerror",
        "a match of the code on constants, no call that can panic",
    ),
];

/// The body of the function whose signature ends at `from`: the text between
/// its first `{` and the matching `}`.
fn body_after(source: &str, from: usize) -> &str {
    let open = from + source[from..].find('{').expect("a function body");
    let mut depth = 0usize;
    for (offset, c) in source[open..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return &source[open..open + offset + 1];
                }
            }
            _ => {}
        }
    }
    panic!("unbalanced braces after byte {from}");
}

/// Every `#[no_mangle]` export of `src/ffi/*.rs`, as (file, name, body).
fn exports() -> Vec<(String, String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/ffi");
    let mut found = Vec::new();
    for entry in fs::read_dir(&dir).expect("src/ffi exists") {
        let path = entry.expect("a directory entry").path();
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let source = fs::read_to_string(&path).expect("readable source");
        let mut rest = 0;
        while let Some(at) = source[rest..].find("#[no_mangle]") {
            let attribute = rest + at;
            let signature = &source[attribute..];
            let name_at = signature.find("extern \"C\" fn ").expect("an extern fn") + 14;
            let name: String = signature[name_at..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            let body = body_after(&source, attribute + name_at);
            found.push((
                path.file_name().unwrap().to_string_lossy().into_owned(),
                name,
                body.to_owned(),
            ));
            rest = attribute + name_at;
        }
    }
    found
}

#[test]
fn every_export_runs_inside_the_panic_boundary() {
    let exports = exports();
    assert!(
        exports.len() > 80,
        "the scan found only {} exports: is it still reading src/ffi?",
        exports.len()
    );
    let missing: Vec<String> = exports
        .iter()
        .filter(|(_, name, body)| {
            !body.contains("boundary(") && !WITHOUT_BOUNDARY.iter().any(|(n, _)| n == name)
        })
        .map(|(file, name, _)| format!("{file}: {name}"))
        .collect();
    assert!(
        missing.is_empty(),
        "exports without the panic boundary: {missing:?}"
    );
    for (name, _) in WITHOUT_BOUNDARY {
        assert!(
            exports.iter().any(|(_, n, _)| n == name),
            "{name} is listed as an exception but no longer exported"
        );
    }
}
