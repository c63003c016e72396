//! Deserializing a whole file while collecting every error, not just the first.
//!
//! serde stops at the first error. So we deserialize from a `toml::Table`, note the error
//! and its field path (via `serde_path_to_error`), remove the offending value from the
//! table and try again until it deserializes. Every schema field has a serde default, so a
//! removed value falls back to its default and the rest of the file is still checked. The
//! result is the config as far as it could be read plus one error per bad field; the
//! validation pass then skips the fields that already failed here.

use std::collections::{HashMap, HashSet};

use serde::de::DeserializeOwned;
use toml::{Table, Value};

use crate::error::ConfigError;

/// A step of a field path.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Segment {
    Key(String),
    Index(usize),
}

/// Each round removes or blanks a value, so a file cannot need more rounds than it has
/// values; the bound only stops a bug from looping forever.
const MAX_ROUNDS: usize = 10_000;

/// Deserializes `table` into `T`, returning the best `T` it could read and every error.
///
/// Error paths are as written in the file even after values were taken out (see [`Edits`]).
/// If a value fails again after being blanked, its parent is removed instead.
pub(crate) fn deserialize_all<T>(file: &str, mut table: Table) -> (T, Vec<ConfigError>)
where
    T: DeserializeOwned + Default,
{
    let mut errors: Vec<ConfigError> = Vec::new();
    let mut edits = Edits::default();
    for _ in 0..MAX_ROUNDS {
        let error = match serde_path_to_error::deserialize::<_, T>(Value::Table(table.clone())) {
            Ok(value) => return (value, errors),
            Err(error) => error,
        };
        let mut path = segments(error.path());
        let message = describe(error.inner().message(), &mut path);
        let rendered = render(&edits.original(&path));
        // The same field failing again, or its parent failing because of it, is one mistake.
        if !errors
            .iter()
            .any(|e| e.path == rendered || is_within(&e.path, &rendered))
        {
            errors.push(ConfigError::new(file, rendered, message));
        }
        if !edits.drop_value(&mut table, path) {
            break;
        }
    }
    (T::default(), errors)
}

/// Whether field path `child` lies strictly inside `parent` (`a.b[2].c` inside `a.b`).
pub(crate) fn is_within(child: &str, parent: &str) -> bool {
    if parent.is_empty() {
        return !child.is_empty();
    }
    child
        .strip_prefix(parent)
        .is_some_and(|rest| rest.starts_with(['.', '[']))
}

fn segments(path: &serde_path_to_error::Path) -> Vec<Segment> {
    use serde_path_to_error::Segment as S;
    path.iter()
        .map_while(|segment| match segment {
            S::Seq { index } => Some(Segment::Index(*index)),
            S::Map { key } | S::Enum { variant: key } => Some(Segment::Key(key.clone())),
            S::Unknown => None,
        })
        .collect()
}

fn render(path: &[Segment]) -> String {
    let mut out = String::new();
    for segment in path {
        match segment {
            Segment::Key(key) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Segment::Index(index) => out.push_str(&format!("[{index}]")),
        }
    }
    out
}

/// What has been taken out of the table so far, to map paths back to the file as written.
///
/// An element of an array that is a table is blanked (replaced by `{}`), keeping the indices
/// of later elements, so rule errors on arrays of tables (`routes[3].path`) stay right. Any
/// other element is removed, since `{}` would fail again in its place; later indices then
/// shift, and [`Edits::original`] shifts them back for messages.
#[derive(Default)]
struct Edits {
    /// Paths (as written) already removed or blanked.
    acted: HashSet<Vec<Segment>>,
    /// Per array (path as written), the indices (as written) removed from it, sorted.
    removed: HashMap<Vec<Segment>, Vec<usize>>,
}

impl Edits {
    /// `path` in the current table, as a path in the file as written.
    fn original(&self, path: &[Segment]) -> Vec<Segment> {
        let mut out = Vec::with_capacity(path.len());
        for segment in path {
            let segment = match segment {
                Segment::Index(current) => {
                    let mut index = *current;
                    for &gone in self.removed.get(&out).into_iter().flatten() {
                        if gone <= index {
                            index += 1;
                        }
                    }
                    Segment::Index(index)
                }
                key @ Segment::Key(_) => key.clone(),
            };
            out.push(segment);
        }
        out
    }

    /// Removes (or blanks) the value at `path`, or at its nearest ancestor not yet acted on.
    /// Returns false when nothing is left to remove.
    fn drop_value(&mut self, table: &mut Table, mut path: Vec<Segment>) -> bool {
        while let Some(last) = path.last().cloned() {
            let original = self.original(&path);
            if !self.acted.contains(&original) {
                match remove(table, &path) {
                    Removal::None => {}
                    Removal::Blanked => {
                        self.acted.insert(original);
                        return true;
                    }
                    Removal::Removed => {
                        if let (Segment::Index(index), Some((_, array))) =
                            (last, original.split_last())
                        {
                            let removed = self.removed.entry(array.to_vec()).or_default();
                            let at = removed.partition_point(|&i| i < index);
                            removed.insert(at, index);
                        }
                        self.acted.insert(original);
                        return true;
                    }
                }
            }
            path.pop();
        }
        false
    }
}

enum Removal {
    None,
    Blanked,
    Removed,
}

fn remove(table: &mut Table, path: &[Segment]) -> Removal {
    let mut root = Value::Table(std::mem::take(table));
    let removal = remove_in(&mut root, path);
    if let Value::Table(back) = root {
        *table = back;
    }
    removal
}

fn remove_in(value: &mut Value, path: &[Segment]) -> Removal {
    match (path, value) {
        ([Segment::Key(key)], Value::Table(table)) => match table.remove(key) {
            Some(_) => Removal::Removed,
            None => Removal::None,
        },
        ([Segment::Index(index)], Value::Array(array)) => match array.get_mut(*index) {
            Some(Value::Table(t)) if t.is_empty() => Removal::None,
            Some(slot @ Value::Table(_)) => {
                *slot = Value::Table(Table::new());
                Removal::Blanked
            }
            Some(_) => {
                array.remove(*index);
                Removal::Removed
            }
            None => Removal::None,
        },
        ([Segment::Key(key), rest @ ..], Value::Table(table)) => match table.get_mut(key) {
            Some(child) => remove_in(child, rest),
            None => Removal::None,
        },
        ([Segment::Index(index), rest @ ..], Value::Array(array)) => match array.get_mut(*index) {
            Some(child) => remove_in(child, rest),
            None => Removal::None,
        },
        _ => Removal::None,
    }
}

/// Rewrites serde's generic messages into ours (rule, then the offending value), fixing the
/// path where serde reports the parent instead of the field.
fn describe(message: &str, path: &mut Vec<Segment>) -> String {
    if let Some((field, expected)) = message
        .strip_prefix("unknown field `")
        .and_then(|rest| rest.split_once("`, "))
    {
        let key = Segment::Key(field.to_owned());
        if path.last() != Some(&key) {
            path.push(key);
        }
        return match expected {
            "there are no fields" => "unknown field (this table takes no fields)".to_owned(),
            expected => format!("unknown field ({})", expected.replace('`', "")),
        };
    }
    if let Some(field) = message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.strip_suffix('`'))
    {
        path.push(Segment::Key(field.to_owned()));
        return "required".to_owned();
    }
    for (prefix, is_value) in [("invalid type: ", false), ("invalid value: ", true)] {
        // The expected part is ours; the unexpected part may quote user text, so split at
        // the last separator.
        if let Some((unexpected, expected)) = message
            .strip_prefix(prefix)
            .and_then(|rest| rest.rsplit_once(", expected "))
        {
            if is_value && let Some(rule) = integer_range(unexpected, expected) {
                return rule;
            }
            return format!(
                "expected {} (got {})",
                expected_name(expected),
                got_name(unexpected)
            );
        }
    }
    message.to_owned()
}

/// `integer `70000`, expected u16` -> `must be <= 65535 (got 70000)`.
fn integer_range(unexpected: &str, expected: &str) -> Option<String> {
    let value: i128 = unexpected
        .strip_prefix("integer `")?
        .strip_suffix('`')?
        .parse()
        .ok()?;
    let (min, max): (i128, i128) = match expected {
        "u8" => (0, u8::MAX.into()),
        "u16" => (0, u16::MAX.into()),
        "u32" => (0, u32::MAX.into()),
        "u64" => (0, u64::MAX.into()),
        "usize" => (0, i128::try_from(usize::MAX).ok()?),
        "i8" => (i8::MIN.into(), i8::MAX.into()),
        "i16" => (i16::MIN.into(), i16::MAX.into()),
        "i32" => (i32::MIN.into(), i32::MAX.into()),
        _ => return None,
    };
    if value < min {
        Some(format!("must be >= {min} (got {value})"))
    } else if value > max {
        Some(format!("must be <= {max} (got {value})"))
    } else {
        None
    }
}

fn expected_name(expected: &str) -> String {
    match expected {
        "u8" | "u16" | "u32" | "u64" | "usize" | "i8" | "i16" | "i32" | "i64" => {
            "an integer".to_owned()
        }
        "f32" | "f64" => "a number".to_owned(),
        "a sequence" => "an array".to_owned(),
        "a map" => "a table".to_owned(),
        "path string" => "a path".to_owned(),
        other if other.starts_with("struct ") => "a table".to_owned(),
        other => other.to_owned(),
    }
}

fn got_name(unexpected: &str) -> String {
    match unexpected {
        "sequence" => "array".to_owned(),
        "map" => "table".to_owned(),
        other => other
            .replacen("floating point", "float", 1)
            .replace('`', ""),
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Default, Deserialize, PartialEq)]
    #[serde(default, deny_unknown_fields)]
    struct Doc {
        port: u16,
        name: String,
        items: Vec<Item>,
        inner: Inner,
    }

    #[derive(Debug, Default, Deserialize, PartialEq)]
    #[serde(default, deny_unknown_fields)]
    struct Item {
        size: u32,
    }

    #[derive(Debug, Default, Deserialize, PartialEq)]
    #[serde(default, deny_unknown_fields)]
    struct Inner {
        on: bool,
    }

    fn run(text: &str) -> (Doc, Vec<String>) {
        let table: Table = text.parse().unwrap_or_else(|e| panic!("{e}"));
        let (doc, errors) = deserialize_all::<Doc>("t.toml", table);
        (doc, errors.iter().map(ToString::to_string).collect())
    }

    #[test]
    fn collects_every_error_and_keeps_the_good_values() {
        let (doc, errors) = run(r#"
            port = 70000
            name = "ok"
            nmae = "typo"
            items = [{ size = 1 }, { size = "big" }, { size = -3, extra = 1 }, 7]
            [inner]
            on = "yes"
            "#);
        assert_eq!(
            errors,
            [
                "t.toml: port: must be <= 65535 (got 70000)",
                "t.toml: nmae: unknown field (expected one of port, name, items, inner)",
                r#"t.toml: items[1].size: expected an integer (got string "big")"#,
                "t.toml: items[2].size: must be >= 0 (got -3)",
                "t.toml: items[2].extra: unknown field (expected size)",
                "t.toml: items[3]: expected a table (got integer 7)",
                r#"t.toml: inner.on: expected a boolean (got string "yes")"#,
            ]
        );
        assert_eq!(doc.name, "ok");
        assert_eq!(doc.items.len(), 3);
        assert_eq!(doc.items[0].size, 1);
    }

    #[test]
    fn bad_scalar_elements_are_removed_and_reported_where_written() {
        #[derive(Debug, Default, Deserialize)]
        #[serde(default, deny_unknown_fields)]
        struct Numbers {
            list: Vec<u8>,
        }
        let table: Table = r#"list = [1, "x", 3, "y", 300, 5]"#
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        let (numbers, errors) = deserialize_all::<Numbers>("t.toml", table);
        let errors: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            errors,
            [
                r#"t.toml: list[1]: expected an integer (got string "x")"#,
                r#"t.toml: list[3]: expected an integer (got string "y")"#,
                "t.toml: list[4]: must be <= 255 (got 300)",
            ]
        );
        assert_eq!(numbers.list, [1, 3, 5]);
    }

    #[test]
    fn an_element_that_cannot_be_fixed_removes_its_array() {
        #[derive(Debug, Default, Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Strict {
            #[expect(dead_code, reason = "only its absence matters")]
            needed: u8,
        }
        #[derive(Debug, Default, Deserialize)]
        #[serde(default, deny_unknown_fields)]
        struct Doc {
            items: Vec<Strict>,
        }
        let table: Table = "items = [{ needed = 1 }, { other = 2 }]"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        let (doc, errors) = deserialize_all::<Doc>("t.toml", table);
        let errors: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            errors,
            [
                "t.toml: items[1].other: unknown field (expected needed)",
                "t.toml: items[1].needed: required",
            ]
        );
        assert!(doc.items.is_empty());
    }

    #[test]
    fn paths_nest_only_at_separators() {
        assert!(is_within("routes[2].class", "routes[2]"));
        assert!(is_within("routes[2]", "routes"));
        assert!(is_within("cache.ttl", "cache"));
        assert!(!is_within("cache_x", "cache"));
        assert!(!is_within("cache", "cache"));
    }
}
