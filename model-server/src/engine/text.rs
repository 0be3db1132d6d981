//! Token bytes to text: whole characters only, and nothing of a stop sequence.

/// Turns token bytes into text: holds back an incomplete UTF-8 character until its last byte
/// arrives, and holds back a tail that could be the start of a stop sequence until it is clear.
pub struct TextAssembler {
    bytes: Vec<u8>,
    held: String,
    stops: Vec<String>,
    stopped: bool,
}

impl TextAssembler {
    /// An assembler for these stop sequences (empty ones are ignored).
    pub fn new(stops: &[String]) -> Self {
        TextAssembler {
            bytes: Vec::new(),
            held: String::new(),
            stops: stops.iter().filter(|s| !s.is_empty()).cloned().collect(),
            stopped: false,
        }
    }

    /// Adds a token's bytes; returns the text that is safe to send, and whether a stop sequence
    /// was reached (the text before it is returned, the stop sequence is not).
    pub fn push(&mut self, token_bytes: &[u8]) -> (String, bool) {
        if self.stopped {
            return (String::new(), true);
        }
        self.bytes.extend_from_slice(token_bytes);
        let valid = match std::str::from_utf8(&self.bytes) {
            Ok(text) => text.len(),
            Err(error) if error.error_len().is_none() => error.valid_up_to(),
            Err(_) => {
                // Invalid bytes (not merely incomplete): replace them rather than stall.
                let text = String::from_utf8_lossy(&self.bytes).into_owned();
                self.bytes.clear();
                self.held.push_str(&text);
                return self.release();
            }
        };
        let complete: Vec<u8> = self.bytes.drain(..valid).collect();
        self.held.push_str(std::str::from_utf8(&complete).expect("validated above"));
        self.release()
    }

    fn release(&mut self) -> (String, bool) {
        if let Some(at) = self.stops.iter().filter_map(|s| self.held.find(s.as_str())).min() {
            self.stopped = true;
            let text = self.held[..at].to_string();
            self.held.clear();
            return (text, true);
        }
        let keep = self
            .stops
            .iter()
            .flat_map(|stop| (1..stop.len()).filter(|n| stop.is_char_boundary(*n)).map(move |n| &stop[..n]))
            .filter(|prefix| self.held.ends_with(prefix))
            .map(str::len)
            .max()
            .unwrap_or(0);
        let send = self.held.len() - keep;
        let text = self.held[..send].to_string();
        self.held.drain(..send);
        (text, false)
    }

    /// Whatever is still held when generation ends.
    pub fn finish(&mut self) -> String {
        if self.stopped {
            return String::new();
        }
        let mut rest = std::mem::take(&mut self.held);
        rest.push_str(&String::from_utf8_lossy(&std::mem::take(&mut self.bytes)));
        rest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_characters_wait_for_their_last_byte() {
        let mut text = TextAssembler::new(&[]);
        let euro = "€".as_bytes();
        assert_eq!(text.push(&euro[..1]), (String::new(), false));
        assert_eq!(text.push(&euro[1..]), ("€".to_string(), false));
    }

    #[test]
    fn stop_sequences_end_the_text_and_are_not_returned() {
        let mut text = TextAssembler::new(&["\nUser:".to_string()]);
        assert_eq!(text.push(b"Hello"), ("Hello".to_string(), false));
        assert_eq!(text.push(b"\nUs"), (String::new(), false), "a possible stop start is held");
        assert_eq!(text.push(b"er: hi"), (String::new(), true));
        assert_eq!(text.finish(), "");
        let mut text = TextAssembler::new(&["\nUser:".to_string()]);
        assert_eq!(text.push(b"a\nU"), ("a".to_string(), false));
        assert_eq!(text.push(b"nicorn"), ("\nUnicorn".to_string(), false), "released once it is clear");
    }
}
