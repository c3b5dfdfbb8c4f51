//! Quickstart: five candidates on the in-memory backend, no server needed.
//!
//! `cargo run --example quickstart`
//!
//! It runs on tokio's paused clock, so a 3 s session timeout passes instantly and the run is the
//! same every time: the way to test failover logic.

use std::sync::Arc;
use std::time::Duration;

use election_core::{Candidate, Client, Reason};
use election_mem::MemCluster;
use tokio::time::Instant;

const PATH: &str = "/services/maxwell/leader";
const TIMEOUT: Duration = Duration::from_secs(3);

struct Story {
    start: Instant,
}

impl Story {
    fn say(&self, what: impl std::fmt::Display) {
        println!("t={:>7.3}s  {what}", self.start.elapsed().as_secs_f64());
    }
}

async fn queue(c: &Candidate) -> String {
    let ids: Vec<String> = c
        .participants()
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.id)
        .collect();
    ids.join(", ")
}

#[tokio::main(flavor = "current_thread", start_paused = true)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cluster = MemCluster::new();
    let story = Story {
        start: Instant::now(),
    };
    println!("election quickstart: 5 candidates on {PATH}");
    println!(
        "(in-memory backend, session timeout {TIMEOUT:?}, virtual clock: waits pass instantly)\n"
    );

    let mut candidates = Vec::new();
    for i in 1..=5 {
        let id = format!("node-{i}");
        let c = Candidate::builder(PATH, id.clone())
            .payload(format!("10.0.0.{i}:8080"))
            .session_timeout(TIMEOUT)
            .on_leader(|term| async move {
                // Leader-scoped work: it gets the term's fencing token and runs until the term ends.
                term.cancelled().await;
            })
            .join(cluster.backend())
            .await?;
        candidates.push(Arc::new(c));
    }
    let watcher = Client::connect(cluster.backend(), TIMEOUT).await?;
    let observer = watcher.observe(&election_core::ElectionPath::new(PATH)?);

    let first = tokio::time::timeout(TIMEOUT, observer.wait_for_leader()).await??;
    story.say(format!(
        "{} leads with token {} (payload {}); queue: {}",
        first.id,
        first.token,
        String::from_utf8_lossy(&first.payload),
        queue(&candidates[1]).await
    ));

    // 1. Crash the leader: no goodbye, so its session has to expire before anyone else leads.
    story.say(format!(
        "{} crashes (no close: the service must expire its session)",
        first.id
    ));
    let leader = candidates.remove(0);
    let leader = Arc::try_unwrap(leader).expect("only handle");
    let crashed_at = Instant::now();
    leader.abort();
    let second =
        tokio::time::timeout(TIMEOUT * 3, observer.next_leader(Some(first.token))).await??;
    story.say(format!(
        "{} leads with token {}, {:.3}s after the crash (session timeout {:?})",
        second.id,
        second.token,
        crashed_at.elapsed().as_secs_f64(),
        TIMEOUT
    ));

    // 2. The new leader resigns: its work is stopped first, then the next in line takes over.
    story.say(format!("{} resigns and rejoins at the tail", second.id));
    candidates[0].resign().await?;
    let third = tokio::time::timeout(TIMEOUT, observer.next_leader(Some(second.token))).await??;
    story.say(format!(
        "{} leads with token {}; queue: {}",
        third.id,
        third.token,
        queue(&candidates[0]).await
    ));

    // 3. A follower's session expires: it rejoins by itself, at the tail, and says so.
    let follower = candidates
        .iter()
        .find(|c| c.id() == "node-4")
        .expect("node-4")
        .clone();
    let mut events = follower.events();
    let session = follower.client().session().await.id();
    story.say(format!("the service expires node-4's session {session}"));
    cluster.expire_session(session);
    loop {
        match events.recv().await {
            Ok(election_core::Event::Transition(t)) if t.reason == Reason::Joined => break,
            Ok(election_core::Event::Transition(t)) => story.say(format!(
                "node-4: {} -> {} ({:?})",
                t.from.name(),
                t.to.name(),
                t.reason
            )),
            Ok(_) => {}
            Err(e) => panic!("event stream ended: {e}"),
        }
    }
    story.say(format!(
        "node-4 rejoined at the tail with session {}; queue: {}",
        follower.client().session().await.id(),
        queue(&follower).await
    ));

    for c in &candidates {
        c.stop().await;
    }
    drop(observer);
    watcher.close().await;
    story.say(format!(
        "everyone stopped; entries left: {}",
        cluster.entries(PATH).len()
    ));
    Ok(())
}
