//! A loopback TCP proxy a test can cut or freeze, to make a real server
//! unreachable for one client without stopping it: after [`Proxy::cut`]
//! every proxied connection is dropped and new ones are refused; after
//! [`Proxy::freeze`] connections stay open but no byte crosses in either
//! direction (a network partition: neither side sees the connection end).

use std::net::SocketAddr;

use tokio::io::copy_bidirectional;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(dead_code)] // not every test binary freezes
enum Mode {
    Open,
    Frozen,
    Cut,
}

pub struct Proxy {
    pub addr: SocketAddr,
    mode: watch::Sender<Mode>,
}

impl Proxy {
    /// Listens on 127.0.0.1 (a free port) and forwards to `target`.
    pub async fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (mode, _) = watch::channel(Mode::Open);
        let mut stop = mode.subscribe();
        let modes = mode.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((client, _)) = accepted else { continue };
                        tokio::spawn(pipe(client, target, modes.subscribe()));
                    }
                    _ = stop.wait_for(|mode| *mode == Mode::Cut) => return, // drops the listener
                }
            }
        });
        Proxy { addr, mode }
    }

    /// Drops every connection and refuses new ones.
    pub fn cut(&self) {
        self.mode.send_replace(Mode::Cut);
    }

    /// Stops forwarding in both directions, keeping every connection open
    /// (new ones are accepted and left silent too).
    #[allow(dead_code)]
    pub fn freeze(&self) {
        self.mode.send_if_modified(|mode| {
            let open = *mode == Mode::Open;
            if open {
                *mode = Mode::Frozen;
            }
            open
        });
    }
}

/// Forwards one connection while the proxy is open; holds it silent while
/// frozen; drops it when cut.
async fn pipe(mut client: TcpStream, target: SocketAddr, mut mode: watch::Receiver<Mode>) {
    let Ok(mut server) = TcpStream::connect(target).await else {
        return;
    };
    tokio::select! {
        _ = copy_bidirectional(&mut client, &mut server) => return,
        _ = mode.wait_for(|mode| *mode != Mode::Open) => {}
    }
    let _ = mode.wait_for(|mode| *mode == Mode::Cut).await;
}
