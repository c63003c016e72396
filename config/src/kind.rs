//! The three kinds of config file, one per long-running subcommand.

crate::string_enum::string_enum! {
    /// Which program a config file is for; also the optional top-level `kind` key.
    pub enum Kind as "kind" {
        /// `shouhu proxy`: the gateway.
        Proxy = "proxy",
        /// `shouhu issuer`: the standalone fallback issuer.
        Issuer = "issuer",
        /// `shouhu origin`: the reference code-issuing system.
        Origin = "origin",
    }
}

impl Kind {
    /// `a proxy`, `an issuer`, `an origin`: for messages.
    pub(crate) fn with_article(self) -> &'static str {
        match self {
            Self::Proxy => "a proxy",
            Self::Issuer => "an issuer",
            Self::Origin => "an origin",
        }
    }

    /// The kind whose name appears in a file stem such as `shouhu-proxy` or `origin.prod`,
    /// if exactly one does.
    pub(crate) fn from_file_stem(stem: &str) -> Option<Self> {
        let stem = stem.to_ascii_lowercase();
        let mut found = Self::ALL.iter().filter(|kind| stem.contains(kind.as_str()));
        match (found.next(), found.next()) {
            (Some(&kind), None) => Some(kind),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_stems_name_a_kind_only_when_unambiguous() {
        assert_eq!(Kind::from_file_stem("proxy"), Some(Kind::Proxy));
        assert_eq!(
            Kind::from_file_stem("shouhu-Issuer.prod"),
            Some(Kind::Issuer)
        );
        assert_eq!(Kind::from_file_stem("origin-behind-proxy"), None);
        assert_eq!(Kind::from_file_stem("shouhu"), None);
    }
}
