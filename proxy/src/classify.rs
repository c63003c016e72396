//! A request's class, deadline and whether it needs a session, decided once from the route
//! table (`[[routes]]`, `[deadlines]`, `[identity] anonymous`) before anything else runs.

use std::time::Duration;

use shouhu_config::ProxyConfig;
use shouhu_config::proxy::{RouteClass, RoutePattern};

/// Every class, in metric-label order.
pub const CLASSES: &[RouteClass] = RouteClass::ALL;

/// What the route table says about one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Classified {
    /// The class of the first matching route, `other` when none matches.
    pub class: RouteClass,
    /// The total time the request may take.
    pub deadline: Duration,
    /// Whether the path is listed in `[identity] anonymous`: no session is checked.
    pub anonymous: bool,
    /// Whether the answer is JSON (an `/api/` path) rather than a page.
    pub json: bool,
}

/// The route table and the anonymous paths, kept from the config.
#[derive(Clone, Debug)]
pub struct Classifier {
    config: ProxyConfig,
    anonymous: Vec<RoutePattern>,
}

impl Classifier {
    /// The classifier of `config`.
    #[must_use]
    pub fn new(config: &ProxyConfig) -> Self {
        Self {
            config: config.clone(),
            anonymous: config.identity.anonymous.clone(),
        }
    }

    /// Classifies a request by method (as on the wire) and path (without the query).
    #[must_use]
    pub fn classify(&self, method: &str, path: &str) -> Classified {
        let (class, deadline) = self.config.classify(method, path);
        Classified {
            class,
            deadline: deadline.into(),
            anonymous: self.anonymous.iter().any(|p| p.matches(path)),
            json: path.starts_with("/api/") || path.starts_with("/.well-known/"),
        }
    }
}

/// The index of `class` in [`CLASSES`], for pre-resolved metric handles.
#[must_use]
pub fn class_index(class: RouteClass) -> usize {
    CLASSES.iter().position(|c| *c == class).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_table_classifies_the_origin_api() {
        let c = Classifier::new(&ProxyConfig::default());
        let code = c.classify("GET", "/api/code");
        assert_eq!(code.class, RouteClass::Display);
        assert!(!code.anonymous);
        assert!(code.json);
        let page = c.classify("GET", "/code");
        assert_eq!(page.class, RouteClass::Display);
        assert!(!page.json);
        let login = c.classify("POST", "/api/login");
        assert_eq!(login.class, RouteClass::Register);
        assert!(login.anonymous);
        let scan = c.classify("POST", "/api/verify");
        assert_eq!(scan.class, RouteClass::Scan);
        assert!(scan.anonymous);
        let explain = c.classify("GET", "/api/code/explain");
        assert_eq!(explain.class, RouteClass::Other);
        assert!(!explain.anonymous);
        assert!(
            c.classify("GET", "/.well-known/shouhu/session-key")
                .anonymous
        );
        assert_eq!(
            c.classify("GET", "/api/code").deadline,
            Duration::from(shouhu_config::proxy::DEFAULT_DEADLINE_DISPLAY)
        );
    }

    #[test]
    fn every_class_has_an_index() {
        for (i, class) in CLASSES.iter().enumerate() {
            assert_eq!(class_index(*class), i);
        }
    }
}
