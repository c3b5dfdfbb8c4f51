//! The readable trace of a simulation run: one line per op and per observed transition or
//! notice, stamped with the virtual time since the run started (never the wall clock), so that
//! the same seed gives the same trace, byte for byte.

use std::sync::{Arc, Mutex};

use election_core::{ElectionState, Event, Notice};
use tokio::time::Instant;

/// A trace under construction.
#[derive(Debug)]
pub struct Trace {
    start: Instant,
    /// Shared, so that a watchdog can read what a run that stopped making progress did.
    text: Arc<Mutex<String>>,
    /// Also print each line to stderr as it comes (`ELECTION_SIM_ECHO=1`), to watch a run
    /// that hangs.
    echo: bool,
}

fn state(s: &ElectionState) -> String {
    match s {
        ElectionState::Follower { position, leader } => format!(
            "follower#{position}{}",
            leader
                .as_ref()
                .map(|l| format!("(leader {})", l.id))
                .unwrap_or_default()
        ),
        ElectionState::Leader { token, contact } => match contact {
            election_core::Contact::Confirmed => format!("leader[{token}]"),
            election_core::Contact::Uncertain { .. } => format!("leader[{token}]?"),
        },
        ElectionState::Stopped(reason) => format!("stopped({reason:?})"),
        other => other.name().to_owned(),
    }
}

impl Trace {
    /// A trace whose clock starts now.
    pub fn new() -> Self {
        Self {
            start: Instant::now(),
            text: Arc::default(),
            echo: std::env::var_os("ELECTION_SIM_ECHO").is_some(),
        }
    }

    /// When the run started.
    pub fn start(&self) -> Instant {
        self.start
    }

    fn stamp(&self, at: Instant) -> String {
        let d = at.saturating_duration_since(self.start);
        format!("{:>4}.{:06}", d.as_secs(), d.subsec_micros())
    }

    /// A line at the current virtual time.
    pub fn line(&mut self, text: impl AsRef<str>) {
        let stamp = self.stamp(Instant::now());
        self.push(format!("{stamp} {}", text.as_ref()));
    }

    fn push(&mut self, line: String) {
        if self.echo {
            eprintln!("{line}");
        }
        let mut text = self.text.lock().unwrap_or_else(|e| e.into_inner());
        text.push_str(&line);
        text.push('\n');
    }

    /// A candidate's event, at the time it happened.
    pub fn event(&mut self, id: &str, event: &Event) {
        match event {
            Event::Transition(t) => {
                let stamp = self.stamp(t.at);
                self.push(format!(
                    "{stamp}   {id}: {} -> {} ({:?})",
                    state(&t.from),
                    state(&t.to),
                    t.reason
                ));
            }
            Event::Notice { at, notice } => {
                let stamp = self.stamp(*at);
                let text = match notice {
                    Notice::Retrying(_) => "retrying".to_owned(),
                    other => format!("{other:?}"),
                };
                self.push(format!("{stamp}   {id}: notice {text}"));
            }
        }
    }

    /// The trace so far.
    pub fn text(&self) -> String {
        self.text.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// A handle on the trace as it grows.
    pub fn shared(&self) -> Arc<Mutex<String>> {
        self.text.clone()
    }
}

impl Default for Trace {
    fn default() -> Self {
        Self::new()
    }
}
