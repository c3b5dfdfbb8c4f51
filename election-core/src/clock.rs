//! For backend authors: noticing a suspended host. The monotonic clock (what every deadline of
//! the election is measured on) stops while a host is suspended, but the service's clock does
//! not; a backend that keeps last contact must take the unseen time off it, or a resumed leader
//! would believe its contact fresher than it is.

use std::time::{Duration, SystemTime};

use tokio::time::Instant;

/// Wall-clock time unseen by the monotonic clock beyond which the host counts as suspended.
pub const SUSPEND_THRESHOLD: Duration = Duration::from_millis(50);

/// Wall-clock time that passed while the monotonic clock stood still (a suspended host).
///
/// Call [`check`](Self::check) at every wake-up of a backend's keep-alive loop; a forward jump of
/// the wall clock (an NTP step) reads as a suspend too, which is conservative, never unsafe; a
/// wall clock set back is ignored.
///
/// ```
/// use election_core::clock::SuspendDetector;
///
/// let mut clocks = SuspendDetector::new();
/// // ... later, in the keep-alive loop:
/// if let Some(unseen) = clocks.check() {
///     // take `unseen` off last contact, and report the session disconnected
///     # let _ = unseen;
/// }
/// ```
#[derive(Debug)]
pub struct SuspendDetector {
    mono: Instant,
    wall: SystemTime,
}

impl Default for SuspendDetector {
    fn default() -> Self {
        Self::new()
    }
}

impl SuspendDetector {
    /// Starts measuring from now.
    pub fn new() -> Self {
        Self {
            mono: Instant::now(),
            wall: SystemTime::now(),
        }
    }

    /// The time unseen by the monotonic clock since the last check, when above
    /// [`SUSPEND_THRESHOLD`].
    pub fn check(&mut self) -> Option<Duration> {
        self.check_at(Instant::now(), SystemTime::now())
    }

    fn check_at(&mut self, mono: Instant, wall: SystemTime) -> Option<Duration> {
        let mono_elapsed = mono.saturating_duration_since(self.mono);
        // A wall clock set back is not a suspend: ignore it.
        let wall_elapsed = wall.duration_since(self.wall).unwrap_or(Duration::ZERO);
        self.mono = mono;
        self.wall = wall;
        let unseen = wall_elapsed.saturating_sub(mono_elapsed);
        (unseen > SUSPEND_THRESHOLD).then_some(unseen)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sees_wall_time_the_monotonic_clock_missed() {
        let mut d = SuspendDetector::new();
        let (m0, w0) = (d.mono, d.wall);
        // Ordinary time: both clocks move alike.
        let s = Duration::from_secs(1);
        assert_eq!(d.check_at(m0 + s, w0 + s), None);
        // Suspended for 10 s: the wall clock moved, the monotonic clock did not.
        assert_eq!(
            d.check_at(m0 + s * 2, w0 + s * 12),
            Some(Duration::from_secs(10))
        );
        // A wall clock set back is not a suspend.
        assert_eq!(d.check_at(m0 + s * 3, w0), None);
    }

    #[test]
    fn ignores_ordinary_time() {
        let mut d = SuspendDetector::new();
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(d.check(), None);
    }
}
