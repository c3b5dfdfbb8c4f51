#!/usr/bin/env bash
# The test command: installs what the tests need (ZooKeeper, Curator, kazoo, protoc and etcd,
# from Debian's packages) when it is missing, then checks formatting, lints, docs, and runs every test of the
# workspace, including the ones against real ZooKeeper servers and etcd members that the harness
# starts itself.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -f /usr/share/java/zookeeper.jar ] || ! command -v java >/dev/null 2>&1; then
  echo "== ZooKeeper is not installed: installing Debian's zookeeper package"
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq zookeeper >/dev/null
fi

# The mixed-fleet tests (tests/tests/zk_mixed_fleet.rs) run stock Curator and kazoo peers:
# Debian's Curator 5.4 jars (compiled against with javac) and python3-kazoo, run with Debian's
# /usr/bin/python3 (a pyenv python3 on PATH does not see it).
if [ ! -f /usr/share/java/curator-recipes.jar ] || ! command -v javac >/dev/null 2>&1 \
    || ! /usr/bin/python3 -c "import kazoo" >/dev/null 2>&1; then
  echo "== Curator, javac or kazoo is not installed: installing Debian's packages"
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq default-jdk-headless \
    libcurator-framework-java libcurator-recipes-java libcurator-client-java python3-kazoo \
    >/dev/null
fi

# etcd-client's build script compiles etcd's protobufs with protoc.
if ! command -v protoc >/dev/null 2>&1; then
  echo "== protoc is not installed: installing Debian's protobuf-compiler"
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq protobuf-compiler >/dev/null
fi

# etcd for the tests, without a service: Debian's etcd-server unpacked into a cache directory,
# where the test harness (election_etcd::testing) looks for it. Installing the package would add
# a system user and start a service; `dpkg -x` only unpacks the binary.
etcd_cache="${XDG_CACHE_HOME:-$HOME/.cache}/election-etcd"
if [ -z "${ELECTION_ETCD_BIN:-}" ] && ! command -v etcd >/dev/null 2>&1 \
    && [ ! -x "$etcd_cache/usr/bin/etcd" ]; then
  echo "== etcd is not found: unpacking Debian's etcd-server into $etcd_cache"
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  mkdir -p "$etcd_cache"
  (cd "$etcd_cache" && rm -f etcd-server_*.deb && apt-get download -qq etcd-server \
    && dpkg -x etcd-server_*.deb . && rm -f etcd-server_*.deb)
  test -x "$etcd_cache/usr/bin/etcd"
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
