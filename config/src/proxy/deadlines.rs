//! `[deadlines]`: the total time a request of each class may take, queueing included. Past
//! it the proxy answers from cache or fallback, or refuses, instead of waiting on.

use serde::{Deserialize, Serialize};

use super::routes::RouteClass;
use crate::duration::Duration;
use crate::validate::Validator;

/// Default `deadlines.display`: a citizen at a gate.
pub const DEFAULT_DEADLINE_DISPLAY: Duration = Duration::from_secs(1);
/// Default `deadlines.scan`: a scanner in a queue of people.
pub const DEFAULT_DEADLINE_SCAN: Duration = Duration::from_millis(500);
/// Default `deadlines.declare`.
pub const DEFAULT_DEADLINE_DECLARE: Duration = Duration::from_secs(2);
/// Default `deadlines.register`.
pub const DEFAULT_DEADLINE_REGISTER: Duration = Duration::from_secs(3);
/// Default `deadlines.other`.
pub const DEFAULT_DEADLINE_OTHER: Duration = Duration::from_secs(3);
/// Default `deadlines.static`.
pub const DEFAULT_DEADLINE_STATIC: Duration = Duration::from_secs(3);

/// `[deadlines]` of the proxy: one per class; a route's `deadline` overrides its class's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Deadlines {
    /// Default [`DEFAULT_DEADLINE_DISPLAY`].
    pub display: Duration,
    /// Default [`DEFAULT_DEADLINE_SCAN`].
    pub scan: Duration,
    /// Default [`DEFAULT_DEADLINE_DECLARE`].
    pub declare: Duration,
    /// Default [`DEFAULT_DEADLINE_REGISTER`].
    pub register: Duration,
    /// Default [`DEFAULT_DEADLINE_OTHER`].
    pub other: Duration,
    /// Default [`DEFAULT_DEADLINE_STATIC`].
    pub r#static: Duration,
}

impl Default for Deadlines {
    fn default() -> Self {
        Self {
            display: DEFAULT_DEADLINE_DISPLAY,
            scan: DEFAULT_DEADLINE_SCAN,
            declare: DEFAULT_DEADLINE_DECLARE,
            register: DEFAULT_DEADLINE_REGISTER,
            other: DEFAULT_DEADLINE_OTHER,
            r#static: DEFAULT_DEADLINE_STATIC,
        }
    }
}

impl Deadlines {
    /// The deadline of `class`.
    pub fn for_class(&self, class: RouteClass) -> Duration {
        match class {
            RouteClass::Display => self.display,
            RouteClass::Scan => self.scan,
            RouteClass::Declare => self.declare,
            RouteClass::Register => self.register,
            RouteClass::Other => self.other,
            RouteClass::Static => self.r#static,
        }
    }

    pub(crate) fn check(&self, v: &mut Validator<'_>) {
        for &class in RouteClass::ALL {
            v.positive(&format!("deadlines.{class}"), self.for_class(class));
        }
    }
}
