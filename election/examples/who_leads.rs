//! "Who leads?": follows an election without taking part in it, and prints every change of
//! leader with its payload and fencing token.
//!
//! ```sh
//! ZK=127.0.0.1:2181 cargo run -p election --example who_leads -- /services/streamer/leader
//! ```

use std::sync::Arc;
use std::time::Duration;

use election::zk::ZkBackend;
use election::{Client, CoordinationBackend, ElectionPath, LeaderView};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "/services/streamer/leader".into());
    let path = ElectionPath::new(path)?;
    let zk = std::env::var("ZK").unwrap_or_else(|_| "127.0.0.1:2181".into());
    let backend: Arc<dyn CoordinationBackend> = Arc::new(ZkBackend::builder(zk).build()?);
    let client = Client::connect(backend, Duration::from_secs(10)).await?;
    for p in client.participants(&path).await? {
        println!("in the queue: {p:?}");
    }
    let observer = client.observe(&path);
    let mut leader = observer.leader();
    loop {
        match &*leader.borrow_and_update() {
            LeaderView::Leader(l) => println!(
                "leader: {} (token {}, payload {:?})",
                l.id,
                l.token,
                String::from_utf8_lossy(&l.payload)
            ),
            LeaderView::Nobody => println!("nobody leads"),
            LeaderView::Unknown => println!("not known yet"),
        }
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            changed = leader.changed() => if changed.is_err() { break },
        }
    }
    client.close().await;
    Ok(())
}
