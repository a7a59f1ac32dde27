//! Direction claims in a sentence: what it says about whether the customer leaves, with negation ("not at
//! risk", "less likely to leave") and intensifiers ("very likely") read as a person would.

use std::collections::HashMap;
use std::sync::LazyLock;

use super::text::CLAUSE;

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
        "flight risk",
    ] {
        out.push((Claim::Leaves, phrase.to_owned()));
    }
    for phrase in ["at risk", "elevated risk", "moderate risk", "medium risk", "some risk"] {
        out.push((Claim::SomeRisk, phrase.to_owned()));
    }
    for phrase in [
        "low risk",
        "low churn risk",
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

/// Nouns whose level a sentence may state ("the risk that this customer leaves is high").
const LEVELLED: [&str; 4] = ["risk", "chance", "likelihood", "probability"];

/// Verbs that state a level.
const COPULAS: [&str; 7] = ["is", "are", "was", "remains", "stays", "seems", "looks"];

/// How many words may stand between a levelled noun and its verb.
const LEVEL_REACH: usize = 6;

/// What a stated level claims.
fn level(word: &str) -> Option<Claim> {
    match word {
        "high" => Some(Claim::Leaves),
        "low" | "minimal" => Some(Claim::Safe),
        "elevated" | "moderate" | "medium" => Some(Claim::SomeRisk),
        _ => None,
    }
}

/// The level a clause states for a risk noun at `at`: "risk (of leaving | that this customer leaves) is (not)
/// high".
fn stated_level(words: &[&str], at: usize) -> Option<Claim> {
    let verb = (at + 1..words.len().min(at + 2 + LEVEL_REACH))
        .take_while(|&i| words[i] != CLAUSE)
        .find(|&i| COPULAS.contains(&words[i]))?;
    let mut next = verb + 1;
    let negated = words.get(next).is_some_and(|w| NEGATORS.contains(w));
    if negated {
        next += 1;
    }
    let claim = level(words.get(next)?)?;
    Some(if negated { claim.negated() } else { claim })
}

/// Words that make the rest of their clause a hypothesis or a reported assumption, not a claim ("even if the
/// question assumes the customer will leave").
const HYPOTHETICAL: [&str; 9] = [
    "if",
    "unless",
    "whether",
    "assume",
    "assumes",
    "assumed",
    "assuming",
    "suppose",
    "supposing",
];

/// Words after a risk phrase that make it describe a factor, not the customer ("high-risk factors").
const NOT_THE_CUSTOMER: [&str; 4] = ["factor", "factors", "area", "areas"];

/// Words that turn the claim after them (within two words) around.
const NEGATORS: [&str; 14] = [
    "not", "never", "no", "isnt", "arent", "wasnt", "werent", "less", "hardly", "nor", "cannot", "cant", "dont",
    "seldom",
];

/// The claims `words` (normalised, clause breaks marked) make, in order; a phrase's words are not read again
/// ("unlikely to leave" is one claim, and "low churn risk" is not also "churn risk"). A negation carries over a
/// run of adjacent phrases ("not a high-risk, high-probability event"); a hypothesis lasts to its clause's end.
/// A risk noun's stated level is a claim too ("the risk that this customer leaves is high").
pub(crate) fn claims(words: &[String]) -> impl Iterator<Item = Claim> {
    let words: Vec<&str> = words
        .iter()
        .map(String::as_str)
        .filter(|w| !INTENSIFIERS.contains(w))
        .collect();
    let mut found = Vec::new();
    let mut hypothetical = false;
    // Where the last phrase ended (clause breaks skipped) and whether it was negated.
    let mut last: Option<(usize, bool)> = None;
    let mut at = 0;
    while at < words.len() {
        let word = words[at];
        if word == CLAUSE {
            hypothetical = false;
            last = last.map(|(end, negated)| (if end == at { at + 1 } else { end }, negated));
            at += 1;
            continue;
        }
        hypothetical |= HYPOTHETICAL.contains(&word);
        if LEVELLED.contains(&word)
            && !hypothetical
            && let Some(claim) = stated_level(&words, at)
        {
            found.push(claim);
        }
        let matched = BY_FIRST_WORD.get(word).and_then(|candidates| {
            candidates.iter().find(|(_, phrase)| {
                phrase.len() <= words.len() - at && phrase.iter().zip(&words[at..]).all(|(p, w)| p == w)
            })
        });
        let Some((claim, phrase)) = matched else {
            at += 1;
            continue;
        };
        let end = at + phrase.len();
        let negated = words[at.saturating_sub(2)..at].iter().any(|w| NEGATORS.contains(w))
            || last.is_some_and(|(last_end, negated)| last_end == at && negated);
        let about_a_factor = words.get(end).is_some_and(|w| NOT_THE_CUSTOMER.contains(w));
        if !hypothetical && !about_a_factor {
            found.push(if negated { claim.negated() } else { *claim });
        }
        last = Some((end, negated));
        at = end;
    }
    found.into_iter()
}
