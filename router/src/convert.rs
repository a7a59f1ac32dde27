//! Domain → generated protobuf types. Generated types go no further in than `service.rs`.

use switchyard_proto::v1 as pb;

use crate::engine::{ExplanationReport, Generation, Outcome, Prediction, Routing, StreamSummary};
use crate::policy::TargetKind;

impl From<TargetKind> for pb::TargetKind {
    fn from(kind: TargetKind) -> Self {
        match kind {
            TargetKind::Classical => Self::Classical,
            TargetKind::Llm => Self::Llm,
            TargetKind::Hybrid => Self::Hybrid,
            TargetKind::Reject => Self::Reject,
        }
    }
}

impl From<&Routing> for pb::RoutingDecision {
    fn from(r: &Routing) -> Self {
        Self {
            label: r.classified.label.clone(),
            confidence: r.classified.confidence,
            top_labels: r
                .top_labels
                .iter()
                .map(|l| pb::LabelScore {
                    label: l.label.clone(),
                    probability: l.probability,
                    group: l.group.clone(),
                })
                .collect(),
            target: r.decision.target.name.clone(),
            target_kind: pb::TargetKind::from(r.decision.target.kind).into(),
            reason: r.decision.reason.clone(),
            policy_version: r.decision.policy_version.clone(),
            classifier: Some(pb::ModelRef {
                name: r.classifier.0.clone(),
                version: r.classifier.1.clone(),
            }),
            tier: r.classified.tier.as_str().to_owned(),
            encoder: r.encoder.as_ref().map(|(name, version)| pb::ModelRef {
                name: name.clone(),
                version: version.clone(),
            }),
            label_group: r.classified.group.clone(),
            rule: r.decision.rule.clone().unwrap_or_default(),
            margin: r.classified.margin,
            evaluations: r
                .decision
                .evaluations
                .iter()
                .map(|e| pb::RuleEvaluation {
                    rule: e.rule.clone(),
                    scope: e.scope.clone(),
                    matched: e.matched,
                    detail: e.detail.clone(),
                })
                .collect(),
            split: r.decision.split.as_ref().map(|d| pb::SplitDraw {
                sticky_by: d.sticky_by.as_str().to_owned(),
                bucket: d.bucket,
                arms: d
                    .arms
                    .iter()
                    .map(|a| pb::SplitArm {
                        target: a.target.clone(),
                        weight: a.weight,
                    })
                    .collect(),
                chosen: d.chosen.clone(),
            }),
            shadow: r.decision.shadow.as_ref().map(|d| pb::ShadowDraw {
                target: d.target.clone(),
                percent: d.percent,
                bucket: d.bucket,
                mirrored: d.mirrored,
            }),
        }
    }
}

impl From<&Prediction> for pb::Prediction {
    fn from(p: &Prediction) -> Self {
        Self {
            model: p.model.clone(),
            version: p.version.clone(),
            score: p.score,
            label: if p.churn { "churn" } else { "no_churn" }.to_owned(),
            threshold: p.threshold,
            top_features: p
                .top_features
                .iter()
                .map(|i| pb::FeatureInfluence {
                    feature: i.feature.clone(),
                    delta: i.delta,
                })
                .collect(),
        }
    }
}

impl From<&Generation> for pb::Generation {
    fn from(g: &Generation) -> Self {
        let usage = g.completion.usage.unwrap_or_default();
        Self {
            backend: g.backend.clone(),
            model: g.completion.model.clone(),
            text: g.completion.text.clone(),
            finish_reason: g.completion.finish_reason.clone(),
            input_tokens: usage.input_tokens,
            output_tokens: usage.output_tokens,
            attempts: g.attempts,
            failed_backends: g.failed_backends.clone(),
            cost: g.cost,
            usage_estimated: g.usage_estimated,
        }
    }
}

impl From<StreamSummary> for pb::Summary {
    fn from(s: StreamSummary) -> Self {
        Self {
            finish_reason: s.finish_reason,
            input_tokens: s.usage.input_tokens,
            output_tokens: s.usage.output_tokens,
            backend: s.backend,
            model: s.model,
            cost: s.cost,
            usage_estimated: s.usage_estimated,
            attempts: s.attempts,
            failed_backends: s.failed_backends,
            degraded: false,
            degraded_reason: String::new(),
            explanation: s.explanation.as_ref().map(Into::into),
        }
    }
}

impl From<&ExplanationReport> for pb::Explanation {
    fn from(r: &ExplanationReport) -> Self {
        Self {
            source: r.source.as_str().to_owned(),
            band: r.band.as_str().to_owned(),
            first_verdict: r.first_verdict.as_str().to_owned(),
            retry_verdict: r.retry_verdict.map(|v| v.as_str().to_owned()).unwrap_or_default(),
            top_fields: r.top_fields.clone(),
            replacement: r.replacement.clone().unwrap_or_default(),
        }
    }
}

/// The summary of a streamed answer that had no LLM text: scored only, or degraded for `reason`.
pub fn summary_without_text(degraded: Option<String>) -> pb::Summary {
    match degraded {
        Some(reason) => pb::Summary {
            finish_reason: "degraded".to_owned(),
            degraded: true,
            degraded_reason: reason,
            ..Default::default()
        },
        None => pb::Summary {
            finish_reason: "scored".to_owned(),
            ..Default::default()
        },
    }
}

/// The `Route` response for an outcome.
pub fn response(request_id: String, outcome: &Outcome) -> pb::RouteResponse {
    pb::RouteResponse {
        request_id,
        decision: Some((&outcome.routing).into()),
        prediction: outcome.prediction.as_ref().map(Into::into),
        generation: outcome.generation.as_ref().map(Into::into),
        rejection: outcome.rejection.clone().map(|reason| pb::Rejection { reason }),
        degraded: outcome.degraded.is_some(),
        degraded_reason: outcome.degraded.clone().unwrap_or_default(),
        backends: outcome
            .backends
            .iter()
            .map(|b| pb::BackendState {
                name: b.name.clone(),
                circuit: b.circuit.to_owned(),
            })
            .collect(),
        explanation: outcome.explanation.as_ref().map(Into::into),
    }
}

/// A `RouteStream` event.
pub fn event(request_id: &str, event: pb::route_event::Event) -> pb::RouteEvent {
    pb::RouteEvent {
        request_id: request_id.to_owned(),
        event: Some(event),
    }
}
