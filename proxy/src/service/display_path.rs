//! The seam between the Pingora service and the display path: the service asks "what is
//! this subject's answer?" and writes it. A trait, so the service can also run with
//! `display` passed through (no display path) and be tested with a stand-in.

use crate::display::{Display, DisplayRequest, DisplayResponse};

/// Answers `display` requests of verified subjects.
#[async_trait::async_trait]
pub trait DisplayPath: Send + Sync {
    /// The answer to `req`, within the display deadline.
    async fn serve(&self, req: DisplayRequest<'_>) -> DisplayResponse;
}

#[async_trait::async_trait]
impl DisplayPath for Display {
    async fn serve(&self, req: DisplayRequest<'_>) -> DisplayResponse {
        Display::serve(self, req).await
    }
}
