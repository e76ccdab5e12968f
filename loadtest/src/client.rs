//! A small blocking RESP client: connection set-up (AUTH / HELLO 3 / SELECT) for every mode,
//! and the whole client of the `camera` scenario and of set-up steps.

use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use crate::resp::{self, Value};

/// How to reach and greet the server.
#[derive(Debug, Clone)]
pub struct ConnOpts {
    pub host: String,
    pub port: u16,
    pub auth: Option<String>,
    pub user: Option<String>,
    pub resp3: bool,
    pub db: u32,
}

pub struct Conn {
    stream: TcpStream,
    rbuf: Vec<u8>,
    rpos: usize,
    wbuf: Vec<u8>,
}

impl Conn {
    /// Connects, then AUTHs / switches to RESP3 / SELECTs as `opts` ask.
    pub fn connect(opts: &ConnOpts) -> Result<Conn, String> {
        let addr = (opts.host.as_str(), opts.port)
            .to_socket_addrs()
            .map_err(|e| format!("resolve {}:{}: {e}", opts.host, opts.port))?
            .next()
            .ok_or_else(|| format!("no address for {}", opts.host))?;
        let stream =
            TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(|e| format!("connect {addr}: {e}"))?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        let mut c = Conn {
            stream,
            rbuf: Vec::with_capacity(16 * 1024),
            rpos: 0,
            wbuf: Vec::new(),
        };
        c.set_read_timeout(Some(Duration::from_secs(30)))?;
        let user = opts.user.as_deref().unwrap_or("default");
        if opts.resp3 {
            let mut args: Vec<&[u8]> = vec![b"HELLO", b"3"];
            if let Some(pw) = &opts.auth {
                args.extend_from_slice(&[b"AUTH", user.as_bytes(), pw.as_bytes()]);
            }
            c.expect_ok_or_any(&args, "HELLO 3")?;
        } else if let Some(pw) = &opts.auth {
            if opts.user.is_some() {
                c.expect_ok_or_any(&[b"AUTH", user.as_bytes(), pw.as_bytes()], "AUTH")?;
            } else {
                c.expect_ok_or_any(&[b"AUTH", pw.as_bytes()], "AUTH")?;
            }
        }
        if opts.db != 0 {
            let db = opts.db.to_string();
            c.expect_ok_or_any(&[b"SELECT", db.as_bytes()], "SELECT")?;
        }
        Ok(c)
    }

    fn expect_ok_or_any(&mut self, args: &[&[u8]], what: &str) -> Result<(), String> {
        match self.cmd(args)? {
            Value::Error(e) => Err(format!("{what} failed: {e}")),
            _ => Ok(()),
        }
    }

    pub fn set_read_timeout(&mut self, t: Option<Duration>) -> Result<(), String> {
        self.stream.set_read_timeout(t).map_err(|e| e.to_string())
    }

    /// Hands the socket to an event loop. Only valid when no reply is buffered.
    pub fn into_stream(self) -> TcpStream {
        debug_assert_eq!(self.rpos, self.rbuf.len());
        self.stream
    }

    /// Queues one command; [`Conn::flush`] sends everything queued.
    pub fn send(&mut self, args: &[&[u8]]) {
        resp::push_cmd(&mut self.wbuf, args);
    }

    pub fn flush(&mut self) -> Result<(), String> {
        let r = self.stream.write_all(&self.wbuf);
        self.wbuf.clear();
        r.map_err(|e| format!("write: {e}"))
    }

    /// Reads one reply. A read timeout comes back as `Err(TIMEOUT)` and loses nothing: the
    /// partial reply stays buffered for the next call.
    pub fn read(&mut self) -> Result<Value, String> {
        loop {
            match resp::parse_value(&self.rbuf[self.rpos..]) {
                Ok(Some((v, n))) => {
                    self.rpos += n;
                    if self.rpos == self.rbuf.len() {
                        self.rbuf.clear();
                        self.rpos = 0;
                    }
                    return Ok(v);
                }
                Ok(None) => {}
                Err(e) => return Err(format!("protocol error from server: {e}")),
            }
            if self.rpos > 0 {
                self.rbuf.drain(..self.rpos);
                self.rpos = 0;
            }
            let mut chunk = [0u8; 16 * 1024];
            match self.stream.read(&mut chunk) {
                Ok(0) => return Err("connection closed by server".into()),
                Ok(n) => self.rbuf.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                    return Err(TIMEOUT.into())
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("read: {e}")),
            }
        }
    }

    /// Sends one command and returns its reply (error replies are `Ok(Value::Error)`).
    pub fn cmd(&mut self, args: &[&[u8]]) -> Result<Value, String> {
        self.send(args);
        self.flush()?;
        self.read()
    }
}

/// The text of the error [`Conn::read`] returns on a read timeout.
pub const TIMEOUT: &str = "read timed out";
