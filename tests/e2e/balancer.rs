//! A TCP load balancer on loopback, standing in for HAProxy in front of several gateways
//! (the compose test uses the real HAProxy): each new client connection goes to the next
//! gateway in turn, and a gateway that refuses the connection is skipped, as HAProxy's
//! `option redispatch` does. It knows nothing of S3: bytes are copied both ways.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};

/// A running balancer; dropping it stops accepting new connections.
pub struct Balancer {
    /// `http://127.0.0.1:PORT`, for S3 clients.
    pub endpoint: String,
    accept: tokio::task::JoinHandle<()>,
}

impl Balancer {
    /// Balances over `backends` (`http://host:port` or `host:port`).
    pub async fn start(backends: &[String]) -> Balancer {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind balancer");
        let endpoint = format!("http://{}", listener.local_addr().expect("balancer addr"));
        let backends: Arc<Vec<String>> = Arc::new(
            backends
                .iter()
                .map(|b| b.trim_start_matches("http://").to_string())
                .collect(),
        );
        let next = Arc::new(AtomicUsize::new(0));
        let accept = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let backends = backends.clone();
                let first = next.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(async move {
                    for step in 0..backends.len() {
                        let backend = &backends[(first + step) % backends.len()];
                        if let Ok(mut server) = TcpStream::connect(backend).await {
                            let _ = server.set_nodelay(true);
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                            return;
                        }
                    }
                    // Every gateway refused: the client sees the connection closed.
                });
            }
        });
        Balancer { endpoint, accept }
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        self.accept.abort();
    }
}
