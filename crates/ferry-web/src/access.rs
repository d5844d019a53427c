//! `/api/v1/users` and `/api/v1/tokens`: managing who may come in (admin role only).

use crate::AppState;
use crate::auth::Caller;
use crate::body;
use crate::error::{ApiError, ApiResult};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, patch};
use axum::{Extension, Json, Router};
use ferry_core::Role;
use ferry_store::accounts::{self, AccountError};
use ferry_store::{Token, User};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/users", get(list_users).post(add_user))
        .route("/api/v1/users/{name}", patch(change_user))
        .route("/api/v1/tokens", get(list_tokens).post(create_token))
        .route("/api/v1/tokens/{name}", delete(revoke_token))
}

#[derive(Serialize, Deserialize, ToSchema, Debug)]
pub struct UserDto {
    pub name: String,
    #[schema(example = "operator")]
    pub role: String,
    pub disabled: bool,
    pub created_at: String,
    pub updated_at: String,
}

impl From<User> for UserDto {
    fn from(u: User) -> Self {
        UserDto {
            name: u.name,
            role: u.role.to_string(),
            disabled: u.disabled,
            created_at: u.created_at.to_rfc3339(),
            updated_at: u.updated_at.to_rfc3339(),
        }
    }
}

#[derive(Serialize, Deserialize, ToSchema, Debug)]
pub struct TokenDto {
    pub name: String,
    pub role: String,
    pub created_by: String,
    pub created_at: String,
    pub revoked_at: Option<String>,
}

impl From<Token> for TokenDto {
    fn from(t: Token) -> Self {
        TokenDto {
            name: t.name,
            role: t.role.to_string(),
            created_by: t.created_by,
            created_at: t.created_at.to_rfc3339(),
            revoked_at: t.revoked_at.map(|r| r.to_rfc3339()),
        }
    }
}

#[derive(Deserialize, ToSchema, Debug)]
#[serde(deny_unknown_fields)]
pub struct NewUserBody {
    pub name: String,
    /// viewer, operator or admin
    pub role: String,
    /// At least 10 characters.
    pub password: String,
}

#[derive(Deserialize, ToSchema, Debug, Default)]
#[serde(deny_unknown_fields)]
pub struct UserChangeBody {
    pub role: Option<String>,
    pub disabled: Option<bool>,
    pub password: Option<String>,
}

#[derive(Deserialize, ToSchema, Debug)]
#[serde(deny_unknown_fields)]
pub struct NewTokenBody {
    pub name: String,
    pub role: String,
}

#[derive(Serialize, Deserialize, ToSchema, Debug)]
pub struct CreatedToken {
    #[serde(flatten)]
    pub token: TokenDto,
    /// The bearer token. Shown this once: only its digest is kept.
    pub secret: String,
}

fn role(value: &str) -> ApiResult<Role> {
    Role::parse(value).map_err(|m| ApiError::bad_request("invalid_role", m))
}

fn account_error(e: AccountError) -> ApiError {
    match e {
        AccountError::Invalid(m) => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_account", m)
        }
        AccountError::Taken(m) => ApiError::conflict("name_taken", m),
        AccountError::NotFound(m) => ApiError::not_found("not_found", m),
        AccountError::Store(e) => e.into(),
    }
}

/// Every user, by name (admin).
#[utoipa::path(get, path = "/api/v1/users", tag = "access",
    responses((status = 200, body = Vec<UserDto>), (status = 401, body = crate::error::ErrorBody),
        (status = 403, body = crate::error::ErrorBody)))]
pub async fn list_users(State(state): State<AppState>) -> ApiResult<Json<Vec<UserDto>>> {
    let users = state.store().users().await?;
    Ok(Json(users.into_iter().map(UserDto::from).collect()))
}

/// Add a user (admin).
#[utoipa::path(post, path = "/api/v1/users", tag = "access", request_body = NewUserBody,
    responses((status = 201, body = UserDto), (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody),
        (status = 409, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)))]
pub async fn add_user(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<(StatusCode, Json<UserDto>)> {
    let bytes = body::bytes(body)?;
    let b: NewUserBody = body::json(&bytes)?;
    let by = caller.changed_by();
    let user = accounts::add_user(&**state.store(), &by, &b.name, role(&b.role)?, &b.password)
        .await
        .map_err(account_error)?;
    Ok((StatusCode::CREATED, Json(user.into())))
}

/// Change a user's role, disable or enable it, or set its password (admin). Disabling
/// or a new password ends the user's sessions at once.
#[utoipa::path(patch, path = "/api/v1/users/{name}", tag = "access", request_body = UserChangeBody,
    params(("name" = String, Path, description = "user name")),
    responses((status = 200, body = UserDto), (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)))]
pub async fn change_user(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<UserDto>> {
    let bytes = body::bytes(body)?;
    let b: UserChangeBody = body::json(&bytes)?;
    let new_role = b.role.as_deref().map(role).transpose()?;
    let by = caller.changed_by();
    let user = accounts::change_user(
        &**state.store(),
        &by,
        &name,
        new_role,
        b.disabled,
        b.password.as_deref(),
    )
    .await
    .map_err(account_error)?;
    Ok(Json(user.into()))
}

/// Every API token, revoked ones too (admin). Secrets are never shown again.
#[utoipa::path(get, path = "/api/v1/tokens", tag = "access",
    responses((status = 200, body = Vec<TokenDto>), (status = 401, body = crate::error::ErrorBody),
        (status = 403, body = crate::error::ErrorBody)))]
pub async fn list_tokens(State(state): State<AppState>) -> ApiResult<Json<Vec<TokenDto>>> {
    let tokens = state.store().tokens().await?;
    Ok(Json(tokens.into_iter().map(TokenDto::from).collect()))
}

/// Create an API token with a role (admin); the answer holds the secret, once.
#[utoipa::path(post, path = "/api/v1/tokens", tag = "access", request_body = NewTokenBody,
    responses((status = 201, body = CreatedToken), (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody),
        (status = 409, body = crate::error::ErrorBody), (status = 422, body = crate::error::ErrorBody)))]
pub async fn create_token(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<(StatusCode, Json<CreatedToken>)> {
    let bytes = body::bytes(body)?;
    let b: NewTokenBody = body::json(&bytes)?;
    let by = caller.changed_by();
    let (token, secret) = accounts::create_token(&**state.store(), &by, &b.name, role(&b.role)?)
        .await
        .map_err(account_error)?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedToken {
            token: token.into(),
            secret,
        }),
    ))
}

/// Revoke an API token (admin); it stops working at once, on every node.
#[utoipa::path(delete, path = "/api/v1/tokens/{name}", tag = "access",
    params(("name" = String, Path, description = "token name")),
    responses((status = 204, description = "revoked"), (status = 401, body = crate::error::ErrorBody),
        (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub async fn revoke_token(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    let by = caller.changed_by();
    accounts::revoke_token(&**state.store(), &by, &name)
        .await
        .map_err(account_error)?;
    Ok(StatusCode::NO_CONTENT)
}
