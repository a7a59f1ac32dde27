//! The Open Inference Protocol (KServe v2) over gRPC, `inference.GRPCInferenceService`, beside
//! `switchyard.v1.Router`: standard clients (Triton's `tritonclient`, KServe's) call the churn scorer and the
//! request classifier directly. Same port, same authentication, quotas, limits and traces as the Router; the
//! models run in the same inference pool.

mod models;
mod tensors;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use switchyard_proto::inference as pb;
use switchyard_proto::inference::grpc_inference_service_server::GrpcInferenceService;
use tonic::{Request, Response, Status};

use crate::auth::Authenticated;
use crate::engine::{Engine, SharedEngine};
use crate::error::RouterError;
use models::{PLATFORM, Served};

/// The service: the engine once loaded, and the server's readiness (off while loading and draining).
pub struct InferenceService {
    engine: SharedEngine,
    ready: Arc<AtomicBool>,
}

impl InferenceService {
    /// The service over `engine`; `ready` is the server's readiness flag.
    pub fn new(engine: SharedEngine, ready: Arc<AtomicBool>) -> Self {
        Self { engine, ready }
    }

    fn engine(&self) -> Result<&Engine, Status> {
        Ok(self.engine.get().ok_or(RouterError::NotReady)?)
    }
}

#[tonic::async_trait]
impl GrpcInferenceService for InferenceService {
    async fn server_live(&self, _: Request<pb::ServerLiveRequest>) -> Result<Response<pb::ServerLiveResponse>, Status> {
        Ok(Response::new(pb::ServerLiveResponse { live: true }))
    }

    async fn server_ready(
        &self,
        _: Request<pb::ServerReadyRequest>,
    ) -> Result<Response<pb::ServerReadyResponse>, Status> {
        let ready = self.engine.get().is_some() && self.ready.load(Ordering::SeqCst);
        Ok(Response::new(pb::ServerReadyResponse { ready }))
    }

    async fn model_ready(
        &self,
        request: Request<pb::ModelReadyRequest>,
    ) -> Result<Response<pb::ModelReadyResponse>, Status> {
        let request = request.into_inner();
        let ready = self.ready.load(Ordering::SeqCst)
            && self
                .engine
                .get()
                .is_some_and(|engine| Served::find(&engine.models().pool, &request.name, &request.version).is_ok());
        Ok(Response::new(pb::ModelReadyResponse { ready }))
    }

    async fn server_metadata(
        &self,
        _: Request<pb::ServerMetadataRequest>,
    ) -> Result<Response<pb::ServerMetadataResponse>, Status> {
        Ok(Response::new(pb::ServerMetadataResponse {
            name: "switchyard".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            extensions: Vec::new(),
        }))
    }

    async fn model_metadata(
        &self,
        request: Request<pb::ModelMetadataRequest>,
    ) -> Result<Response<pb::ModelMetadataResponse>, Status> {
        let request = request.into_inner();
        let models = self.engine()?.models();
        let served = Served::find(&models.pool, &request.name, &request.version)?;
        let (name, version) = served.identity(&models.pool);
        let (inputs, outputs) = served.tensors(&models.pool);
        Ok(Response::new(pb::ModelMetadataResponse {
            name,
            versions: vec![version],
            platform: PLATFORM.to_owned(),
            inputs,
            outputs,
        }))
    }

    async fn model_infer(
        &self,
        request: Request<pb::ModelInferRequest>,
    ) -> Result<Response<pb::ModelInferResponse>, Status> {
        let tenant = request
            .extensions()
            .get::<Authenticated>()
            .map(|caller| caller.tenant.clone())
            .unwrap_or_default();
        let engine = self.engine()?;
        let _admission = engine.admit(&tenant)?;
        let request = request.into_inner();
        let models = engine.models();
        let served = Served::find(&models.pool, &request.model_name, &request.model_version)?;
        let inputs = tensors::inputs(&request)?;
        let mut outputs = served.infer(engine, &models, inputs).await?;
        if !request.outputs.is_empty() {
            for asked in &request.outputs {
                if !outputs.iter().any(|o| o.name == asked.name) {
                    return Err(
                        RouterError::invalid(format!("outputs.{}", asked.name), "not an output of this model").into(),
                    );
                }
            }
            outputs.retain(|o| request.outputs.iter().any(|asked| asked.name == o.name));
        }
        let (model_name, model_version) = served.identity(&models.pool);
        Ok(Response::new(pb::ModelInferResponse {
            model_name,
            model_version,
            id: request.id,
            parameters: Default::default(),
            raw_output_contents: outputs.iter().map(tensors::Output::raw).collect(),
            outputs: outputs
                .iter()
                .map(|o| pb::model_infer_response::InferOutputTensor {
                    name: o.name.to_owned(),
                    datatype: o.datatype().to_owned(),
                    shape: o.shape.clone(),
                    ..Default::default()
                })
                .collect(),
        }))
    }
}
