//! `faithfulness`: hybrid explanations through a running gateway, held to their scores. Telco test customers,
//! both sides of the scorer's threshold, each asked a question that presumes the opposite of its score ("why
//! will they leave?" at a low score, "why are they safe?" at a high one) or one that agrees with it; some as
//! streams. Every answer's source (llm, llm_retried, template) and verdicts come from the gateway; every final
//! text is checked again here, with the policy's settings, and the cost of that check is timed.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use classical::schema::FeatureValue;
use serde::{Deserialize, Serialize};
use switchyard::explanation::{Band, Verdict};
use switchyard::policy::Explanations;
use switchyard_proto::v1 as pb;
use switchyard_proto::v1::router_client::RouterClient;

use crate::EvalError;
use crate::e2e::{features, grounds, percentile, replay};

/// How to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// The gateway, `HOST:PORT`.
    pub addr: String,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// Each call's deadline.
    pub timeout: Duration,
    /// Temperature sent (0: reproducible).
    pub temperature: f32,
}

/// One customer and the question asked about it.
#[derive(Debug, Clone)]
pub struct Case {
    /// `telco-test-<row>`.
    pub id: String,
    /// The record.
    pub record: BTreeMap<String, FeatureValue>,
    /// The question.
    pub question: String,
    /// Whether the question presumes the opposite of the score.
    pub presumes_opposite: bool,
    /// Sent as a stream.
    pub stream: bool,
}

/// `n` cases from the Telco test split, half below the threshold and half at or above it (each half spread over
/// the file), the questions alternating between presuming the opposite and agreeing; every `stream_every`-th
/// case is streamed (0: none).
pub fn cases(
    records: &[BTreeMap<String, FeatureValue>],
    scores: &[f32],
    (threshold, elevated_from): (f32, f32),
    n: usize,
    stream_every: usize,
) -> Vec<Case> {
    let (below, above): (Vec<usize>, Vec<usize>) = (0..records.len()).partition(|&i| scores[i] < threshold);
    let spread = |rows: &[usize], k: usize| -> Vec<usize> {
        let k = k.min(rows.len());
        (0..k).map(|i| rows[i * rows.len() / k.max(1)]).collect()
    };
    let mut chosen = spread(&below, n / 2);
    chosen.extend(spread(&above, n - n / 2));
    chosen
        .into_iter()
        .enumerate()
        .map(|(i, row)| {
            let band = Band::of(scores[row], threshold, elevated_from);
            let presumes_opposite = i % 2 == 0;
            let question = match (band, presumes_opposite) {
                (Band::High, true) => "Why is this customer safe?",
                (_, true) => "Why will this customer leave?",
                (Band::High, false) => "Why might this customer leave?",
                (Band::Elevated, false) => "How worried should we be about this customer?",
                (Band::Low, false) => "Why is this customer likely to stay?",
            };
            Case {
                id: format!("telco-test-{row}"),
                record: records[row].clone(),
                question: question.to_owned(),
                presumes_opposite,
                stream: stream_every > 0 && i % stream_every == stream_every - 1,
            }
        })
        .collect()
}

/// What one case came to.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Answer {
    /// The case.
    pub id: String,
    /// `OK` or the gRPC code's name.
    pub status: String,
    /// Streamed.
    pub stream: bool,
    /// The question presumed the opposite of the score.
    pub presumes_opposite: bool,
    /// The score and its band.
    pub score: f32,
    /// `low`, `elevated`, `high`.
    pub band: String,
    /// `llm`, `llm_retried` or `template` (the gateway's).
    pub source: String,
    /// The gateway's verdict on the first LLM answer.
    pub first_verdict: String,
    /// The gateway's verdict on the retry.
    pub retry_verdict: String,
    /// The text the caller ends with.
    pub text: String,
    /// This harness's check of that text.
    pub recheck: String,
    /// Whether the text names a top field (this harness's reading).
    pub names_top_field: bool,
    /// Time of this harness's check, in microseconds.
    pub check_us: f64,
    /// Wall time of the call.
    pub latency_ms: f64,
    /// Tokens the answer cost (both attempts when retried).
    pub input_tokens: u32,
    /// Output tokens.
    pub output_tokens: u32,
}

/// Runs every case; `progress` sees (done, total).
pub async fn run(
    cases: &[Case],
    explanations: &Explanations,
    options: &Options,
    progress: impl Fn(usize, usize) + Send + Sync + 'static,
) -> Result<Vec<Answer>, EvalError> {
    let client = RouterClient::connect(format!("http://{}", options.addr))
        .await
        .map_err(|e| EvalError::Gateway {
            addr: options.addr.clone(),
            reason: e.to_string(),
        })?;
    let shared = Arc::new((options.clone(), explanations.clone()));
    replay(
        cases,
        &client,
        options.concurrency,
        &options.addr,
        progress,
        move |mut client, case| {
            let shared = shared.clone();
            async move { ask(&mut client, &case, &shared.1, &shared.0).await }
        },
    )
    .await
}

/// What a call returned, whole or streamed.
#[derive(Default)]
struct Returned {
    prediction: Option<pb::Prediction>,
    explanation: Option<pb::Explanation>,
    text: String,
    tokens: (u32, u32),
}

async fn ask(
    client: &mut RouterClient<tonic::transport::Channel>,
    case: &Case,
    explanations: &Explanations,
    options: &Options,
) -> Answer {
    let request = pb::RouteRequest {
        request_id: format!("faithfulness-{}", case.id),
        text: case.question.clone(),
        features: Some(features(&case.record)),
        temperature: Some(options.temperature),
        ..Default::default()
    };
    let started = Instant::now();
    let returned = if case.stream {
        whole_stream(client, request, options.timeout).await
    } else {
        let mut message = tonic::Request::new(request);
        message.set_timeout(options.timeout);
        client.route(message).await.map(|r| {
            let r = r.into_inner();
            let generation = r.generation.unwrap_or_default();
            Returned {
                prediction: r.prediction,
                explanation: r.explanation,
                text: generation.text,
                tokens: (generation.input_tokens, generation.output_tokens),
            }
        })
    };
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    let mut answer = Answer {
        id: case.id.clone(),
        status: "OK".to_owned(),
        stream: case.stream,
        presumes_opposite: case.presumes_opposite,
        score: 0.0,
        band: String::new(),
        source: String::new(),
        first_verdict: String::new(),
        retry_verdict: String::new(),
        text: String::new(),
        recheck: String::new(),
        names_top_field: false,
        check_us: 0.0,
        latency_ms,
        input_tokens: 0,
        output_tokens: 0,
    };
    let returned = match returned {
        Ok(returned) => returned,
        Err(status) => {
            answer.status = format!("{:?}", status.code());
            return answer;
        }
    };
    let explanation = returned.explanation.unwrap_or_default();
    let prediction = returned.prediction.unwrap_or_default();
    let grounds = grounds(&prediction, Some(&case.record), explanations);
    let checked = Instant::now();
    let verdict = grounds.check(&returned.text);
    answer.check_us = checked.elapsed().as_secs_f64() * 1e6;
    answer.names_top_field = grounds.names_top_field(&returned.text);
    answer.recheck = verdict.as_str().to_owned();
    answer.score = prediction.score;
    answer.band = explanation.band;
    answer.source = explanation.source;
    answer.first_verdict = explanation.first_verdict;
    answer.retry_verdict = explanation.retry_verdict;
    answer.text = returned.text;
    (answer.input_tokens, answer.output_tokens) = returned.tokens;
    answer
}

/// A streamed answer, whole: the text the caller ends with (the replacement when the stream failed its check).
async fn whole_stream(
    client: &mut RouterClient<tonic::transport::Channel>,
    request: pb::RouteRequest,
    timeout: Duration,
) -> Result<Returned, tonic::Status> {
    let mut message = tonic::Request::new(request);
    message.set_timeout(timeout);
    let mut events = client.route_stream(message).await?.into_inner();
    let mut returned = Returned::default();
    while let Some(event) = events.message().await? {
        match event.event {
            Some(pb::route_event::Event::Prediction(p)) => returned.prediction = Some(p),
            Some(pb::route_event::Event::Delta(d)) => returned.text.push_str(&d.text),
            Some(pb::route_event::Event::Summary(s)) => {
                returned.tokens = (s.input_tokens, s.output_tokens);
                returned.explanation = s.explanation;
            }
            _ => {}
        }
    }
    if let Some(replacement) = returned.explanation.as_ref().map(|e| &e.replacement)
        && !replacement.is_empty()
    {
        returned.text.clone_from(replacement);
    }
    Ok(returned)
}

/// Numbers per explanation source.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SourceRow {
    /// Answers.
    pub answers: usize,
    /// Median latency.
    pub p50_ms: f64,
    /// 95th percentile.
    pub p95_ms: f64,
    /// Mean input tokens.
    pub mean_input_tokens: f64,
    /// Mean output tokens.
    pub mean_output_tokens: f64,
}

/// The run's numbers.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FaithfulnessReport {
    /// The gateway.
    pub addr: String,
    /// The backend's model, as the caller named it.
    pub model: String,
    /// Cases run.
    pub records: usize,
    /// Of them, answered OK.
    pub answered: usize,
    /// Answers by band.
    pub by_band: BTreeMap<String, usize>,
    /// Streamed answers.
    pub streamed: usize,
    /// Questions presuming the opposite of the score.
    pub presuming_opposite: usize,
    /// Final texts that contradict the band or misstate the probability (this harness's check).
    pub contradictions: usize,
    /// Answers whose text an LLM wrote (source llm or llm_retried).
    pub llm_written: usize,
    /// Of them, the share naming a top field.
    pub llm_named_top_field: f64,
    /// Share of answers whose explanation is the template.
    pub template_share: f64,
    /// Share of first LLM answers that passed the check (the prompt and model's own faithfulness).
    pub first_attempt_pass: f64,
    /// First-attempt verdicts.
    pub first_verdicts: BTreeMap<String, usize>,
    /// Answers per source, with latency and tokens.
    pub sources: BTreeMap<String, SourceRow>,
    /// Where the gateway's verdict and this harness's check of the final text disagree (must be 0).
    pub disagreements: usize,
    /// This harness's check: median and largest time per answer, in microseconds.
    pub check_p50_us: f64,
    /// Largest.
    pub check_max_us: f64,
}

/// Summarises the answers.
pub fn summarise(answers: &[Answer], addr: &str, model: &str) -> FaithfulnessReport {
    let ok: Vec<&Answer> = answers.iter().filter(|a| a.status == "OK").collect();
    let mut report = FaithfulnessReport {
        addr: addr.to_owned(),
        model: model.to_owned(),
        records: answers.len(),
        answered: ok.len(),
        ..FaithfulnessReport::default()
    };
    for a in &ok {
        *report.by_band.entry(a.band.clone()).or_insert(0) += 1;
        *report.first_verdicts.entry(a.first_verdict.clone()).or_insert(0) += 1;
    }
    report.streamed = ok.iter().filter(|a| a.stream).count();
    report.presuming_opposite = ok.iter().filter(|a| a.presumes_opposite).count();
    let against = [
        Verdict::ContradictsBand.as_str(),
        Verdict::MisstatesProbability.as_str(),
    ];
    report.contradictions = ok.iter().filter(|a| against.contains(&a.recheck.as_str())).count();
    let llm: Vec<&&Answer> = ok.iter().filter(|a| a.source != "template").collect();
    report.llm_written = llm.len();
    report.llm_named_top_field = llm.iter().filter(|a| a.names_top_field).count() as f64 / llm.len().max(1) as f64;
    let share = |n: usize| n as f64 / ok.len().max(1) as f64;
    report.template_share = share(ok.iter().filter(|a| a.source == "template").count());
    report.first_attempt_pass = share(ok.iter().filter(|a| a.first_verdict == "faithful").count());
    // The gateway let the text through as faithful exactly when this harness finds it so (the template always is).
    report.disagreements = ok.iter().filter(|a| a.recheck != "faithful").count();
    let mut by_source: BTreeMap<String, Vec<&Answer>> = BTreeMap::new();
    for a in &ok {
        by_source.entry(a.source.clone()).or_default().push(a);
    }
    for (source, list) in by_source {
        let mut latencies: Vec<f64> = list.iter().map(|a| a.latency_ms).collect();
        latencies.sort_by(f64::total_cmp);
        let n = list.len() as f64;
        report.sources.insert(
            source,
            SourceRow {
                answers: list.len(),
                p50_ms: percentile(&latencies, 0.5),
                p95_ms: percentile(&latencies, 0.95),
                mean_input_tokens: list.iter().map(|a| f64::from(a.input_tokens)).sum::<f64>() / n,
                mean_output_tokens: list.iter().map(|a| f64::from(a.output_tokens)).sum::<f64>() / n,
            },
        );
    }
    let mut checks: Vec<f64> = ok.iter().map(|a| a.check_us).collect();
    checks.sort_by(f64::total_cmp);
    report.check_p50_us = percentile(&checks, 0.5);
    report.check_max_us = checks.last().copied().unwrap_or_default();
    report
}

/// The measurements the `[faithfulness]` gates read.
pub fn measurements(report: &FaithfulnessReport) -> BTreeMap<String, f64> {
    [
        ("records", report.answered as f64),
        ("contradictions", report.contradictions as f64),
        ("llm_named_top_field", report.llm_named_top_field),
        ("template_share", report.template_share),
        ("first_attempt_pass", report.first_attempt_pass),
        ("disagreements", report.disagreements as f64),
        ("unanswered", (report.records - report.answered) as f64),
    ]
    .into_iter()
    .map(|(k, v)| (format!("faithfulness.{k}"), v))
    .collect()
}

/// The report as Markdown.
pub fn markdown(report: &FaithfulnessReport, answers: &[Answer]) -> String {
    use std::fmt::Write as _;
    let mut md = format!(
        "# Hybrid faithfulness\n\n{} Telco test customers through the gateway at {} (model `{}`), {} answered; \
         {} streamed; {} questions presume the opposite of the score.\n\n",
        report.records, report.addr, report.model, report.answered, report.streamed, report.presuming_opposite
    );
    let _ = writeln!(md, "| measure | value |\n|---|---|");
    for (name, value) in [
        ("answers by band", format!("{:?}", report.by_band)),
        ("final texts contradicting the score", report.contradictions.to_string()),
        ("LLM-written explanations", report.llm_written.to_string()),
        (
            "... naming a top field",
            format!("{:.1} %", 100.0 * report.llm_named_top_field),
        ),
        ("template fall-backs", format!("{:.1} %", 100.0 * report.template_share)),
        (
            "first LLM answers passing the check",
            format!("{:.1} %", 100.0 * report.first_attempt_pass),
        ),
        ("first-answer verdicts", format!("{:?}", report.first_verdicts)),
        ("gateway / harness disagreements", report.disagreements.to_string()),
        (
            "check time per answer (p50 / max)",
            format!("{:.1} / {:.1} µs", report.check_p50_us, report.check_max_us),
        ),
    ] {
        let _ = writeln!(md, "| {name} | {value} |");
    }
    let _ = writeln!(
        md,
        "\n| source | answers | p50 ms | p95 ms | mean input tokens | mean output tokens |\n|---|---|---|---|---|---|"
    );
    for (source, row) in &report.sources {
        let _ = writeln!(
            md,
            "| {source} | {} | {:.0} | {:.0} | {:.0} | {:.0} |",
            row.answers, row.p50_ms, row.p95_ms, row.mean_input_tokens, row.mean_output_tokens
        );
    }
    let _ = writeln!(md, "\n## Examples (the first of each source)\n");
    for source in ["llm", "llm_retried", "template"] {
        if let Some(a) = answers.iter().find(|a| a.source == source) {
            let _ = writeln!(
                md,
                "- **{source}** ({}, score {:.2}, {}; first verdict {}): {}",
                a.id,
                a.score,
                a.band,
                a.first_verdict,
                a.text.replace('\n', " ")
            );
        }
    }
    md
}

/// The `[explanations]` settings of `config`'s policy file (compiled against its backends, labels unchecked).
pub fn policy_explanations(config: &switchyard::config::Config) -> Result<Explanations, EvalError> {
    let path = &config.policy.file;
    let text = std::fs::read_to_string(path).map_err(|e| EvalError::io(path, &e))?;
    let context = switchyard::policy::PolicyContext {
        backends: config.backends.keys().cloned().collect(),
        scorers: config.scorers.keys().cloned().collect(),
        labels: None,
        fields: None,
    };
    let policy = switchyard::policy::compile(path, &text, &context).map_err(|e| EvalError::Policy(e.to_string()))?;
    Ok(policy.explanations)
}
