//! Shared by the case-file runners (`cases.rs`, `invalid.rs`): run every
//! `*.json` case of a directory and report each failure by file name, so one
//! broken case never hides the others.

use std::path::Path;

/// Runs `run_case` on every `*.json` file of `tests/<dir>` (in name order)
/// and fails with the list of failing cases; at least `cases_min` must exist.
pub fn run_case_dir(dir: &str, cases_min: usize, run_case: impl Fn(&Path) -> Result<(), String>) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join(dir);
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    paths.sort();
    assert!(
        paths.len() >= cases_min,
        "expected at least {cases_min} cases in {}, found {}",
        dir.display(),
        paths.len()
    );
    let failures: Vec<String> = paths
        .iter()
        .filter_map(|path| {
            run_case(path).err().map(|why| {
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                format!("{name}: {why}")
            })
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n\n{}",
        failures.len(),
        paths.len(),
        failures.join("\n\n")
    );
}
