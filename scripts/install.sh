#!/usr/bin/env bash
# Builds libspindle (release) and installs it for C and C++ programs: the
# header(s), libspindle.a, libspindle.so and the pkg-config files spindle.pc
# (shared) and spindle-static.pc (static).
# Usage: scripts/install.sh [PREFIX]   (default /usr/local; DESTDIR is honoured)
# Then: cc prog.c $(pkg-config --cflags --libs spindle)
set -euo pipefail
cd "$(dirname "$0")/.."
prefix="${1:-${PREFIX:-/usr/local}}"
target_dir="${CARGO_TARGET_DIR:-$PWD/target}"
cargo build --release --lib
make -C c-examples install LIBDIR="$target_dir/release" PREFIX="$prefix" DESTDIR="${DESTDIR:-}"
