#!/usr/bin/env bash
# Regenerates include/spindle.h from src/ffi/ with the pinned cbindgen.
set -euo pipefail
cd "$(dirname "$0")/.."
SPINDLE_BLESS=1 cargo test --quiet --test c_header
echo "include/spindle.h regenerated"
