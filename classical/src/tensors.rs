//! Building `[rows, 1]` input tensors and reading the `probabilities` output.

use ort::session::{Session, SessionInputValue};
use ort::value::Tensor;

use crate::ClassicalError;

/// Name of the probability output every Switchyard model exposes (`zipmap` disabled at export).
pub(crate) const PROBABILITIES: &str = "probabilities";

/// A `[rows, 1]` string tensor (ONNX Runtime copies the strings in).
pub(crate) fn strings(values: &[String], model: &str) -> Result<SessionInputValue<'static>, ClassicalError> {
    Tensor::from_string_array(([values.len(), 1], values))
        .map(Into::into)
        .map_err(|e| inference_error(model, e))
}

/// A `[rows, 1]` float tensor.
pub(crate) fn floats(values: Vec<f32>, model: &str) -> Result<SessionInputValue<'static>, ClassicalError> {
    Tensor::from_array(([values.len(), 1], values))
        .map(Into::into)
        .map_err(|e| inference_error(model, e))
}

/// Runs `session` and returns the `probabilities` output as rows of `width` columns.
pub(crate) fn run_probabilities(
    session: &mut Session,
    inputs: Vec<(String, SessionInputValue<'static>)>,
    rows: usize,
    width: usize,
    model: &str,
) -> Result<Vec<Vec<f32>>, ClassicalError> {
    let outputs = session.run(inputs).map_err(|e| inference_error(model, e))?;
    let value = outputs.get(PROBABILITIES).ok_or_else(|| ClassicalError::Inference {
        model: model.to_owned(),
        reason: format!("no output named {PROBABILITIES}"),
    })?;
    let (shape, data) = value
        .try_extract_tensor::<f32>()
        .map_err(|e| inference_error(model, e))?;
    if shape.len() != 2 || shape[0] != rows as i64 || shape[1] != width as i64 {
        return Err(ClassicalError::Inference {
            model: model.to_owned(),
            reason: format!("{PROBABILITIES} has shape {shape:?}, expected [{rows}, {width}]"),
        });
    }
    Ok(data.chunks(width).map(<[f32]>::to_vec).collect())
}

fn inference_error(model: &str, error: impl std::fmt::Display) -> ClassicalError {
    ClassicalError::Inference {
        model: model.to_owned(),
        reason: error.to_string(),
    }
}
