//! An answer that copies its prompt back ("Question about a customer: ...", the instructions, the fact list)
//! explains nothing. A sentence of six words or more found word for word in the prompt, outside the text the
//! prompt quotes for the answer to begin with, is an echo.

use super::text;

/// Fewest words a copied sentence needs to count (short ones, "The risk is low.", are fair to repeat).
const MIN_WORDS: usize = 6;

/// The prompt as the echo check reads it: normalised, with its quoted parts (the opening an answer is told to
/// begin with) removed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PromptText(String);

impl PromptText {
    /// The user message `prompt`.
    pub fn new(prompt: &str) -> Self {
        Self(text::normalise(&unquoted(prompt)))
    }

    /// Whether `sentence` (its quoted parts aside) is copied from the prompt.
    pub fn copied(&self, sentence: &str) -> bool {
        if self.0.trim().is_empty() {
            return false;
        }
        let normalised = text::normalise(&unquoted(sentence));
        normalised.split_whitespace().count() >= MIN_WORDS && self.0.contains(normalised.as_str())
    }
}

/// `text` without what it quotes.
fn unquoted(text: &str) -> String {
    text.split(['"', '\u{201c}', '\u{201d}'])
        .step_by(2)
        .collect::<Vec<_>>()
        .join(" | ")
}
