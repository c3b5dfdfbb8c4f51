//! A leadership term as handed to leader-scoped work: its fencing token and the signal that it
//! is over.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::backend::FencingToken;

/// One leadership term, given to the work registered with
/// [`CandidateBuilder::on_leader`](crate::CandidateBuilder::on_leader).
///
/// The work must stop soon after [`cancelled`](Self::cancelled) fires: the candidate waits for it,
/// at most the configured grace, before it gives up its entry; past the grace the task is
/// aborted at its next await point.
#[derive(Clone, Debug)]
pub struct Term {
    token: FencingToken,
    cancel: CancellationToken,
}

impl Term {
    pub(crate) fn new(token: FencingToken, cancel: CancellationToken) -> Self {
        Self { token, cancel }
    }

    /// The term's fencing token: send it with every write made as leader.
    pub fn token(&self) -> FencingToken {
        self.token
    }

    /// Completes when the term ends (step-down, resignation, stop, lost entry or session).
    pub async fn cancelled(&self) {
        self.cancel.cancelled().await
    }

    /// `true` once the term has ended.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// The term's cancellation token, to hand to other tasks.
    pub fn cancellation(&self) -> CancellationToken {
        self.cancel.clone()
    }
}

/// Leader-scoped work: called once per term with that term.
pub(crate) type LeaderWork =
    Arc<dyn Fn(Term) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> + Send + Sync>;
