//! Source `syslog`: receive syslog over UDP, TCP or TLS, RFC 3164 or RFC 5424.
//!
//! ```toml
//! [sources.syslog]
//! type = "syslog"
//! mode = "tcp"                      # udp | tcp | tls
//! address = "0.0.0.0:6514"
//! max_message_bytes = "64KiB"       # longer messages arrive in marked parts
//! max_connections = 1000            # TCP/TLS; further clients are refused and counted
//! # tls = { crt_file = "server.crt", key_file = "server.key", ca_file = "clients-ca.crt" }
//! ```
//! * Framing on TCP and TLS (RFC 6587): octet counting (`LEN SP MSG`) or one message per
//!   line, chosen per message (`sluice_parsers::syslog_stream`). On UDP, one datagram is one message; a
//!   datagram longer than `max_message_bytes` is kept cut at that size and marked
//!   `truncated`.
//! * Each message is parsed with the syslog parser of the `parse` stage (RFC 3164 and
//!   5424, detected): timestamp, `host`, `app`, `pid`, `msgid`, `structured_data`,
//!   `facility`, `level` from the severity, the message. A message that does not parse
//!   is passed on raw with `parse_error` (nothing is dropped); invalid UTF-8 and NUL
//!   bytes are marked like every source marks them. `peer` is the sender's IP address.
//! * Every connection has its own task: a slow or half-open client holds only its own
//!   connection. Reads are paced by backpressure: a full pipeline stops reading, and TCP
//!   flow control slows the senders down. UDP has no flow control and no
//!   acknowledgement: datagrams that arrive while the pipeline is full wait in the socket
//!   buffer and are lost when it overflows (the kernel counts them); use TCP where loss
//!   matters.
//! * Metrics: `sluice_syslog_connections` (open), `sluice_syslog_connections_refused_total`,
//!   `sluice_syslog_truncated_total`, per component.

mod tls;

use crate::{Outputs, Source, SourceConfig, SourceContext};
use bytes::Bytes;
use serde::Deserialize;
use sluice_config::units::ByteSize;
use sluice_config::OptionError;
use sluice_event::{Batch, ByteStr, Event, Origin, OriginInfo, Timestamp, Value};
use sluice_parsers::syslog_stream::{Frame, Framer};
use sluice_parsers::{Context, Parsed};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt};

/// How messages arrive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Udp,
    Tcp,
    Tls,
}

/// TLS settings (`mode = "tls"`): PEM files.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The server certificate chain (PEM).
    pub crt_file: String,
    /// The server's private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key_file: String,
    /// CA certificates (PEM) that client certificates must chain to; when set, clients
    /// without a valid certificate are refused.
    pub ca_file: Option<String>,
}

#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SyslogSourceConfig {
    /// `"udp"`, `"tcp"` or `"tls"`.
    pub mode: Mode,
    /// The address to listen on (`"0.0.0.0:514"`, `"127.0.0.1:6514"`).
    pub address: String,
    /// Longest message kept whole; longer ones arrive in marked parts (TCP, TLS) or cut
    /// and marked `truncated` (UDP).
    #[serde(default = "default_max_message")]
    pub max_message_bytes: ByteSize,
    /// Most TCP or TLS connections at once; further clients are refused and counted.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Certificate, key and optional client CA for `mode = "tls"`.
    pub tls: Option<TlsConfig>,
}

fn default_max_message() -> ByteSize {
    ByteSize(64 << 10)
}
fn default_max_connections() -> usize {
    1000
}

impl SourceConfig for SyslogSourceConfig {
    fn build(&self) -> Result<Box<dyn Source>, OptionError> {
        let address: SocketAddr = self.address.parse().map_err(|e| {
            OptionError::new("address", format!("\"{}\" is not an IP address and port: {e}", self.address))
        })?;
        if self.max_message_bytes.bytes() < 16 {
            return Err(OptionError::new("max_message_bytes", "must be at least 16"));
        }
        if self.max_connections == 0 {
            return Err(OptionError::new("max_connections", "must be at least 1"));
        }
        let tls = match (self.mode, &self.tls) {
            (Mode::Tls, Some(t)) => Some(tls::acceptor(t)?),
            (Mode::Tls, None) => {
                return Err(OptionError::new("tls", "`mode = \"tls\"` needs `tls = { crt_file = …, key_file = … }`"))
            }
            (_, Some(_)) => return Err(OptionError::new("tls", "only used with `mode = \"tls\"`")),
            (_, None) => None,
        };
        Ok(Box::new(SyslogSource {
            mode: self.mode,
            address,
            max_message: self.max_message_bytes.as_usize(),
            max_connections: self.max_connections,
            tls,
        }))
    }
}

struct SyslogSource {
    mode: Mode,
    address: SocketAddr,
    max_message: usize,
    max_connections: usize,
    tls: Option<tokio_rustls::TlsAcceptor>,
}

/// What every connection task shares.
struct Shared {
    name: String,
    out: Outputs,
    stats: Arc<sluice_event::stats::ComponentStats>,
    max_events: usize,
    max_message: usize,
    refused: metrics::Counter,
    truncated: metrics::Counter,
    open: metrics::Gauge,
}

impl Source for SyslogSource {
    fn run(self: Box<Self>, ctx: SourceContext) -> anyhow::Result<()> {
        let rt = ctx.rt.clone();
        rt.block_on(self.serve(ctx))
    }
}

impl SyslogSource {
    async fn serve(self, ctx: SourceContext) -> anyhow::Result<()> {
        let labels = [("component", ctx.name.clone())];
        let shared = Arc::new(Shared {
            name: ctx.name.clone(),
            out: ctx.out.clone(),
            stats: ctx.stats.clone(),
            max_events: ctx.limits.max_events,
            max_message: self.max_message,
            refused: metrics::counter!("sluice_syslog_connections_refused_total", &labels),
            truncated: metrics::counter!("sluice_syslog_truncated_total", &labels),
            open: metrics::gauge!("sluice_syslog_connections", &labels),
        });
        let stop = ctx.stop.clone();
        let stopping = move || stop.load(Ordering::Relaxed);
        match self.mode {
            Mode::Udp => {
                let sock = tokio::net::UdpSocket::bind(self.address)
                    .await
                    .map_err(|e| anyhow::anyhow!("syslog source `{}`: cannot bind {}: {e}", ctx.name, self.address))?;
                tracing::info!(source = %ctx.name, address = %sock.local_addr()?, "syslog listening (udp)");
                ctx.stats.set_started();
                udp_loop(sock, &shared, &stopping).await;
            }
            Mode::Tcp | Mode::Tls => {
                let listener = tokio::net::TcpListener::bind(self.address)
                    .await
                    .map_err(|e| anyhow::anyhow!("syslog source `{}`: cannot bind {}: {e}", ctx.name, self.address))?;
                tracing::info!(source = %ctx.name, address = %listener.local_addr()?, mode = ?self.mode, "syslog listening");
                ctx.stats.set_started();
                let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
                let open = Arc::new(AtomicUsize::new(0));
                let mut tasks = tokio::task::JoinSet::new();
                loop {
                    if stopping() {
                        break;
                    }
                    let accepted = tokio::select! {
                        r = listener.accept() => r,
                        _ = tokio::time::sleep(Duration::from_millis(100)) => continue,
                    };
                    while tasks.try_join_next().is_some() {}
                    let (stream, peer) = match accepted {
                        Ok(x) => x,
                        Err(e) => {
                            // Out of descriptors and the like: wait instead of spinning.
                            tracing::warn!(source = %ctx.name, error = %e, "accept failed");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    };
                    if open.load(Ordering::Relaxed) >= self.max_connections {
                        shared.refused.increment(1);
                        drop(stream);
                        continue;
                    }
                    let _ = stream.set_nodelay(true);
                    open.fetch_add(1, Ordering::Relaxed);
                    shared.open.increment(1.0);
                    let (shared, open, stop_rx, tls) =
                        (shared.clone(), open.clone(), stop_rx.clone(), self.tls.clone());
                    tasks.spawn(async move {
                        match tls {
                            None => connection(stream, peer, &shared, stop_rx).await,
                            Some(acceptor) => {
                                let handshake =
                                    tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream)).await;
                                match handshake {
                                    Ok(Ok(s)) => connection(s, peer, &shared, stop_rx).await,
                                    Ok(Err(e)) => {
                                        tracing::warn!(source = %shared.name, peer = %peer, error = %e, "TLS handshake failed")
                                    }
                                    Err(_) => tracing::warn!(source = %shared.name, peer = %peer, "TLS handshake timed out"),
                                }
                            }
                        }
                        open.fetch_sub(1, Ordering::Relaxed);
                        shared.open.decrement(1.0);
                    });
                }
                // Stop reading: every connection emits what it holds and ends.
                let _ = stop_tx.send(true);
                while tasks.join_next().await.is_some() {}
            }
        }
        Ok(())
    }
}

async fn udp_loop(sock: tokio::net::UdpSocket, shared: &Shared, stopping: &impl Fn() -> bool) {
    let origin = OriginInfo::new(&shared.name, None);
    let mut buf = vec![0u8; shared.max_message + 1];
    let mut events = Vec::new();
    let mut senders: Vec<(std::net::IpAddr, Arrival)> = Vec::new();
    while !stopping() {
        let got = tokio::select! {
            r = sock.recv_from(&mut buf) => r,
            _ = tokio::time::sleep(Duration::from_millis(100)) => continue,
        };
        let Ok((n, peer)) = got else { continue };
        let now = Timestamp::now();
        events.push(datagram(&buf, n, arrival_of(&mut senders, peer, now), shared, &origin));
        // Drain what else is queued without waiting, up to one batch.
        while events.len() < shared.max_events {
            match sock.try_recv_from(&mut buf) {
                Ok((n, peer)) => events.push(datagram(&buf, n, arrival_of(&mut senders, peer, now), shared, &origin)),
                Err(_) => break,
            }
        }
        if !send(shared, std::mem::take(&mut events)).await {
            return;
        }
    }
}

/// The arrival record of a sender, kept for the last few senders so that the address
/// text is not made again for every datagram.
fn arrival_of(senders: &mut Vec<(std::net::IpAddr, Arrival)>, peer: SocketAddr, now: Timestamp) -> &Arrival {
    let i = match senders.iter().position(|(ip, _)| *ip == peer.ip()) {
        Some(i) => i,
        None => {
            if senders.len() >= 64 {
                senders.remove(0);
            }
            senders.push((peer.ip(), Arrival::new(peer)));
            senders.len() - 1
        }
    };
    senders[i].1.now = now;
    &senders[i].1
}

/// One datagram (`n` bytes received into `buf`, which holds one byte more than the
/// longest message kept: a longer datagram arrives cut and is marked `truncated`).
fn datagram(buf: &[u8], n: usize, arrival: &Arrival, shared: &Shared, origin: &Arc<OriginInfo>) -> Event {
    let truncated = n > shared.max_message;
    let bytes = trim_frame(Bytes::copy_from_slice(&buf[..n.min(shared.max_message)]));
    let mut e = message_event(bytes, origin, arrival);
    if truncated {
        shared.truncated.increment(1);
        e.fields.insert("truncated", Value::Bool(true));
    }
    e
}

/// Read one TCP or TLS connection until it ends or the source stops.
async fn connection<S: AsyncRead + Unpin>(
    mut stream: S,
    peer: SocketAddr,
    shared: &Shared,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let origin = OriginInfo::new(&shared.name, None);
    let mut framer = Framer::new(shared.max_message);
    let mut buf = vec![0u8; 256 << 10];
    let mut arrival = Arrival::new(peer);
    loop {
        let n = tokio::select! {
            r = stream.read(&mut buf) => match r {
                Ok(n) => n,
                Err(e) => {
                    tracing::debug!(source = %shared.name, peer = %peer, error = %e, "connection read failed");
                    0
                }
            },
            _ = stop.changed() => 0,
        };
        arrival.now = Timestamp::now();
        let mut events: Vec<Event> = Vec::new();
        let mut take = |l: Frame| {
            let mut e = message_event(l.bytes, &origin, &arrival);
            copy_marks(&mut e, l.marks);
            events.push(e);
        };
        if n == 0 {
            framer.finish(&mut take);
            send_all(shared, events).await;
            return;
        }
        // One read is one batch (split at max_events): no waiting for more input.
        framer.push(&buf[..n], &mut take);
        if !send_all(shared, events).await {
            return;
        }
    }
}

async fn send_all(shared: &Shared, mut events: Vec<Event>) -> bool {
    while events.len() > shared.max_events {
        let rest = events.split_off(shared.max_events);
        if !send(shared, std::mem::replace(&mut events, rest)).await {
            return false;
        }
    }
    send(shared, events).await
}

fn copy_marks(e: &mut Event, marks: sluice_event::Marks) {
    use sluice_event::Marks;
    for bit in [Marks::SPLIT, Marks::SPLIT_LAST, Marks::NO_NEWLINE] {
        if marks.has(bit) {
            e.marks.set(bit);
        }
    }
    e.marks.split_part = marks.split_part;
}

fn trim_frame(mut b: Bytes) -> Bytes {
    while matches!(b.last(), Some(b'\n' | b'\r' | b'\0')) {
        b.truncate(b.len() - 1);
    }
    b
}

/// Who sent the messages of one connection or datagram, and when they arrived.
struct Arrival {
    /// The sender's IP address, made once per connection (each event shares it).
    peer: ByteStr,
    now: Timestamp,
}

impl Arrival {
    fn new(peer: SocketAddr) -> Arrival {
        Arrival { peer: ByteStr::from(peer.ip().to_string()), now: Timestamp::now() }
    }
}

/// One message as an event, parsed as syslog; what does not parse stays raw, marked.
fn message_event(bytes: Bytes, origin: &Arc<OriginInfo>, arrival: &Arrival) -> Event {
    let now = arrival.now;
    let mut e = Event::from_line(bytes, now, Origin { info: origin.clone(), offset: 0 });
    let text = match &e.message {
        Some(m) => m.clone(),
        // SAFETY: `message` is None only when the raw bytes are valid UTF-8.
        None => unsafe { ByteStr::from_utf8_unchecked(e.raw.clone()) },
    };
    let mut parsed = Parsed::default();
    match sluice_parsers::syslog::parse(&text, &Context { now }, &mut parsed) {
        Ok(()) => parsed.apply_to(&mut e),
        Err(err) => e.fields.insert("parse_error", Value::Str(ByteStr::from(err.to_string()))),
    }
    e.fields.insert("peer", Value::Str(arrival.peer.clone()));
    e
}

/// Send a batch downstream, waiting for room (backpressure). False when the pipeline
/// is gone.
async fn send(shared: &Shared, events: Vec<Event>) -> bool {
    if events.is_empty() {
        return true;
    }
    let n = events.len() as u64;
    let bytes = events.iter().map(|e| e.raw.len() as u64).sum();
    shared.stats.events_in(n, bytes);
    let ok = shared.out.send(Batch::new(events)).await;
    if ok {
        shared.stats.events_out(n);
    }
    ok
}
