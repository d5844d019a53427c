//! Who may do what: roles, the permissions they carry, and the names of users and
//! tokens. Pure rules; credentials are checked and stored elsewhere.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A role, from least to most powerful; each role can do everything the one before can.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads everything, changes nothing.
    Viewer,
    /// Also skips, retries and runs routes, and feeds webhooks.
    Operator,
    /// Also manages users and tokens, and resets since marks.
    Admin,
}

/// What a request needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    Read,
    Operate,
    Administer,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Viewer, Role::Operator, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    pub fn parse(value: &str) -> Result<Role, String> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == value)
            .ok_or_else(|| {
                format!(
                    "'{}' is not a role; use viewer, operator or admin",
                    value.chars().take(40).collect::<String>()
                )
            })
    }

    pub fn allows(self, permission: Permission) -> bool {
        let needed = match permission {
            Permission::Read => Role::Viewer,
            Permission::Operate => Role::Operator,
            Permission::Administer => Role::Admin,
        };
        self >= needed
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Permission {
    /// What a refusal says the caller lacks.
    pub fn describe(self) -> &'static str {
        match self {
            Permission::Read => "reading needs the viewer role or higher",
            Permission::Operate => {
                "skipping, retrying, running routes and feeding webhooks need the operator or admin role"
            }
            Permission::Administer => {
                "managing users and tokens and resetting since marks need the admin role"
            }
        }
    }
}

/// Who is acting: a signed-in user or an API token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub kind: PrincipalKind,
    pub name: String,
    pub role: Role,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrincipalKind {
    User,
    Token,
}

impl Principal {
    /// The name the audit trail records: a user's name, or `token:NAME`.
    pub fn actor(&self) -> String {
        match self.kind {
            PrincipalKind::User => self.name.clone(),
            PrincipalKind::Token => format!("token:{}", self.name),
        }
    }
}

pub const MAX_NAME_CHARS: usize = 64;
pub const MIN_PASSWORD_CHARS: usize = 10;
pub const MAX_PASSWORD_CHARS: usize = 1_000;

/// A user or token name: 1 to 64 letters, digits, `.`, `_`, `-` or `@`.
pub fn validate_name(what: &str, name: &str) -> Result<(), String> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@');
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS || !name.chars().all(ok_char) {
        return Err(format!(
            "a {what} name is 1 to {MAX_NAME_CHARS} letters, digits, '.', '_', '-' or '@'"
        ));
    }
    Ok(())
}

pub fn validate_password(password: &str) -> Result<(), String> {
    let n = password.chars().count();
    if n < MIN_PASSWORD_CHARS {
        return Err(format!(
            "a password needs at least {MIN_PASSWORD_CHARS} characters"
        ));
    }
    if n > MAX_PASSWORD_CHARS {
        return Err(format!(
            "a password has at most {MAX_PASSWORD_CHARS} characters"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_role_has_exactly_the_permissions_of_its_rank() {
        use Permission::*;
        let table = [
            (Role::Viewer, [true, false, false]),
            (Role::Operator, [true, true, false]),
            (Role::Admin, [true, true, true]),
        ];
        for (role, expected) in table {
            let got = [Read, Operate, Administer].map(|p| role.allows(p));
            assert_eq!(got, expected, "{role}");
        }
    }

    #[test]
    fn roles_parse_from_their_names_only() {
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Ok(r));
        }
        assert!(
            Role::parse("Admin")
                .unwrap_err()
                .contains("viewer, operator or admin")
        );
    }

    #[test]
    fn names_are_short_and_plain() {
        assert!(validate_name("user", "alice.o-k_1@x").is_ok());
        for bad in ["", "a b", "é", "x/y", &"a".repeat(65)] {
            assert!(validate_name("user", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn tokens_are_recorded_apart_from_users_in_the_audit_trail() {
        let p = Principal {
            kind: PrincipalKind::Token,
            name: "ci".into(),
            role: Role::Operator,
        };
        assert_eq!(p.actor(), "token:ci");
    }
}
