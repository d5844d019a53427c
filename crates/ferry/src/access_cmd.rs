//! `ferry users …` and `ferry tokens …`: managing who may come in, directly on the store
//! named by the configuration (also while a server runs on it: changes take effect at
//! once, and each is written to the audit trail with the operating-system user).

use crate::serve::{load_config, open_store};
use crate::table;
use anyhow::{Context, Result, bail};
use ferry_core::Role;
use ferry_store::Store;
use ferry_store::accounts::{self, ChangedBy};
use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use std::sync::Arc;

#[derive(clap::Args)]
pub struct StoreArgs {
    /// The configuration whose store holds the users and tokens.
    #[arg(long, short, env = "FERRY_CONFIG", default_value = "ferry.toml")]
    pub config: PathBuf,
}

#[derive(clap::Subcommand)]
pub enum Users {
    /// Add a user. The password is read from standard input (one line), or generated
    /// and printed when --generate-password is given.
    Add {
        #[command(flatten)]
        store: StoreArgs,
        name: String,
        /// viewer (reads), operator (also skips, retries, runs) or admin (also manages
        /// users and tokens).
        #[arg(long, value_parser = parse_role)]
        role: Role,
        /// Make up a strong password and print it once.
        #[arg(long)]
        generate_password: bool,
    },
    /// List users with their roles.
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Disable a user: its sessions end at once and it can no longer sign in.
    Disable {
        #[command(flatten)]
        store: StoreArgs,
        name: String,
    },
    /// Enable a disabled user again.
    Enable {
        #[command(flatten)]
        store: StoreArgs,
        name: String,
    },
    /// Change a user's role; it applies to its open sessions at once.
    SetRole {
        #[command(flatten)]
        store: StoreArgs,
        name: String,
        #[arg(value_parser = parse_role)]
        role: Role,
    },
    /// Set a user's password, read from standard input; its sessions end.
    SetPassword {
        #[command(flatten)]
        store: StoreArgs,
        name: String,
    },
}

#[derive(clap::Subcommand)]
pub enum Tokens {
    /// Create an API token. The token is printed alone on the last line, this once:
    /// only its digest is stored.
    Create {
        #[command(flatten)]
        store: StoreArgs,
        #[arg(long, value_parser = parse_role)]
        role: Role,
        #[arg(long)]
        name: String,
    },
    /// List tokens (never their secrets), revoked ones too.
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Revoke a token: it stops working at once, on every node.
    Revoke {
        #[command(flatten)]
        store: StoreArgs,
        name: String,
    },
}

fn parse_role(value: &str) -> Result<Role, String> {
    Role::parse(value)
}

async fn store(args: &StoreArgs) -> Result<Arc<dyn Store>> {
    let config = load_config(&args.config)?;
    open_store(&config.storage, config.storage.migrate).await
}

/// The operating-system user, as the audit trail names CLI changes.
fn by() -> ChangedBy {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".into());
    ChangedBy {
        actor: format!("cli:{user}"),
        origin: Some("local".into()),
    }
}

fn read_password() -> Result<String> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprint!("Password (at least 10 characters; it is echoed): ");
    }
    let mut line = String::new();
    stdin
        .lock()
        .read_line(&mut line)
        .context("cannot read the password from standard input")?;
    let password = line.trim_end_matches(['\r', '\n']).to_owned();
    if password.is_empty() {
        bail!("no password on standard input; pipe one in, or use --generate-password");
    }
    Ok(password)
}

pub async fn users(cmd: Users) -> Result<()> {
    match cmd {
        Users::Add {
            store: s,
            name,
            role,
            generate_password,
        } => {
            let password = if generate_password {
                ferry_store::credentials::random_hex(12)
            } else {
                read_password()?
            };
            let store = store(&s).await?;
            let user = accounts::add_user(&*store, &by(), &name, role, &password).await?;
            println!("added user {} ({})", user.name, user.role);
            if generate_password {
                println!("password (shown once):");
                println!("{password}");
            }
        }
        Users::List { store: s } => {
            let rows: Vec<Vec<String>> = store(&s)
                .await?
                .users()
                .await?
                .into_iter()
                .map(|u| {
                    vec![
                        u.name,
                        u.role.to_string(),
                        if u.disabled { "disabled" } else { "enabled" }.into(),
                        u.created_at.to_rfc3339(),
                        u.updated_at.to_rfc3339(),
                    ]
                })
                .collect();
            print!(
                "{}",
                table::render(&["NAME", "ROLE", "STATE", "CREATED", "UPDATED"], &rows)
            );
        }
        Users::Disable { store: s, name } => set_disabled(&s, &name, true).await?,
        Users::Enable { store: s, name } => set_disabled(&s, &name, false).await?,
        Users::SetRole {
            store: s,
            name,
            role,
        } => {
            let store = store(&s).await?;
            let user = accounts::change_user(&*store, &by(), &name, Some(role), None, None).await?;
            println!("user {} now has the {} role", user.name, user.role);
        }
        Users::SetPassword { store: s, name } => {
            let password = read_password()?;
            let store = store(&s).await?;
            accounts::change_user(&*store, &by(), &name, None, None, Some(&password)).await?;
            println!("password of {name} changed; its sessions ended");
        }
    }
    Ok(())
}

async fn set_disabled(s: &StoreArgs, name: &str, disabled: bool) -> Result<()> {
    let store = store(s).await?;
    let user = accounts::change_user(&*store, &by(), name, None, Some(disabled), None).await?;
    let state = if user.disabled {
        "disabled; its sessions ended"
    } else {
        "enabled"
    };
    println!("user {} is {state}", user.name);
    Ok(())
}

pub async fn tokens(cmd: Tokens) -> Result<()> {
    match cmd {
        Tokens::Create {
            store: s,
            role,
            name,
        } => {
            let store = store(&s).await?;
            let (token, secret) = accounts::create_token(&*store, &by(), &name, role).await?;
            println!(
                "created token {} ({}); send it as 'Authorization: Bearer <token>'. It is shown this once:",
                token.name, token.role
            );
            println!("{secret}");
        }
        Tokens::List { store: s } => {
            let rows: Vec<Vec<String>> = store(&s)
                .await?
                .tokens()
                .await?
                .into_iter()
                .map(|t| {
                    vec![
                        t.name,
                        t.role.to_string(),
                        t.revoked_at
                            .map(|r| format!("revoked {}", r.to_rfc3339()))
                            .unwrap_or_else(|| "live".into()),
                        t.created_by,
                        t.created_at.to_rfc3339(),
                    ]
                })
                .collect();
            print!(
                "{}",
                table::render(&["NAME", "ROLE", "STATE", "CREATED BY", "CREATED"], &rows)
            );
        }
        Tokens::Revoke { store: s, name } => {
            let store = store(&s).await?;
            accounts::revoke_token(&*store, &by(), &name).await?;
            println!("token {name} revoked; it no longer works");
        }
    }
    Ok(())
}
