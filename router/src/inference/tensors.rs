//! Open Inference Protocol tensors: an infer request's inputs decoded into typed columns (from the typed
//! `contents` fields or from `raw_input_contents`), and output columns encoded as `raw_output_contents` (what
//! Triton answers and `tritonclient` reads).

use switchyard_proto::inference::model_infer_request::InferInputTensor;
use switchyard_proto::inference::{InferTensorContents, ModelInferRequest};

use crate::error::RouterError;

/// A tensor's elements, flattened row-major.
#[derive(Debug, Clone, PartialEq)]
pub enum Column {
    /// BOOL.
    Bool(Vec<bool>),
    /// Any integer or floating-point datatype, widened.
    Number(Vec<f64>),
    /// BYTES.
    Bytes(Vec<Vec<u8>>),
}

impl Column {
    fn len(&self) -> usize {
        match self {
            Self::Bool(v) => v.len(),
            Self::Number(v) => v.len(),
            Self::Bytes(v) => v.len(),
        }
    }
}

/// One decoded input tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct Input {
    /// Its name.
    pub name: String,
    /// Its shape as sent.
    pub shape: Vec<i64>,
    /// Its elements.
    pub column: Column,
}

impl Input {
    /// The number of rows: the first dimension of a `[N]` or `[N, 1]` tensor.
    pub fn rows(&self) -> Result<usize, RouterError> {
        match self.shape.as_slice() {
            [n] | [n, 1] => usize::try_from(*n).map_err(|_| field_error(&self.name, "a negative dimension")),
            other => Err(field_error(
                &self.name,
                &format!("shape {other:?}: expected [N] or [N, 1] (one value per row)"),
            )),
        }
    }
}

/// An output column and its datatype and shape.
#[derive(Debug, Clone, PartialEq)]
pub struct Output {
    /// Its name.
    pub name: &'static str,
    /// Its shape.
    pub shape: Vec<i64>,
    /// Its elements.
    pub column: Column,
}

impl Output {
    /// The protocol's datatype name.
    pub fn datatype(&self) -> &'static str {
        match self.column {
            Column::Bool(_) => "BOOL",
            Column::Number(_) => "FP32",
            Column::Bytes(_) => "BYTES",
        }
    }

    /// The elements as raw bytes: FP32 little-endian, BOOL one byte each, BYTES each with a 4-byte little-endian
    /// length first.
    pub fn raw(&self) -> Vec<u8> {
        match &self.column {
            Column::Bool(values) => values.iter().map(|b| u8::from(*b)).collect(),
            Column::Number(values) => values.iter().flat_map(|v| (*v as f32).to_le_bytes()).collect(),
            Column::Bytes(values) => values
                .iter()
                .flat_map(|v| {
                    let length = u32::try_from(v.len()).unwrap_or(u32::MAX).to_le_bytes();
                    length.into_iter().chain(v.iter().copied())
                })
                .collect(),
        }
    }
}

/// Decodes every input of `request`: each from its typed contents, or all from `raw_input_contents` (one entry
/// per input, in order; then no input may carry contents). The element count must match the shape.
pub fn inputs(request: &ModelInferRequest) -> Result<Vec<Input>, RouterError> {
    let raw = &request.raw_input_contents;
    if !raw.is_empty() && raw.len() != request.inputs.len() {
        return Err(RouterError::invalid(
            "raw_input_contents",
            format!("{} entries for {} inputs", raw.len(), request.inputs.len()),
        ));
    }
    request
        .inputs
        .iter()
        .enumerate()
        .map(|(i, tensor)| {
            let elements = elements(tensor)?;
            let column = match raw.get(i) {
                Some(bytes) => {
                    if tensor.contents.is_some() {
                        return Err(field_error(&tensor.name, "both contents and raw_input_contents"));
                    }
                    from_raw(tensor, bytes)?
                }
                None => from_contents(tensor, tensor.contents.as_ref())?,
            };
            if column.len() != elements {
                return Err(field_error(
                    &tensor.name,
                    &format!("{} elements for shape {:?}", column.len(), tensor.shape),
                ));
            }
            Ok(Input {
                name: tensor.name.clone(),
                shape: tensor.shape.clone(),
                column,
            })
        })
        .collect()
}

/// The error for input `name`: the field is `inputs.<name>`.
pub fn field_error(name: &str, reason: &str) -> RouterError {
    RouterError::invalid(format!("inputs.{name}"), reason)
}

fn elements(tensor: &InferInputTensor) -> Result<usize, RouterError> {
    tensor.shape.iter().try_fold(1usize, |n, d| {
        usize::try_from(*d)
            .ok()
            .and_then(|d| n.checked_mul(d))
            .ok_or_else(|| field_error(&tensor.name, &format!("shape {:?} is not a size", tensor.shape)))
    })
}

fn from_contents(tensor: &InferInputTensor, contents: Option<&InferTensorContents>) -> Result<Column, RouterError> {
    let empty = InferTensorContents::default();
    let c = contents.unwrap_or(&empty);
    let widen = |v: &[i32]| v.iter().map(|x| f64::from(*x)).collect();
    Ok(match tensor.datatype.as_str() {
        "BOOL" => Column::Bool(c.bool_contents.clone()),
        "INT8" | "INT16" | "INT32" => Column::Number(widen(&c.int_contents)),
        "INT64" => Column::Number(c.int64_contents.iter().map(|x| *x as f64).collect()),
        "UINT8" | "UINT16" | "UINT32" => Column::Number(c.uint_contents.iter().map(|x| f64::from(*x)).collect()),
        "UINT64" => Column::Number(c.uint64_contents.iter().map(|x| *x as f64).collect()),
        "FP32" => Column::Number(c.fp32_contents.iter().map(|x| f64::from(*x)).collect()),
        "FP64" => Column::Number(c.fp64_contents.clone()),
        "BYTES" => Column::Bytes(c.bytes_contents.clone()),
        other => return Err(unsupported(tensor, other)),
    })
}

fn from_raw(tensor: &InferInputTensor, bytes: &[u8]) -> Result<Column, RouterError> {
    fn fixed<const N: usize>(
        tensor: &InferInputTensor,
        bytes: &[u8],
        convert: impl Fn([u8; N]) -> f64,
    ) -> Result<Column, RouterError> {
        if !bytes.len().is_multiple_of(N) {
            return Err(field_error(
                &tensor.name,
                &format!("{} raw bytes is not a whole number of {N}-byte elements", bytes.len()),
            ));
        }
        Ok(Column::Number(
            bytes
                .chunks_exact(N)
                .map(|c| {
                    let mut a = [0u8; N];
                    a.copy_from_slice(c);
                    convert(a)
                })
                .collect(),
        ))
    }
    match tensor.datatype.as_str() {
        "BOOL" => Ok(Column::Bool(bytes.iter().map(|b| *b != 0).collect())),
        "INT8" => fixed::<1>(tensor, bytes, |b| f64::from(i8::from_le_bytes(b))),
        "UINT8" => fixed::<1>(tensor, bytes, |b| f64::from(b[0])),
        "INT16" => fixed::<2>(tensor, bytes, |b| f64::from(i16::from_le_bytes(b))),
        "UINT16" => fixed::<2>(tensor, bytes, |b| f64::from(u16::from_le_bytes(b))),
        "INT32" => fixed::<4>(tensor, bytes, |b| f64::from(i32::from_le_bytes(b))),
        "UINT32" => fixed::<4>(tensor, bytes, |b| f64::from(u32::from_le_bytes(b))),
        "INT64" => fixed::<8>(tensor, bytes, |b| i64::from_le_bytes(b) as f64),
        "UINT64" => fixed::<8>(tensor, bytes, |b| u64::from_le_bytes(b) as f64),
        "FP32" => fixed::<4>(tensor, bytes, |b| f64::from(f32::from_le_bytes(b))),
        "FP64" => fixed::<8>(tensor, bytes, f64::from_le_bytes),
        "BYTES" => length_prefixed(tensor, bytes).map(Column::Bytes),
        other => Err(unsupported(tensor, other)),
    }
}

/// BYTES elements, each a 4-byte little-endian length and that many bytes.
fn length_prefixed(tensor: &InferInputTensor, mut bytes: &[u8]) -> Result<Vec<Vec<u8>>, RouterError> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let (length, rest) = bytes
            .split_first_chunk::<4>()
            .ok_or_else(|| field_error(&tensor.name, "a BYTES element is cut off in its length"))?;
        let length = u32::from_le_bytes(*length) as usize;
        if rest.len() < length {
            return Err(field_error(
                &tensor.name,
                "a BYTES element is longer than the bytes sent",
            ));
        }
        out.push(rest[..length].to_vec());
        bytes = &rest[length..];
    }
    Ok(out)
}

fn unsupported(tensor: &InferInputTensor, datatype: &str) -> RouterError {
    field_error(
        &tensor.name,
        &format!("datatype {datatype:?} is not one of BOOL, INT8-64, UINT8-64, FP32, FP64, BYTES"),
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use switchyard_proto::inference::model_infer_request::InferInputTensor;
    use switchyard_proto::inference::{InferTensorContents, ModelInferRequest};

    use super::{Column, Output, inputs};

    fn tensor(name: &str, datatype: &str, shape: Vec<i64>, contents: Option<InferTensorContents>) -> InferInputTensor {
        InferInputTensor {
            name: name.into(),
            datatype: datatype.into(),
            shape,
            contents,
            ..Default::default()
        }
    }

    #[test]
    fn raw_and_typed_contents_decode_to_the_same_columns() {
        let typed = ModelInferRequest {
            inputs: vec![
                tensor(
                    "text",
                    "BYTES",
                    vec![2, 1],
                    Some(InferTensorContents {
                        bytes_contents: vec![b"hi".to_vec(), Vec::new()],
                        ..Default::default()
                    }),
                ),
                tensor(
                    "x",
                    "FP32",
                    vec![2],
                    Some(InferTensorContents {
                        fp32_contents: vec![1.5, -2.0],
                        ..Default::default()
                    }),
                ),
            ],
            ..Default::default()
        };
        let bytes = Output {
            name: "text",
            shape: vec![2, 1],
            column: Column::Bytes(vec![b"hi".to_vec(), Vec::new()]),
        };
        let raw = ModelInferRequest {
            inputs: vec![
                tensor("text", "BYTES", vec![2, 1], None),
                tensor("x", "FP32", vec![2], None),
            ],
            raw_input_contents: vec![bytes.raw(), [1.5f32.to_le_bytes(), (-2.0f32).to_le_bytes()].concat()],
            ..Default::default()
        };
        assert_eq!(inputs(&typed).unwrap(), inputs(&raw).unwrap());
        assert_eq!(inputs(&raw).unwrap()[0].rows().unwrap(), 2);
    }

    #[test]
    fn malformed_tensors_name_the_input() {
        let cases = [
            (
                tensor("a", "FP16", vec![1], None),
                vec![vec![0, 0]],
                "datatype \"FP16\"",
            ),
            (
                tensor("a", "FP32", vec![2], None),
                vec![vec![0; 4]],
                "1 elements for shape [2]",
            ),
            (
                tensor("a", "FP32", vec![1], None),
                vec![vec![0; 3]],
                "not a whole number",
            ),
            (
                tensor("a", "BYTES", vec![1], None),
                vec![vec![9, 0, 0, 0, 1]],
                "longer than the bytes sent",
            ),
            (tensor("a", "BYTES", vec![1], None), vec![vec![1, 0]], "cut off"),
            (tensor("a", "INT32", vec![-1], None), vec![Vec::new()], "not a size"),
        ];
        for (input, raw, expected) in cases {
            let request = ModelInferRequest {
                inputs: vec![input],
                raw_input_contents: raw,
                ..Default::default()
            };
            let error = inputs(&request).unwrap_err().to_string();
            assert!(error.contains("inputs.a") && error.contains(expected), "{error}");
        }
        let request = ModelInferRequest {
            inputs: vec![tensor("a", "FP32", vec![1], None), tensor("b", "FP32", vec![1], None)],
            raw_input_contents: vec![vec![0; 4]],
            ..Default::default()
        };
        assert!(
            inputs(&request)
                .unwrap_err()
                .to_string()
                .contains("1 entries for 2 inputs")
        );
    }
}
