//! Build script:
//! - embeds the default adapter pack (`adapters/gemma3-270m-imdb`), so the binary needs only
//!   the GGUF model to classify;
//! - records the commit the binary was built from, so reports and `--version` name the source.

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
    record_commit();
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
