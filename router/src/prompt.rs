//! Prompts sent to LLM backends: the plain chat prompt and the hybrid (score explanation) prompt.

use std::collections::BTreeMap;

use classical::schema::{FeatureSchema, FeatureValue};
use llm::{ChatMessage, ChatRequest};

use crate::engine::Prediction;
use crate::policy::Target;
use crate::request::RouteInput;

/// The question used for a hybrid request that came without text.
const DEFAULT_HYBRID_QUESTION: &str = "Why might this customer leave, and what could we do to keep them?";

/// `[system, user]` for an LLM target.
pub fn chat(target: &Target, input: &RouteInput) -> ChatRequest {
    request(
        target,
        input,
        vec![
            ChatMessage::system(&target.system_prompt),
            ChatMessage::user(&input.text),
        ],
    )
}

/// `[system, user]` for a hybrid target: the record (in schema order), the churn probability, then the question.
pub fn hybrid(
    target: &Target,
    input: &RouteInput,
    schema: &FeatureSchema,
    record: &BTreeMap<String, FeatureValue>,
    prediction: &Prediction,
) -> ChatRequest {
    let mut user = String::from("Customer record:\n");
    for spec in schema.features() {
        let value = match record.get(&spec.name) {
            Some(FeatureValue::Text(t)) if t.trim().is_empty() => "(blank)".to_owned(),
            Some(FeatureValue::Text(t)) => t.clone(),
            Some(FeatureValue::Number(n)) => format!("{n}"),
            Some(FeatureValue::Bool(b)) => format!("{b}"),
            Some(FeatureValue::Null) | None => "(blank)".to_owned(),
        };
        user.push_str(&format!("- {}: {value}\n", spec.name));
    }
    user.push_str(&format!(
        "\nChurn model {} {}: probability of leaving {:.2} (decision threshold {:.2}: {}).\n\nQuestion: {}",
        prediction.model,
        prediction.version,
        prediction.score,
        prediction.threshold,
        if prediction.churn {
            "likely to churn"
        } else {
            "not likely to churn"
        },
        if input.text.trim().is_empty() {
            DEFAULT_HYBRID_QUESTION
        } else {
            input.text.trim()
        },
    ));
    request(
        target,
        input,
        vec![ChatMessage::system(&target.system_prompt), ChatMessage::user(user)],
    )
}

fn request(target: &Target, input: &RouteInput, messages: Vec<ChatMessage>) -> ChatRequest {
    ChatRequest {
        messages,
        max_tokens: Some(input.max_tokens.unwrap_or(target.max_tokens)),
        temperature: input.temperature.or(target.temperature),
    }
}
