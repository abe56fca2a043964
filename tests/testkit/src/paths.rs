//! Where things are: the workspace, the shared test data, built binaries, and
//! names no other test run uses.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// The workspace root (the directory holding the root `Cargo.toml`).
pub fn workspace_root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("..");
    root.canonicalize().unwrap_or(root)
}

/// A file or directory of the shared test data: `../shared/data/<rel>` beside
/// the workspace, or `$QALQAN_SHARED_DATA/<rel>`.
///
/// Panics with "test data missing: ..." when it is absent: a test that needs
/// data must never pass without it.
pub fn shared_data(rel: impl AsRef<Path>) -> PathBuf {
    let (base, origin) = match std::env::var_os("QALQAN_SHARED_DATA") {
        Some(dir) if !dir.is_empty() => (PathBuf::from(dir), "$QALQAN_SHARED_DATA"),
        _ => (
            workspace_root().join("..").join("shared").join("data"),
            "../shared/data beside the workspace",
        ),
    };
    let path = base.join(rel.as_ref());
    if !path.exists() {
        panic!(
            "test data missing: {} (looked in {origin}). Put the shared data set there, \
             or set QALQAN_SHARED_DATA to the directory that holds it.",
            path.display()
        );
    }
    path
}

/// A name unique to this call, this process and this moment, for topics,
/// consumer groups, ClickHouse databases and files: `<prefix>_<pid>_<n>_<time>`.
///
/// Characters Kafka topic names do not allow become `_`; dots are kept, so
/// `unique("qalqan.events.t")` is a valid events topic for agency `t_...`.
pub fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let micros = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() % 1_000_000_000)
        .unwrap_or(0);
    let clean: String = prefix
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{clean}_{}_{n}_{micros}", std::process::id())
}

/// Path of a workspace binary (`qalqan-collector`, `qalqan-detector`, ...)
/// built by the same `cargo test` run, in the test's own target directory.
///
/// Cargo builds a package's binaries before that package's integration tests;
/// a test that runs another package's binary needs it built first
/// (`make test` runs `cargo build --workspace --bins`). Cargo holds its build
/// lock while tests run, so this cannot build it for you; it panics with the
/// command to run instead.
pub fn cargo_bin(name: &str) -> PathBuf {
    let var = format!("CARGO_BIN_EXE_{name}");
    if let Some(path) = std::env::var_os(&var) {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe()
        .unwrap_or_else(|e| panic!("cannot locate the test executable to find `{name}`: {e}"));
    // target/<profile>/deps/<test-binary>  →  target/<profile>/<name>
    let mut dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.pop();
    }
    let path = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    if !path.is_file() {
        panic!(
            "binary `{name}` is not built: expected {}. Run `cargo build --bin {name}` \
             (with the same --release/--target-dir as the tests), then re-run the tests.",
            path.display()
        );
    }
    path
}
