//! The `unico` binary: a thin command line over the library crates.

mod client;
mod commands;
mod config;
mod demo;
mod events;
mod keys;
mod serve;
mod transfer;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// The allocator (see the workspace's `Cargo.toml` for why not the system's).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Unico, the customer data platform.
#[derive(Parser)]
#[command(name = "unico", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (REST API) on the embedded store.
    Serve(ServeArgs),
    /// Import a CSV file into an application of a running server.
    Import(transfer::ImportArgs),
    /// Export an application's customers as CSV from a running server.
    Export(transfer::ExportArgs),
    /// Count the customers matching a filter.
    Count(commands::CountArgs),
    /// Applications: list, create.
    Apps(commands::AppsArgs),
    /// Customer fields: list, create, delete.
    Fields(commands::FieldsArgs),
    /// Customers: get, list (with a filter), delete.
    Customers(commands::CustomersArgs),
    /// Saved segments: list, create, show, update, delete.
    Segments(commands::SegmentsArgs),
    /// Events: import an NDJSON file, event types, a customer's timeline.
    Events(events::EventsArgs),
    /// Copy the embedded store's database, consistently, while the server keeps running.
    Backup(BackupArgs),
    /// Restore a backup into an empty data directory (the server stopped).
    Restore(RestoreArgs),
}

#[derive(clap::Args)]
pub struct BackupArgs {
    /// The data directory whose database to copy.
    #[arg(long, env = "UNICO_DATA", default_value = "unico-data")]
    pub data: PathBuf,
    /// The backup file to write (must not exist).
    #[arg(long)]
    pub out: PathBuf,
}

#[derive(clap::Args)]
pub struct RestoreArgs {
    /// The backup file.
    pub from: PathBuf,
    /// The data directory to restore into (must hold no database).
    #[arg(long, env = "UNICO_DATA", default_value = "unico-data")]
    pub data: PathBuf,
}

/// `unico serve`'s settings. Each is taken from, in order: its flag, its environment
/// variable, the configuration file (`--config`), the built-in default (see
/// [`config::ServeConfig`]).
#[derive(clap::Args)]
pub struct ServeArgs {
    /// A TOML file with any of `data`, `database`, `addr`, `log_format`, `demo_customers`.
    #[arg(long, env = "UNICO_CONFIG")]
    pub config: Option<PathBuf>,
    /// Data directory: the embedded store, the admin key, import uploads and engine
    /// snapshots [default: unico-data].
    #[arg(long, env = "UNICO_DATA")]
    pub data: Option<PathBuf>,
    /// A `postgres://` URL: store everything in that PostgreSQL database instead of the
    /// embedded store (the data directory still keeps the local files).
    #[arg(long, env = "UNICO_DATABASE")]
    pub database: Option<String>,
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "UNICO_ADDR")]
    pub addr: Option<String>,
    /// Create a sample application with realistic customers when the store has none.
    #[arg(long)]
    pub demo: bool,
    /// How many customers the demo application gets [default: 5000].
    #[arg(long, requires = "demo")]
    pub demo_customers: Option<usize>,
    /// Log format: `text` or `json` [default: text].
    #[arg(long, env = "UNICO_LOG_FORMAT")]
    pub log_format: Option<String>,
    /// Print the settings as resolved from flags, environment, file and defaults, and exit.
    #[arg(long)]
    pub print_config: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) if args.print_config => {
            config::ServeConfig::resolve(args).map(|config| {
                print!("{config}");
                true
            })
        }
        Command::Serve(args) => config::ServeConfig::resolve(args)
            .and_then(serve::run)
            .map(|()| true),
        Command::Import(args) => transfer::import(args),
        Command::Export(args) => transfer::export(args).map(|()| true),
        Command::Count(args) => commands::count(args).map(|()| true),
        Command::Apps(args) => commands::apps(args).map(|()| true),
        Command::Fields(args) => commands::fields(args).map(|()| true),
        Command::Customers(args) => commands::customers(args).map(|()| true),
        Command::Segments(args) => commands::segments(args).map(|()| true),
        Command::Events(args) => events::events(args),
        Command::Backup(args) => unico_store::sqlite::backup::backup(&args.data, &args.out)
            .map(|bytes| {
                eprintln!("backed up {} ({bytes} bytes)", args.out.display());
                true
            })
            .map_err(anyhow::Error::from),
        Command::Restore(args) => unico_store::sqlite::backup::restore(&args.from, &args.data)
            .map(|()| {
                eprintln!(
                    "restored {} into {} (the admin key is not in a backup: keep admin.key, or a new one is made at start)",
                    args.from.display(),
                    args.data.display()
                );
                true
            })
            .map_err(anyhow::Error::from),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(2),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// clap's own consistency checks over every subcommand and argument.
    #[test]
    fn the_command_line_is_well_formed() {
        super::Cli::command().debug_assert();
    }
}
