//! Entry points for the cargo-fuzz targets (`router/fuzz`), behind the `fuzzing` feature.

use futures::StreamExt;

use crate::{LlmError, StreamEvent};

/// Runs the SSE parser over `body` delivered in pieces of `cut` bytes; the backend is named `fuzz`.
pub fn sse(body: &[u8], cut: usize) -> Vec<Result<StreamEvent, LlmError>> {
    let pieces: Vec<Result<Vec<u8>, LlmError>> = body.chunks(cut.max(1)).map(|c| Ok(c.to_vec())).collect();
    futures::executor::block_on(crate::sse::events(futures::stream::iter(pieces), "fuzz".to_owned()).collect())
}
