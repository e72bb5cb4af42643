//! Build script:
//! - embeds the default adapter pack (`adapters/gemma3-270m-imdb`), so the binary needs only
//!   the GGUF model to classify;
//! - records the commit the binary was built from, so reports and `--version` name the source;
//! - in a portable build, records it and points the binary at its back-end libraries.

use std::path::Path;
use std::process::Command;

/// The pack compiled into the binary.
const DEFAULT_PACK: &str = "gemma3-270m-imdb";

fn main() {
    println!("cargo:rerun-if-changed=models/catalog.toml");
    // HEAD names the branch; the branch's ref file changes with every commit.
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-changed=.git/refs/heads");
    println!("cargo:rerun-if-env-changed=EXITWISE_BUILD_COMMIT");
    println!("cargo:rerun-if-env-changed=LLAMA_BUILD_SHARED_LIBS");
    record_commit();
    record_build_kind();
    embed_default_pack();
}

fn record_commit() {
    let commit = std::env::var("EXITWISE_BUILD_COMMIT").ok().or_else(|| {
        Command::new("git")
            .args(["rev-parse", "--short=12", "HEAD"])
            .output()
            .ok()
            .filter(|output| output.status.success())
            .and_then(|output| String::from_utf8(output.stdout).ok())
            .map(|commit| commit.trim().to_string())
    });
    println!(
        "cargo:rustc-env=EXITWISE_BUILD_COMMIT={}",
        commit.unwrap_or_else(|| "unknown".into())
    );
}

/// A portable build (`make dist`: llama.cpp as shared libraries, ggml's CPU back end in one
/// library per x86-64 level) finds its libraries in `../lib/exitwise` beside the binary, which
/// is where the tarball and the Debian package put them.
fn record_build_kind() {
    let portable = std::env::var("LLAMA_BUILD_SHARED_LIBS").is_ok_and(|value| value == "1");
    let gpu: Vec<&str> = ["CUDA", "METAL", "VULKAN"]
        .into_iter()
        .filter(|feature| std::env::var_os(format!("CARGO_FEATURE_{feature}")).is_some())
        .collect();
    let kind = if portable {
        "portable (CPU variants and GPU plug-ins loaded at start)".to_string()
    } else if gpu.is_empty() {
        "built in (CPU, compiled for the build machine)".to_string()
    } else {
        format!("built in (CPU + {})", gpu.join(" + ").to_lowercase())
    };
    println!("cargo:rustc-env=EXITWISE_BUILD_KIND={kind}");
    if portable {
        println!("cargo:rustc-link-arg-bins=-Wl,-rpath,$ORIGIN/../lib/exitwise");
    }
}

fn embed_default_pack() {
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let pack = Path::new(&manifest_dir).join("adapters").join(DEFAULT_PACK);
    let manifest = pack.join("adapter.toml");
    let weights = pack.join("heads.safetensors");
    // A folder: cargo reruns when any file below it changes, and a missing file is no reason
    // to rebuild every time.
    println!("cargo:rerun-if-changed=adapters");
    let code = if manifest.is_file() && weights.is_file() {
        format!(
            "/// The default adapter pack, compiled in.\npub const EMBEDDED_PACK: Option<EmbeddedPack> = Some(EmbeddedPack {{ name: {DEFAULT_PACK:?}, manifest: include_str!({:?}), weights: include_bytes!({:?}) }});\n",
            manifest.display().to_string(),
            weights.display().to_string()
        )
    } else {
        println!(
            "cargo:warning=the default adapter pack `adapters/{DEFAULT_PACK}` is missing: the binary will need --adapters"
        );
        "/// The default adapter pack, compiled in (missing from this build).\npub const EMBEDDED_PACK: Option<EmbeddedPack> = None;\n".to_string()
    };
    let out =
        Path::new(&std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("embedded_pack.rs");
    std::fs::write(out, code).expect("write embedded_pack.rs");
}
