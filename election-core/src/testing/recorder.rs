//! Records what candidates did (their transitions, and their leader work), for the invariant
//! checks.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::broadcast;
use tokio::time::Instant;

use crate::backend::FencingToken;
use crate::candidate::Candidate;
use crate::state::{ElectionState, Event, Transition};
use crate::term::Term;

use super::invariants::{LeaderInterval, WorkSpan};

/// Collects the transitions of the candidates it watches.
#[derive(Debug, Default)]
pub struct Recorder {
    receivers: Vec<(String, broadcast::Receiver<Event>)>,
    log: Vec<(String, Event)>,
    /// How much of `log` [`Recorder::take_new`] has handed out.
    cursor: usize,
}

impl Recorder {
    /// An empty recorder.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records `candidate`'s events: from its start when this is the first
    /// [`events`](Candidate::events) call on it (see there), from now on otherwise.
    pub fn watch(&mut self, candidate: &Candidate) {
        self.receivers
            .push((candidate.id().to_owned(), candidate.events()));
    }

    fn drain(&mut self) {
        for (id, rx) in &mut self.receivers {
            loop {
                match rx.try_recv() {
                    Ok(e) => self.log.push((id.clone(), e)),
                    Err(broadcast::error::TryRecvError::Lagged(n)) => {
                        panic!("recorder lagged {n} events behind candidate {id}")
                    }
                    Err(_) => break,
                }
            }
        }
    }

    /// The events recorded since the last call (they stay recorded), by candidate, in the order
    /// each candidate emitted them. For traces that print events as they happen.
    pub fn take_new(&mut self) -> Vec<(String, Event)> {
        self.drain();
        let from = std::mem::replace(&mut self.cursor, self.log.len());
        self.log[from.min(self.log.len())..].to_vec()
    }

    /// Every event so far, by candidate, in the order each candidate emitted them.
    pub fn events(&mut self) -> Vec<(String, Event)> {
        self.drain();
        self.log.clone()
    }

    /// The transitions of candidate `id` so far.
    pub fn transitions(&mut self, id: &str) -> Vec<Transition> {
        self.drain();
        self.log
            .iter()
            .filter(|(c, _)| c == id)
            .filter_map(|(_, e)| match e {
                Event::Transition(t) => Some(t.clone()),
                _ => None,
            })
            .collect()
    }

    /// Forgets what was recorded so far (receivers stay).
    pub fn clear(&mut self) {
        self.drain();
        self.log.clear();
        self.cursor = 0;
    }

    /// The Leader-state intervals of every watched candidate; an interval still open ends at
    /// `None`.
    pub fn leader_intervals(&mut self) -> Vec<LeaderInterval> {
        self.drain();
        let mut open: BTreeMap<String, (FencingToken, Instant)> = BTreeMap::new();
        let mut out = Vec::new();
        for (id, e) in &self.log {
            let Event::Transition(t) = e else { continue };
            match (&t.from, &t.to) {
                (ElectionState::Leader { .. }, ElectionState::Leader { .. }) => {}
                (_, ElectionState::Leader { token, .. }) => {
                    open.insert(id.clone(), (*token, t.at));
                }
                (ElectionState::Leader { .. }, _) => {
                    if let Some((token, start)) = open.remove(id) {
                        out.push(LeaderInterval {
                            candidate: id.clone(),
                            token,
                            start,
                            end: Some(t.at),
                        });
                    }
                }
                _ => {}
            }
        }
        for (candidate, (token, start)) in open {
            out.push(LeaderInterval {
                candidate,
                token,
                start,
                end: None,
            });
        }
        out.sort_by_key(|i| (i.start, i.token));
        out
    }
}

/// Leader work that records when each term's work ran, for the S4 check.
#[derive(Clone, Debug, Default)]
pub struct WorkLog {
    spans: Arc<Mutex<Vec<WorkSpan>>>,
}

struct SpanGuard {
    spans: Arc<Mutex<Vec<WorkSpan>>>,
    index: usize,
}

impl Drop for SpanGuard {
    fn drop(&mut self) {
        // Runs when the work returns and when it is aborted: either way it has stopped.
        self.spans.lock().expect("work log")[self.index].end = Some(Instant::now());
    }
}

impl WorkLog {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }

    /// Work for candidate `id` that runs until its term is cancelled, then takes `stop_delay` to
    /// stop (ignoring the cancellation meanwhile: a slow shutdown).
    pub fn work(
        &self,
        id: &str,
        stop_delay: Duration,
    ) -> impl Fn(Term) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync + 'static
    {
        let spans = self.spans.clone();
        let id = id.to_owned();
        move |term: Term| {
            let spans = spans.clone();
            let id = id.clone();
            Box::pin(async move {
                let index = {
                    let mut s = spans.lock().expect("work log");
                    s.push(WorkSpan {
                        candidate: id,
                        token: term.token(),
                        start: Instant::now(),
                        end: None,
                    });
                    s.len() - 1
                };
                let _guard = SpanGuard { spans, index };
                term.cancelled().await;
                if !stop_delay.is_zero() {
                    tokio::time::sleep(stop_delay).await;
                }
            })
        }
    }

    /// Work for candidate `id` that fails at once on every term (an `Err` with the text
    /// `"fails at once"`), each term recorded as a span.
    pub fn failing(
        &self,
        id: &str,
    ) -> impl Fn(Term) -> std::pin::Pin<Box<dyn Future<Output = Result<(), String>> + Send>>
           + Send
           + Sync
           + 'static {
        let spans = self.spans.clone();
        let id = id.to_owned();
        move |term: Term| {
            let spans = spans.clone();
            let id = id.clone();
            Box::pin(async move {
                let index = {
                    let mut s = spans.lock().expect("work log");
                    s.push(WorkSpan {
                        candidate: id,
                        token: term.token(),
                        start: Instant::now(),
                        end: None,
                    });
                    s.len() - 1
                };
                let _guard = SpanGuard { spans, index };
                Err("fails at once".to_owned())
            })
        }
    }

    /// Records the spans of any leader work: `work` is the closure given to
    /// [`on_leader`](crate::CandidateBuilder::on_leader), and what it returns is returned.
    pub fn around<F, Fut>(
        &self,
        id: &str,
        work: F,
    ) -> impl Fn(Term) -> std::pin::Pin<Box<dyn Future<Output = Fut::Output> + Send>>
           + Send
           + Sync
           + 'static
    where
        F: Fn(Term) -> Fut + Send + Sync + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: Send,
    {
        let spans = self.spans.clone();
        let id = id.to_owned();
        move |term: Term| {
            let spans = spans.clone();
            let id = id.clone();
            let token = term.token();
            let work = work(term);
            Box::pin(async move {
                let index = {
                    let mut s = spans.lock().expect("work log");
                    s.push(WorkSpan {
                        candidate: id,
                        token,
                        start: Instant::now(),
                        end: None,
                    });
                    s.len() - 1
                };
                let _guard = SpanGuard { spans, index };
                work.await
            })
        }
    }

    /// The spans so far.
    pub fn spans(&self) -> Vec<WorkSpan> {
        self.spans.lock().expect("work log").clone()
    }
}
