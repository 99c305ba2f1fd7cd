#!/usr/bin/env bash
# The test command: installs what is missing, checks formatting and lints,
# builds everything and runs every test (unit, property, end-to-end through
# FUSE). Needs root (FUSE mounts, device nodes, other users).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --all-features -- -D warnings
cargo build --workspace --all-targets --all-features
# The release build that scripts/install.sh makes (its test installs into a
# staging root), built here rather than while other tests run.
cargo build --release --workspace --exclude pagelog-tests --bins
# The S3 segment store's tests run on a three-node Garage cluster: built
# once from the package registry into a cache outside the clone (about 8
# minutes on two cores the first time), reused afterwards.
scripts/garage.sh build
cargo test --workspace --all-features -- --test-threads="${TEST_THREADS:-4}"
