//! Revealing a streamed reply smoothly. The worker posts a reply's text in pieces, about ten a
//! second (each post is a billed gateway message); shown as they come, 100 ms pieces would read
//! as jumps. Instead the page shows a growing part of the text at every animation frame, so that
//! what has arrived is shown by about when the next piece is due: the reader sees a steady stream
//! a little behind the wire, whatever the posting interval.

/// How far behind the wire the reveal runs before it has seen two pieces arrive (ms): the
/// worker's default posting interval.
const DEFAULT_WINDOW_MS: f64 = 100.0;
/// The reveal window follows the observed time between pieces, within these bounds (ms).
const MIN_WINDOW_MS: f64 = 30.0;
const MAX_WINDOW_MS: f64 = 1000.0;

/// The reveal state of one reply: the one streaming now, or the last one that did until its
/// text is all shown.
#[derive(Debug, Clone, PartialEq)]
pub struct Reveal {
    /// The reply being revealed.
    id: Option<String>,
    /// Bytes of its text shown (always a char boundary of it).
    shown: usize,
    /// Bytes of its text known when text last arrived.
    known: usize,
    /// When text last arrived (ms, the page's clock).
    last_arrival: f64,
    /// About how long the text that arrives now takes to show: the time between pieces.
    window_ms: f64,
}

impl Default for Reveal {
    fn default() -> Self {
        Reveal { id: None, shown: 0, known: 0, last_arrival: 0.0, window_ms: DEFAULT_WINDOW_MS }
    }
}

impl Reveal {
    /// Notes the streaming reply `id` holding `len` bytes of text at `now`; a reply seen for the
    /// first time starts from nothing shown.
    pub fn arrived(&mut self, id: &str, len: usize, now: f64) {
        if self.id.as_deref() != Some(id) {
            *self = Reveal { id: Some(id.to_string()), known: len, last_arrival: now, ..Reveal::default() };
            return;
        }
        if len < self.known {
            // A restarted or regenerated reply (same id) starts again, pace and all.
            *self = Reveal { id: Some(id.to_string()), known: len, last_arrival: now, ..Reveal::default() };
            return;
        }
        if len > self.known {
            let gap = now - self.last_arrival;
            self.window_ms = (0.7 * self.window_ms + 0.3 * gap).clamp(MIN_WINDOW_MS, MAX_WINDOW_MS);
            self.last_arrival = now;
        }
        self.known = len;
    }

    /// Shows more of `text` (the revealed reply's text) after `elapsed` ms: a share of what is not
    /// shown yet, in proportion to `elapsed` over the window, and at least one character. Returns
    /// whether some is still hidden.
    pub fn advance(&mut self, text: &str, elapsed: f64) -> bool {
        let hidden = text.len().saturating_sub(self.shown);
        if hidden == 0 {
            self.shown = text.len();
            return false;
        }
        let share = (elapsed.max(0.0) / self.window_ms).min(1.0);
        let step = ((hidden as f64 * share).ceil() as usize).max(1);
        let mut shown = (self.shown + step).min(text.len());
        while !text.is_char_boundary(shown) {
            shown += 1;
        }
        self.shown = shown;
        shown < text.len()
    }

    /// The reply being revealed, if any.
    pub fn id(&self) -> Option<&str> {
        self.id.as_deref()
    }

    /// How much of message `id`'s `text` to show: all of it, unless it is the reply being revealed.
    pub fn visible<'t>(&self, id: &str, text: &'t str) -> &'t str {
        match self.id.as_deref() {
            Some(revealed) if revealed == id => {
                // The text may have been replaced by another of the same length or longer (a
                // reloaded reply): never cut inside a character.
                let mut end = self.shown.min(text.len());
                while !text.is_char_boundary(end) {
                    end -= 1;
                }
                &text[..end]
            }
            _ => text,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pieces every 100 ms, frames every 16 ms: the text grows at every frame, never jumps by a
    /// whole piece, and is all shown soon after the last piece.
    #[test]
    fn pieces_every_100_ms_are_shown_a_little_at_every_frame() {
        let mut reveal = Reveal::default();
        let mut text = String::new();
        let (mut now, mut next_piece, mut growths, mut largest_step) = (0.0, 0.0, 0, 0);
        let mut shown_before = 0;
        while now < 1000.0 {
            if now >= next_piece {
                text.push_str(&"token ".repeat(20)); // 20 tokens per 100 ms: 200 tokens/s
                reveal.arrived("r1", text.len(), now);
                next_piece += 100.0;
            }
            now += 16.0;
            reveal.advance(&text, 16.0);
            let shown = reveal.visible("r1", &text).len();
            if shown > shown_before {
                growths += 1;
                largest_step = largest_step.max(shown - shown_before);
            }
            shown_before = shown;
        }
        let frames = (1000.0_f64 / 16.0).floor() as usize;
        assert!(growths >= frames - 1, "grew at {growths} of {frames} frames");
        assert!(largest_step < 120, "never a whole 120-byte piece at once: {largest_step}");
        let mut frames_to_finish = 0;
        while reveal.advance(&text, 16.0) {
            frames_to_finish += 1;
        }
        assert!(frames_to_finish < 40, "caught up {frames_to_finish} frames after the last piece");
        assert_eq!(reveal.visible("r1", &text), text);
    }

    #[test]
    fn other_messages_and_a_new_reply_are_not_held_back() {
        let mut reveal = Reveal::default();
        reveal.arrived("r1", 50, 0.0);
        assert_eq!(reveal.visible("q1", "a question"), "a question");
        assert_eq!(reveal.visible("r1", &"x".repeat(50)), "", "a new reply starts hidden");
        reveal.arrived("r2", 10, 5.0);
        assert_eq!(reveal.id(), Some("r2"));
        assert_eq!(reveal.visible("r1", "all of it"), "all of it", "the previous reply is shown whole");
    }

    #[test]
    fn the_shown_part_ends_on_a_character_and_follows_a_restart() {
        let mut reveal = Reveal::default();
        let text = "héllo wörld ✓✓✓";
        reveal.arrived("r1", text.len(), 0.0);
        for _ in 0..20 {
            reveal.advance(text, 3.0);
            assert!(text.is_char_boundary(reveal.visible("r1", text).len()));
        }
        reveal.arrived("r1", 0, 10.0); // a restart snapshot voids the text
        assert_eq!(reveal.visible("r1", text), "");
        // Text replaced in place by other text, of multi-byte characters where a cut was.
        let mut reveal = Reveal::default();
        reveal.arrived("r2", 4, 0.0);
        reveal.advance("abcd", 100.0);
        assert_eq!(reveal.visible("r2", "✓✓"), "✓", "cut back to a character's start");
    }
}
