//! `ferry serve` and `ferry check`.

use anyhow::{Context, Result, bail};
use ferry_core::config::{self, Config};
use ferry_engine::runtime::Runtime;
use ferry_engine::{Engine, Prepared};
use ferry_web::AppState;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(clap::Args)]
pub struct Args {
    /// The configuration file (TOML).
    #[arg(long, short, env = "FERRY_CONFIG", default_value = "ferry.toml")]
    pub config: PathBuf,
    /// Address to listen on; overrides server.listen.
    #[arg(long)]
    pub listen: Option<String>,
    /// Serve the API only: no schedules, realtime runs, lease recovery or pruning.
    #[arg(long)]
    pub no_workers: bool,
}

#[derive(clap::Args)]
pub struct CheckArgs {
    /// The configuration file (TOML).
    #[arg(long, short, env = "FERRY_CONFIG", default_value = "ferry.toml")]
    pub config: PathBuf,
}

#[derive(clap::Args)]
pub struct CheckCommand {
    #[command(flatten)]
    pub file: CheckArgs,
    /// Also reach every connection: DNS, TCP, the TLS handshake, a token request for
    /// OAuth2, and one request to its base_url. Exits non-zero if any fails.
    #[arg(long)]
    pub connect: bool,
}

pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("FERRY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=error"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .try_init();
}

/// Reads and validates a configuration file, environment overrides applied.
pub fn load_config(path: &Path) -> Result<Config> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the configuration file {}", path.display()))?;
    Ok(config::load(
        &path.display().to_string(),
        &text,
        std::env::vars(),
    )?)
}

/// Compiles every transformer of `config`, nothing opened yet.
pub fn prepare(config: Config, path: &Path) -> Result<Prepared> {
    let base = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    Ok(Prepared::new(config, base, &path.display().to_string())?)
}

/// Compiles the engine for `config`, then opens its store: a configuration error is
/// reported before any file is created.
pub async fn engine(config: Config, path: &Path) -> Result<Engine> {
    let prepared = prepare(config, path)?;
    let store = open_store(
        &prepared.config().storage,
        prepared.config().storage.migrate,
    )
    .await?;
    Ok(prepared.with_store(store))
}

/// Opens the store of `storage`, applying migrations when `migrate` is true.
pub async fn open_store(
    storage: &ferry_core::config::StorageConfig,
    migrate: bool,
) -> Result<Arc<dyn ferry_store::Store>> {
    let pool = ferry_store::postgres::PoolSettings {
        max_connections: storage.max_connections,
        acquire_timeout: std::time::Duration::from_secs(storage.acquire_timeout_secs),
    };
    ferry_store::open_with(&storage.url, pool, migrate)
        .await
        .with_context(|| {
            format!(
                "cannot open the store at {} (storage.url)",
                redact(&storage.url)
            )
        })
}

/// A storage URL without its password, for messages and logs.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let user_info = &url[scheme + 3..at];
            match user_info.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// `ferry migrate`: applies pending migrations and says which.
pub async fn migrate(args: CheckArgs) -> Result<()> {
    init_logging();
    let config = load_config(&args.config)?;
    let url = &config.storage.url;
    if url.starts_with("postgres") {
        let pool = ferry_store::postgres::PoolSettings {
            max_connections: 2,
            acquire_timeout: std::time::Duration::from_secs(config.storage.acquire_timeout_secs),
        };
        let store = ferry_store::postgres::PgStore::connect(url, pool)
            .await
            .with_context(|| format!("cannot connect to {}", redact(url)))?;
        let applied = store.migrate().await?;
        if applied.is_empty() {
            println!("{}: the schema is up to date", redact(url));
        } else {
            println!("{}: applied migrations {applied:?}", redact(url));
        }
    } else {
        open_store(&config.storage, true).await?;
        println!("{}: the schema is up to date", redact(url));
    }
    Ok(())
}

pub async fn check(command: CheckCommand) -> Result<()> {
    let args = command.file;
    let prepared = prepare(load_config(&args.config)?, &args.config)?;
    let config = prepared.config();
    println!(
        "{} is valid: {} entity schema(s), {} connection(s), {} incoming, {} outgoing, {} route(s)",
        args.config.display(),
        config.entity_schemas.len(),
        config.connections.len(),
        config.incoming.len(),
        config.outgoing.len(),
        config.routes.len()
    );
    for w in prepared.warnings() {
        let at = w.line.map(|l| format!(":{l}")).unwrap_or_default();
        eprintln!(
            "warning: {}{at}: {}: {}",
            args.config.display(),
            w.key,
            w.message
        );
    }
    if !command.connect {
        return Ok(());
    }
    let mut failed = 0;
    for c in &config.connections {
        let Some(connection) = prepared.connections().get(c.id.as_str()) else {
            continue;
        };
        match connection.check().await {
            Ok(what) => println!("connection {}: ok: {what}", c.id),
            Err(why) => {
                failed += 1;
                println!("connection {}: FAILED: {why}", c.id);
            }
        }
    }
    if config.connections.is_empty() {
        println!("no connection to reach ([[connections]] is empty)");
    }
    if failed > 0 {
        bail!(
            "{failed} of {} connection(s) could not be reached",
            config.connections.len()
        );
    }
    Ok(())
}

pub async fn run(args: Args) -> Result<()> {
    init_logging();
    let mut config = load_config(&args.config)?;
    if let Some(listen) = args.listen {
        config.server.listen = listen;
    }
    let engine = engine(config, &args.config).await?;
    serve_engine(Arc::new(engine), !args.no_workers, axum::Router::new()).await
}

/// Binds `server.listen`, starts the workers (unless `workers` is false) and serves
/// until Ctrl-C or SIGTERM; `extra` routes are served beside the API.
pub async fn serve_engine(engine: Arc<Engine>, workers: bool, extra: axum::Router) -> Result<()> {
    let listen = engine.config().server.listen.clone();
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .with_context(|| format!("cannot listen on {listen} (server.listen); is another process using it? Pick another with --listen"))?;
    let addr = listener.local_addr()?;
    if !engine.store().has_credentials().await? {
        if !addr.ip().is_loopback() {
            bail!(
                "ferry will not listen on {addr} while no user or API token exists: anyone who can reach it would find nobody signed in and no way to sign in, and the store would be one setting away from open. Create an admin first (ferry users add --config FILE --role admin NAME), or listen on 127.0.0.1"
            );
        }
        tracing::warn!(
            "no user or API token exists yet, so nobody can sign in; create an admin with: ferry users add --config FILE --role admin NAME"
        );
    }
    tracing::info!("ferry is serving on http://{addr} (API at http://{addr}/api/v1/tasks)");
    println!("ferry is serving on http://{addr}");
    let runtime = if workers {
        Some(Runtime::start(engine.clone()).await)
    } else {
        None
    };
    let app = ferry_web::router(AppState::new(engine)).merge(extra);
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown_signal())
    .await?;
    if let Some(runtime) = runtime {
        runtime.shutdown().await;
    }
    tracing::info!("ferry stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
