//! The request encoder: the classifier's transformer tier (a fine-tuned MiniLM, int8 ONNX), run when the linear
//! model is unsure (see [`crate::cascade`]).
//!
//! Same labels as the linear classifier, same inputs in a different form: the text is normalised like the linear
//! model's, prefixed with the file's record marker when a record is attached, and tokenized with the model's own
//! `tokenizer.json` (the `tokenizers` crate, the library that wrote it), truncated at the model's `max_tokens` and
//! padded only to the longest text of the batch.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ort::session::{Session, SessionInputValue};
use ort::value::Tensor;
use tokenizers::{Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

use crate::classifier::TextNormalization;
use crate::metadata::{LabelInfo, MetadataReader, ModelIdentity};
use crate::{ClassicalError, Int8Products, OnnxRuntime, tensors};

/// The encoder's description, shared by every session loaded from the same file.
#[derive(Debug)]
pub struct EncoderInfo {
    /// Name, version and provenance.
    pub identity: ModelIdentity,
    /// Labels in the order of the probability columns (the linear classifier's, checked at start).
    pub labels: Vec<LabelInfo>,
    /// Below this top probability the encoder alone would answer out of scope (chosen on validation data).
    pub out_of_scope_threshold: f32,
    /// Prepended to the text when a customer record is attached, as in training.
    pub record_prefix: String,
    /// Tokens read per request, special tokens included; the rest is cut.
    pub max_tokens: usize,
    /// How text is normalised before tokenization.
    pub text_normalization: TextNormalization,
}

/// One session of the encoder and its tokenizer. `probabilities` needs `&mut self`: give each worker its own.
pub struct RequestEncoder {
    session: Session,
    tokenizer: Tokenizer,
    info: Arc<EncoderInfo>,
    name: String,
}

/// Token ids of a batch, zero-padded to its longest row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenBatch {
    /// Rows in the batch.
    pub rows: usize,
    /// Tokens per row after padding.
    pub width: usize,
    /// `rows × width` token ids, row-major.
    pub input_ids: Vec<i64>,
    /// `rows × width`: 1 for a token, 0 for padding.
    pub attention_mask: Vec<i64>,
}

impl RequestEncoder {
    /// Loads the model at `path` and the tokenizer its metadata names (a file beside it), with exact int8
    /// products on every CPU.
    pub fn load(runtime: &OnnxRuntime, path: &Path) -> Result<Self, ClassicalError> {
        Self::load_with(runtime, path, Int8Products::Exact)
    }

    /// [`RequestEncoder::load`] with the int8 products chosen (the evals compare the CPU's native kernel).
    pub fn load_with(runtime: &OnnxRuntime, path: &Path, products: Int8Products) -> Result<Self, ClassicalError> {
        let session = runtime.session_with(path, products)?;
        let reader = MetadataReader::new(path, &session);
        reader.expect_kind("request_encoder")?;
        let metadata_error = |key: &str, reason: String| ClassicalError::Metadata {
            path: path.to_path_buf(),
            key: key.to_owned(),
            reason,
        };
        const NORMALIZATION: &str = "switchyard.text_normalization";
        let normalization = reader.string(NORMALIZATION)?;
        let text_normalization = TextNormalization::parse(&normalization)
            .ok_or_else(|| metadata_error(NORMALIZATION, format!("unknown normalisation {normalization:?}")))?;
        const MAX_TOKENS: &str = "switchyard.max_tokens";
        let max_tokens: usize = reader.json(MAX_TOKENS)?;
        if !(3..=512).contains(&max_tokens) {
            return Err(metadata_error(MAX_TOKENS, format!("{max_tokens} is not in 3..=512")));
        }
        const TOKENIZER: &str = "switchyard.tokenizer";
        let tokenizer_file = reader.string(TOKENIZER)?;
        let tokenizer_path = sibling(path, &tokenizer_file)
            .ok_or_else(|| metadata_error(TOKENIZER, format!("{tokenizer_file:?} is not a file name")))?;
        let tokenizer = serving_tokenizer(&tokenizer_path, max_tokens)?;
        let info = EncoderInfo {
            identity: reader.identity()?,
            labels: reader.json("switchyard.labels")?,
            out_of_scope_threshold: reader.threshold("switchyard.out_of_scope_threshold")?,
            record_prefix: reader.string("switchyard.record_prefix")?,
            max_tokens,
            text_normalization,
        };
        let name = info.identity.to_string();
        Ok(Self {
            session,
            tokenizer,
            info: Arc::new(info),
            name,
        })
    }

    /// The model's description.
    pub fn info(&self) -> &Arc<EncoderInfo> {
        &self.info
    }

    /// The graph's input text for one request: normalised, prefixed when a record is attached.
    pub fn model_text(&self, text: &str, has_record: bool) -> String {
        let text = self.info.text_normalization.apply(text);
        if has_record {
            format!("{}{text}", self.info.record_prefix)
        } else {
            text
        }
    }

    /// Tokenizes a batch of requests into the graph's two inputs.
    pub fn tokenize(&self, requests: &[(&str, bool)]) -> Result<TokenBatch, ClassicalError> {
        let mut rows: Vec<Vec<u32>> = Vec::with_capacity(requests.len());
        for (text, has_record) in requests {
            // One text at a time on this worker: `encode_batch` would fan out to a rayon pool of its own.
            let encoding = self
                .tokenizer
                .encode(self.model_text(text, *has_record), true)
                .map_err(|e| self.error(format!("tokenizer: {e}")))?;
            rows.push(encoding.get_ids().to_vec());
        }
        let width = rows.iter().map(Vec::len).max().unwrap_or(0).max(1);
        let mut input_ids = vec![0_i64; rows.len() * width];
        let mut attention_mask = vec![0_i64; rows.len() * width];
        for (r, ids) in rows.iter().enumerate() {
            for (c, &id) in ids.iter().enumerate() {
                input_ids[r * width + c] = i64::from(id);
                attention_mask[r * width + c] = 1;
            }
        }
        Ok(TokenBatch {
            rows: rows.len(),
            width,
            input_ids,
            attention_mask,
        })
    }

    /// Label probabilities (in [`EncoderInfo::labels`] order) for each request, in one run.
    pub fn probabilities(&mut self, requests: &[(&str, bool)]) -> Result<Vec<Vec<f32>>, ClassicalError> {
        if requests.is_empty() {
            return Ok(Vec::new());
        }
        let batch = self.tokenize(requests)?;
        let shape = [batch.rows, batch.width];
        let tensor = |values: Vec<i64>| -> Result<SessionInputValue<'static>, ClassicalError> {
            Tensor::from_array((shape, values))
                .map(Into::into)
                .map_err(|e| self.error(e.to_string()))
        };
        let inputs = vec![
            ("input_ids".to_owned(), tensor(batch.input_ids)?),
            ("attention_mask".to_owned(), tensor(batch.attention_mask)?),
        ];
        tensors::run_probabilities(
            &mut self.session,
            inputs,
            requests.len(),
            self.info.labels.len(),
            &self.name,
        )
    }

    fn error(&self, reason: String) -> ClassicalError {
        ClassicalError::Inference {
            model: self.name.clone(),
            reason,
        }
    }
}

/// `name` in the directory of `model`, when `name` is a plain file name (no directories, no `..`).
fn sibling(model: &Path, name: &str) -> Option<PathBuf> {
    let plain = Path::new(name).file_name().is_some_and(|f| f == name);
    plain.then(|| model.with_file_name(name))
}

/// The tokenizer at `path` with padding off and truncation at `max_tokens`, whatever the file says: a file with
/// fixed padding would make every request pay for the longest possible input.
fn serving_tokenizer(path: &Path, max_tokens: usize) -> Result<Tokenizer, ClassicalError> {
    let fail = |reason: String| ClassicalError::ModelLoad {
        path: path.to_path_buf(),
        reason,
    };
    let mut tokenizer = Tokenizer::from_file(path).map_err(|e| fail(e.to_string()))?;
    tokenizer.with_padding(None);
    tokenizer
        .with_truncation(Some(TruncationParams {
            max_length: max_tokens,
            strategy: TruncationStrategy::LongestFirst,
            stride: 0,
            direction: TruncationDirection::Right,
        }))
        .map_err(|e| fail(e.to_string()))?;
    Ok(tokenizer)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::sibling;

    #[test]
    fn the_tokenizer_must_sit_beside_the_model() {
        let model = Path::new("/models/request-encoder/1.0.0/model.onnx");
        assert_eq!(
            sibling(model, "tokenizer.json").as_deref(),
            Some(Path::new("/models/request-encoder/1.0.0/tokenizer.json"))
        );
        for name in ["../tokenizer.json", "/etc/passwd", "a/tokenizer.json", "", ".."] {
            assert_eq!(sibling(model, name), None, "{name:?}");
        }
    }
}
