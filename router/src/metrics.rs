//! Metrics: OpenTelemetry instruments, exported as Prometheus text on the admin port (`/metrics`).
//!
//! Names follow OpenTelemetry semantic conventions where one exists (`rpc.server.duration`,
//! `gen_ai.client.operation.duration`, `gen_ai.client.token.usage`); Switchyard's own are under `switchyard.`.
//! The Prometheus exporter turns dots into underscores and adds unit and `_total` suffixes.

use std::sync::Arc;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Histogram, MeterProvider};
use opentelemetry_sdk::metrics::SdkMeterProvider;
use prometheus::{Encoder, TextEncoder};

use crate::engine::SharedEngine;
use crate::telemetry::Telemetry;
use std::sync::atomic::Ordering;

/// Seconds buckets from 1 ms to 2 min.
const SECONDS: [f64; 15] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0,
];
/// Probability buckets.
const PROBABILITY: [f64; 10] = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0];
/// Token-count buckets.
const TOKENS: [f64; 12] = [
    1.0, 4.0, 16.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0, 8192.0, 16384.0,
];

/// Batch-size buckets (requests per ONNX run).
const BATCH: [f64; 11] = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0];

/// Every instrument Switchyard records.
pub struct Metrics {
    registry: prometheus::Registry,
    provider: SdkMeterProvider,
    /// `rpc.server.duration` by `rpc.method`, `rpc.grpc.status_code`, `switchyard.target`.
    pub rpc_duration: Histogram<f64>,
    /// `switchyard.decisions` by `switchyard.label_group`, `switchyard.target`.
    pub decisions: Counter<u64>,
    /// `switchyard.classifier.confidence`: the decided label's probability.
    pub confidence: Histogram<f64>,
    /// `switchyard.score.duration`: scoring, queue wait included.
    pub score_duration: Histogram<f64>,
    /// `switchyard.inference.batch_size` by `switchyard.model` (`classifier`, `scorer`): requests per ONNX run.
    pub batch_size: Histogram<u64>,
    /// `gen_ai.client.operation.duration` by `gen_ai.operation.name`, `gen_ai.request.model`, `switchyard.backend`,
    /// `error.type`.
    pub llm_duration: Histogram<f64>,
    /// `gen_ai.client.token.usage` by `gen_ai.token.type` (`input`, `output`), `switchyard.backend`.
    pub llm_tokens: Histogram<u64>,
    /// `switchyard.llm.time_to_first_token` by `switchyard.backend`.
    pub llm_first_token: Histogram<f64>,
    /// `switchyard.llm.cost` by `switchyard.target`.
    pub llm_cost: Counter<f64>,
    /// `switchyard.shadow.requests` by `switchyard.rule`, `switchyard.shadow_target`, `outcome`.
    pub shadow_requests: Counter<u64>,
    /// `switchyard.shadow.agreement` by `switchyard.rule`, `switchyard.shadow_target`, `agree`.
    pub shadow_agreement: Counter<u64>,
    /// `switchyard.shadow.duration` by `switchyard.rule`, `switchyard.shadow_target`.
    pub shadow_duration: Histogram<f64>,
    /// `switchyard.policy.reloads` by `result` (`applied`, `unchanged`, `rejected`).
    pub policy_reloads: Counter<u64>,
}

/// Why metrics could not be set up or encoded.
#[derive(Debug, thiserror::Error)]
#[error("metrics: {0}")]
pub struct MetricsError(String);

impl Metrics {
    /// Builds the provider (Prometheus, plus OTLP when `telemetry` exports metrics), the registry and every
    /// instrument. Call inside the async runtime.
    pub fn new(telemetry: &Telemetry) -> Result<Self, MetricsError> {
        let registry = prometheus::Registry::new();
        let exporter = opentelemetry_prometheus::exporter()
            .with_registry(registry.clone())
            .build()
            .map_err(|e| MetricsError(e.to_string()))?;
        let mut builder = SdkMeterProvider::builder()
            .with_resource(telemetry.resource())
            .with_reader(exporter);
        if let Some(reader) = telemetry.metric_reader().map_err(|e| MetricsError(e.to_string()))? {
            builder = builder.with_reader(reader);
        }
        let provider = builder.build();
        let meter = provider.meter("switchyard");
        let failures = telemetry.failures();
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
                .f64_histogram("rpc.server.duration")
                .with_unit("s")
                .with_description("gRPC requests by method, status and target")
                .with_boundaries(SECONDS.to_vec())
                .build(),
            decisions: meter
                .u64_counter("switchyard.decisions")
                .with_description("Routing decisions by label group and target")
                .build(),
            confidence: meter
                .f64_histogram("switchyard.classifier.confidence")
                .with_description("Probability of the classifier's decided label")
                .with_boundaries(PROBABILITY.to_vec())
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
                .with_boundaries(SECONDS.to_vec())
                .build(),
            llm_tokens: meter
                .u64_histogram("gen_ai.client.token.usage")
                .with_unit("{token}")
                .with_description("Tokens per LLM call by type")
                .with_boundaries(TOKENS.to_vec())
                .build(),
            llm_first_token: meter
                .f64_histogram("switchyard.llm.time_to_first_token")
                .with_unit("s")
                .with_description("Time until a streamed answer's first event")
                .with_boundaries(SECONDS.to_vec())
                .build(),
            llm_cost: meter
                .f64_counter("switchyard.llm.cost")
                .with_description("LLM cost from configured token prices, by target")
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
            registry,
            provider,
        })
    }

    /// Registers the gauges read from the engine once it is loaded: inference queue depth, circuit states and the
    /// policy version in force.
    pub fn observe(&self, engine: SharedEngine) {
        let meter = self.provider.meter("switchyard");
        let policy = engine.clone();
        meter
            .u64_observable_gauge("switchyard.policy.info")
            .with_description("1, labelled with the policy version in force")
            .with_callback(move |observer| {
                if let Some(engine) = policy.get() {
                    let version = engine.policy().current().version.clone();
                    observer.observe(1, &[KeyValue::new("switchyard.policy_version", version)]);
                }
            })
            .build();
        let queue = engine.clone();
        meter
            .u64_observable_gauge("switchyard.inference.queue_depth")
            .with_description("Inferences waiting for a worker")
            .with_callback(move |observer| {
                if let Some(engine) = queue.get() {
                    observer.observe(u64::try_from(engine.queue_depth()).unwrap_or(u64::MAX), &[]);
                }
            })
            .build();
        meter
            .i64_observable_gauge("switchyard.backend.circuit_state")
            .with_description("Circuit breaker per LLM backend: 0 closed, 1 half-open, 2 open")
            .with_callback(move |observer| {
                let Some(engine) = engine.get() else { return };
                for (name, backend) in engine.backends() {
                    let state = match backend.circuit() {
                        llm::CircuitState::Closed => 0,
                        llm::CircuitState::HalfOpen => 1,
                        llm::CircuitState::Open => 2,
                    };
                    observer.observe(state, &[KeyValue::new("switchyard.backend", name.clone())]);
                }
            })
            .build();
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
