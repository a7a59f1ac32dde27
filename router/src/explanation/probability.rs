//! Probabilities a sentence states about the customer: "a 13% chance", "probability of leaving is 0.13",
//! "risk of 13 percent". A number elsewhere ("a 10% discount", "reduce the risk by 10%") is not one.

/// Words a stated probability follows.
const NOUNS: [&str; 5] = ["probability", "chance", "likelihood", "risk", "score"];

/// Words allowed between the noun and the number ("probability of leaving is about 0.13", "risk of leaving is
/// even higher (0.42)"); punctuation between them is skipped.
const LINKS: [&str; 23] = [
    "of",
    "leaving",
    "churning",
    "churn",
    "is",
    "was",
    "at",
    "about",
    "around",
    "roughly",
    "approximately",
    "only",
    "just",
    "a",
    "an",
    "as",
    "low",
    "high",
    "estimated",
    "even",
    "higher",
    "lower",
    "than",
];

/// The probabilities `sentence` states, as fractions.
pub(crate) fn stated(sentence: &str) -> impl Iterator<Item = f32> {
    let tokens = tokens(sentence);
    let mut found = Vec::new();
    for (at, token) in tokens.iter().enumerate() {
        let Token::Number(value) = token else { continue };
        let percent = matches!(tokens.get(at + 1), Some(Token::Word(w)) if w == "%" || w == "percent");
        let after = if percent { at + 2 } else { at + 1 };
        let noun_after = matches!(tokens.get(after), Some(Token::Word(w)) if NOUNS.contains(&w.as_str()));
        let noun_before = tokens[..at]
            .iter()
            .rev()
            .take_while(|t| matches!(t, Token::Word(w) if LINKS.contains(&w.as_str()) || NOUNS.contains(&w.as_str())))
            .any(|t| matches!(t, Token::Word(w) if NOUNS.contains(&w.as_str())));
        if !(noun_after || noun_before) {
            continue;
        }
        if percent {
            found.push(value / 100.0);
        } else if *value <= 1.0 {
            found.push(*value);
        }
    }
    found.into_iter()
}

#[derive(Debug, PartialEq)]
enum Token {
    Word(String),
    Number(f32),
}

/// Words (lower case), numbers ("0.13", "13") and `%` signs, in order.
fn tokens(sentence: &str) -> Vec<Token> {
    let mut tokens = Vec::new();
    let chars: Vec<char> = sentence.chars().collect();
    let mut at = 0;
    while at < chars.len() {
        let c = chars[at];
        if c.is_ascii_digit() {
            let start = at;
            while at < chars.len()
                && (chars[at].is_ascii_digit()
                    || (chars[at] == '.' && chars.get(at + 1).is_some_and(char::is_ascii_digit)))
            {
                at += 1;
            }
            let number: String = chars[start..at].iter().collect();
            if let Ok(value) = number.parse::<f32>() {
                tokens.push(Token::Number(value));
            }
            continue;
        }
        if c.is_alphabetic() {
            let start = at;
            while at < chars.len() && (chars[at].is_alphanumeric() || chars[at] == '\'') {
                at += 1;
            }
            tokens.push(Token::Word(chars[start..at].iter().collect::<String>().to_lowercase()));
            continue;
        }
        if c == '%' {
            tokens.push(Token::Word("%".to_owned()));
        }
        at += 1;
    }
    tokens
}
