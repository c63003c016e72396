//! Table-driven: every `tests/fixtures/invalid/<kind>-<mistake>.toml` must fail
//! `check-config` with exactly the messages in `<kind>-<mistake>.expected`, one per line.
#![expect(clippy::unwrap_used, reason = "tests")]

use std::path::{Path, PathBuf};

use shouhu_config::{Kind, check_str};

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/invalid")
}

fn files_with(extension: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(fixture_dir())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == extension))
        .collect();
    files.sort();
    files
}

fn name(path: &Path) -> String {
    path.file_name().unwrap().to_string_lossy().into_owned()
}

#[test]
fn every_invalid_fixture_fails_with_exactly_its_expected_messages() {
    let fixtures = files_with("toml");
    assert!(
        fixtures.len() >= 10,
        "expected the fixture set, found {fixtures:?}"
    );
    let mut failures = Vec::new();
    for fixture in fixtures {
        let file = name(&fixture);
        // The kind comes from the name, so that a fixture can carry the wrong `kind` key.
        let kind_name = file.split('-').next().unwrap();
        let kind: Kind = kind_name.parse().unwrap_or_else(|e| {
            panic!("{file}: name must start with proxy-, issuer- or origin- ({e})")
        });
        let expected_file = fixture.with_extension("expected");
        let expected = std::fs::read_to_string(&expected_file)
            .unwrap_or_else(|e| panic!("{file}: needs {}: {e}", name(&expected_file)));
        let expected: Vec<&str> = expected.lines().filter(|l| !l.is_empty()).collect();
        assert!(!expected.is_empty(), "{}: is empty", name(&expected_file));

        let text = std::fs::read_to_string(&fixture).unwrap();
        let actual: Vec<String> = match check_str(&file, &text, Some(kind)) {
            Ok(_) => Vec::new(),
            Err(errors) => errors.iter().map(ToString::to_string).collect(),
        };
        if actual != expected {
            failures.push(format!(
                "{file}:\n  expected:\n    {}\n  actual:\n    {}",
                expected.join("\n    "),
                actual.join("\n    ")
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn every_expected_file_has_a_fixture() {
    for expected in files_with("expected") {
        assert!(
            expected.with_extension("toml").exists(),
            "{} has no fixture",
            name(&expected)
        );
    }
}
