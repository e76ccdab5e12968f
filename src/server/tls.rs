//! TLS (Redis's `tls-*` parameters) with rustls, driven over our own glommio sockets.
//!
//! A connection is a [`Conn`]: plain TCP, or TCP carrying a rustls server session. The
//! session encrypts into its stream's own backlog (`out`), which is written with the same
//! socket writes as plain replies; reads decrypt from a raw buffer the socket fills. Pushes
//! to subscribers are sealed the same way before their nonblocking send (see
//! `pubsub::wait_input`).
//!
//! The server's rustls configuration is built from the `tls-*` parameters at start and
//! again when CONFIG SET changes one of them; connections accepted afterwards use the new
//! one, established ones keep theirs (as Redis's SSL_CTX swap does).

use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::path::Path;
use std::sync::Arc;

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{NoServerSessionStorage, ServerSessionMemoryCache, WebPkiClientVerifier};
use rustls::{RootCertStore, ServerConfig, ServerConnection};

use crate::config::{Config, TlsAuthClients};

/// Raw bytes read from the socket at a time.
const RAW_READ: usize = 64 * 1024;

/// Builds the server's TLS configuration, checking what Redis's tlsConfigure checks (in its
/// order); the error is the log line that says what is wrong.
pub fn server_config(cfg: &Config) -> Result<Arc<ServerConfig>, String> {
    let cert_file = cfg.tls_cert_file.as_deref().ok_or("No tls-cert-file configured!")?;
    let key_file = cfg.tls_key_file.as_deref().ok_or("No tls-key-file configured!")?;
    let auth = cfg.tls_auth_clients;
    if auth != TlsAuthClients::No && cfg.tls_ca_cert_file.is_none() && cfg.tls_ca_cert_dir.is_none() {
        return Err(
            "Either tls-ca-cert-file or tls-ca-cert-dir must be specified when tls-cluster, \
                    tls-replication or tls-auth-clients are enabled!"
                .into(),
        );
    }
    let versions = protocols(&cfg.tls_protocols)?;
    // ring builds with a C compiler only (aws-lc-rs wants cmake and takes minutes); its
    // provider lacks only the post-quantum key exchange, which is what the deprecation says.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| format!("Failed to configure TLS protocols: {e}"))?;
    let builder = if auth == TlsAuthClients::No {
        builder.with_no_client_auth()
    } else {
        let roots = ca_roots(cfg.tls_ca_cert_file.as_deref(), cfg.tls_ca_cert_dir.as_deref())?;
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
        let verifier = if auth == TlsAuthClients::Optional {
            verifier.allow_unauthenticated()
        } else {
            verifier
        };
        let verifier = verifier
            .build()
            .map_err(|e| format!("Failed to configure CA certificate(s) for client verification: {e}"))?;
        builder.with_client_cert_verifier(verifier)
    };
    let certs = certificates(cert_file)?;
    if certs.is_empty() {
        return Err(format!(
            "Failed to load certificate: {}: no certificate found",
            cert_file.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_file(key_file)
        .map_err(|e| format!("Failed to load private key: {}: {e}", key_file.display()))?;
    let mut config = builder.with_single_cert(certs, key).map_err(|e| {
        format!(
            "Failed to load certificate {} with key {}: {e}",
            cert_file.display(),
            key_file.display()
        )
    })?;
    config.session_storage = if cfg.tls_session_caching {
        ServerSessionMemoryCache::new(cfg.tls_session_cache_size.max(1) as usize)
    } else {
        Arc::new(NoServerSessionStorage {})
    };
    Ok(Arc::new(config))
}

/// Redis's parseProtocolsConfig: space-separated, case-insensitive; empty means TLSv1.2 and
/// TLSv1.3. rustls has neither TLSv1 nor TLSv1.1.
fn protocols(spec: &str) -> Result<Vec<&'static rustls::SupportedProtocolVersion>, String> {
    if spec.trim().is_empty() {
        return Ok(vec![&rustls::version::TLS13, &rustls::version::TLS12]);
    }
    let mut versions = Vec::new();
    for word in spec.split_ascii_whitespace() {
        let v = match word.to_ascii_lowercase().as_str() {
            "tlsv1.2" => &rustls::version::TLS12,
            "tlsv1.3" => &rustls::version::TLS13,
            "tlsv1" | "tlsv1.1" => {
                return Err(format!(
                    "{word} is not supported: basalt's TLS offers TLSv1.2 and TLSv1.3 (set tls-protocols accordingly)"
                ))
            }
            _ => {
                return Err(
                    "Invalid tls-protocols specified. Use a combination of 'TLSv1', 'TLSv1.1', \
                            'TLSv1.2' and 'TLSv1.3'."
                        .into(),
                )
            }
        };
        if !versions.contains(&v) {
            versions.push(v);
        }
    }
    Ok(versions)
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("Failed to load certificate: {}: {e}", path.display()))
}

/// The CAs client certificates must chain to: every certificate in `file` and in the files
/// of `dir` (OpenSSL's CApath holds hashed links to them; any PEM file there counts).
fn ca_roots(file: Option<&Path>, dir: Option<&Path>) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    let mut add = |certs: Vec<CertificateDer<'static>>, from: &Path| -> Result<(), String> {
        for c in certs {
            roots.add(c).map_err(|e| {
                format!(
                    "Failed to configure CA certificate(s) file/directory: {}: {e}",
                    from.display()
                )
            })?;
        }
        Ok(())
    };
    if let Some(f) = file {
        add(certificates(f)?, f)?;
    }
    if let Some(d) = dir {
        let entries = std::fs::read_dir(d).map_err(|e| {
            format!(
                "Failed to configure CA certificate(s) file/directory: {}: {e}",
                d.display()
            )
        })?;
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_file() {
                // Files that hold no certificate (a CRL, a README) are skipped, as OpenSSL does.
                if let Ok(certs) = certificates(&path) {
                    add(certs, &path)?;
                }
            }
        }
    }
    if roots.is_empty() {
        return Err("Failed to configure CA certificate(s) file/directory: no CA certificate found".into());
    }
    Ok(roots)
}

/// A TLS server session over a TCP socket.
pub struct TlsStream {
    pub tcp: TcpStream,
    pub session: Session,
    raw: Vec<u8>,
    raw_start: usize,
    raw_end: usize,
}

/// The session and its encrypted backlog: what `seal` produced and the socket has not taken.
pub struct Session {
    tls: ServerConnection,
    pub out: Vec<u8>,
}

impl Session {
    /// Encrypts `plain` onto the backlog.
    pub fn seal(&mut self, plain: &[u8]) -> io::Result<()> {
        self.tls.writer().write_all(plain)?;
        self.drain_records()
    }

    /// Moves the records rustls has ready (handshake, alerts, data) onto the backlog.
    fn drain_records(&mut self) -> io::Result<()> {
        while self.tls.wants_write() {
            self.tls.write_tls(&mut self.out)?;
        }
        Ok(())
    }
}

impl TlsStream {
    /// Runs the server side of the handshake.
    pub async fn accept(tcp: TcpStream, config: Arc<ServerConfig>) -> io::Result<TlsStream> {
        let mut tls = ServerConnection::new(config).map_err(io::Error::other)?;
        // The backlog is written out after every seal: rustls need not cap it as well.
        tls.set_buffer_limit(None);
        let mut s = TlsStream {
            tcp,
            session: Session { tls, out: Vec::new() },
            raw: vec![0; RAW_READ],
            raw_start: 0,
            raw_end: 0,
        };
        while s.session.tls.is_handshaking() {
            s.flush().await?;
            if !s.fill().await? {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
        // TLS 1.3 session tickets, and the last handshake flight under TLS 1.2.
        s.flush().await?;
        Ok(s)
    }

    /// Reads more of the socket and feeds rustls with it. False at the end of the stream.
    async fn fill(&mut self) -> io::Result<bool> {
        if self.raw_start == self.raw_end {
            let n = self.tcp.read(&mut self.raw).await?;
            if n == 0 {
                return Ok(false);
            }
            (self.raw_start, self.raw_end) = (0, n);
        }
        let mut slice = &self.raw[self.raw_start..self.raw_end];
        let n = self.session.tls.read_tls(&mut slice)?;
        self.raw_start += n;
        if let Err(e) = self.session.tls.process_new_packets() {
            // Tell the peer why (the alert rustls queued), then fail.
            let _ = self.session.drain_records();
            let _ = self.flush().await;
            return Err(io::Error::new(io::ErrorKind::InvalidData, e));
        }
        Ok(true)
    }

    /// Reads decrypted bytes; 0 at the end of the stream (close_notify or the socket's end).
    pub async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.session.tls.reader().read(buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
            // Whatever rustls wants to say first (a key update's answer, an alert).
            self.session.drain_records()?;
            self.flush().await?;
            if !self.fill().await? {
                return Ok(0);
            }
        }
    }

    /// Encrypts and writes all of `buf`, after the backlog.
    pub async fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.session.seal(buf)?;
        self.flush().await
    }

    /// Writes the backlog out.
    pub async fn flush(&mut self) -> io::Result<()> {
        self.session.drain_records()?;
        if !self.session.out.is_empty() {
            self.tcp.write_all(&self.session.out).await?;
            self.session.out.clear();
            if self.session.out.capacity() > 1024 * 1024 {
                self.session.out = Vec::new();
            }
        }
        Ok(())
    }
}

/// A client connection: plain TCP or TLS.
pub enum Conn {
    Plain(TcpStream),
    Tls(Box<TlsStream>),
}

impl Conn {
    pub fn tcp(&self) -> &TcpStream {
        match self {
            Conn::Plain(s) => s,
            Conn::Tls(t) => &t.tcp,
        }
    }

    /// The socket, and the TLS session when there is one (split so that a pending peek on
    /// the socket and the session's sealing can go on together).
    pub fn split(&mut self) -> (&TcpStream, Option<&mut Session>) {
        match self {
            Conn::Plain(s) => (s, None),
            Conn::Tls(t) => (&t.tcp, Some(&mut t.session)),
        }
    }

    pub async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Conn::Plain(s) => s.read(buf).await,
            Conn::Tls(t) => t.read(buf).await,
        }
    }

    pub async fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            Conn::Plain(s) => s.write_all(buf).await,
            Conn::Tls(t) => t.write_all(buf).await,
        }
    }

    /// Sealed bytes the socket has not taken yet.
    pub fn backlog(&self) -> usize {
        match self {
            Conn::Plain(_) => 0,
            Conn::Tls(t) => t.session.out.len(),
        }
    }

    /// Peeks at the socket: whether the client sent anything or went away. Under TLS the
    /// bytes are records, not yet requests.
    pub async fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        Ok(self.tcp().peek(buf).await?)
    }
}

impl AsRawFd for Conn {
    fn as_raw_fd(&self) -> RawFd {
        self.tcp().as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocols_parse_like_redis() {
        assert_eq!(protocols("").unwrap().len(), 2);
        assert_eq!(protocols("TLSv1.3").unwrap(), vec![&rustls::version::TLS13]);
        assert_eq!(protocols("tlsv1.2 TLSv1.2").unwrap(), vec![&rustls::version::TLS12]);
        assert!(protocols("TLSv1.1").unwrap_err().contains("not supported"));
        assert!(protocols("SSLv3")
            .unwrap_err()
            .starts_with("Invalid tls-protocols specified."));
    }

    #[test]
    fn missing_files_are_named() {
        let mut c = Config::default();
        assert_eq!(server_config(&c).unwrap_err(), "No tls-cert-file configured!");
        c.tls_cert_file = Some("/nonexistent/c.crt".into());
        assert_eq!(server_config(&c).unwrap_err(), "No tls-key-file configured!");
        c.tls_key_file = Some("/nonexistent/c.key".into());
        assert!(server_config(&c)
            .unwrap_err()
            .starts_with("Either tls-ca-cert-file or tls-ca-cert-dir"));
        c.tls_auth_clients = TlsAuthClients::No;
        let e = server_config(&c).unwrap_err();
        assert!(e.starts_with("Failed to load certificate: /nonexistent/c.crt"), "{e}");
    }
}
