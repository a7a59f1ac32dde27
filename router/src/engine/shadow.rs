//! Shadows: a mirrored request runs again on a second target in the background, after its answer is ready, and
//! how the two compare (agreement, outcome, latency) goes to metrics and to a `shadow` span.

use std::sync::Arc;

use tokio::time::Instant;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::backend_chain::Complete;
use super::{Engine, Prepared};
use crate::error::RouterError;
use crate::metrics::ShadowOutcome;
use crate::policy::{Policy, Target, TargetKind};
use crate::request::RouteInput;
use crate::telemetry::names::{SHADOW_AGREE, SHADOW_RULE, SHADOW_TARGET, SPAN_SHADOW};
use crate::telemetry::spans;

/// A mirrored request's second target, run after the answer without affecting it.
#[derive(Debug, Clone)]
pub struct ShadowPlan {
    /// The rule that mirrors.
    pub rule: String,
    /// The shadow target.
    pub target: Arc<Target>,
    /// The policy it belongs to (for its prompts).
    pub policy: Arc<Policy>,
    /// What the primary answer amounted to, to compare with.
    pub primary: AnswerShape,
}

/// What a primary or shadow answer amounted to, for agreement: the churn verdict, whether text was generated,
/// whether it was a refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AnswerShape {
    /// `Some(score >= threshold)` when scored.
    pub churn: Option<bool>,
    /// Whether an LLM answered.
    pub generated: bool,
    /// Whether the answer was a refusal.
    pub rejected: bool,
}

impl AnswerShape {
    /// Same churn verdict (where both scored), and both generated or refused alike.
    pub fn agrees_with(&self, other: &Self) -> bool {
        let verdicts = match (self.churn, other.churn) {
            (Some(a), Some(b)) => a == b,
            (a, b) => a.is_none() == b.is_none(),
        };
        verdicts && self.generated == other.generated && self.rejected == other.rejected
    }
}

/// How long a shadow may take; it is dropped after that.
const SHADOW_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// Shadows in flight at once; beyond it, a mirrored request's shadow is skipped (and counted).
pub(super) const MAX_SHADOWS: usize = 16;

impl Engine {
    /// Runs a mirrored request on its shadow target and records how it compares with the primary answer:
    /// agreement, outcome and latency, in metrics and on a `shadow` span under `parent` (the request's SERVER
    /// span). Never fails: it is background work whose result nobody waits for.
    pub async fn shadow(&self, input: &RouteInput, plan: &ShadowPlan, parent: opentelemetry::Context) {
        let span = spans::detached_child(SPAN_SHADOW, parent);
        span.set_attribute(SHADOW_RULE, plan.rule.clone());
        span.set_attribute(SHADOW_TARGET, plan.target.name.clone());
        let (rule, target) = (plan.rule.as_str(), plan.target.name.as_str());
        let Ok(_slot) = self.shadows.clone().try_acquire_owned() else {
            self.metrics.shadow(rule, target, ShadowOutcome::Dropped, None);
            spans::record_failure(&span, "dropped", format!("more than {MAX_SHADOWS} shadows in flight"));
            return;
        };
        let started = Instant::now();
        let answered = tokio::time::timeout(SHADOW_TIMEOUT, self.shadow_answer(input, plan))
            .instrument(span.clone())
            .await
            .unwrap_or_else(|_| {
                Err(RouterError::ShadowTimedOut {
                    target: plan.target.name.clone(),
                    after: SHADOW_TIMEOUT,
                })
            });
        let outcome = match answered {
            Ok(shape) => {
                let agree = shape.agrees_with(&plan.primary);
                span.set_attribute(SHADOW_AGREE, agree);
                ShadowOutcome::Answered { agree }
            }
            Err(error) => {
                spans::record_failure(&span, error.kind(), error.to_string());
                ShadowOutcome::Failed(error.kind())
            }
        };
        self.metrics.shadow(rule, target, outcome, Some(started.elapsed()));
    }

    /// The shadow target's answer, reduced to its shape.
    async fn shadow_answer(&self, input: &RouteInput, plan: &ShadowPlan) -> Result<AnswerShape, RouterError> {
        let target = &plan.target;
        let mut shape = AnswerShape {
            rejected: target.kind == TargetKind::Reject,
            ..AnswerShape::default()
        };
        let prediction = if target.kind.needs_record() {
            let record = input.record.as_ref().ok_or_else(|| {
                RouterError::invalid("features", format!("shadow target {:?} needs a record", target.name))
            })?;
            let models = self.models();
            let valid = super::score::validate_record(&models, record)?;
            Some(
                self.score(&models, valid, None, target, Some(Instant::now() + SHADOW_TIMEOUT))
                    .await?,
            )
        } else {
            None
        };
        shape.churn = prediction.as_ref().map(|p| p.churn);
        if !target.backends.is_empty() {
            let models = self.models();
            let grounds = super::grounds(&plan.policy, target, prediction.as_ref(), input);
            let ask = super::Ask {
                models: &models,
                policy: &plan.policy,
                target,
                prediction: prediction.as_ref(),
                grounds: grounds.as_ref(),
            };
            let request = self.llm_request(ask, input, super::Attempt::First)?;
            let deadline = Some(Instant::now() + SHADOW_TIMEOUT);
            match self.first_answer(target, &request, deadline, Complete).await? {
                Ok(_) => shape.generated = true,
                Err(last) => return Err(last.into()),
            }
        }
        Ok(shape)
    }
}

/// The shadow of a decision that mirrors this request, given the primary answer (its prediction, and whether it
/// generated text or refused).
pub(super) fn shadow_plan(primary: &Prepared, generated: bool, rejected: bool) -> Option<ShadowPlan> {
    let routing = &primary.routing;
    let draw = routing.decision.shadow.as_ref().filter(|d| d.mirrored)?;
    Some(ShadowPlan {
        rule: routing.decision.rule.clone().unwrap_or_default(),
        target: routing.policy.target(&draw.target)?.clone(),
        policy: routing.policy.clone(),
        primary: AnswerShape {
            churn: primary.prediction.as_ref().map(|p| p.churn),
            generated,
            rejected,
        },
    })
}
