//! The workspace's `rust-version` is honest about its dependencies: no crate in the build needs a
//! newer Rust than the workspace declares. (The toolchain CI runs is newer still: cargo refuses
//! to build when it is older than `rust-version`. No older toolchain can be fetched on CI's
//! machines, so this is the check that can run there.)
//!
//! `cargo metadata` is asked for this host's packages only (`--filter-platform`): offline, it can
//! only read the crates the build itself fetched, and a fresh cargo home holds no crate of another
//! platform (`anstyle-wincon`, `windows-sys`, ...).

use std::process::Command;

/// The host's target triple, as `rustc -vV` prints it (the platform the build fetched crates for).
fn host_triple() -> String {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_owned());
    let output = Command::new(rustc).arg("-vV").output().expect("rustc runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout)
        .expect("rustc -vV prints UTF-8")
        .lines()
        .find_map(|line| line.strip_prefix("host: "))
        .expect("rustc -vV names the host")
        .to_owned()
}

/// `1.89` and `1.89.0` are the same version.
fn version(text: &str) -> [u64; 3] {
    let mut parts = text.split('.').map(|part| part.parse().unwrap_or(0));
    [(); 3].map(|()| parts.next().unwrap_or(0))
}

#[test]
fn no_dependency_needs_a_newer_rust_than_the_workspace_declares() {
    let output = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--offline", "--filter-platform"])
        .arg(host_triple())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let members: Vec<&str> = metadata["workspace_members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect();
    let ours = env!("CARGO_PKG_RUST_VERSION");
    assert!(!ours.is_empty(), "rust-version is set");
    let mut too_new = Vec::new();
    for package in metadata["packages"].as_array().unwrap() {
        let Some(needed) = package["rust_version"].as_str() else {
            continue;
        };
        let name = package["name"].as_str().unwrap();
        if members.contains(&package["id"].as_str().unwrap()) {
            assert_eq!(needed, ours, "{name} declares its own rust-version");
        } else if version(needed) > version(ours) {
            too_new.push(format!("{name} needs {needed}"));
        }
    }
    assert!(too_new.is_empty(), "rust-version {ours} is too old: {too_new:?}");
}
