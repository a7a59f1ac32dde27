//! Direction claims in a sentence: what it says about whether the customer leaves, with negation ("not at
//! risk", "less likely to leave") and intensifiers ("very likely") read as a person would.

use std::collections::HashMap;
use std::sync::LazyLock;

/// What a phrase claims about the customer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Claim {
    /// They will leave: "likely to leave", "high risk".
    Leaves,
    /// Some risk, without a verdict: "at risk", "elevated risk".
    SomeRisk,
    /// No real risk: "low risk", "is safe", "a loyal customer".
    Safe,
    /// They will stay: "unlikely to leave", "likely to stay".
    Stays,
}

impl Claim {
    /// What the phrase claims when negated ("not at risk" is safe, "not safe" is some risk).
    fn negated(self) -> Self {
        match self {
            Self::Leaves => Self::Stays,
            Self::SomeRisk => Self::Safe,
            Self::Safe => Self::SomeRisk,
            Self::Stays => Self::Leaves,
        }
    }
}

const LEAVE_VERBS: [&str; 4] = ["leave", "churn", "cancel", "quit"];

/// The phrases of each claim, as normalised words.
fn phrases() -> Vec<(Claim, String)> {
    let mut out = Vec::new();
    for verb in LEAVE_VERBS {
        for lead in [
            "likely to",
            "will",
            "going to",
            "expected to",
            "probably",
            "set to",
            "about to",
        ] {
            out.push((Claim::Leaves, format!("{lead} {verb}")));
        }
        for lead in ["unlikely to", "will not", "wont", "does not", "doesnt"] {
            out.push((Claim::Stays, format!("{lead} {verb}")));
        }
    }
    for phrase in [
        "high risk",
        "high churn risk",
        "high chance",
        "high likelihood",
        "high probability",
        "risk is high",
        "flight risk",
    ] {
        out.push((Claim::Leaves, phrase.to_owned()));
    }
    for phrase in [
        "at risk",
        "elevated risk",
        "moderate risk",
        "medium risk",
        "some risk",
        "risk is elevated",
        "risk is moderate",
    ] {
        out.push((Claim::SomeRisk, phrase.to_owned()));
    }
    for phrase in [
        "low risk",
        "low churn risk",
        "risk is low",
        "low chance",
        "low likelihood",
        "low probability",
        "minimal risk",
        "little risk",
        "no risk",
        "is safe",
        "are safe",
        "seems safe",
        "looks safe",
        "safe customer",
        "safe bet",
        "is loyal",
        "are loyal",
        "loyal customer",
    ] {
        out.push((Claim::Safe, phrase.to_owned()));
    }
    for phrase in [
        "likely to stay",
        "likely to remain",
        "will stay",
        "will remain",
        "going to stay",
        "expected to stay",
    ] {
        out.push((Claim::Stays, phrase.to_owned()));
    }
    out
}

/// A claim's phrase as words.
type Phrase = (Claim, Vec<String>);

/// Phrases by first word, longest first.
static BY_FIRST_WORD: LazyLock<HashMap<String, Vec<Phrase>>> = LazyLock::new(|| {
    let mut map: HashMap<String, Vec<Phrase>> = HashMap::new();
    for (claim, phrase) in phrases() {
        let words: Vec<String> = phrase.split(' ').map(str::to_owned).collect();
        if let Some(first) = words.first() {
            map.entry(first.clone()).or_default().push((claim, words));
        }
    }
    for list in map.values_mut() {
        list.sort_by_key(|(_, words)| std::cmp::Reverse(words.len()));
    }
    map
});

/// Words that only strengthen ("very likely") and are skipped.
const INTENSIFIERS: [&str; 14] = [
    "very",
    "quite",
    "relatively",
    "fairly",
    "rather",
    "extremely",
    "highly",
    "really",
    "particularly",
    "somewhat",
    "pretty",
    "still",
    "more",
    "also",
];

/// Words that turn the claim after them (within two words) around.
const NEGATORS: [&str; 14] = [
    "not", "never", "no", "isnt", "arent", "wasnt", "werent", "less", "hardly", "nor", "cannot", "cant", "dont",
    "seldom",
];

/// The claims `words` (normalised) make, in order; a phrase's words are not read again ("unlikely to leave" is
/// one claim, and "low churn risk" is not also "churn risk").
pub(crate) fn claims(words: &[String]) -> impl Iterator<Item = Claim> {
    let words: Vec<&str> = words
        .iter()
        .map(String::as_str)
        .filter(|w| !INTENSIFIERS.contains(w))
        .collect();
    let mut found = Vec::new();
    let mut at = 0;
    while at < words.len() {
        let matched = BY_FIRST_WORD.get(words[at]).and_then(|candidates| {
            candidates.iter().find(|(_, phrase)| {
                phrase.len() <= words.len() - at && phrase.iter().zip(&words[at..]).all(|(p, w)| p == w)
            })
        });
        match matched {
            Some((claim, phrase)) => {
                let negated = words[at.saturating_sub(2)..at].iter().any(|w| NEGATORS.contains(w));
                found.push(if negated { claim.negated() } else { *claim });
                at += phrase.len();
            }
            None => at += 1,
        }
    }
    found.into_iter()
}
