//! Smoke test: leader, resign, cut, stop.
use election_core::{Candidate, ElectionState};
use election_mem::MemCluster;
use std::time::Duration;

#[tokio::test(start_paused = true)]
async fn smoke() {
    let cluster = MemCluster::new();
    let mut cs = Vec::new();
    for i in 0..3 {
        cs.push(
            Candidate::builder("/svc/leader", format!("c{i}"))
                .session_timeout(Duration::from_secs(3))
                .join(cluster.backend())
                .await
                .unwrap(),
        );
    }
    let t0 = cs[0]
        .wait_for_leadership(Duration::from_secs(1))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(10)).await;
    for c in &cs {
        println!("{} {:?}", c.id(), c.current());
    }
    cs[0].resign().await.unwrap();
    let t1 = cs[1]
        .wait_for_leadership(Duration::from_secs(1))
        .await
        .unwrap();
    assert!(t1 > t0);
    tokio::time::sleep(Duration::from_millis(10)).await;
    for c in &cs {
        println!("{} {:?}", c.id(), c.current());
    }
    let s = cs[1].client().session().await.id();
    cluster.cut(s);
    let t2 = cs[2]
        .wait_for_leadership(Duration::from_secs(10))
        .await
        .unwrap();
    println!("t2 {t2:?} c1 {:?}", cs[1].current());
    assert!(!cs[1].is_leader());
    for c in &cs {
        c.stop().await;
    }
    assert!(
        cluster.entries("/svc/leader").is_empty(),
        "{:?}",
        cluster.entries("/svc/leader")
    );
    assert!(matches!(cs[0].current(), ElectionState::Stopped(_)));
}
