//! A candidate in its own OS process, for crash tests: joins one election on etcd and prints one
//! line per state change to stdout until it is killed (or stops).
//!
//! Usage: `etcd_candidate ENDPOINT PATH ID SESSION_TIMEOUT_MS`
//!
//! Lines: `SESSION <id>` once connected, then `JOINING`, `FOLLOWER <position>`,
//! `LEADER <token> confirmed|uncertain`, `SUSPENDED`, `STOPPED <reason>`. Exits 0 when the
//! candidate stops, 2 on bad arguments, 1 when it cannot join.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use election_core::{Candidate, Contact, CoordinationBackend, ElectionState};
use election_etcd::EtcdBackend;

fn line(state: &ElectionState) -> String {
    match state {
        ElectionState::Joining => "JOINING".into(),
        ElectionState::Follower { position, .. } => format!("FOLLOWER {position}"),
        ElectionState::Leader { token, contact } => {
            let contact = match contact {
                Contact::Confirmed => "confirmed",
                Contact::Uncertain { .. } => "uncertain",
            };
            format!("LEADER {token} {contact}")
        }
        ElectionState::Suspended => "SUSPENDED".into(),
        ElectionState::Stopped(reason) => format!("STOPPED {reason:?}"),
    }
}

fn say(text: &str) {
    let mut out = std::io::stdout().lock();
    // The test reads line by line: flush each one, and die quietly if the reader is gone.
    if writeln!(out, "{text}").and_then(|()| out.flush()).is_err() {
        std::process::exit(0);
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [connect, path, id, timeout_ms] = args.as_slice() else {
        eprintln!("usage: etcd_candidate ENDPOINT PATH ID SESSION_TIMEOUT_MS");
        std::process::exit(2);
    };
    let Ok(timeout_ms) = timeout_ms.parse::<u64>() else {
        eprintln!("SESSION_TIMEOUT_MS must be a number, not {timeout_ms:?}");
        std::process::exit(2);
    };
    let backend: Arc<dyn CoordinationBackend> =
        match EtcdBackend::builder([connect.as_str()]).build() {
            Ok(b) => Arc::new(b),
            Err(e) => {
                eprintln!("bad endpoint: {e}");
                std::process::exit(2);
            }
        };
    let candidate = match Candidate::builder(path.as_str(), id.as_str())
        .payload(format!("pid {}", std::process::id()).into_bytes())
        .session_timeout(Duration::from_millis(timeout_ms))
        .join(backend)
        .await
    {
        Ok(c) => c,
        Err(e) => {
            eprintln!("cannot join: {e}");
            std::process::exit(1);
        }
    };
    say(&format!(
        "SESSION {}",
        candidate.client().session().await.id()
    ));
    let mut state = candidate.state();
    loop {
        let now = state.borrow_and_update().clone();
        say(&line(&now));
        if matches!(now, ElectionState::Stopped(_)) {
            return;
        }
        if state.changed().await.is_err() {
            return;
        }
    }
}
