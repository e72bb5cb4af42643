//! The layer tap: llama.cpp's scheduler eval callback, and the safe observer interface it
//! drives.
//!
//! How the callback works (ggml-backend.cpp, `ggml_backend_sched_compute_splits`): for every
//! graph node the scheduler first *asks* whether we want that node's data (`ask == true`). It
//! computes all nodes up to the first one we want in one go, then calls us again with
//! `ask == false` and the data ready; returning `false` then ends the current graph split. We ask
//! only for the layer outputs `l_out-<layer>`, so the graph runs in one chunk per layer.

use std::any::Any;
use std::ffi::c_void;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::ptr::NonNull;

use llama_cpp_sys_2 as sys;
use ndarray::{ArrayView1, ArrayView2, Axis, ShapeBuilder};

/// What the observer wants after seeing a layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Compute the next layer.
    Continue,
    /// Stop the graph here: deeper layers and the output head are not computed.
    Stop,
}

/// One layer's hidden states for the tokens of the batch being decoded.
#[derive(Debug)]
pub struct LayerHidden<'a> {
    layer: usize,
    states: ArrayView2<'a, f32>,
    batch_tokens: usize,
}

impl<'a> LayerHidden<'a> {
    /// Index of the layer, from 0.
    pub fn layer(&self) -> usize {
        self.layer
    }

    /// Hidden states, one row per token, in batch order (`rows × width`).
    ///
    /// Every token of the batch has a row, except at the model's last layer: there llama.cpp
    /// computes only the rows of output tokens (the batch's last token), because the others are
    /// never needed for next-token prediction: compare the rows with [`Self::batch_tokens`].
    pub fn states(&self) -> ArrayView2<'a, f32> {
        self.states
    }

    /// The hidden state of the batch's last token.
    pub fn last_token(&self) -> ArrayView1<'a, f32> {
        let rows = self.states.nrows();
        self.states.index_axis_move(Axis(0), rows - 1)
    }

    /// Number of tokens in the batch being decoded.
    pub fn batch_tokens(&self) -> usize {
        self.batch_tokens
    }
}

/// Receives each layer's hidden states during a decode and decides whether to go deeper.
///
/// Called on the decoding thread, in layer order, at most once per layer per decode.
pub trait LayerObserver {
    /// Sees layer `hidden.layer()`; answers whether to compute the next one.
    fn on_layer(&mut self, hidden: &LayerHidden<'_>) -> Flow;

    /// Whether to look at `layer` at all. Layers not wanted are computed together with the
    /// next wanted one in a single graph chunk and never reach [`Self::on_layer`] (an exit rule
    /// with a minimum layer needs nothing below it). Asked once per layer and decode.
    fn wants_layer(&self, layer: usize) -> bool {
        let _ = layer;
        true
    }
}

impl<F> LayerObserver for F
where
    F: FnMut(&LayerHidden<'_>) -> Flow,
{
    fn on_layer(&mut self, hidden: &LayerHidden<'_>) -> Flow {
        self(hidden)
    }
}

/// State shared with the C callback through its user-data pointer. Boxed by the session so its
/// address is stable for the context's whole life.
pub(crate) struct TapState {
    layers: usize,
    width: usize,
    /// The observer of the decode in progress; `None` outside `Session::feed`.
    observer: Option<NonNull<dyn LayerObserver + 'static>>,
    batch_tokens: usize,
    /// The lowest layer whose output has not been seen yet in this decode.
    next_layer: usize,
    /// Layers handed to the observer in this decode.
    observed_layers: usize,
    stopped: bool,
    failure: Option<String>,
    panic: Option<Box<dyn Any + Send>>,
    /// Host copy of a layer's output when it lives in GPU memory.
    device_copy: Vec<f32>,
}

/// What one tapped decode did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TapReport {
    pub layers_computed: usize,
    pub observed_layers: usize,
}

impl TapState {
    pub(crate) fn new(layers: usize, width: usize) -> Self {
        TapState {
            layers,
            width,
            observer: None,
            batch_tokens: 0,
            next_layer: 0,
            observed_layers: 0,
            stopped: false,
            failure: None,
            panic: None,
            device_copy: Vec::new(),
        }
    }

    /// Arms the tap for one decode of `batch_tokens` tokens.
    ///
    /// # Safety
    /// `observer` must stay valid and unaliased until [`Self::disarm`] is called; the session
    /// guarantees this by disarming before `feed` returns (also on error).
    pub(crate) unsafe fn arm(&mut self, observer: &mut dyn LayerObserver, batch_tokens: usize) {
        let pointer: NonNull<dyn LayerObserver + '_> = NonNull::from(observer);
        // SAFETY: only the lifetime is erased; the caller promises the pointer is not used after
        // `disarm`, which runs before the borrow it came from ends.
        let pointer: NonNull<dyn LayerObserver + 'static> = unsafe { std::mem::transmute(pointer) };
        self.observer = Some(pointer);
        self.batch_tokens = batch_tokens;
        self.next_layer = 0;
        self.observed_layers = 0;
        self.stopped = false;
        self.failure = None;
        self.panic = None;
    }

    /// Disarms the tap and reports what the decode computed; re-raises an observer's panic on
    /// this (Rust) side of the FFI boundary.
    pub(crate) fn disarm(&mut self) -> Result<TapReport, String> {
        self.observer = None;
        if let Some(payload) = self.panic.take() {
            std::panic::resume_unwind(payload);
        }
        if let Some(failure) = self.failure.take() {
            return Err(failure);
        }
        Ok(TapReport {
            layers_computed: self.next_layer,
            observed_layers: self.observed_layers,
        })
    }

    fn on_tensor(&mut self, tensor: &sys::ggml_tensor, ask: bool) -> bool {
        if self.observer.is_none() {
            // Not inside `Session::feed`: let the scheduler run the graph in one piece.
            return false;
        }
        if self.stopped {
            // Later graph splits (GPU offload) still run after a stop; wanting their first node
            // makes the scheduler compute just that node and ask again, and the `false` below
            // then ends that split too.
            return ask;
        }
        let Some(layer) = layer_of(tensor) else {
            // Not a layer output: no need to look at it, keep computing.
            return !ask;
        };
        let last_layer = layer + 1 >= self.layers;
        if ask {
            // The last layer is always wanted: stopping there skips the output head.
            return last_layer || self.observer_wants(layer);
        }
        if layer < self.next_layer {
            return self.fail(format!(
                "layer {layer} arrived after layer {} was already computed",
                self.next_layer - 1
            ));
        }
        let flow = if self.observer_wants(layer) {
            self.observed_layers += 1;
            match self.observe(tensor, layer) {
                Ok(flow) => flow,
                Err(failure) => return self.fail(failure),
            }
        } else {
            Flow::Continue
        };
        self.next_layer = layer + 1;
        // After the last layer only the output head remains, which exitwise never needs.
        if flow == Flow::Stop || self.next_layer >= self.layers {
            self.stopped = true;
            return false;
        }
        true
    }

    fn observer_wants(&self, layer: usize) -> bool {
        // SAFETY: `arm`'s contract keeps the observer valid until `disarm`; a shared borrow for
        // the duration of the call does not overlap the `&mut` taken in `observe`.
        self.observer
            .is_some_and(|observer| unsafe { observer.as_ref() }.wants_layer(layer))
    }

    fn observe(&mut self, tensor: &sys::ggml_tensor, layer: usize) -> Result<Flow, String> {
        if tensor.type_ != sys::GGML_TYPE_F32 {
            return Err(format!(
                "layer {layer} output is not f32 (ggml type {})",
                tensor.type_
            ));
        }
        let width = usize::try_from(tensor.ne[0]).unwrap_or(0);
        let rows = usize::try_from(tensor.ne[1]).unwrap_or(0);
        if width != self.width || rows == 0 || tensor.ne[2] != 1 || tensor.ne[3] != 1 {
            return Err(format!(
                "layer {layer} output has shape {:?}, expected [{}, 1..={}, 1, 1]",
                tensor.ne, self.width, self.batch_tokens
            ));
        }
        let float = std::mem::size_of::<f32>();
        if tensor.nb[0] != float
            || !tensor.nb[1].is_multiple_of(float)
            || tensor.nb[1] / float < width
        {
            return Err(format!(
                "layer {layer} output has unexpected strides {:?}",
                tensor.nb
            ));
        }
        let row_stride = tensor.nb[1] / float;
        // SAFETY: `tensor.buffer` is the tensor's backend buffer, valid during the callback.
        let on_host =
            !tensor.buffer.is_null() && unsafe { sys::ggml_backend_buffer_is_host(tensor.buffer) };
        let data: *const f32 = if on_host {
            tensor.data.cast_const().cast()
        } else {
            let elements = row_stride * (rows - 1) + width;
            self.device_copy.resize(elements, 0.0);
            // SAFETY: the tensor is computed (ask == false) and lives in a backend buffer;
            // `device_copy` has room for `elements` floats, which is the tensor's extent given
            // the shape and strides checked above.
            unsafe {
                sys::ggml_backend_tensor_get(
                    std::ptr::from_ref(tensor).cast_mut(),
                    self.device_copy.as_mut_ptr().cast(),
                    0,
                    elements * float,
                );
            };
            self.device_copy.as_ptr()
        };
        if data.is_null() {
            return Err(format!("layer {layer} output has no data"));
        }
        // SAFETY: `data` points to `rows` rows of `width` f32 values spaced `row_stride` floats
        // apart (shape, type and strides checked above), either in host memory owned by
        // llama.cpp's compute buffer, which is neither freed nor written while the callback
        // runs, or in `device_copy`, which is not touched until the view is dropped below.
        let states =
            unsafe { ArrayView2::from_shape_ptr((rows, width).strides((row_stride, 1)), data) };
        let hidden = LayerHidden {
            layer,
            states,
            batch_tokens: self.batch_tokens,
        };
        let Some(mut observer) = self.observer else {
            return Ok(Flow::Stop);
        };
        // SAFETY: `arm`'s contract keeps the observer valid and exclusively ours until `disarm`.
        let observer = unsafe { observer.as_mut() };
        match catch_unwind(AssertUnwindSafe(|| observer.on_layer(&hidden))) {
            Ok(flow) => Ok(flow),
            Err(payload) => {
                self.panic = Some(payload);
                Ok(Flow::Stop)
            }
        }
    }

    fn fail(&mut self, failure: String) -> bool {
        self.failure.get_or_insert(failure);
        self.stopped = true;
        false
    }
}

/// The layer index of a tensor named `l_out-<layer>`, llama.cpp's name for a block's output.
fn layer_of(tensor: &sys::ggml_tensor) -> Option<usize> {
    let name = tensor.name.map(|character| character as u8);
    let length = name
        .iter()
        .position(|&byte| byte == 0)
        .unwrap_or(name.len());
    let digits = name[..length].strip_prefix(b"l_out-")?;
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// The C entry point registered as the context's `cb_eval`.
///
/// # Safety
/// Called by llama.cpp with a valid tensor and the `user_data` registered at context creation,
/// which is the session's boxed [`TapState`], alive for as long as the context is.
pub(crate) unsafe extern "C" fn eval_callback(
    tensor: *mut sys::ggml_tensor,
    ask: bool,
    user_data: *mut c_void,
) -> bool {
    if tensor.is_null() || user_data.is_null() {
        return false;
    }
    // SAFETY: see the function's contract; llama.cpp calls the callback from the thread that
    // called `llama_decode`, while the session holds `&mut` to itself, so no other reference to
    // the state is live.
    let state = unsafe { &mut *user_data.cast::<TapState>() };
    // SAFETY: non-null tensor handed to us by the scheduler, valid during the call.
    let tensor = unsafe { &*tensor };
    // Nothing may unwind into C; observer panics are already caught inside, this is a backstop.
    catch_unwind(AssertUnwindSafe(|| state.on_tensor(tensor, ask))).unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tensor_named(name: &str) -> sys::ggml_tensor {
        // SAFETY: ggml_tensor is a plain C struct for which all-zero bytes is a valid value.
        let mut tensor: sys::ggml_tensor = unsafe { std::mem::zeroed() };
        for (slot, byte) in tensor.name.iter_mut().zip(name.bytes()) {
            *slot = byte as std::ffi::c_char;
        }
        tensor
    }

    #[test]
    fn recognises_layer_outputs_only() {
        assert_eq!(layer_of(&tensor_named("l_out-0")), Some(0));
        assert_eq!(layer_of(&tensor_named("l_out-17")), Some(17));
        assert_eq!(layer_of(&tensor_named("l_out-")), None);
        assert_eq!(layer_of(&tensor_named("l_out-3 (copy)")), None);
        assert_eq!(layer_of(&tensor_named("attn_out-3")), None);
        assert_eq!(layer_of(&tensor_named("result_norm")), None);
    }
}
