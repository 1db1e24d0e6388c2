//! The small client commands: applications, fields, customers, counts and segments,
//! against a running server. Tables for people, `--json` for scripts.

use anyhow::Context;
use clap::Subcommand;
use serde_json::{Value, json};

use crate::client::{AppArg, Client, ServerArgs};

/// Percent-encodes a query parameter value.
pub fn encode_query(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Percent-encodes a path segment (a customerId may hold `/`, `?`, `#`).
fn encode_path(text: &str) -> String {
    encode_query(text)
}

fn print(value: &Value, json_out: bool, table: impl FnOnce(&Value)) -> anyhow::Result<()> {
    if json_out {
        println!("{}", serde_json::to_string_pretty(value)?);
    } else {
        table(value);
    }
    Ok(())
}

#[derive(clap::Args)]
pub struct CountArgs {
    /// The filter, in the text form: country = "ES" and age between 25 and 34
    pub filter: String,
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(flatten)]
    pub app: AppArg,
    #[arg(long)]
    pub json: bool,
}

pub fn count(args: CountArgs) -> anyhow::Result<()> {
    let client = Client::for_app(&args.server, &args.app)?;
    let out = client.send_json(
        "POST",
        &client.app_url("/count"),
        Some(&json!({ "filter": args.filter })),
    )?;
    print(&out, args.json, |v| {
        println!(
            "{} customers ({:.2} ms)",
            v["count"],
            v["took_ms"].as_f64().unwrap_or(0.0)
        )
    })
}

#[derive(Subcommand)]
pub enum AppsCommand {
    /// List the applications this key can see.
    List,
    /// Create an application (admin key); prints its first API key once.
    Create {
        name: String,
        #[arg(long, default_value = "UTC")]
        timezone: String,
    },
    /// The audit log, newest first: of one application (its id), or of all (admin key).
    Audit {
        app: Option<i64>,
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
}

#[derive(clap::Args)]
pub struct AppsArgs {
    #[command(subcommand)]
    pub command: AppsCommand,
    #[command(flatten)]
    pub server: ServerArgs,
    #[arg(long, global = true)]
    pub json: bool,
}

pub fn apps(args: AppsArgs) -> anyhow::Result<()> {
    let client = Client::connect(&args.server)?;
    match args.command {
        AppsCommand::List => {
            let out = client.get("/v1/apps")?;
            print(&out, args.json, |v| {
                for a in v["apps"].as_array().into_iter().flatten() {
                    println!(
                        "{:>6}  {:<30}  {}",
                        a["id"],
                        a["name"].as_str().unwrap_or(""),
                        a["timezone"].as_str().unwrap_or("")
                    );
                }
            })
        }
        AppsCommand::Create { name, timezone } => {
            let url = format!("{}/v1/apps", client.base);
            let out = client.send_json(
                "POST",
                &url,
                Some(&json!({ "name": name, "timezone": timezone })),
            )?;
            print(&out, args.json, |v| {
                println!(
                    "created application {} ({})",
                    v["id"],
                    v["name"].as_str().unwrap_or("")
                );
                println!(
                    "its API key (shown once): {}",
                    v["api_key"].as_str().unwrap_or("")
                );
            })
        }
        AppsCommand::Audit { app, limit } => {
            let path = match app {
                Some(id) => format!("/v1/apps/{id}/audit?limit={limit}"),
                None => format!("/v1/audit?limit={limit}"),
            };
            let out = client.get(&format!("{}{path}", client.base))?;
            print(&out, args.json, |v| {
                for r in v["records"].as_array().into_iter().flatten() {
                    println!(
                        "{}  app {:<4}  {:<18}  {:<20}  {}",
                        r["at"].as_str().unwrap_or(""),
                        r["app"],
                        r["actor"].as_str().unwrap_or(""),
                        r["action"].as_str().unwrap_or(""),
                        r["target"].as_str().unwrap_or("")
                    );
                }
            })
        }
    }
}

#[derive(Subcommand)]
pub enum FieldsCommand {
    /// List the fields with how many customers hold a value.
    List,
    /// Create a field: NAME TYPE (string, number, datetime or date).
    Create { name: String, r#type: String },
    /// Create a computed field: NAME, the aggregate of each customer's events of a type
    /// (read-only; number, or datetime for first and last).
    Computed {
        name: String,
        /// The event type aggregated.
        #[arg(long)]
        event: String,
        /// count, sum, avg, min, max, first or last.
        #[arg(long)]
        agg: String,
        /// The number property (sum, avg, min, max).
        #[arg(long)]
        property: Option<String>,
        /// Only events in this last span count (90d; m, h, d, w).
        #[arg(long)]
        within_last: Option<String>,
    },
    /// Delete a field and its value from every customer.
    Delete { name: String },
}

#[derive(clap::Args)]
pub struct FieldsArgs {
    #[command(subcommand)]
    pub command: FieldsCommand,
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(flatten)]
    pub app: AppArg,
    #[arg(long, global = true)]
    pub json: bool,
}

pub fn fields(args: FieldsArgs) -> anyhow::Result<()> {
    let client = Client::for_app(&args.server, &args.app)?;
    match args.command {
        FieldsCommand::List => {
            let out = client.get(&client.app_url("/fields"))?;
            print(&out, args.json, |v| {
                for f in v["fields"].as_array().into_iter().flatten() {
                    let c = &f["computed"];
                    let filled = if c.is_object() {
                        let mut what = format!(
                            "computed: {} {}of {}",
                            c["agg"].as_str().unwrap_or(""),
                            c["property"]
                                .as_str()
                                .map(|p| format!("{p} "))
                                .unwrap_or_default(),
                            c["event"].as_str().unwrap_or("")
                        );
                        if let Some(w) = c["within_last"].as_str() {
                            what.push_str(&format!(" within_last {w}"));
                        }
                        what
                    } else {
                        format!("{:>10} values", f["value_count"])
                    };
                    println!(
                        "{:<32}  {:<9}  {filled}",
                        f["name"].as_str().unwrap_or(""),
                        f["type"].as_str().unwrap_or(""),
                    );
                }
            })
        }
        FieldsCommand::Create { name, r#type } => {
            let out = client.send_json(
                "POST",
                &client.app_url("/fields"),
                Some(&json!({ "name": name, "type": r#type })),
            )?;
            print(&out, args.json, |v| {
                println!(
                    "created field {} ({})",
                    v["name"],
                    v["type"].as_str().unwrap_or("")
                )
            })
        }
        FieldsCommand::Computed {
            name,
            event,
            agg,
            property,
            within_last,
        } => {
            let r#type = match agg.as_str() {
                "first" | "last" => "datetime",
                _ => "number",
            };
            let mut computed = json!({ "event": event, "agg": agg });
            if let Some(p) = property {
                computed["property"] = json!(p);
            }
            if let Some(w) = within_last {
                computed["within_last"] = json!(w);
            }
            let out = client.send_json(
                "POST",
                &client.app_url("/fields"),
                Some(&json!({ "name": name, "type": r#type, "computed": computed })),
            )?;
            print(&out, args.json, |v| {
                println!(
                    "created computed field {} ({})",
                    v["name"],
                    v["type"].as_str().unwrap_or("")
                )
            })
        }
        FieldsCommand::Delete { name } => {
            let out = client.send_json(
                "DELETE",
                &client.app_url(&format!("/fields/{}", encode_path(&name))),
                None,
            )?;
            print(&out, args.json, |v| {
                println!("deleted field {name} and {} values", v["values_deleted"])
            })
        }
    }
}

#[derive(Subcommand)]
pub enum CustomersCommand {
    /// Show one customer.
    Get { customer_id: String },
    /// List customers, optionally a filter's members.
    List {
        #[arg(long)]
        filter: Option<String>,
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// customerId, created_at, updated_at or a field; - for descending.
        #[arg(long)]
        sort: Option<String>,
    },
    /// Delete one customer.
    Delete { customer_id: String },
    /// Erase one customer (right to erasure): everything held on them, with no trace left
    /// in the change log, the engines or their snapshots.
    Erase { customer_id: String },
    /// Everything held on one customer, as one JSON document (subject access request).
    Export { customer_id: String },
    /// Record a customer's consent on a channel: CUSTOMER_ID CHANNEL yes|no.
    Consent {
        customer_id: String,
        channel: String,
        /// yes (subscribed) or no (unsubscribed).
        #[arg(value_parser = ["yes", "no"])]
        subscribed: String,
        /// Where the statement comes from (default: cli).
        #[arg(long, default_value = "cli")]
        source: String,
    },
    /// A customer's subscriptions per channel.
    Subscriptions { customer_id: String },
    /// A customer's identities and the customers merged into it (aliases).
    Identities { customer_id: String },
    /// Link an identity to a customer: CUSTOMER_ID KIND VALUE (email, phone, device_id,
    /// external_code or a declared kind). An anonymous holder is merged in.
    Link {
        customer_id: String,
        kind: String,
        value: String,
    },
    /// Remove an identity from a customer: CUSTOMER_ID KIND VALUE.
    Unlink {
        customer_id: String,
        kind: String,
        value: String,
    },
    /// Find the customer holding an identity: KIND VALUE.
    Find { kind: String, value: String },
    /// Merge FROM into CUSTOMER_ID: events, identities, consent move; CUSTOMER_ID's values
    /// win; FROM stays an alias. Without --yes, shows what would move and merges nothing.
    Merge {
        customer_id: String,
        from: String,
        /// Merge (without it, only the preview is shown).
        #[arg(long)]
        yes: bool,
    },
}

#[derive(clap::Args)]
pub struct CustomersArgs {
    #[command(subcommand)]
    pub command: CustomersCommand,
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(flatten)]
    pub app: AppArg,
    #[arg(long, global = true)]
    pub json: bool,
}

fn print_identities(v: &Value) {
    if v["anonymous"].as_bool() == Some(true) {
        println!("(anonymous customer)");
    }
    for i in v["identities"].as_array().into_iter().flatten() {
        println!(
            "{:<14} {}",
            i["kind"].as_str().unwrap_or(""),
            i["value"].as_str().unwrap_or("")
        );
    }
    for a in v["aliases"].as_array().into_iter().flatten() {
        println!(
            "alias          {}  (merged {})",
            a["customerId"].as_str().unwrap_or(""),
            a["merged_at"].as_str().unwrap_or("")
        );
    }
}

fn customer_line(c: &Value) -> String {
    let fields = c["fields"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default();
    format!("{}  {}", c["customerId"].as_str().unwrap_or(""), fields)
}

pub fn customers(args: CustomersArgs) -> anyhow::Result<()> {
    let client = Client::for_app(&args.server, &args.app)?;
    match args.command {
        CustomersCommand::Get { customer_id } => {
            let out = client
                .get(&client.app_url(&format!("/customers/{}", encode_path(&customer_id))))?;
            print(&out, args.json, |v| {
                println!("{}", serde_json::to_string_pretty(v).unwrap_or_default())
            })
        }
        CustomersCommand::List {
            filter,
            limit,
            sort,
        } => {
            let mut url = client.app_url(&format!("/customers?limit={limit}"));
            if let Some(f) = filter {
                url.push_str(&format!("&filter={}", encode_query(&f)));
            }
            if let Some(s) = sort {
                url.push_str(&format!("&sort={}", encode_query(&s)));
            }
            let out = client.get(&url)?;
            print(&out, args.json, |v| {
                for c in v["customers"].as_array().into_iter().flatten() {
                    println!("{}", customer_line(c));
                }
            })
        }
        CustomersCommand::Delete { customer_id } => {
            client.send_json(
                "DELETE",
                &client.app_url(&format!("/customers/{}", encode_path(&customer_id))),
                None,
            )?;
            println!("deleted {customer_id}");
            Ok(())
        }
        CustomersCommand::Erase { customer_id } => {
            client.send_json(
                "DELETE",
                &client.app_url(&format!(
                    "/customers/{}?erase=true",
                    encode_path(&customer_id)
                )),
                None,
            )?;
            println!("erased {customer_id}");
            Ok(())
        }
        CustomersCommand::Consent {
            customer_id,
            channel,
            subscribed,
            source,
        } => {
            let out = client.send_json(
                "PUT",
                &client.app_url(&format!(
                    "/customers/{}/subscriptions/{}",
                    encode_path(&customer_id),
                    encode_path(&channel)
                )),
                Some(&json!({ "subscribed": subscribed == "yes", "source": source })),
            )?;
            print(&out, args.json, print_subscriptions)
        }
        CustomersCommand::Subscriptions { customer_id } => {
            let out = client.get(&client.app_url(&format!(
                "/customers/{}/subscriptions",
                encode_path(&customer_id)
            )))?;
            print(&out, args.json, print_subscriptions)
        }
        CustomersCommand::Identities { customer_id } => {
            let out = client.get(&client.app_url(&format!(
                "/customers/{}/identities",
                encode_path(&customer_id)
            )))?;
            print(&out, args.json, print_identities)
        }
        CustomersCommand::Link {
            customer_id,
            kind,
            value,
        } => {
            let out = client.send_json(
                "POST",
                &client.app_url(&format!(
                    "/customers/{}/identities",
                    encode_path(&customer_id)
                )),
                Some(&json!({ "kind": kind, "value": value })),
            )?;
            print(&out, args.json, |v| {
                println!(
                    "{} {} linked to {}",
                    v["identity"]["kind"].as_str().unwrap_or(""),
                    v["identity"]["value"].as_str().unwrap_or(""),
                    v["customer"]["customerId"].as_str().unwrap_or("")
                );
                if let Some(m) = v.get("merged") {
                    println!(
                        "merged the anonymous customer {} into it ({} events moved)",
                        m["from"].as_str().unwrap_or(""),
                        m["events_moved"]
                    );
                }
            })
        }
        CustomersCommand::Unlink {
            customer_id,
            kind,
            value,
        } => {
            client.send_json(
                "DELETE",
                &client.app_url(&format!(
                    "/customers/{}/identities/{}/{}",
                    encode_path(&customer_id),
                    encode_path(&kind),
                    encode_path(&value)
                )),
                None,
            )?;
            println!("unlinked {kind} {value} from {customer_id}");
            Ok(())
        }
        CustomersCommand::Find { kind, value } => {
            let out = client.get(&client.app_url(&format!(
                "/identities/{}/{}",
                encode_path(&kind),
                encode_path(&value)
            )))?;
            print(&out, args.json, |v| println!("{}", customer_line(v)))
        }
        CustomersCommand::Merge {
            customer_id,
            from,
            yes,
        } => {
            let url = client.app_url(&format!("/customers/{}/merge", encode_path(&customer_id)));
            if !yes {
                let out = client.get(&format!("{url}?from={}", encode_query(&from)))?;
                return print(&out, args.json, |v| {
                    println!(
                        "merging {} into {} would move {} events, {} identities and consent on [{}]",
                        v["from"].as_str().unwrap_or(""),
                        v["customerId"].as_str().unwrap_or(""),
                        v["events"],
                        v["identities"].as_array().map_or(0, Vec::len),
                        v["subscriptions"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(Value::as_str)
                            .collect::<Vec<_>>()
                            .join(", ")
                    );
                    println!("fields taken: {}", v["fields_filled"]);
                    println!("values that would lose: {}", v["lost"]);
                    println!("run again with --yes to merge");
                });
            }
            let out = client.send_json("POST", &url, Some(&json!({ "from": from })))?;
            print(&out, args.json, |v| {
                let m = &v["merge"];
                println!(
                    "merged {} into {}: {} events, {} identities, {} subscriptions moved; lost: {}",
                    m["from"].as_str().unwrap_or(""),
                    v["customerId"].as_str().unwrap_or(""),
                    m["events_moved"],
                    m["identities_moved"],
                    m["subscriptions_moved"],
                    m["lost"]
                );
            })
        }
        CustomersCommand::Export { customer_id } => {
            let out = client.get(
                &client.app_url(&format!("/customers/{}/export", encode_path(&customer_id))),
            )?;
            println!("{}", serde_json::to_string_pretty(&out)?);
            Ok(())
        }
    }
}

#[derive(Subcommand)]
pub enum SegmentsCommand {
    /// List saved segments with their current size.
    List,
    /// Save a filter as a segment: NAME FILTER.
    Create { name: String, filter: String },
    /// Show a segment, its size and its first members.
    Show { id: i64 },
    /// Replace a segment's name and filter.
    Update {
        id: i64,
        name: String,
        filter: String,
    },
    /// Delete a segment (its customers stay).
    Delete { id: i64 },
}

#[derive(clap::Args)]
pub struct SegmentsArgs {
    #[command(subcommand)]
    pub command: SegmentsCommand,
    #[command(flatten)]
    pub server: ServerArgs,
    #[command(flatten)]
    pub app: AppArg,
    #[arg(long, global = true)]
    pub json: bool,
}

fn segment_line(s: &Value) -> String {
    format!(
        "{:>5}  {:<28}  {:>10}  {}",
        s["id"],
        s["name"].as_str().unwrap_or(""),
        s["count"],
        s["filter_text"].as_str().unwrap_or("")
    )
}

pub fn segments(args: SegmentsArgs) -> anyhow::Result<()> {
    let client = Client::for_app(&args.server, &args.app)?;
    match args.command {
        SegmentsCommand::List => {
            let out = client.get(&client.app_url("/segments"))?;
            print(&out, args.json, |v| {
                for s in v["segments"].as_array().into_iter().flatten() {
                    println!("{}", segment_line(s));
                }
            })
        }
        SegmentsCommand::Create { name, filter } => {
            let out = client.send_json(
                "POST",
                &client.app_url("/segments"),
                Some(&json!({ "name": name, "filter": filter })),
            )?;
            print(&out, args.json, |v| println!("{}", segment_line(v)))
        }
        SegmentsCommand::Update { id, name, filter } => {
            let out = client.send_json(
                "PUT",
                &client.app_url(&format!("/segments/{id}")),
                Some(&json!({ "name": name, "filter": filter })),
            )?;
            print(&out, args.json, |v| println!("{}", segment_line(v)))
        }
        SegmentsCommand::Show { id } => {
            let segment = client.get(&client.app_url(&format!("/segments/{id}")))?;
            let members =
                client.get(&client.app_url(&format!("/segments/{id}/customers?limit=10")))?;
            if args.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(
                        &json!({ "segment": segment, "members": members })
                    )?
                );
                return Ok(());
            }
            println!("{}", segment_line(&segment));
            for c in members["customers"].as_array().into_iter().flatten() {
                println!("  {}", customer_line(c));
            }
            Ok(())
        }
        SegmentsCommand::Delete { id } => {
            client
                .send_json("DELETE", &client.app_url(&format!("/segments/{id}")), None)
                .context("deleting")?;
            println!("deleted segment {id}");
            Ok(())
        }
    }
}

/// Every channel the application takes, with the customer's standing consent on it.
fn print_subscriptions(v: &Value) {
    let held = v["subscriptions"].as_array().cloned().unwrap_or_default();
    for channel in v["channels"].as_array().into_iter().flatten() {
        let name = channel.as_str().unwrap_or("");
        match held.iter().find(|s| s["channel"] == *channel) {
            Some(s) => println!(
                "{name:<12}  {:<12}  since {}  ({})",
                if s["subscribed"] == true {
                    "subscribed"
                } else {
                    "unsubscribed"
                },
                s["changed_at"].as_str().unwrap_or(""),
                s["source"].as_str().unwrap_or("")
            ),
            None => println!("{name:<12}  no consent recorded"),
        }
    }
}
