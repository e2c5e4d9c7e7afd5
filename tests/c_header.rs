//! The committed C header is what cbindgen makes of `src/ffi/` today.
//! `SPINDLE_BLESS=1` (or `scripts/gen-header.sh`) rewrites it.

use std::path::Path;

#[test]
fn the_committed_header_is_fresh() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut config =
        cbindgen::Config::from_file(root.join("cbindgen.toml")).expect("cbindgen.toml");
    let version: Vec<&str> = env!("CARGO_PKG_VERSION").split('.').collect();
    config.after_includes = Some(format!(
        "\n/** The version this header belongs to (see spindle_version()). */\n\
         #define SPINDLE_VERSION_MAJOR {}\n#define SPINDLE_VERSION_MINOR {}\n#define SPINDLE_VERSION_PATCH {}\n\
         #define SPINDLE_VERSION_STRING \"{}\"",
        version[0],
        version[1],
        version[2],
        env!("CARGO_PKG_VERSION")
    ));
    let bindings = cbindgen::Builder::new()
        .with_crate(root)
        .with_config(config)
        .generate()
        .expect("cbindgen generates the header");
    let mut generated = Vec::new();
    bindings.write(&mut generated);
    let generated = String::from_utf8(generated).expect("UTF-8 header");
    let path = root.join("include/spindle.h");
    if std::env::var_os("SPINDLE_BLESS").is_some() {
        std::fs::write(&path, &generated).expect("write include/spindle.h");
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "include/spindle.h is stale: run scripts/gen-header.sh and commit the result"
    );
}
