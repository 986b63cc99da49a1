//! Last-resort cleanup: the node processes and network namespaces a run created, killed and
//! deleted on Ctrl-C / SIGTERM (a `Drop` does not run then) and after a panic.
//!
//! [`crate::cluster::Cluster`] registers what it creates here and its `Drop` tears it down in
//! the normal case; the signal handler uses the same registry. Leftovers of a run killed with
//! SIGKILL are removed by the next run in the same slot (see [`crate::slot`]).

use std::collections::BTreeSet;
use std::sync::Mutex;

/// Everything a run has created that must not outlive it.
#[derive(Default)]
struct Registry {
    pids: BTreeSet<u32>,
    /// Tears the network down (namespaces, bridge, veths).
    network: Option<Box<dyn Fn() + Send>>,
}

static REGISTRY: Mutex<Option<Registry>> = Mutex::new(None);

fn with<R>(f: impl FnOnce(&mut Registry) -> R) -> R {
    let mut guard = REGISTRY.lock().unwrap_or_else(|p| p.into_inner());
    f(guard.get_or_insert_with(Registry::default))
}

/// A node process was started.
pub fn add_pid(pid: u32) {
    with(|r| r.pids.insert(pid));
}

/// A node process was reaped.
pub fn remove_pid(pid: u32) {
    with(|r| r.pids.remove(&pid));
}

/// Sets how to tear the network down (replacing any earlier one).
pub fn set_network_teardown(f: Box<dyn Fn() + Send>) {
    with(|r| r.network = Some(f));
}

/// The network was torn down normally.
pub fn clear_network_teardown() {
    with(|r| r.network = None);
}

/// Kills every registered process (SIGKILL also ends a stopped one) and tears the network
/// down. Safe to call more than once.
pub fn run_now() {
    let (pids, network) = with(|r| (std::mem::take(&mut r.pids), r.network.take()));
    for pid in pids {
        crate::signal::kill(pid);
    }
    if let Some(teardown) = network {
        teardown();
    }
}

/// Runs [`run_now`] and exits with status 130 on Ctrl-C, or SIGTERM on Unix. Needs a Tokio
/// runtime.
pub fn install_signal_handlers() {
    tokio::spawn(async {
        wait_for_signal().await;
        eprintln!("jepsen-tests: interrupted; killing the cluster and removing its network");
        run_now();
        std::process::exit(130);
    });
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
