//! Users, API tokens and web sessions: the part of the store that says who may come in.
//!
//! The statements are built once with sea-query and run on either backend; the
//! [`access_store!`] macro writes the same implementation for each backend's pool.
//! Only digests of tokens and session ids are stored (see [`crate::credentials`]).

use crate::rows::Columns;
use crate::store::{ActionRecord, StoreError};
use async_trait::async_trait;
use ferry_core::{Role, Timestamp};
use sea_query::{Expr, ExprTrait, OnConflict, Order, Query};

/// A user as listed (never with its password hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub role: Role,
    pub disabled: bool,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUser {
    pub name: String,
    pub role: Role,
    pub password_hash: String,
    pub at: Timestamp,
}

/// What to change about a user; `None` leaves it as it is.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UserChange {
    pub role: Option<Role>,
    pub disabled: Option<bool>,
    pub password_hash: Option<String>,
}

/// An API token as listed (never with its digest).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub name: String,
    pub role: Role,
    pub created_by: String,
    pub created_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewToken {
    pub name: String,
    pub role: Role,
    /// SHA-256 of the token, hex.
    pub digest: String,
    pub created_by: String,
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSession {
    /// SHA-256 of the session id the browser holds, hex.
    pub digest: String,
    pub user: String,
    pub csrf: String,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}

/// A live session with its user's current role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub user: String,
    pub role: Role,
    pub csrf: String,
    pub expires_at: Timestamp,
}

/// Who may come in. Part of every [`crate::Store`]; covered by the conformance suite.
#[async_trait]
pub trait AccessStore {
    /// Adds a user; false when the name is taken.
    async fn add_user(&self, user: &NewUser) -> Result<bool, StoreError>;

    /// Every user, by name.
    async fn users(&self) -> Result<Vec<User>, StoreError>;

    /// A user with its password hash, to check a sign-in.
    async fn user_credentials(&self, name: &str) -> Result<Option<(User, String)>, StoreError>;

    /// Changes a user; disabling it or changing its password ends its sessions.
    /// `None` when there is no such user.
    async fn change_user(
        &self,
        name: &str,
        change: &UserChange,
        at: Timestamp,
    ) -> Result<Option<User>, StoreError>;

    /// Adds a token; false when the name is taken (revoked tokens keep their names).
    async fn add_token(&self, token: &NewToken) -> Result<bool, StoreError>;

    /// Every token, revoked ones too, by name.
    async fn tokens(&self) -> Result<Vec<Token>, StoreError>;

    /// The unrevoked token with this digest.
    async fn token_by_digest(&self, digest: &str) -> Result<Option<Token>, StoreError>;

    /// Revokes a token at once; false when no unrevoked token has the name.
    async fn revoke_token(&self, name: &str, at: Timestamp) -> Result<bool, StoreError>;

    /// Whether anyone can get in: an enabled user or an unrevoked token exists.
    async fn has_credentials(&self) -> Result<bool, StoreError>;

    /// Starts a session (and forgets sessions that expired).
    async fn add_session(&self, session: &NewSession) -> Result<(), StoreError>;

    /// The unexpired session with this digest, of an enabled user.
    async fn session(&self, digest: &str, now: Timestamp) -> Result<Option<Session>, StoreError>;

    async fn end_session(&self, digest: &str) -> Result<(), StoreError>;

    /// Appends a sign-in, user or token event to the audit trail; answers its id.
    async fn record_event(&self, event: &ActionRecord) -> Result<i64, StoreError>;
}

// ------------------------------------------------------------------ statements

pub(crate) mod sql {
    use super::*;
    use sea_query::{DeleteStatement, InsertStatement, SelectStatement, UpdateStatement};

    const USER_COLUMNS: [&str; 5] = ["name", "role", "disabled", "created_at", "updated_at"];
    const TOKEN_COLUMNS: [&str; 5] = ["name", "role", "created_by", "created_at", "revoked_at"];

    pub fn insert_user(u: &NewUser) -> InsertStatement {
        Query::insert()
            .into_table("users")
            .columns([
                "name",
                "password_hash",
                "role",
                "disabled",
                "created_at",
                "updated_at",
            ])
            .values_panic([
                u.name.clone().into(),
                u.password_hash.clone().into(),
                u.role.as_str().into(),
                0i64.into(),
                u.at.millis().into(),
                u.at.millis().into(),
            ])
            // The name, or the name in another case (users_name_folded), is taken.
            .on_conflict(OnConflict::new().do_nothing().to_owned())
            .to_owned()
    }

    pub fn users(name: Option<&str>) -> SelectStatement {
        let mut s = Query::select()
            .columns(USER_COLUMNS)
            .column("password_hash")
            .from("users")
            .order_by("name", Order::Asc)
            .to_owned();
        if let Some(name) = name {
            // Either case finds the user (users_name_folded keeps names unique so).
            s.and_where(
                Expr::expr(sea_query::Func::lower(Expr::col("name")))
                    .eq(sea_query::Func::lower(Expr::val(name))),
            );
        }
        s
    }

    pub fn update_user(name: &str, c: &UserChange, at: Timestamp) -> UpdateStatement {
        let mut u = Query::update()
            .table("users")
            .value("updated_at", at.millis())
            .and_where(Expr::col("name").eq(name))
            .to_owned();
        if let Some(role) = c.role {
            u.value("role", role.as_str());
        }
        if let Some(disabled) = c.disabled {
            u.value("disabled", i64::from(disabled));
        }
        if let Some(hash) = &c.password_hash {
            u.value("password_hash", hash.clone());
        }
        u
    }

    pub fn end_user_sessions(name: &str) -> DeleteStatement {
        Query::delete()
            .from_table("sessions")
            .and_where(Expr::col("user_name").eq(name))
            .to_owned()
    }

    pub fn insert_token(t: &NewToken) -> InsertStatement {
        Query::insert()
            .into_table("api_tokens")
            .columns(["name", "digest", "role", "created_by", "created_at"])
            .values_panic([
                t.name.clone().into(),
                t.digest.clone().into(),
                t.role.as_str().into(),
                t.created_by.clone().into(),
                t.at.millis().into(),
            ])
            .on_conflict(OnConflict::column("name").do_nothing().to_owned())
            .to_owned()
    }

    pub fn tokens() -> SelectStatement {
        Query::select()
            .columns(TOKEN_COLUMNS)
            .from("api_tokens")
            .order_by("name", Order::Asc)
            .to_owned()
    }

    pub fn token_by_digest(digest: &str) -> SelectStatement {
        Query::select()
            .columns(TOKEN_COLUMNS)
            .from("api_tokens")
            .and_where(Expr::col("digest").eq(digest))
            .and_where(Expr::col("revoked_at").is_null())
            .to_owned()
    }

    pub fn revoke_token(name: &str, at: Timestamp) -> UpdateStatement {
        Query::update()
            .table("api_tokens")
            .value("revoked_at", at.millis())
            .and_where(Expr::col("name").eq(name))
            .and_where(Expr::col("revoked_at").is_null())
            .to_owned()
    }

    /// A row when an enabled user exists, and a row when an unrevoked token does.
    pub fn credentials_exist() -> [SelectStatement; 2] {
        [
            Query::select()
                .expr(Expr::val(1))
                .from("users")
                .and_where(Expr::col("disabled").eq(0))
                .limit(1)
                .to_owned(),
            Query::select()
                .expr(Expr::val(1))
                .from("api_tokens")
                .and_where(Expr::col("revoked_at").is_null())
                .limit(1)
                .to_owned(),
        ]
    }

    pub fn insert_session(s: &NewSession) -> InsertStatement {
        Query::insert()
            .into_table("sessions")
            .columns(["digest", "user_name", "csrf", "created_at", "expires_at"])
            .values_panic([
                s.digest.clone().into(),
                s.user.clone().into(),
                s.csrf.clone().into(),
                s.created_at.millis().into(),
                s.expires_at.millis().into(),
            ])
            .to_owned()
    }

    pub fn expired_sessions(now: Timestamp) -> DeleteStatement {
        Query::delete()
            .from_table("sessions")
            .and_where(Expr::col("expires_at").lte(now.millis()))
            .to_owned()
    }

    pub fn session(digest: &str, now: Timestamp) -> SelectStatement {
        Query::select()
            .column(("s", "user_name"))
            .column(("u", "role"))
            .column(("s", "csrf"))
            .column(("s", "expires_at"))
            .from_as("sessions", "s")
            .join_as(
                sea_query::JoinType::InnerJoin,
                "users",
                "u",
                Expr::col(("u", "name")).equals(("s", "user_name")),
            )
            .and_where(Expr::col(("s", "digest")).eq(digest))
            .and_where(Expr::col(("s", "expires_at")).gt(now.millis()))
            .and_where(Expr::col(("u", "disabled")).eq(0))
            .to_owned()
    }

    pub fn end_session(digest: &str) -> DeleteStatement {
        Query::delete()
            .from_table("sessions")
            .and_where(Expr::col("digest").eq(digest))
            .to_owned()
    }
}

// ------------------------------------------------------------------ decoding

fn role(value: &str) -> Result<Role, StoreError> {
    Role::parse(value).map_err(StoreError::Corrupt)
}

pub(crate) fn user(row: &impl Columns) -> Result<User, StoreError> {
    Ok(User {
        name: row.text("name")?,
        role: role(&row.text("role")?)?,
        disabled: row.int("disabled")? != 0,
        created_at: Timestamp::from_millis(row.int("created_at")?),
        updated_at: Timestamp::from_millis(row.int("updated_at")?),
    })
}

pub(crate) fn token(row: &impl Columns) -> Result<Token, StoreError> {
    Ok(Token {
        name: row.text("name")?,
        role: role(&row.text("role")?)?,
        created_by: row.text("created_by")?,
        created_at: Timestamp::from_millis(row.int("created_at")?),
        revoked_at: row.opt_int("revoked_at")?.map(Timestamp::from_millis),
    })
}

pub(crate) fn session(row: &impl Columns) -> Result<Session, StoreError> {
    Ok(Session {
        user: row.text("user_name")?,
        role: role(&row.text("role")?)?,
        csrf: row.text("csrf")?,
        expires_at: Timestamp::from_millis(row.int("expires_at")?),
    })
}

/// A sea-query statement rendered for `$builder`, its values bound.
macro_rules! access_bound {
    ($stmt:expr, $builder:expr) => {{
        let (sql, values) = sea_query_sqlx::SqlxBinder::build_sqlx(&$stmt, $builder);
        sqlx::query_with(sqlx::AssertSqlSafe(sql), values)
    }};
}

/// Implements [`AccessStore`] for a backend: `$store` holds the pools named `$reader`
/// and `$writer` (the same pool where the backend has one), queried with `$builder`.
macro_rules! access_store {
    ($store:ty, $builder:expr, $reader:ident, $writer:ident) => {
        #[async_trait::async_trait]
        impl $crate::access::AccessStore for $store {
            async fn add_user(
                &self,
                user: &$crate::access::NewUser,
            ) -> Result<bool, $crate::StoreError> {
                let done =
                    $crate::access::access_bound!($crate::access::sql::insert_user(user), $builder)
                        .execute(&self.$writer)
                        .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn users(&self) -> Result<Vec<$crate::access::User>, $crate::StoreError> {
                $crate::access::access_bound!($crate::access::sql::users(None), $builder)
                    .fetch_all(&self.$reader)
                    .await?
                    .iter()
                    .map($crate::access::user)
                    .collect()
            }

            async fn user_credentials(
                &self,
                name: &str,
            ) -> Result<Option<($crate::access::User, String)>, $crate::StoreError> {
                let row =
                    $crate::access::access_bound!($crate::access::sql::users(Some(name)), $builder)
                        .fetch_optional(&self.$reader)
                        .await?;
                row.map(|r| {
                    Ok((
                        $crate::access::user(&r)?,
                        $crate::rows::Columns::text(&r, "password_hash")?,
                    ))
                })
                .transpose()
            }

            async fn change_user(
                &self,
                name: &str,
                change: &$crate::access::UserChange,
                at: ferry_core::Timestamp,
            ) -> Result<Option<$crate::access::User>, $crate::StoreError> {
                let mut tx = self.$writer.begin().await?;
                let changed = $crate::access::access_bound!(
                    $crate::access::sql::update_user(name, change, at),
                    $builder
                )
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if changed == 0 {
                    // At once: a dropped transaction rolls back only when its
                    // connection is next used, holding its locks until then.
                    tx.rollback().await?;
                    return Ok(None);
                }
                if change.disabled == Some(true) || change.password_hash.is_some() {
                    $crate::access::access_bound!(
                        $crate::access::sql::end_user_sessions(name),
                        $builder
                    )
                    .execute(&mut *tx)
                    .await?;
                }
                let row =
                    $crate::access::access_bound!($crate::access::sql::users(Some(name)), $builder)
                        .fetch_one(&mut *tx)
                        .await?;
                let user = $crate::access::user(&row)?;
                tx.commit().await?;
                Ok(Some(user))
            }

            async fn add_token(
                &self,
                token: &$crate::access::NewToken,
            ) -> Result<bool, $crate::StoreError> {
                let done = $crate::access::access_bound!(
                    $crate::access::sql::insert_token(token),
                    $builder
                )
                .execute(&self.$writer)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn tokens(&self) -> Result<Vec<$crate::access::Token>, $crate::StoreError> {
                $crate::access::access_bound!($crate::access::sql::tokens(), $builder)
                    .fetch_all(&self.$reader)
                    .await?
                    .iter()
                    .map($crate::access::token)
                    .collect()
            }

            async fn token_by_digest(
                &self,
                digest: &str,
            ) -> Result<Option<$crate::access::Token>, $crate::StoreError> {
                $crate::access::access_bound!(
                    $crate::access::sql::token_by_digest(digest),
                    $builder
                )
                .fetch_optional(&self.$reader)
                .await?
                .as_ref()
                .map($crate::access::token)
                .transpose()
            }

            async fn revoke_token(
                &self,
                name: &str,
                at: ferry_core::Timestamp,
            ) -> Result<bool, $crate::StoreError> {
                let done = $crate::access::access_bound!(
                    $crate::access::sql::revoke_token(name, at),
                    $builder
                )
                .execute(&self.$writer)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn has_credentials(&self) -> Result<bool, $crate::StoreError> {
                for stmt in $crate::access::sql::credentials_exist() {
                    let row = $crate::access::access_bound!(stmt, $builder)
                        .fetch_optional(&self.$reader)
                        .await?;
                    if row.is_some() {
                        return Ok(true);
                    }
                }
                Ok(false)
            }

            async fn add_session(
                &self,
                session: &$crate::access::NewSession,
            ) -> Result<(), $crate::StoreError> {
                let mut tx = self.$writer.begin().await?;
                $crate::access::access_bound!(
                    $crate::access::sql::expired_sessions(session.created_at),
                    $builder
                )
                .execute(&mut *tx)
                .await?;
                $crate::access::access_bound!(
                    $crate::access::sql::insert_session(session),
                    $builder
                )
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn session(
                &self,
                digest: &str,
                now: ferry_core::Timestamp,
            ) -> Result<Option<$crate::access::Session>, $crate::StoreError> {
                $crate::access::access_bound!($crate::access::sql::session(digest, now), $builder)
                    .fetch_optional(&self.$reader)
                    .await?
                    .as_ref()
                    .map($crate::access::session)
                    .transpose()
            }

            async fn end_session(&self, digest: &str) -> Result<(), $crate::StoreError> {
                $crate::access::access_bound!($crate::access::sql::end_session(digest), $builder)
                    .execute(&self.$writer)
                    .await?;
                Ok(())
            }

            async fn record_event(
                &self,
                event: &$crate::ActionRecord,
            ) -> Result<i64, $crate::StoreError> {
                let ids = $crate::Store::import_actions(self, std::slice::from_ref(event)).await?;
                ids.first().copied().ok_or_else(|| {
                    $crate::StoreError::Corrupt("the audit event was not recorded".into())
                })
            }
        }
    };
}

pub(crate) use {access_bound, access_store};

/// An audit event that is not a task action: sign-ins, user and token changes.
pub fn event(
    actor: &str,
    action: &str,
    origin: Option<String>,
    target: serde_json::Value,
) -> ActionRecord {
    ActionRecord {
        id: 0,
        at: Timestamp::now(),
        actor: actor.to_owned(),
        action: action.to_owned(),
        reason: None,
        origin,
        target,
        outcome: Default::default(),
    }
}
