//! Exporters wrapped so that a failed export is counted (and logged once per outage) instead of going unseen.
//! Exports run off the request path (the batch span processor's and periodic reader's own threads), so a
//! collector that is down or slow never delays or fails a request.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::metrics::Temporality;
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};

/// Failed exports so far, by signal; read by the `switchyard.telemetry.export_failures` counter.
#[derive(Debug, Default)]
pub struct ExportFailures {
    /// Span batches that could not be exported.
    pub traces: AtomicU64,
    /// Metric exports that failed.
    pub metrics: AtomicU64,
}

/// Which signal an exporter carries.
#[derive(Debug, Clone, Copy)]
enum Signal {
    Traces,
    Metrics,
}

/// Counts and logs the failures of the exporter it wraps.
#[derive(Debug)]
pub struct Counting<E> {
    inner: E,
    signal: Signal,
    failures: Arc<ExportFailures>,
    failing: AtomicBool,
}

impl<E> Counting<E> {
    /// Wraps a span exporter.
    pub fn traces(inner: E, failures: Arc<ExportFailures>) -> Self {
        Self::new(inner, Signal::Traces, failures)
    }

    /// Wraps a metric exporter.
    pub fn metrics(inner: E, failures: Arc<ExportFailures>) -> Self {
        Self::new(inner, Signal::Metrics, failures)
    }

    fn new(inner: E, signal: Signal, failures: Arc<ExportFailures>) -> Self {
        Self {
            inner,
            signal,
            failures,
            failing: AtomicBool::new(false),
        }
    }

    fn observe(&self, result: OTelSdkResult) -> OTelSdkResult {
        match &result {
            Ok(()) => {
                if self.failing.swap(false, Ordering::Relaxed) {
                    tracing::info!(target: "switchyard::telemetry", signal = ?self.signal, "otlp export recovered");
                }
            }
            Err(error) => {
                let counter = match self.signal {
                    Signal::Traces => &self.failures.traces,
                    Signal::Metrics => &self.failures.metrics,
                };
                counter.fetch_add(1, Ordering::Relaxed);
                if !self.failing.swap(true, Ordering::Relaxed) {
                    tracing::warn!(target: "switchyard::telemetry", signal = ?self.signal, %error, "otlp export failing");
                }
            }
        }
        result
    }
}

impl<E: SpanExporter> SpanExporter for Counting<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let result = self.inner.export(batch).await;
        self.observe(result)
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

impl<E: PushMetricExporter> PushMetricExporter for Counting<E> {
    async fn export(&self, metrics: &ResourceMetrics) -> OTelSdkResult {
        let result = self.inner.export(metrics).await;
        self.observe(result)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn temporality(&self) -> Temporality {
        self.inner.temporality()
    }
}
