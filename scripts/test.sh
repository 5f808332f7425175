#!/usr/bin/env bash
# The full test suite (what CI runs): formatting, lints, then all tests.
# Tests run in release mode because many of them build real networks.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

echo "[test] cargo fmt --all -- --check"
cargo fmt --all -- --check

echo "[test] cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

echo "[test] cargo nextest run --workspace --release --no-fail-fast"
cargo nextest run --workspace --release --no-fail-fast
