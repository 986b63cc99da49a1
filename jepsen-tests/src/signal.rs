//! Signals to node processes: SIGKILL, SIGSTOP, SIGCONT (Unix); elsewhere only killing works.

/// Sends SIGKILL to `pid`, ignoring errors (it may be gone already).
pub fn kill(pid: u32) {
    #[cfg(unix)]
    send(pid, libc::SIGKILL);
    #[cfg(not(unix))]
    {
        let _ = std::process::Command::new("taskkill")
            .args(["/F", "/PID", &pid.to_string()])
            .status();
    }
}

/// Freezes `pid` (SIGSTOP). Returns false where that is not possible.
pub fn stop(pid: u32) -> bool {
    #[cfg(unix)]
    return send(pid, libc::SIGSTOP);
    #[cfg(not(unix))]
    {
        let _ = pid;
        false
    }
}

/// Resumes `pid` (SIGCONT).
pub fn resume(pid: u32) -> bool {
    #[cfg(unix)]
    return send(pid, libc::SIGCONT);
    #[cfg(not(unix))]
    {
        let _ = pid;
        false
    }
}

/// Whether process pausing is available here.
pub fn can_pause() -> bool {
    cfg!(unix)
}

#[cfg(unix)]
fn send(pid: u32, sig: libc::c_int) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: kill(2) has no memory-safety preconditions; a wrong pid only fails.
    unsafe { libc::kill(pid, sig) == 0 }
}
