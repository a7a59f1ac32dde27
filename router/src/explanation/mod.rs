//! Hybrid explanations held to their score: the band a score falls in, the facts an explanation must agree with
//! ([`Grounds`]), the check of a text against them ([`Grounds::check`]), a deterministic explanation built from
//! the attributions when the LLM's fails ([`Grounds::template`]), and the sentence gate that checks a stream as it
//! accumulates ([`SentenceGate`]).
//!
//! The check is lexical and cheap (a few microseconds for a paragraph; `router/benches/explanation_check.rs`):
//! it reads direction claims ("likely to leave", "low risk", "safe"), with negation, against the band; stated
//! probabilities against the score; and whether one of the strongest fields is named, by the names the policy
//! gives each field or by the record's value of it ("month-to-month").

mod band;
mod claims;
mod echo;
mod gate;
mod probability;
mod template;
pub(crate) mod text;

pub use band::Band;
pub use echo::PromptText;
pub use gate::{GateStep, SentenceGate};

use std::collections::BTreeMap;

use classical::Influence;
use classical::schema::FeatureValue;

/// How a field may be named in prose: its names (the first is what prompts and templates say).
pub type FieldNames = BTreeMap<String, Vec<String>>;

/// Why an explanation failed its check (the first failure found, in this order of severity).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing against the score, and a top field named.
    Faithful,
    /// A sentence claims a direction the band does not allow ("likely to leave" at a low score).
    ContradictsBand,
    /// A stated probability is neither the score nor the threshold.
    MisstatesProbability,
    /// A sentence copies the prompt back.
    EchoesPrompt,
    /// None of the strongest fields is named.
    NoTopField,
}

impl Verdict {
    /// The verdict as metrics, spans and the response name it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Faithful => "faithful",
            Self::ContradictsBand => "contradicts_band",
            Self::MisstatesProbability => "misstates_probability",
            Self::EchoesPrompt => "echoes_prompt",
            Self::NoTopField => "no_top_field",
        }
    }

    /// Whether the text may be shown as it is.
    pub fn passed(self) -> bool {
        self == Self::Faithful
    }
}

/// Where the explanation a caller receives came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The LLM's first answer passed.
    Llm,
    /// The first failed; the stricter retry passed.
    LlmRetried,
    /// Built from the attributions, without the LLM (both attempts failed, or no time for a retry, or a
    /// stream failed its check).
    Template,
}

impl Source {
    /// `llm`, `llm_retried` or `template`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Llm => "llm",
            Self::LlmRetried => "llm_retried",
            Self::Template => "template",
        }
    }
}

/// One of the strongest fields, with the ways a text may name it.
#[derive(Debug, Clone, PartialEq)]
pub struct TopField {
    /// The schema field.
    pub field: String,
    /// What prompts and templates call it.
    pub name: String,
    /// The record's value, as shown.
    pub value: String,
    /// Probability change attributed to it (positive raises the risk).
    pub delta: f32,
    /// Normalised phrases that count as naming it.
    mentions: Vec<String>,
}

/// What an explanation must agree with: the score, its band and the strongest fields.
#[derive(Debug, Clone, PartialEq)]
pub struct Grounds {
    /// The churn probability.
    pub score: f32,
    /// The scorer's decision threshold.
    pub threshold: f32,
    /// The band of `score`.
    pub band: Band,
    /// The fields an explanation must name one of, strongest first (ties with the last one included).
    pub top_fields: Vec<TopField>,
}

impl Grounds {
    /// The grounds of a prediction: `top` fields of `influences` (strongest first) must be named, plus any tied
    /// with the last of them; fields that moved nothing are left out.
    pub fn new(
        (score, threshold, elevated_from): (f32, f32, f32),
        influences: &[Influence],
        top: usize,
        record: Option<&BTreeMap<String, FeatureValue>>,
        names: &FieldNames,
    ) -> Self {
        let moved: Vec<&Influence> = influences.iter().filter(|i| i.delta != 0.0).collect();
        let last = moved.get(top.min(moved.len()).saturating_sub(1)).map(|i| i.delta.abs());
        let top_fields = moved
            .iter()
            .enumerate()
            .take_while(|(rank, i)| *rank < top || last.is_some_and(|l| (i.delta.abs() - l).abs() < 1e-6))
            .map(|(_, i)| TopField::new(i, record.and_then(|r| r.get(&i.feature)), names))
            .collect();
        Self {
            score,
            threshold,
            band: Band::of(score, threshold, elevated_from),
            top_fields,
        }
    }

    /// Checks a whole explanation (without its prompt: no echo check).
    pub fn check(&self, text: &str) -> Verdict {
        self.check_answer(text, &PromptText::default())
    }

    /// Checks a whole explanation written for `prompt`.
    pub fn check_answer(&self, text: &str, prompt: &PromptText) -> Verdict {
        let mut verdict = Verdict::Faithful;
        for sentence in text::sentences(text) {
            let found = self.check_sentence(sentence, prompt);
            if found != Verdict::Faithful {
                verdict = found;
                break;
            }
        }
        if verdict == Verdict::Faithful && !self.names_top_field(text) {
            return Verdict::NoTopField;
        }
        verdict
    }

    /// Checks one sentence for claims against the band, misstated probabilities (a question claims nothing) and
    /// copies of the prompt.
    fn check_sentence(&self, sentence: &str, prompt: &PromptText) -> Verdict {
        if prompt.copied(sentence) {
            return Verdict::EchoesPrompt;
        }
        if sentence.trim_end().ends_with('?') {
            return Verdict::Faithful;
        }
        let words = text::words(sentence);
        if claims::claims(&words).any(|claim| !self.band.allows(claim)) {
            return Verdict::ContradictsBand;
        }
        if probability::stated(sentence).any(|p| !self.agrees(p)) {
            return Verdict::MisstatesProbability;
        }
        Verdict::Faithful
    }

    /// Whether a stated probability is the score or the threshold (as rounded in prose).
    fn agrees(&self, stated: f32) -> bool {
        (stated - self.score).abs() <= 0.02 || (stated - self.threshold).abs() <= 0.005
    }

    /// Whether `text` names one of the top fields (vacuously true when none moved the score).
    pub fn names_top_field(&self, text: &str) -> bool {
        if self.top_fields.is_empty() {
            return true;
        }
        let normalised = text::normalise(text);
        self.top_fields
            .iter()
            .any(|f| f.mentions.iter().any(|m| normalised.contains(m.as_str())))
    }
}

impl TopField {
    /// `raises` or `lowers`: which way it moves the risk.
    pub fn direction(&self) -> &'static str {
        if self.delta > 0.0 { "raises" } else { "lowers" }
    }

    fn new(influence: &Influence, value: Option<&FeatureValue>, names: &FieldNames) -> Self {
        let configured = names.get(&influence.feature);
        let name = configured
            .and_then(|n| n.first().cloned())
            .unwrap_or_else(|| influence.feature.replace('_', " "));
        let mut mentions: Vec<String> = configured.into_iter().flatten().map(|n| text::normalise(n)).collect();
        mentions.push(text::normalise(&influence.feature.replace('_', " ")));
        if let Some(FeatureValue::Text(value)) = value
            && text::distinctive(value)
        {
            mentions.push(text::normalise(value));
        }
        mentions.retain(|m| m.trim().len() >= 3);
        Self {
            field: influence.feature.clone(),
            name,
            value: text::display(value),
            delta: influence.delta,
            mentions,
        }
    }
}

#[cfg(test)]
mod tests;
