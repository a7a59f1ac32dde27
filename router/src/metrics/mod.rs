//! Metrics: OpenTelemetry instruments, exported as Prometheus text on the admin port (`/metrics`).
//!
//! Names follow OpenTelemetry semantic conventions where one exists (`rpc.server.call.duration`,
//! `gen_ai.client.operation.duration`, `gen_ai.client.token.usage`); Switchyard's own are under `switchyard.`.
//! The Prometheus exporter turns dots into underscores and adds unit and `_total` suffixes.

use std::sync::Arc;
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Histogram, MeterProvider};
use opentelemetry_sdk::metrics::SdkMeterProvider;
use prometheus::{Encoder, TextEncoder};

use crate::telemetry::Telemetry;

mod connections;
mod explanations;
mod genai;
use connections::ConnectionCounters;
use explanations::ExplanationCounters;
pub use genai::LlmLabels;
use std::sync::atomic::Ordering;

/// Seconds buckets from 1 ms to 2 min.
const SECONDS: [f64; 15] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0,
];
/// `rpc.server.call.duration`'s buckets, as the RPC conventions (v1.44) advise.
const RPC_SECONDS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];
/// Probability buckets.
const PROBABILITY: [f64; 10] = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0];
/// `gen_ai.client.token.usage`'s buckets, as the GenAI conventions advise.
const TOKENS: [f64; 14] = [
    1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0, 16777216.0,
    67108864.0,
];

/// `gen_ai.client.operation.duration`'s and `.time_to_first_chunk`'s buckets, as the GenAI conventions advise.
const GENAI_SECONDS: [f64; 14] = [
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
];

/// Classification-time buckets, in seconds, from 25 µs (the linear tier) to 100 ms (a queue under load).
const CLASSIFY_SECONDS: [f64; 11] = [
    0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.1,
];

/// Batch-size buckets (requests per ONNX run).
const BATCH: [f64; 11] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0];

/// Every instrument Switchyard records.
pub struct Metrics {
    registry: prometheus::Registry,
    provider: SdkMeterProvider,
    /// `rpc.server.call.duration` by `rpc.system.name`, `rpc.method`, `rpc.response.status_code`, `error.type`
    /// (server errors only), `switchyard.target`.
    rpc_duration: Histogram<f64>,
    /// `switchyard.decisions` by `switchyard.label_group`, `switchyard.target`.
    decisions: Counter<u64>,
    /// Hybrid explanations by source, and every check of one.
    explanations: ExplanationCounters,
    /// Connections open and closed by port, and calls shed.
    connections: ConnectionCounters,
    /// `switchyard.classifier.confidence`: the decided label's probability.
    confidence: Histogram<f64>,
    /// `switchyard.score.duration`: scoring, queue wait included.
    score_duration: Histogram<f64>,
    /// `switchyard.classifier.duration` by `switchyard.classifier.tier`: classification, queue wait included,
    /// by the cascade tier that answered (its counts give the share escalated).
    classify_duration: Histogram<f64>,
    /// `switchyard.inference.batch_size` by `switchyard.model` (`classifier`, `scorer`): requests per ONNX run.
    batch_size: Histogram<u64>,
    /// `gen_ai.client.operation.duration` by the [`LlmLabels`] and `error.type`.
    llm_duration: Histogram<f64>,
    /// `gen_ai.client.token.usage` by the [`LlmLabels`] and `gen_ai.token.type` (`input`, `output`): reported
    /// counts only.
    llm_tokens: Histogram<u64>,
    /// `gen_ai.client.operation.time_to_first_chunk` by the [`LlmLabels`] (streams).
    llm_first_token: Histogram<f64>,
    /// `switchyard.llm.cost` by `switchyard.target`, `switchyard.tenant`.
    llm_cost: Counter<f64>,
    /// `switchyard.shadow.requests` by `switchyard.rule`, `switchyard.shadow_target`, `outcome`.
    shadow_requests: Counter<u64>,
    /// `switchyard.shadow.agreement` by `switchyard.rule`, `switchyard.shadow_target`, `agree`.
    shadow_agreement: Counter<u64>,
    /// `switchyard.shadow.duration` by `switchyard.rule`, `switchyard.shadow_target`.
    shadow_duration: Histogram<f64>,
    /// `switchyard.policy.reloads` by `result` (`applied`, `unchanged`, `rejected`).
    policy_reloads: Counter<u64>,
    /// `switchyard.model.reloads` by `result` (`applied`, `unchanged`, `rejected`).
    model_reloads: Counter<u64>,
    /// `switchyard.model.candidate.comparisons` by `switchyard.model`, `switchyard.model.version` (the
    /// candidate's), `outcome` (`agree`, `disagree`, `failed`, `dropped`).
    candidate_comparisons: Counter<u64>,
    /// `switchyard.model.candidate.score_delta`: the candidate scorer's probability minus the serving one's.
    candidate_delta: Histogram<f64>,
}

/// How one candidate comparison ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CandidateOutcome {
    /// Both answered; whether they agree.
    Compared {
        /// Same decided label (classifier) or churn verdict (scorer).
        agree: bool,
    },
    /// The candidate failed.
    Failed,
    /// Too many comparisons waiting: skipped.
    Dropped,
}

/// Why metrics could not be set up or encoded.
#[derive(Debug, thiserror::Error)]
#[error("metrics: {0}")]
pub struct MetricsError(String);

impl Metrics {
    /// Builds the provider (Prometheus, plus OTLP when `telemetry` exports metrics), the registry and every
    /// instrument. Call inside the async runtime.
    pub fn new(telemetry: &Telemetry) -> Result<Self, MetricsError> {
        let mut builder = SdkMeterProvider::builder().with_resource(telemetry.resource());
        if let Some(reader) = telemetry.metric_reader().map_err(|e| MetricsError(e.to_string()))? {
            builder = builder.with_reader(reader);
        }
        Self::build(builder, telemetry.failures())
    }

    /// Every instrument with the Prometheus registry only (no OTLP, no export failures to count): for the engine
    /// run in-process, in tests and tools.
    pub fn standalone() -> Result<Self, MetricsError> {
        Self::build(SdkMeterProvider::builder(), Arc::default())
    }

    fn build(
        builder: opentelemetry_sdk::metrics::MeterProviderBuilder,
        failures: Arc<crate::telemetry::export::ExportFailures>,
    ) -> Result<Self, MetricsError> {
        let registry = prometheus::Registry::new();
        let exporter = opentelemetry_prometheus::exporter()
            .with_registry(registry.clone())
            .build()
            .map_err(|e| MetricsError(e.to_string()))?;
        let provider = builder.with_reader(exporter).build();
        let meter = provider.meter_with_scope(crate::telemetry::names::scope());
        meter
            .u64_observable_counter("switchyard.telemetry.export_failures")
            .with_description("OTLP exports that failed, by signal (traces: span batches; metrics: pushes)")
            .with_callback(move |observer| {
                observer.observe(
                    failures.traces.load(Ordering::Relaxed),
                    &[KeyValue::new("signal", "traces")],
                );
                observer.observe(
                    failures.metrics.load(Ordering::Relaxed),
                    &[KeyValue::new("signal", "metrics")],
                );
            })
            .build();
        Ok(Self {
            rpc_duration: meter
                .f64_histogram("rpc.server.call.duration")
                .with_unit("s")
                .with_description("Incoming gRPC calls by method, status and target")
                .with_boundaries(RPC_SECONDS.to_vec())
                .build(),
            decisions: meter
                .u64_counter("switchyard.decisions")
                .with_description("Routing decisions by label group and target")
                .build(),
            explanations: ExplanationCounters::new(&meter),
            connections: ConnectionCounters::new(&meter),
            confidence: meter
                .f64_histogram("switchyard.classifier.confidence")
                .with_description("Probability of the classifier's decided label")
                .with_boundaries(PROBABILITY.to_vec())
                .build(),
            classify_duration: meter
                .f64_histogram("switchyard.classifier.duration")
                .with_unit("s")
                .with_description("Classification time, queue wait included, by the cascade tier that answered")
                .with_boundaries(CLASSIFY_SECONDS.to_vec())
                .build(),
            score_duration: meter
                .f64_histogram("switchyard.score.duration")
                .with_unit("s")
                .with_description("Churn scoring time, inference queue included")
                .with_boundaries(SECONDS.to_vec())
                .build(),
            batch_size: meter
                .u64_histogram("switchyard.inference.batch_size")
                .with_unit("{request}")
                .with_description("Requests per ONNX run (micro-batching), by model")
                .with_boundaries(BATCH.to_vec())
                .build(),
            llm_duration: meter
                .f64_histogram("gen_ai.client.operation.duration")
                .with_unit("s")
                .with_description("LLM calls, retries included")
                .with_boundaries(GENAI_SECONDS.to_vec())
                .build(),
            llm_tokens: meter
                .u64_histogram("gen_ai.client.token.usage")
                .with_unit("{token}")
                .with_description("Tokens per LLM call by type")
                .with_boundaries(TOKENS.to_vec())
                .build(),
            llm_first_token: meter
                .f64_histogram("gen_ai.client.operation.time_to_first_chunk")
                .with_unit("s")
                .with_description("Time until a streamed answer's first chunk, from the call")
                .with_boundaries(GENAI_SECONDS.to_vec())
                .build(),
            llm_cost: meter
                .f64_counter("switchyard.llm.cost")
                .with_description("LLM cost from configured token prices, by target and tenant")
                .build(),
            shadow_requests: meter
                .u64_counter("switchyard.shadow.requests")
                .with_description("Mirrored requests run on a shadow target, by outcome (ok, an error kind, dropped)")
                .build(),
            shadow_agreement: meter
                .u64_counter("switchyard.shadow.agreement")
                .with_description(
                    "Shadow answers that agreed with the primary's (same churn verdict, same kind of answer)",
                )
                .build(),
            shadow_duration: meter
                .f64_histogram("switchyard.shadow.duration")
                .with_unit("s")
                .with_description("Shadow target latency")
                .with_boundaries(SECONDS.to_vec())
                .build(),
            policy_reloads: meter
                .u64_counter("switchyard.policy.reloads")
                .with_description("Policy file reloads by result (applied, unchanged, rejected)")
                .build(),
            model_reloads: meter
                .u64_counter("switchyard.model.reloads")
                .with_description("Model set reloads by result (applied, unchanged, rejected)")
                .build(),
            candidate_comparisons: meter
                .u64_counter("switchyard.model.candidate.comparisons")
                .with_description("Candidate model versions run in the serving ones' shadow, by outcome")
                .build(),
            candidate_delta: meter
                .f64_histogram("switchyard.model.candidate.score_delta")
                .with_description("Candidate scorer's probability minus the serving scorer's, per record")
                .with_boundaries(vec![-0.5, -0.2, -0.1, -0.05, -0.01, 0.0, 0.01, 0.05, 0.1, 0.2, 0.5])
                .build(),
            registry,
            provider,
        })
    }

    /// Registers the gauges read from `source` (the engine, once loaded): inference queue depth, circuit states
    /// and the policy version in force.
    pub fn observe(&self, source: Arc<dyn GaugeSource>) {
        let meter = self.provider.meter_with_scope(crate::telemetry::names::scope());
        let policy = source.clone();
        meter
            .u64_observable_gauge("switchyard.policy.info")
            .with_description("1, labelled with the policy version in force")
            .with_callback(move |observer| {
                if let Some(version) = policy.policy_version() {
                    observer.observe(1, &[KeyValue::new("switchyard.policy_version", version)]);
                }
            })
            .build();
        let queue = source.clone();
        meter
            .u64_observable_gauge("switchyard.inference.queue_depth")
            .with_description("Inferences waiting for a worker")
            .with_callback(move |observer| {
                if let Some(depth) = queue.queue_depth() {
                    observer.observe(u64::try_from(depth).unwrap_or(u64::MAX), &[]);
                }
            })
            .build();
        self.observe_drift(&meter, source.clone());
        let models = source.clone();
        meter
            .u64_observable_gauge("switchyard.model.info")
            .with_description("1 per serving model, labelled with its name, version and MLflow run (when exported)")
            .with_callback(move |observer| {
                for (name, version, run) in models.models() {
                    let mut labels = vec![
                        KeyValue::new("switchyard.model", name),
                        KeyValue::new("switchyard.model.version", version),
                    ];
                    if let Some(run) = run {
                        labels.push(KeyValue::new("switchyard.model.mlflow_run_id", run));
                    }
                    observer.observe(1, &labels);
                }
            })
            .build();
        meter
            .i64_observable_gauge("switchyard.backend.circuit_state")
            .with_description("Circuit breaker per LLM backend: 0 closed, 1 half-open, 2 open")
            .with_callback(move |observer| {
                for (name, circuit) in source.circuits() {
                    let state = match circuit {
                        llm::CircuitState::Closed => 0,
                        llm::CircuitState::HalfOpen => 1,
                        llm::CircuitState::Open => 2,
                    };
                    observer.observe(state, &[KeyValue::new("switchyard.backend", name)]);
                }
            })
            .build();
    }

    /// The drift gauges: `switchyard.drift.samples` by model; `switchyard.drift.js_distance`,
    /// `switchyard.drift.psi` and `switchyard.drift.drifted` (0 or 1) by model and signal, for judged models only
    /// (enough requests in the window), from the last evaluation.
    fn observe_drift(&self, meter: &opentelemetry::metrics::Meter, source: Arc<dyn GaugeSource>) {
        let samples = source.clone();
        meter
            .u64_observable_gauge("switchyard.drift.samples")
            .with_description("Requests in the drift window, by model")
            .with_callback(move |observer| {
                for (model, count) in samples.drift().0 {
                    observer.observe(count, &[KeyValue::new("switchyard.model", model)]);
                }
            })
            .build();
        type Reading = fn(&DriftGauge) -> f64;
        let gauges: [(&'static str, &'static str, Reading); 3] = [
            (
                "switchyard.drift.js_distance",
                "Jensen-Shannon distance (natural log) of a signal's window to its reference",
                |g| g.js_distance,
            ),
            (
                "switchyard.drift.psi",
                "Population stability index of a signal's window against its reference",
                |g| g.psi,
            ),
            (
                "switchyard.drift.drifted",
                "1 when a signal's JS distance or PSI is at or above its threshold",
                |g| f64::from(u8::from(g.drifted)),
            ),
        ];
        for (name, description, reading) in gauges {
            let source = source.clone();
            meter
                .f64_observable_gauge(name)
                .with_description(description)
                .with_callback(move |observer| {
                    for gauge in source.drift().1 {
                        observer.observe(
                            reading(&gauge),
                            &[
                                KeyValue::new("switchyard.model", gauge.model.clone()),
                                KeyValue::new("switchyard.signal", gauge.signal.clone()),
                            ],
                        );
                    }
                })
                .build();
        }
    }

    /// One model set reload and its result.
    pub fn model_reload(&self, result: &'static str) {
        self.model_reloads.add(1, &[KeyValue::new("result", result)]);
    }

    /// One candidate comparison of `model` at the candidate `version`.
    pub fn candidate(&self, model: &str, version: &str, outcome: CandidateOutcome) {
        let outcome = match outcome {
            CandidateOutcome::Compared { agree: true } => "agree",
            CandidateOutcome::Compared { agree: false } => "disagree",
            CandidateOutcome::Failed => "failed",
            CandidateOutcome::Dropped => "dropped",
        };
        self.candidate_comparisons.add(
            1,
            &[
                KeyValue::new("switchyard.model", model.to_owned()),
                KeyValue::new("switchyard.model.version", version.to_owned()),
                KeyValue::new("outcome", outcome),
            ],
        );
    }

    /// A candidate scorer's probability minus the serving one's, for one record.
    pub fn candidate_delta(&self, model: &str, version: &str, delta: f32) {
        self.candidate_delta.record(
            f64::from(delta),
            &[
                KeyValue::new("switchyard.model", model.to_owned()),
                KeyValue::new("switchyard.model.version", version.to_owned()),
            ],
        );
    }

    /// One finished RPC (`method` fully qualified): `rpc.server.call.duration`.
    pub fn rpc(&self, method: &'static str, (code, message): (tonic::Code, &str), target: &str, elapsed: Duration) {
        let code_name = crate::telemetry::spans::code_name(code);
        let mut attributes = vec![
            KeyValue::new("rpc.system.name", "grpc"),
            KeyValue::new("rpc.method", method),
            KeyValue::new("rpc.response.status_code", code_name),
            KeyValue::new("switchyard.target", target.to_owned()),
        ];
        if let Some(error_type) = crate::telemetry::spans::server_error_type(code, message) {
            attributes.push(KeyValue::new("error.type", error_type));
        }
        self.rpc_duration.record(elapsed.as_secs_f64(), &attributes);
    }

    /// One routing decision: `switchyard.decisions` and `switchyard.classifier.confidence`.
    pub fn decision(&self, group: &str, target: &str, confidence: f32) {
        self.confidence.record(f64::from(confidence), &[]);
        self.decisions.add(
            1,
            &[
                KeyValue::new("switchyard.label_group", group.to_owned()),
                KeyValue::new("switchyard.target", target.to_owned()),
            ],
        );
    }

    /// One check of an LLM explanation (`attempt`: `first`, `retry` or `stream`): `switchyard.explanation.checks`.
    pub fn explanation_check(&self, target: &str, attempt: &'static str, verdict: &'static str) {
        self.explanations.check(target, attempt, verdict);
    }

    /// A client connection accepted on `port` (`grpc`, `admin`): `switchyard.connections.open`.
    pub fn connection_opened(&self, port: &'static str) {
        self.connections.opened(port);
    }

    /// A client connection on `port` ended (or was refused at the limit), and why: `switchyard.connections.closed`.
    pub fn connection_closed(&self, port: &'static str, reason: &'static str) {
        self.connections.closed(port, reason);
    }

    /// A call refused at once by the `limit` it would exceed (`connection`, `server`): `switchyard.calls.shed`.
    pub fn shed(&self, limit: &'static str) {
        self.connections.shed(limit);
    }

    /// One hybrid answer's explanation and where it came from: `switchyard.explanations`.
    pub fn explanation(&self, target: &str, source: &'static str) {
        self.explanations.answer(target, source);
    }

    /// One classification (queue wait included) and the cascade tier that answered: `switchyard.classifier.duration`.
    pub fn classify(&self, tier: classical::Tier, elapsed: Duration) {
        self.classify_duration.record(
            elapsed.as_secs_f64(),
            &[KeyValue::new("switchyard.classifier.tier", tier.as_str())],
        );
    }

    /// One scoring (queue wait included): `switchyard.score.duration`.
    pub fn score(&self, elapsed: Duration) {
        self.score_duration.record(elapsed.as_secs_f64(), &[]);
    }

    /// One LLM operation, whole (or a stream from its start to its end), `error` its failure's kind:
    /// `gen_ai.client.operation.duration`.
    pub fn llm_call(&self, call: &LlmLabels, elapsed: Duration, error: Option<&'static str>) {
        let mut attributes = call.attributes();
        if let Some(kind) = error {
            attributes.push(KeyValue::new("error.type", kind));
        }
        self.llm_duration.record(elapsed.as_secs_f64(), &attributes);
    }

    /// A stream's first chunk: `gen_ai.client.operation.time_to_first_chunk`.
    pub fn first_chunk(&self, call: &LlmLabels, elapsed: Duration) {
        self.llm_first_token.record(elapsed.as_secs_f64(), &call.attributes());
    }

    /// One call's tokens and cost: `gen_ai.client.token.usage` for the counts the backend reported (estimates go
    /// to cost and the token budget only, as the conventions ask), and the running total `switchyard.llm.cost` by
    /// target and tenant (`tenant`: a bounded label, see `Engine::payer`).
    pub fn llm_usage(
        &self,
        target: &str,
        tenant: &str,
        call: &LlmLabels,
        usage: llm::Usage,
        estimated: bool,
        cost: f64,
    ) {
        if !estimated {
            for (kind, tokens) in [("input", usage.input_tokens), ("output", usage.output_tokens)] {
                let mut attributes = call.attributes();
                attributes.push(KeyValue::new("gen_ai.token.type", kind));
                self.llm_tokens.record(u64::from(tokens), &attributes);
            }
        }
        self.llm_cost.add(
            cost,
            &[
                KeyValue::new("switchyard.target", target.to_owned()),
                KeyValue::new("switchyard.tenant", tenant.to_owned()),
            ],
        );
    }

    /// One shadow run: `switchyard.shadow.requests` by outcome, `switchyard.shadow.duration` when it ran, and
    /// `switchyard.shadow.agreement` when it answered.
    pub fn shadow(&self, rule: &str, target: &str, outcome: ShadowOutcome, elapsed: Option<Duration>) {
        let labels = [
            KeyValue::new("switchyard.rule", rule.to_owned()),
            KeyValue::new("switchyard.shadow_target", target.to_owned()),
        ];
        let with = |extra: KeyValue| [labels[0].clone(), labels[1].clone(), extra];
        if let Some(elapsed) = elapsed {
            self.shadow_duration.record(elapsed.as_secs_f64(), &labels);
        }
        let kind = match outcome {
            ShadowOutcome::Dropped => "dropped",
            ShadowOutcome::Failed(kind) => kind,
            ShadowOutcome::Answered { agree } => {
                self.shadow_agreement.add(1, &with(KeyValue::new("agree", agree)));
                "ok"
            }
        };
        self.shadow_requests.add(1, &with(KeyValue::new("outcome", kind)));
    }

    /// One policy reload, by result (`applied`, `unchanged`, `rejected`).
    pub fn policy_reload(&self, result: &'static str) {
        self.policy_reloads.add(1, &[KeyValue::new("result", result)]);
    }

    /// Records each ONNX run's batch size; handed to the inference pool.
    pub fn batch_observer(&self) -> classical::BatchObserver {
        let histogram = self.batch_size.clone();
        Arc::new(move |model: classical::Model, size: usize| {
            let size = u64::try_from(size).unwrap_or(u64::MAX);
            histogram.record(size, &[KeyValue::new("switchyard.model", model.as_str())]);
        })
    }

    /// Pushes the last OTLP metrics (when exported) and stops the readers.
    pub fn shutdown(&self) {
        if let Err(error) = self.provider.shutdown() {
            tracing::debug!(%error, "meter provider shutdown");
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> Result<String, MetricsError> {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .map_err(|e| MetricsError(e.to_string()))?;
        String::from_utf8(out).map_err(|e| MetricsError(e.to_string()))
    }
}

/// Shared handle.
pub type SharedMetrics = Arc<Metrics>;

/// What the gauges read, implemented by the engine: the metrics know nothing of the request path.
pub trait GaugeSource: Send + Sync + 'static {
    /// The policy version in force (`None` before the engine is loaded).
    fn policy_version(&self) -> Option<String>;
    /// Inferences waiting for a worker.
    fn queue_depth(&self) -> Option<usize>;
    /// Every LLM backend's circuit.
    fn circuits(&self) -> Vec<(String, llm::CircuitState)>;
    /// The last drift evaluation: requests in the window per model, and each judged signal.
    fn drift(&self) -> (Vec<(String, u64)>, Vec<DriftGauge>);
    /// The serving models' names and versions, with the MLflow run that made each when known.
    fn models(&self) -> Vec<(String, String, Option<String>)>;
}

/// One judged drift signal, as the gauges report it.
#[derive(Debug, Clone, PartialEq)]
pub struct DriftGauge {
    /// The model.
    pub model: String,
    /// The signal (a field, `prediction`, `label_group`, `confidence`).
    pub signal: String,
    /// Jensen-Shannon distance to the reference.
    pub js_distance: f64,
    /// Population stability index against the reference.
    pub psi: f64,
    /// At or above a threshold.
    pub drifted: bool,
}

/// How a shadow run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShadowOutcome {
    /// Skipped: too many shadows in flight.
    Dropped,
    /// Failed with this kind of error.
    Failed(&'static str),
    /// Answered; `agree` says whether its answer agreed with the primary's.
    Answered {
        /// Same churn verdict, same kind of answer.
        agree: bool,
    },
}
