//! The readable trace of a simulation run: one line per op and per observed transition or
//! notice, stamped with the virtual time since the run started (never the wall clock), so that
//! the same seed gives the same trace, byte for byte.

use std::fmt::Display;
use std::sync::{Arc, Mutex, MutexGuard};

use election_core::{ElectionState, Event, FencingToken, Notice};
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

    /// A line leader work logged (through a [`SimLog`]), at the time it logged it.
    pub fn work_line(&mut self, at: Instant, id: &str, text: &str) {
        let stamp = self.stamp(at);
        self.push(format!("{stamp}   {id} work: {text}"));
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

/// Where leader work writes lines into a simulation's trace: each line is stamped with the
/// virtual time it was written at and the candidate it came from, and merged with the
/// candidates' transitions in time order. Cheap to clone; hand one to your leader work
/// ([`Replica::log`](super::Replica::log)).
///
/// ```
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() {
/// let log = election_mem::sim::SimLog::default();
/// log.line(format_args!("wrote record {}", 7));
/// # }
/// ```
#[derive(Clone, Default)]
pub struct SimLog {
    who: Arc<str>,
    shared: Arc<Mutex<Logged>>,
}

#[derive(Default)]
struct Logged {
    lines: Vec<(Instant, String, String)>,
    rejected: Vec<(String, FencingToken)>,
}

impl SimLog {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Logged> {
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The same log, for the candidate `who`.
    pub(crate) fn named(&self, who: &str) -> Self {
        Self {
            who: who.into(),
            shared: self.shared.clone(),
        }
    }

    /// The candidate whose lines these are.
    pub fn who(&self) -> &str {
        &self.who
    }

    /// Writes a line into the trace, stamped with the virtual time now.
    pub fn line(&self, text: impl Display) {
        let line = (Instant::now(), self.who.to_string(), text.to_string());
        self.lock().lines.push(line);
    }

    /// Takes the lines written since the last call, in the order written.
    pub(crate) fn take(&self) -> Vec<(Instant, String, String)> {
        std::mem::take(&mut self.lock().lines)
    }

    /// Notes a write of `who` with `token` that a fenced store rejected.
    pub(crate) fn note_rejected(&self, token: FencingToken) {
        let who = self.who.to_string();
        self.lock().rejected.push((who, token));
    }

    /// The rejected writes noted so far.
    pub(crate) fn rejected(&self) -> Vec<(String, FencingToken)> {
        self.lock().rejected.clone()
    }
}

impl std::fmt::Debug for SimLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimLog").field("who", &self.who).finish()
    }
}
