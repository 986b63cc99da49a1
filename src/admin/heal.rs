//! `cairn admin heal status|start`: healing progress, and forcing a heal pass.

use cairn_proto::admin::{HealStatusRequest, HealStatusResponse, StartHealRequest};
use cairn_proto::meta::HealReason;
use serde_json::json;

use super::client::Admin;

/// The heal figures from the leader.
pub async fn status(admin: &Admin) -> anyhow::Result<HealStatusResponse> {
    admin
        .on_leader("HealStatus", HealStatusRequest {}, |mut c, r| async move {
            c.heal_status(r).await
        })
        .await
}

/// Queues every object of `target` (`BUCKET` or `BUCKET/PREFIX`) for a heal check; returns
/// how many were queued.
pub async fn start(admin: &Admin, target: &str) -> anyhow::Result<u64> {
    let (bucket, prefix) = target.split_once('/').unwrap_or((target, ""));
    let request = StartHealRequest {
        bucket: bucket.to_string(),
        prefix: prefix.to_string(),
    };
    let reply = admin
        .on_leader("StartHeal", request, |mut c, r| async move {
            c.start_heal(r).await
        })
        .await?;
    Ok(reply.queued)
}

fn reason_name(code: i32) -> &'static str {
    match HealReason::try_from(code) {
        Ok(HealReason::Read) => "read",
        Ok(HealReason::Scrub) => "scrub",
        Ok(HealReason::DegradedWrite) => "degraded-write",
        Ok(HealReason::NodeDown) => "node-down",
        Ok(HealReason::DiskLost) => "disk-lost",
        Ok(HealReason::Pass) => "pass",
        Ok(HealReason::Drain) => "drain",
        _ => "unknown",
    }
}

/// The status as JSON (stable field names, for scripts and tests).
pub fn to_json(s: &HealStatusResponse) -> serde_json::Value {
    let totals = s.totals.unwrap_or_default();
    json!({
        "queued_objects": s.queued_objects,
        "queued_bytes": s.queued_bytes,
        "active_objects": s.active_objects,
        "objects_healed": totals.objects_healed,
        "objects_failed": totals.objects_failed,
        "shards_rebuilt": totals.shards_rebuilt,
        "bytes_rebuilt": totals.bytes_rebuilt,
        "rate_bytes_per_sec": s.rate_bytes_per_sec,
        "eta_seconds": s.eta_seconds,
        "queued": s.sample.iter().map(|i| json!({
            "bucket": i.bucket,
            "key": i.key,
            "version_id": i.version_id,
            "reason": reason_name(i.reason),
            "size": i.size,
            "attempts": i.attempts,
        })).collect::<Vec<_>>(),
    })
}

/// The status as text.
pub fn render(s: &HealStatusResponse) -> String {
    let totals = s.totals.unwrap_or_default();
    let mib = |b: u64| b as f64 / (1u64 << 20) as f64;
    let eta = match s.eta_seconds {
        0 => "-".to_string(),
        e if e < 0 => "unknown".to_string(),
        e => format!("{e} s"),
    };
    let mut out = format!(
        "to do:  {} objects, {:.1} MiB ({} being healed)\n\
         done:   {} objects healed, {} failed; {} shards, {:.1} MiB rebuilt\n\
         rate:   {:.1} MiB/s   ETA: {eta}\n",
        s.queued_objects,
        mib(s.queued_bytes),
        s.active_objects,
        totals.objects_healed,
        totals.objects_failed,
        totals.shards_rebuilt,
        mib(totals.bytes_rebuilt),
        s.rate_bytes_per_sec / (1u64 << 20) as f64,
    );
    for i in &s.sample {
        out.push_str(&format!(
            "  {}/{} (version {}, {}, {} B, tried {}x)\n",
            i.bucket,
            i.key,
            i.version_id,
            reason_name(i.reason),
            i.size,
            i.attempts
        ));
    }
    out
}
