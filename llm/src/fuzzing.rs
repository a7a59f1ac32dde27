//! Entry points for the cargo-fuzz targets (`router/fuzz`), behind the `fuzzing` feature.

use std::time::Duration;

use futures::StreamExt;

use crate::{LlmError, StreamEvent};

/// Reads `body`, delivered in pieces of `cut` bytes, as a caller reads a backend's stream (the SSE parser under
/// the stall and first-error limits); the backend is named `fuzz`.
pub fn sse(body: &[u8], cut: usize) -> Vec<Result<StreamEvent, LlmError>> {
    let pieces: Vec<Result<Vec<u8>, LlmError>> = body.chunks(cut.max(1)).map(|c| Ok(c.to_vec())).collect();
    let stream = crate::sse::stream(
        futures::stream::iter(pieces),
        "fuzz".to_owned(),
        Duration::from_secs(60),
    );
    match tokio::runtime::Builder::new_current_thread().enable_time().build() {
        Ok(runtime) => runtime.block_on(stream.collect()),
        Err(error) => vec![Err(LlmError::Protocol {
            backend: "fuzz".to_owned(),
            detail: format!("no runtime: {error}"),
        })],
    }
}
