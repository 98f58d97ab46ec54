//! A TCP forwarder whose connections can be cut, to take a database away
//! from one node (and give it back) without touching the server.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Forwards `127.0.0.1:<port>` to a target until [`Cuttable::cut`].
pub struct Cuttable {
    pub addr: SocketAddr,
    refusing: Arc<AtomicBool>,
    /// Bumped on every cut; open connections end when it changes.
    cuts: watch::Sender<u64>,
}

impl Cuttable {
    pub async fn to(target: SocketAddr) -> Cuttable {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let refusing = Arc::new(AtomicBool::new(false));
        let (cuts, _) = watch::channel(0u64);
        let (flag, signal) = (Arc::clone(&refusing), cuts.clone());
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if flag.load(Ordering::SeqCst) {
                    continue; // dropped: the connection is reset at once
                }
                let mut cut = signal.subscribe();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        Cuttable {
            addr,
            refusing,
            cuts,
        }
    }

    /// Close every forwarded connection and refuse new ones.
    pub fn cut(&self) {
        self.refusing.store(true, Ordering::SeqCst);
        self.cuts.send_modify(|n| *n += 1);
    }

    /// Accept and forward again.
    pub fn heal(&self) {
        self.refusing.store(false, Ordering::SeqCst);
    }
}
