//! Dynamic micro-batching on an inference worker: concurrent jobs gathered into one ONNX run per model.
//!
//! A worker takes the next job, then everything already queued behind it (up to each model's `max_size`). A
//! batch of one runs at once: a lone request never waits for company. A batch that already has company may wait
//! up to the smallest `max_wait` of the models in it for more. Callers that left are dropped before the run. If
//! a batched run fails, its jobs run one by one, so one bad input cannot fail the requests batched with it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, TryRecvError};
use tokio::sync::oneshot;

use crate::cascade::CascadeClassifier;
use crate::schema::ValidRecord;
use crate::{ChurnScore, ChurnScorer, ClassicalError, Classification, Influence};

/// How one model's requests are gathered into batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchConfig {
    /// Most requests in one run (1 turns batching off).
    pub max_size: usize,
    /// Longest a batch that already holds two or more requests waits for more.
    pub max_wait: Duration,
}

impl Default for BatchConfig {
    fn default() -> Self {
        Self {
            max_size: 32,
            max_wait: Duration::from_micros(100),
        }
    }
}

/// The model a batch ran on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Model {
    /// The request classifier.
    Classifier,
    /// The churn scorer.
    Scorer,
    /// The request encoder (the cascade's second tier).
    Encoder,
}

impl Model {
    /// A short stable name for metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Classifier => "classifier",
            Self::Scorer => "scorer",
            Self::Encoder => "encoder",
        }
    }
}

/// Called once per ONNX run with its model and the number of requests in it.
pub type BatchObserver = Arc<dyn Fn(Model, usize) + Send + Sync>;

/// A score and, when asked for, the fields' influences on it.
pub type Scored = (ChurnScore, Vec<Influence>);

/// One queued inference.
pub(crate) enum Job {
    Classify(ClassifyJob),
    Score(ScoreJob),
}

/// A request to classify, and where its answer goes.
pub(crate) struct ClassifyJob {
    pub(crate) text: String,
    pub(crate) has_record: bool,
    pub(crate) reply: oneshot::Sender<Result<Classification, ClassicalError>>,
}

/// A record to score (and explain, when asked), and where its answer goes.
pub(crate) struct ScoreJob {
    pub(crate) record: ValidRecord,
    pub(crate) explain: bool,
    pub(crate) reply: oneshot::Sender<Result<Scored, ClassicalError>>,
}

/// A worker's models and how it batches.
pub(crate) struct Worker {
    pub(crate) classifier: CascadeClassifier,
    pub(crate) scorer: ChurnScorer,
    pub(crate) classifier_batch: BatchConfig,
    pub(crate) scorer_batch: BatchConfig,
    pub(crate) observer: Option<BatchObserver>,
}

#[derive(Default)]
struct Batch {
    classify: Vec<ClassifyJob>,
    score: Vec<ScoreJob>,
}

impl Worker {
    /// Serves the queue until every sender is gone.
    pub(crate) fn run(mut self, queue: Receiver<Job>) {
        while let Ok(first) = queue.recv() {
            let batch = gather(first, &queue, self.classifier_batch, self.scorer_batch);
            self.classify(batch.classify);
            self.score(batch.score);
        }
    }

    fn observe(&self, model: Model, size: usize) {
        if let Some(observer) = &self.observer {
            observer(model, size);
        }
    }

    fn classify(&mut self, jobs: Vec<ClassifyJob>) {
        let jobs = present(jobs, |job| job.reply.is_closed());
        if jobs.is_empty() {
            return;
        }
        self.observe(Model::Classifier, jobs.len());
        let requests: Vec<(&str, bool)> = jobs.iter().map(|job| (job.text.as_str(), job.has_record)).collect();
        let observer = self.observer.as_ref();
        let answers = self.classifier.classify_batch(&requests, |size| {
            if let Some(observer) = observer {
                observer(Model::Encoder, size);
            }
        });
        for (job, answer) in jobs.into_iter().zip(answers) {
            let _ = job.reply.send(answer);
        }
    }

    fn score(&mut self, jobs: Vec<ScoreJob>) {
        let jobs = present(jobs, |job| job.reply.is_closed());
        if jobs.is_empty() {
            return;
        }
        self.observe(Model::Scorer, jobs.len());
        let (records, replies): (Vec<ValidRecord>, Vec<_>) = jobs
            .into_iter()
            .map(|job| (job.record, (job.explain, job.reply)))
            .unzip();
        let scores = match self.scorer.score_batch(&records) {
            Ok(scores) if scores.len() == records.len() => scores.into_iter().map(Ok).collect(),
            _ => records.iter().map(|r| self.scorer.score_valid(r)).collect::<Vec<_>>(),
        };
        for ((record, (explain, reply)), score) in records.iter().zip(replies).zip(scores) {
            let answer = score.and_then(|score| {
                let influences = if explain {
                    self.scorer.influences(record, score.probability)?
                } else {
                    Vec::new()
                };
                Ok((score, influences))
            });
            let _ = reply.send(answer);
        }
    }
}

/// `first` and the jobs queued behind it, as [the module](self) describes.
fn gather(first: Job, queue: &Receiver<Job>, classifier: BatchConfig, scorer: BatchConfig) -> Batch {
    let mut batch = Batch::default();
    batch.push(first);
    let started = Instant::now();
    while !batch.full(classifier, scorer) {
        match queue.try_recv() {
            Ok(job) => {
                batch.push(job);
                continue;
            }
            Err(TryRecvError::Disconnected) => break,
            Err(TryRecvError::Empty) => {}
        }
        // A lone request runs at once; waiting only pays when requests are already arriving together.
        if batch.len() < 2 {
            break;
        }
        let deadline = started
            .checked_add(batch.max_wait(classifier, scorer))
            .unwrap_or(started);
        match queue.recv_deadline(deadline) {
            Ok(job) => batch.push(job),
            Err(_) => break,
        }
    }
    batch
}

/// `jobs` without those whose caller has left (their receiver is dropped: nobody would read the answer).
fn present<T>(jobs: Vec<T>, departed: impl Fn(&T) -> bool) -> Vec<T> {
    let before = jobs.len();
    let kept: Vec<T> = jobs.into_iter().filter(|job| !departed(job)).collect();
    if kept.len() < before {
        tracing::debug!(skipped = before - kept.len(), "skipped inference for departed callers");
    }
    kept
}

impl Batch {
    fn push(&mut self, job: Job) {
        match job {
            Job::Classify(job) => self.classify.push(job),
            Job::Score(job) => self.score.push(job),
        }
    }

    fn len(&self) -> usize {
        self.classify.len() + self.score.len()
    }

    fn full(&self, classifier: BatchConfig, scorer: BatchConfig) -> bool {
        self.classify.len() >= classifier.max_size.max(1) || self.score.len() >= scorer.max_size.max(1)
    }

    /// The strictest wait of the models the batch holds.
    fn max_wait(&self, classifier: BatchConfig, scorer: BatchConfig) -> Duration {
        let mut wait = Duration::MAX;
        if !self.classify.is_empty() {
            wait = wait.min(classifier.max_wait);
        }
        if !self.score.is_empty() {
            wait = wait.min(scorer.max_wait);
        }
        wait
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    fn classify_job(text: &str) -> (Job, oneshot::Receiver<Result<Classification, ClassicalError>>) {
        let (reply, answer) = oneshot::channel();
        let job = Job::Classify(ClassifyJob {
            text: text.to_owned(),
            has_record: false,
            reply,
        });
        (job, answer)
    }

    fn config(max_size: usize, max_wait: Duration) -> BatchConfig {
        BatchConfig { max_size, max_wait }
    }

    #[test]
    fn a_lone_request_is_not_held_back_by_the_wait() {
        // With an hour's wait, a gather that waited would hang this test instead of returning.
        let (_sender, queue) = crossbeam_channel::unbounded::<Job>();
        let (first, _answer) = classify_job("alone");
        let batch = gather(first, &queue, config(32, HOUR), config(32, HOUR));
        assert_eq!(batch.len(), 1);
    }

    #[test]
    fn queued_requests_join_the_first_up_to_the_model_s_max_size() {
        let (sender, queue) = crossbeam_channel::unbounded::<Job>();
        let mut answers = Vec::new();
        for i in 0..9 {
            let (job, answer) = classify_job(&format!("text {i}"));
            sender.send(job).unwrap();
            answers.push(answer);
        }
        let (first, _answer) = classify_job("first");
        let batch = gather(first, &queue, config(4, HOUR), config(32, HOUR));
        assert_eq!(batch.classify.len(), 4);
        assert_eq!(batch.classify[0].text, "first", "the first job leads its batch");
        assert_eq!(queue.len(), 6, "the rest stay queued for the next batch");
    }

    #[test]
    fn a_batch_with_company_waits_no_longer_than_max_wait() {
        // Two jobs, nothing more coming, a zero wait: the gather returns with both instead of waiting.
        let (sender, queue) = crossbeam_channel::unbounded::<Job>();
        let (second, _a) = classify_job("second");
        sender.send(second).unwrap();
        let (first, _b) = classify_job("first");
        let batch = gather(first, &queue, config(32, Duration::ZERO), config(32, HOUR));
        assert_eq!(batch.len(), 2);
    }

    #[test]
    fn departed_callers_are_dropped_before_the_run() {
        let (stays, _answer) = classify_job("stays");
        let (leaves, answer) = classify_job("leaves");
        drop(answer);
        let mut batch = Batch::default();
        batch.push(stays);
        batch.push(leaves);
        let kept = present(batch.classify, |job| job.reply.is_closed());
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].text, "stays");
    }
}
