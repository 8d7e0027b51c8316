//! A loopback TCP proxy that counts the requests a client sends to a real
//! server, as reads, writes and session renewals: HTTP/1.1 requests
//! (Consul: `GET` reads, `PUT /v1/session/renew/…` renewals, which are no
//! Raft write, other calls write), MongoDB wire-protocol messages (framed by their
//! length prefix; `insert`, `update`, `delete`, `findAndModify` and other
//! write commands are writes, the rest reads) or HTTP/2 streams opened
//! (LDLM's gRPC calls, in cleartext; every call counts as a write). It also
//! counts HTTP `429 Too Many Requests` answers and the most connections open
//! at once. Tests and benches route one client through it to count what it
//! sends, e.g. while waiting or renewing.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How requests are recognised in the client-to-server bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// HTTP/1.1 requests, framed by their headers and `Content-Length`.
    Http,
    /// Length-prefixed wire-protocol messages.
    Mongo,
    /// HTTP/2 HEADERS frames from the client (after the connection
    /// preface): each opens one stream, i.e. one gRPC call. gRPC clients
    /// send no trailers, and PING, SETTINGS, WINDOW_UPDATE, DATA and
    /// CONTINUATION frames are not calls, so they are not counted.
    Http2,
    /// PostgreSQL's frontend messages: after the untyped startup packets
    /// (SSLRequest, StartupMessage), each query (`Q`) or extended-protocol
    /// batch (ended by `Sync`, `S`) is one request, counted as a write.
    Postgres,
}

/// Requests counted so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub reads: u64,
    pub writes: u64,
    /// Consul session renewals (keep-alives, no Raft write).
    pub renewals: u64,
}

impl Counts {
    /// Every request.
    #[allow(dead_code)]
    pub fn total(&self) -> u64 {
        self.reads + self.writes + self.renewals
    }

    /// What was counted since `earlier`.
    #[allow(dead_code)]
    pub fn since(&self, earlier: Counts) -> Counts {
        Counts {
            reads: self.reads - earlier.reads,
            writes: self.writes - earlier.writes,
            renewals: self.renewals - earlier.renewals,
        }
    }
}

#[derive(Default)]
struct Counters {
    reads: AtomicU64,
    writes: AtomicU64,
    renewals: AtomicU64,
    too_many: AtomicU64,
    open: AtomicUsize,
    most_open: AtomicUsize,
}

/// A running proxy; its counters cover every connection through it.
pub struct CountingProxy {
    pub addr: SocketAddr,
    counters: Arc<Counters>,
}

impl CountingProxy {
    /// Listens on 127.0.0.1 (a free port) and forwards to `target`.
    pub async fn start(target: SocketAddr, protocol: Protocol) -> CountingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let counters = Arc::new(Counters::default());
        let shared = counters.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let counters = shared.clone();
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(target).await else {
                        return;
                    };
                    let _ = client.set_nodelay(true);
                    let _ = server.set_nodelay(true);
                    let open = counters.open.fetch_add(1, Ordering::SeqCst) + 1;
                    counters.most_open.fetch_max(open, Ordering::SeqCst);
                    pipe(client, server, protocol, &counters).await;
                    counters.open.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        CountingProxy { addr, counters }
    }

    /// `url` (consul://, mongodb://, ldlm:// or postgres://, not TLS: the proxy could not
    /// read the requests) through a new proxy in front of its server.
    #[allow(dead_code)]
    pub async fn in_front_of(url: &str) -> Option<(String, CountingProxy)> {
        let (scheme, rest) = url.split_once("://")?;
        let authority = rest.split(['/', '?']).next()?;
        // PostgreSQL's URLs name their user: user@host:port.
        let (userinfo, host) = match authority.rsplit_once('@') {
            Some((user, host)) => (Some(user), host),
            None => (None, authority),
        };
        let target: SocketAddr = host.parse().ok()?;
        let protocol = match scheme {
            "consul" => Protocol::Http,
            "mongodb" => Protocol::Mongo,
            "ldlm" => Protocol::Http2,
            "postgres" | "postgresql" => Protocol::Postgres,
            _ => return None,
        };
        let rest = &rest[authority.len() - host.len()..];
        let proxy = CountingProxy::start(target, protocol).await;
        let path = match &rest[host.len()..] {
            "" => "/",
            path => path,
        };
        let user = userinfo.map(|u| format!("{u}@")).unwrap_or_default();
        let mut proxied = format!("{scheme}://{user}{}{path}", proxy.addr);
        if scheme == "mongodb" {
            // The proxy's address is not the server's own: no replica-set discovery.
            proxied.push(if proxied.contains('?') { '&' } else { '?' });
            proxied.push_str("directConnection=true");
        }
        Some((proxied, proxy))
    }

    /// Requests counted so far, reads and writes.
    pub fn counts(&self) -> Counts {
        Counts {
            reads: self.counters.reads.load(Ordering::SeqCst),
            writes: self.counters.writes.load(Ordering::SeqCst),
            renewals: self.counters.renewals.load(Ordering::SeqCst),
        }
    }

    /// Every request counted so far.
    #[allow(dead_code)]
    pub fn requests(&self) -> u64 {
        self.counts().total()
    }

    /// HTTP `429 Too Many Requests` answers seen.
    #[allow(dead_code)]
    pub fn too_many_requests(&self) -> u64 {
        self.counters.too_many.load(Ordering::SeqCst)
    }

    /// The most connections that were open through the proxy at once.
    #[allow(dead_code)]
    pub fn most_connections(&self) -> usize {
        self.counters.most_open.load(Ordering::SeqCst)
    }
}

async fn pipe(client: TcpStream, server: TcpStream, protocol: Protocol, counters: &Counters) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let upstream = async {
        let mut scanner = Scanner::new(protocol);
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match client_read.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let found = scanner.feed(&buf[..n]);
            counters.reads.fetch_add(found.reads, Ordering::SeqCst);
            counters.writes.fetch_add(found.writes, Ordering::SeqCst);
            counters
                .renewals
                .fetch_add(found.renewals, Ordering::SeqCst);
            if server_write.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    };
    let downstream = async {
        let mut statuses = Marker::new(b"HTTP/1.1 429 ");
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match server_read.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            if protocol == Protocol::Http {
                counters
                    .too_many
                    .fetch_add(statuses.feed(&buf[..n]), Ordering::SeqCst);
            }
            if client_write.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    };
    tokio::select! {
        _ = upstream => {}
        _ = downstream => {}
    }
}

/// Counts a byte string in a stream, across chunk boundaries.
struct Marker {
    marker: &'static [u8],
    tail: Vec<u8>,
}

impl Marker {
    fn new(marker: &'static [u8]) -> Self {
        Marker {
            marker,
            tail: Vec::new(),
        }
    }

    fn feed(&mut self, chunk: &[u8]) -> u64 {
        let mut window = std::mem::take(&mut self.tail);
        window.extend_from_slice(chunk);
        let found = window
            .windows(self.marker.len())
            .filter(|w| *w == self.marker)
            .count();
        let keep = window.len().min(self.marker.len() - 1);
        self.tail = window[window.len() - keep..].to_vec();
        found as u64
    }
}

/// Finds request boundaries in one connection's client-to-server bytes.
struct Scanner {
    protocol: Protocol,
    /// Bytes of the current request's body (or message) still to skip.
    skip: usize,
    /// The head of the current request read so far: HTTP headers, the
    /// start of a Mongo message, an HTTP/2 frame header.
    head: Vec<u8>,
    /// Mongo: the whole length of the current message.
    length: usize,
    /// HTTP/2: bytes of the client connection preface still to skip.
    preface: usize,
    /// PostgreSQL: the startup packet has gone (messages are typed now).
    started: bool,
}

/// The client connection preface every HTTP/2 connection starts with.
const HTTP2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// An HTTP/2 frame header: 24-bit length, type, flags, 31-bit stream id.
const HTTP2_FRAME_HEADER: usize = 9;
/// The type of a HEADERS frame.
const HTTP2_HEADERS: u8 = 0x1;
/// How much of a Mongo message names its command: header (16), flag bits
/// (4), section kind (1), document length (4), element type (1), then the
/// command's name.
const MONGO_HEAD: usize = 64;
/// Commands that write.
const MONGO_WRITES: &[&str] = &[
    "insert",
    "update",
    "delete",
    "findAndModify",
    "create",
    "createIndexes",
    "drop",
    "dropIndexes",
];

impl Scanner {
    fn new(protocol: Protocol) -> Scanner {
        Scanner {
            protocol,
            skip: 0,
            head: Vec::new(),
            length: 0,
            preface: if protocol == Protocol::Http2 {
                HTTP2_PREFACE.len()
            } else {
                0
            },
            started: false,
        }
    }

    /// Requests that start in `chunk`.
    fn feed(&mut self, mut chunk: &[u8]) -> Counts {
        let mut found = Counts::default();
        while !chunk.is_empty() {
            if self.preface > 0 || self.skip > 0 {
                let pending = if self.preface > 0 {
                    &mut self.preface
                } else {
                    &mut self.skip
                };
                let n = (*pending).min(chunk.len());
                *pending -= n;
                chunk = &chunk[n..];
                continue;
            }
            let used = match self.protocol {
                Protocol::Http => self.http(chunk, &mut found),
                Protocol::Mongo => self.mongo(chunk, &mut found),
                Protocol::Http2 => self.http2(chunk, &mut found),
                Protocol::Postgres => self.postgres(chunk, &mut found),
            };
            chunk = &chunk[used..];
        }
        found
    }

    /// Reads request headers up to their blank line; returns bytes used.
    fn http(&mut self, chunk: &[u8], found: &mut Counts) -> usize {
        let before = self.head.len();
        self.head.extend_from_slice(chunk);
        let Some(end) = self.head.windows(4).position(|w| w == b"\r\n\r\n") else {
            return chunk.len();
        };
        let head = String::from_utf8_lossy(&self.head[..end]).into_owned();
        self.head.clear();
        if head.starts_with("GET ") {
            found.reads += 1;
        } else if head.starts_with("PUT /v1/session/renew/") {
            found.renewals += 1;
        } else {
            found.writes += 1;
        }
        self.skip = head
            .lines()
            .filter_map(|line| line.split_once(':'))
            .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, value)| value.trim().parse().ok())
            .unwrap_or(0);
        end + 4 - before
    }

    /// Reads a message's head to name its command; returns bytes used.
    fn mongo(&mut self, chunk: &[u8], found: &mut Counts) -> usize {
        if self.head.len() < 4 {
            let n = (4 - self.head.len()).min(chunk.len());
            self.head.extend_from_slice(&chunk[..n]);
            if self.head.len() == 4 {
                let length = i32::from_le_bytes(self.head[..4].try_into().unwrap());
                self.length = length.max(4) as usize;
            }
            return n;
        }
        let want = self.length.min(MONGO_HEAD);
        let n = (want - self.head.len()).min(chunk.len());
        self.head.extend_from_slice(&chunk[..n]);
        if self.head.len() == want {
            let command = self
                .head
                .get(26..)
                .and_then(|rest| rest.split(|b| *b == 0).next())
                .map(|name| String::from_utf8_lossy(name).into_owned())
                .unwrap_or_default();
            if MONGO_WRITES.contains(&command.as_str()) {
                found.writes += 1;
            } else {
                found.reads += 1;
            }
            self.skip = self.length - want;
            self.head.clear();
        }
        n
    }

    /// Reads a message's head (untyped before startup: length, code;
    /// then type, length); returns bytes used.
    fn postgres(&mut self, chunk: &[u8], found: &mut Counts) -> usize {
        let want = if self.started { 5 } else { 8 };
        let n = (want - self.head.len()).min(chunk.len());
        self.head.extend_from_slice(&chunk[..n]);
        if self.head.len() == want {
            let head = std::mem::take(&mut self.head);
            if self.started {
                let length = u32::from_be_bytes(head[1..5].try_into().unwrap()) as usize;
                self.skip = length.saturating_sub(4);
                if matches!(head[0], b'Q' | b'S') {
                    found.writes += 1;
                }
            } else {
                let length = u32::from_be_bytes(head[..4].try_into().unwrap()) as usize;
                let code = u32::from_be_bytes(head[4..8].try_into().unwrap());
                self.skip = length.saturating_sub(8);
                // SSLRequest and GSSENCRequest come before the startup packet.
                self.started = !matches!(code, 80877103 | 80877104);
            }
        }
        n
    }

    /// Reads a frame header; returns bytes used.
    fn http2(&mut self, chunk: &[u8], found: &mut Counts) -> usize {
        let n = (HTTP2_FRAME_HEADER - self.head.len()).min(chunk.len());
        self.head.extend_from_slice(&chunk[..n]);
        if self.head.len() == HTTP2_FRAME_HEADER {
            let header = std::mem::take(&mut self.head);
            self.skip = u32::from_be_bytes([0, header[0], header[1], header[2]]) as usize;
            if header[3] == HTTP2_HEADERS {
                found.writes += 1;
            }
        }
        n
    }
}
