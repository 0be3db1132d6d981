//! When a reply's pieces are posted: the first at once, later ones at most one post per interval,
//! each post carrying what arrived since the last (every post is a billed gateway message and a
//! signed HTTPS call; the web app reveals what arrives smoothly, so ten posts a second read as a
//! stream). Pure: the clock is passed in, so the rule is tested without a runtime.

use std::time::Duration;

use tokio::time::Instant;

/// One reply's posting rhythm.
#[derive(Debug, Default)]
pub(crate) struct Pacer {
    /// When the last post went (`None`: nothing posted yet, so the first goes at once).
    last_post: Option<Instant>,
    /// When what is held back must go.
    due: Option<Instant>,
}

impl Pacer {
    /// A piece arrived at `now`, with `interval` between posts: whether to post at once; if
    /// not, it waits until [`Pacer::due`].
    pub(crate) fn arrived(&mut self, now: Instant, interval: Duration) -> bool {
        match self.last_post {
            Some(posted) if now < posted + interval => {
                self.due.get_or_insert(posted + interval);
                false
            }
            _ => true,
        }
    }

    /// When what is held back must be posted, if anything is.
    pub(crate) fn due(&self) -> Option<Instant> {
        self.due
    }

    /// What was held is posted at `now` (`sent`: something was, rather than nothing).
    pub(crate) fn posted(&mut self, now: Instant, sent: bool) {
        self.due = None;
        if sent {
            self.last_post = Some(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INTERVAL: Duration = Duration::from_millis(100);

    #[test]
    fn the_first_piece_goes_at_once_and_later_ones_wait_for_the_interval() {
        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        let mut pacer = Pacer::default();
        assert!(pacer.arrived(at(0), INTERVAL), "the first piece at once");
        pacer.posted(at(0), true);
        assert!(!pacer.arrived(at(10), INTERVAL), "held within the interval");
        assert!(!pacer.arrived(at(60), INTERVAL), "and the next one with it");
        assert_eq!(pacer.due(), Some(at(100)), "due when the interval ends, not later");
        pacer.posted(at(100), true);
        assert_eq!(pacer.due(), None);
        assert!(pacer.arrived(at(230), INTERVAL), "a piece after a quiet interval goes at once");
    }

    #[test]
    fn a_wider_interval_for_a_busy_worker_holds_pieces_longer() {
        let start = Instant::now();
        let mut pacer = Pacer::default();
        pacer.posted(start, true);
        assert!(!pacer.arrived(start + Duration::from_millis(500), Duration::from_secs(1)));
        assert_eq!(pacer.due(), Some(start + Duration::from_secs(1)));
        // Nothing was sent when it fell due: an empty post is not a post, so the interval still
        // counts from the last real one and the next piece goes at once.
        pacer.posted(start + Duration::from_secs(1), false);
        assert_eq!(pacer.due(), None);
        assert!(pacer.arrived(start + Duration::from_millis(1500), Duration::from_secs(1)));
    }
}
