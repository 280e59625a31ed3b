//! The fuzz corpus as regression tests: every input in `fuzz/corpus/<target>/` (the
//! seeds, and what the fuzzers found that reached new code) is run through the same
//! entry point its cargo-fuzz target calls. A fuzzer finding, once fixed, stays fixed
//! without nightly Rust or libFuzzer. See fuzz/README.md for running the fuzzers.
#[cfg(not(feature = "fuzzing"))]
compile_error!("tests/fuzz_corpus.rs needs the `fuzzing` feature: run `cargo test --all-features`");

use std::path::Path;

use tower_hf_auth::fuzzing;

/// Runs `target` on every file of its corpus; fails naming every entry that panics,
/// with its message. Returns how many entries there were.
fn replay(target: &str, run: fn(&[u8])) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let entries = std::fs::read_dir(&dir)
        .unwrap_or_else(|err| panic!("the corpus {} is missing: {err}", dir.display()));
    let mut count = 0;
    let mut failures = Vec::new();
    for entry in entries {
        let path = entry.expect("a readable corpus entry").path();
        let data = std::fs::read(&path).expect("a readable corpus file");
        if let Err(panic) = std::panic::catch_unwind(|| run(&data)) {
            let message = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("(no message)");
            failures.push(format!("{}: {message}", path.display()));
        }
        count += 1;
    }
    assert!(count > 0, "the corpus {} is empty", dir.display());
    assert!(
        failures.is_empty(),
        "{} of {count} entries fail again:\n{}",
        failures.len(),
        failures.join("\n")
    );
    count
}

#[test]
fn session_cookie_corpus() {
    replay("session_cookie", fuzzing::session_cookie);
}

#[test]
fn callback_query_corpus() {
    replay("callback_query", fuzzing::callback_query);
}

#[test]
fn return_to_corpus() {
    replay("return_to", fuzzing::return_to);
}

#[test]
fn id_token_corpus() {
    replay("id_token", fuzzing::id_token);
}

#[test]
fn provider_json_corpus() {
    replay("provider_json", fuzzing::provider_json);
}
