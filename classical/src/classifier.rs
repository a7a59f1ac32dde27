//! The request classifier: (text, record attached?) → calibrated label probabilities.

use std::path::Path;
use std::sync::Arc;

use ort::session::Session;

use crate::cascade::Tier;
use crate::metadata::{LabelInfo, MetadataReader, ModelIdentity};
use crate::{ClassicalError, OnnxRuntime, tensors};

/// The classifier's description, shared by every session loaded from the same file.
#[derive(Debug)]
pub struct ClassifierInfo {
    /// Name, version and provenance.
    pub identity: ModelIdentity,
    /// Labels in the order of the probability columns.
    pub labels: Vec<LabelInfo>,
    /// The label meaning "out of scope".
    pub out_of_scope_label: String,
    /// Below this top probability, the decision is the out-of-scope label.
    pub out_of_scope_threshold: f32,
    /// How text is normalised before it reaches the graph, as in training.
    pub text_normalization: TextNormalization,
}

/// Text normalisation applied before the graph (`switchyard.text_normalization`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextNormalization {
    /// Whitespace runs collapse to one space; ends are trimmed (`collapse_whitespace`).
    CollapseWhitespace,
}

impl TextNormalization {
    pub(crate) fn parse(value: &str) -> Option<Self> {
        match value {
            "collapse_whitespace" => Some(Self::CollapseWhitespace),
            _ => None,
        }
    }

    /// Applies the normalisation.
    pub fn apply(self, text: &str) -> String {
        match self {
            Self::CollapseWhitespace => text.split_whitespace().collect::<Vec<_>>().join(" "),
        }
    }

    /// Whether `apply(text)` is empty, without building it.
    pub fn leaves_nothing_of(self, text: &str) -> bool {
        match self {
            Self::CollapseWhitespace => text.split_whitespace().next().is_none(),
        }
    }
}

/// One session of the request classifier. `classify` needs `&mut self`: give each worker its own.
pub struct RequestClassifier {
    session: Session,
    info: Arc<ClassifierInfo>,
    name: String,
}

/// The classifier's output for one request.
#[derive(Debug, Clone)]
pub struct Classification {
    /// One probability per label, in [`ClassifierInfo::labels`] order.
    pub probabilities: Vec<f32>,
    /// The cascade tier that produced the probabilities.
    pub tier: Tier,
    /// Below this top probability, [`Classification::decided`] answers out of scope.
    threshold: f32,
    /// The linear model's own decision (label index, top probability), kept when the encoder tier answers.
    linear: (usize, f32),
    info: Arc<ClassifierInfo>,
}

impl RequestClassifier {
    /// Loads the model at `path` and reads its labels and threshold from the file's metadata.
    pub fn load(runtime: &OnnxRuntime, path: &Path) -> Result<Self, ClassicalError> {
        let session = runtime.session(path)?;
        let reader = MetadataReader::new(path, &session);
        reader.expect_kind("request_classifier")?;
        let labels: Vec<LabelInfo> = reader.json("switchyard.labels")?;
        let out_of_scope_label = reader.string("switchyard.out_of_scope_label")?;
        if !labels.iter().any(|l| l.label == out_of_scope_label) {
            return Err(ClassicalError::Metadata {
                path: path.to_path_buf(),
                key: "switchyard.out_of_scope_label".to_owned(),
                reason: format!("{out_of_scope_label:?} is not in switchyard.labels"),
            });
        }
        const NORMALIZATION: &str = "switchyard.text_normalization";
        let normalization = reader.string(NORMALIZATION)?;
        let text_normalization = TextNormalization::parse(&normalization).ok_or_else(|| ClassicalError::Metadata {
            path: path.to_path_buf(),
            key: NORMALIZATION.to_owned(),
            reason: format!("unknown normalisation {normalization:?}"),
        })?;
        let info = ClassifierInfo {
            identity: reader.identity()?,
            labels,
            out_of_scope_label,
            out_of_scope_threshold: reader.threshold("switchyard.out_of_scope_threshold")?,
            text_normalization,
        };
        let name = info.identity.to_string();
        Ok(Self {
            session,
            info: Arc::new(info),
            name,
        })
    }

    /// The model's description.
    pub fn info(&self) -> &Arc<ClassifierInfo> {
        &self.info
    }

    /// Classifies one request.
    pub fn classify(&mut self, text: &str, has_record: bool) -> Result<Classification, ClassicalError> {
        let mut batch = self.classify_batch(&[(text, has_record)])?;
        batch.pop().ok_or_else(|| ClassicalError::Inference {
            model: self.name.clone(),
            reason: "empty output".into(),
        })
    }

    /// Classifies several requests in one run.
    pub fn classify_batch(&mut self, requests: &[(&str, bool)]) -> Result<Vec<Classification>, ClassicalError> {
        let normalization = self.info.text_normalization;
        let texts: Vec<String> = requests.iter().map(|(text, _)| normalization.apply(text)).collect();
        let flags: Vec<f32> = requests
            .iter()
            .map(|(_, record)| if *record { 1.0 } else { 0.0 })
            .collect();
        let inputs = vec![
            ("text".to_owned(), tensors::strings(&texts, &self.name)?),
            ("has_record".to_owned(), tensors::floats(flags, &self.name)?),
        ];
        let rows = tensors::run_probabilities(
            &mut self.session,
            inputs,
            requests.len(),
            self.info.labels.len(),
            &self.name,
        )?;
        Ok(rows
            .into_iter()
            .map(|probabilities| {
                let linear = decide(&self.info, &probabilities, self.info.out_of_scope_threshold);
                Classification {
                    probabilities,
                    tier: Tier::Linear,
                    threshold: self.info.out_of_scope_threshold,
                    linear,
                    info: self.info.clone(),
                }
            })
            .collect())
    }
}

impl Classification {
    /// Labels with their probabilities, most probable first, at most `k`; ties keep the labels' order (as a
    /// stable sort would). One pass keeping the best `k`, not a sort of every label: it runs on every request.
    pub fn top(&self, k: usize) -> Vec<(&LabelInfo, f32)> {
        let mut best: Vec<(&LabelInfo, f32)> = Vec::with_capacity(k + 1);
        for (label, &p) in self.info.labels.iter().zip(&self.probabilities) {
            let beaten = best.len() == k && best.last().is_none_or(|(_, q)| p.total_cmp(q).is_le());
            if beaten {
                continue;
            }
            // After every equal or better one already kept.
            let at = best.partition_point(|(_, q)| q.total_cmp(&p).is_ge());
            best.insert(at, (label, p));
            best.truncate(k);
        }
        best
    }

    /// The margin of a [`Classification::top`] list: the best probability minus the second's (the best alone when
    /// there is one label, 0 when none). What policy rules match on as `margin`.
    pub fn margin(top: &[(&LabelInfo, f32)]) -> f32 {
        match top {
            [(_, first), (_, second), ..] => first - second,
            [(_, first)] => *first,
            [] => 0.0,
        }
    }

    /// The same request answered by the encoder tier: `probabilities` in the same label order, decided against
    /// `threshold`.
    pub(crate) fn escalated(&self, probabilities: Vec<f32>, threshold: f32) -> Self {
        Self {
            probabilities,
            tier: Tier::Encoder,
            threshold,
            linear: self.linear,
            info: self.info.clone(),
        }
    }

    /// The out-of-scope threshold [`Classification::decided`] applies: the linear model's own, or the cascade's
    /// for an escalated request.
    pub fn threshold(&self) -> f32 {
        self.threshold
    }

    /// The decided label: the most probable one, or the out-of-scope label when its probability is below the
    /// threshold of the tier that answered. Returns the label and the top probability.
    pub fn decided(&self) -> (&LabelInfo, f32) {
        let (index, p) = decide(&self.info, &self.probabilities, self.threshold);
        (&self.info.labels[index], p)
    }

    /// The linear model's own decision (its label and top probability, against its own threshold), whichever
    /// tier answered: what drift monitoring compares with the linear model's reference profile.
    pub fn linear_decided(&self) -> (&LabelInfo, f32) {
        let (index, p) = self.linear;
        (&self.info.labels[index], p)
    }
}

/// The index of the decided label in `probabilities` (see [`Classification::decided`]) and the top probability;
/// label 0 with probability 0 for an empty row.
fn decide(info: &ClassifierInfo, probabilities: &[f32], threshold: f32) -> (usize, f32) {
    let (best, p) =
        probabilities.iter().enumerate().fold(
            (0, f32::NEG_INFINITY),
            |(bi, bp), (i, &p)| if p > bp { (i, p) } else { (bi, bp) },
        );
    let p = if p.is_finite() { p } else { 0.0 };
    if p < threshold {
        let oos = info.labels.iter().position(|l| l.label == info.out_of_scope_label);
        (oos.unwrap_or(best), p)
    } else {
        (best, p)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::{Classification, ClassifierInfo, TextNormalization};
    use crate::metadata::{LabelInfo, ModelIdentity};

    fn classification(probabilities: Vec<f32>) -> Classification {
        let labels = (0..probabilities.len())
            .map(|i| LabelInfo {
                label: format!("l{i}"),
                group: "g".to_owned(),
            })
            .collect();
        let info = ClassifierInfo {
            identity: ModelIdentity {
                name: "test".to_owned(),
                version: "0".to_owned(),
                training_data_sha256: String::new(),
                training_command: String::new(),
            },
            labels,
            out_of_scope_label: "l0".to_owned(),
            out_of_scope_threshold: 0.0,
            text_normalization: TextNormalization::CollapseWhitespace,
        };
        Classification {
            probabilities,
            tier: crate::cascade::Tier::Linear,
            threshold: 0.0,
            linear: (0, 0.0),
            info: Arc::new(info),
        }
    }

    #[test]
    fn top_k_equals_a_stable_sort_of_every_label_ties_included() {
        let probabilities = vec![0.1, 0.3, 0.05, 0.3, 0.0, 0.2, 0.05, 0.3, 0.0];
        let c = classification(probabilities.clone());
        let mut sorted: Vec<(String, f32)> = (0..probabilities.len())
            .map(|i| (format!("l{i}"), probabilities[i]))
            .collect();
        sorted.sort_by(|a, b| b.1.total_cmp(&a.1));
        for k in 0..=probabilities.len() + 1 {
            let top: Vec<(String, f32)> = c.top(k).into_iter().map(|(l, p)| (l.label.clone(), p)).collect();
            let expected: Vec<(String, f32)> = sorted.iter().take(k).cloned().collect();
            assert_eq!(top, expected, "k = {k}");
        }
    }

    #[test]
    fn collapse_whitespace_matches_the_training_pipeline() {
        // Python: " ".join(text.split())
        let n = TextNormalization::CollapseWhitespace;
        assert_eq!(
            n.apply("  what's   my\tbalance \n\n in  checking "),
            "what's my balance in checking"
        );
        assert_eq!(n.apply(""), "");
        assert_eq!(n.apply(" \t\n"), "");
        assert_eq!(n.apply("café\u{00a0}crème"), "café crème");
        for text in ["", " \t\n", "\u{00a0}", " a ", "é"] {
            assert_eq!(n.leaves_nothing_of(text), n.apply(text).is_empty(), "{text:?}");
        }
    }
}
