//! TLS and mutual TLS: the real binary with `--shards 4` and a TLS port, spoken to with a
//! rustls client (and with redis-cli --tls), side by side with redis-server where the
//! replies are Redis's to give. Certificates are made here with rcgen, for every run.

mod common;

use std::io::BufReader;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{free_port, have_redis, poll, Raw, RedisServer, Server, PATIENCE, V};
use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

type Tls = StreamOwned<ClientConnection, TcpStream>;

/// A certificate authority and the certificates it signed, as files and as DER.
struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
    file: PathBuf,
}

struct Leaf {
    cert_file: PathBuf,
    key_file: PathBuf,
    der: CertificateDer<'static>,
    key_der: Vec<u8>,
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    #[allow(deprecated)]
    Arc::new(rustls::crypto::ring::default_provider())
}

fn ca(dir: &Path, name: &str) -> Ca {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name
        .push(DnType::CommonName, format!("basalt test {name}"));
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let key = KeyPair::generate().unwrap();
    let cert = p.self_signed(&key).unwrap();
    let file = dir.join(format!("{name}.crt"));
    std::fs::write(&file, cert.pem()).unwrap();
    Ca { cert, key, file }
}

fn leaf(dir: &Path, ca: &Ca, name: &str, server: bool) -> Leaf {
    let sans = if server {
        vec!["localhost".to_string(), "127.0.0.1".to_string()]
    } else {
        Vec::new()
    };
    let mut p = CertificateParams::new(sans).unwrap();
    p.distinguished_name.push(DnType::CommonName, name);
    p.extended_key_usages = vec![if server {
        ExtendedKeyUsagePurpose::ServerAuth
    } else {
        ExtendedKeyUsagePurpose::ClientAuth
    }];
    let key = KeyPair::generate().unwrap();
    let cert = p.signed_by(&key, &ca.cert, &ca.key).unwrap();
    let (cert_file, key_file) = (dir.join(format!("{name}.crt")), dir.join(format!("{name}.key")));
    std::fs::write(&cert_file, cert.pem()).unwrap();
    std::fs::write(&key_file, key.serialize_pem()).unwrap();
    Leaf {
        cert_file,
        key_file,
        der: cert.der().clone(),
        key_der: key.serialize_der(),
    }
}

/// The test's PKI: a CA that signs the server's and a client's certificate, and a stranger
/// CA with a client of its own.
struct Pki {
    dir: PathBuf,
    ca: Ca,
    server: Leaf,
    client: Leaf,
    stranger: Leaf,
}

fn pki(name: &str) -> Pki {
    let dir = std::env::temp_dir().join(format!("basalt-tls-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca1 = ca(&dir, "ca");
    let server = leaf(&dir, &ca1, "server", true);
    let client = leaf(&dir, &ca1, "client", false);
    let other = ca(&dir, "other-ca");
    let stranger = leaf(&dir, &other, "stranger", false);
    Pki {
        dir,
        ca: ca1,
        server,
        client,
        stranger,
    }
}

impl Pki {
    /// The server options, the TLS port first.
    fn args(&self, tls_port: u16) -> Vec<String> {
        let p = |f: &Path| f.display().to_string();
        vec![
            "--tls-port".into(),
            tls_port.to_string(),
            "--tls-cert-file".into(),
            p(&self.server.cert_file),
            "--tls-key-file".into(),
            p(&self.server.key_file),
            "--tls-ca-cert-file".into(),
            p(&self.ca.file),
        ]
    }

    fn connect(&self, port: u16, cert: Option<&Leaf>) -> std::io::Result<Raw<Tls>> {
        connect_trusting(port, self.ca.cert.der(), cert)
    }
}

fn connect_trusting(port: u16, ca: &CertificateDer<'_>, cert: Option<&Leaf>) -> std::io::Result<Raw<Tls>> {
    let mut roots = RootCertStore::empty();
    roots.add(ca.clone().into_owned()).unwrap();
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match cert {
        Some(l) => {
            let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(l.key_der.clone()));
            builder.with_client_auth_cert(vec![l.der.clone()], key).unwrap()
        }
        None => builder.with_no_client_auth(),
    };
    let conn = ClientConnection::new(Arc::new(config), ServerName::try_from("localhost").unwrap()).unwrap();
    let sock = TcpStream::connect(("127.0.0.1", port))?;
    sock.set_nodelay(true)?;
    sock.set_read_timeout(Some(PATIENCE))?;
    let mut s = StreamOwned::new(conn, sock);
    // Finish the handshake now, so that a refusal shows here or at the first reply.
    while s.conn.is_handshaking() {
        s.conn.complete_io(&mut s.sock)?;
    }
    Ok(Raw { r: BufReader::new(s) })
}

/// The client's first command fails: the server refused its certificate (TLS 1.3 refuses
/// after the client's side of the handshake is done, so the refusal may come with the reply).
fn refused(r: std::io::Result<Raw<Tls>>) -> bool {
    match r {
        Err(_) => true,
        Ok(mut c) => c.send(&["PING"]).is_err() || c.read().is_err(),
    }
}

fn args_ref(v: &[String]) -> Vec<&str> {
    v.iter().map(|s| s.as_str()).collect()
}

#[test]
fn mutual_tls_serves_commands_and_refuses_strangers() {
    let pki = pki("mutual");
    let tls_port = free_port();
    let args = pki.args(tls_port);
    let server = Server::start(&args_ref(&args));
    let mut c = pki
        .connect(tls_port, Some(&pki.client))
        .expect("client with a certificate");
    assert_eq!(c.cmd(&["PING"]), V::Simple("PONG".into()));
    // A value bigger than many TLS records, both ways.
    let big: String = (0..3_000_000).map(|i| (b'a' + (i % 26) as u8) as char).collect();
    assert_eq!(c.cmd(&["SET", "big", &big]), V::Simple("OK".into()));
    assert_eq!(c.cmd(&["GET", "big"]), V::Bulk(big.clone().into_bytes()));
    // A pipeline that spans records and reads.
    let mut batch = Vec::new();
    for _ in 0..5000 {
        batch.extend_from_slice(&common::encode(&[b"INCR", b"n"]));
    }
    c.write_all(&batch).unwrap();
    for i in 1..=5000 {
        assert_eq!(c.read().unwrap(), V::Int(i));
    }
    // One keyspace behind both ports.
    assert_eq!(server.raw().cmd(&["GET", "n"]), V::Bulk(b"5000".to_vec()));
    assert_eq!(server.raw().cmd(&["STRLEN", "big"]), V::Int(3_000_000));

    assert!(refused(pki.connect(tls_port, None)), "no client certificate");
    assert!(
        refused(pki.connect(tls_port, Some(&pki.stranger))),
        "a certificate from another CA"
    );
    // A plain client on the TLS port gets nothing it could take for a reply.
    let mut plain = Raw::connect(tls_port).unwrap();
    plain.set_timeout(PATIENCE);
    let _ = plain.send(&["PING"]);
    assert!(plain.read().is_err());
    // The refused ones cost the server nothing.
    assert_eq!(c.cmd(&["GET", "n"]), V::Bulk(b"5000".to_vec()));
}

#[test]
fn tls_auth_clients_optional_and_no() {
    let pki = pki("optional");
    let tls_port = free_port();
    let mut args = pki.args(tls_port);
    args.extend(["--tls-auth-clients".into(), "optional".into()]);
    let server = Server::start(&args_ref(&args));
    let mut anon = pki.connect(tls_port, None).expect("optional: no certificate is fine");
    assert_eq!(anon.cmd(&["PING"]), V::Simple("PONG".into()));
    let mut known = pki.connect(tls_port, Some(&pki.client)).unwrap();
    assert_eq!(known.cmd(&["PING"]), V::Simple("PONG".into()));
    assert!(
        refused(pki.connect(tls_port, Some(&pki.stranger))),
        "optional still checks a certificate"
    );

    assert_eq!(
        server.raw().cmd(&["CONFIG", "SET", "tls-auth-clients", "no"]),
        V::Simple("OK".into())
    );
    // Not asked for a certificate, the stranger sends none.
    let mut s = pki.connect(tls_port, Some(&pki.stranger)).expect("no: nobody is asked");
    assert_eq!(s.cmd(&["PING"]), V::Simple("PONG".into()));
    // Connections made before the change keep working.
    assert_eq!(anon.cmd(&["ECHO", "still"]), V::Bulk(b"still".to_vec()));
}

#[test]
fn tls_pubsub_backlog_and_blocking_pops() {
    let pki = pki("pubsub");
    let tls_port = free_port();
    let server = Server::start(&args_ref(&pki.args(tls_port)));
    let mut sub = pki.connect(tls_port, Some(&pki.client)).unwrap();
    sub.send(&["SUBSCRIBE", "ch"]).unwrap();
    assert_eq!(
        sub.read().unwrap(),
        V::Arr(vec![V::Bulk(b"subscribe".to_vec()), V::Bulk(b"ch".to_vec()), V::Int(1)])
    );
    // More than the socket buffers hold while the subscriber reads nothing: the sealed
    // backlog must leave in order once it reads.
    let mut publisher = server.raw();
    let payload = "p".repeat(4000);
    for i in 0..2000 {
        let msg = format!("{i}:{payload}");
        assert_eq!(publisher.cmd(&["PUBLISH", "ch", &msg]), V::Int(1));
    }
    for i in 0..2000 {
        let msg = format!("{i}:{payload}");
        assert_eq!(
            sub.read().unwrap(),
            V::Arr(vec![
                V::Bulk(b"message".to_vec()),
                V::Bulk(b"ch".to_vec()),
                V::Bulk(msg.into_bytes())
            ])
        );
    }
    assert_eq!(
        sub.cmd(&["PING"]),
        V::Arr(vec![V::Bulk(b"pong".to_vec()), V::Bulk(Vec::new())])
    );

    // A TLS client blocked on a list, woken by a plain client's push.
    let mut waiter = pki.connect(tls_port, Some(&pki.client)).unwrap();
    waiter.send(&["BLPOP", "q", "0"]).unwrap();
    poll(PATIENCE, || {
        (publisher.info_field("clients", "blocked_clients") == "1").then_some(())
    })
    .expect("the TLS client blocks");
    assert_eq!(publisher.cmd(&["RPUSH", "q", "job"]), V::Int(1));
    assert_eq!(
        waiter.read().unwrap(),
        V::Arr(vec![V::Bulk(b"q".to_vec()), V::Bulk(b"job".to_vec())])
    );
}

#[test]
fn config_set_reloads_certificates_and_refuses_bad_ones() {
    let pki = pki("reload");
    let tls_port = free_port();
    let server = Server::start(&args_ref(&pki.args(tls_port)));
    let mut admin = server.raw();
    let bad = admin.cmd(&["CONFIG", "SET", "tls-cert-file", "/nonexistent/server.crt"]);
    assert_eq!(
        bad,
        V::Err(
            "ERR CONFIG SET failed (possibly related to argument 'tls-cert-file') - Unable to update TLS configuration. Check server logs.".into()
        )
    );
    assert_eq!(
        admin.cmd(&["CONFIG", "GET", "tls-cert-file"]),
        V::Arr(vec![
            V::Bulk(b"tls-cert-file".to_vec()),
            V::Bulk(pki.server.cert_file.display().to_string().into_bytes())
        ]),
        "a refused change changes nothing"
    );
    assert!(pki
        .connect(tls_port, Some(&pki.client))
        .is_ok_and(|mut c| c.cmd(&["PING"]) == V::Simple("PONG".into())));

    // A new server certificate from a new CA: new connections get it.
    let ca2 = ca(&pki.dir, "ca2");
    let server2 = leaf(&pki.dir, &ca2, "server2", true);
    let cert2 = server2.cert_file.display().to_string();
    let key2 = server2.key_file.display().to_string();
    assert_eq!(
        admin.cmd(&["CONFIG", "SET", "tls-cert-file", &cert2, "tls-key-file", &key2]),
        V::Simple("OK".into())
    );
    let mut c2 = connect_trusting(tls_port, ca2.cert.der(), Some(&pki.client)).expect("the new certificate");
    assert_eq!(c2.cmd(&["PING"]), V::Simple("PONG".into()));
    assert!(
        pki.connect(tls_port, Some(&pki.client)).is_err(),
        "a client that trusts only the old CA refuses the new certificate"
    );
    assert!(
        server.log_text().contains("Failed to configure TLS"),
        "the log says why"
    );
}

/// Starts basalt by hand (the harness speaks plain TCP first) and returns what it printed
/// if it exits within the patience, or None while it runs (then it is killed).
fn run_briefly(args: &[String], dir: &Path, until: impl Fn() -> bool) -> Option<(i32, String)> {
    let log = dir.join("run.log");
    let logf = std::fs::File::create(&log).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_basalt"))
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(logf.try_clone().unwrap())
        .stderr(logf)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + PATIENCE;
    let result = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some((
                status.code().unwrap_or(-1),
                std::fs::read_to_string(&log).unwrap_or_default(),
            ));
        }
        if until() || Instant::now() > deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let _ = child.kill();
    let _ = child.wait();
    result
}

#[test]
fn tls_only_with_port_0_and_refusals_at_start() {
    let pki = pki("start");
    let tls_port = free_port();
    let mut args: Vec<String> = ["--shards", "4", "--bind", "127.0.0.1", "--save", "", "--port", "0"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.extend(pki.args(tls_port));
    let served = std::cell::Cell::new(false);
    let exited = run_briefly(&args, &pki.dir, || {
        let ok = pki
            .connect(tls_port, Some(&pki.client))
            .is_ok_and(|mut c| c.cmd(&["PING"]) == V::Simple("PONG".into()));
        if ok {
            // `port 0` with a TLS port: no plain listener (as redis-server, tcp_port:0).
            let mut c = pki.connect(tls_port, Some(&pki.client)).unwrap();
            assert_eq!(c.info_field("server", "tcp_port"), "0");
            served.set(true);
        }
        ok
    });
    assert!(exited.is_none() && served.get(), "TLS-only server: {exited:?}");

    // A TLS port without a certificate, or with a key that is not one, stops the start.
    let base: Vec<String> = [
        "--shards",
        "2",
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--port",
        &free_port().to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut no_cert = base.clone();
    no_cert.extend(["--tls-port".into(), free_port().to_string()]);
    let (code, log) = run_briefly(&no_cert, &pki.dir, || false).expect("refuses to start");
    assert_ne!(code, 0);
    assert!(
        log.contains("Failed to configure TLS: No tls-cert-file configured!"),
        "{log}"
    );

    let mut bad_key = base.clone();
    bad_key.extend(pki.args(free_port()));
    let i = bad_key.iter().position(|a| a == "--tls-key-file").unwrap();
    bad_key[i + 1] = pki.ca.file.display().to_string();
    let (code, log) = run_briefly(&bad_key, &pki.dir, || false).expect("refuses to start");
    assert_ne!(code, 0);
    assert!(log.contains("Failed to load private key"), "{log}");
}

/// The same commands over TLS to basalt and to redis-server, set up alike: the replies that
/// are Redis's to give (CONFIG GET tls-*, CONFIG SET errors) must be the same.
#[test]
fn tls_replies_match_redis_server() {
    if !have_redis() {
        return;
    }
    let pki = pki("diff");
    let basalt_tls = free_port();
    let server = Server::start(&args_ref(&pki.args(basalt_tls)));
    let redis_tls = free_port();
    let rargs = pki.args(redis_tls);
    let rdir = pki.dir.join("redis");
    std::fs::create_dir_all(&rdir).unwrap();
    let redis = RedisServer::start(&rdir, &args_ref(&rargs));
    let mut b = pki.connect(basalt_tls, Some(&pki.client)).unwrap();
    let mut r = pki
        .connect(redis_tls, Some(&pki.client))
        .expect("redis-server over TLS");
    let cmds: Vec<Vec<String>> = [
        "PING",
        "SET k v",
        "GET k",
        "CONFIG GET tls-auth-clients",
        "CONFIG GET tls-protocols",
        "CONFIG GET tls-session-caching",
        "CONFIG GET tls-session-cache-size",
        "CONFIG GET tls-session-cache-timeout",
        "CONFIG GET tls-prefer-server-ciphers",
        "CONFIG GET tls-replication",
        "CONFIG GET tls-cluster",
        "CONFIG GET tls-ciphers",
        "CONFIG GET tls-key-file-pass",
        "CONFIG SET tls-cert-file /nonexistent.crt",
        "CONFIG SET tls-key-file /nonexistent.key",
        "CONFIG SET tls-ca-cert-file /nonexistent-ca.crt",
        "CONFIG SET tls-protocols SSLv3",
        "CONFIG SET tls-auth-clients maybe",
        "CONFIG SET tls-session-cache-size -1",
        "CONFIG SET tls-auth-clients optional",
        "CONFIG GET tls-auth-clients",
        "CONFIG SET tls-protocols TLSv1.2",
        "CONFIG SET tls-protocols TLSv1.3",
        "CONFIG GET tls-protocols",
        "PING",
    ]
    .iter()
    .map(|c| c.split(' ').map(String::from).collect())
    .collect();
    for cmd in &cmds {
        let args = args_ref(cmd);
        assert_eq!(b.cmd(&args), r.cmd(&args), "{cmd:?}");
    }
    // After the changes, both still serve new clients.
    for port in [basalt_tls, redis_tls] {
        let mut c = pki.connect(port, Some(&pki.client)).unwrap();
        assert_eq!(c.cmd(&["PING"]), V::Simple("PONG".into()));
    }
    // redis-cli --tls speaks to basalt too.
    if let Ok(out) = Command::new("redis-cli")
        .args(["-p", &basalt_tls.to_string(), "--tls", "--cacert"])
        .arg(&pki.ca.file)
        .arg("--cert")
        .arg(&pki.client.cert_file)
        .arg("--key")
        .arg(&pki.client.key_file)
        .args(["GET", "k"])
        .output()
    {
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "v");
    }
    drop(server);
    redis.shutdown();
}
