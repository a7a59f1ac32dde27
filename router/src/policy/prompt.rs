//! Prompts: per-target templates (minijinja) for the system and user messages, rendered with the request, the
//! customer record and the prediction, and held to a size limit.
//!
//! Prompts belong to the policy (they reload with it) and know nothing of the request path: the engine hands
//! them a [`PromptInput`] and maps a [`PromptError`] to its own error.

use std::collections::BTreeMap;

use classical::schema::{FeatureSchema, FeatureValue};
use llm::{ChatMessage, ChatRequest};
use minijinja::value::Serde;
use minijinja::{Environment, Value, context};
use serde::Serialize;

use super::{Target, TargetKind};
use crate::explanation::Grounds;
use crate::explanation::text::{display, join};

/// The default prompt size limit, in characters.
pub const DEFAULT_MAX_PROMPT_CHARS: usize = 16_000;

const DEFAULT_SYSTEM_PROMPT: &str = "You are a helpful assistant for a telecom company's staff. Answer briefly.";
/// Short on purpose: small models echo long instructions back.
const DEFAULT_HYBRID_PROMPT: &str = "You are a retention analyst. Answer in two short sentences.";

/// The default system message of LLM (`hybrid` false) or hybrid targets.
pub fn default_system_prompt(hybrid: bool) -> &'static str {
    if hybrid {
        DEFAULT_HYBRID_PROMPT
    } else {
        DEFAULT_SYSTEM_PROMPT
    }
}

/// The default user-message template of LLM (`hybrid` false) or hybrid targets.
pub fn default_user_prompt(hybrid: bool) -> &'static str {
    if hybrid {
        DEFAULT_HYBRID_TEMPLATE
    } else {
        DEFAULT_CHAT_TEMPLATE
    }
}

/// The default user-message template of LLM targets.
const DEFAULT_CHAT_TEMPLATE: &str = "{{ text }}";

/// The default user-message template of hybrid targets: the caller's question, then the facts (band, score, the
/// strongest fields and their direction), then the instruction to explain that result, with the answer's opening
/// given (small models follow the question's framing otherwise: measured in docs/hybrid.md).
const DEFAULT_HYBRID_TEMPLATE: &str = "Question about a customer: {{ question }}
Facts from the churn model: the risk that this customer leaves is {{ prediction.band_words }} \
({{ prediction.score }}).{% if factors %} Main factors: {{ factors_prose }}.{% endif %}
In two sentences, explain the risk with the main factors, then suggest one retention action.
Your answer must begin: \"{{ opening }}\".";

/// The default retry after an explanation failed its check: the first sentence is given.
pub const DEFAULT_RETRY_PROMPT: &str = "Main factors: {{ factors_prose }}.
Begin your answer with exactly this sentence: \"{{ lead }}\" Then suggest one retention action.";

/// The question used for a hybrid request that came without text.
const DEFAULT_HYBRID_QUESTION: &str = "What drives this customer's churn risk, and what could we do to keep them?";

/// What a prompt is rendered from.
#[derive(Debug, Clone, Copy)]
pub struct PromptInput<'a> {
    /// The caller's text.
    pub text: &'a str,
    /// The calling tenant.
    pub tenant: &'a str,
    /// The output token limit the caller asked for; the target's own `max_tokens` is the ceiling.
    pub max_tokens: Option<u32>,
    /// The temperature the caller asked for (else the target's).
    pub temperature: Option<f32>,
    /// The customer record and the schema that orders its fields, when one was sent.
    pub record: Option<(&'a FeatureSchema, &'a BTreeMap<String, FeatureValue>)>,
    /// The churn prediction, for hybrid targets.
    pub prediction: Option<ScoreFacts<'a>>,
    /// What the explanation must agree with (hybrid targets): the band and the strongest fields.
    pub grounds: Option<&'a Grounds>,
}

/// The prediction as a prompt states it.
#[derive(Debug, Clone, Copy)]
pub struct ScoreFacts<'a> {
    /// Scorer name.
    pub model: &'a str,
    /// Scorer version.
    pub version: &'a str,
    /// Churn probability.
    pub score: f32,
    /// The scorer's decision threshold.
    pub threshold: f32,
    /// `score >= threshold`.
    pub churn: bool,
    /// The fields that move the score most, largest first.
    pub top_features: &'a [classical::Influence],
}

/// Why a prompt could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PromptError {
    /// A template failed to render.
    #[error("prompt of target {target} failed to render: {reason}")]
    Render {
        /// The target.
        target: String,
        /// What failed.
        reason: String,
    },
    /// The rendered prompt is over the target's size limit.
    #[error("the prompt for target {target:?} is {chars} characters, over its limit of {limit}")]
    TooLong {
        /// The target.
        target: String,
        /// The rendered size, in characters.
        chars: usize,
        /// The target's `max_prompt_chars`.
        limit: usize,
    },
}

/// Compiled templates of every target.
pub struct Prompts {
    env: Environment<'static>,
}

impl std::fmt::Debug for Prompts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prompts").finish_non_exhaustive()
    }
}

#[derive(Serialize)]
struct Field {
    name: String,
    value: String,
}

#[derive(Serialize)]
struct InfluenceVars {
    feature: String,
    value: String,
    delta: String,
}

#[derive(Serialize)]
struct PredictionVars {
    model: String,
    version: String,
    score: String,
    threshold: String,
    churn: bool,
    verdict: &'static str,
    band: &'static str,
    band_words: &'static str,
}

#[derive(Serialize)]
struct FactorVars {
    field: String,
    name: String,
    value: String,
    direction: &'static str,
    delta: String,
}

/// Which user-message template to render.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    /// The target's `user_prompt`.
    First,
    /// The hybrid target's stricter `retry_prompt`.
    Retry,
}

impl Prompts {
    /// Compiles the templates of every LLM and hybrid target; a syntax error names the target and field.
    pub fn compile<'a>(targets: impl IntoIterator<Item = &'a Target>) -> Result<Self, (String, String)> {
        let mut env = Environment::new();
        for target in targets {
            if target.backends.is_empty() {
                continue;
            }
            let retry = (target.kind == TargetKind::Hybrid).then_some(("retry_prompt", &target.retry_prompt));
            for (field, source) in [
                ("system_prompt", &target.system_prompt),
                ("user_prompt", &target.user_prompt),
            ]
            .into_iter()
            .chain(retry)
            {
                env.add_template_owned(format!("{}.{field}", target.name), source.clone())
                    .map_err(|e| (format!("targets.{}.{field}", target.name), e.to_string()))?;
            }
        }
        Ok(Self { env })
    }

    /// The chat request for an LLM or hybrid target: its first attempt, or a hybrid target's retry.
    pub fn render(
        &self,
        target: &Target,
        input: &PromptInput<'_>,
        attempt: Attempt,
    ) -> Result<ChatRequest, PromptError> {
        let (record, prediction) = (input.record, input.prediction.as_ref());
        let fields: Vec<Field> = record
            .map(|(schema, record)| {
                schema
                    .features()
                    .iter()
                    .map(|spec| Field {
                        name: spec.name.clone(),
                        value: display(record.get(&spec.name)),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let prediction_vars = prediction.map(|p| PredictionVars {
            model: p.model.to_owned(),
            version: p.version.to_owned(),
            score: format!("{:.2}", p.score),
            threshold: format!("{:.2}", p.threshold),
            churn: p.churn,
            verdict: if p.churn {
                "likely to churn"
            } else {
                "not likely to churn"
            },
            band: input.grounds.map_or("", |g| g.band.as_str()),
            band_words: input.grounds.map_or("", |g| g.band.words()),
        });
        let factors: Vec<FactorVars> = input
            .grounds
            .map(|g| {
                g.top_fields
                    .iter()
                    .map(|f| FactorVars {
                        field: f.field.clone(),
                        name: f.name.clone(),
                        value: f.value.clone(),
                        direction: f.direction(),
                        delta: format!("{:+.2}", f.delta),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let factors_prose = join(
            &factors
                .iter()
                .map(|f| format!("{} ({}) {} it", f.name, f.value, f.direction))
                .collect::<Vec<_>>(),
        );
        let opening = match (input.grounds, factors.first()) {
            (Some(g), Some(first)) => format!(
                "The risk of leaving is {}, mainly because of the {} ({})",
                g.band.as_str(),
                first.name,
                first.value
            ),
            (Some(g), None) => format!("The risk of leaving is {}", g.band.as_str()),
            (None, _) => String::new(),
        };
        let lead = match (input.grounds, factors.first()) {
            (Some(g), Some(first)) => format!(
                "The churn model rates this customer's risk of leaving as {} ({:.2}), mainly because of their {} ({}).",
                g.band.as_str(),
                g.score,
                first.name,
                first.value
            ),
            (Some(g), None) => format!(
                "The churn model rates this customer's risk of leaving as {} ({:.2}).",
                g.band.as_str(),
                g.score
            ),
            (None, _) => String::new(),
        };
        let influential: Vec<InfluenceVars> = prediction
            .map(|p| {
                p.top_features
                    .iter()
                    .map(|i| InfluenceVars {
                        feature: i.feature.clone(),
                        value: display(record.and_then(|(_, r)| r.get(&i.feature))),
                        delta: format!("{:+.2}", i.delta),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let question = if input.text.trim().is_empty() && target.kind == TargetKind::Hybrid {
            DEFAULT_HYBRID_QUESTION
        } else {
            input.text.trim()
        };
        let vars = context! {
            text => input.text.trim(),
            question,
            record => Value::from(Serde(&fields)),
            prediction => Value::from(Serde(&prediction_vars)),
            influential => Value::from(Serde(&influential)),
            factors => Value::from(Serde(&factors)),
            factors_prose,
            opening,
            lead,
            tenant => input.tenant,
        };
        let render = |field: &str| {
            self.env
                .get_template(&format!("{}.{field}", target.name))
                .and_then(|t| t.render(&vars))
                .map_err(|e| PromptError::Render {
                    target: target.name.clone(),
                    reason: e.to_string(),
                })
        };
        let user_field = match attempt {
            Attempt::First => "user_prompt",
            Attempt::Retry => "retry_prompt",
        };
        let (system, user) = (render("system_prompt")?, render(user_field)?);
        let size = system.chars().count() + user.chars().count();
        if size > target.max_prompt_chars {
            return Err(PromptError::TooLong {
                target: target.name.clone(),
                chars: size,
                limit: target.max_prompt_chars,
            });
        }
        Ok(ChatRequest {
            messages: vec![ChatMessage::system(system), ChatMessage::user(user)],
            // The target's limit is the ceiling: a caller may ask for fewer tokens, never more.
            max_tokens: Some(
                input
                    .max_tokens
                    .map_or(target.max_tokens, |asked| asked.min(target.max_tokens)),
            ),
            temperature: input.temperature.or(target.temperature),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use crate::policy::OnUnavailable;

    fn target(kind: TargetKind, user_prompt: &str, max_prompt_chars: usize) -> Target {
        let hybrid = kind == TargetKind::Hybrid;
        Target {
            name: "t".into(),
            kind,
            backends: vec!["local".into()],
            scorer: None,
            on_unavailable: OnUnavailable::Error,
            system_prompt: default_system_prompt(hybrid).to_owned(),
            user_prompt: user_prompt.to_owned(),
            retry_prompt: DEFAULT_RETRY_PROMPT.to_owned(),
            max_prompt_chars,
            max_tokens: 64,
            temperature: Some(0.2),
            message: String::new(),
        }
    }

    fn input(text: &str) -> PromptInput<'_> {
        PromptInput {
            text,
            tenant: "acme",
            max_tokens: None,
            temperature: None,
            record: None,
            prediction: None,
            grounds: None,
        }
    }

    #[test]
    fn the_targets_max_tokens_is_a_default_and_a_ceiling() {
        let target = target(TargetKind::Llm, "{{ text }}", 1000);
        let prompts = Prompts::compile([&target]).unwrap();
        for (asked, sent) in [(None, 64), (Some(10), 10), (Some(64), 64), (Some(5000), 64)] {
            let request = prompts
                .render(
                    &target,
                    &PromptInput {
                        max_tokens: asked,
                        ..input("hello")
                    },
                    Attempt::First,
                )
                .unwrap();
            assert_eq!(request.max_tokens, Some(sent), "asked {asked:?}");
        }
        let request = prompts
            .render(
                &target,
                &PromptInput {
                    temperature: Some(0.9),
                    ..input("hello")
                },
                Attempt::First,
            )
            .unwrap();
        assert_eq!(request.temperature, Some(0.9), "the caller's temperature wins");
        assert_eq!(
            prompts
                .render(&target, &input("hello"), Attempt::First)
                .unwrap()
                .temperature,
            Some(0.2)
        );
    }

    #[test]
    fn hybrid_prompts_state_the_band_and_the_strongest_fields_and_the_retry_gives_the_first_sentence() {
        let target = target(TargetKind::Hybrid, default_user_prompt(true), 10_000);
        let prompts = Prompts::compile([&target]).unwrap();
        let top = [
            classical::Influence {
                feature: "contract".into(),
                delta: 0.31,
            },
            classical::Influence {
                feature: "tenure".into(),
                delta: -0.05,
            },
        ];
        let record: BTreeMap<String, FeatureValue> =
            [("contract".to_owned(), FeatureValue::Text("Month-to-month".into()))].into();
        let names: crate::explanation::FieldNames = [("tenure".to_owned(), vec!["months with us".to_owned()])].into();
        let grounds = Grounds::new((0.8765, 0.3, 0.5), &top, 3, Some(&record), &names);
        let input = PromptInput {
            prediction: Some(ScoreFacts {
                model: "churn-scorer",
                version: "1.0.0",
                score: 0.8765,
                threshold: 0.3,
                churn: true,
                top_features: &top,
            }),
            grounds: Some(&grounds),
            ..input("  ")
        };
        let user = prompts.render(&target, &input, Attempt::First).unwrap().messages[1]
            .content
            .clone();
        assert!(
            user.contains("the risk that this customer leaves is high (0.88)"),
            "{user}"
        );
        assert!(
            user.contains("Main factors: contract (Month-to-month) raises it and months with us ((blank)) lowers it."),
            "the policy's names, the record's values, the direction: {user}"
        );
        assert!(
            user.starts_with(&format!("Question about a customer: {DEFAULT_HYBRID_QUESTION}")),
            "no text: the default question"
        );
        assert!(
            user.ends_with(
                "must begin: \"The risk of leaving is high, mainly because of the contract (Month-to-month)\"."
            ),
            "{user}"
        );
        let retry = prompts.render(&target, &input, Attempt::Retry).unwrap().messages[1]
            .content
            .clone();
        assert!(
            retry.contains(
                "\"The churn model rates this customer's risk of leaving as high (0.88), mainly because of their \
                 contract (Month-to-month).\""
            ),
            "{retry}"
        );
    }

    #[test]
    fn a_prompt_over_its_limit_or_a_failing_template_is_an_error_naming_the_target() {
        let target = target(TargetKind::Llm, "{{ text }}", 100);
        let prompts = Prompts::compile([&target]).unwrap();
        let error = prompts
            .render(&target, &input(&"why ".repeat(40)), Attempt::First)
            .unwrap_err();
        assert!(matches!(error, PromptError::TooLong { limit: 100, .. }), "{error:?}");
        let broken = self::target(TargetKind::Llm, "{{ text ", 100);
        let (key, _) = Prompts::compile([&broken]).unwrap_err();
        assert_eq!(
            key, "targets.t.user_prompt",
            "a syntax error is refused when the policy is compiled"
        );
        let failing = self::target(TargetKind::Llm, "{{ text | no_such_filter }}", 100);
        let prompts = Prompts::compile([&failing]).unwrap();
        let error = prompts.render(&failing, &input("x"), Attempt::First).unwrap_err();
        assert!(
            matches!(&error, PromptError::Render { target, .. } if target == "t"),
            "{error:?}"
        );
    }
}
