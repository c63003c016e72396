//! The route table: which requests belong to which class. The class decides what the proxy
//! does when the origin cannot take a request (see DESIGN.md, "A request's way through the
//! proxy").

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::duration::Duration;
use crate::string_enum::string_enum;
use crate::validate::Validator;

string_enum! {
    /// A request class.
    pub enum RouteClass as "class" {
        /// Showing a citizen's code: cache, origin, fallback issuer, "unknown" page.
        Display = "display",
        /// A venue scanner verifying a code: verified at the edge when needed.
        Scan = "scan",
        /// A daily health declaration: journalled and replayed when the origin is busy.
        Declare = "declare",
        /// Registration and login: the waiting room.
        Register = "register",
        /// Everything else: passed through under admission, shed with 503.
        Other = "other",
        /// Static assets: an ordinary shared cache.
        Static = "static",
    }
}

string_enum! {
    /// The HTTP method a route matches; `ANY` (the default) matches all.
    #[derive(Default)]
    pub enum Method as "method" {
        /// GET.
        Get = "GET",
        /// HEAD.
        Head = "HEAD",
        /// POST.
        Post = "POST",
        /// PUT.
        Put = "PUT",
        /// PATCH.
        Patch = "PATCH",
        /// DELETE.
        Delete = "DELETE",
        /// Any method.
        #[default]
        Any = "ANY",
    }
}

impl Method {
    /// Whether a request with `method` (as on the wire, e.g. `"GET"`) matches.
    pub fn matches(self, method: &str) -> bool {
        self == Self::Any || self.as_str() == method
    }

    fn covers(self, other: Self) -> bool {
        self == Self::Any || self == other
    }
}

/// A path pattern: exact (`/api/code`) or a prefix ending in `*` (`/static/*`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RoutePattern(String);

impl RoutePattern {
    /// For the built-in tables, whose patterns a test checks.
    fn known(pattern: &str) -> Self {
        Self(pattern.to_owned())
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The prefix before `*` for a prefix pattern, `None` for an exact one.
    pub fn prefix(&self) -> Option<&str> {
        self.0.strip_suffix('*')
    }

    /// Whether a request path (without query) matches.
    pub fn matches(&self, path: &str) -> bool {
        match self.prefix() {
            Some(prefix) => path.starts_with(prefix),
            None => path == self.0,
        }
    }

    /// Whether every path `other` matches is matched by `self` too.
    pub fn covers(&self, other: &Self) -> bool {
        match (self.prefix(), other.prefix()) {
            (Some(prefix), Some(other)) => other.starts_with(prefix),
            (Some(prefix), None) => other.0.starts_with(prefix),
            (None, Some(_)) => false,
            (None, None) => self.0 == other.0,
        }
    }
}

impl fmt::Display for RoutePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A string that is not a route pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidRoutePattern(String, &'static str);

impl fmt::Display for InvalidRoutePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid path pattern {:?}: {}", self.0, self.1)
    }
}

impl std::error::Error for InvalidRoutePattern {}

impl FromStr for RoutePattern {
    type Err = InvalidRoutePattern;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |why| Err(InvalidRoutePattern(s.to_owned(), why));
        if !s.starts_with('/') {
            return bad(r#"must start with "/""#);
        }
        if s.trim_end_matches('*').contains('*') || s.ends_with("**") {
            return bad(r#"only a single trailing "*" is allowed"#);
        }
        if s.contains(|c: char| c.is_whitespace() || c.is_control() || c == '?' || c == '#') {
            return bad("must not contain whitespace, '?' or '#'");
        }
        Ok(Self(s.to_owned()))
    }
}

crate::text::serde_via_str!(RoutePattern, r#"a path such as "/api/code" or "/static/*""#);

/// One `[[routes]]` entry. Routes are tried in order; the first match wins; a request that
/// matches none is `other`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Route {
    /// The method to match. Default `ANY`.
    pub method: Method,
    /// The path pattern. Required; `validate` guarantees it is set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<RoutePattern>,
    /// The class of matching requests. Required; `validate` guarantees it is set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub class: Option<RouteClass>,
    /// Total deadline for matching requests; default the class's `[deadlines]` entry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deadline: Option<Duration>,
}

/// The route table used when a file has no `[[routes]]` (a file's routes replace it whole):
/// method, path, class.
pub const DEFAULT_ROUTES: &[(Method, &str, RouteClass)] = &[
    (Method::Get, "/api/code", RouteClass::Display),
    (Method::Get, "/code", RouteClass::Display),
    (Method::Post, "/api/verify", RouteClass::Scan),
    (Method::Post, "/api/declare", RouteClass::Declare),
    (Method::Post, "/api/register", RouteClass::Register),
    (Method::Post, "/api/login", RouteClass::Register),
    (Method::Get, "/register", RouteClass::Register),
    (Method::Any, "/static/*", RouteClass::Static),
];

/// [`DEFAULT_ROUTES`] as routes.
pub fn default_routes() -> Vec<Route> {
    DEFAULT_ROUTES
        .iter()
        .map(|&(method, path, class)| Route {
            method,
            path: Some(RoutePattern::known(path)),
            class: Some(class),
            deadline: None,
        })
        .collect()
}

/// Paths that need no session token, by default (`[identity] anonymous`).
pub const DEFAULT_ANONYMOUS: &[&str] = &[
    "/api/login",
    "/api/register",
    "/api/verify",
    "/register",
    "/static/*",
    "/.well-known/*",
];

/// [`DEFAULT_ANONYMOUS`] as patterns.
pub fn default_anonymous() -> Vec<RoutePattern> {
    DEFAULT_ANONYMOUS
        .iter()
        .map(|p| RoutePattern::known(p))
        .collect()
}

/// Every route needs a path and a class, a non-zero deadline, and must be reachable: no
/// earlier route may match everything it matches.
pub(crate) fn check_routes(routes: &[Route], v: &mut Validator<'_>) {
    for (i, route) in routes.iter().enumerate() {
        let at = |field: &str| format!("routes[{i}].{field}");
        if route.path.is_none() {
            v.error(&at("path"), r#"required (e.g. path = "/api/code")"#);
        }
        if route.class.is_none() {
            v.error(
                &at("class"),
                format_args!("required (one of {})", RouteClass::NAMES.join(", ")),
            );
        }
        if let Some(deadline) = route.deadline {
            v.positive(&at("deadline"), deadline);
        }
        let Some(path) = &route.path else { continue };
        let shadow = routes[..i].iter().enumerate().find(|(_, earlier)| {
            earlier.method.covers(route.method)
                && earlier.path.as_ref().is_some_and(|p| p.covers(path))
        });
        if let Some((j, earlier)) = shadow {
            let earlier_path = earlier.path.as_ref().map_or("", RoutePattern::as_str);
            let message = if earlier.method == route.method && earlier_path == path.as_str() {
                format!(
                    "duplicate route {} {path} (same as routes[{j}])",
                    route.method
                )
            } else {
                format!(
                    "unreachable route {} {path}: routes[{j}] ({} {earlier_path}) matches first",
                    route.method, earlier.method
                )
            };
            v.error_related(&at("path"), &[&format!("routes[{j}]")], message);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_patterns_are_valid() {
        for &(_, path, _) in DEFAULT_ROUTES {
            assert_eq!(
                path.parse::<RoutePattern>().map(|p| p.0),
                Ok(path.to_owned())
            );
        }
        for path in DEFAULT_ANONYMOUS {
            assert!(path.parse::<RoutePattern>().is_ok(), "{path}");
        }
    }

    #[test]
    fn patterns_match_and_cover() {
        let p = |s: &str| RoutePattern::known(s);
        assert!(p("/static/*").matches("/static/app.js"));
        assert!(!p("/static/*").matches("/static"));
        assert!(p("/api/code").matches("/api/code"));
        assert!(!p("/api/code").matches("/api/code/x"));
        assert!(p("/api/*").covers(&p("/api/code")));
        assert!(p("/*").covers(&p("/api/*")));
        assert!(!p("/api/code").covers(&p("/api/*")));
    }

    #[test]
    fn patterns_reject_bad_shapes() {
        for (bad, why) in [
            ("api", r#"must start with "/""#),
            ("/a*/b", r#"only a single trailing "*" is allowed"#),
            ("/a**", r#"only a single trailing "*" is allowed"#),
            ("/a b", "must not contain whitespace, '?' or '#'"),
        ] {
            assert_eq!(
                bad.parse::<RoutePattern>().err().map(|e| e.to_string()),
                Some(format!("invalid path pattern {bad:?}: {why}"))
            );
        }
    }

    #[test]
    fn methods_match() {
        assert!(Method::Any.matches("PATCH"));
        assert!(Method::Get.matches("GET"));
        assert!(!Method::Get.matches("POST"));
    }
}
