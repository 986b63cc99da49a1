//! Starting and stopping the real `cairn` binary for end-to-end tests, and building real
//! `aws-sdk-s3` clients against it. Loopback only; every port is picked by the OS.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::Client;

pub const ACCESS_KEY: &str = "e2e-access";
pub const SECRET_KEY: &str = "e2e-secret-key";

const START_TIMEOUT: Duration = Duration::from_secs(120);

/// Path of the binary under test.
pub fn cairn_bin() -> &'static str {
    env!("CARGO_BIN_EXE_cairn")
}

/// A `cairn` child process whose stdout is scanned for a line with `marker`.
pub struct Proc {
    child: Child,
    lines: mpsc::Receiver<String>,
    pub log: PathBuf,
}

impl Proc {
    /// Spawns `cairn args...` with its stderr in `log`.
    pub fn spawn(args: &[String], log: &Path, envs: &[(&str, &str)]) -> Proc {
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("open log");
        let mut cmd = Command::new(cairn_bin());
        cmd.args(args)
            .env("CAIRN_ACCESS_KEY", ACCESS_KEY)
            .env("CAIRN_SECRET_KEY", SECRET_KEY)
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr));
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn cairn");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Proc {
            child,
            lines: rx,
            log: log.to_path_buf(),
        }
    }

    /// Waits for a stdout line containing `marker` and returns the rest of it after the marker.
    pub fn wait_line(&mut self, marker: &str) -> String {
        let deadline = std::time::Instant::now() + START_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    if let Some(at) = line.find(marker) {
                        return line[at + marker.len()..].trim().to_string();
                    }
                }
                Err(_) => {
                    let log = std::fs::read_to_string(&self.log).unwrap_or_default();
                    let status = self.child.try_wait().ok().flatten();
                    panic!("no `{marker}` line from cairn (exit status {status:?}); log:\n{log}");
                }
            }
        }
    }

    /// `kill -9`: no chance to flush or clean up anything.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM and wait for the process to exit by itself; panics unless it exits with
    /// status 0 within 30 s (Unix). Elsewhere it is killed.
    pub fn stop(&mut self) {
        #[cfg(unix)]
        {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(self.child.id().to_string())
                .status();
            let deadline = std::time::Instant::now() + Duration::from_secs(30);
            while std::time::Instant::now() < deadline {
                if let Ok(Some(status)) = self.child.try_wait() {
                    assert!(status.success(), "cairn exited with {status} on SIGTERM");
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            self.kill9();
            panic!("cairn did not shut down within 30 s of SIGTERM");
        }
        #[cfg(not(unix))]
        self.kill9();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(60).collect();
            eprintln!("---- last lines of {} ----", self.log.display());
            for line in tail.into_iter().rev() {
                eprintln!("{line}");
            }
        }
    }
}

/// An embedded `cairn server` over `disks` temporary data directories.
pub struct Server {
    // Declared first so it is dropped (killed, log dumped) before the directory goes.
    proc: Option<Proc>,
    pub tmp: tempfile::TempDir,
    pub dirs: Vec<PathBuf>,
    pub endpoint: String,
    /// The embedded meta service's endpoint (for `cairn admin --meta`).
    pub meta_endpoint: String,
    env: Vec<(&'static str, String)>,
}

impl Server {
    pub fn start(disks: usize) -> Server {
        Self::start_with_env(disks, &[])
    }

    /// Starts a server with extra environment variables (its settings).
    pub fn start_with_env(disks: usize, env: &[(&'static str, &str)]) -> Server {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dirs = (0..disks)
            .map(|i| tmp.path().join(format!("disk{i}")))
            .collect();
        let mut server = Server {
            tmp,
            dirs,
            endpoint: String::new(),
            meta_endpoint: String::new(),
            proc: None,
            env: env.iter().map(|(k, v)| (*k, v.to_string())).collect(),
        };
        server.boot();
        server
    }

    fn boot(&mut self) {
        let mut args = vec![
            "server".to_string(),
            "--address".into(),
            "127.0.0.1:0".into(),
        ];
        args.extend(self.dirs.iter().map(|d| d.display().to_string()));
        let env: Vec<(&str, &str)> = self.env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let mut proc = Proc::spawn(&args, &self.tmp.path().join("server.log"), &env);
        self.endpoint = proc.wait_line("S3 endpoint:");
        self.meta_endpoint = first_word(&proc.wait_line("cairn admin --meta"));
        self.proc = Some(proc);
    }

    /// `kill -9` the server, then start it again over the same directories.
    pub fn kill9_and_restart(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.kill9();
        }
        self.boot();
    }

    /// Stops the server cleanly.
    pub fn stop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.stop();
        }
    }

    /// Starts a stopped server again.
    pub fn restart(&mut self) {
        self.stop();
        self.boot();
    }

    pub fn client(&self) -> Client {
        client_for(&self.endpoint, ACCESS_KEY, SECRET_KEY)
    }

    /// Waits (bounded) until the server's log has a line containing `needle`.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        let log = self.tmp.path().join("server.log");
        loop {
            if std::fs::read_to_string(&log).is_ok_and(|l| l.contains(needle)) {
                return true;
            }
            if std::time::Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.proc.as_ref().map_or(0, Proc::pid)
    }

    /// Every shard file under the data directories.
    pub fn shard_files(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for d in &self.dirs {
            collect_files(&d.join("blob").join("shards"), &mut out);
        }
        out.sort();
        out
    }
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            collect_files(&p, out);
        } else if !p.to_string_lossy().ends_with(".tmp") {
            out.push(p);
        }
    }
}

/// An `aws-sdk-s3` client with default settings (checksums included), path-style.
pub fn client_for(endpoint: &str, access_key: &str, secret_key: &str) -> Client {
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(Credentials::new(access_key, secret_key, None, None, "e2e"))
        .force_path_style(true)
        .build();
    Client::from_conf(config)
}

/// Deterministic pseudo-random bytes (xorshift), different per `seed`.
pub fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

pub async fn put(client: &Client, bucket: &str, key: &str, body: Vec<u8>) {
    client
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(body.into())
        .send()
        .await
        .unwrap_or_else(|e| panic!("put {bucket}/{key}: {e:?}"));
}

pub async fn get(client: &Client, bucket: &str, key: &str) -> Vec<u8> {
    let out = client
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap_or_else(|e| panic!("get {bucket}/{key}: {e:?}"));
    out.body
        .collect()
        .await
        .expect("body")
        .into_bytes()
        .to_vec()
}

/// The S3 error code of a failed SDK call.
pub fn code<E, R>(err: &aws_sdk_s3::error::SdkError<E, R>) -> String
where
    E: aws_sdk_s3::error::ProvideErrorMetadata + std::fmt::Debug,
    R: std::fmt::Debug,
{
    match err.as_service_error() {
        Some(e) => e.code().unwrap_or("<none>").to_string(),
        None => format!("<not a service error: {err:?}>"),
    }
}

/// The HTTP status of a failed SDK call.
pub fn status<E>(
    err: &aws_sdk_s3::error::SdkError<E, aws_smithy_runtime_api::http::Response>,
) -> u16 {
    err.raw_response().map(|r| r.status().as_u16()).unwrap_or(0)
}

/// Starts a presigned PUT of `bucket/key` over a raw socket, declaring `content_length` but
/// sending only `partial`, and returns the open connection: for bodies the SDK cannot cut short.
pub async fn partial_presigned_put(
    s3: &Client,
    bucket: &str,
    key: &str,
    content_length: usize,
    partial: &[u8],
) -> tokio::net::TcpStream {
    use aws_sdk_s3::presigning::PresigningConfig;
    use tokio::io::AsyncWriteExt;
    let cfg = PresigningConfig::expires_in(Duration::from_secs(300)).expect("presigning config");
    let url = s3
        .put_object()
        .bucket(bucket)
        .key(key)
        .presigned(cfg)
        .await
        .expect("presign put");
    let uri = url.uri().trim_start_matches("http://").to_string();
    let (host, path) = uri.split_at(uri.find('/').expect("path"));
    let mut stream = tokio::net::TcpStream::connect(host).await.expect("connect");
    let head =
        format!("PUT {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {content_length}\r\n\r\n");
    stream.write_all(head.as_bytes()).await.expect("write head");
    stream.write_all(partial).await.expect("write partial body");
    stream
}

/// The first whitespace-separated word of a line (the address in `META addr ...` lines).
pub fn first_word(line: &str) -> String {
    line.split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// Peak resident memory of a process in KiB (Linux `VmHWM`).
#[cfg(target_os = "linux")]
pub fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}
