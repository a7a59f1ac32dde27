//! Authentication, before any handler: with `[auth]` required, every call but health needs a known API key or a
//! verified client certificate with a listed name.
//! The caller's tenant goes into the request's extensions ([`Authenticated`]), where the service takes it (and
//! refuses a body that names another); the credential itself is removed from the request. Reflection needs the
//! tenant's `allow_reflection`. Failures say nothing an attacker could use: one message for a missing, malformed
//! or unknown key.

use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::{Either, Ready, ready};
use tonic::Status;
use tower::{Layer, Service};

use crate::auth::{AUTHORIZATION, Authenticated, KeysFile};
use crate::engine::SharedEngine;

/// Paths every caller may use, authenticated or not: load balancers and orchestrators probe health.
const OPEN_PREFIX: &str = "/grpc.health.v1.Health/";
/// Server reflection's paths (both protocol versions).
const REFLECTION_PREFIX: &str = "/grpc.reflection.";

/// The message of every authentication failure.
pub const UNAUTHENTICATED: &str = "missing or invalid credentials";

/// Authenticates calls with the gateway's credentials (`None`: authentication off, every call passes).
#[derive(Clone)]
pub struct Authenticate {
    keys: Option<Arc<KeysFile>>,
    engine: SharedEngine,
}

impl Authenticate {
    /// The layer over `keys`; the engine's policy says which tenants may use reflection.
    pub fn new(keys: Option<Arc<KeysFile>>, engine: SharedEngine) -> Self {
        Self { keys, engine }
    }
}

impl<S> Layer<S> for Authenticate {
    type Service = AuthenticateService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthenticateService {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service an [`Authenticate`] layer makes.
#[derive(Clone)]
pub struct AuthenticateService<S> {
    inner: S,
    layer: Authenticate,
}

impl<S, B> Service<http::Request<tonic::body::Body>> for AuthenticateService<S>
where
    S: Service<http::Request<tonic::body::Body>, Response = http::Response<B>>,
    B: Default,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Either<Ready<Result<S::Response, S::Error>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<tonic::body::Body>) -> Self::Future {
        let Some(keys) = &self.layer.keys else {
            return Either::Right(self.inner.call(request));
        };
        let path = request.uri().path();
        if path.starts_with(OPEN_PREFIX) {
            return Either::Right(self.inner.call(request));
        }
        // A header that is not text is a credential that does not authenticate, not an absent one.
        let header = request
            .headers()
            .get(AUTHORIZATION)
            .map(|v| v.to_str().unwrap_or_default());
        let connection = request.extensions().get::<Arc<crate::listen::Connection>>().cloned();
        let leaf = connection
            .as_deref()
            .and_then(|connection| connection.peer_certificates.as_deref())
            .and_then(|chain| chain.first())
            .map(|der| der.as_ref());
        let Some(caller) = keys.current().authenticate(header, leaf) else {
            return Either::Left(ready(Ok(Status::unauthenticated(UNAUTHENTICATED).into_http())));
        };
        if path.starts_with(REFLECTION_PREFIX) {
            let allowed = self
                .layer
                .engine
                .get()
                .is_some_and(|engine| engine.policy().current().permissions(&caller.tenant).reflection);
            if !allowed {
                return Either::Left(ready(Ok(Status::permission_denied("not permitted").into_http())));
            }
        }
        request.headers_mut().remove(AUTHORIZATION);
        request.extensions_mut().insert::<Authenticated>(caller);
        Either::Right(self.inner.call(request))
    }
}
