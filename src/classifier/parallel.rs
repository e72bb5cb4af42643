//! Parallel documents: several sessions over one loaded model, each classifying its own
//! document on its own thread, fed from one stream of jobs and answering in the stream's order
//! (or as they finish).
//!
//! The weights are loaded once and shared (a [`Model`] is `Sync`); every session has its own
//! context (KV cache) and thread pool. On a CPU a sentence pass of a few dozen tokens keeps about
//! one thread busy, so several documents at once keep more cores busy than several threads on
//! one document, which wait at every layer's barrier (docs/results.md, "Scaling").

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, SyncSender, channel, sync_channel};
use std::sync::{Mutex, PoisonError};
use std::thread::ScopedJoinHandle;

use crate::engine::{EngineError, Model, Session, SessionOptions, SessionPlan};
use crate::exit::PolicyConfig;
use crate::pack::AdapterPack;
use crate::threads::panic_message;

use super::Classifier;

/// How to run documents in parallel.
#[derive(Debug, Clone)]
pub struct PoolOptions {
    /// Sessions and threads per session.
    pub plan: SessionPlan,
    /// Everything else of each session (its `threads` and `sessions_in_process` come from
    /// `plan`).
    pub session: SessionOptions,
    /// Deliver answers in the order the jobs were submitted (otherwise as they finish).
    pub ordered: bool,
}

/// Why the pool stopped.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// A session could not be created (usually: not enough memory for one more KV cache).
    #[error(
        "cannot create session {number} of {sessions} (fewer parallel documents need less memory: --jobs): {cause}"
    )]
    Session {
        /// Its number, from 1.
        number: usize,
        /// Sessions asked for.
        sessions: usize,
        /// The engine's reason.
        cause: EngineError,
    },
    /// A session's thread could not be started.
    #[error("cannot start the classifying threads: {0}")]
    Thread(String),
    /// A thread of the pool panicked: a bug; the answers it owed are not invented.
    #[error("a classifying thread panicked: {0}")]
    Panicked(String),
    /// The pool stopped taking jobs (its output failed, or a thread panicked).
    #[error("the classifying threads stopped")]
    Stopped,
}

/// What a session's thread sends back.
enum Message<Answer> {
    Done(u64, Answer),
    Panicked,
}

/// Sends [`Message::Panicked`] if the thread unwinds while it holds a job, so that the caller
/// stops waiting for that job's answer.
struct PanicSignal<'a, Answer> {
    results: &'a Sender<Message<Answer>>,
}

impl<Answer> Drop for PanicSignal<'_, Answer> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let _ = self.results.send(Message::Panicked);
        }
    }
}

/// The producer's side of a running pool: [`Submitter::submit`] hands a job to the next free
/// session, waiting while the window of undelivered jobs is full.
pub struct Submitter<Job> {
    jobs: SyncSender<(u64, Job)>,
    /// One permit per undelivered job: a channel of the window's size is the semaphore that
    /// bounds the queue and the reorder buffer.
    permits: SyncSender<()>,
    submitted: u64,
}

impl<Job> Submitter<Job> {
    /// Queues `job`; fails once the pool has stopped (the output failed, or a thread
    /// panicked).
    pub fn submit(&mut self, job: Job) -> Result<(), PoolError> {
        self.permits.send(()).map_err(|_| PoolError::Stopped)?;
        self.jobs
            .send((self.submitted, job))
            .map_err(|_| PoolError::Stopped)?;
        self.submitted += 1;
        Ok(())
    }
}

/// Why the sessions of a pool did not all start.
#[derive(Debug)]
pub enum StartFailure {
    /// llama.cpp refused session `number` (from 1): usually not enough memory for its KV cache.
    Session {
        /// The session's number.
        number: usize,
        /// The engine's reason.
        cause: EngineError,
    },
    /// The thread of a session could not be started, or stopped as it started.
    Thread(String),
}

/// Starts `count` sessions over `model`, each on a thread of `scope` named `{name}-{number}`,
/// and, once every one of them was created, runs on each the work `work_for(number)` makes
/// for it. When one cannot start, none runs its work: the others drop their sessions, the
/// threads are joined and the first failure is returned. The caller joins the handles of a
/// successful start (a panic in the work is then the caller's to read).
pub fn start_sessions<'scope, 'env, Work>(
    scope: &'scope std::thread::Scope<'scope, 'env>,
    model: &'env Model,
    options: &'env SessionOptions,
    name: &str,
    count: usize,
    mut work_for: impl FnMut(usize) -> Work,
) -> Result<Vec<ScopedJoinHandle<'scope, ()>>, StartFailure>
where
    Work: FnOnce(Session<'env>) + Send + 'scope,
{
    let (ready_sender, ready_receiver) = channel::<(usize, Result<(), EngineError>)>();
    let mut handles = Vec::with_capacity(count);
    // Each thread waits for its go; a dropped sender (a failed start) sends it home.
    let mut go_senders = Vec::with_capacity(count);
    let mut failure = None;
    for number in 1..=count {
        let (go_sender, go_receiver) = channel::<()>();
        let ready = ready_sender.clone();
        let work = work_for(number);
        let spawned = std::thread::Builder::new()
            .name(format!("{name}-{number}"))
            .spawn_scoped(scope, move || {
                let session = match Session::new(model, options) {
                    Ok(session) => session,
                    Err(cause) => {
                        let _ = ready.send((number, Err(cause)));
                        return;
                    }
                };
                let _ = ready.send((number, Ok(())));
                drop(ready);
                if go_receiver.recv().is_ok() {
                    work(session);
                }
            });
        match spawned {
            Ok(handle) => {
                handles.push(handle);
                go_senders.push(go_sender);
            }
            Err(error) => {
                failure = Some(StartFailure::Thread(format!(
                    "cannot start the thread of session {number}: {error}"
                )));
                break;
            }
        }
    }
    drop(ready_sender);
    for _ in 0..handles.len() {
        if failure.is_some() {
            break;
        }
        match ready_receiver.recv() {
            Ok((_, Ok(()))) => {}
            Ok((number, Err(cause))) => failure = Some(StartFailure::Session { number, cause }),
            Err(_) => {
                failure = Some(StartFailure::Thread(
                    "a session's thread stopped as it started".into(),
                ));
            }
        }
    }
    if let Some(failure) = failure {
        drop(go_senders);
        for handle in handles {
            // Joined here so that a thread that panicked while starting does not make the
            // scope panic; the failure already says what went wrong.
            let _ = handle.join();
        }
        return Err(failure);
    }
    for go in go_senders {
        let _ = go.send(());
    }
    Ok(handles)
}

/// Classifies a stream of jobs on `options.plan.sessions` sessions over `model`.
///
/// `produce` submits the jobs on a thread of its own; `work` runs on a session's thread and
/// turns a job into an answer with that session's classifier (set to `config` at the start);
/// `deliver` runs on the calling thread and gets every answer once, as soon as it may: in
/// submission order when `options.ordered`, else as each finishes. An error of `deliver` stops
/// the pool (jobs not yet started are dropped) and is returned; an error of `produce` is
/// returned after the answers to the jobs it submitted are delivered. A session that cannot
/// be created fails the pool before any job runs; a panic on a thread becomes
/// [`PoolError::Panicked`] with its message, once the other threads stopped.
pub fn classify_in_parallel<Job, Answer, E>(
    model: &Model,
    pack: &AdapterPack,
    config: PolicyConfig,
    options: &PoolOptions,
    produce: impl FnOnce(&mut Submitter<Job>) -> Result<(), E> + Send,
    work: impl Fn(&mut Classifier<'_, '_>, Job) -> Answer + Sync,
    mut deliver: impl FnMut(Answer) -> Result<(), E>,
) -> Result<(), E>
where
    Job: Send,
    Answer: Send,
    E: From<PoolError> + Send,
{
    let sessions = options.plan.sessions.max(1);
    let window = sessions * 4;
    let session_options = SessionOptions {
        threads: options.plan.threads_per_session,
        sessions_in_process: sessions,
        ..options.session.clone()
    };
    let (job_sender, job_receiver) = sync_channel::<(u64, Job)>(window);
    let job_receiver = Mutex::new(job_receiver);
    let (permit_sender, permit_receiver) = sync_channel::<()>(window);
    let (result_sender, result_receiver) = channel::<Message<Answer>>();
    let cancelled = AtomicBool::new(false);
    let work = &work;

    std::thread::scope(|scope| {
        let (jobs, cancelled) = (&job_receiver, &cancelled);
        // Moved in here so that it is dropped once every session holds its own clone: the
        // loop over the results ends when the last session's clone is gone.
        let result_sender = result_sender;
        let started = start_sessions(
            scope,
            model,
            &session_options,
            "exitwise-session",
            sessions,
            |_| {
                let results = result_sender.clone();
                move |session| {
                    let mut classifier = Classifier::new(session, pack, config);
                    loop {
                        // One thread waits on the queue at a time; the others wait for the lock,
                        // which is the same wait.
                        let next = jobs.lock().unwrap_or_else(PoisonError::into_inner).recv();
                        let Ok((index, job)) = next else { break };
                        if cancelled.load(Ordering::Acquire) {
                            continue;
                        }
                        let signal = PanicSignal { results: &results };
                        let answer = work(&mut classifier, job);
                        drop(signal);
                        if results.send(Message::Done(index, answer)).is_err() {
                            break;
                        }
                    }
                }
            },
        );
        drop(result_sender);
        let (sessions_handles, mut outcome): (_, Result<(), E>) = match started {
            Ok(handles) => (handles, Ok(())),
            Err(StartFailure::Session { number, cause }) => (
                Vec::new(),
                Err(PoolError::Session {
                    number,
                    sessions,
                    cause,
                }
                .into()),
            ),
            Err(StartFailure::Thread(reason)) => {
                (Vec::new(), Err(PoolError::Thread(reason).into()))
            }
        };
        let producer = if outcome.is_ok() {
            let mut submitter = Submitter {
                jobs: job_sender,
                permits: permit_sender,
                submitted: 0,
            };
            Some(scope.spawn(move || produce(&mut submitter)))
        } else {
            drop((job_sender, permit_sender));
            None
        };

        // Ends when every session's thread has stopped: the producer is done (its submitter
        // dropped) and the queue is empty, or the pool was cancelled.
        let mut waiting = BTreeMap::new();
        let mut next_to_deliver = 0u64;
        let mut permits = Some(permit_receiver);
        for message in &result_receiver {
            if outcome.is_err() {
                continue;
            }
            let delivered = match message {
                Message::Done(index, answer) if options.ordered => {
                    waiting.insert(index, answer);
                    let mut delivered = Ok(());
                    while delivered.is_ok()
                        && let Some(answer) = waiting.remove(&next_to_deliver)
                    {
                        next_to_deliver += 1;
                        free_permit(permits.as_ref());
                        delivered = deliver(answer);
                    }
                    delivered
                }
                Message::Done(_, answer) => {
                    free_permit(permits.as_ref());
                    deliver(answer)
                }
                // The thread's own message is read when it is joined.
                Message::Panicked => Err(PoolError::Panicked(String::new()).into()),
            };
            if let Err(error) = delivered {
                outcome = Err(error);
                cancelled.store(true, Ordering::Release);
                // A producer waiting for a permit now fails, and stops.
                permits = None;
            }
        }
        drop(permits);
        if let Some(producer) = producer {
            match producer.join() {
                Ok(Err(error)) if outcome.is_ok() => outcome = Err(error),
                Ok(_) => {}
                Err(payload) => outcome = Err(PoolError::Panicked(panic_message(&*payload)).into()),
            }
        }
        // Joined here, not by the scope, so that a panic is an error with its message.
        for handle in sessions_handles {
            if let Err(payload) = handle.join() {
                outcome = Err(PoolError::Panicked(panic_message(&*payload)).into());
            }
        }
        outcome
    })
}

/// Frees the window's slot of a delivered job.
fn free_permit(permits: Option<&Receiver<()>>) {
    if let Some(permits) = permits {
        // Every submitted job sent a permit first: there is one to take.
        let _ = permits.try_recv();
    }
}
