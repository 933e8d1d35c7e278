//! The simplest load balancer in front of several API processes: each new TCP connection
//! goes to the next upstream in turn, skipping one that refuses it (a killed process), as
//! a round-robin balancer with connect-time health checks would. A connection stays with
//! its upstream until either side closes it, so a process killed mid-request loses the
//! requests on its connections: their clients get no answer, never a wrong one.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

pub struct RoundRobin {
    address: SocketAddr,
    /// Connections each upstream was given, in the order of `upstreams`.
    served: Arc<Vec<AtomicUsize>>,
    accept: JoinHandle<()>,
}

impl RoundRobin {
    /// Listens on a new local port and spreads connections over `upstreams` (`host:port`).
    pub async fn over(upstreams: Vec<String>) -> anyhow::Result<Self> {
        anyhow::ensure!(!upstreams.is_empty(), "a balancer needs an upstream");
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let served: Arc<Vec<AtomicUsize>> =
            Arc::new(upstreams.iter().map(|_| AtomicUsize::new(0)).collect());
        let counts = Arc::clone(&served);
        let accept = tokio::spawn(async move {
            let next = AtomicUsize::new(0);
            loop {
                let Ok((mut client, _)) = listener.accept().await else { continue };
                let first = next.fetch_add(1, Ordering::Relaxed);
                let (upstreams, counts) = (upstreams.clone(), Arc::clone(&counts));
                tokio::spawn(async move {
                    for turn in 0..upstreams.len() {
                        let index = (first + turn) % upstreams.len();
                        if let Ok(mut server) = TcpStream::connect(&upstreams[index]).await {
                            counts[index].fetch_add(1, Ordering::Relaxed);
                            let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                            return;
                        }
                    }
                    // Every upstream refused: the client sees its connection closed.
                });
            }
        });
        Ok(Self { address, served, accept })
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// Connections each upstream was given so far.
    pub fn served(&self) -> Vec<usize> {
        self.served.iter().map(|count| count.load(Ordering::Relaxed)).collect()
    }
}

impl Drop for RoundRobin {
    fn drop(&mut self) {
        self.accept.abort();
    }
}
