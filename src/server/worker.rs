//! The model thread: owns the model, and runs one or more sessions (workers), each with its
//! classifier on its own thread, that take jobs from one bounded queue. Requests never wait for
//! room in the queue: a full queue is an immediate refusal, which the HTTP layer answers with
//! 429.

use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::thread::JoinHandle;
use std::time::Instant;

use tokio::sync::oneshot;

use crate::classifier::parallel::{StartFailure, start_sessions};
use crate::classifier::{Classifier, ResultRecord};
use crate::engine::{Model, ModelFacts, ModelOptions, Session, SessionOptions};
use crate::exit::PolicyConfig;
use crate::formats::Format;
use crate::pack::AdapterPack;
use crate::text::{DocumentError, prepare_document};
use crate::threads::panic_message;

use super::metrics::Metrics;

/// One document of a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobDocument {
    /// The id its record carries.
    pub id: String,
    /// Its text.
    pub text: String,
    /// The reader that turned it into text.
    pub format: Format,
    /// The encoding it was decoded from, when not UTF-8.
    pub encoding: Option<&'static str>,
}

impl JobDocument {
    /// A document that arrived as text (a JSON string).
    pub fn text(id: String, text: String) -> Self {
        JobDocument {
            id,
            text,
            format: Format::Text,
            encoding: None,
        }
    }
}

/// One request's documents, classified together under one exit setting.
pub struct Job {
    /// The documents, answered in order.
    pub documents: Vec<JobDocument>,
    /// The exit setting.
    pub config: PolicyConfig,
    /// Where the answers go; a closed receiver (the client left) skips the job.
    pub respond: oneshot::Sender<JobAnswer>,
}

/// The answer to a job: a record or the reason there is none, per document; or, when
/// classifying the job panicked (a bug), what the panic said.
pub type JobAnswer = Result<Vec<Result<ResultRecord, String>>, String>;

/// Why a job was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubmitError {
    /// The queue is full: try again later.
    Full,
    /// The model thread has stopped.
    Stopped,
}

/// What the model thread needs to start.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// The GGUF file.
    pub model_path: PathBuf,
    /// llama.cpp model options.
    pub model_options: ModelOptions,
    /// Sessions taking jobs at once, each with its own KV cache, over the one loaded model.
    pub workers: usize,
    /// CPU threads of each session (`None`: its share of what other processes leave free).
    pub threads: Option<usize>,
    /// Most tokens read per document.
    pub token_limit: usize,
    /// Jobs that may wait in the queue.
    pub queue_capacity: usize,
}

/// The handle the HTTP layer holds.
pub struct Worker {
    sender: Mutex<Option<SyncSender<Job>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
    ready: Arc<AtomicBool>,
    depth: Arc<AtomicUsize>,
    facts: Arc<OnceLock<(ModelFacts, String)>>,
    live: Arc<AtomicUsize>,
    workers: usize,
}

impl Worker {
    /// Starts the model thread; the model is loaded there. `on_ready` runs on that thread once
    /// the model is loaded (or with the error if it cannot be).
    pub fn start(
        options: WorkerOptions,
        pack: Arc<AdapterPack>,
        metrics: Arc<Metrics>,
        on_ready: Box<dyn FnOnce(Result<ModelFacts, String>) + Send>,
    ) -> std::io::Result<Self> {
        let (sender, receiver) = sync_channel::<Job>(options.queue_capacity.max(1));
        let workers = options.workers.max(1);
        let ready = Arc::new(AtomicBool::new(false));
        let depth = Arc::new(AtomicUsize::new(0));
        let facts = Arc::new(OnceLock::new());
        let live = Arc::new(AtomicUsize::new(0));
        let thread = {
            let shared = Shared {
                ready: Arc::clone(&ready),
                depth: Arc::clone(&depth),
                facts: Arc::clone(&facts),
                live: Arc::clone(&live),
            };
            std::thread::Builder::new()
                .name("exitwise-model".into())
                .spawn(move || {
                    run(options, &pack, &metrics, receiver, &shared, on_ready);
                })?
        };
        Ok(Worker {
            sender: Mutex::new(Some(sender)),
            thread: Mutex::new(Some(thread)),
            ready,
            depth,
            facts,
            live,
            workers,
        })
    }

    /// Sessions taking jobs at once.
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// The model's facts, once it is loaded.
    pub fn model_facts(&self) -> Option<&ModelFacts> {
        self.facts.get().map(|(facts, _)| facts)
    }

    /// Where the model's layers run (`CPU`, `18 of 18 layers on CUDA0: …`), once it is loaded.
    pub fn placement(&self) -> Option<&str> {
        self.facts.get().map(|(_, placement)| placement.as_str())
    }

    /// Whether the model and pack are loaded and a worker takes jobs.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Whether every worker has stopped after the model was ready (each failed to start a new
    /// session after a panic): the server answers nothing more until it is restarted.
    pub fn has_failed(&self) -> bool {
        self.facts.get().is_some() && self.live.load(Ordering::Acquire) == 0 && !self.is_ready()
    }

    /// Jobs waiting in the queue.
    pub fn queue_depth(&self) -> usize {
        self.depth.load(Ordering::Acquire)
    }

    /// Queues `job` without waiting.
    pub fn submit(&self, job: Job) -> Result<(), SubmitError> {
        let guard = self.sender.lock().unwrap_or_else(PoisonError::into_inner);
        let sender = guard.as_ref().ok_or(SubmitError::Stopped)?;
        self.depth.fetch_add(1, Ordering::AcqRel);
        match sender.try_send(job) {
            Ok(()) => Ok(()),
            Err(error) => {
                self.depth.fetch_sub(1, Ordering::AcqRel);
                Err(match error {
                    TrySendError::Full(_) => SubmitError::Full,
                    TrySendError::Disconnected(_) => SubmitError::Stopped,
                })
            }
        }
    }

    /// Closes the queue and waits until the model thread has answered every queued job.
    pub fn shut_down(&self) {
        self.sender
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let thread = self
            .thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(thread) = thread
            && let Err(payload) = thread.join()
        {
            tracing::error!("the model thread panicked: {}", panic_message(&*payload));
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.shut_down();
    }
}

/// What the model thread shares with the handle.
struct Shared {
    ready: Arc<AtomicBool>,
    depth: Arc<AtomicUsize>,
    facts: Arc<OnceLock<(ModelFacts, String)>>,
    /// Workers still taking jobs.
    live: Arc<AtomicUsize>,
}

fn run(
    options: WorkerOptions,
    pack: &AdapterPack,
    metrics: &Metrics,
    receiver: Receiver<Job>,
    shared: &Shared,
    on_ready: Box<dyn FnOnce(Result<ModelFacts, String>) + Send>,
) {
    let model = match Model::load(&options.model_path, &options.model_options) {
        Ok(model) => model,
        Err(error) => {
            on_ready(Err(format!(
                "cannot load the model `{}`: {error}",
                options.model_path.display()
            )));
            return;
        }
    };
    // A pack for another architecture or width is refused; another quantization is a warning.
    match pack.check_model(model.facts(), None, false) {
        Ok(warnings) => {
            for warning in warnings {
                tracing::warn!("{warning}");
            }
        }
        Err(error) => {
            on_ready(Err(format!(
                "cannot use the pack with the model `{}`: {error}",
                options.model_path.display()
            )));
            return;
        }
    }
    let Some(first_config) = pack
        .manifest
        .calibration
        .as_ref()
        .and_then(|calibration| calibration.operating_points.first())
        .map(|point| point.config)
    else {
        on_ready(Err("the pack has no exit calibration".into()));
        return;
    };
    let workers = options.workers.max(1);
    let session_options = SessionOptions {
        context_tokens: options.token_limit,
        threads: options.threads,
        poll: None,
        sessions_in_process: workers,
        tap: true,
    };
    // One receiver for every worker: each takes the next job when it is free.
    let receiver = Mutex::new(receiver);
    let context = WorkerContext {
        model: &model,
        session_options: &session_options,
        options: &options,
        pack,
        metrics,
        receiver: &receiver,
        shared,
        first_config,
    };
    let context = &context;
    std::thread::scope(|scope| {
        let started = start_sessions(
            scope,
            &model,
            &session_options,
            "exitwise-session",
            workers,
            |number| move |session| take_jobs(number, session, context),
        );
        let handles = match started {
            Ok(handles) => handles,
            Err(StartFailure::Session { number, cause }) => {
                on_ready(Err(format!(
                    "cannot create session {number} of {workers} (fewer workers need less memory): {cause}"
                )));
                return;
            }
            Err(StartFailure::Thread(reason)) => {
                on_ready(Err(reason));
                return;
            }
        };
        let placement = model.placement();
        tracing::info!("the model's layers run on: {placement}; {workers} worker(s)");
        shared.live.store(workers, Ordering::Release);
        let _ = shared.facts.set((model.facts().clone(), placement));
        shared.ready.store(true, Ordering::Release);
        on_ready(Ok(model.facts().clone()));
        for handle in handles {
            if let Err(payload) = handle.join() {
                tracing::error!("a worker panicked: {}", panic_message(&*payload));
            }
        }
    });
}

/// What every worker reads.
struct WorkerContext<'a> {
    model: &'a Model,
    session_options: &'a SessionOptions,
    options: &'a WorkerOptions,
    pack: &'a AdapterPack,
    metrics: &'a Metrics,
    receiver: &'a Mutex<Receiver<Job>>,
    shared: &'a Shared,
    first_config: PolicyConfig,
}

/// Worker `number`'s loop: ends when every sender is gone and the queue is empty, so queued
/// jobs are all answered. A job that panics (a bug) is answered with the panic's message and
/// the worker goes on with a new session, since the old one's state is unknown; when no new
/// session can be made, the worker stops, and with the last one the server stops being ready.
fn take_jobs(number: usize, session: Session<'_>, context: &WorkerContext<'_>) {
    let WorkerContext {
        model,
        session_options,
        pack,
        metrics,
        receiver,
        shared,
        first_config,
        ..
    } = *context;
    let mut classifier = Classifier::new(session, pack, first_config);
    loop {
        // One worker waits on the queue at a time; the others wait for the lock.
        let next = receiver
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .recv();
        let Ok(job) = next else { break };
        shared.depth.fetch_sub(1, Ordering::AcqRel);
        if job.respond.is_closed() {
            metrics.record_abandoned();
            continue;
        }
        let Job {
            documents,
            config,
            respond,
        } = job;
        let panic = respond_catching_panics(respond, || {
            classifier.set_config(config);
            answer_documents(&mut classifier, &documents, context)
        });
        if let Some(message) = &panic {
            tracing::error!("worker {number} panicked on a request (a bug): {message}");
        }
        if panic.is_some() {
            match Session::new(model, session_options) {
                Ok(session) => classifier = Classifier::new(session, pack, first_config),
                Err(error) => {
                    tracing::error!(
                        "worker {number} stops: cannot create a new session after the panic: {error}"
                    );
                    if shared.live.fetch_sub(1, Ordering::AcqRel) == 1 {
                        shared.ready.store(false, Ordering::Release);
                        tracing::error!(
                            "no worker is left: requests are refused until exitwise is restarted"
                        );
                    }
                    return;
                }
            }
        }
    }
}

/// Sends what `work` answers to `respond`, or, when it panics, the panic's message (the client
/// gets a 500 with it, instead of a dropped request); answers that message.
fn respond_catching_panics(
    respond: oneshot::Sender<JobAnswer>,
    work: impl FnOnce() -> Vec<Result<ResultRecord, String>>,
) -> Option<String> {
    let answers = std::panic::catch_unwind(AssertUnwindSafe(work))
        .map_err(|payload| panic_message(&*payload));
    let panic = answers.as_ref().err().cloned();
    // The client may have gone meanwhile; nothing to do then.
    let _ = respond.send(answers);
    panic
}

/// The answer to each of a job's documents.
fn answer_documents(
    classifier: &mut Classifier<'_, '_>,
    documents: &[JobDocument],
    context: &WorkerContext<'_>,
) -> Vec<Result<ResultRecord, String>> {
    let (model, options, pack, metrics) = (
        context.model,
        context.options,
        context.pack,
        context.metrics,
    );
    let mut answers = Vec::with_capacity(documents.len());
    for JobDocument {
        id,
        text,
        format,
        encoding,
    } in documents
    {
        let started = Instant::now();
        let answer = match prepare_document(model, text, options.token_limit) {
            Ok(document) => classifier
                .classify(&document)
                .map_err(|error| format!("cannot classify `{id}`: {error}")),
            Err(DocumentError::Empty) => Err(format!("the document `{id}` is empty")),
            Err(error) => Err(format!("cannot read `{id}`: {error}")),
        };
        answers.push(answer.map(|result| {
            metrics.record_document(&result);
            ResultRecord::new(
                id,
                *format,
                *encoding,
                &pack.manifest.labels,
                &result,
                started.elapsed().as_secs_f64() * 1e3,
            )
        }));
    }
    answers
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panicking_job_is_answered_with_its_message() {
        let (respond, mut answer) = oneshot::channel();
        let panic = respond_catching_panics(respond, || panic!("a head read past its row"));
        assert_eq!(panic.as_deref(), Some("a head read past its row"));
        assert_eq!(
            answer.try_recv().expect("answered"),
            Err("a head read past its row".to_string())
        );

        let (respond, mut answer) = oneshot::channel();
        let panic = respond_catching_panics(respond, || vec![Err("empty".to_string())]);
        assert_eq!(panic, None);
        assert_eq!(
            answer.try_recv().expect("answered"),
            Ok(vec![Err("empty".to_string())])
        );
    }
}
