//! One connection's life on its home shard: read, parse every complete request, run them
//! (the pipeline keeps replies in request order), write all replies with one write.

use std::cell::{Cell, RefCell};
use std::os::fd::{AsRawFd, FromRawFd};
use std::rc::Rc;
use std::sync::atomic::Ordering;

use bytes::BytesMut;
use futures_lite::AsyncReadExt;
use glommio::net::TcpStream;

use crate::command::table::Cmd;
use crate::command::{flags, Args};
use crate::resp::{parse_request_with_auth, Parsed};
use crate::server::client::{Client, ClientHandle};
use crate::server::dispatch::Pipeline;
use crate::server::tls::{Conn, TlsStream};
use crate::server::{unix_ms, unix_us};
use crate::shard::Shard;

/// Reads start at this size and double while reads fill the buffer, up to MAX_READ.
/// Redis 7.0's reply to a non-loopback client while protected mode is on and no password is
/// set, sent as soon as the connection is accepted (clientAcceptHandler), word for word.
const PROTECTED_MODE_DENIED: &[u8] = b"-DENIED Redis is running in protected mode because protected mode is enabled and no password is set for the default user. In this mode connections are only accepted from the loopback interface. If you want to connect from external computers to Redis you may adopt one of the following solutions: 1) Just disable protected mode sending the command 'CONFIG SET protected-mode no' from the loopback interface by connecting to Redis from the same host the server is running, however MAKE SURE Redis is not publicly accessible from internet if you do so. Use CONFIG REWRITE to make this change permanent. 2) Alternatively you can just disable the protected mode by editing the Redis configuration file, and setting the protected mode option to 'no', and then restarting the server. 3) If you started the server manually just for testing, restart it with the '--protected-mode no' option. 4) Setup a an authentication password for the default user. NOTE: You only need to do one of the above things in order for the server to start accepting connections from the outside.\r\n";

/// Redis's connIsLocal: the peer is exactly 127.0.0.1 or ::1 (not the rest of 127/8).
fn is_loopback_peer(addr: std::net::SocketAddr) -> bool {
    match addr.ip() {
        std::net::IpAddr::V4(ip) => ip == std::net::Ipv4Addr::LOCALHOST,
        std::net::IpAddr::V6(ip) => ip == std::net::Ipv6Addr::LOCALHOST,
    }
}

const MIN_READ: usize = 4096;
const MAX_READ: usize = 256 * 1024;

/// Serves a connection accepted on a plain port, or on the TLS port (`tls`): its handshake
/// comes first, and a client that fails it is logged and closed (as Redis does).
pub async fn serve(shard: Rc<Shard>, stream: TcpStream, tls: bool) {
    let local = &shard.local;
    let shared = local.shared.clone();
    let _ = stream.set_nodelay(true);
    let (Ok(addr), Ok(laddr)) = (stream.peer_addr(), stream.local_addr()) else {
        return;
    };
    let mut stream = if tls {
        let Some(config) = shared.tls.read().unwrap_or_else(|e| e.into_inner()).clone() else {
            return;
        };
        match TlsStream::accept(stream, config).await {
            Ok(t) => Conn::Tls(Box::new(t)),
            Err(e) => {
                tracing::debug!("Error accepting a client connection: {e} (addr={addr} laddr={laddr})");
                return;
            }
        }
    } else {
        Conn::Plain(stream)
    };
    let id = shared.next_client_id.fetch_add(1, Ordering::Relaxed);
    let now = unix_ms();
    let handle = Rc::new(ClientHandle {
        id,
        fd: stream.as_raw_fd(),
        addr,
        laddr,
        created_ms: now,
        last_ms: Cell::new(now),
        db: Cell::new(0),
        name: RefCell::new(None),
        lib_name: RefCell::new(None),
        lib_ver: RefCell::new(None),
        last_cmd: Cell::new("NULL"),
        resp: Cell::new(2),
        monitor: Cell::new(false),
        no_evict: Cell::new(false),
        no_touch: Cell::new(false),
        killed: Cell::new(false),
        multi_len: Cell::new(-1),
        qbuf: Cell::new(0),
        omem: Cell::new(0),
        monitor_feed: RefCell::new(Vec::new()),
        monitor_wake: RefCell::new(None),
        blocked: Cell::new(false),
        unblock: RefCell::new(None),
        pubsub: Default::default(),
    });
    local.stats.borrow_mut().connections_received += 1;
    let connected = shared.connected_clients.fetch_add(1, Ordering::SeqCst) + 1;
    local.refresh_config();
    let (maxclients, authenticated, protected) = {
        let cfg = local.cfg.borrow();
        (cfg.maxclients, cfg.requirepass.is_none(), cfg.protected_mode)
    };
    // Redis's order: the client limit (acceptCommonHandler), then protected mode
    // (clientAcceptHandler): without a password, only loopback clients get in.
    let refusal: Option<&[u8]> = if connected > maxclients {
        Some(b"-ERR max number of clients reached\r\n")
    } else if protected && authenticated && !is_loopback_peer(addr) {
        Some(PROTECTED_MODE_DENIED)
    } else {
        None
    };
    if let Some(reply) = refusal {
        local.stats.borrow_mut().rejected_connections += 1;
        let _ = stream.write_all(reply).await;
        shared.connected_clients.fetch_sub(1, Ordering::SeqCst);
        return;
    }
    local.clients.borrow_mut().clients.insert(id, handle.clone());
    let mut client = Client::new(shard.clone(), handle.clone(), authenticated);
    serve_client(&mut client, &mut stream).await;
    crate::families::transactions::unwatch_in_background(&mut client);
    crate::server::pubsub::unsubscribe_all(&shard, &handle, true);
    if handle.monitor.get() {
        local.clients.borrow_mut().monitors.retain(|h| h.id != id);
        shared.monitors.fetch_sub(1, Ordering::SeqCst);
    }
    local.clients.borrow_mut().clients.remove(&id);
    shared.connected_clients.fetch_sub(1, Ordering::SeqCst);
}

async fn serve_client(client: &mut Client, stream: &mut Conn) {
    let shard = client.shard.clone();
    let local = &shard.local;
    let handle = client.handle.clone();
    let mut inbuf = BytesMut::with_capacity(MIN_READ);
    let mut pipeline = Pipeline::default();
    let mut chunk = MIN_READ;
    let mut need = 0usize;
    loop {
        let start = inbuf.len();
        let want = chunk.max(need.saturating_sub(start)).min(MAX_READ.max(chunk));
        inbuf.resize(start + want, 0);
        // A subscriber must get its pushes while it sends nothing.
        if handle.pubsub.needs_wait() && !super::pubsub::wait_input(stream, &handle, &shard).await {
            return;
        }
        let n = match stream.read(&mut inbuf[start..]).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        inbuf.truncate(start + n);
        if n == want && chunk < MAX_READ {
            chunk *= 2;
        } else if n < MIN_READ {
            chunk = MIN_READ;
        }
        if handle.killed.get() {
            return;
        }
        local.refresh_config();
        let (limits, qbuf_limit) = {
            let cfg = local.cfg.borrow();
            (cfg.limits, cfg.query_buffer_limit)
        };
        {
            let mut stats = local.stats.borrow_mut();
            stats.net_input_bytes += n as u64;
        }
        handle.last_ms.set(unix_ms());

        let mut requests = Vec::new();
        let mut protocol_error = None;
        need = 0;
        loop {
            match parse_request_with_auth(&mut inbuf, &limits, !client.authenticated) {
                Ok(Parsed::Request(args)) => {
                    if !args.is_empty() {
                        requests.push(args);
                    }
                }
                Ok(Parsed::Incomplete { need: n }) => {
                    need = n;
                    if n > inbuf.capacity() {
                        inbuf.reserve(n - inbuf.len());
                    }
                    break;
                }
                Err(e) => {
                    protocol_error = Some(e);
                    break;
                }
            }
        }
        handle.qbuf.set(inbuf.len());
        if inbuf.len() > qbuf_limit {
            tracing::warn!(client = %handle.addr, "closing client that reached max query buffer length ({} bytes)", inbuf.len());
            return;
        }
        if !requests.is_empty() {
            pipeline.run(client, requests, Some(&*stream)).await;
            // A reply to a write leaves only once the write is in the AOF as appendfsync asks.
            client.wait_durable().await;
        }
        if let Some(e) = protocol_error {
            tracing::debug!(client = %handle.addr, "protocol error: {e}");
            client.out.raw(&e.reply_bytes());
            client.close_after_reply = true;
        }
        if handle.pubsub.needs_wait() {
            let end = client.out.len();
            super::pubsub::drain_into(&handle, &mut client.out, end);
        }
        if !client.out.is_empty() {
            // Let the other connections whose input arrived in this turn run first, so
            // their replies leave together (as Redis writes in beforeSleep): a client that
            // gets a burst of replies wakes once, not once per reply. Each wakeup of a
            // sleeping client costs the sender an IPI; with costly batches (scripts) sent
            // one at a time, the server woke redis-benchmark 4x as often as redis-server
            // did.
            glommio::executor().yield_now().await;
            let out = client.out.take();
            local.stats.borrow_mut().net_output_bytes += out.len() as u64;
            if stream.write_all(&out).await.is_err() {
                return;
            }
            client.out.buf = reuse(out);
        }
        if client.close_after_reply || handle.killed.get() {
            return;
        }
        if handle.monitor.get() {
            monitor_loop(stream, &handle).await;
            return;
        }
    }
}

/// Gives the reply buffer back for the next batch if nothing else holds it.
fn reuse(mut buf: BytesMut) -> BytesMut {
    buf.clear();
    if buf.capacity() > 1024 * 1024 {
        BytesMut::with_capacity(16 * 1024)
    } else {
        buf
    }
}

/// A MONITOR client: write the lines other connections feed it until it goes away. A
/// second reader on a duplicate of the socket notices the disconnect.
async fn monitor_loop(stream: &mut Conn, handle: &Rc<ClientHandle>) {
    // SAFETY: dup returns a new descriptor we own and hand to the reader stream.
    let fd2 = unsafe { libc::dup(stream.as_raw_fd()) };
    if fd2 >= 0 {
        let mut reader = unsafe { TcpStream::from_raw_fd(fd2) };
        let h = handle.clone();
        glommio::spawn_local(async move {
            let mut buf = [0u8; 512];
            loop {
                match reader.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
            h.kill();
        })
        .detach();
    }
    loop {
        let lines = std::future::poll_fn(|cx| {
            if handle.killed.get() {
                return std::task::Poll::Ready(None);
            }
            let mut feed = handle.monitor_feed.borrow_mut();
            if feed.is_empty() {
                *handle.monitor_wake.borrow_mut() = Some(cx.waker().clone());
                std::task::Poll::Pending
            } else {
                std::task::Poll::Ready(Some(std::mem::take(&mut *feed)))
            }
        })
        .await;
        match lines {
            Some(bytes) => {
                if stream.write_all(&bytes).await.is_err() {
                    return;
                }
            }
            None => return,
        }
    }
}

/// Appends `b` to `out` as Redis's sdscatrepr does: quoted, with C-style escapes.
pub fn repr(out: &mut Vec<u8>, b: &[u8]) {
    out.push(b'"');
    for &c in b {
        match c {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'"' => out.extend_from_slice(b"\\\""),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            7 => out.extend_from_slice(b"\\a"),
            8 => out.extend_from_slice(b"\\b"),
            c if c.is_ascii_graphic() || c == b' ' => out.push(c),
            c => out.extend_from_slice(format!("\\x{c:02x}").as_bytes()),
        }
    }
    out.push(b'"');
}

/// Sends a command's MONITOR line to every monitor on every shard.
pub async fn feed_monitors(client: &Client, cmd: &Cmd, args: &Args) {
    if cmd.spec.has(flags::SKIP_MONITOR) || cmd.spec.has(flags::ADMIN) {
        return;
    }
    let us = unix_us();
    let mut line = format!(
        "+{}.{:06} [{} {}]",
        us / 1_000_000,
        us % 1_000_000,
        client.db,
        client.handle.addr
    )
    .into_bytes();
    for a in args.as_slice() {
        line.push(b' ');
        repr(&mut line, a);
    }
    line.extend_from_slice(b"\r\n");
    let line = std::sync::Arc::new(line);
    let _ = client
        .shard
        .hop_all(move |sh| {
            for m in sh.local.clients.borrow().monitors.iter() {
                m.monitor_feed.borrow_mut().extend_from_slice(&line);
                if let Some(w) = m.monitor_wake.borrow_mut().take() {
                    w.wake();
                }
            }
        })
        .await;
}

#[cfg(test)]
mod tests {
    use super::repr;

    #[test]
    fn repr_escapes_like_sdscatrepr() {
        let mut out = Vec::new();
        repr(&mut out, b"a\"b\\c\n\x01 ");
        assert_eq!(out, b"\"a\\\"b\\\\c\\n\\x01 \"".to_vec());
    }
}
