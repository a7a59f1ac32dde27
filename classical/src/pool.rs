//! The inference pool: ONNX inference on dedicated threads, never on the async runtime's workers.

use std::sync::Arc;
use std::thread;

use crossbeam_channel::{Sender, TrySendError};
use tokio::sync::oneshot;

use crate::batch::{BatchConfig, BatchObserver, ClassifyJob, Job, ScoreJob, Scored, Worker};
use crate::cascade::{CascadeBars, CascadeClassifier, CascadeConfig};
use crate::classifier::ClassifierInfo;
use crate::schema::ValidRecord;
use crate::scorer::ScorerInfo;
use crate::{ChurnScore, ChurnScorer, ClassicalError, Classification, EncoderInfo, OnnxRuntime};

/// Where the models are, how much work the pool may hold and how it batches.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// The request classifier's `.onnx` file.
    pub classifier: std::path::PathBuf,
    /// The churn scorer's `.onnx` file.
    pub scorer: std::path::PathBuf,
    /// Worker threads; each owns one session of each model.
    pub workers: usize,
    /// Jobs that may wait for a worker; beyond it, requests are refused as overloaded.
    pub queue_capacity: usize,
    /// How classifications are batched.
    pub classifier_batch: BatchConfig,
    /// How scores are batched.
    pub scorer_batch: BatchConfig,
    /// The classifier cascade's encoder tier; `None` serves the linear classifier alone.
    pub cascade: Option<CascadeConfig>,
}

/// A fixed set of worker threads, each with its own classifier and scorer session, fed by one bounded queue.
///
/// Async callers enqueue and await a reply; a full queue is refused at once ([`ClassicalError::Overloaded`]) so
/// that load beyond capacity turns into fast errors instead of growing latency. Each worker runs concurrent
/// requests as micro-batches (see [`BatchConfig`]). Dropping the pool stops the workers once the queue drains.
#[derive(Clone)]
pub struct InferencePool {
    jobs: Sender<Job>,
    classifier: Arc<ClassifierInfo>,
    scorer: Arc<ScorerInfo>,
    encoder: Option<(Arc<EncoderInfo>, CascadeBars)>,
    capacity: usize,
    /// The classifications of a request without text, without and with a record: the model's output depends on
    /// nothing else then, so it is computed once at start and such requests (a bare record) skip the queue.
    text_free: Arc<[Classification; 2]>,
}

impl InferencePool {
    /// Loads one session of each model per worker and starts the workers; `observer`, when given, hears of every
    /// ONNX run and its batch size.
    pub fn start(
        runtime: &OnnxRuntime,
        config: &PoolConfig,
        observer: Option<BatchObserver>,
    ) -> Result<Self, ClassicalError> {
        let workers = config.workers.max(1);
        let capacity = config.queue_capacity.max(1);
        let (jobs, queue) = crossbeam_channel::bounded(capacity);
        let mut infos = None;
        let mut scorers = None;
        let mut text_free = None;
        let mut encoder_info = None;
        for index in 0..workers {
            let mut classifier = CascadeClassifier::load(runtime, &config.classifier, config.cascade.as_ref())?;
            if let Some((info, bars)) = classifier.encoder() {
                encoder_info.get_or_insert_with(|| (info.clone(), bars));
            }
            let linear = classifier.linear();
            infos.get_or_insert_with(|| linear.info().clone());
            if text_free.is_none() {
                let answers = linear.classify_batch(&[("", false), ("", true)])?;
                let answers = <[Classification; 2]>::try_from(answers).map_err(|_| ClassicalError::Inference {
                    model: linear.info().identity.to_string(),
                    reason: "two empty texts did not give two answers".to_owned(),
                })?;
                text_free = Some(answers);
            }
            let worker = Worker {
                classifier,
                scorer: ChurnScorer::load(runtime, &config.scorer)?,
                classifier_batch: config.classifier_batch,
                scorer_batch: config.scorer_batch,
                observer: observer.clone(),
            };
            scorers.get_or_insert_with(|| worker.scorer.info().clone());
            let queue = queue.clone();
            thread::Builder::new()
                .name(format!("onnx-worker-{index}"))
                .spawn(move || worker.run(queue))
                .map_err(|e| ClassicalError::Inference {
                    model: "inference pool".to_owned(),
                    reason: format!("cannot start worker thread: {e}"),
                })?;
        }
        let no_workers = || ClassicalError::Inference {
            model: "inference pool".to_owned(),
            reason: "no workers".to_owned(),
        };
        let ((classifier, scorer), text_free) = infos.zip(scorers).zip(text_free).ok_or_else(no_workers)?;
        Ok(Self {
            jobs,
            classifier,
            scorer,
            encoder: encoder_info,
            capacity,
            text_free: Arc::new(text_free),
        })
    }

    /// The encoder tier's description and bars, when the cascade is on.
    pub fn encoder(&self) -> Option<&(Arc<EncoderInfo>, CascadeBars)> {
        self.encoder.as_ref()
    }

    /// The classifier's labels, groups, threshold and identity.
    pub fn classifier(&self) -> &Arc<ClassifierInfo> {
        &self.classifier
    }

    /// The scorer's schema, threshold and identity.
    pub fn scorer(&self) -> &Arc<ScorerInfo> {
        &self.scorer
    }

    /// Jobs waiting for a worker now.
    pub fn queue_depth(&self) -> usize {
        self.jobs.len()
    }

    /// Classifies a request on a worker thread, through the cascade when it is on (a request without text: at
    /// once, from the start-up run of the linear model, the only input on which the text decides nothing).
    pub async fn classify(&self, text: &str, has_record: bool) -> Result<Classification, ClassicalError> {
        if self.classifier.text_normalization.leaves_nothing_of(text) {
            return Ok(self.text_free[usize::from(has_record)].clone());
        }
        let (reply, answer) = oneshot::channel();
        self.submit(Job::Classify(ClassifyJob {
            text: text.to_owned(),
            has_record,
            reply,
        }))?;
        answer.await.map_err(|_| self.stopped())?
    }

    /// Scores a validated record on a worker thread.
    pub async fn score(&self, record: ValidRecord) -> Result<ChurnScore, ClassicalError> {
        Ok(self.score_job(record, false).await?.0)
    }

    /// Scores a validated record and attributes the score to its fields (see [`ChurnScorer::influences`]).
    pub async fn score_explained(&self, record: ValidRecord) -> Result<Scored, ClassicalError> {
        self.score_job(record, true).await
    }

    async fn score_job(&self, record: ValidRecord, explain: bool) -> Result<Scored, ClassicalError> {
        let (reply, answer) = oneshot::channel();
        self.submit(Job::Score(ScoreJob { record, explain, reply }))?;
        answer.await.map_err(|_| self.stopped())?
    }

    fn submit(&self, job: Job) -> Result<(), ClassicalError> {
        self.jobs.try_send(job).map_err(|e| match e {
            TrySendError::Full(_) => ClassicalError::Overloaded {
                capacity: self.capacity,
            },
            TrySendError::Disconnected(_) => self.stopped(),
        })
    }

    fn stopped(&self) -> ClassicalError {
        ClassicalError::Inference {
            model: "inference pool".to_owned(),
            reason: "workers stopped".to_owned(),
        }
    }
}

impl std::fmt::Debug for InferencePool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InferencePool")
            .field("capacity", &self.capacity)
            .finish_non_exhaustive()
    }
}
