//! House rules checked by the build: every module of the crate starts with a `//!` line
//! saying what it holds.

use std::path::Path;

#[test]
fn every_module_starts_with_a_doc_line() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut checked = 0;
    for dir in ["src", "tests", "benches"] {
        let entries = std::fs::read_dir(root.join(dir)).expect("directory is readable");
        for entry in entries {
            let path = entry.expect("directory entry").path();
            if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).expect("source is UTF-8");
                assert!(
                    text.starts_with("//! "),
                    "{} lacks a //! first line",
                    path.display()
                );
                checked += 1;
            }
        }
    }
    assert!(checked >= 12, "found only {checked} modules");
}
