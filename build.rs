//! Build script: records what the binary was built from, so that benchmark reports and
//! `--version` name the exact source.

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=models/catalog.toml");
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-env-changed=EXITWISE_BUILD_COMMIT");
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
