//! Remote churn scorers: a classical or hybrid target may score its records on a model served elsewhere over the
//! Open Inference Protocol (KServe v2, gRPC): Triton, KServe, MLServer, or another Switchyard. Records are
//! validated against the in-process scorer's schema first (a remote model gets only what the local one would);
//! each call is bounded by the scorer's timeout and the caller's deadline, guarded by a circuit breaker like an
//! LLM backend, and carries the trace context.

use std::time::Duration;

use classical::profile::Observed;
use classical::schema::{FeatureKind, FeatureSchema, ValidRecord};
use llm::{CircuitBreaker, CircuitState, Verdict};
use switchyard_proto::inference as pb;
use switchyard_proto::inference::grpc_inference_service_client::GrpcInferenceServiceClient;
use switchyard_proto::inference::infer_parameter::ParameterChoice;
use tokio::time::Instant;
use tonic::transport::{Channel, Endpoint};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::config::RemoteScorerConfig;

/// Why a remote scorer could not score.
#[derive(Debug, thiserror::Error)]
pub enum RemoteScorerError {
    /// The server could not be reached or failed.
    #[error("remote scorer {scorer} unavailable: {reason}")]
    Unavailable {
        /// The scorer's name in config.
        scorer: String,
        /// What failed.
        reason: String,
    },
    /// The scorer's circuit is open after repeated failures.
    #[error("remote scorer {scorer} unavailable: circuit open after repeated failures, retry in {retry_after:.1?}")]
    CircuitOpen {
        /// The scorer's name in config.
        scorer: String,
        /// When a call may be tried again.
        retry_after: Duration,
    },
    /// No answer within the scorer's timeout or the caller's deadline.
    #[error("remote scorer {scorer} did not answer within {after:?}")]
    Timeout {
        /// The scorer's name in config.
        scorer: String,
        /// The time it had.
        after: Duration,
    },
    /// The server refused a well-formed request or answered something unusable: the scorer is misconfigured.
    #[error("remote scorer {scorer} answered unusably: {reason}")]
    BadAnswer {
        /// The scorer's name in config.
        scorer: String,
        /// What was wrong.
        reason: String,
    },
    /// At start: the endpoint is not usable, or the model it serves does not take the scorer's schema.
    #[error("remote scorer {scorer} ({url}): {reason}")]
    Mismatch {
        /// The scorer's name in config.
        scorer: String,
        /// Its endpoint.
        url: String,
        /// What does not fit.
        reason: String,
    },
}

/// One remote scorer: its endpoint (connected lazily, reconnected by the channel) and breaker. The schema records
/// follow is the serving in-process scorer's, passed with each call (a model reload may change it).
pub struct RemoteScorer {
    config: RemoteScorerConfig,
    client: GrpcInferenceServiceClient<Channel>,
    breaker: CircuitBreaker,
}

impl RemoteScorer {
    /// A scorer for `config`.
    pub fn new(config: RemoteScorerConfig) -> Result<Self, RemoteScorerError> {
        let endpoint = Endpoint::from_shared(config.url.clone())
            .map_err(|e| mismatch(&config, format!("not an endpoint: {e}")))?
            .connect_timeout(config.connect_timeout)
            .tcp_nodelay(true);
        Ok(Self {
            client: GrpcInferenceServiceClient::new(endpoint.connect_lazy()),
            breaker: CircuitBreaker::new(config.breaker),
            config,
        })
    }

    /// Its name in config.
    pub fn name(&self) -> &str {
        &self.config.name
    }

    /// Its endpoint.
    pub fn url(&self) -> &str {
        &self.config.url
    }

    /// Its endpoint's host and port (OpenTelemetry's `server.address` and `server.port`).
    pub fn address(&self) -> (String, Option<u16>) {
        match self.config.url.parse::<http::Uri>() {
            Ok(uri) => (uri.host().unwrap_or_default().to_owned(), uri.port_u16()),
            Err(_) => (self.config.url.clone(), None),
        }
    }

    /// At or above this probability the verdict is churn: the configured threshold, else `serving` (the
    /// in-process model's).
    pub fn threshold(&self, serving: f32) -> f32 {
        self.config.threshold.unwrap_or(serving)
    }

    /// The breaker's state.
    pub fn circuit(&self) -> CircuitState {
        self.breaker.state()
    }

    /// Asks the server for the model's metadata: `Ok(false)` when it cannot be reached (it may come up later),
    /// `Ok(true)` when the model takes every field of `schema` with a fitting datatype and has the configured
    /// output (a server that lists no inputs or outputs is taken at its word), an error when it does not fit.
    pub async fn check(&self, schema: &FeatureSchema) -> Result<bool, RemoteScorerError> {
        let request = pb::ModelMetadataRequest {
            name: self.config.model.clone(),
            version: self.config.version.clone(),
        };
        let answer = tokio::time::timeout(
            self.config.connect_timeout + self.config.timeout,
            self.client.clone().model_metadata(request),
        )
        .await;
        let metadata = match answer {
            Err(_) => return Ok(false),
            Ok(Err(status)) if is_unreachable(status.code()) => return Ok(false),
            Ok(Err(status)) => return Err(mismatch(&self.config, format!("model metadata: {}", status.message()))),
            Ok(Ok(metadata)) => metadata.into_inner(),
        };
        if !metadata.inputs.is_empty() {
            for spec in schema.features() {
                let wanted: &[&str] = match spec.kind {
                    FeatureKind::String { .. } => &["BYTES"],
                    FeatureKind::Number { .. } | FeatureKind::Integer { .. } => &["FP32", "FP64"],
                };
                match metadata.inputs.iter().find(|i| i.name == spec.name) {
                    None => {
                        return Err(mismatch(
                            &self.config,
                            format!("the model has no input {:?}", spec.name),
                        ));
                    }
                    Some(input) if !wanted.contains(&input.datatype.as_str()) => {
                        return Err(mismatch(
                            &self.config,
                            format!(
                                "input {:?} is {}, not {}",
                                spec.name,
                                input.datatype,
                                wanted.join(" or ")
                            ),
                        ));
                    }
                    Some(_) => {}
                }
            }
        }
        if !metadata.outputs.is_empty() && !metadata.outputs.iter().any(|o| o.name == self.config.output) {
            return Err(mismatch(
                &self.config,
                format!("the model has no output {:?}", self.config.output),
            ));
        }
        Ok(true)
    }

    /// The churn probability of each record (valid against `schema`), in order, in one call, by `deadline` at the
    /// latest.
    pub async fn probabilities(
        &self,
        schema: &FeatureSchema,
        records: &[ValidRecord],
        deadline: Option<Instant>,
    ) -> Result<Vec<f32>, RemoteScorerError> {
        let permit = self
            .breaker
            .admit()
            .map_err(|retry_after| RemoteScorerError::CircuitOpen {
                scorer: self.config.name.clone(),
                retry_after,
            })?;
        let now = Instant::now();
        let caller_left = deadline.map(|d| d.saturating_duration_since(now));
        let budget = caller_left.map_or(self.config.timeout, |left| left.min(self.config.timeout));
        let caller_bound = caller_left.is_some_and(|left| left < self.config.timeout);
        let mut request = tonic::Request::new(self.request(schema, records));
        request.set_timeout(budget);
        inject_context(request.metadata_mut());
        let answer = tokio::time::timeout(budget, self.client.clone().model_infer(request)).await;
        let (verdict, result) = match answer {
            Err(_) => (
                if caller_bound {
                    Verdict::Unknown
                } else {
                    Verdict::Failed
                },
                Err(self.timeout(budget)),
            ),
            Ok(Err(status)) if status.code() == tonic::Code::DeadlineExceeded => (
                if caller_bound {
                    Verdict::Unknown
                } else {
                    Verdict::Failed
                },
                Err(self.timeout(budget)),
            ),
            Ok(Err(status)) if is_unreachable(status.code()) || is_server_failure(status.code()) => (
                Verdict::Failed,
                Err(RemoteScorerError::Unavailable {
                    scorer: self.config.name.clone(),
                    reason: format!("{:?}: {}", status.code(), status.message()),
                }),
            ),
            // The server is up and refused what we sent: a configuration problem, not an outage.
            Ok(Err(status)) => (
                Verdict::Healthy,
                Err(self.bad(format!("{:?}: {}", status.code(), status.message()))),
            ),
            Ok(Ok(response)) => match self.read(&response.into_inner(), records.len()) {
                Ok(probabilities) => (Verdict::Healthy, Ok(probabilities)),
                Err(error) => (Verdict::Failed, Err(error)),
            },
        };
        permit.record(verdict);
        result
    }

    /// The request: one `[N, 1]` tensor per schema field (BYTES for strings, FP32 for numbers, NaN for null) in
    /// raw form, the configured output asked for, the configured parameters; BYTES inputs say
    /// `content_type = "str"` (MLServer then decodes them as text; other servers ignore it).
    fn request(&self, schema: &FeatureSchema, records: &[ValidRecord]) -> pb::ModelInferRequest {
        let rows = i64::try_from(records.len()).unwrap_or(i64::MAX);
        let columns: Vec<Vec<Observed<'_>>> = {
            let mut columns = vec![Vec::with_capacity(records.len()); schema.features().len()];
            for record in records {
                for (column, value) in columns.iter_mut().zip(record.observed()) {
                    column.push(value);
                }
            }
            columns
        };
        let mut inputs = Vec::with_capacity(columns.len());
        let mut raw = Vec::with_capacity(columns.len());
        for (spec, values) in schema.features().iter().zip(&columns) {
            let text = matches!(spec.kind, FeatureKind::String { .. });
            let mut bytes = Vec::new();
            for value in values {
                match value {
                    Observed::Text(t) => {
                        bytes.extend(u32::try_from(t.len()).unwrap_or(u32::MAX).to_le_bytes());
                        bytes.extend(t.as_bytes());
                    }
                    Observed::Number(n) => bytes.extend(n.to_le_bytes()),
                }
            }
            let mut parameters = std::collections::HashMap::new();
            if text {
                parameters.insert("content_type".to_owned(), string_parameter("str"));
            }
            inputs.push(pb::model_infer_request::InferInputTensor {
                name: spec.name.clone(),
                datatype: if text { "BYTES" } else { "FP32" }.to_owned(),
                shape: vec![rows, 1],
                parameters,
                contents: None,
            });
            raw.push(bytes);
        }
        pb::ModelInferRequest {
            model_name: self.config.model.clone(),
            model_version: self.config.version.clone(),
            id: String::new(),
            parameters: self
                .config
                .parameters
                .iter()
                .map(|(k, v)| (k.clone(), string_parameter(v)))
                .collect(),
            inputs,
            outputs: vec![pb::model_infer_request::InferRequestedOutputTensor {
                name: self.config.output.clone(),
                parameters: Default::default(),
            }],
            raw_input_contents: raw,
        }
    }

    /// The configured output's column, one probability per row, from raw or typed contents (FP32 or FP64).
    fn read(&self, response: &pb::ModelInferResponse, rows: usize) -> Result<Vec<f32>, RemoteScorerError> {
        let (index, output) = response
            .outputs
            .iter()
            .enumerate()
            .find(|(_, o)| o.name == self.config.output)
            .ok_or_else(|| self.bad(format!("no output {:?} in the answer", self.config.output)))?;
        let values: Vec<f64> = match (response.raw_output_contents.get(index), output.datatype.as_str()) {
            (Some(raw), "FP32") => raw
                .chunks_exact(4)
                .map(|b| f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]])))
                .collect(),
            (Some(raw), "FP64") => raw
                .chunks_exact(8)
                .map(|b| f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
                .collect(),
            (None, "FP32") => output
                .contents
                .as_ref()
                .map(|c| c.fp32_contents.iter().map(|v| f64::from(*v)).collect())
                .unwrap_or_default(),
            (None, "FP64") => output
                .contents
                .as_ref()
                .map(|c| c.fp64_contents.clone())
                .unwrap_or_default(),
            (_, other) => return Err(self.bad(format!("output {:?} is {other}, not FP32 or FP64", output.name))),
        };
        let columns = match output.shape.as_slice() {
            [n] if usize::try_from(*n).ok() == Some(rows) => 1,
            [n, c] if usize::try_from(*n).ok() == Some(rows) => usize::try_from(*c).unwrap_or(0),
            shape => return Err(self.bad(format!("output shape {shape:?} for {rows} rows"))),
        };
        if self.config.column >= columns || values.len() != rows * columns {
            return Err(self.bad(format!(
                "output {:?}: {} values in shape {:?}, column {} asked for",
                output.name,
                values.len(),
                output.shape,
                self.config.column
            )));
        }
        let probabilities: Vec<f32> = values
            .chunks_exact(columns)
            .map(|row| row[self.config.column] as f32)
            .collect();
        if let Some(p) = probabilities.iter().find(|p| !(0.0..=1.0).contains(*p)) {
            return Err(self.bad(format!("{p} is not a probability")));
        }
        Ok(probabilities)
    }

    fn timeout(&self, after: Duration) -> RemoteScorerError {
        RemoteScorerError::Timeout {
            scorer: self.config.name.clone(),
            after,
        }
    }

    fn bad(&self, reason: String) -> RemoteScorerError {
        RemoteScorerError::BadAnswer {
            scorer: self.config.name.clone(),
            reason,
        }
    }
}

fn mismatch(config: &RemoteScorerConfig, reason: String) -> RemoteScorerError {
    RemoteScorerError::Mismatch {
        scorer: config.name.clone(),
        url: config.url.clone(),
        reason,
    }
}

fn string_parameter(value: &str) -> pb::InferParameter {
    pb::InferParameter {
        parameter_choice: Some(ParameterChoice::StringParam(value.to_owned())),
    }
}

/// The server could not be reached (or is not serving yet).
fn is_unreachable(code: tonic::Code) -> bool {
    matches!(code, tonic::Code::Unavailable | tonic::Code::Unknown)
}

/// The server failed on its side.
fn is_server_failure(code: tonic::Code) -> bool {
    matches!(
        code,
        tonic::Code::Internal | tonic::Code::ResourceExhausted | tonic::Code::Aborted | tonic::Code::DataLoss
    )
}

/// Adds the current span's trace context (and baggage) to the call's metadata, with the process's propagator.
fn inject_context(metadata: &mut tonic::metadata::MetadataMap) {
    struct Injector<'a>(&'a mut tonic::metadata::MetadataMap);
    impl opentelemetry::propagation::Injector for Injector<'_> {
        fn set(&mut self, key: &str, value: String) {
            if let (Ok(key), Ok(value)) = (
                tonic::metadata::MetadataKey::from_bytes(key.as_bytes()),
                tonic::metadata::MetadataValue::try_from(value.as_str()),
            ) {
                self.0.insert(key, value);
            }
        }
    }
    let context = tracing::Span::current().context();
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.inject_context(&context, &mut Injector(metadata));
    });
}
