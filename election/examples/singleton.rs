//! A singleton service on ZooKeeper: several copies run, one streams. The leader's work sends
//! its fencing token with every write (here: a line on stdout standing in for a Kafka produce)
//! and stops when its term ends; Ctrl-C withdraws the candidate before the process exits, so the
//! next copy takes over at once instead of after a session timeout.
//!
//! ```sh
//! ZK=127.0.0.1:2181 cargo run -p election --example singleton -- streamer-1
//! ZK=127.0.0.1:2181 cargo run -p election --example singleton -- streamer-2   # another shell
//! ```

use std::sync::Arc;
use std::time::Duration;

use election::zk::ZkBackend;
use election::{Candidate, CoordinationBackend, ElectionState};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "election_core=info".into()))
        .init();
    let id = std::env::args()
        .nth(1)
        .unwrap_or_else(|| format!("streamer-{}", std::process::id()));
    let zk = std::env::var("ZK").unwrap_or_else(|_| "127.0.0.1:2181".into());
    let backend: Arc<dyn CoordinationBackend> = Arc::new(ZkBackend::builder(zk).build()?);

    let candidate = Candidate::builder("/services/streamer/leader", id.as_str())
        .payload(id.clone().into_bytes())
        .session_timeout(Duration::from_secs(10))
        .on_leader(|term| async move {
            let cancelled = term.cancellation();
            let mut offset = 0u64;
            loop {
                tokio::select! {
                    _ = cancelled.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {
                        // Downstream rejects a write whose token is older than one it has seen.
                        println!("write offset={offset} token={}", term.token());
                        offset += 1;
                    }
                }
            }
            println!("term {} over: stopped streaming", term.token());
        })
        .join(backend)
        .await?;

    let mut state = candidate.state();
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            changed = state.changed() => {
                if changed.is_err() {
                    break;
                }
                let now = state.borrow_and_update().clone();
                println!("{id}: {now:?}");
                if matches!(now, ElectionState::Stopped(_)) {
                    break;
                }
            }
        }
    }
    // Withdraw before leaving main: the work stops, the entry goes, the next copy leads.
    candidate.stop().await;
    Ok(())
}
