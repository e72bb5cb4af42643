//! The model thread: owns the model, and runs one or more sessions (workers), each with its
//! classifier on its own thread, that take jobs from one bounded queue. Requests never wait for
//! room in the queue: a full queue is an immediate refusal, which the HTTP layer answers with
//! 429.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::thread::JoinHandle;
use std::time::Instant;

use tokio::sync::oneshot;

use crate::classifier::Classifier;
use crate::classifier::ResultRecord;
use crate::engine::{Model, ModelFacts, ModelOptions, Session, SessionOptions};
use crate::exit::PolicyConfig;
use crate::formats::Format;
use crate::pack::AdapterPack;
use crate::text::{DocumentError, prepare_document};

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
    pub respond: oneshot::Sender<Vec<Result<ResultRecord, String>>>,
}

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
        let thread = {
            let shared = Shared {
                ready: Arc::clone(&ready),
                depth: Arc::clone(&depth),
                facts: Arc::clone(&facts),
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

    /// Whether the model and pack are loaded.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
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
        if let Some(thread) = thread {
            let _ = thread.join();
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
    let (started, started_receiver) = std::sync::mpsc::channel::<Result<(), String>>();
    let options = &options;
    std::thread::scope(|scope| {
        let mut failure = None;
        let mut spawned_threads = 0;
        for number in 1..=workers {
            let started = started.clone();
            let (model, session_options, receiver) = (&model, &session_options, &receiver);
            let spawned = std::thread::Builder::new()
                .name(format!("exitwise-session-{number}"))
                .spawn_scoped(scope, move || {
                    let session = match Session::new(model, session_options) {
                        Ok(session) => session,
                        Err(error) => {
                            let _ = started.send(Err(format!(
                                "cannot create session {number} of {workers} (fewer workers need less memory): {error}"
                            )));
                            return;
                        }
                    };
                    let _ = started.send(Ok(()));
                    drop(started);
                    let classifier = Classifier::new(session, pack, first_config);
                    take_jobs(classifier, model, options, pack, metrics, receiver, shared);
                });
            match spawned {
                Ok(_) => spawned_threads += 1,
                Err(error) => {
                    failure = Some(format!("cannot start session thread {number}: {error}"));
                    break;
                }
            }
        }
        drop(started);
        for _ in 0..spawned_threads {
            if failure.is_some() {
                break;
            }
            match started_receiver.recv() {
                Ok(Ok(())) => {}
                Ok(Err(reason)) => {
                    failure = Some(reason);
                    break;
                }
                Err(_) => {
                    failure = Some("a session thread stopped as it started".to_string());
                    break;
                }
            }
        }
        if let Some(reason) = failure {
            // The queue is closed to the workers that did start: their `recv` fails once the
            // handle drops the sender, which it does when the server ends on this error.
            on_ready(Err(reason));
            return;
        }
        let placement = model.placement();
        tracing::info!("the model's layers run on: {placement}; {workers} worker(s)");
        let _ = shared.facts.set((model.facts().clone(), placement));
        shared.ready.store(true, Ordering::Release);
        on_ready(Ok(model.facts().clone()));
    });
}

/// A worker's loop: ends when every sender is gone and the queue is empty, so queued jobs are
/// all answered.
fn take_jobs(
    mut classifier: Classifier<'_, '_>,
    model: &Model,
    options: &WorkerOptions,
    pack: &AdapterPack,
    metrics: &Metrics,
    receiver: &Mutex<Receiver<Job>>,
    shared: &Shared,
) {
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
        classifier.set_config(job.config);
        let mut answers = Vec::with_capacity(job.documents.len());
        for JobDocument {
            id,
            text,
            format,
            encoding,
        } in &job.documents
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
        // The client may have gone meanwhile; nothing to do then.
        let _ = job.respond.send(answers);
    }
}
