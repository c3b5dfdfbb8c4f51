//! [`FencedStore`]: a test double of the downstream system a leader writes to, which checks
//! fencing tokens as a real one should, and records what it accepted for the checks.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::time::Instant;

use crate::backend::FencingToken;
use crate::testing::invariants::Violation;

/// The contract line the store's checks report.
const LINE: &str = "fencing";

/// A write the store accepted (or, for an [`unfenced`](FencedStore::unfenced) store, received).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FencedWrite {
    /// The fencing token the write carried.
    pub token: FencingToken,
    /// What was written.
    pub value: String,
    /// When, on tokio's clock (virtual under a paused clock).
    pub at: Instant,
}

/// The error of a write whose token is lower than the highest the store has accepted: the
/// writer's term is over and a newer leader has written.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("stale fencing token {token}: the store has accepted {highest}")]
pub struct StaleToken {
    /// The token the rejected write carried.
    pub token: FencingToken,
    /// The highest token the store had accepted.
    pub highest: FencingToken,
}

/// A downstream store that fences: it rejects any write whose token is lower than the highest it
/// has accepted, and records every accepted write with its (virtual) time. Clones share one
/// store, so hand one to each candidate's leader work. Users of the `election` crate reach it as
/// `election::testing::FencedStore` (feature `testing`).
///
/// [`check`](Self::check) verifies what a fenced downstream must see: no write of an older term
/// after one of a newer term, and the writes of each term in one contiguous run. A store made
/// with [`unfenced`](Self::unfenced) accepts everything (a downstream that ignores the token),
/// so that the checks can catch a leader that wrote after its successor.
///
/// ```
/// use election_core::testing::FencedStore;
/// use election_core::FencingToken;
///
/// let store = FencedStore::new();
/// store.write(FencingToken(5), "from term 5").unwrap();
/// store.write(FencingToken(9), "from term 9").unwrap();
/// // The leader of term 5 wakes from a pause and writes again: rejected.
/// let err = store.write(FencingToken(5), "late").unwrap_err();
/// assert_eq!(err.highest, FencingToken(9));
/// assert_eq!(store.writes().len(), 2);
/// assert_eq!(store.rejected(), 1);
/// store.check().unwrap();
/// ```
#[derive(Clone, Default)]
pub struct FencedStore {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Default)]
struct Inner {
    /// When the store was made: times in the checks' messages are offsets from it, so that
    /// they are the same on every run of a seed.
    created: Option<Instant>,
    unfenced: bool,
    highest: Option<FencingToken>,
    writes: Vec<FencedWrite>,
    rejected: usize,
}

impl FencedStore {
    /// An empty store that enforces fencing.
    ///
    /// ```
    /// let store = election_core::testing::FencedStore::new();
    /// assert!(store.writes().is_empty());
    /// ```
    pub fn new() -> Self {
        let store = Self::default();
        store.lock().created = Some(Instant::now());
        store
    }

    /// An empty store that ignores tokens and accepts every write, as a downstream that does
    /// not fence; [`check`](Self::check) then shows whether the leaders' writes interleaved.
    ///
    /// ```
    /// use election_core::testing::FencedStore;
    /// use election_core::FencingToken;
    ///
    /// let store = FencedStore::unfenced();
    /// store.write(FencingToken(9), "new leader").unwrap();
    /// store.write(FencingToken(5), "old leader, after a pause").unwrap();
    /// let violation = store.check().unwrap_err();
    /// assert_eq!(violation.line, "fencing");
    /// ```
    pub fn unfenced() -> Self {
        let store = Self::new();
        store.lock().unfenced = true;
        store
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves plain data behind: keep using it.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes `value` with `token`: accepted and recorded at `Instant::now()` unless the store
    /// has accepted a higher token (then [`StaleToken`], and nothing is recorded). A token equal
    /// to the highest is accepted: a term writes many times.
    ///
    /// ```
    /// use election_core::testing::FencedStore;
    /// use election_core::FencingToken;
    ///
    /// let store = FencedStore::new();
    /// store.write(FencingToken(3), "a").unwrap();
    /// store.write(FencingToken(3), "b").unwrap();
    /// assert!(store.write(FencingToken(2), "c").is_err());
    /// ```
    pub fn write(&self, token: FencingToken, value: impl Into<String>) -> Result<(), StaleToken> {
        let value = value.into();
        let mut inner = self.lock();
        if let Some(highest) = inner.highest {
            if token < highest && !inner.unfenced {
                inner.rejected += 1;
                tracing::warn!(token = token.get(), highest = highest.get(), value = %value,
                    "fenced store rejected a write with a stale token");
                return Err(StaleToken { token, highest });
            }
        }
        tracing::debug!(token = token.get(), value = %value, unfenced = inner.unfenced,
            "fenced store accepted a write");
        inner.highest = Some(inner.highest.map_or(token, |h| h.max(token)));
        inner.writes.push(FencedWrite {
            token,
            value,
            at: Instant::now(),
        });
        Ok(())
    }

    /// Raises the store's token to `token` without writing anything: what a new leader does
    /// before it reads where to resume, so that nothing of an older term can be accepted
    /// between its read and its first write (Kafka's `InitProducerId`, which bumps the
    /// producer epoch; in SQL, `UPDATE fence SET token = $1 WHERE token <= $1`, then the read
    /// in the same transaction). Fails like [`write`](Self::write) if a higher token was
    /// accepted; an [`unfenced`](Self::unfenced) store ignores it.
    ///
    /// ```
    /// use election_core::testing::FencedStore;
    /// use election_core::FencingToken;
    ///
    /// let store = FencedStore::new();
    /// store.write(FencingToken(3), "record 0").unwrap();
    /// store.fence(FencingToken(8)).unwrap(); // the new leader, before reading
    /// assert!(store.write(FencingToken(3), "record 1").is_err()); // the old one, too late
    /// assert_eq!(store.highest(), Some(FencingToken(8)));
    /// assert_eq!(store.writes().len(), 1);
    /// ```
    pub fn fence(&self, token: FencingToken) -> Result<(), StaleToken> {
        let mut inner = self.lock();
        if inner.unfenced {
            return Ok(());
        }
        if let Some(highest) = inner.highest {
            if token < highest {
                inner.rejected += 1;
                return Err(StaleToken { token, highest });
            }
        }
        inner.highest = Some(inner.highest.map_or(token, |h| h.max(token)));
        Ok(())
    }

    /// The accepted writes, in the order they were accepted.
    ///
    /// ```
    /// use election_core::testing::FencedStore;
    /// use election_core::FencingToken;
    ///
    /// let store = FencedStore::new();
    /// store.write(FencingToken(1), "x").unwrap();
    /// assert_eq!(store.writes()[0].value, "x");
    /// ```
    pub fn writes(&self) -> Vec<FencedWrite> {
        self.lock().writes.clone()
    }

    /// How many writes were rejected for a stale token.
    ///
    /// ```
    /// let store = election_core::testing::FencedStore::new();
    /// assert_eq!(store.rejected(), 0);
    /// ```
    pub fn rejected(&self) -> usize {
        self.lock().rejected
    }

    /// The highest token accepted so far.
    ///
    /// ```
    /// use election_core::testing::FencedStore;
    /// use election_core::FencingToken;
    ///
    /// let store = FencedStore::new();
    /// assert_eq!(store.highest(), None);
    /// store.write(FencingToken(4), "x").unwrap();
    /// assert_eq!(store.highest(), Some(FencingToken(4)));
    /// ```
    pub fn highest(&self) -> Option<FencingToken> {
        self.lock().highest
    }

    /// Both checks: [`check_terms_ordered`](Self::check_terms_ordered) and
    /// [`check_terms_contiguous`](Self::check_terms_contiguous).
    ///
    /// ```
    /// use election_core::testing::FencedStore;
    /// use election_core::FencingToken;
    ///
    /// let store = FencedStore::new();
    /// store.write(FencingToken(1), "x").unwrap();
    /// store.write(FencingToken(2), "y").unwrap();
    /// assert!(store.check().is_ok());
    /// ```
    pub fn check(&self) -> Result<(), Violation> {
        self.check_terms_ordered()?;
        self.check_terms_contiguous()
    }

    /// No accepted write of an older term (a lower token) after one of a newer term.
    ///
    /// ```
    /// use election_core::testing::FencedStore;
    /// use election_core::FencingToken;
    ///
    /// let store = FencedStore::unfenced();
    /// store.write(FencingToken(2), "new").unwrap();
    /// store.write(FencingToken(1), "old").unwrap();
    /// assert!(store.check_terms_ordered().is_err());
    /// ```
    pub fn check_terms_ordered(&self) -> Result<(), Violation> {
        let inner = self.lock();
        check_ordered(&inner.writes, inner.created)
    }

    /// The accepted writes of each term form one contiguous run: no term writes, is followed by
    /// another, and writes again.
    ///
    /// ```
    /// use election_core::testing::FencedStore;
    /// use election_core::FencingToken;
    ///
    /// let store = FencedStore::unfenced();
    /// store.write(FencingToken(1), "a").unwrap();
    /// store.write(FencingToken(2), "b").unwrap();
    /// store.write(FencingToken(1), "c").unwrap();
    /// assert!(store.check_terms_contiguous().is_err());
    /// ```
    pub fn check_terms_contiguous(&self) -> Result<(), Violation> {
        let inner = self.lock();
        check_contiguous(&inner.writes, inner.created)
    }
}

/// `at` as an offset from the store's creation (or from the first write).
fn offset(at: Instant, base: Option<Instant>) -> String {
    let base = base.unwrap_or(at);
    format!("+{:.6}s", at.saturating_duration_since(base).as_secs_f64())
}

fn check_ordered(writes: &[FencedWrite], base: Option<Instant>) -> Result<(), Violation> {
    let base = base.or(writes.first().map(|w| w.at));
    let mut newest: Option<&FencedWrite> = None;
    for w in writes {
        if let Some(n) = newest {
            if w.token < n.token {
                return Err(Violation::new(
                    LINE,
                    format!(
                        "a write of term {} ({:?}) at {} was accepted after one of the newer term {} ({:?}) at {}",
                        w.token, w.value, offset(w.at, base), n.token, n.value, offset(n.at, base)
                    ),
                ));
            }
        }
        if newest.is_none_or(|n| w.token > n.token) {
            newest = Some(w);
        }
    }
    Ok(())
}

fn check_contiguous(writes: &[FencedWrite], base: Option<Instant>) -> Result<(), Violation> {
    let base = base.or(writes.first().map(|w| w.at));
    let mut ended: Vec<FencingToken> = Vec::new();
    for pair in writes.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        if a.token != b.token {
            ended.push(a.token);
            if ended.contains(&b.token) {
                return Err(Violation::new(
                    LINE,
                    format!(
                        "term {} wrote again ({:?} at {}) after term {} had written ({:?} at {})",
                        b.token,
                        b.value,
                        offset(b.at, base),
                        a.token,
                        a.value,
                        offset(a.at, base)
                    ),
                ));
            }
        }
    }
    Ok(())
}

impl fmt::Debug for FencedStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = self.lock();
        f.debug_struct("FencedStore")
            .field("unfenced", &inner.unfenced)
            .field("highest", &inner.highest)
            .field("writes", &inner.writes.len())
            .field("rejected", &inner.rejected)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn t(n: u64) -> FencingToken {
        FencingToken(n)
    }

    #[tokio::test(start_paused = true)]
    async fn accepts_equal_and_higher_tokens_and_records_virtual_times() {
        let store = FencedStore::new();
        let start = Instant::now();
        store.write(t(3), "a").unwrap();
        tokio::time::sleep(Duration::from_secs(2)).await;
        store.write(t(3), "b").unwrap();
        store.write(t(7), "c").unwrap();
        let writes = store.writes();
        assert_eq!(writes.len(), 3);
        assert_eq!(writes[0].at, start);
        assert_eq!(writes[1].at, start + Duration::from_secs(2));
        assert_eq!(store.highest(), Some(t(7)));
        assert_eq!(store.rejected(), 0);
        store.check().unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn rejects_lower_tokens_and_records_nothing_of_them() {
        let store = FencedStore::new();
        store.write(t(7), "new").unwrap();
        let err = store.write(t(3), "old").unwrap_err();
        assert_eq!(
            err,
            StaleToken {
                token: t(3),
                highest: t(7)
            }
        );
        assert_eq!(store.writes().len(), 1);
        assert_eq!(store.rejected(), 1);
        assert_eq!(store.highest(), Some(t(7)));
        store.check().unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn clones_share_one_store() {
        let store = FencedStore::new();
        let other = store.clone();
        other.write(t(5), "x").unwrap();
        assert!(store.write(t(4), "y").is_err());
        assert_eq!(store.writes(), other.writes());
        let debug = format!("{store:?}");
        assert!(
            debug.contains("writes: 1") && debug.contains("rejected: 1"),
            "{debug}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn ordered_check_bites_on_an_older_term_after_a_newer() {
        let store = FencedStore::unfenced();
        store.write(t(5), "new").unwrap();
        store.write(t(3), "old").unwrap();
        assert_eq!(store.rejected(), 0);
        let v = store.check_terms_ordered().unwrap_err();
        assert_eq!(v.line, "fencing");
        assert!(
            v.detail.contains("term 3") && v.detail.contains("newer term 5"),
            "{v}"
        );
        // A single write of an old term after a new one is still contiguous.
        store.check_terms_contiguous().unwrap();
        assert!(store.check().is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn contiguous_check_bites_on_a_term_that_writes_again() {
        let store = FencedStore::unfenced();
        store.write(t(3), "a").unwrap();
        store.write(t(5), "b").unwrap();
        store.write(t(3), "c").unwrap();
        let v = store.check_terms_contiguous().unwrap_err();
        assert!(v.detail.contains("term 3 wrote again"), "{v}");
        // Ordered also fails, and check reports the first.
        assert!(store.check_terms_ordered().is_err());
        assert_eq!(
            store.check().unwrap_err(),
            store.check_terms_ordered().unwrap_err()
        );
    }

    #[test]
    fn contiguity_alone_is_a_separate_rule() {
        // Checked over plain data: terms out of order but each contiguous passes contiguity;
        // interleaved increasing terms cannot happen, so contiguity is checked on its own data.
        let at = Instant::now();
        let w = |n: u64| FencedWrite {
            token: t(n),
            value: String::new(),
            at,
        };
        assert!(check_contiguous(&[w(1), w(1), w(2), w(2)], None).is_ok());
        assert!(check_contiguous(&[w(2), w(1), w(1)], None).is_ok());
        assert!(check_ordered(&[w(2), w(1), w(1)], None).is_err());
        assert!(check_contiguous(&[w(1), w(2), w(1)], None).is_err());
        assert!(check_ordered(&[w(1), w(2), w(2), w(3)], None).is_ok());
    }
}
