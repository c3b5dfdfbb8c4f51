#!/usr/bin/env bash
# The ZooKeeper side-by-side benchmark: election, kazoo's Election and Curator's LeaderLatch on one
# server, interleaved in blocks of rounds (tests/src/bin/zk_compare.rs), in release mode. Installs
# what it needs from Debian's packages when it is missing (ZooKeeper; Curator 5.4 jars, a JDK for
# javac, python3-kazoo for Debian's /usr/bin/python3). Arguments go to zk_compare, e.g.
#   scripts/bench-zk.sh --quick
#   scripts/bench-zk.sh --rounds 300 --sizes 2,10,50 --out target/zk-compare.json
# With ZK_BENCH_TOO=1 it runs zk_bench (costs per failover, crash failover, floor) afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."

sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
missing=()
if [ ! -f /usr/share/java/zookeeper.jar ] || ! command -v java >/dev/null 2>&1; then
  missing+=(zookeeper)
fi
if [ ! -f /usr/share/java/curator-recipes.jar ] || [ ! -f /usr/share/java/curator-framework.jar ] \
    || [ ! -f /usr/share/java/curator-client.jar ]; then
  missing+=(libcurator-framework-java libcurator-recipes-java libcurator-client-java)
fi
if ! command -v javac >/dev/null 2>&1; then
  missing+=(default-jdk-headless)
fi
if ! /usr/bin/python3 -c "import kazoo" >/dev/null 2>&1; then
  missing+=(python3-kazoo)
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "== installing Debian's ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# etcd-client's build script (a dependency of the tests crate) compiles protobufs with protoc.
if ! command -v protoc >/dev/null 2>&1; then
  echo "== installing Debian's protobuf-compiler"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq protobuf-compiler >/dev/null
fi

cargo run --release -p election-tests --bin zk_compare -- "$@"
if [ "${ZK_BENCH_TOO:-0}" = 1 ]; then
  cargo run --release -p election-tests --bin zk_bench
fi
