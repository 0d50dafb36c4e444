//! Replays every fuzz corpus (`fuzz/corpus/<target>/`) and every crash turned regression
//! (`fuzz/regressions/<target>/`) through the same entry the cargo-fuzz target calls, on stable,
//! so what fuzzing found keeps passing in `scripts/test.sh`. `scripts/fuzz.sh` grows the corpora.

#[path = "../fuzz/entries.rs"]
mod entries;

use std::fs;
use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// The files of `fuzz/<kind>/<target>/`, sorted.
fn inputs(kind: &str, target: &str) -> Vec<PathBuf> {
    let dir = fuzz_dir().join(kind).join(target);
    let Ok(entries) = fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

fn replay(kind: &str) -> usize {
    let mut replayed = 0;
    for (name, entry) in entries::ENTRIES {
        for path in inputs(kind, name) {
            let data = fs::read(&path).expect("read corpus file");
            let outcome = std::panic::catch_unwind(|| entry(&data));
            assert!(outcome.is_ok(), "{name}: {} fails", path.display());
            replayed += 1;
        }
    }
    replayed
}

#[test]
fn every_target_has_a_seed_corpus_and_a_fuzz_binary() {
    for (name, _) in entries::ENTRIES {
        assert!(
            !inputs("corpus", name).is_empty(),
            "fuzz/corpus/{name}/ has no seed"
        );
        let binary = fuzz_dir().join("fuzz_targets").join(format!("{name}.rs"));
        assert!(binary.is_file(), "{} is missing", binary.display());
    }
}

#[test]
fn every_corpus_input_passes_its_target() {
    assert!(replay("corpus") > 0);
}

#[test]
fn every_crash_found_by_fuzzing_stays_fixed() {
    replay("regressions");
}
