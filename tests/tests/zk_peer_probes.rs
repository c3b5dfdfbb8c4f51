//! The benchmark's peer probes (`tests/peers/kazoo_bench.py`, `tests/peers/CuratorBench.java`,
//! driven by `zk_compare`): they compile, hand over on a real ZooKeeper server as the protocol
//! says, and a probe that fails says why. The benchmark itself is not run here
//! (`scripts/bench-zk.sh` runs it).
//!
//! Needs what `tests/tests/zk_mixed_fleet.rs` needs: Debian's Curator jars, `javac` and
//! `python3-kazoo` (`scripts/test.sh` installs them).

use std::process::Command;
use std::time::Duration;

use election_tests::peers::{self, Probe};
use election_zk::testing::ZkServer;

const SESSION: Duration = Duration::from_secs(10);

fn classes(tag: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("election-peer-probes-{tag}-{}", std::process::id()))
}

#[test]
fn peer_sources_compile() {
    for source in ["kazoo_bench.py", "kazoo_peer.py"] {
        peers::check_kazoo(source).unwrap_or_else(|e| panic!("{e}"));
    }
    let out = classes("compile");
    for source in ["CuratorBench.java", "CuratorPeer.java"] {
        peers::compile_curator(source, &out).unwrap_or_else(|e| panic!("{e}"));
    }
    assert!(out.join("CuratorBench.class").exists());
    assert!(out.join("CuratorPeer.class").exists());
    std::fs::remove_dir_all(&out).unwrap();
}

/// Three hand-overs with two and with three contenders of each peer, each measured and
/// positive; the probes close cleanly.
#[test]
fn probes_hand_over_on_a_real_server() {
    let out = classes("run");
    peers::compile_curator("CuratorBench.java", &out).unwrap_or_else(|e| panic!("{e}"));
    let zk = ZkServer::start();
    let connect = zk.connect_string();
    for n in [2, 3] {
        let mut kazoo = Probe::kazoo(&connect, &format!("/probes/kazoo-{n}"), n, SESSION);
        let mut curator =
            Probe::curator(&out, &connect, &format!("/probes/curator-{n}"), n, SESSION);
        for _ in 0..3 {
            for d in [kazoo.round(), curator.round()] {
                assert!(
                    d > Duration::ZERO && d < Duration::from_secs(10),
                    "hand-over took {d:?}"
                );
            }
        }
        kazoo.quit();
        curator.quit();
    }
    std::fs::remove_dir_all(&out).unwrap();
}

#[test]
#[should_panic(expected = "kazoo (2 candidates) probe failed while starting: ValueError")]
fn a_failing_probe_says_why() {
    let mut cmd = Command::new(peers::PYTHON);
    cmd.arg(peers::peers_dir().join("kazoo_bench.py"))
        .args(["127.0.0.1:1", "/p", "two", "1000"]);
    Probe::start("kazoo (2 candidates)", cmd);
}
