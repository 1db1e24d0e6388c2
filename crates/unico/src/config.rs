//! `unico serve`'s configuration: flags, environment variables and a TOML file, merged
//! into one [`ServeConfig`].
//!
//! **Precedence**, highest first: the command-line flag, its `UNICO_*` environment
//! variable, the configuration file named by `--config` (or `UNICO_CONFIG`), the built-in
//! default. This is the order operators know from PostgreSQL and Grafana: the file holds
//! the site's settings, the environment overrides them per deployment, and a flag per
//! run. A file with an unknown key, or a value of the wrong type, is refused at start
//! with the key named, rather than ignored: a typo must not fall back to a default.
//!
//! The admin key is deliberately not a file setting: it comes from `UNICO_ADMIN_KEY` or
//! the data directory's `admin.key` (mode 0600), so that the configuration file can be
//! world-readable and kept in version control.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;

use crate::ServeArgs;

/// Built-in defaults.
pub const DEFAULT_DATA: &str = "unico-data";
pub const DEFAULT_ADDR: &str = "127.0.0.1:8080";
pub const DEFAULT_LOG_FORMAT: &str = "text";
pub const DEFAULT_DEMO_CUSTOMERS: usize = 5000;

/// The configuration file's keys, each optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    data: Option<PathBuf>,
    database: Option<String>,
    addr: Option<String>,
    log_format: Option<String>,
    demo_customers: Option<usize>,
}

/// What `unico serve` runs with, every setting resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeConfig {
    pub data: PathBuf,
    pub database: Option<String>,
    pub addr: String,
    pub demo: bool,
    pub demo_customers: usize,
    pub log_format: String,
}

impl std::fmt::Display for ServeConfig {
    /// The settings as a configuration file would hold them (`unico serve --print-config`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let quoted = |s: &str| format!("{:?}", s);
        writeln!(f, "data = {}", quoted(&self.data.display().to_string()))?;
        match &self.database {
            Some(url) => writeln!(f, "database = {}", quoted(url))?,
            None => writeln!(f, "# database: the embedded store")?,
        }
        writeln!(f, "addr = {}", quoted(&self.addr))?;
        writeln!(f, "log_format = {}", quoted(&self.log_format))?;
        writeln!(f, "demo_customers = {}", self.demo_customers)
    }
}

impl ServeConfig {
    /// Merges the flags and environment (already merged by clap) over the file, if any,
    /// over the defaults.
    pub fn resolve(args: ServeArgs) -> anyhow::Result<Self> {
        let file = match &args.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        // A relative data directory in the file is relative to the file, as an operator
        // reading the file expects; from a flag or the environment, to the working
        // directory, as for any other command.
        let file_data = file.data.map(|d| match &args.config {
            Some(path) if d.is_relative() => path.parent().unwrap_or(Path::new("")).join(d),
            _ => d,
        });
        let log_format = args
            .log_format
            .or(file.log_format)
            .unwrap_or_else(|| DEFAULT_LOG_FORMAT.to_owned());
        if log_format != "text" && log_format != "json" {
            anyhow::bail!("log_format must be \"text\" or \"json\", got {log_format:?}");
        }
        Ok(Self {
            data: args
                .data
                .or(file_data)
                .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA)),
            database: args.database.or(file.database),
            addr: args
                .addr
                .or(file.addr)
                .unwrap_or_else(|| DEFAULT_ADDR.to_owned()),
            demo: args.demo,
            demo_customers: args
                .demo_customers
                .or(file.demo_customers)
                .unwrap_or(DEFAULT_DEMO_CUSTOMERS),
            log_format,
        })
    }
}

fn read_file(path: &Path) -> anyhow::Result<FileConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the configuration file {}", path.display()))?;
    toml::from_str(&text)
        .with_context(|| format!("the configuration file {} is not valid", path.display()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn args(config: Option<PathBuf>) -> ServeArgs {
        ServeArgs {
            config,
            data: None,
            database: None,
            addr: None,
            demo: false,
            demo_customers: None,
            log_format: None,
            print_config: false,
        }
    }

    fn file(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("unico.toml");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    #[test]
    fn without_a_file_the_defaults_hold() {
        let config = ServeConfig::resolve(args(None)).unwrap();
        assert_eq!(
            config,
            ServeConfig {
                data: PathBuf::from("unico-data"),
                database: None,
                addr: "127.0.0.1:8080".into(),
                demo: false,
                demo_customers: 5000,
                log_format: "text".into(),
            }
        );
    }

    #[test]
    fn the_file_overrides_the_defaults_and_flags_override_the_file() {
        let (dir, path) = file(
            "addr = \"0.0.0.0:9000\"\ndata = \"/srv/unico\"\nlog_format = \"json\"\ndatabase = \"postgres://u@h/db\"\n",
        );
        let config = ServeConfig::resolve(args(Some(path.clone()))).unwrap();
        assert_eq!(config.addr, "0.0.0.0:9000");
        assert_eq!(config.data, PathBuf::from("/srv/unico"));
        assert_eq!(config.log_format, "json");
        assert_eq!(config.database.as_deref(), Some("postgres://u@h/db"));
        let mut flagged = args(Some(path));
        flagged.addr = Some("127.0.0.1:1".into());
        let config = ServeConfig::resolve(flagged).unwrap();
        assert_eq!(config.addr, "127.0.0.1:1");
        assert_eq!(
            config.data,
            PathBuf::from("/srv/unico"),
            "the rest from the file"
        );
        drop(dir);
    }

    #[test]
    fn a_relative_data_directory_in_the_file_is_relative_to_the_file() {
        let (dir, path) = file("data = \"data\"\n");
        let config = ServeConfig::resolve(args(Some(path))).unwrap();
        assert_eq!(config.data, dir.path().join("data"));
    }

    #[test]
    fn unknown_keys_and_wrong_types_are_refused_with_their_name() {
        let (_dir, path) = file("adr = \"0.0.0.0:1\"\n");
        let e = format!("{:#}", ServeConfig::resolve(args(Some(path))).unwrap_err());
        assert!(e.contains("adr"), "{e}");
        let (_dir, path) = file("demo_customers = \"many\"\n");
        let e = format!("{:#}", ServeConfig::resolve(args(Some(path))).unwrap_err());
        assert!(e.contains("demo_customers"), "{e}");
        let (_dir, path) = file("log_format = \"xml\"\n");
        let e = format!("{:#}", ServeConfig::resolve(args(Some(path))).unwrap_err());
        assert!(e.contains("log_format"), "{e}");
        let missing = ServeConfig::resolve(args(Some(PathBuf::from("no/such/unico.toml"))));
        assert!(format!("{:#}", missing.unwrap_err()).contains("no/such/unico.toml"));
    }
}
