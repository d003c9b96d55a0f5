//! `usage-models` alone: schemas only, with no HTTP stack and no runtime in its dependency tree.

use std::process::Command;

#[test]
fn usage_models_depends_on_no_http_and_no_runtime() {
    let output = Command::new(env!("CARGO"))
        .args([
            "tree",
            "-p",
            "usage-models",
            "-e",
            "normal",
            "--prefix",
            "none",
            "--offline",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let tree = String::from_utf8(output.stdout).unwrap();
    let crates: Vec<&str> = tree.lines().filter_map(|line| line.split_whitespace().next()).collect();
    for direct in ["serde", "serde_json", "chrono", "uuid", "rust_decimal"] {
        assert!(crates.contains(&direct), "{direct} missing from:\n{tree}");
    }
    for forbidden in [
        "http",
        "bytes",
        "tokio",
        "hyper",
        "hyper-util",
        "async-trait",
        "usage-core",
        "rustls",
    ] {
        assert!(
            !crates.contains(&forbidden),
            "{forbidden} in the tree of usage-models:\n{tree}"
        );
    }
}
