//! `election status` and `election watch`: read an election without running in it.

use std::io::Write;

use election::{ElectionPath, LeaderInfo, LeaderView, Participant};
use serde_json::json;
use tokio::signal::unix::{signal, SignalKind};

use crate::{backend, exit, fail, QueryArgs};

fn leader_json(l: &LeaderInfo) -> serde_json::Value {
    json!({
        "id": l.id,
        "payload": String::from_utf8_lossy(&l.payload),
        "token": l.token.0,
        "session": l.session.to_string(),
    })
}

fn participant_json(p: &Participant) -> serde_json::Value {
    json!({
        "id": p.id,
        "payload": String::from_utf8_lossy(&p.payload),
        "token": p.token.0,
        "session": p.session.to_string(),
    })
}

fn leader_text(l: &LeaderInfo) -> String {
    format!(
        "id={} payload={} token={} session={}",
        l.id,
        String::from_utf8_lossy(&l.payload),
        l.token,
        l.session
    )
}

/// Connects for a query; a bad path or connect string is a usage error.
async fn open(args: &QueryArgs) -> Result<(election::Client, ElectionPath), i32> {
    let path = ElectionPath::new(args.service.path.clone())
        .map_err(|e| fail(exit::USAGE, format!("--path: {e}")))?;
    let backend = backend::build(&args.service).map_err(|(c, r)| fail(c, r))?;
    let client = backend
        .connect(
            args.service.session_timeout,
            args.service.connection_timeout,
        )
        .await
        .map_err(|(c, r)| fail(c, r))?;
    Ok((client, path))
}

/// `election status`: exit 0 when someone leads, 3 when nobody does.
pub async fn status(args: QueryArgs) -> i32 {
    let (client, path) = match open(&args).await {
        Ok(x) => x,
        Err(code) => return code,
    };
    let read = async {
        let leader = client.current_leader(&path).await?;
        let participants = client.participants(&path).await?;
        Ok::<_, election::ElectionError>((leader, participants))
    }
    .await;
    client.close().await;
    let (leader, participants) = match read {
        Ok(x) => x,
        Err(e) => return fail(exit::FAILURE, format!("cannot read {path}: {e}")),
    };
    if args.json {
        let out = json!({
            "path": path.to_string(),
            "leader": leader.as_ref().map(leader_json),
            "participants": participants.iter().map(participant_json).collect::<Vec<_>>(),
        });
        println!("{out}");
    } else {
        match &leader {
            Some(l) => println!("leader: {}", leader_text(l)),
            None => println!("leader: none"),
        }
        println!("participants: {}", participants.len());
        for (i, p) in participants.iter().enumerate() {
            println!(
                "  {} id={} payload={} token={} session={}",
                i + 1,
                p.id,
                String::from_utf8_lossy(&p.payload),
                p.token,
                p.session
            );
        }
    }
    if leader.is_some() {
        0
    } else {
        exit::NOBODY_LEADS
    }
}

/// `election watch`: one line per change of leader, until SIGINT or SIGTERM.
pub async fn watch(args: QueryArgs) -> i32 {
    let (client, path) = match open(&args).await {
        Ok(x) => x,
        Err(code) => return code,
    };
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return fail(exit::FAILURE, "cannot install signal handlers");
    };
    let observer = client.observe(&path);
    let mut view = observer.leader();
    let mut last: Option<LeaderView> = None;
    loop {
        let now = view.borrow_and_update().clone();
        if now.is_known() && last.as_ref() != Some(&now) {
            let at = humantime::format_rfc3339_millis(std::time::SystemTime::now());
            let line = if args.json {
                json!({
                    "at": at.to_string(),
                    "path": path.to_string(),
                    "leader": now.leader().map(leader_json),
                })
                .to_string()
            } else {
                match now.leader() {
                    Some(l) => format!("{at} leader {}", leader_text(l)),
                    None => format!("{at} nobody leads"),
                }
            };
            // A reader that went away (`election watch | head -1`) ends the watch.
            if writeln!(std::io::stdout(), "{line}").is_err() {
                break;
            }
            last = Some(now);
        }
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            changed = view.changed() => if changed.is_err() { break },
        }
    }
    drop(observer);
    client.close().await;
    0
}
