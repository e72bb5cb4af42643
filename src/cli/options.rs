//! Flags that several commands share: the global options, the labelled-data fields, the
//! policy choice and how files are read.

use std::path::PathBuf;

use exitwise::dataset::FieldNames;
use exitwise::engine::ModelOptions;
use exitwise::exit::PolicyKind;
use exitwise::formats::isolation::ChildLimits;
use exitwise::formats::{Format, Isolation, ReadOptions, TextEncoding};
use exitwise::locations::{Environment, Kind, Location, search_path, write_location};
use exitwise::pack::PackManifest;

/// Options every subcommand understands.
#[derive(Debug, clap::Args)]
pub struct GlobalOptions {
    /// CPU threads for llama.cpp, over all of the process's sessions [default: the CPUs this
    /// process may use]
    ///
    /// The default counts the CPUs of the affinity mask (`taskset`, systemd's
    /// `CPUAffinity=`), capped by the control group's CPU quota (`CPUQuota=`, a container's
    /// `--cpus`), fewer while other processes keep them busy: more threads than CPUs only wait
    /// for each other. `classify --jobs` and `serve --workers` split them among their
    /// sessions; `classify` with --threads and no --jobs runs that many one-thread sessions.
    #[arg(long, global = true, value_name = "N")]
    threads: Option<usize>,

    /// Layers to offload to the GPU (needs a GPU back end: a release with the CUDA or Vulkan
    /// plug-in beside its CPU libraries, or a build with `--features cuda`, `metal` or `vulkan`)
    ///
    /// Default: all layers when a GPU back end found a device, 0 otherwise (`exitwise inspect`
    /// lists the devices and the plug-ins that did not load, with the reason). 0 runs on the
    /// CPU alone and leaves the GPU unused; with some layers offloaded, llama.cpp may also move
    /// a long batch's work of the other layers to the GPU. Asking for layers on a machine
    /// without a GPU device warns and runs on the CPU.
    #[arg(long, global = true, value_name = "N")]
    gpu_layers: Option<u32>,

    /// Folder of models, the only one searched (without it: `EXITWISE_MODELS_DIR`, the user
    /// data folder, `/var/lib/exitwise/models`, `/usr/share/exitwise/models`, and in a
    /// development build the source tree's `models/`; `exitwise models list` shows them)
    #[arg(long, global = true, value_name = "DIR")]
    models_dir: Option<PathBuf>,

    /// More log output on stderr (-v: info, -vv: debug, -vvv: llama.cpp's own log)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
}

impl GlobalOptions {
    /// The folders searched for models, in order.
    pub fn model_locations(&self) -> Vec<Location> {
        search_path(
            Kind::Models,
            &Environment::current(Kind::Models, self.models_dir.as_deref()),
        )
    }

    /// Where new models go (`models fetch`, `models import`).
    pub fn model_write_location(&self) -> Option<Location> {
        write_location(
            Kind::Models,
            &Environment::current(Kind::Models, self.models_dir.as_deref()),
        )
    }

    /// llama.cpp model-loading options from the global flags.
    pub fn model_options(&self) -> ModelOptions {
        ModelOptions {
            gpu_layers: self.gpu_layers,
        }
    }

    /// Threads for llama.cpp.
    pub fn threads(&self) -> Option<usize> {
        self.threads
    }

    /// How many `-v` were given.
    pub fn verbosity(&self) -> u8 {
        self.verbose
    }
}

/// `--text-field` and `--label-field` of the commands that read labelled data for a pack.
#[derive(Debug, clap::Args)]
pub struct LabelledFields {
    /// Field (column) holding the text
    #[arg(long, default_value = "text", value_name = "NAME")]
    text_field: String,

    /// Field (column) holding the label [default: the field the pack was trained on]
    #[arg(long, value_name = "NAME")]
    label_field: Option<String>,
}

impl LabelledFields {
    /// The field names; the label field defaults to the one `manifest`'s pack was trained on.
    pub fn names(&self, manifest: &PackManifest) -> FieldNames {
        FieldNames {
            text: self.text_field.clone(),
            label: self
                .label_field
                .clone()
                .unwrap_or_else(|| manifest.training.label_field.clone()),
            ..FieldNames::default()
        }
    }
}

/// Exit policy choices on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PolicyArgument {
    /// Pass by pass (a sentence, or whole sentences up to a calibrated size), layer by layer
    /// inside each pass, up to a depth cap
    #[value(name = "2d")]
    TwoDimensional,
    /// The whole document at once, exit at the first confident layer
    Layer,
    /// Sentence by sentence at full depth, exit at the first confident sentence
    Sentence,
    /// Everything: all sentences, all layers (answers with the pack's best layer)
    Full,
}

impl From<PolicyArgument> for PolicyKind {
    fn from(argument: PolicyArgument) -> Self {
        match argument {
            PolicyArgument::TwoDimensional => PolicyKind::TwoDimensional,
            PolicyArgument::Layer => PolicyKind::Layer,
            PolicyArgument::Sentence => PolicyKind::Sentence,
            PolicyArgument::Full => PolicyKind::Full,
        }
    }
}

/// `--input-format` of the commands that read files: recognise each document's format, or
/// force a reader.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum InputFormat {
    /// Recognise each document by its content (magic bytes, sniffing), then its extension
    Auto,
    /// Plain text, in the encoding found (or --encoding)
    Text,
    /// A mail (RFC 5322 / MIME), or an mbox mailbox of many: subject and text parts
    Mail,
    /// A web page: its title and main content
    Html,
    /// A PDF's text layer
    Pdf,
    /// A Word document's paragraphs
    Docx,
    /// An OpenDocument text's paragraphs
    Odt,
}

impl InputFormat {
    /// The forced reader (`None`: recognise).
    pub fn forced(self) -> Option<Format> {
        match self {
            InputFormat::Auto => None,
            InputFormat::Text => Some(Format::Text),
            InputFormat::Mail => Some(Format::Mail),
            InputFormat::Html => Some(Format::Html),
            InputFormat::Pdf => Some(Format::Pdf),
            InputFormat::Docx => Some(Format::Docx),
            InputFormat::Odt => Some(Format::Odt),
        }
    }
}

/// Parses `--encoding`: a WHATWG label (`utf-8`, `latin1`, `windows-1252`, `shift_jis`,
/// `utf-16le`, …) or `utf-32le`/`utf-32be`.
pub fn parse_encoding(label: &str) -> Result<TextEncoding, String> {
    TextEncoding::from_label(label).ok_or_else(|| {
        format!("unknown encoding `{label}` (WHATWG labels such as utf-8, latin1, windows-1251, shift_jis, gb18030, utf-16le, or utf-32le)")
    })
}

/// How files are read: the forced reader and encoding, text up to `text_limit` bytes, and the
/// container readers (PDF, DOCX, ODT) in a child process of this program, which runs them
/// under memory and time limits (`exitwise read-container`, hidden).
pub fn read_options(
    input_format: InputFormat,
    encoding: Option<TextEncoding>,
    text_limit: usize,
) -> anyhow::Result<ReadOptions> {
    let program = std::env::current_exe().map_err(|error| {
        anyhow::anyhow!("cannot find this program's own path to start its document reader: {error}")
    })?;
    Ok(ReadOptions {
        format: input_format.forced(),
        encoding,
        text_limit,
        isolation: Isolation::ChildProcess {
            program,
            arguments: vec!["read-container".into()],
            limits: ChildLimits::default(),
        },
    })
}
