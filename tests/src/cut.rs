//! A TCP hop between the ledger and a broker or database that a test can cut and mend: an
//! outage as the ledger sees it (every connection drops, new ones are refused), without
//! stopping a server that other tests use at the same time. Or a server that stops
//! answering: [`TcpCut::blackhole`] drops the connections it had and then accepts new ones
//! without ever passing a byte, as a server going down or a partitioned network does.
//!
//! The hop runs on a thread and runtime of its own: a client that blocks the test's runtime
//! while it waits for the server (librdkafka's consumer closing on drop, say) must not
//! stop the hop it is waiting on.

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub struct TcpCut {
    address: SocketAddr,
    /// True while cut: existing connections are closed and new ones refused.
    cut: watch::Sender<bool>,
    /// True while a black hole: new connections are accepted and held, silent.
    silent: watch::Sender<bool>,
    /// True once the hop is dropped: its thread ends and every connection with it.
    closed: watch::Sender<bool>,
}

impl TcpCut {
    /// Forwards a new local port to `upstream` (`host:port`).
    pub async fn to(upstream: &str) -> anyhow::Result<Self> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let address = listener.local_addr()?;
        let (cut, silent, closed) =
            (watch::Sender::new(false), watch::Sender::new(false), watch::Sender::new(false));
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let forward = Forward {
            upstream: upstream.to_owned(),
            cut: cut.subscribe(),
            silent: silent.subscribe(),
        };
        let mut until_closed = closed.subscribe();
        std::thread::Builder::new().name(format!("tcp-cut-{}", address.port())).spawn(
            move || {
                runtime.block_on(async move {
                    let Ok(listener) = TcpListener::from_std(listener) else { return };
                    tokio::select! {
                        () = forward.serve(listener) => {}
                        _ = until_closed.wait_for(|closed| *closed) => {}
                    }
                });
                // Dropping the runtime drops every connection still open.
            },
        )?;
        Ok(Self { address, cut, silent, closed })
    }

    /// `host:port` to give the ledger instead of the server's.
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
        self.closed.send_replace(true);
    }
}

/// The hop's side, on its own runtime.
struct Forward {
    upstream: String,
    cut: watch::Receiver<bool>,
    silent: watch::Receiver<bool>,
}

impl Forward {
    async fn serve(self, listener: TcpListener) {
        loop {
            let Ok((client, _)) = listener.accept().await else { continue };
            if *self.silent.borrow() {
                let mut open = self.silent.clone();
                // Held open and unanswered until the hole closes, then dropped.
                tokio::spawn(async move {
                    let _ = open.wait_for(|silent| !*silent).await;
                    drop(client);
                });
                continue;
            }
            if *self.cut.borrow() {
                drop(client); // refused while cut
                continue;
            }
            let (upstream, mut cut) = (self.upstream.clone(), self.cut.clone());
            tokio::spawn(async move {
                let Ok(server) = TcpStream::connect(&upstream).await else { return };
                let (mut client, mut server) = (client, server);
                tokio::select! {
                    _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                    _ = cut.wait_for(|cut| *cut) => {}
                }
            });
        }
    }
}
