//! `cairn admin user ...` and `cairn admin policy ...`: S3 users and their policies, stored
//! in the meta service (see docs/configuration.md, "Users and policies").
//!
//! Custom policy documents are parsed here with the gateway's evaluator before they are
//! sent, so a policy the gateways would not honour in full (an unsupported condition, a
//! non-S3 action) is refused at `policy add` with the reason.

use anyhow::{bail, Context};
use cairn_gateway::policy::{Policy, PolicyKind};
use cairn_proto::admin::{
    AddUserRequest, GetUserRequest, IamUser, ListPoliciesRequest, ListUsersRequest,
    PutPolicyRequest, RemovePolicyRequest, RemoveUserRequest, UpdateUserRequest,
};
use clap::Subcommand;
use rand::Rng;
use serde_json::json;

use super::client::Admin;

#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Create a user. Keys not given are generated, and printed.
    Add {
        /// Its access key (3-128 of [A-Za-z0-9._-]); generated when absent.
        #[arg(long)]
        access_key: Option<String>,
        /// Its secret key (8-128 characters); generated when absent.
        #[arg(long)]
        secret_key: Option<String>,
        /// A policy to attach (readwrite, readonly, writeonly, admin or a custom one);
        /// repeat for more. Without any the user can do nothing.
        #[arg(long = "policy")]
        policies: Vec<String>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Every user: access key, state, policies.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// One user (without its secret).
    Info {
        access_key: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Refuse the user's requests (InvalidAccessKeyId) from now on (within the gateways'
    /// 5 s cache).
    Disable { access_key: String },
    /// Accept the user's requests again.
    Enable { access_key: String },
    /// Remove the user for good.
    Remove { access_key: String },
    /// Attach a policy to the user.
    Attach { access_key: String, policy: String },
    /// Detach a policy from the user.
    Detach { access_key: String, policy: String },
}

#[derive(Subcommand, Debug)]
pub enum PolicyCommand {
    /// Store (or replace) custom policy NAME from an IAM policy document in FILE.
    Add {
        name: String,
        file: std::path::PathBuf,
    },
    /// Every custom policy (canned ones: readwrite, readonly, writeonly, admin).
    List {
        /// Print JSON (with the documents) instead of names.
        #[arg(long)]
        json: bool,
    },
    /// Remove custom policy NAME (refused while a user has it attached).
    Remove { name: String },
}

/// `len` random characters from `alphabet`.
fn random_string(alphabet: &[u8], len: usize) -> String {
    let mut rng = rand::rng();
    (0..len)
        .map(|_| alphabet[rng.random_range(0..alphabet.len())] as char)
        .collect()
}

fn user_json(u: &IamUser) -> serde_json::Value {
    json!({
        "access_key": u.access_key,
        "status": if u.disabled { "disabled" } else { "enabled" },
        "policies": u.policies,
        "created_ms": u.created_ms,
    })
}

fn user_text(u: &IamUser) -> String {
    format!(
        "{}\t{}\t{}",
        u.access_key,
        if u.disabled { "disabled" } else { "enabled" },
        if u.policies.is_empty() {
            "-".to_string()
        } else {
            u.policies.join(",")
        }
    )
}

fn print(json: bool, value: serde_json::Value, text: String) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        println!("{text}");
    }
    Ok(())
}

async fn update(
    admin: &Admin,
    access_key: String,
    enabled: Option<bool>,
    attach: Vec<String>,
    detach: Vec<String>,
) -> anyhow::Result<IamUser> {
    let request = UpdateUserRequest {
        access_key,
        enabled,
        attach,
        detach,
    };
    let reply = admin
        .on_leader("UpdateUser", request, |mut c, r| async move {
            c.update_user(r).await
        })
        .await?;
    reply.user.context("the meta service answered no user")
}

/// Runs one `cairn admin user` command.
pub async fn run_user(admin: &Admin, command: UserCommand) -> anyhow::Result<()> {
    match command {
        UserCommand::Add {
            access_key,
            secret_key,
            policies,
            json,
        } => {
            const UPPER: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
            const ANY: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
            let access_key = access_key.unwrap_or_else(|| random_string(UPPER, 20));
            let secret_key = secret_key.unwrap_or_else(|| random_string(ANY, 40));
            let request = AddUserRequest {
                user: Some(IamUser {
                    access_key: access_key.clone(),
                    secret_key: secret_key.clone(),
                    policies,
                    ..Default::default()
                }),
            };
            let reply = admin
                .on_leader(
                    "AddUser",
                    request,
                    |mut c, r| async move { c.add_user(r).await },
                )
                .await?;
            let user = reply.user.context("the meta service answered no user")?;
            let mut value = user_json(&user);
            value["secret_key"] = json!(secret_key);
            print(
                json,
                value,
                format!(
                    "added user {access_key}\nAccess key: {access_key}\nSecret key: {secret_key}\nPolicies:   {}",
                    if user.policies.is_empty() {
                        "none (the user can do nothing until one is attached)".to_string()
                    } else {
                        user.policies.join(", ")
                    }
                ),
            )
        }
        UserCommand::List { json } => {
            let reply = admin
                .on_leader("ListUsers", ListUsersRequest {}, |mut c, r| async move {
                    c.list_users(r).await
                })
                .await?;
            let mut text = String::from("ACCESS KEY\tSTATUS\tPOLICIES");
            for u in &reply.users {
                text.push('\n');
                text.push_str(&user_text(u));
            }
            print(
                json,
                json!({ "users": reply.users.iter().map(user_json).collect::<Vec<_>>() }),
                text,
            )
        }
        UserCommand::Info { access_key, json } => {
            let request = GetUserRequest { access_key };
            let reply = admin
                .on_leader(
                    "GetUser",
                    request,
                    |mut c, r| async move { c.get_user(r).await },
                )
                .await?;
            let user = reply.user.context("the meta service answered no user")?;
            let text = format!(
                "Access key: {}\nStatus:     {}\nPolicies:   {}",
                user.access_key,
                if user.disabled { "disabled" } else { "enabled" },
                user.policies.join(", ")
            );
            print(json, user_json(&user), text)
        }
        UserCommand::Disable { access_key } => {
            update(admin, access_key.clone(), Some(false), vec![], vec![]).await?;
            println!("user {access_key} disabled");
            Ok(())
        }
        UserCommand::Enable { access_key } => {
            update(admin, access_key.clone(), Some(true), vec![], vec![]).await?;
            println!("user {access_key} enabled");
            Ok(())
        }
        UserCommand::Remove { access_key } => {
            let request = RemoveUserRequest {
                access_key: access_key.clone(),
            };
            admin
                .on_leader("RemoveUser", request, |mut c, r| async move {
                    c.remove_user(r).await
                })
                .await?;
            println!("user {access_key} removed");
            Ok(())
        }
        UserCommand::Attach { access_key, policy } => {
            let user = update(admin, access_key, None, vec![policy], vec![]).await?;
            println!("{}", user_text(&user));
            Ok(())
        }
        UserCommand::Detach { access_key, policy } => {
            let user = update(admin, access_key, None, vec![], vec![policy]).await?;
            println!("{}", user_text(&user));
            Ok(())
        }
    }
}

/// Runs one `cairn admin policy` command.
pub async fn run_policy(admin: &Admin, command: PolicyCommand) -> anyhow::Result<()> {
    match command {
        PolicyCommand::Add { name, file } => {
            let document = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            if let Err(e) = Policy::parse(&document, &PolicyKind::User) {
                bail!("policy {name} ({}): {e}", file.display());
            }
            let request = PutPolicyRequest {
                name: name.clone(),
                document,
            };
            admin
                .on_leader("PutPolicy", request, |mut c, r| async move {
                    c.put_policy(r).await
                })
                .await?;
            println!("policy {name} stored");
            Ok(())
        }
        PolicyCommand::List { json } => {
            let reply = admin
                .on_leader(
                    "ListPolicies",
                    ListPoliciesRequest {},
                    |mut c, r| async move { c.list_policies(r).await },
                )
                .await?;
            let value = json!({
                "policies": reply.policies.iter().map(|p| {
                    let document: serde_json::Value =
                        serde_json::from_str(&p.document).unwrap_or(serde_json::Value::Null);
                    json!({ "name": p.name, "document": document })
                }).collect::<Vec<_>>(),
            });
            let text = reply
                .policies
                .iter()
                .map(|p| p.name.as_str())
                .collect::<Vec<_>>()
                .join("\n");
            print(json, value, text)
        }
        PolicyCommand::Remove { name } => {
            let request = RemovePolicyRequest { name: name.clone() };
            admin
                .on_leader("RemovePolicy", request, |mut c, r| async move {
                    c.remove_policy(r).await
                })
                .await?;
            println!("policy {name} removed");
            Ok(())
        }
    }
}
