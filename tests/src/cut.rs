//! A TCP hop between the ledger and a shared broker that a test can cut and mend: a
//! broker outage as the ledger sees it (every connection drops, new ones are refused),
//! without stopping the broker that other tests use at the same time. Or a server that
//! stops answering: [`TcpCut::blackhole`] drops the connections it had and then accepts new
//! ones without ever passing a byte, as a server going down or a partitioned network does.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub struct TcpCut {
    address: std::net::SocketAddr,
    /// True while cut: existing connections are closed and new ones refused.
    cut: Arc<watch::Sender<bool>>,
    /// True while a black hole: new connections are accepted and held, silent.
    silent: Arc<watch::Sender<bool>>,
    stopped: Arc<AtomicBool>,
}

impl TcpCut {
    /// Forwards a new local port to `upstream` (`host:port`).
    pub async fn to(upstream: &str) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let cut = Arc::new(watch::Sender::new(false));
        let silent = Arc::new(watch::Sender::new(false));
        let stopped = Arc::new(AtomicBool::new(false));
        let (upstream, state, done) = (upstream.to_owned(), Arc::clone(&cut), Arc::clone(&stopped));
        let hole = Arc::clone(&silent);
        tokio::spawn(async move {
            while !done.load(Ordering::Relaxed) {
                let Ok((client, _)) = listener.accept().await else { continue };
                if *hole.borrow() {
                    let mut open = hole.subscribe();
                    // Held open and unanswered until the hole closes, then dropped.
                    tokio::spawn(async move {
                        let _ = open.wait_for(|silent| !*silent).await;
                        drop(client);
                    });
                    continue;
                }
                if *state.borrow() {
                    drop(client); // refused while cut
                    continue;
                }
                let (upstream, mut cut) = (upstream.clone(), state.subscribe());
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(&upstream).await else { return };
                    let (mut client, mut server) = (client, server);
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut.wait_for(|cut| *cut) => {}
                    }
                });
            }
        });
        Ok(Self { address, cut, silent, stopped })
    }

    /// `host:port` to give the ledger instead of the broker's.
    pub fn address(&self) -> String {
        self.address.to_string()
    }

    /// Drops every connection and refuses new ones.
    pub fn cut(&self) {
        self.cut.send_replace(true);
    }

    /// Drops every connection, then accepts new ones and never answers them.
    pub fn blackhole(&self) {
        self.silent.send_replace(true);
        self.cut.send_replace(true);
    }

    /// Lets connections through again.
    pub fn mend(&self) {
        self.silent.send_replace(false);
        self.cut.send_replace(false);
    }
}

impl Drop for TcpCut {
    fn drop(&mut self) {
        self.stopped.store(true, Ordering::Relaxed);
        self.silent.send_replace(false);
        self.cut.send_replace(true);
    }
}
