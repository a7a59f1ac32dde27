//! `e2e`: the labelled requests through a running gateway over gRPC, at a chosen concurrency: route-kind and
//! label accuracy, latency per target, errors by status, and checks on LLM and hybrid answers that need no judge
//! model (non-empty, finish reason, within the token ceiling, and for hybrid explanations faithfulness to the
//! score).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use classical::schema::FeatureValue;
use serde::{Deserialize, Serialize};
use switchyard_proto::v1 as pb;
use switchyard_proto::v1::router_client::RouterClient;
use tokio::sync::Semaphore;

use switchyard::explanation::{Grounds, Verdict};
use switchyard::policy::Explanations;

use crate::EvalError;
use crate::requests::LabelledRequest;

/// How to replay.
#[derive(Debug, Clone)]
pub struct Options {
    /// The gateway, `HOST:PORT`.
    pub addr: String,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// `max_tokens` sent with every request: the ceiling each answer is checked against.
    pub max_tokens: u32,
    /// Each call's deadline.
    pub timeout: Duration,
    /// The policy's explanation settings, for checking hybrid answers.
    pub explanations: Explanations,
}

/// What one request came to.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Outcome {
    /// The request's id.
    pub id: String,
    /// The kind that serves it right.
    pub expected_kind: String,
    /// The label it should get.
    pub expected_label: String,
    /// `OK` or the gRPC code's name.
    pub status: String,
    /// Wall time of the call.
    pub latency_ms: f64,
    /// The target decided (empty on failure).
    pub target: String,
    /// Its kind.
    pub kind: String,
    /// The classifier's label.
    pub label: String,
    /// For LLM and hybrid answers: the checks.
    pub answer: Option<AnswerCheck>,
}

/// Checks on one generated answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AnswerCheck {
    /// Any text at all.
    pub non_empty: bool,
    /// `stop` or `length`.
    pub finish_ok: bool,
    /// Output tokens within the `max_tokens` sent.
    pub within_ceiling: bool,
    /// For hybrid answers: faithfulness to the score.
    pub faithfulness: Option<Faithfulness>,
}

/// A hybrid explanation as the caller got it, checked again here against its score.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Faithfulness {
    /// Where the gateway says it came from: `llm`, `llm_retried` or `template`.
    pub source: String,
    /// It names at least one of the score's strongest fields.
    pub names_top_field: bool,
    /// It contradicts the score's band or misstates its probability.
    pub contradicts: bool,
}

/// Checks the explanation `text` of `prediction` with the policy's `explanations` settings.
pub fn faithfulness(
    text: &str,
    prediction: &pb::Prediction,
    record: Option<&BTreeMap<String, FeatureValue>>,
    explanations: &Explanations,
    source: String,
) -> Faithfulness {
    let grounds = grounds(prediction, record, explanations);
    let verdict = grounds.check(text);
    Faithfulness {
        source,
        names_top_field: grounds.names_top_field(text),
        contradicts: matches!(verdict, Verdict::ContradictsBand | Verdict::MisstatesProbability),
    }
}

/// What an explanation of `prediction` must agree with, by the policy's `explanations` settings.
pub fn grounds(
    prediction: &pb::Prediction,
    record: Option<&BTreeMap<String, FeatureValue>>,
    explanations: &Explanations,
) -> Grounds {
    let influences: Vec<classical::Influence> = prediction
        .top_features
        .iter()
        .map(|f| classical::Influence {
            feature: f.feature.clone(),
            delta: f.delta,
        })
        .collect();
    explanations.grounds((prediction.score, prediction.threshold), &influences, record)
}

/// The record as the `features` Struct.
pub fn features(record: &BTreeMap<String, FeatureValue>) -> prost_types::Struct {
    use prost_types::value::Kind;
    let fields = record
        .iter()
        .map(|(name, value)| {
            let kind = match value {
                FeatureValue::Null => Kind::NullValue(0),
                FeatureValue::Bool(b) => Kind::BoolValue(*b),
                FeatureValue::Number(n) => Kind::NumberValue(*n),
                FeatureValue::Text(t) => Kind::StringValue(t.clone()),
            };
            (name.clone(), prost_types::Value { kind: Some(kind) })
        })
        .collect();
    prost_types::Struct { fields }
}

/// The gRPC code's canonical name.
fn code_name(code: tonic::Code) -> String {
    format!("{code:?}")
}

/// Replays `requests`; `progress` sees (done, total) after each answer.
pub async fn run(
    requests: &[LabelledRequest],
    options: &Options,
    progress: impl Fn(usize, usize) + Send + Sync + 'static,
) -> Result<Vec<Outcome>, EvalError> {
    let endpoint = format!("http://{}", options.addr);
    let client = RouterClient::connect(endpoint.clone())
        .await
        .map_err(|e| EvalError::Gateway {
            addr: options.addr.clone(),
            reason: e.to_string(),
        })?;
    let shared = Arc::new(options.clone());
    replay(
        requests,
        &client,
        options.concurrency,
        &options.addr,
        progress,
        move |mut client, request| {
            let options = shared.clone();
            async move { call(&mut client, &request, &options).await }
        },
    )
    .await
}

/// Runs `ask` on every item with its own clone of `client`, `concurrency` at a time, in order; `progress` sees
/// (done, total) after each.
pub async fn replay<T, R, F>(
    items: &[T],
    client: &RouterClient<tonic::transport::Channel>,
    concurrency: usize,
    addr: &str,
    progress: impl Fn(usize, usize) + Send + Sync + 'static,
    ask: impl Fn(RouterClient<tonic::transport::Channel>, T) -> F,
) -> Result<Vec<R>, EvalError>
where
    T: Clone,
    R: Send + 'static,
    F: Future<Output = R> + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(concurrency.max(1)));
    let done = Arc::new(AtomicUsize::new(0));
    let progress = Arc::new(progress);
    let total = items.len();
    let mut tasks = Vec::with_capacity(total);
    for item in items {
        let answer = ask(client.clone(), item.clone());
        let (slots, done, progress) = (slots.clone(), done.clone(), progress.clone());
        tasks.push(tokio::spawn(async move {
            let _slot = slots.acquire_owned().await;
            let answer = answer.await;
            progress(done.fetch_add(1, Ordering::SeqCst) + 1, total);
            answer
        }));
    }
    let mut answers = Vec::with_capacity(total);
    for task in tasks {
        answers.push(task.await.map_err(|e| EvalError::Gateway {
            addr: addr.to_owned(),
            reason: e.to_string(),
        })?);
    }
    Ok(answers)
}

async fn call(
    client: &mut RouterClient<tonic::transport::Channel>,
    request: &LabelledRequest,
    options: &Options,
) -> Outcome {
    let mut message = tonic::Request::new(pb::RouteRequest {
        text: request.text.clone(),
        features: request.record.as_ref().map(features),
        max_tokens: Some(options.max_tokens),
        request_id: format!("eval-{}", request.id),
        ..Default::default()
    });
    message.set_timeout(options.timeout);
    let started = Instant::now();
    let answered = client.route(message).await;
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    let mut outcome = Outcome {
        id: request.id.clone(),
        expected_kind: request.expected_kind.as_str().to_owned(),
        expected_label: request.expected_label.clone(),
        status: "OK".to_owned(),
        latency_ms,
        target: String::new(),
        kind: String::new(),
        label: String::new(),
        answer: None,
    };
    let response = match answered {
        Ok(response) => response.into_inner(),
        Err(status) => {
            outcome.status = code_name(status.code());
            return outcome;
        }
    };
    if let Some(decision) = &response.decision {
        outcome.target.clone_from(&decision.target);
        outcome.kind = pb::TargetKind::try_from(decision.target_kind)
            .map(|k| k.as_str_name().trim_start_matches("TARGET_KIND_").to_lowercase())
            .unwrap_or_default();
        outcome.label.clone_from(&decision.label);
    }
    if let Some(generation) = &response.generation {
        let faithfulness = response.prediction.as_ref().map(|p| {
            let source = response
                .explanation
                .as_ref()
                .map(|e| e.source.clone())
                .unwrap_or_default();
            faithfulness(
                &generation.text,
                p,
                request.record.as_ref(),
                &options.explanations,
                source,
            )
        });
        outcome.answer = Some(AnswerCheck {
            non_empty: !generation.text.trim().is_empty(),
            finish_ok: matches!(generation.finish_reason.as_str(), "stop" | "length"),
            within_ceiling: generation.output_tokens <= options.max_tokens,
            faithfulness,
        });
    }
    outcome
}

/// Latency of one target.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TargetLatency {
    /// The target (`(failed)` for calls that got no decision).
    pub target: String,
    /// Calls.
    pub requests: usize,
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Every latency, for the histogram.
    pub latencies_ms: Vec<f64>,
}

/// The replay's numbers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct E2eReport {
    /// The gateway.
    pub addr: String,
    /// Requests replayed.
    pub requests: usize,
    /// Concurrency.
    pub concurrency: usize,
    /// Among answered requests, the share routed to the right kind of target.
    pub route_kind_accuracy: f64,
    /// Among answered requests, the share given the expected label.
    pub label_accuracy: f64,
    /// Calls by status (`OK`, `Unavailable`, ...).
    pub statuses: BTreeMap<String, usize>,
    /// Latency per target.
    pub latency: Vec<TargetLatency>,
    /// Generated answers checked.
    pub answers: usize,
    /// Of them: non-empty.
    pub non_empty: usize,
    /// Of them: finish reason `stop` or `length`.
    pub finish_ok: usize,
    /// Of them: within the token ceiling.
    pub within_ceiling: usize,
    /// Hybrid explanations checked.
    pub explanations: usize,
    /// Of them: written by the LLM (not the template).
    pub llm_written: usize,
    /// Of them: naming a top field.
    pub names_top_field: usize,
    /// Of them: contradicting the score.
    pub contradicts: usize,
}

/// The nearest-rank percentile of sorted values.
pub(crate) fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// Summarises the outcomes.
pub fn summarise(outcomes: &[Outcome], options: &Options) -> E2eReport {
    let answered: Vec<&Outcome> = outcomes.iter().filter(|o| o.status == "OK").collect();
    let share = |hit: &dyn Fn(&Outcome) -> bool| {
        answered.iter().filter(|o| hit(o)).count() as f64 / answered.len().max(1) as f64
    };
    let mut statuses = BTreeMap::new();
    let mut by_target: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for o in outcomes {
        *statuses.entry(o.status.clone()).or_insert(0) += 1;
        let target = if o.target.is_empty() {
            "(failed)".to_owned()
        } else {
            o.target.clone()
        };
        by_target.entry(target).or_default().push(o.latency_ms);
    }
    let latency = by_target
        .into_iter()
        .map(|(target, mut values)| {
            values.sort_by(f64::total_cmp);
            TargetLatency {
                target,
                requests: values.len(),
                p50_ms: percentile(&values, 0.5),
                p90_ms: percentile(&values, 0.9),
                p99_ms: percentile(&values, 0.99),
                latencies_ms: values,
            }
        })
        .collect();
    let answers: Vec<&AnswerCheck> = outcomes.iter().filter_map(|o| o.answer.as_ref()).collect();
    let explanations: Vec<&Faithfulness> = answers.iter().filter_map(|a| a.faithfulness.as_ref()).collect();
    E2eReport {
        addr: options.addr.clone(),
        requests: outcomes.len(),
        concurrency: options.concurrency,
        route_kind_accuracy: share(&|o| o.kind == o.expected_kind),
        label_accuracy: share(&|o| o.label == o.expected_label),
        statuses,
        latency,
        answers: answers.len(),
        non_empty: answers.iter().filter(|a| a.non_empty).count(),
        finish_ok: answers.iter().filter(|a| a.finish_ok).count(),
        within_ceiling: answers.iter().filter(|a| a.within_ceiling).count(),
        explanations: explanations.len(),
        llm_written: explanations.iter().filter(|f| f.source != "template").count(),
        names_top_field: explanations.iter().filter(|f| f.names_top_field).count(),
        contradicts: explanations.iter().filter(|f| f.contradicts).count(),
    }
}

/// The report as Markdown.
pub fn markdown(report: &E2eReport) -> String {
    use std::fmt::Write as _;
    let mut md = format!(
        "# End-to-end evals\n\n{} labelled requests through the gateway at {}, {} at a time.\n\n\
         Routed to the right kind of target: {:.2} % · given the expected label: {:.2} % (of answered requests)\n\n",
        report.requests,
        report.addr,
        report.concurrency,
        100.0 * report.route_kind_accuracy,
        100.0 * report.label_accuracy
    );
    md.push_str("| status | calls |\n|---|---|\n");
    for (status, n) in &report.statuses {
        let _ = writeln!(md, "| {status} | {n} |");
    }
    md.push_str("\n| target | calls | p50 ms | p90 ms | p99 ms |\n|---|---|---|---|---|\n");
    for t in &report.latency {
        let _ = writeln!(
            md,
            "| {} | {} | {:.1} | {:.1} | {:.1} |",
            t.target, t.requests, t.p50_ms, t.p90_ms, t.p99_ms
        );
    }
    let _ = writeln!(
        md,
        "\nGenerated answers: {} · non-empty {} · finish reason stop/length {} · within the token ceiling {}\n\n\
         Hybrid explanations: {} · written by the LLM {} · name a top field {} · contradict the score {}",
        report.answers,
        report.non_empty,
        report.finish_ok,
        report.within_ceiling,
        report.explanations,
        report.llm_written,
        report.names_top_field,
        report.contradicts
    );
    md
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&values, 0.5), 50.0);
        assert_eq!(percentile(&values, 0.99), 99.0);
        assert_eq!(percentile(&[7.0], 0.9), 7.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
    }
}
