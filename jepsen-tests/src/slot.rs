//! Run slots: a lock file per slot, so concurrent runs on one machine never share network
//! names or addresses, and a run can safely remove what a crashed run in its slot left
//! behind (it holds the lock, so no live run owns those leftovers).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;

use crate::error::{Error, Result};

/// How many runs may go on at once on one machine.
pub const SLOTS: u8 = 32;

/// A held slot; released when dropped (or when the process dies).
pub struct Slot {
    /// 0..[`SLOTS`]: picks the subnet 10.77.<index>.0/24 and the namespace prefix.
    pub index: u8,
    pids_path: PathBuf,
    _lock: File,
}

impl Slot {
    /// Takes the first free slot, then kills the node processes a crashed earlier run in it
    /// left behind.
    pub fn acquire() -> Result<Slot> {
        let dir = std::env::temp_dir().join("cairn-jepsen");
        std::fs::create_dir_all(&dir).map_err(|e| Error::io("create", &dir, e))?;
        for index in 0..SLOTS {
            let path = dir.join(format!("slot-{index}.lock"));
            let file = OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
                .map_err(|e| Error::io("open", &path, e))?;
            match file.try_lock() {
                Ok(()) => {
                    let slot = Slot {
                        index,
                        pids_path: dir.join(format!("slot-{index}.pids")),
                        _lock: file,
                    };
                    slot.kill_leftover_processes();
                    return Ok(slot);
                }
                Err(std::fs::TryLockError::WouldBlock) => continue,
                Err(std::fs::TryLockError::Error(e)) => return Err(Error::io("lock", &path, e)),
            }
        }
        Err(Error::Config(format!(
            "all {SLOTS} run slots are taken (other runs in progress?)"
        )))
    }

    /// Notes a node process, so that the next run in this slot can kill it if this run dies
    /// without cleaning up. `marker` is a string in its command line (its data directory).
    pub fn note_pid(&self, pid: u32, marker: &str) {
        if let Ok(mut f) = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.pids_path)
        {
            let _ = writeln!(f, "{pid} {marker}");
        }
    }

    /// Kills processes listed by an earlier run in this slot that are still running with the
    /// same command line (so a recycled pid is left alone), then forgets the list. Needs
    /// `/proc` (Linux); elsewhere the list is only forgotten.
    fn kill_leftover_processes(&self) {
        let Ok(text) = std::fs::read_to_string(&self.pids_path) else {
            return;
        };
        for line in text.lines() {
            let Some((pid, marker)) = line.split_once(' ') else {
                continue;
            };
            let Ok(pid) = pid.parse::<u32>() else {
                continue;
            };
            if command_line_contains(pid, marker) {
                eprintln!("jepsen-tests: killing leftover node process {pid} ({marker})");
                crate::signal::kill(pid);
            }
        }
        let _ = std::fs::remove_file(&self.pids_path);
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.pids_path);
    }
}

#[cfg(target_os = "linux")]
fn command_line_contains(pid: u32, marker: &str) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|raw| {
            String::from_utf8_lossy(&raw)
                .replace('\0', " ")
                .contains(marker)
        })
        .unwrap_or(false)
}

#[cfg(not(target_os = "linux"))]
fn command_line_contains(_pid: u32, _marker: &str) -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_holders_never_share_a_slot() {
        let a = Slot::acquire().expect("slot a");
        let b = Slot::acquire().expect("slot b");
        assert_ne!(a.index, b.index);
        drop(a);
        // A released slot can be taken again, never one still held.
        let c = Slot::acquire().expect("slot c");
        assert_ne!(c.index, b.index);
    }
}
