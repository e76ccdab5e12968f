//! Runs the loadtest binary against a real redis-server (skipped when none is installed):
//! every mode must pass on a correct server, and error replies must fail the run.

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

struct Server {
    child: Child,
    port: u16,
    _dir: TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn redis_server() -> Option<Server> {
    let bin = std::env::var("REDIS_SERVER").unwrap_or_else(|_| "redis-server".into());
    if Command::new(&bin).arg("--version").output().is_err() {
        eprintln!("skipping: {bin} not found");
        return None;
    }
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dir = std::env::temp_dir().join(format!("loadtest-it-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let child = Command::new(&bin)
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .current_dir(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start redis-server");
    let server = Server {
        child,
        port,
        _dir: TempDir(dir),
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "redis-server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    Some(server)
}

fn loadtest(port: u16, args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_loadtest"))
        .arg(args[0])
        .args(["--port", &port.to_string()])
        .args(&args[1..])
        .output()
        .expect("run loadtest");
    eprintln!(
        "loadtest {args:?} -> {:?}\n{}{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn every_mode_passes_and_errors_fail() {
    let Some(srv) = redis_server() else { return };
    let p = srv.port;

    let all = "ping,set,get,incr,mset,mget,lpush,rpush,lpop,rpop,sadd,hset,spop,zadd,zpopmin,lrange_100,lrange_600,publish,evalsha";
    let out = loadtest(p, &["bench", "-n", "3000", "-c", "8", "-P", "4", "-t", all, "--csv"]);
    assert_eq!(out.status.code(), Some(0));
    let csv = String::from_utf8_lossy(&out.stdout);
    assert_eq!(csv.lines().count(), 1 + all.split(',').count(), "{csv}");
    for line in csv.lines().skip(1) {
        let cols: Vec<&str> = line.split(',').collect();
        assert_eq!(cols[6], "3000", "{line}");
        assert_eq!(cols[7], "0", "{line}");
    }

    let out = loadtest(
        p,
        &[
            "bench",
            "-d",
            "0.3",
            "--resp3",
            "--threads",
            "2",
            "-t",
            "get,lrange_100",
        ],
    );
    assert_eq!(out.status.code(), Some(0));

    let out = loadtest(p, &["latency", "--rate", "2000", "-d", "1", "--csv"]);
    assert_eq!(out.status.code(), Some(0));

    let out = loadtest(
        p,
        &[
            "camera",
            "-d",
            "1.5",
            "--rate",
            "1000",
            "--dup-rate",
            "0.1",
            "--fail-rate",
            "0.1",
        ],
    );
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("RESULT: PASS"));

    let out = loadtest(p, &["camera", "-d", "1", "--resp3", "--subscribers", "1"]);
    assert_eq!(out.status.code(), Some(0));

    // WRONGTYPE on every SADD: the run must fail and say why.
    let out = loadtest(p, &["bench", "-n", "100", "-t", "set"]);
    assert_eq!(out.status.code(), Some(0));
    let mut c = TcpStream::connect(("127.0.0.1", p)).unwrap();
    std::io::Write::write_all(&mut c, b"*3\r\n$3\r\nSET\r\n$5\r\nmyset\r\n$1\r\nx\r\n").unwrap();
    let mut buf = [0u8; 5];
    std::io::Read::read_exact(&mut c, &mut buf).unwrap();
    assert_eq!(&buf, b"+OK\r\n");
    let out = loadtest(p, &["bench", "-n", "100", "-t", "sadd"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("WRONGTYPE"));

    // Nothing listening: could not run at all.
    let out = Command::new(env!("CARGO_BIN_EXE_loadtest"))
        .args(["bench", "--port", "1", "-n", "10"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
