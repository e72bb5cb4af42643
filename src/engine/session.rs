//! A decoding session: one llama.cpp context (KV cache) over a borrowed [`Model`], fed one
//! sentence after another, with the layer tap registered.

use std::ptr::NonNull;

use llama_cpp_sys_2 as sys;

use super::model::{Model, Token};
use super::tap::{LayerObserver, TapState, eval_callback};
use super::{EngineError, backend};

/// How to create a session.
#[derive(Debug, Clone)]
pub struct SessionOptions {
    /// Most tokens one document may hold (BOS included); the KV cache is sized for it, the
    /// largest batch for it up to [`MOST_BATCH_TOKENS`].
    pub context_tokens: usize,
    /// CPU threads for decoding; `None`: as many as other processes leave free, between one
    /// and this session's share of the CPUs this process may use, chosen again at every [`Session::reset`] (see
    /// [`super::cpus::ThreadGovernor`]).
    pub threads: Option<usize>,
    /// ggml's polling level: how long idle pool threads spin for new work before they sleep
    /// (0: sleep at once, 100: spin long); `None`: `$EXITWISE_POLL`, else [`DEFAULT_POLL`].
    pub poll: Option<u32>,
    /// Sessions of this process that share its CPUs, this one included (see
    /// [`super::cpus::SessionPlan`]); with `threads: None` this session takes an equal share.
    pub sessions_in_process: usize,
    /// Register the layer tap. Without it the session decodes like plain llama.cpp and only
    /// [`Session::feed_untapped`] is available; the benchmark uses it as the baseline.
    pub tap: bool,
}

/// The polling level of the session's thread pool unless told otherwise (ggml's own default is
/// 50).
pub const DEFAULT_POLL: u32 = 50;

/// Most tokens one decode takes (llama.cpp's batch and micro-batch). A context above it is fed
/// in several decodes: llama.cpp reserves its compute buffer for the largest micro-batch with
/// every token an output (one vocabulary-sized row of logits each: 1 GiB a thousand tokens for
/// gemma3's 262,144-token vocabulary), and sizes the sliding-window layers' cache by the window
/// plus one micro-batch; a 32,768-token micro-batch asked llama.cpp for 32 GiB. Up to this
/// size a whole pass is one decode, as before.
pub const MOST_BATCH_TOKENS: usize = 2048;

/// Environment variable that sets the polling level (0–100) of every session.
pub const POLL_VARIABLE: &str = "EXITWISE_POLL";

impl Default for SessionOptions {
    fn default() -> Self {
        SessionOptions {
            context_tokens: 2048,
            threads: None,
            poll: None,
            sessions_in_process: 1,
            tap: true,
        }
    }
}

/// What one [`Session::feed`] computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeedOutcome {
    /// Tokens decoded.
    pub tokens: usize,
    /// Layers computed for those tokens (`0..layers_computed`).
    pub layers_computed: usize,
    /// Layers the observer was shown (those it wanted, up to where it stopped).
    pub observed_layers: usize,
    /// Whether the observer stopped before the last layer.
    pub stopped_early: bool,
}

/// Owned `llama_context`; freed on drop.
struct ContextHandle(NonNull<sys::llama_context>);

impl Drop for ContextHandle {
    fn drop(&mut self) {
        // SAFETY: created by `llama_init_from_model`, freed exactly once here.
        unsafe { sys::llama_free(self.0.as_ptr()) };
    }
}

/// Owned ggml CPU thread pool; freed on drop.
///
/// Without an attached pool, ggml creates and joins a fresh set of threads for every graph
/// computation; the tap splits each decode into one computation per layer, so a persistent
/// pool is what keeps tapping cheap.
struct ThreadPoolHandle {
    pool: NonNull<sys::ggml_threadpool>,
    free: unsafe extern "C" fn(*mut sys::ggml_threadpool),
}

impl ThreadPoolHandle {
    /// Starts a pool of `threads` threads that poll for work at level `poll` (0–100).
    fn start(threads: usize, poll: u32) -> Result<Self, EngineError> {
        let threads_c = i32::try_from(threads).unwrap_or(i32::MAX);
        // SAFETY: plain constructor; returns a struct by value.
        let mut pool_params = unsafe { sys::ggml_threadpool_params_default(threads_c) };
        pool_params.poll = poll.min(100);
        let functions = backend::thread_pool_functions()?;
        // SAFETY: `pool_params` is a valid, initialised parameter struct for the call, and
        // `functions.new` is the CPU back end's `ggml_threadpool_new`.
        let pool = unsafe { (functions.new)(&raw mut pool_params) };
        NonNull::new(pool)
            .map(|pool| ThreadPoolHandle {
                pool,
                free: functions.free,
            })
            .ok_or_else(|| EngineError::ContextCreation {
                reason: Some(format!("cannot start a pool of {threads} threads")),
            })
    }
}

impl Drop for ThreadPoolHandle {
    fn drop(&mut self) {
        // SAFETY: created by the CPU back end's `ggml_threadpool_new`, freed exactly once here
        // with the same back end's `ggml_threadpool_free`, after the context that used it (field
        // order in `Session`) or after the back end switched to another pool
        // (`Session::retired_thread_pools`).
        unsafe { (self.free)(self.pool.as_ptr()) };
    }
}

/// Owned `llama_batch`; freed on drop.
struct BatchHandle {
    batch: sys::llama_batch,
    capacity: usize,
}

impl Drop for BatchHandle {
    fn drop(&mut self) {
        // SAFETY: allocated by `llama_batch_init`, freed exactly once here.
        unsafe { sys::llama_batch_free(self.batch) };
    }
}

/// The tap state, owned through a raw pointer because llama.cpp holds a copy of that pointer
/// (the callback's user data) for the context's whole life: every access goes through the same
/// pointer, never through a fresh `&mut Box`, so llama.cpp's copy stays valid.
struct TapHandle(NonNull<TapState>);

impl TapHandle {
    fn new(state: TapState) -> Self {
        TapHandle(NonNull::from(Box::leak(Box::new(state))))
    }

    fn state(&mut self) -> &mut TapState {
        // SAFETY: the pointer came from `Box::leak` and is freed only in `drop`; `&mut self`
        // makes this the only reference, and llama.cpp uses its copy only inside `llama_decode`,
        // never while this borrow is alive (the session does not hold it across the decode).
        unsafe { self.0.as_mut() }
    }
}

impl Drop for TapHandle {
    fn drop(&mut self) {
        // SAFETY: allocated by `Box::leak` in `new`, freed once; the context that pointed to it
        // was dropped before (field order in `Session`).
        drop(unsafe { Box::from_raw(self.0.as_ptr()) });
    }
}

/// A decoding session over a model. Not `Send`: llama.cpp contexts are used from one thread.
pub struct Session<'model> {
    // Field order is drop order: the context must be freed before the thread pool it runs on
    // and the tap state its callback points to.
    context: ContextHandle,
    thread_pool: ThreadPoolHandle,
    /// Pools replaced by [`Self::set_threads`] that the CPU back end may still point to: it
    /// keeps the pool of its last computation and pauses that pool when the next computation
    /// switches to the new one, so a replaced pool lives until a computation has run since.
    retired_thread_pools: Vec<ThreadPoolHandle>,
    tap: Option<TapHandle>,
    batch: BatchHandle,
    model: &'model Model,
    position: usize,
    complete_layers: usize,
    capacity: usize,
    threads: usize,
    /// The polling level of the pool's threads.
    poll: u32,
    /// Chooses the thread count when the options did not fix it.
    governor: Option<super::cpus::ThreadGovernor>,
}

impl<'model> Session<'model> {
    /// Creates a context for `model`.
    pub fn new(model: &'model Model, options: &SessionOptions) -> Result<Self, EngineError> {
        let capacity = options.context_tokens.max(1);
        // llama.cpp counts batch tokens in i32 and context tokens in u32: fit both.
        let capacity_c = i32::try_from(capacity)
            .map_err(|_| {
                EngineError::InvalidBatch(format!("context of {capacity} tokens is too large"))
            })?
            .unsigned_abs();
        let batch_capacity = capacity.min(MOST_BATCH_TOKENS);
        let batch_capacity_c = i32::try_from(batch_capacity).unwrap_or(i32::MAX);
        let fixed_threads = options.threads.filter(|&threads| threads > 0);
        let sessions_in_process = options.sessions_in_process.max(1);
        let threads = fixed_threads.unwrap_or_else(|| {
            super::cpus::SessionPlan {
                sessions: sessions_in_process,
                threads_per_session: None,
            }
            .most_threads(super::cpus::usable_cpus())
        });
        let threads_c = i32::try_from(threads).unwrap_or(i32::MAX);

        let tap = options
            .tap
            .then(|| TapHandle::new(TapState::new(model.layers(), model.width())));

        backend::clear_last_problem();
        // SAFETY: returns a plain struct by value; no preconditions.
        let mut params = unsafe { sys::llama_context_default_params() };
        params.n_ctx = capacity_c;
        // One batch = one micro-batch = up to a whole document of the usual token limit: the
        // graph then runs once per fed pass, so the tap sees each layer exactly once and a stop
        // is final. Longer passes are fed in batches by the caller (see `MOST_BATCH_TOKENS`).
        params.n_batch = batch_capacity_c.unsigned_abs();
        params.n_ubatch = batch_capacity_c.unsigned_abs();
        params.n_seq_max = 1;
        // The sliding-window layers (5 of every 6 in gemma3) keep the window and one batch of
        // cache, not the whole context: the same attention, a fraction of the memory.
        params.swa_full = false;
        params.n_threads = threads_c;
        params.n_threads_batch = threads_c;
        params.embeddings = false;
        params.no_perf = true;
        if let Some(state) = &tap {
            params.cb_eval = Some(eval_callback);
            params.cb_eval_user_data = state.0.as_ptr().cast();
        }
        // SAFETY: `model` is a valid loaded model that outlives the session (`'model`); the
        // callback's user data is the leaked tap state, whose address is stable and which the
        // session frees only after the context (field order).
        let raw = unsafe { sys::llama_init_from_model(model.as_ptr(), params) };
        let context =
            NonNull::new(raw)
                .map(ContextHandle)
                .ok_or_else(|| EngineError::ContextCreation {
                    reason: backend::take_last_problem(),
                })?;

        let poll = options
            .poll
            .or_else(|| std::env::var(POLL_VARIABLE).ok()?.parse().ok())
            .unwrap_or(DEFAULT_POLL)
            .min(100);
        let thread_pool = ThreadPoolHandle::start(threads, poll)?;
        // SAFETY: both handles are valid; the context keeps the pointer until it is freed,
        // which happens before the pool is freed (field order).
        unsafe {
            sys::llama_attach_threadpool(
                context.0.as_ptr(),
                thread_pool.pool.as_ptr(),
                thread_pool.pool.as_ptr(),
            );
        };

        // SAFETY: allocates token, pos, n_seq_id, seq_id (with one id each) and logits arrays
        // for `batch_capacity` tokens; freed by `BatchHandle::drop`.
        let batch = unsafe { sys::llama_batch_init(batch_capacity_c, 0, 1) };
        let batch = BatchHandle {
            batch,
            capacity: batch_capacity,
        };

        Ok(Session {
            context,
            thread_pool,
            retired_thread_pools: Vec::new(),
            governor: fixed_threads
                .is_none()
                .then(|| super::cpus::ThreadGovernor::new(threads, sessions_in_process)),
            tap,
            batch,
            model,
            position: 0,
            complete_layers: model.layers(),
            capacity,
            threads,
            poll,
        })
    }

    /// The model this session decodes with.
    pub fn model(&self) -> &'model Model {
        self.model
    }

    /// Tokens currently in the KV cache (the position of the next token).
    pub fn position(&self) -> usize {
        self.position
    }

    /// Most tokens the session's context holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Most tokens one feed takes (the context's size up to [`MOST_BATCH_TOKENS`]).
    pub fn batch_capacity(&self) -> usize {
        self.batch.capacity
    }

    /// Threads used for decoding.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Layers whose KV cache is filled for every token fed since the last reset.
    ///
    /// A stop after layer `k` leaves layers above `k` without keys and values for that batch's
    /// tokens: a later batch computed deeper than this would attend to stale cache entries.
    /// Exit policies cap the depth at this value (see the `2d` policy).
    pub fn complete_layers(&self) -> usize {
        self.complete_layers
    }

    /// Starts a new document: forgets every token in the KV cache.
    pub fn reset(&mut self) {
        let chosen = self
            .governor
            .as_mut()
            .map(super::cpus::ThreadGovernor::threads);
        if let Some(threads) = chosen.filter(|&threads| threads != self.threads) {
            // Without a new pool the old one goes on: a slower document, not a failed one.
            let _ = self.set_threads(threads);
        }
        // SAFETY: the context is valid; its memory handle is owned by the context and only used
        // for this call. Clearing metadata only (`data == false`) is enough: freed cells are
        // masked out of attention, so stale values are never read.
        unsafe {
            let memory = sys::llama_get_memory(self.context.0.as_ptr());
            if !memory.is_null() {
                sys::llama_memory_clear(memory, false);
            }
        }
        self.position = 0;
        self.complete_layers = self.model.layers();
    }

    /// Computes from now on with a new pool of `threads` threads (at least one). Without a
    /// fixed thread count the governor may change it again at the next [`Self::reset`].
    ///
    /// A new pool rather than fewer threads of the old one: ggml's idle pool threads poll for
    /// work after every graph computation whether or not the computation used them, so a pool
    /// told to use one of its two threads still keeps two CPUs busy, which is what the governor
    /// lowers the count to avoid. When no new pool can be started, the old one stays.
    pub fn set_threads(&mut self, threads: usize) -> Result<(), EngineError> {
        let threads = threads.max(1);
        let pool = ThreadPoolHandle::start(threads, self.poll)?;
        let threads_c = i32::try_from(threads).unwrap_or(i32::MAX);
        // SAFETY: the context and the new pool are valid; no computation is running (this
        // runs between decodes, on the session's only thread). The new pool lives in the
        // session until after the context is freed (field order) or, once replaced, until a
        // computation has switched the CPU back end away from it (`retired_thread_pools`).
        unsafe {
            sys::llama_attach_threadpool(
                self.context.0.as_ptr(),
                pool.pool.as_ptr(),
                pool.pool.as_ptr(),
            );
            sys::llama_set_n_threads(self.context.0.as_ptr(), threads_c, threads_c);
        }
        let replaced = std::mem::replace(&mut self.thread_pool, pool);
        self.retired_thread_pools.push(replaced);
        self.threads = threads;
        Ok(())
    }

    /// Decodes `tokens` after those already in the cache, handing each layer's hidden states to
    /// `observer`, which may stop the computation after any layer.
    ///
    /// A document's first batch should start with [`Model::document_start_tokens`].
    pub fn feed(
        &mut self,
        tokens: &[Token],
        observer: &mut dyn LayerObserver,
    ) -> Result<FeedOutcome, EngineError> {
        let last = tokens.len().saturating_sub(1);
        self.feed_with_outputs(tokens, &[last], observer)
    }

    /// Like [`Self::feed`], with the batch positions whose rows the last layer computes
    /// (`outputs`, ascending): reading a whole document in one pass with its sentence ends as
    /// outputs gives the last layer the same rows as feeding it sentence by sentence. Each
    /// output costs one row of llama.cpp's logits buffer (vocabulary-sized, never computed).
    pub fn feed_with_outputs(
        &mut self,
        tokens: &[Token],
        outputs: &[usize],
        observer: &mut dyn LayerObserver,
    ) -> Result<FeedOutcome, EngineError> {
        if tokens.is_empty() {
            return Err(EngineError::InvalidBatch("no tokens to decode".into()));
        }
        let ascending = outputs.windows(2).all(|pair| pair[0] < pair[1]);
        if outputs.is_empty() || !ascending || outputs.iter().any(|&output| output >= tokens.len())
        {
            return Err(EngineError::InvalidBatch(format!(
                "output positions {outputs:?} do not fit a batch of {} tokens",
                tokens.len()
            )));
        }
        self.fill_batch(tokens, outputs)?;
        let Some(tap) = self.tap.as_mut() else {
            return Err(EngineError::InvalidBatch(
                "this session was created without the layer tap".into(),
            ));
        };
        // SAFETY: `observer` outlives this call and `disarm` runs below before returning, on
        // every path (decode errors included).
        unsafe { tap.state().arm(observer, tokens.len()) };
        let decoded = self.decode();
        let report = self
            .tap
            .as_mut()
            .map_or(Err("the tap disappeared".into()), |tap| {
                tap.state().disarm()
            });
        decoded?;
        let report = report.map_err(EngineError::Tap)?;
        let layers = self.model.layers();
        self.position += tokens.len();
        self.complete_layers = self.complete_layers.min(report.layers_computed);
        Ok(FeedOutcome {
            tokens: tokens.len(),
            layers_computed: report.layers_computed,
            observed_layers: report.observed_layers,
            stopped_early: report.layers_computed < layers,
        })
    }

    /// Decodes `tokens` like plain llama.cpp: every layer and the output head for the last
    /// token, no tap. The engine benchmark's baseline.
    pub fn feed_untapped(&mut self, tokens: &[Token]) -> Result<(), EngineError> {
        self.fill_batch(tokens, &[tokens.len().saturating_sub(1)])?;
        self.decode()?;
        self.position += tokens.len();
        Ok(())
    }

    fn fill_batch(&mut self, tokens: &[Token], outputs: &[usize]) -> Result<(), EngineError> {
        if tokens.is_empty() {
            return Err(EngineError::InvalidBatch("no tokens to decode".into()));
        }
        if self.position + tokens.len() > self.capacity {
            return Err(EngineError::ContextFull {
                used: self.position,
                requested: tokens.len(),
                capacity: self.capacity,
            });
        }
        if tokens.len() > self.batch.capacity {
            return Err(EngineError::InvalidBatch(format!(
                "a batch of {} tokens is more than the {} one decode takes",
                tokens.len(),
                self.batch.capacity
            )));
        }
        let batch = &mut self.batch.batch;
        for (index, &token) in tokens.iter().enumerate() {
            let position = i32::try_from(self.position + index).unwrap_or(i32::MAX);
            // SAFETY: `index < tokens.len() <= capacity`, the size the batch arrays were
            // allocated with; `seq_id[index]` points to an array of one id (n_seq_max = 1).
            unsafe {
                *batch.token.add(index) = token;
                *batch.pos.add(index) = position;
                *batch.n_seq_id.add(index) = 1;
                *(*batch.seq_id.add(index)) = 0;
                // Only the requested rows are outputs: it keeps the logits buffer small and lets
                // the last layer skip the other rows.
                *batch.logits.add(index) = i8::from(outputs.binary_search(&index).is_ok());
            }
        }
        batch.n_tokens = i32::try_from(tokens.len()).unwrap_or(i32::MAX);
        Ok(())
    }

    fn decode(&mut self) -> Result<(), EngineError> {
        backend::clear_last_problem();
        // SAFETY: the context is valid and used from this thread only (`&mut self`); the batch
        // was filled by `fill_batch` with `n_tokens` valid entries within its capacity.
        let code = unsafe { sys::llama_decode(self.context.0.as_ptr(), self.batch.batch) };
        if code == 0 {
            // A computation ran on the current pool: the CPU back end no longer points to the
            // replaced ones (after a failed decode it may, so they stay).
            self.retired_thread_pools.clear();
        } else {
            // llama.cpp restores the cache on errors other than aborts; the document cannot go
            // on either way, so start clean.
            self.reset();
            return Err(EngineError::Decode {
                code,
                reason: backend::take_last_problem(),
            });
        }
        Ok(())
    }
}

impl std::fmt::Debug for Session<'_> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Session")
            .field("position", &self.position)
            .field("capacity", &self.capacity)
            .field("complete_layers", &self.complete_layers)
            .field("tapped", &self.tap.is_some())
            .finish()
    }
}
