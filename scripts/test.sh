#!/usr/bin/env bash
# The test command: installs what the tests need (ZooKeeper, from Debian's package) when it is
# missing, then checks formatting, lints, docs, and runs every test of the workspace, including
# the ones against real ZooKeeper servers that the harness starts itself.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -f /usr/share/java/zookeeper.jar ] || ! command -v java >/dev/null 2>&1; then
  echo "== ZooKeeper is not installed: installing Debian's zookeeper package"
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq zookeeper >/dev/null
fi

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy -D warnings"
cargo clippy --workspace --all-targets --all-features -- -D warnings
echo "== rustdoc -D warnings"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --all-features --quiet
echo "== cargo test"
cargo test --workspace --all-features
echo "== fuzz corpus replay (stable)"
cargo test --manifest-path fuzz/Cargo.toml
