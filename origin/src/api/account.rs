//! Registration and login.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use shouhu_code::SubjectId;
use shouhu_code::time::{format_rfc3339, now};

use super::{SESSION_COOKIE, parse_json};
use crate::app::App;
use crate::error::ApiError;
use crate::store::Person;
use crate::validate;

#[derive(Deserialize)]
struct RegisterRequest {
    name: String,
    id_number: String,
    phone: String,
    address: String,
}

#[derive(Serialize)]
struct RegisterResponse {
    subject: SubjectId,
    masked_name: String,
    id_last4: String,
    created: bool,
}

pub(super) async fn register(
    State(app): State<Arc<App>>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let req: RegisterRequest = parse_json(&body)?;
    let id = validate::id_number(&req.id_number)?;
    let phone = validate::phone(&req.phone)?;
    let name = validate::name(&req.name)?;
    let address = validate::address(&req.address)?;
    let subject = app.hasher.subject(&id);
    let person = Person {
        subject,
        phone_hash: app.hasher.phone_hash(&phone),
        masked_name: validate::mask_name(&name),
        id_last4: id.last4().to_owned(),
        region: id.region().to_owned(),
        address,
    };
    let created = app
        .store
        .register(person, now())
        .await
        .map_err(ApiError::internal)?;
    let stored = app
        .store
        .person(subject)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::internal("registered person not found"))?;
    if created {
        tracing::info!(%subject, "registered");
        // Colour the new person now, so the snapshot knows them before they ask.
        let _ = app.recolour.try_send(subject);
    }
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(RegisterResponse {
            subject,
            masked_name: stored.masked_name,
            id_last4: stored.id_last4,
            created,
        }),
    )
        .into_response())
}

#[derive(Deserialize)]
struct LoginRequest {
    id_number: String,
    phone: String,
}

#[derive(Serialize)]
struct LoginResponse {
    token: String,
    expires_at: String,
    subject: SubjectId,
}

pub(super) async fn login(State(app): State<Arc<App>>, body: Bytes) -> Result<Response, ApiError> {
    let req: LoginRequest = parse_json(&body)?;
    let id = validate::id_number(&req.id_number)?;
    let phone = validate::phone(&req.phone)?;
    let subject = app.hasher.subject(&id);
    let person = app
        .store
        .person(subject)
        .await
        .map_err(ApiError::internal)?
        .ok_or(ApiError::UnknownPerson)?;
    if person.phone_hash != app.hasher.phone_hash(&phone) {
        return Err(ApiError::UnknownPerson);
    }
    let (token, exp) = app.sessions.issue(subject, now(), app.session_ttl)?;
    let cookie = format!(
        "{SESSION_COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}",
        app.session_ttl
    );
    Ok((
        [(header::SET_COOKIE, cookie)],
        Json(LoginResponse {
            token,
            expires_at: format_rfc3339(exp),
            subject,
        }),
    )
        .into_response())
}
