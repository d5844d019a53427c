//! Managing users and tokens, the same way from the CLI and from the admin API: input
//! checked, secrets hashed, the change stored and written to the audit trail.

use crate::access::{NewToken, NewUser, Token, User, UserChange, event};
use crate::credentials;
use crate::{Store, StoreError};
use ferry_core::access::{validate_name, validate_password};
use ferry_core::{Role, Timestamp};
use serde_json::json;

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// The input breaks a rule; the message says which.
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Taken(String),
    #[error("{0}")]
    NotFound(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Who makes a change, for the audit trail.
#[derive(Debug, Clone)]
pub struct ChangedBy {
    pub actor: String,
    pub origin: Option<String>,
}

async fn hash(password: String) -> Result<String, AccountError> {
    tokio::task::spawn_blocking(move || credentials::hash_password(&password))
        .await
        .map_err(|e| AccountError::Invalid(format!("could not hash the password: {e}")))?
        .map_err(AccountError::Invalid)
}

pub async fn add_user(
    store: &dyn Store,
    by: &ChangedBy,
    name: &str,
    role: Role,
    password: &str,
) -> Result<User, AccountError> {
    validate_name("user", name).map_err(AccountError::Invalid)?;
    validate_password(password).map_err(AccountError::Invalid)?;
    let user = NewUser {
        name: name.to_owned(),
        role,
        password_hash: hash(password.to_owned()).await?,
        at: Timestamp::now(),
    };
    if !store.add_user(&user).await? {
        return Err(AccountError::Taken(format!(
            "a user called '{name}' exists; change it with 'set-role', or pick another name"
        )));
    }
    audit(store, by, "user.add", json!({"user": name, "role": role})).await?;
    Ok(User {
        name: user.name,
        role,
        disabled: false,
        created_at: user.at,
        updated_at: user.at,
    })
}

/// Changes a user's role, enabled state or password; answers the user as it is now.
pub async fn change_user(
    store: &dyn Store,
    by: &ChangedBy,
    name: &str,
    role: Option<Role>,
    disabled: Option<bool>,
    password: Option<&str>,
) -> Result<User, AccountError> {
    let password_hash = match password {
        Some(p) => {
            validate_password(p).map_err(AccountError::Invalid)?;
            Some(hash(p.to_owned()).await?)
        }
        None => None,
    };
    if role.is_none() && disabled.is_none() && password_hash.is_none() {
        return Err(AccountError::Invalid(
            "nothing to change: give a role, disabled, or a password".into(),
        ));
    }
    let change = UserChange {
        role,
        disabled,
        password_hash,
    };
    let user = store
        .change_user(name, &change, Timestamp::now())
        .await?
        .ok_or_else(|| AccountError::NotFound(format!("no user is called '{name}'")))?;
    let mut what = json!({"user": name});
    if let Some(role) = role {
        what["role"] = json!(role);
    }
    if let Some(disabled) = disabled {
        what["disabled"] = json!(disabled);
    }
    if password.is_some() {
        what["password"] = json!("changed");
    }
    audit(store, by, "user.change", what).await?;
    Ok(user)
}

/// Creates a token; answers it with its secret, which is shown this once.
pub async fn create_token(
    store: &dyn Store,
    by: &ChangedBy,
    name: &str,
    role: Role,
) -> Result<(Token, String), AccountError> {
    validate_name("token", name).map_err(AccountError::Invalid)?;
    let secret = credentials::new_token();
    let token = NewToken {
        name: name.to_owned(),
        role,
        digest: credentials::digest(&secret),
        created_by: by.actor.clone(),
        at: Timestamp::now(),
    };
    if !store.add_token(&token).await? {
        return Err(AccountError::Taken(format!(
            "a token called '{name}' exists (revoked tokens keep their names); pick another name"
        )));
    }
    audit(
        store,
        by,
        "token.create",
        json!({"token": name, "role": role}),
    )
    .await?;
    let listed = Token {
        name: token.name,
        role,
        created_by: token.created_by,
        created_at: token.at,
        revoked_at: None,
    };
    Ok((listed, secret))
}

pub async fn revoke_token(
    store: &dyn Store,
    by: &ChangedBy,
    name: &str,
) -> Result<(), AccountError> {
    if !store.revoke_token(name, Timestamp::now()).await? {
        return Err(AccountError::NotFound(format!(
            "no live token is called '{name}'; 'ferry tokens list' shows them"
        )));
    }
    audit(store, by, "token.revoke", json!({"token": name})).await
}

async fn audit(
    store: &dyn Store,
    by: &ChangedBy,
    action: &str,
    target: serde_json::Value,
) -> Result<(), AccountError> {
    store
        .record_event(&event(&by.actor, action, by.origin.clone(), target))
        .await?;
    Ok(())
}
