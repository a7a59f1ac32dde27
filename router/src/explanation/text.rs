//! Text as the check reads it: sentences, and words normalised (lower case, letters and digits only,
//! apostrophes dropped so "isn't" is `isnt`, everything else a separator).

use classical::schema::FeatureValue;

/// `text` lower-cased, every run of non-alphanumerics one space, apostrophes dropped, padded with a space on
/// each side so a phrase matches whole words with `contains(" phrase ")`.
pub(crate) fn normalise(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push(' ');
    for c in text.chars() {
        if c.is_alphanumeric() {
            out.extend(c.to_lowercase());
        } else if c == '\'' || c == '\u{2019}' {
            continue;
        } else if !out.ends_with(' ') {
            out.push(' ');
        }
    }
    if !out.ends_with(' ') {
        out.push(' ');
    }
    out
}

/// The normalised words of `text`, with each clause break (`,` `;` `:` `(` `)` and dashes between spaces) as a
/// [`CLAUSE`] word.
pub(crate) fn words(text: &str) -> Vec<String> {
    let marked: String = text
        .chars()
        .map(|c| {
            if matches!(c, ',' | ';' | ':' | '(' | ')') {
                '|'
            } else {
                c
            }
        })
        .collect::<String>()
        .replace(" - ", " | ")
        .replace(" \u{2013} ", " | ")
        .replace(" \u{2014} ", " | ");
    marked
        .split('|')
        .enumerate()
        .flat_map(|(i, clause)| {
            let words = normalise(clause)
                .split_whitespace()
                .map(str::to_owned)
                .collect::<Vec<_>>();
            (i > 0).then(|| CLAUSE.to_owned()).into_iter().chain(words)
        })
        .collect()
}

/// The word [`words`] puts at a clause break.
pub(crate) const CLAUSE: &str = ",";

/// The sentences of `text`: each ends after `.`, `!` or `?` followed by white space (or the end), or at a line
/// break; a decimal point ("0.13") does not end one.
pub(crate) fn sentences(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        let trimmed = rest.trim_start();
        if trimmed.is_empty() {
            return None;
        }
        let end = sentence_end(trimmed).unwrap_or(trimmed.len());
        let (sentence, tail) = trimmed.split_at(end);
        rest = tail;
        Some(sentence)
    })
}

/// The byte just past the first complete sentence of `text`, when one is complete.
pub(crate) fn sentence_end(text: &str) -> Option<usize> {
    let mut chars = text.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        let next = chars.peek().map(|(_, n)| *n);
        let ends = match c {
            '\n' => true,
            '.' | '!' | '?' => next.is_some_and(char::is_whitespace),
            _ => false,
        };
        if ends {
            return Some(at + c.len_utf8());
        }
    }
    None
}

/// Whether a categorical value names its field on its own ("Fiber optic", "Month-to-month"), unlike "Yes",
/// "No" or "No internet service".
pub(crate) fn distinctive(value: &str) -> bool {
    let lower = value.trim().to_lowercase();
    lower.len() >= 3 && lower != "yes" && !lower.starts_with("no ") && lower != "no"
}

/// A record value as prompts and templates show it.
pub(crate) fn display(value: Option<&FeatureValue>) -> String {
    match value {
        Some(FeatureValue::Text(t)) if !t.trim().is_empty() => t.clone(),
        Some(FeatureValue::Number(n)) => format!("{n}"),
        Some(FeatureValue::Bool(b)) => format!("{b}"),
        Some(FeatureValue::Text(_) | FeatureValue::Null) | None => "(blank)".to_owned(),
    }
}

/// "a", "a and b", "a, b and c".
pub(crate) fn join(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}
