//! Process-wide llama.cpp set-up: back-end initialisation (once) and routing of llama.cpp's log
//! into `tracing`, so that its chatter never reaches stderr unasked and its last error can be
//! quoted in our own messages.

use std::ffi::{CStr, CString, c_char, c_void};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use llama_cpp_sys_2 as sys;

use super::EngineError;

/// The outcome of the one-time set-up: what runs llama.cpp's graphs, or why nothing can.
static INIT: OnceLock<Result<BackendReport, Vec<PathBuf>>> = OnceLock::new();

/// Libraries llama.cpp reported loading ("loaded CPU backend from …"), in order.
static LOADED_LIBRARIES: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Where a portable build's back-end libraries are looked for, overriding the folders next to
/// the binary.
pub const BACKEND_DIR_VARIABLE: &str = "EXITWISE_BACKEND_DIR";

/// The first error (or, failing that, the last warning) llama.cpp logged since it was last
/// cleared; quoted when a llama.cpp call fails. The first error is the cause; later ones are
/// usually its consequences ("failed to load model").
static LAST_PROBLEM: Mutex<Option<Problem>> = Mutex::new(None);

struct Problem {
    is_error: bool,
    reason: String,
}

/// What runs llama.cpp's graphs in this process.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BackendReport {
    /// `built in` (a native build links ggml's CPU back end), or the library a portable build
    /// loaded at start, chosen by ggml for this CPU (e.g. `libggml-cpu-haswell.so`).
    pub cpu: String,
    /// Instruction-set features the CPU back end uses (`AVX2`, `FMA`, `AVX512`, …).
    pub cpu_features: Vec<String>,
    /// GPU devices llama.cpp can offload to (`CUDA0: NVIDIA H200`); empty on CPU-only builds.
    pub gpu_devices: Vec<String>,
    /// The GPU back-end libraries (plug-ins) found beside a portable build's CPU libraries, and
    /// what became of each; empty for a native build.
    pub gpu_plugins: Vec<GpuPlugin>,
    /// The folder a portable build loaded its back ends from.
    pub backend_folder: Option<PathBuf>,
}

/// A GPU back-end library found in the back-end folder.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct GpuPlugin {
    /// Its file name (`libggml-cuda.so`).
    pub library: String,
    /// Whether ggml loaded and registered it.
    pub loaded: bool,
    /// The devices it offers (0 when not loaded, or loaded without a usable GPU or driver).
    pub devices: usize,
    /// Why it is not loaded or offers no device, as the loader or the back end said it
    /// (`libcudart.so.13: cannot open shared object file: No such file or directory`).
    pub problem: Option<String>,
}

impl std::fmt::Display for GpuPlugin {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let devices = match self.devices {
            1 => "1 device".to_string(),
            count => format!("{count} devices"),
        };
        match (self.loaded, &self.problem) {
            (false, Some(problem)) => write!(formatter, "{} (not loaded: {problem})", self.library),
            (false, None) => write!(formatter, "{} (not loaded)", self.library),
            (true, Some(problem)) if self.devices == 0 => {
                write!(formatter, "{} (loaded, no device: {problem})", self.library)
            }
            (true, _) => write!(formatter, "{} (loaded, {devices})", self.library),
        }
    }
}

/// The back ends ggml loads from a folder by name (`ggml_backend_load_all_from_path`) that
/// drive a GPU or accelerator: their libraries are `libggml-NAME.so` or `libggml-NAME-*.so`.
const GPU_BACKEND_NAMES: [&str; 8] = [
    "cuda", "vulkan", "hip", "musa", "sycl", "opencl", "cann", "metal",
];

/// Whether `file_name` is a GPU back-end library ggml would load from a back-end folder.
fn is_gpu_plugin(file_name: &str) -> bool {
    let Some(stem) = file_name
        .strip_prefix("libggml-")
        .and_then(|rest| rest.strip_suffix(".so"))
    else {
        return false;
    };
    GPU_BACKEND_NAMES.iter().any(|name| {
        stem == *name
            || stem
                .strip_prefix(name)
                .is_some_and(|variant| variant.starts_with('-'))
    })
}

/// Initialises llama.cpp's back ends and log routing exactly once per process, and says what
/// runs the graphs.
///
/// A portable build links no back end: ggml's CPU back end is a set of libraries, one per x86-64
/// level, of which ggml loads the best the CPU supports, and a GPU back end is one more library
/// in the same folder. They are looked for in `EXITWISE_BACKEND_DIR`, else in `../lib/exitwise`
/// beside the binary (the installed layout), else beside the binary.
pub(crate) fn ensure_initialized() -> Result<&'static BackendReport, EngineError> {
    let outcome = INIT.get_or_init(|| {
        // SAFETY: `forward_log` is a plain `extern "C"` function that is valid for the whole
        // program and never unwinds; a null user-data pointer is allowed by llama.h. Setting the
        // log callback before `llama_backend_init` catches its messages too.
        unsafe { sys::llama_log_set(Some(forward_log), std::ptr::null_mut()) };
        // SAFETY: called once per process (guarded by `INIT`), before any other llama.cpp use.
        unsafe { sys::llama_backend_init() };
        let mut searched = Vec::new();
        let mut load_problem = None;
        if cpu_device().is_none() {
            for folder in backend_folders() {
                clear_last_problem();
                load_backends_from(&folder);
                load_problem = take_last_problem();
                searched.push(folder);
                if cpu_device().is_some() {
                    break;
                }
            }
        }
        match cpu_device() {
            Some(cpu) => {
                let folder = searched.pop();
                let gpu_plugins = folder.as_deref().map_or_else(Vec::new, |folder| {
                    gpu_plugins_in(folder, load_problem.as_deref())
                });
                Ok(BackendReport {
                    gpu_plugins,
                    // `…/bin/../lib/exitwise` reads better as `…/lib/exitwise`.
                    backend_folder: folder.map(|folder| folder.canonicalize().unwrap_or(folder)),
                    ..describe(cpu)
                })
            }
            None => Err(searched),
        }
    });
    outcome
        .as_ref()
        .map_err(|searched| EngineError::NoCpuBackend {
            searched: searched.clone(),
        })
}

/// Whether llama.cpp can offload layers to a GPU in this process (a GPU build, or a portable
/// build with a GPU back-end library installed).
pub(crate) fn has_gpu_device() -> bool {
    ensure_initialized().is_ok_and(|report| !report.gpu_devices.is_empty())
}

impl BackendReport {
    /// What became of the GPU plug-ins of a portable build (`None` for a native build, which
    /// loads none): `none in `FOLDER``, or each plug-in with its devices or problem.
    pub fn plugins_summary(&self) -> Option<String> {
        let folder = self.backend_folder.as_ref()?;
        Some(if self.gpu_plugins.is_empty() {
            format!("none in `{}`", folder.display())
        } else {
            self.gpu_plugins
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        })
    }

    /// Why no GPU device is available (for messages when one was asked for): the build has no
    /// GPU back end, no plug-in is installed, or what became of each plug-in.
    pub fn why_no_gpu(&self) -> String {
        if let (Some(folder), []) = (&self.backend_folder, self.gpu_plugins.as_slice()) {
            return format!("no GPU plug-in in `{}`", folder.display());
        }
        self.plugins_summary().unwrap_or_else(|| {
            if super::compiled_backends().len() > 1 {
                "the GPU back end built in found no device".to_string()
            } else {
                "this build has no GPU back end".to_string()
            }
        })
    }
}

/// The folders a portable build loads its back-end libraries from, in order.
fn backend_folders() -> Vec<PathBuf> {
    if let Some(folder) = std::env::var_os(BACKEND_DIR_VARIABLE) {
        return vec![PathBuf::from(folder)];
    }
    let Some(binary_folder) = std::env::current_exe()
        .ok()
        .and_then(|binary| binary.parent().map(Path::to_path_buf))
    else {
        return Vec::new();
    };
    vec![binary_folder.join("../lib/exitwise"), binary_folder]
}

fn load_backends_from(folder: &Path) {
    let Some(folder_c) = folder.to_str().and_then(|text| CString::new(text).ok()) else {
        return;
    };
    // SAFETY: `folder_c` is a NUL-terminated string that outlives the call; ggml only reads it
    // and loads the libraries it finds there (a missing folder loads nothing).
    unsafe { sys::ggml_backend_load_all_from_path(folder_c.as_ptr()) };
}

/// The GPU plug-ins in `folder` and what became of each. ggml loads a back-end folder
/// silently in release builds, so a plug-in that cannot be loaded (a missing CUDA runtime, a
/// library built for another ggml) would vanish without a word: each one that did not register
/// is loaded once more, by path, to hear the loader's reason. `load_problem` is the first
/// problem logged while the folder was loaded (a back end that loads but finds no device says
/// why there, e.g. `failed to initialize CUDA: CUDA driver version is insufficient…`).
fn gpu_plugins_in(folder: &Path, load_problem: Option<&str>) -> Vec<GpuPlugin> {
    let Ok(entries) = std::fs::read_dir(folder) else {
        return Vec::new();
    };
    let mut libraries: Vec<String> = entries
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| is_gpu_plugin(name))
        .collect();
    libraries.sort();
    libraries
        .into_iter()
        .map(|library| {
            let path = folder.join(&library);
            let mut problem = None;
            let mut registry = loaded_registry(&library);
            if registry.is_none() && backend_registered(&library) {
                // ggml loads one library per back end (the best-scoring variant); loading
                // another by path would register the same devices twice.
                return GpuPlugin {
                    library,
                    loaded: false,
                    devices: 0,
                    problem: Some("another library of the same back end was loaded".into()),
                };
            }
            if registry.is_none() {
                clear_last_problem();
                load_backend_library(&path);
                problem = take_last_problem().map(|reason| loader_reason(&reason, &path));
                registry = loaded_registry(&library);
            }
            let devices = registry.map_or(0, |registry| {
                // SAFETY: `registry` is a registered back end, alive for the whole process.
                unsafe { sys::ggml_backend_reg_dev_count(registry.as_ptr()) }
            });
            if registry.is_some() && devices == 0 {
                problem = load_problem
                    .filter(|reason| mentions_backend(reason, &library))
                    .map(str::to_string);
            }
            GpuPlugin {
                library,
                loaded: registry.is_some(),
                devices,
                problem,
            }
        })
        .collect()
}

/// The registry of the back end ggml reported loading from `library` (a file name).
fn loaded_registry(library: &str) -> Option<std::ptr::NonNull<sys::ggml_backend_reg>> {
    let loaded = LOADED_LIBRARIES
        .lock()
        .map(|libraries| libraries.clone())
        .unwrap_or_default();
    let (name, _) = loaded
        .iter()
        .filter_map(|line| loaded_backend(line))
        .find(|(_, file)| *file == library)?;
    let name = CString::new(name).ok()?;
    // SAFETY: `name` is NUL-terminated; the registry returned, if any, lives for the process.
    std::ptr::NonNull::new(unsafe { sys::ggml_backend_reg_by_name(name.as_ptr()) })
}

/// Whether a back end of `library`'s kind (`libggml-cuda-12.so` → CUDA) is registered.
fn backend_registered(library: &str) -> bool {
    let Ok(name) = CString::new(backend_name(library)) else {
        return false;
    };
    // SAFETY: `name` is NUL-terminated; ggml compares it with the registered names ignoring
    // case and returns null when none matches.
    !unsafe { sys::ggml_backend_reg_by_name(name.as_ptr()) }.is_null()
}

/// The back end a library file is for: `libggml-cuda-12.so` → `cuda`.
fn backend_name(library: &str) -> &str {
    library
        .strip_prefix("libggml-")
        .and_then(|rest| rest.split(['-', '.']).next())
        .unwrap_or(library)
}

/// Loads one back-end library by path, logging why when it cannot (unlike a folder load).
fn load_backend_library(path: &Path) {
    let Some(path_c) = path.to_str().and_then(|text| CString::new(text).ok()) else {
        return;
    };
    // SAFETY: `path_c` is NUL-terminated and outlives the call. The file is one ggml itself
    // tried to load from the back-end folder (a `libggml-NAME.so` of a known back end); a
    // library that fails to load or initialise is logged and not registered.
    unsafe { sys::ggml_backend_load(path_c.as_ptr()) };
}

/// The loader's own words from ggml's "failed to load PATH: REASON".
fn loader_reason(reason: &str, path: &Path) -> String {
    let prefix = format!("failed to load {}: ", path.display());
    reason.strip_prefix(&prefix).unwrap_or(reason).to_string()
}

/// Whether a logged problem is about the back end of `library` (`libggml-cuda.so` →
/// `ggml_cuda_init: …`, `failed to initialize CUDA: …`).
fn mentions_backend(reason: &str, library: &str) -> bool {
    reason.to_lowercase().contains(backend_name(library))
}

/// The CPU device, once a CPU back end is registered.
fn cpu_device() -> Option<NonNullDevice> {
    // SAFETY: plain query of ggml's registry; returns null when no CPU back end is registered.
    let device = unsafe { sys::ggml_backend_dev_by_type(sys::GGML_BACKEND_DEVICE_TYPE_CPU) };
    std::ptr::NonNull::new(device).map(NonNullDevice)
}

#[derive(Clone, Copy)]
struct NonNullDevice(std::ptr::NonNull<sys::ggml_backend_device>);

fn describe(cpu: NonNullDevice) -> BackendReport {
    let loaded = LOADED_LIBRARIES
        .lock()
        .map(|libraries| libraries.clone())
        .unwrap_or_default();
    let cpu_library = loaded_library(&loaded, "CPU");
    BackendReport {
        cpu: cpu_library.unwrap_or_else(|| "built in".to_string()),
        cpu_features: cpu_features(cpu),
        gpu_devices: gpu_devices(),
        gpu_plugins: Vec::new(),
        backend_folder: None,
    }
}

/// The file name of the library llama.cpp loaded for back end `name`, from what it logged
/// ("CPU backend from /usr/lib/exitwise/libggml-cpu-haswell.so").
fn loaded_library(loaded: &[String], name: &str) -> Option<String> {
    loaded
        .iter()
        .filter_map(|line| loaded_backend(line))
        .rfind(|(backend, _)| *backend == name)
        .map(|(_, library)| library.to_string())
}

/// One of the lines ggml logs when it loads a back end ("CPU backend from
/// /usr/lib/exitwise/libggml-cpu-haswell.so"), as the back end's name and the library's file
/// name.
fn loaded_backend(line: &str) -> Option<(&str, &str)> {
    let (name, path) = line.split_once(" backend from ")?;
    Some((name, Path::new(path).file_name()?.to_str()?))
}

/// The CPU back end's registry and one of the functions it offers by name (`None` when it
/// offers none under that name). Functions of the CPU back end are reached this way because a
/// portable build loads its library at run time rather than linking it.
fn cpu_function(
    cpu: NonNullDevice,
    name: &CStr,
) -> Option<(sys::ggml_backend_reg_t, std::ptr::NonNull<c_void>)> {
    // SAFETY: `cpu` is a registered device; its registry lives for the whole process.
    let registry = unsafe { sys::ggml_backend_dev_backend_reg(cpu.0.as_ptr()) };
    if registry.is_null() {
        return None;
    }
    // SAFETY: `registry` is valid and `name` is NUL-terminated.
    let function = unsafe { sys::ggml_backend_reg_get_proc_address(registry, name.as_ptr()) };
    std::ptr::NonNull::new(function).map(|function| (registry, function))
}

/// The CPU back end's own list of the instruction-set features it was compiled for and found.
fn cpu_features(cpu: NonNullDevice) -> Vec<String> {
    type GetFeatures =
        unsafe extern "C" fn(sys::ggml_backend_reg_t) -> *mut sys::ggml_backend_feature;
    let Some((registry, function)) = cpu_function(cpu, c"ggml_backend_get_features") else {
        return Vec::new();
    };
    // SAFETY: ggml documents this entry point's type as `ggml_backend_get_features_t`, which is
    // `GetFeatures`; the pointer is non-null.
    let get_features: GetFeatures = unsafe { std::mem::transmute(function.as_ptr()) };
    // SAFETY: `registry` is the CPU back end's registry; the returned array is static, ends
    // with an entry whose name is null, and its strings live as long as the back end.
    let mut entry = unsafe { get_features(registry) };
    let mut features = Vec::new();
    while !entry.is_null() {
        // SAFETY: `entry` points into the null-terminated array described above.
        let feature = unsafe { &*entry };
        if feature.name.is_null() {
            break;
        }
        // SAFETY: both strings are NUL-terminated and static (see above).
        let (name, value) = unsafe {
            (
                CStr::from_ptr(feature.name).to_string_lossy(),
                CStr::from_ptr(feature.value).to_string_lossy(),
            )
        };
        if value == "1" {
            features.push(name.into_owned());
        }
        // SAFETY: the array continues until the null-named entry checked above.
        entry = unsafe { entry.add(1) };
    }
    features
}

fn gpu_devices() -> Vec<String> {
    // SAFETY: plain query of ggml's registry.
    let count = unsafe { sys::ggml_backend_dev_count() };
    (0..count)
        .filter_map(|index| {
            // SAFETY: `index` is below the device count.
            let device = unsafe { sys::ggml_backend_dev_get(index) };
            if device.is_null() {
                return None;
            }
            // SAFETY: `device` is a registered device.
            let kind = unsafe { sys::ggml_backend_dev_type(device) };
            if kind != sys::GGML_BACKEND_DEVICE_TYPE_GPU
                && kind != sys::GGML_BACKEND_DEVICE_TYPE_IGPU
            {
                return None;
            }
            // SAFETY: the device's name and description are NUL-terminated strings owned by
            // the device, which lives for the whole process.
            let (name, description) = unsafe {
                (
                    CStr::from_ptr(sys::ggml_backend_dev_name(device)).to_string_lossy(),
                    CStr::from_ptr(sys::ggml_backend_dev_description(device)).to_string_lossy(),
                )
            };
            Some(format!("{name}: {description}"))
        })
        .collect()
}

/// The CPU back end's thread-pool constructor and destructor. They live in the CPU back end's
/// library, which a portable build loads at run time, so they are looked up through ggml's
/// registry (as llama.cpp's own tools do) rather than linked.
#[derive(Clone, Copy)]
pub(crate) struct ThreadPoolFunctions {
    /// `ggml_threadpool_new`.
    pub new: unsafe extern "C" fn(*mut sys::ggml_threadpool_params) -> *mut sys::ggml_threadpool,
    /// `ggml_threadpool_free`.
    pub free: unsafe extern "C" fn(*mut sys::ggml_threadpool),
}

/// [`ThreadPoolFunctions`] of the CPU back end in use.
pub(crate) fn thread_pool_functions() -> Result<ThreadPoolFunctions, EngineError> {
    ensure_initialized()?;
    let missing = || EngineError::ContextCreation {
        reason: Some("the CPU back end offers no thread pool".into()),
    };
    let cpu = cpu_device().ok_or_else(missing)?;
    let (_, new) = cpu_function(cpu, c"ggml_threadpool_new").ok_or_else(missing)?;
    let (_, free) = cpu_function(cpu, c"ggml_threadpool_free").ok_or_else(missing)?;
    // SAFETY: the CPU back end returns exactly these two functions under these names
    // (ggml-cpu.cpp), with the signatures of `ggml_threadpool_new` and `ggml_threadpool_free`
    // in ggml-cpu.h; both pointers are non-null.
    Ok(unsafe {
        ThreadPoolFunctions {
            new: std::mem::transmute::<
                *mut c_void,
                unsafe extern "C" fn(*mut sys::ggml_threadpool_params) -> *mut sys::ggml_threadpool,
            >(new.as_ptr()),
            free: std::mem::transmute::<*mut c_void, unsafe extern "C" fn(*mut sys::ggml_threadpool)>(
                free.as_ptr(),
            ),
        }
    })
}

/// Forgets the last logged problem, so that a failure reports only what it caused itself.
pub(crate) fn clear_last_problem() {
    if let Ok(mut last) = LAST_PROBLEM.lock() {
        *last = None;
    }
}

/// The last error or warning llama.cpp logged since [`clear_last_problem`].
pub(crate) fn take_last_problem() -> Option<String> {
    LAST_PROBLEM
        .lock()
        .ok()
        .and_then(|mut last| last.take())
        .map(|problem| problem.reason)
}

unsafe extern "C" fn forward_log(level: sys::ggml_log_level, text: *const c_char, _: *mut c_void) {
    if text.is_null() {
        return;
    }
    // SAFETY: llama.cpp passes a NUL-terminated string that lives for the duration of the call.
    let text = unsafe { CStr::from_ptr(text) }.to_string_lossy();
    let line = text.trim_end();
    if line.is_empty() {
        return;
    }
    // A panic must not unwind into C: everything below is infallible or ignores poisoning.
    match level {
        sys::GGML_LOG_LEVEL_ERROR => {
            tracing::debug!(target: "llama.cpp", "error: {line}");
            remember_problem(line, true);
        }
        sys::GGML_LOG_LEVEL_WARN => {
            tracing::debug!(target: "llama.cpp", "warning: {line}");
            remember_problem(line, false);
        }
        sys::GGML_LOG_LEVEL_INFO => {
            tracing::trace!(target: "llama.cpp", "{line}");
            // ggml names the library each back end came from ("load_backend: loaded CPU
            // backend from /…/libggml-cpu-haswell.so"); `inspect` reports it.
            if let Some(loaded) = line.strip_prefix("load_backend: loaded ")
                && let Ok(mut libraries) = LOADED_LIBRARIES.lock()
            {
                libraries.push(loaded.to_string());
            }
        }
        _ => tracing::trace!(target: "llama.cpp", "{line}"),
    }
}

fn remember_problem(line: &str, is_error: bool) {
    let Ok(mut last) = LAST_PROBLEM.lock() else {
        return;
    };
    if last.as_ref().is_some_and(|problem| problem.is_error) {
        return;
    }
    *last = Some(Problem {
        is_error,
        reason: user_facing_reason(line),
    });
}

/// Strips llama.cpp's prefixes ("llama_model_load: error loading model: …") down to the reason
/// a user can act on.
fn user_facing_reason(line: &str) -> String {
    let mut reason = line
        .split_once(": ")
        .filter(|(prefix, _)| !prefix.contains(' '))
        .map_or(line, |(_, rest)| rest);
    for prefix in [
        "error loading model: ",
        "error loading model architecture: ",
    ] {
        reason = reason.strip_prefix(prefix).unwrap_or(reason);
    }
    reason.to_string()
}

#[cfg(test)]
mod tests {
    use super::{
        BackendReport, GpuPlugin, backend_name, is_gpu_plugin, loaded_library, loader_reason,
        mentions_backend, user_facing_reason,
    };
    use std::path::Path;

    #[test]
    fn gpu_plugins_are_told_from_the_cpu_and_base_libraries() {
        for plugin in ["libggml-cuda.so", "libggml-vulkan.so", "libggml-cuda-12.so"] {
            assert!(is_gpu_plugin(plugin), "{plugin}");
        }
        for other in [
            "libggml-cpu-haswell.so",
            "libggml-base.so.0",
            "libggml.so.0",
            "libggml-cudart.so",
            "libggml-cuda.so.0",
            "libllama.so.0",
        ] {
            assert!(!is_gpu_plugin(other), "{other}");
        }
    }

    #[test]
    fn the_report_says_what_became_of_the_plugins_and_why_there_is_no_gpu() {
        let report = |folder: Option<&str>, plugins: Vec<GpuPlugin>| BackendReport {
            cpu: "libggml-cpu-x64.so".into(),
            cpu_features: Vec::new(),
            gpu_devices: Vec::new(),
            gpu_plugins: plugins,
            backend_folder: folder.map(std::path::PathBuf::from),
        };
        let empty = report(Some("/opt/lib/exitwise"), Vec::new());
        assert_eq!(
            empty.plugins_summary().as_deref(),
            Some("none in `/opt/lib/exitwise`")
        );
        assert_eq!(empty.why_no_gpu(), "no GPU plug-in in `/opt/lib/exitwise`");
        let plugin = |library: &str| GpuPlugin {
            library: library.into(),
            loaded: false,
            devices: 0,
            problem: Some("file too short".into()),
        };
        let two = report(
            Some("/opt/lib/exitwise"),
            vec![plugin("libggml-cuda.so"), plugin("libggml-vulkan.so")],
        );
        let expected = "libggml-cuda.so (not loaded: file too short); libggml-vulkan.so (not loaded: file too short)";
        assert_eq!(two.plugins_summary().as_deref(), Some(expected));
        assert_eq!(two.why_no_gpu(), expected);
        let native = report(None, Vec::new());
        assert_eq!(native.plugins_summary(), None);
        if super::super::compiled_backends().len() == 1 {
            assert_eq!(native.why_no_gpu(), "this build has no GPU back end");
        }
    }

    #[test]
    fn a_library_names_its_back_end() {
        assert_eq!(backend_name("libggml-cuda.so"), "cuda");
        assert_eq!(backend_name("libggml-cuda-12.so"), "cuda");
        assert_eq!(backend_name("libggml-vulkan.so"), "vulkan");
    }

    #[test]
    fn a_plugin_says_what_became_of_it() {
        let plugin = |loaded, devices, problem: Option<&str>| GpuPlugin {
            library: "libggml-cuda.so".into(),
            loaded,
            devices,
            problem: problem.map(str::to_string),
        };
        assert_eq!(
            plugin(
                false,
                0,
                Some("libcudart.so.13: cannot open shared object file")
            )
            .to_string(),
            "libggml-cuda.so (not loaded: libcudart.so.13: cannot open shared object file)"
        );
        assert_eq!(
            plugin(true, 0, Some("failed to initialize CUDA: no driver")).to_string(),
            "libggml-cuda.so (loaded, no device: failed to initialize CUDA: no driver)"
        );
        assert_eq!(
            plugin(true, 1, None).to_string(),
            "libggml-cuda.so (loaded, 1 device)"
        );
        assert_eq!(
            plugin(true, 0, None).to_string(),
            "libggml-cuda.so (loaded, 0 devices)"
        );
    }

    #[test]
    fn the_loader_reason_loses_ggml_wording() {
        let path = Path::new("/opt/lib/exitwise/libggml-cuda.so");
        assert_eq!(
            loader_reason(
                "failed to load /opt/lib/exitwise/libggml-cuda.so: libcudart.so.13: cannot open shared object file",
                path
            ),
            "libcudart.so.13: cannot open shared object file"
        );
        assert_eq!(loader_reason("something else", path), "something else");
        assert!(mentions_backend(
            "failed to initialize CUDA: CUDA driver version is insufficient",
            "libggml-cuda.so"
        ));
        assert!(!mentions_backend(
            "failed to initialize CUDA: no driver",
            "libggml-vulkan.so"
        ));
    }

    #[test]
    fn the_loaded_cpu_variant_is_read_from_llama_cpp_log() {
        let loaded = vec![
            "CUDA backend from /opt/exitwise/lib/exitwise/libggml-cuda.so".to_string(),
            "CPU backend from /opt/exitwise/lib/exitwise/libggml-cpu-haswell.so".to_string(),
        ];
        assert_eq!(
            loaded_library(&loaded, "CPU").as_deref(),
            Some("libggml-cpu-haswell.so")
        );
        assert_eq!(
            loaded_library(&loaded, "CUDA").as_deref(),
            Some("libggml-cuda.so")
        );
        assert_eq!(loaded_library(&loaded, "Vulkan"), None);
        assert_eq!(loaded_library(&[], "CPU"), None);
    }

    #[test]
    fn reasons_lose_llama_cpp_prefixes() {
        assert_eq!(
            user_facing_reason(
                "llama_model_load: error loading model: error loading model architecture: unknown model architecture: 'alien'"
            ),
            "unknown model architecture: 'alien'"
        );
        assert_eq!(
            user_facing_reason("plain message: with colon"),
            "plain message: with colon"
        );
    }
}
