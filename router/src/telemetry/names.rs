//! Span names and attribute keys Switchyard records, defined once. OpenTelemetry semantic conventions are used
//! where one exists (`rpc.*`, `error.type`; the LLM span's `gen_ai.*` are in [`llm::telemetry::names`]); no
//! convention covers a classifier, a scorer or a routing decision, so those are Switchyard's own, under
//! `switchyard.*`. `docs/telemetry.md` lists every one with its meaning.

/// The semantic conventions' version Switchyard follows (RPC names at v1.44.0; GenAI names as published in
/// v1.41.1, which the 1.44.0 registry still holds): the schema URL on the tracer and the meter.
pub const SCHEMA_URL: &str = "https://opentelemetry.io/schemas/1.44.0";

/// The instrumentation scope of every span and instrument: `switchyard`, its version, [`SCHEMA_URL`].
pub fn scope() -> opentelemetry::InstrumentationScope {
    opentelemetry::InstrumentationScope::builder("switchyard")
        .with_version(env!("CARGO_PKG_VERSION"))
        .with_schema_url(SCHEMA_URL)
        .build()
}

/// Child span: the request classifier ran.
pub const SPAN_CLASSIFY: &str = "classify";
/// Child span: the routing policy decided.
pub const SPAN_DECIDE: &str = "route.decide";
/// Child span: the churn scorer ran.
pub const SPAN_SCORE: &str = "score";
/// Child span: a mirrored request ran on its shadow target (it may end after the SERVER span).
pub const SPAN_SHADOW: &str = "shadow";

/// `grpc`.
pub const RPC_SYSTEM_NAME: &str = "rpc.system.name";
/// The fully qualified method: `switchyard.v1.Router/Route`, `inference.GRPCInferenceService/ModelInfer`, or
/// `_OTHER`.
pub const RPC_METHOD: &str = "rpc.method";
/// The gRPC status code's name (`OK`, `UNAVAILABLE`) of the answer (of the stream's end, for `RouteStream`).
pub const RPC_RESPONSE_STATUS_CODE: &str = "rpc.response.status_code";
/// SERVER span: on the codes that mean the server failed, the code's name; child spans: the failure's kind.
pub const ERROR_TYPE: &str = "error.type";
/// SERVER span: the caller's address and port on the connection.
pub const NETWORK_PEER_ADDRESS: &str = "network.peer.address";
/// SERVER span: the caller's port.
pub const NETWORK_PEER_PORT: &str = "network.peer.port";

/// The request id (the caller's, or a generated UUID).
pub const REQUEST_ID: &str = "switchyard.request.id";
/// The caller's tenant.
pub const TENANT: &str = "switchyard.tenant";
/// Whether a customer record came with the request.
pub const HAS_RECORD: &str = "switchyard.request.has_record";
/// Length of the request text in bytes (the text itself only with content capture).
pub const TEXT_BYTES: &str = "switchyard.request.text_bytes";
/// The request text (content capture only, cut to the configured size).
pub const TEXT: &str = "switchyard.request.text";

/// The classifier's model name.
pub const CLASSIFIER_MODEL: &str = "switchyard.classifier.model";
/// The classifier's model version.
pub const CLASSIFIER_VERSION: &str = "switchyard.classifier.version";
/// The decided label (`oos` when below the model's out-of-scope threshold).
pub const CLASSIFIER_LABEL: &str = "switchyard.classifier.label";
/// The decided label's group.
pub const CLASSIFIER_LABEL_GROUP: &str = "switchyard.classifier.label_group";
/// The top label's probability.
pub const CLASSIFIER_CONFIDENCE: &str = "switchyard.classifier.confidence";
/// Top probability minus the second's.
pub const CLASSIFIER_MARGIN: &str = "switchyard.classifier.margin";
/// The classifier cascade's tier that answered: `linear` or `encoder`.
pub const CLASSIFIER_TIER: &str = "switchyard.classifier.tier";
/// The encoder's name and version, on escalated requests.
pub const CLASSIFIER_ENCODER: &str = "switchyard.classifier.encoder";
/// Classification time in milliseconds, queue wait included.
pub const CLASSIFIER_DURATION_MS: &str = "switchyard.classifier.duration_ms";

/// The policy's version (content hash of its config).
pub const POLICY_VERSION: &str = "switchyard.policy.version";
/// The rule that fired (absent: default target or forced).
pub const ROUTE_RULE: &str = "switchyard.route.rule";
/// The chosen target's name.
pub const ROUTE_TARGET: &str = "switchyard.route.target";
/// The chosen target's kind: `classical`, `llm`, `hybrid` or `reject`.
pub const ROUTE_TARGET_KIND: &str = "switchyard.route.target_kind";
/// Why, in words.
pub const ROUTE_REASON: &str = "switchyard.route.reason";
/// The split's draw: the request's bucket in [0, 10000).
pub const ROUTE_SPLIT_BUCKET: &str = "switchyard.route.split.bucket";
/// Whether the rule's shadow draw mirrors this request.
pub const ROUTE_SHADOW_MIRRORED: &str = "switchyard.route.shadow.mirrored";
/// Why the answer is not the target's full one (score only, or a refusal), on the SERVER span.
pub const ROUTE_DEGRADED: &str = "switchyard.route.degraded";
/// Where a hybrid answer's explanation came from: `llm`, `llm_retried` or `template`.
pub const EXPLANATION_SOURCE: &str = "switchyard.explanation.source";
/// The band of the score the explanation was held to: `low`, `elevated` or `high`.
pub const EXPLANATION_BAND: &str = "switchyard.explanation.band";
/// The verdict of the last LLM explanation checked.
pub const EXPLANATION_VERDICT: &str = "switchyard.explanation.verdict";
/// Event on the SERVER span: a backend of the target's chain failed and the next one is tried.
pub const EVENT_FALLBACK: &str = "switchyard.route.fallback";
/// On the fallback event: the backend that failed.
pub const FALLBACK_FROM: &str = "switchyard.route.fallback.from";
/// On the fallback event: the backend tried next.
pub const FALLBACK_TO: &str = "switchyard.route.fallback.to";

/// The scorer's model name.
pub const SCORER_MODEL: &str = "switchyard.scorer.model";
/// The scorer's model version.
pub const SCORER_VERSION: &str = "switchyard.scorer.version";
/// `score` span: the remote scorer that scored (absent: the in-process model).
pub const SCORER_REMOTE: &str = "switchyard.scorer.remote";
/// SERVER span: the host the caller addressed (`:authority`); `score` span: a remote scorer's host.
pub const SERVER_ADDRESS: &str = "server.address";
/// SERVER span: the port the caller addressed; `score` span: a remote scorer's port.
pub const SERVER_PORT: &str = "server.port";
/// The calibrated churn probability.
pub const SCORER_SCORE: &str = "switchyard.scorer.score";
/// Whether the score reaches the model's decision threshold.
pub const SCORER_CHURN: &str = "switchyard.scorer.churn";
/// Records this request had scored: 1, or the record plus one occluded copy per attributed field when explained.
pub const SCORER_BATCH_SIZE: &str = "switchyard.scorer.batch_size";
/// Whether the score was attributed to the record's fields (hybrid targets).
pub const SCORER_EXPLAINED: &str = "switchyard.scorer.explained";
/// The record's values as JSON (content capture only, cut to the configured size).
pub const SCORER_FEATURES: &str = "switchyard.scorer.features";

/// On the shadow span: the rule that mirrored.
pub const SHADOW_RULE: &str = "switchyard.shadow.rule";
/// On the shadow span: the shadow target.
pub const SHADOW_TARGET: &str = "switchyard.shadow.target";
/// On the shadow span: whether the shadow's answer agreed with the primary's.
pub const SHADOW_AGREE: &str = "switchyard.shadow.agree";
