//! Candidate configuration: every setting validated, with a typed error, before any side effect.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::backend::CoordinationBackend;
use crate::candidate::Candidate;
use crate::client::Client;
use crate::error::{ConfigError, ElectionError};
use crate::foreign::Compatibility;
use crate::limits::{validate_id, MAX_PAYLOAD_LEN, MAX_SESSION_TIMEOUT};
use crate::path::ElectionPath;
use crate::term::{LeaderWork, Term, WorkEnded, WorkResult};

/// Default session timeout: kazoo's, and a common ZooKeeper choice.
pub const DEFAULT_SESSION_TIMEOUT: Duration = Duration::from_secs(10);
/// Default step-down fraction: a leader out of contact steps down two thirds of the session
/// timeout after its last contact.
pub const DEFAULT_STEP_DOWN_FRACTION: f64 = 2.0 / 3.0;

/// A validated candidate configuration, made by [`CandidateBuilder::build`].
#[derive(Clone)]
pub struct CandidateConfig {
    pub(crate) path: ElectionPath,
    pub(crate) id: String,
    pub(crate) payload: Vec<u8>,
    pub(crate) session_timeout: Duration,
    pub(crate) step_down_fraction: f64,
    pub(crate) grace: Option<Duration>,
    pub(crate) rejoin_on_expiry: bool,
    pub(crate) work: Option<LeaderWork>,
    pub(crate) when_work_ends: WorkEnded,
    pub(crate) compatibility: Option<Compatibility>,
}

impl CandidateConfig {
    /// The election path.
    pub fn path(&self) -> &ElectionPath {
        &self.path
    }

    /// The candidate id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The compatibility mode, if any ([`CandidateBuilder::compatibility`]).
    pub fn compatibility(&self) -> Option<Compatibility> {
        self.compatibility
    }

    /// The leader-work grace for a session of `timeout`: the one configured, or a quarter of the
    /// step-down budget. Fails when it does not fit inside the budget.
    pub fn grace_for(&self, timeout: Duration) -> Result<Duration, ConfigError> {
        grace_for(self.grace, self.step_down_fraction, timeout)
    }
}

fn grace_for(
    grace: Option<Duration>,
    fraction: f64,
    timeout: Duration,
) -> Result<Duration, ConfigError> {
    let budget = timeout.mul_f64(fraction);
    if budget.is_zero() {
        // A fraction so small that the budget rounds to nothing: no grace can fit in it.
        return Err(ConfigError::StepDownFraction(fraction));
    }
    match grace {
        None => Ok(budget / 4),
        Some(grace) if grace < budget => Ok(grace),
        Some(grace) => Err(ConfigError::GraceTooLong { grace, budget }),
    }
}

impl std::fmt::Debug for CandidateConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CandidateConfig")
            .field("path", &self.path)
            .field("id", &self.id)
            .field("payload_len", &self.payload.len())
            .field("session_timeout", &self.session_timeout)
            .field("step_down_fraction", &self.step_down_fraction)
            .field("grace", &self.grace)
            .field("rejoin_on_expiry", &self.rejoin_on_expiry)
            .field("has_leader_work", &self.work.is_some())
            .field("when_work_ends", &self.when_work_ends)
            .finish()
    }
}

/// Builds a candidate: every setting is checked by [`build`](Self::build) (or
/// [`join`](Self::join)) before anything touches the backend.
///
/// ```
/// use std::time::Duration;
/// use election_core::Candidate;
///
/// let config = Candidate::builder("/services/maxwell/leader", "maxwell-1")
///     .payload(b"10.0.0.7:8080".to_vec())
///     .session_timeout(Duration::from_secs(10))
///     .step_down_fraction(0.6)
///     .leader_grace(Duration::from_secs(1))
///     .build()
///     .unwrap();
/// assert_eq!(config.id(), "maxwell-1");
///
/// // Bad input is a typed error, before any side effect.
/// let err = Candidate::builder("/a//b", "x").build().unwrap_err();
/// assert!(matches!(err, election_core::ConfigError::InvalidPath { .. }));
/// ```
#[must_use]
pub struct CandidateBuilder {
    path: String,
    id: String,
    payload: Vec<u8>,
    session_timeout: Duration,
    step_down_fraction: f64,
    grace: Option<Duration>,
    rejoin_on_expiry: bool,
    work: Option<LeaderWork>,
    when_work_ends: WorkEnded,
    compatibility: Option<Compatibility>,
}

impl std::fmt::Debug for CandidateBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CandidateBuilder")
            .field("path", &self.path)
            .field("id", &self.id)
            .field("payload_len", &self.payload.len())
            .field("session_timeout", &self.session_timeout)
            .field("step_down_fraction", &self.step_down_fraction)
            .field("grace", &self.grace)
            .field("rejoin_on_expiry", &self.rejoin_on_expiry)
            .field("has_leader_work", &self.work.is_some())
            .field("compatibility", &self.compatibility)
            .finish()
    }
}

impl CandidateBuilder {
    pub(crate) fn new(path: impl Into<String>, id: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            id: id.into(),
            payload: Vec::new(),
            session_timeout: DEFAULT_SESSION_TIMEOUT,
            step_down_fraction: DEFAULT_STEP_DOWN_FRACTION,
            grace: None,
            rejoin_on_expiry: true,
            work: None,
            when_work_ends: WorkEnded::default(),
            compatibility: None,
        }
    }

    /// Bytes that followers and observers can read (an address, say). At most
    /// [`MAX_PAYLOAD_LEN`].
    pub fn payload(mut self, payload: impl Into<Vec<u8>>) -> Self {
        self.payload = payload.into();
        self
    }

    /// The session timeout asked of the backend when the candidate opens its own session
    /// ([`join`](Self::join)); default 10 s. A candidate joined through a [`Client`] uses the
    /// client's session.
    pub fn session_timeout(mut self, timeout: Duration) -> Self {
        self.session_timeout = timeout;
        self
    }

    /// How much of the session timeout a leader out of contact may keep leading, counted from
    /// its last contact: strictly between 0 and 1, default 2/3.
    pub fn step_down_fraction(mut self, fraction: f64) -> Self {
        self.step_down_fraction = fraction;
        self
    }

    /// How long leader work may take to stop once its term ends, before it is aborted. Must be
    /// shorter than `step_down_fraction x session_timeout`; default a quarter of that.
    pub fn leader_grace(mut self, grace: Duration) -> Self {
        self.grace = Some(grace);
        self
    }

    /// Whether a candidate whose session ended rejoins with a new session (default `true`).
    pub fn rejoin_on_expiry(mut self, rejoin: bool) -> Self {
        self.rejoin_on_expiry = rejoin;
        self
    }

    /// Work to run while leading: called once per term with the [`Term`] (its token and its
    /// cancellation), in a task of its own. The candidate waits for it, at most the grace,
    /// before giving up its entry.
    ///
    /// The work may return `()` or `Result<(), E>` for any `E: Display` ([`WorkResult`]). A
    /// panic in it (or in the closure itself) is caught: it ends the work, never the candidate.
    /// When the work ends by itself while its term is live, the term ends as
    /// [`when_work_ends`](Self::when_work_ends) says (by default: resign and rejoin at the tail).
    pub fn on_leader<F, Fut>(mut self, work: F) -> Self
    where
        F: Fn(Term) -> Fut + Send + Sync + 'static,
        Fut: Future + Send + 'static,
        Fut::Output: WorkResult,
    {
        self.work = Some(Arc::new(move |term| {
            let work = work(term);
            Box::pin(async move { work.await.into_outcome() })
        }));
        self
    }

    /// What to do when the leader work ends by itself (returns, fails or panics) while its term
    /// is live; default [`WorkEnded::Resign`].
    pub fn when_work_ends(mut self, policy: WorkEnded) -> Self {
        self.when_work_ends = policy;
        self
    }

    /// Names this candidate's entries so that one other implementation sharing the path
    /// (Curator's `LeaderLatch`, Curator's `InterProcessMutex`/`LeaderSelector`, or kazoo's
    /// `Lock`/`Election`) orders them by sequence among its own nodes, for a rolling migration
    /// from it; see [`Compatibility`]. The entry's data is then the id as plain UTF-8, so no
    /// payload may be set. ZooKeeper only. Default: none (our own names and record).
    pub fn compatibility(mut self, mode: Compatibility) -> Self {
        self.compatibility = Some(mode);
        self
    }

    /// Checks every setting.
    pub fn build(self) -> Result<CandidateConfig, ConfigError> {
        let path = ElectionPath::new(self.path)?;
        validate_id(&self.id)?;
        if self.payload.len() > MAX_PAYLOAD_LEN {
            return Err(ConfigError::PayloadTooLarge {
                len: self.payload.len(),
                max: MAX_PAYLOAD_LEN,
            });
        }
        if let Some(mode) = self.compatibility {
            if !self.payload.is_empty() {
                return Err(ConfigError::PayloadWithCompatibility(mode));
            }
        }
        validate_session_timeout(self.session_timeout)?;
        let f = self.step_down_fraction;
        if !(f.is_finite() && f > 0.0 && f < 1.0) {
            return Err(ConfigError::StepDownFraction(f));
        }
        if self.grace == Some(Duration::ZERO) {
            return Err(ConfigError::ZeroDuration("leader grace"));
        }
        grace_for(self.grace, f, self.session_timeout)?;
        Ok(CandidateConfig {
            path,
            id: self.id,
            payload: self.payload,
            session_timeout: self.session_timeout,
            step_down_fraction: f,
            grace: self.grace,
            rejoin_on_expiry: self.rejoin_on_expiry,
            work: self.work,
            when_work_ends: self.when_work_ends,
            compatibility: self.compatibility,
        })
    }

    /// Checks every setting, opens a session of its own on `backend` (an
    /// `Arc<dyn CoordinationBackend>`, or a backend that converts into one, such as a
    /// `ZkBackend` or a `MemCluster`) and joins the election. Stopping (or dropping) the
    /// candidate closes that session.
    pub async fn join(
        self,
        backend: impl Into<Arc<dyn CoordinationBackend>>,
    ) -> Result<Candidate, ElectionError> {
        let config = self.build()?;
        let client = Client::builder(backend)
            .session_timeout(config.session_timeout)
            .connect()
            .await?;
        client.join(config).await
    }
}

pub(crate) fn validate_session_timeout(timeout: Duration) -> Result<(), ConfigError> {
    if timeout.is_zero() {
        return Err(ConfigError::ZeroDuration("session timeout"));
    }
    if timeout > MAX_SESSION_TIMEOUT {
        return Err(ConfigError::DurationTooLong {
            what: "session timeout",
            value: timeout,
            max: MAX_SESSION_TIMEOUT,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::MAX_ID_LEN;

    fn b() -> CandidateBuilder {
        CandidateBuilder::new("/e", "c1")
    }

    #[test]
    fn defaults_are_valid() {
        let c = b().build().unwrap();
        assert_eq!(c.session_timeout, DEFAULT_SESSION_TIMEOUT);
        assert_eq!(
            c.grace_for(Duration::from_secs(12)).unwrap(),
            Duration::from_secs(2)
        );
    }

    #[test]
    fn the_config_returns_what_was_built() {
        let c = b().build().unwrap();
        assert_eq!(
            (c.path().as_str(), c.id(), c.compatibility()),
            ("/e", "c1", None)
        );
        let c = CandidateBuilder::new("/x/y", "kazoo-1")
            .compatibility(Compatibility::Kazoo)
            .build()
            .unwrap();
        assert_eq!(
            (c.path().as_str(), c.id(), c.compatibility()),
            ("/x/y", "kazoo-1", Some(Compatibility::Kazoo))
        );
    }

    /// Debug output shows every setting but never the payload's bytes (it may hold an address
    /// or a secret), only its length.
    #[test]
    fn debug_shows_the_settings_not_the_payload() {
        let builder = b()
            .payload(b"secret-bytes".to_vec())
            .leader_grace(Duration::from_millis(700));
        let text = format!("{builder:?}");
        for part in [
            "\"/e\"",
            "\"c1\"",
            "payload_len: 12",
            "700ms",
            "rejoin_on_expiry: true",
        ] {
            assert!(text.contains(part), "{text} should show {part}");
        }
        assert!(!text.contains("secret"), "{text}");
        let text = format!("{:?}", builder.build().unwrap());
        for part in [
            "\"c1\"",
            "payload_len: 12",
            "700ms",
            "has_leader_work: false",
        ] {
            assert!(text.contains(part), "{text} should show {part}");
        }
        assert!(!text.contains("secret"), "{text}");
    }

    /// Each limit is inclusive: the largest payload and the longest session timeout are
    /// accepted; a grace must be strictly shorter than the step-down budget.
    #[test]
    fn limits_are_exact() {
        assert!(b().payload(vec![0; MAX_PAYLOAD_LEN]).build().is_ok());
        assert!(b().session_timeout(MAX_SESSION_TIMEOUT).build().is_ok());
        // 4 s x 0.5: a budget of exactly 2 s.
        let budget = b()
            .session_timeout(Duration::from_secs(4))
            .step_down_fraction(0.5);
        let just_under = Duration::from_secs(2) - Duration::from_nanos(1);
        assert_eq!(
            budget
                .leader_grace(just_under)
                .build()
                .unwrap()
                .grace_for(Duration::from_secs(4)),
            Ok(just_under)
        );
        let budget = b()
            .session_timeout(Duration::from_secs(4))
            .step_down_fraction(0.5);
        assert_eq!(
            budget
                .leader_grace(Duration::from_secs(2))
                .build()
                .unwrap_err(),
            ConfigError::GraceTooLong {
                grace: Duration::from_secs(2),
                budget: Duration::from_secs(2)
            }
        );
    }

    #[test]
    fn every_bad_setting_is_a_typed_error() {
        assert_eq!(
            CandidateBuilder::new("/e", "").build().unwrap_err(),
            ConfigError::EmptyId
        );
        assert!(matches!(
            CandidateBuilder::new("/e", "x".repeat(MAX_ID_LEN + 1))
                .build()
                .unwrap_err(),
            ConfigError::IdTooLong { .. }
        ));
        assert!(matches!(
            CandidateBuilder::new("/e", "a\nb").build().unwrap_err(),
            ConfigError::IdHasControl(_)
        ));
        assert!(matches!(
            b().payload(vec![0; MAX_PAYLOAD_LEN + 1])
                .build()
                .unwrap_err(),
            ConfigError::PayloadTooLarge { .. }
        ));
        assert_eq!(
            b().session_timeout(Duration::ZERO).build().unwrap_err(),
            ConfigError::ZeroDuration("session timeout")
        );
        assert!(matches!(
            b().session_timeout(Duration::from_secs(7200))
                .build()
                .unwrap_err(),
            ConfigError::DurationTooLong { .. }
        ));
        for f in [0.0, 1.0, -0.5, 1.5, f64::NAN, f64::INFINITY] {
            assert!(matches!(
                b().step_down_fraction(f).build().unwrap_err(),
                ConfigError::StepDownFraction(_)
            ));
        }
        assert_eq!(
            b().leader_grace(Duration::ZERO).build().unwrap_err(),
            ConfigError::ZeroDuration("leader grace")
        );
        assert!(matches!(
            b().session_timeout(Duration::from_secs(3))
                .leader_grace(Duration::from_secs(2))
                .build()
                .unwrap_err(),
            ConfigError::GraceTooLong { .. }
        ));
        // Settings are checked in order: a zero fraction is named before a zero grace (a
        // zero fraction alone would also fail later, as a zero budget).
        assert_eq!(
            b().step_down_fraction(0.0)
                .leader_grace(Duration::ZERO)
                .build()
                .unwrap_err(),
            ConfigError::StepDownFraction(0.0)
        );
        // Found by the `input` fuzzer: a budget that rounds to zero left a default grace of 0.
        assert!(matches!(
            b().step_down_fraction(1e-300).build().unwrap_err(),
            ConfigError::StepDownFraction(_)
        ));
        assert!(matches!(
            CandidateBuilder::new("relative", "c").build().unwrap_err(),
            ConfigError::InvalidPath { .. }
        ));
    }
}
