//! `cairn admin`: cluster status and meta membership, over the meta nodes' `Admin` API.

mod blob;
mod client;
mod heal;
mod locate;
mod status;
mod user;

use anyhow::Context;
use cairn_proto::admin::{
    AddMetaMemberRequest, InitializeRequest, RemoveMetaMemberRequest, SetBucketSchemeRequest,
};
use clap::{Args, Subcommand};

use client::{host_port, Admin};

/// Flags shared by every admin command.
#[derive(Args, Debug)]
pub struct AdminArgs {
    /// Meta endpoints (http://HOST:PORT), comma-separated; any member will do.
    #[arg(
        long = "meta",
        env = "CAIRN_META",
        value_delimiter = ',',
        default_value = "http://127.0.0.1:7000",
        global = true
    )]
    meta: Vec<String>,
    #[command(flatten)]
    keys: crate::Keys,
    #[command(subcommand)]
    command: AdminCommand,
}

#[derive(Subcommand, Debug)]
enum AdminCommand {
    /// Meta members, leader, Raft indices, blob nodes and disks.
    Status {
        /// Print JSON instead of tables.
        #[arg(long)]
        json: bool,
    },
    /// Create a new cluster: initialize the first --meta node, then add the others as voters.
    /// Every node must be pristine (started without --init on an empty directory).
    Init,
    /// Meta membership.
    #[command(subcommand)]
    Meta(MetaCommand),
    /// Bucket settings.
    #[command(subcommand)]
    Bucket(BucketCommand),
    /// Healing: progress, or force a pass over a bucket.
    #[command(subcommand)]
    Heal(HealCommand),
    /// Blob nodes: drain (decommission) and remove.
    #[command(subcommand)]
    Blob(BlobCommand),
    /// S3 users: add, list, info, disable, enable, remove, attach, detach.
    #[command(subcommand)]
    User(user::UserCommand),
    /// Custom policies for S3 users: add, list, remove.
    #[command(subcommand)]
    Policy(user::PolicyCommand),
    /// Where every shard of an object is, and whether it is really there.
    Locate {
        bucket: String,
        key: String,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
enum HealCommand {
    /// Objects and bytes queued and done, the rate and the time left.
    Status {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Check (and heal where needed) every object of BUCKET, or of BUCKET/PREFIX.
    Start { target: String },
}

#[derive(Subcommand, Debug)]
enum BlobCommand {
    /// Decommission blob node NODE_ID: it gets no new shards and the healers move every shard
    /// it holds to other nodes. Follow it with `cairn admin status`.
    Drain {
        node_id: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Make a draining blob node take new shards again (moved shards stay where they are).
    Undrain {
        node_id: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Remove blob node NODE_ID from the cluster. Refused unless it is draining and holds no
    /// shard any more.
    Remove {
        node_id: String,
        /// Remove it even if not drained (a node that will never come back): the shards it
        /// still holds are rebuilt from the others, as for a lost node.
        #[arg(long)]
        force: bool,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// Prints the outcome of a blob-node command.
fn report(json: bool, value: serde_json::Value, text: String) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        println!("{text}");
    }
    Ok(())
}

#[derive(Subcommand, Debug)]
enum BucketCommand {
    /// Set the erasure scheme of the bucket's new objects: K+M (e.g. 4+2), or `default`
    /// (chosen from the number of disks). Existing objects keep theirs.
    Scheme { bucket: String, scheme: String },
}

/// Parses `K+M` (or `default`, which is `None`).
fn parse_scheme(text: &str) -> anyhow::Result<Option<cairn_proto::meta::ErasureScheme>> {
    if text == "default" {
        return Ok(None);
    }
    let (k, m) = text
        .split_once('+')
        .ok_or_else(|| anyhow::anyhow!("scheme {text:?}: expected K+M, e.g. 4+2"))?;
    Ok(Some(cairn_proto::meta::ErasureScheme {
        data_shards: k.trim().parse().context("data shards")?,
        parity_shards: m.trim().parse().context("parity shards")?,
        block_size: 0,
    }))
}

#[derive(Subcommand, Debug)]
enum MetaCommand {
    /// Add the pristine meta node listening at ADDRESS (host:port as members reach it).
    Add {
        address: String,
        /// Keep it a learner (replicates, does not vote).
        #[arg(long)]
        learner: bool,
    },
    /// Remove meta member ID (voter or learner). Its id is never reused.
    Remove { id: u64 },
}

/// Adds the node at `address` through the leader and returns its new id.
async fn add_member(admin: &Admin, address: &str, learner_only: bool) -> anyhow::Result<u64> {
    let request = AddMetaMemberRequest {
        address: host_port(address).to_string(),
        learner_only,
    };
    let reply = admin
        .on_leader("AddMetaMember", request, |mut c, r| async move {
            c.add_meta_member(r).await
        })
        .await?;
    Ok(reply.node_id)
}

/// Runs one admin command.
pub async fn run(args: AdminArgs) -> anyhow::Result<()> {
    let admin = Admin::new(args.meta, args.keys.clone().admin())?;
    match args.command {
        AdminCommand::Status { json } => {
            let view = status::gather(&admin).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&view)?);
            } else {
                print!("{}", status::render(&view));
            }
        }
        AdminCommand::Init => {
            let (first, rest) = admin
                .endpoints()
                .split_first()
                .context("no meta endpoint")?;
            let reply = admin
                .call_at(
                    first,
                    "Initialize",
                    InitializeRequest {},
                    |mut c, r| async move { c.initialize(r).await },
                )
                .await
                .map_err(|s| {
                    anyhow::anyhow!("initialize {first}: {:?}: {}", s.code(), s.message())
                })?;
            println!(
                "initialized cluster {} with node {} at {first}",
                reply.cluster_id, reply.node_id
            );
            let leader_only = Admin::new(vec![first.clone()], args.keys.admin())?;
            for other in rest {
                let id = add_member(&leader_only, other, false).await?;
                println!("added meta node {id} at {other}");
            }
        }
        AdminCommand::Meta(MetaCommand::Add { address, learner }) => {
            let id = add_member(&admin, &address, learner).await?;
            println!("added meta node {id} at {address}");
        }
        AdminCommand::Bucket(BucketCommand::Scheme { bucket, scheme }) => {
            let request = SetBucketSchemeRequest {
                bucket: bucket.clone(),
                scheme: parse_scheme(&scheme)?,
            };
            let reply = admin
                .on_leader("SetBucketScheme", request, |mut c, r| async move {
                    c.set_bucket_scheme(r).await
                })
                .await?;
            match reply.bucket.and_then(|b| b.scheme) {
                Some(s) => println!(
                    "bucket {bucket}: new objects use {}+{}",
                    s.data_shards, s.parity_shards
                ),
                None => println!("bucket {bucket}: new objects use the default scheme"),
            }
        }
        AdminCommand::Heal(HealCommand::Status { json }) => {
            let reply = heal::status(&admin).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&heal::to_json(&reply))?);
            } else {
                print!("{}", heal::render(&reply));
            }
        }
        AdminCommand::Heal(HealCommand::Start { target }) => {
            let queued = heal::start(&admin, &target).await?;
            println!("queued {queued} objects of {target} for healing");
        }
        AdminCommand::Blob(BlobCommand::Drain { node_id, json }) => {
            let left = blob::drain(&admin, &node_id).await?;
            report(
                json,
                serde_json::json!({
                    "node_id": node_id,
                    "state": "draining",
                    "usable_disks_left": left,
                }),
                format!(
                    "blob node {node_id} is draining; follow it with `cairn admin status`\n\
                     {left} usable disks remain on the other nodes: objects with more shards \
                     (k + m) than that cannot move"
                ),
            )?;
        }
        AdminCommand::Blob(BlobCommand::Undrain { node_id, json }) => {
            blob::undrain(&admin, &node_id).await?;
            report(
                json,
                serde_json::json!({ "node_id": node_id, "state": "active" }),
                format!("blob node {node_id} is active again"),
            )?;
        }
        AdminCommand::Blob(BlobCommand::Remove {
            node_id,
            force,
            json,
        }) => {
            let reply = blob::remove(&admin, &node_id, force).await?;
            let text = if reply.remaining_shards > 0 {
                format!(
                    "removed blob node {node_id}; {} shards that named it will be rebuilt from the others",
                    reply.remaining_shards
                )
            } else {
                format!("removed blob node {node_id}")
            };
            report(
                json,
                serde_json::json!({
                    "node_id": node_id,
                    "removed": true,
                    "remaining_shards": reply.remaining_shards,
                }),
                text,
            )?;
        }
        AdminCommand::Locate { bucket, key, json } => {
            let view = locate::gather(&admin, &bucket, &key).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&view)?);
            } else {
                print!("{}", locate::render(&view));
            }
        }
        AdminCommand::User(command) => user::run_user(&admin, command).await?,
        AdminCommand::Policy(command) => user::run_policy(&admin, command).await?,
        AdminCommand::Meta(MetaCommand::Remove { id }) => {
            admin
                .on_leader(
                    "RemoveMetaMember",
                    RemoveMetaMemberRequest { node_id: id },
                    |mut c, r| async move { c.remove_meta_member(r).await },
                )
                .await?;
            println!("removed meta node {id}");
        }
    }
    Ok(())
}
