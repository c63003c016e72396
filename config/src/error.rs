//! The error every loader and validator reports: file, field path, rule and value.

use std::fmt;

/// One mistake in one config file.
///
/// Displays as `{file}: {path}: {message}`, or `{file}: {message}` for a mistake that
/// belongs to the whole file (unreadable, bad TOML syntax, unknown kind).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// The file as the user named it, or a display name such as `(no config file)`.
    pub file: String,
    /// The field path, like `routes[2].class`; empty for file-level mistakes.
    pub path: String,
    /// What is wrong: the rule and the offending value.
    pub message: String,
}

impl ConfigError {
    /// A mistake at `path` (empty for the whole file).
    pub fn new(
        file: impl Into<String>,
        path: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            file: file.into(),
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}: {}", self.file, self.message)
        } else {
            write!(f, "{}: {}: {}", self.file, self.path, self.message)
        }
    }
}

impl std::error::Error for ConfigError {}

/// All mistakes found in a config file, in the order they were found (parse errors first,
/// in file order, then rule violations). Never empty when returned by a loader.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConfigErrors(Vec<ConfigError>);

impl ConfigErrors {
    /// The mistakes, in order.
    pub fn iter(&self) -> std::slice::Iter<'_, ConfigError> {
        self.0.iter()
    }

    /// How many mistakes there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Adds one mistake.
    pub fn push(&mut self, error: ConfigError) {
        self.0.push(error);
    }

    /// The mistakes as a vector.
    pub fn into_vec(self) -> Vec<ConfigError> {
        self.0
    }

    /// `Ok(())` when there are no mistakes, else `Err(self)`.
    ///
    /// # Errors
    ///
    /// Returns `self` when it holds at least one mistake.
    pub fn into_result(self) -> Result<(), Self> {
        if self.0.is_empty() { Ok(()) } else { Err(self) }
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl From<ConfigError> for ConfigErrors {
    fn from(error: ConfigError) -> Self {
        Self(vec![error])
    }
}

impl From<Vec<ConfigError>> for ConfigErrors {
    fn from(errors: Vec<ConfigError>) -> Self {
        Self(errors)
    }
}

impl IntoIterator for ConfigErrors {
    type Item = ConfigError;
    type IntoIter = std::vec::IntoIter<ConfigError>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a> IntoIterator for &'a ConfigErrors {
    type Item = &'a ConfigError;
    type IntoIter = std::slice::Iter<'a, ConfigError>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_with_and_without_path() {
        let field = ConfigError::new("x.toml", "cache.max_entries", "must be >= 1 (got 0)");
        let file = ConfigError::new("x.toml", "", "cannot read: gone");
        assert_eq!(
            field.to_string(),
            "x.toml: cache.max_entries: must be >= 1 (got 0)"
        );
        assert_eq!(file.to_string(), "x.toml: cannot read: gone");
        let all = ConfigErrors::from(vec![field, file]);
        assert_eq!(
            all.to_string(),
            "x.toml: cache.max_entries: must be >= 1 (got 0)\nx.toml: cannot read: gone"
        );
        assert_eq!(all.iter().count(), 2);
    }
}
