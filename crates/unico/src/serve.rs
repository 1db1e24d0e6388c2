//! `unico serve`: opens the store, prepares keys and demo data, and runs the HTTP server
//! until SIGINT or SIGTERM, finishing in-flight requests before exiting.

use std::sync::Arc;

use anyhow::Context;
use tracing_subscriber::EnvFilter;
use unico_server::AppState;
use unico_store::{PostgresStore, SqliteStore, Store};

use crate::config::ServeConfig;

fn init_logs(format: &str) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,tower_http=warn"));
    // Logs go to stderr, as documented: stdout carries only what a person starting the
    // server must read (the generated key, the address), so logs never interleave with it.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

pub fn run(args: ServeConfig) -> anyhow::Result<()> {
    init_logs(&args.log_format);
    // Transparent huge pages off for this process: with them, the allocator's fresh pages
    // were faulted in 2 MiB at a time and zeroed whole, again and again as request
    // buffers came and went: 6-9 % of the server's time under `POST …/events`.
    if let Err(e) = nix::sys::prctl::set_thp_disable(true) {
        tracing::debug!(error = %e, "transparent huge pages stay as the system sets them");
    }
    let store = open_store(&args)?;
    let interrupted = store.fail_interrupted_imports(unico_server::state::now_ms())?;
    if interrupted > 0 {
        tracing::warn!(
            interrupted,
            "imports interrupted by the last stop were marked failed; nothing of them was written"
        );
    }
    let spool = args.data.join("spool");
    // Uploads of imports that did not finish are of no use any more.
    let _ = std::fs::remove_dir_all(&spool);
    std::fs::create_dir_all(&spool).with_context(|| format!("creating {}", spool.display()))?;
    let (admin_key, generated) = crate::keys::admin_key(&args.data)?;
    if generated {
        println!(
            "Admin key (shown once; also kept in {}): {admin_key}",
            args.data.join(crate::keys::ADMIN_KEY_FILE).display()
        );
    }
    if args.demo
        && let Some(demo) = crate::demo::create_if_empty(store.as_ref(), args.demo_customers)?
    {
        println!(
            "Demo application \"{}\" (id {}) with {} customers; its API key (shown once): {}",
            demo.name, demo.app_id, demo.customers, demo.api_key
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&args.addr)
            .await
            .with_context(|| format!("listening on {}", args.addr))?;
        let local = listener.local_addr()?;
        tracing::info!(addr = %local, data = %args.data.display(), backend = store.backend(), "unico is listening");
        println!("Listening on http://{local}");
        let state = AppState::new(store.clone(), &admin_key).with_spool_dir(spool)
            .with_data_dir(args.data.clone());
        // Segment engines restart from their snapshots when those are current.
        let engines = state.engines.clone();
        if let Err(e) = engines.enable_snapshots(args.data.join("engines")) {
            tracing::warn!(error = %e, "segment engine snapshots are off");
        }
        warm_engines(&state, &store);
        prune_log_in_background(&store);
        let app = unico_server::router(state);
        // Peer addresses feed the console's per-client limit on failed sign-ins.
        let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown_signal())
            .await
            .context("serving")?;
        tokio::task::spawn_blocking(move || engines.save_snapshots())
            .await
            .context("saving the segment engine snapshots")?;
        tracing::info!("stopped");
        anyhow::Ok(())
    })
}

/// The store `--database` names (PostgreSQL), else the embedded one in the data directory.
/// The URL is never logged: it may hold a password.
fn open_store(args: &ServeConfig) -> anyhow::Result<Arc<dyn Store>> {
    match args.database.as_deref() {
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            let store = PostgresStore::connect(url).context("connecting to PostgreSQL")?;
            Ok(Arc::new(store))
        }
        Some(_) => anyhow::bail!(
            "--database takes a postgres:// (or postgresql://) URL; leave it out to use the embedded store in --data"
        ),
        None => {
            let store = SqliteStore::open(&args.data)
                .with_context(|| format!("opening the store in {}", args.data.display()))?;
            Ok(Arc::new(store))
        }
    }
}

/// Builds every application's segment engine in the background, so the first filter a user
/// runs after a restart does not wait for it (requests arriving earlier wait for the build
/// of their application only).
fn warm_engines(state: &AppState, store: &Arc<dyn Store>) {
    let engines = state.engines.clone();
    let store = store.clone();
    // On a thread of its own: store calls block, and this runs inside the async runtime.
    let spawned = std::thread::Builder::new()
        .name("unico-warm".into())
        .spawn(move || {
            let apps = match store.list_apps() {
                Ok(apps) => apps,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot list applications to warm their engines");
                    return;
                }
            };
            drop(store);
            for app in apps {
                if let Err(e) = engines.index(app.id) {
                    tracing::warn!(app = app.id.0, error = %e, "cannot build the segment engine");
                }
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot start warming the segment engines");
    }
}

/// How often log entries past their retention are removed.
const LOG_PRUNE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(3600);

/// Removes change-log entries older than [`unico_store::LOG_RETENTION_MS`] and events past
/// their type's retention, hourly. The
/// engines have applied them long before; a snapshot older than the retention is then
/// rebuilt from a scan at the next start.
fn prune_log_in_background(store: &Arc<dyn Store>) {
    let store = Arc::downgrade(store);
    let spawned = std::thread::Builder::new()
        .name("unico-log-prune".into())
        .spawn(move || {
            loop {
                let Some(store) = store.upgrade() else {
                    return;
                };
                let before = unico_server::state::now_ms() - unico_store::LOG_RETENTION_MS;
                match store.prune_log(before) {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(entries = n, "change log pruned"),
                    Err(e) => tracing::warn!(error = %e, "cannot prune the change log"),
                }
                // Events past their type's retention go the same way; their removal is
                // logged, so every count that held them moves with it.
                match store.expire_events(unico_server::state::now_ms()) {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(events = n, "events past their retention removed"),
                    Err(e) => tracing::warn!(error = %e, "cannot remove expired events"),
                }
                drop(store);
                std::thread::sleep(LOG_PRUNE_INTERVAL);
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot start pruning the change log");
    }
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
    tracing::info!("shutting down: finishing requests in flight");
}
