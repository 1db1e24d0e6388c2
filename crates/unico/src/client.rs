//! The command line's HTTP client: a running server, a key, and the API's error shape
//! turned into readable errors.

use std::path::PathBuf;

use anyhow::{Context, bail};
use serde_json::Value;

/// Where the server is and how to authenticate; shared by the client commands.
#[derive(clap::Args, Clone)]
pub struct ServerArgs {
    /// URL of a running Unico server.
    #[arg(
        long,
        global = true,
        env = "UNICO_SERVER",
        default_value = "http://127.0.0.1:8080"
    )]
    pub server: String,
    /// API key or admin key. Default: the admin key kept in the data directory.
    #[arg(long, global = true, env = "UNICO_KEY", hide_env_values = true)]
    pub key: Option<String>,
    /// Data directory whose admin.key to use when no key is given.
    #[arg(long, global = true, env = "UNICO_DATA", default_value = "unico-data")]
    pub data: PathBuf,
}

/// The application a command works on.
#[derive(clap::Args, Clone)]
pub struct AppArg {
    /// Application: its id or its name.
    #[arg(long, global = true, env = "UNICO_APP")]
    pub app: Option<String>,
}

pub struct Client {
    pub base: String,
    key: String,
    agent: ureq::Agent,
    pub app_id: i64,
}

impl Client {
    /// A client bound to one application.
    pub fn for_app(args: &ServerArgs, app: &AppArg) -> anyhow::Result<Client> {
        let Some(name) = &app.app else {
            bail!("--app is required: the application's id or name (or set UNICO_APP)");
        };
        let mut client = Client::connect(args)?;
        client.app_id = client.resolve_app(name)?;
        Ok(client)
    }

    pub fn connect(args: &ServerArgs) -> anyhow::Result<Client> {
        let key = match &args.key {
            Some(k) => k.clone(),
            None => {
                let path = args.data.join(crate::keys::ADMIN_KEY_FILE);
                std::fs::read_to_string(&path)
                    .with_context(|| format!("no --key given and cannot read {}", path.display()))?
                    .trim()
                    .to_owned()
            }
        };
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .new_agent();
        Ok(Client {
            base: args.server.trim_end_matches('/').to_owned(),
            key,
            agent,
            app_id: 0,
        })
    }

    fn resolve_app(&self, app: &str) -> anyhow::Result<i64> {
        let apps = self.get("/v1/apps")?;
        let list = apps["apps"].as_array().cloned().unwrap_or_default();
        let by_id = app.parse::<i64>().ok();
        let found = list.iter().find(|a| {
            (by_id.is_some() && a["id"].as_i64() == by_id) || a["name"].as_str() == Some(app)
        });
        match found.and_then(|a| a["id"].as_i64()) {
            Some(id) => Ok(id),
            None => bail!("no application \"{app}\" visible with this key (give its id or name)"),
        }
    }

    pub fn app_url(&self, rest: &str) -> String {
        format!("{}/v1/apps/{}{rest}", self.base, self.app_id)
    }

    fn request(&self, method: &str, url: &str) -> ureq::http::request::Builder {
        ureq::http::Request::builder()
            .method(method)
            .uri(url)
            .header("Authorization", format!("Bearer {}", self.key))
    }

    pub fn get(&self, path: &str) -> anyhow::Result<Value> {
        let url = if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}{path}", self.base)
        };
        let response = self
            .agent
            .run(self.request("GET", &url).body(())?)
            .with_context(|| format!("cannot reach {url}"))?;
        read_json(response)
    }

    /// Sends a JSON body with `method` and answers the JSON reply (`null` for 204).
    pub fn send_json(
        &self,
        method: &str,
        url: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Value> {
        let request = self
            .request(method, url)
            .header("Content-Type", "application/json");
        let response = match body {
            Some(b) => self.agent.run(request.body(b.to_string())?),
            None => self.agent.run(request.body(())?),
        }
        .with_context(|| format!("cannot reach {url}"))?;
        read_json(response)
    }

    /// The length to announce for an upload of the file with this metadata: a regular
    /// file's; none for a pipe, whose length is not known before it is read (its metadata
    /// says 0, and announcing that would send nothing).
    pub fn upload_length(meta: &std::fs::Metadata) -> Option<u64> {
        meta.is_file().then_some(meta.len())
    }

    /// Sends `body` (streamed from a reader) and answers the JSON reply.
    ///
    /// A body of known length (`len`: a regular file's) is sent with its
    /// `Content-Length`; one of unknown length (a pipe) goes out in chunks of 10 KiB,
    /// which cost the server a frame each (receiving a 1.7 GB file in chunks took it three
    /// times the CPU, and the import 1.3 s more).
    pub fn post_stream(
        &self,
        url: &str,
        content_type: &str,
        body: &mut dyn std::io::Read,
        len: Option<u64>,
    ) -> anyhow::Result<Value> {
        let mut request = self
            .request("POST", url)
            .header("Content-Type", content_type);
        if let Some(len) = len {
            request = request.header("Content-Length", len);
        }
        let request = request.body(ureq::SendBody::from_reader(body))?;
        let response = self
            .agent
            .run(request)
            .with_context(|| format!("cannot reach {url}"))?;
        read_json(response)
    }

    /// A streaming GET: the response body as a reader.
    pub fn get_reader(&self, url: &str) -> anyhow::Result<impl std::io::Read + use<>> {
        let response = self
            .agent
            .run(self.request("GET", url).body(())?)
            .with_context(|| format!("cannot reach {url}"))?;
        if !response.status().is_success() {
            read_json(response)?;
            bail!("the server refused the request");
        }
        Ok(response.into_body().into_reader())
    }
}

/// The JSON body of a success, or the API's error message as an error.
fn read_json(response: ureq::http::Response<ureq::Body>) -> anyhow::Result<Value> {
    let status = response.status();
    let text = response
        .into_body()
        .read_to_string()
        .context("reading the answer")?;
    let json: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    if status.is_success() {
        return Ok(json);
    }
    match json["error"]["message"].as_str() {
        Some(message) => bail!(
            "{message} (HTTP {}, {})",
            status.as_u16(),
            json["error"]["code"].as_str().unwrap_or("")
        ),
        None => bail!(
            "HTTP {}: {}",
            status.as_u16(),
            text.chars().take(300).collect::<String>()
        ),
    }
}
