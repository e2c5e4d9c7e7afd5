#!/usr/bin/env bash
# Runs every test of spindle: unit, integration and doc tests, the examples,
# every benchmark once in test mode, the loom models, and the C examples
# under ASan/UBSan, valgrind memcheck and helgrind.
# Usage: scripts/test-all.sh   (from anywhere)
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s ==\n' "$*"; }

step "unit and integration tests"
cargo test --lib --tests --examples

step "doc tests"
cargo test --doc

step "benchmarks, each once in test mode"
cargo test --release --benches

step "the tour example"
cargo run --release --example tour >/dev/null

step "loom models (bounded preemptions)"
LOOM_MAX_PREEMPTIONS="${LOOM_MAX_PREEMPTIONS:-3}" RUSTFLAGS="--cfg spindle_loom" \
    CARGO_TARGET_DIR=target/loom cargo test --release --lib loom

step "C examples under ASan/UBSan and valgrind memcheck"
# (tests/c_examples.rs, in the first step, builds and runs them plainly.)
cargo build --lib
make -C c-examples -j2 LIBDIR="$PWD/target/debug" BUILD="$PWD/target/debug/c-examples" \
    check-asan check-valgrind

step "C examples under valgrind helgrind"
# Against a library built with spindle's helgrind annotations
# (--cfg spindle_helgrind, src/valgrind.rs) in its own target directory;
# c-examples/helgrind.supp covers crossbeam and std internals. Every example
# and both bad_input tests run (about half a minute on two cores).
RUSTFLAGS="--cfg spindle_helgrind" CARGO_TARGET_DIR=target/helgrind cargo build --lib
make -C c-examples -j2 HELGRIND_LIBDIR="$PWD/target/helgrind/debug" \
    BUILD="$PWD/target/helgrind/debug/c-examples" check-helgrind
