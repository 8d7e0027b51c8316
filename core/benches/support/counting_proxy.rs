//! A loopback TCP proxy that counts the requests a client sends to a real
//! server: HTTP/1.1 request lines (Consul), MongoDB wire-protocol messages
//! (framed by their length prefix) or HTTP/2 streams opened (LDLM's gRPC
//! calls, in cleartext). Benches route one client through it to see how
//! many requests it makes, e.g. while renewing.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How requests are recognised in the client-to-server bytes.
#[derive(Clone, Copy)]
pub enum Protocol {
    /// Counts `HTTP/1.1` request lines.
    Http,
    /// Counts length-prefixed wire-protocol messages.
    Mongo,
    /// Counts HTTP/2 HEADERS frames from the client (after the connection
    /// preface): each opens one stream, i.e. one gRPC call. gRPC clients
    /// send no trailers, and PING, SETTINGS, WINDOW_UPDATE, DATA and
    /// CONTINUATION frames are not calls, so they are not counted.
    Http2,
}

/// A running proxy; its counter covers every connection through it.
pub struct CountingProxy {
    pub addr: SocketAddr,
    requests: Arc<AtomicU64>,
}

impl CountingProxy {
    /// Listens on 127.0.0.1 (a free port) and forwards to `target`.
    pub async fn start(target: SocketAddr, protocol: Protocol) -> CountingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(AtomicU64::new(0));
        let counter = requests.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let counter = counter.clone();
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(target).await else {
                        return;
                    };
                    let _ = client.set_nodelay(true);
                    let _ = server.set_nodelay(true);
                    pipe(client, server, protocol, counter).await;
                });
            }
        });
        CountingProxy { addr, requests }
    }

    /// Requests counted so far.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }
}

async fn pipe(client: TcpStream, server: TcpStream, protocol: Protocol, counter: Arc<AtomicU64>) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let upstream = async move {
        let mut scanner = Scanner::new(protocol);
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match client_read.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            counter.fetch_add(scanner.feed(&buf[..n]), Ordering::Relaxed);
            if server_write.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    };
    let downstream = tokio::io::copy(&mut server_read, &mut client_write);
    tokio::select! {
        _ = upstream => {}
        _ = downstream => {}
    }
}

/// Finds request boundaries in one connection's client-to-server bytes.
struct Scanner {
    protocol: Protocol,
    /// HTTP: the last bytes of the previous chunk (a marker may straddle).
    tail: Vec<u8>,
    /// Mongo: bytes of the current message still to skip.
    skip: usize,
    /// Mongo: the length prefix read so far; HTTP/2: the frame header.
    prefix: Vec<u8>,
    /// HTTP/2: bytes of the client connection preface still to skip.
    preface: usize,
}

/// The client connection preface every HTTP/2 connection starts with.
const HTTP2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// An HTTP/2 frame header: 24-bit length, type, flags, 31-bit stream id.
const HTTP2_FRAME_HEADER: usize = 9;
/// The type of a HEADERS frame.
const HTTP2_HEADERS: u8 = 0x1;

const HTTP_MARKER: &[u8] = b" HTTP/1.1\r\n";

impl Scanner {
    fn new(protocol: Protocol) -> Scanner {
        Scanner {
            protocol,
            tail: Vec::new(),
            skip: 0,
            prefix: Vec::new(),
            preface: HTTP2_PREFACE.len(),
        }
    }

    /// Requests that start in `chunk`.
    fn feed(&mut self, chunk: &[u8]) -> u64 {
        match self.protocol {
            Protocol::Http => self.feed_http(chunk),
            Protocol::Mongo => self.feed_mongo(chunk),
            Protocol::Http2 => self.feed_http2(chunk),
        }
    }

    fn feed_http(&mut self, chunk: &[u8]) -> u64 {
        let mut window = std::mem::take(&mut self.tail);
        window.extend_from_slice(chunk);
        let found = window
            .windows(HTTP_MARKER.len())
            .filter(|w| *w == HTTP_MARKER)
            .count();
        let keep = window.len().min(HTTP_MARKER.len() - 1);
        self.tail = window[window.len() - keep..].to_vec();
        found as u64
    }

    fn feed_mongo(&mut self, mut chunk: &[u8]) -> u64 {
        let mut messages = 0;
        while !chunk.is_empty() {
            if self.skip > 0 {
                let n = self.skip.min(chunk.len());
                self.skip -= n;
                chunk = &chunk[n..];
                continue;
            }
            let n = (4 - self.prefix.len()).min(chunk.len());
            self.prefix.extend_from_slice(&chunk[..n]);
            chunk = &chunk[n..];
            if self.prefix.len() == 4 {
                let length = i32::from_le_bytes(self.prefix[..].try_into().unwrap());
                self.prefix.clear();
                self.skip = (length.max(4) - 4) as usize;
                messages += 1;
            }
        }
        messages
    }

    fn feed_http2(&mut self, mut chunk: &[u8]) -> u64 {
        let mut calls = 0;
        while !chunk.is_empty() {
            if self.preface > 0 {
                let n = self.preface.min(chunk.len());
                self.preface -= n;
                chunk = &chunk[n..];
                continue;
            }
            if self.skip > 0 {
                let n = self.skip.min(chunk.len());
                self.skip -= n;
                chunk = &chunk[n..];
                continue;
            }
            let n = (HTTP2_FRAME_HEADER - self.prefix.len()).min(chunk.len());
            self.prefix.extend_from_slice(&chunk[..n]);
            chunk = &chunk[n..];
            if self.prefix.len() == HTTP2_FRAME_HEADER {
                let header = std::mem::take(&mut self.prefix);
                self.skip = u32::from_be_bytes([0, header[0], header[1], header[2]]) as usize;
                if header[3] == HTTP2_HEADERS {
                    calls += 1;
                }
            }
        }
        calls
    }
}
