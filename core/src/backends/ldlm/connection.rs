//! The client's one HTTP/2 connection to the LDLM server.
//!
//! The server ties every lock to the connection that took it and frees them
//! all when it closes, so a connection is an explicit object here: opened
//! by [`Connections::get`] (TCP, TLS for `ldlms://`, HTTP/2 handshake), used
//! by every call until it ends, and never silently replaced underneath a
//! lease. Each grant keeps the [`Connection`] it came on; when that one
//! ends, [`Connection::closed`] tells its watchers, and the next call opens
//! a new connection.
//!
//! HTTP/2 keepalive pings go out no more often than the configured interval
//! (at least 10 s: the server sends GOAWAY, dropping every lock, to a client
//! that pings more often), so a dead path is noticed without renewals.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::task::AbortHandle;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::TlsConnector;

use super::config::LdlmConfig;
use super::proto::ldlm_client::LdlmClient;
use super::tls;
use crate::error::{Error, Result};
use crate::runtime;

/// How long the client waits for a keepalive ping's answer before it
/// declares the connection dead.
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a failed call waits for its connection's own end, which names
/// the cause (a TLS alert, say) better than the call's failure does.
const END_REPORT_WAIT: Duration = Duration::from_millis(200);

/// The generated gRPC client over one connection.
pub(crate) type Rpc = LdlmClient<Http2>;

/// Why a connection ended.
#[derive(Debug, Clone)]
pub(crate) enum End {
    /// The server refused our credentials (a TLS client certificate).
    Refused(String),
    /// It closed or broke.
    Closed(String),
}

impl End {
    fn reason(&self) -> &str {
        match self {
            End::Refused(reason) | End::Closed(reason) => reason,
        }
    }

    fn error(&self) -> Error {
        match self {
            End::Refused(reason) => Error::Auth(reason.clone()),
            End::Closed(reason) => Error::Connection(reason.clone()),
        }
    }
}

/// One HTTP/2 connection to the server.
pub(crate) struct Connection {
    /// Counts the client's connections from 1.
    pub(crate) generation: u64,
    rpc: Rpc,
    /// Set once the connection ended.
    ended: watch::Receiver<Option<End>>,
    driver: AbortHandle,
}

impl Connection {
    /// A gRPC client on this connection (cheap: a handle clone).
    pub(crate) fn rpc(&self) -> Rpc {
        self.rpc.clone()
    }

    /// True once the connection ended.
    pub(crate) fn is_closed(&self) -> bool {
        self.ended.borrow().is_some()
    }

    /// Resolves, with the reason, once the connection ended.
    pub(crate) async fn closed(&self) -> String {
        let mut ended = self.ended.clone();
        let reason = match ended.wait_for(Option::is_some).await {
            Ok(end) => end.as_ref().map(|end| end.reason().to_string()),
            Err(_) => None,
        };
        reason.unwrap_or_else(|| "the client closed its connection to the LDLM server".into())
    }

    /// Ends the connection now; the server then frees every lock taken on it.
    pub(crate) fn close(&self) {
        self.driver.abort();
    }
}

/// Opens the client's connection and replaces it once it ended.
pub(crate) struct Connections {
    config: Arc<LdlmConfig>,
    tls: Option<(TlsConnector, ServerName<'static>)>,
    current: Mutex<Option<Arc<Connection>>>,
    /// Held while a connection is being opened, so callers share one.
    dialing: tokio::sync::Mutex<()>,
    generations: AtomicU64,
}

impl Connections {
    /// Checks the TLS settings; opens nothing yet.
    pub(crate) fn new(config: Arc<LdlmConfig>) -> Result<Self> {
        let tls = if config.tls {
            Some(tls::connector(&config)?)
        } else {
            None
        };
        Ok(Connections {
            config,
            tls,
            current: Mutex::new(None),
            dialing: tokio::sync::Mutex::new(()),
            generations: AtomicU64::new(0),
        })
    }

    fn live(&self) -> Option<Arc<Connection>> {
        let current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        current.as_ref().filter(|c| !c.is_closed()).cloned()
    }

    /// The open connection, opening a new one if there is none (bounded by
    /// the connect timeout).
    pub(crate) async fn get(&self) -> Result<Arc<Connection>> {
        if let Some(connection) = self.live() {
            return Ok(connection);
        }
        let _dialing = self.dialing.lock().await;
        if let Some(connection) = self.live() {
            return Ok(connection);
        }
        let timeout = self.config.connect_timeout;
        let connection = tokio::time::timeout(timeout, self.dial())
            .await
            .map_err(|_| {
                Error::Connection(format!(
                    "no connection to the LDLM server at {} within {timeout:?}",
                    self.config.address()
                ))
            })??;
        let connection = Arc::new(connection);
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) = Some(connection.clone());
        Ok(connection)
    }

    /// Ends the open connection, if any.
    pub(crate) fn close(&self) {
        let current = self
            .current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(connection) = current {
            connection.close();
        }
    }

    async fn dial(&self) -> Result<Connection> {
        let address = self.config.address();
        let tcp = TcpStream::connect((self.config.host.as_str(), self.config.port))
            .await
            .map_err(|e| {
                Error::Connection(format!("cannot reach the LDLM server at {address}: {e}"))
            })?;
        let _ = tcp.set_nodelay(true);
        let generation = self.generations.fetch_add(1, Ordering::Relaxed) + 1;
        match &self.tls {
            Some((connector, name)) => {
                let stream = connector.connect(name.clone(), tcp).await.map_err(|e| {
                    tls::classify(&e).unwrap_or_else(|| {
                        Error::Connection(format!(
                            "TLS with the LDLM server at {address} failed: {e}"
                        ))
                    })
                })?;
                self.handshake(stream, "https", generation).await
            }
            None => self.handshake(tcp, "http", generation).await,
        }
    }

    async fn handshake<Io>(&self, io: Io, scheme: &str, generation: u64) -> Result<Connection>
    where
        Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
    {
        let (send, driver) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .keep_alive_interval(self.config.keepalive)
            .keep_alive_timeout(KEEPALIVE_TIMEOUT)
            .keep_alive_while_idle(true)
            .handshake(TokioIo::new(io))
            .await
            .map_err(|e| transport_error(&e))?;
        let (ended_tx, ended) = watch::channel(None);
        let address = self.config.address();
        let answers = Arc::new(Answers {
            address: address.clone(),
            tls: scheme == "https",
            answered: AtomicBool::new(false),
        });
        let answers_for_driver = answers.clone();
        let driver = runtime::spawn(async move {
            let answers = answers_for_driver;
            let end = match driver.await {
                Ok(()) => answers.end(&"it closed the connection", || {
                    format!("the LDLM server at {address} closed the connection")
                }),
                Err(e) => match tls::classify(&e) {
                    Some(Error::Auth(reason)) => End::Refused(reason),
                    _ => answers.end(&e, || {
                        format!("the connection to the LDLM server at {address} broke: {e}")
                    }),
                },
            };
            tracing::debug!(generation, reason = end.reason(), "ldlm connection ended");
            ended_tx.send_replace(Some(end));
        })
        .abort_handle();
        let origin = http::Uri::builder()
            .scheme(scheme)
            .authority(self.config.address())
            .path_and_query("/")
            .build()
            .map_err(|e| Error::invalid(format!("bad LDLM address: {e}")))?;
        let transport = Http2 {
            send,
            ended: ended.clone(),
            answers,
        };
        let rpc = LdlmClient::with_origin(transport, origin);
        Ok(Connection {
            generation,
            rpc,
            ended,
            driver,
        })
    }
}

impl Drop for Connections {
    fn drop(&mut self) {
        self.close();
    }
}

/// A transport failure carried through tonic as the source of its status,
/// so the backend can tell it from what the server answered.
#[derive(Debug)]
pub(crate) struct TransportFailure(pub(crate) Error);

impl std::fmt::Display for TransportFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for TransportFailure {}

/// `error` (a hyper or TLS failure) as polylock's error.
fn transport_error(error: &(dyn std::error::Error + 'static)) -> Error {
    tls::classify(error)
        .unwrap_or_else(|| Error::Connection(format!("the LDLM connection failed: {error}")))
}

/// Whether the server of one connection ever answered: what its driver and
/// its calls both judge a failure by.
struct Answers {
    address: String,
    tls: bool,
    /// Set once the server answered a call on this connection.
    answered: AtomicBool,
}

impl Answers {
    /// Why the connection was refused, if a failure (`error`) means that:
    /// with TLS 1.3 a server refuses a client certificate (or its absence)
    /// after the handshake, and its alert can be lost to the broken pipe or
    /// the close that follows, so a TLS connection that fails or ends
    /// before the server answered anything was refused.
    fn refusal(&self, error: &dyn std::fmt::Display) -> Option<String> {
        (self.tls && !self.answered.load(Ordering::Acquire)).then(|| {
            format!(
                "the LDLM server at {} closed the TLS connection before answering anything ({error}): it refused the connection; does it need a client certificate (cert=, key=) signed by a CA it trusts?",
                self.address
            )
        })
    }

    /// How a connection that `cause` ended, ended: refused (see
    /// [`refusal`](Self::refusal)), else closed, for the reason `closed`
    /// gives.
    fn end(&self, cause: &dyn std::fmt::Display, closed: impl FnOnce() -> String) -> End {
        match self.refusal(cause) {
            Some(reason) => End::Refused(reason),
            None => End::Closed(closed()),
        }
    }
}

/// The gRPC transport over one HTTP/2 connection: sends each request on it,
/// with the connection's scheme and authority.
#[derive(Clone)]
pub(crate) struct Http2 {
    send: SendRequest<tonic::body::Body>,
    ended: watch::Receiver<Option<End>>,
    answers: Arc<Answers>,
}

impl tower_service::Service<http::Request<tonic::body::Body>> for Http2 {
    type Response = http::Response<hyper::body::Incoming>;
    type Error = TransportFailure;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, TransportFailure>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), TransportFailure>> {
        // HTTP/2 multiplexes: a closed connection fails the call itself,
        // where the failure keeps its cause (tonic flattens readiness errors).
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        let sent = self.send.send_request(request);
        let mut ended = self.ended.clone();
        let answers = self.answers.clone();
        Box::pin(async move {
            let error = match sent.await {
                Ok(response) => {
                    answers.answered.store(true, Ordering::Release);
                    return Ok(response);
                }
                Err(error) => transport_error(&error),
            };
            if let Error::Auth(_) = error {
                return Err(TransportFailure(error));
            }
            // A call fails when its connection ends; the end tells why. A
            // driver slow to report it (a loaded host) must not turn a
            // refusal into a connection failure: the call judges that by
            // the same rule.
            let end = tokio::time::timeout(END_REPORT_WAIT, ended.wait_for(Option::is_some)).await;
            Err(TransportFailure(match end {
                Ok(Ok(end)) => end.as_ref().map_or(error, End::error),
                _ => match answers.refusal(&error) {
                    Some(reason) => Error::Auth(reason),
                    None => error,
                },
            }))
        })
    }
}
