//! A stream's explanation checked as it accumulates: text is released a sentence at a time, each sentence
//! checked before it leaves, so a sentence that contradicts the score never reaches the caller; the whole text
//! is checked for a top field when the stream ends.

use super::{Grounds, PromptText, Verdict, text};

/// What the gate says after a piece of text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GateStep {
    /// Checked sentences to send now (possibly empty: the sentence is not finished).
    Release(String),
    /// A sentence failed: stop the stream; nothing of it was released.
    Fail(Verdict),
}

/// Holds the unfinished sentence of a stream and checks each one as it completes.
#[derive(Debug)]
pub struct SentenceGate {
    grounds: Grounds,
    prompt: PromptText,
    pending: String,
    released: String,
}

impl SentenceGate {
    /// A gate for an explanation of `grounds` written for `prompt`.
    pub fn new(grounds: Grounds, prompt: PromptText) -> Self {
        Self {
            grounds,
            prompt,
            pending: String::new(),
            released: String::new(),
        }
    }

    /// Whether any text has been released.
    pub fn released_any(&self) -> bool {
        !self.released.is_empty()
    }

    /// The grounds the stream is checked against.
    pub fn grounds(&self) -> &Grounds {
        &self.grounds
    }

    /// Takes the next piece of the stream; releases the sentences it completes once each passes.
    pub fn push(&mut self, delta: &str) -> GateStep {
        self.pending.push_str(delta);
        let mut release = String::new();
        while let Some(end) = text::sentence_end(&self.pending) {
            let sentence: String = self.pending.drain(..end).collect();
            let verdict = self.grounds.check_sentence(&sentence, &self.prompt);
            if !verdict.passed() {
                return GateStep::Fail(verdict);
            }
            release.push_str(&sentence);
        }
        self.released.push_str(&release);
        GateStep::Release(release)
    }

    /// The stream ended: checks the unfinished sentence and, over the whole text, that a top field is named.
    /// On success, returns the rest to send.
    pub fn finish(&mut self) -> Result<String, Verdict> {
        let rest = std::mem::take(&mut self.pending);
        let verdict = self.grounds.check_sentence(&rest, &self.prompt);
        if !verdict.passed() {
            return Err(verdict);
        }
        self.released.push_str(&rest);
        if !self.grounds.names_top_field(&self.released) {
            return Err(Verdict::NoTopField);
        }
        Ok(rest)
    }
}
