//! House rules checked by the build: every module of the crate starts with a `//!` line
//! saying what it holds.

use std::path::Path;

#[test]
fn every_module_starts_with_a_doc_line() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut checked = 0;
    let entries = std::fs::read_dir(&src).expect("src is readable");
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
    assert!(checked >= 10, "found only {checked} modules");
}
