//! Start-up failures a user meets in containers: io_uring blocked by seccomp, and a locked
//! memory limit too small for the runtime. basalt must exit at once with one clear line,
//! never a panic backtrace.

use std::os::unix::process::CommandExt;
use std::process::{Command, Output};

fn basalt() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_basalt"));
    c.args(["--port", "0", "--bind", "127.0.0.1", "--save", ""]);
    c
}

fn run_with_timeout(mut cmd: Command) -> Output {
    let child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn basalt");
    let pid = child.id();
    // A server that did start would run forever: stop it after a while so the test fails
    // on its assertions instead of hanging.
    let guard = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_secs(10));
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    });
    let out = child.wait_with_output().expect("wait");
    drop(guard);
    out
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Installs a seccomp filter that makes io_uring_setup fail with EPERM, as Docker's default
/// profile does.
fn block_io_uring() -> std::io::Result<()> {
    const SYS_IO_URING_SETUP: u32 = 425;
    let filter = [
        // A = seccomp_data.nr
        libc::sock_filter {
            code: (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16,
            jt: 0,
            jf: 0,
            k: 0,
        },
        libc::sock_filter {
            code: (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16,
            jt: 0,
            jf: 1,
            k: SYS_IO_URING_SETUP,
        },
        libc::sock_filter {
            code: (libc::BPF_RET | libc::BPF_K) as u16,
            jt: 0,
            jf: 0,
            k: libc::SECCOMP_RET_ERRNO | libc::EPERM as u32,
        },
        libc::sock_filter {
            code: (libc::BPF_RET | libc::BPF_K) as u16,
            jt: 0,
            jf: 0,
            k: libc::SECCOMP_RET_ALLOW,
        },
    ];
    let prog = libc::sock_fprog {
        len: filter.len() as u16,
        filter: filter.as_ptr() as *mut libc::sock_filter,
    };
    unsafe {
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        if libc::prctl(
            libc::PR_SET_SECCOMP,
            libc::SECCOMP_MODE_FILTER,
            &prog as *const libc::sock_fprog,
        ) != 0
        {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

#[test]
fn blocked_io_uring_is_reported_not_panicked() {
    let mut cmd = basalt();
    unsafe {
        cmd.pre_exec(block_io_uring);
    }
    let out = run_with_timeout(cmd);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "output: {t}");
    assert!(t.contains("basalt needs io_uring"), "output: {t}");
    assert!(t.contains("seccomp"), "the message names the likely cause: {t}");
    assert!(!t.contains("panicked"), "no panic: {t}");
}

#[test]
fn small_memlock_limit_is_reported_not_panicked() {
    let mut cmd = basalt();
    unsafe {
        cmd.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: 64 * 1024,
                rlim_max: 64 * 1024,
            };
            if libc::setrlimit(libc::RLIMIT_MEMLOCK, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = run_with_timeout(cmd);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "output: {t}");
    assert!(t.contains("RLIMIT_MEMLOCK is 64 KiB"), "output: {t}");
    assert!(t.contains("ulimit"), "the message says how to fix it: {t}");
    assert!(!t.contains("panicked"), "no panic: {t}");
}

#[test]
fn appendonly_without_a_usable_aof_dir_is_refused() {
    // `appendonlydir` exists as a plain file: the AOF directory cannot be created.
    let dir = std::env::temp_dir().join(format!("basalt-startup-aof-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("appendonlydir"), b"not a directory").unwrap();
    let mut cmd = basalt();
    cmd.args(["--appendonly", "yes", "--dir", dir.to_str().unwrap()]);
    let out = run_with_timeout(cmd);
    let t = text(&out);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(out.status.code(), Some(1), "output: {t}");
    assert!(t.contains("appendonlydir"), "the message names the directory: {t}");
    assert!(!t.contains("panicked"), "no panic: {t}");
}

#[test]
fn bad_config_is_a_fatal_config_error() {
    let mut cmd = basalt();
    cmd.args(["--maxmemory", "lots"]);
    let out = run_with_timeout(cmd);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "output: {t}");
    assert!(t.contains("FATAL CONFIG FILE ERROR"), "output: {t}");
}

#[test]
fn version_and_help() {
    let out = Command::new(env!("CARGO_BIN_EXE_basalt"))
        .arg("--version")
        .output()
        .expect("run");
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains(env!("CARGO_PKG_VERSION")));
    let out = Command::new(env!("CARGO_BIN_EXE_basalt"))
        .arg("--help")
        .output()
        .expect("run");
    assert!(
        text(&out).contains("--shards"),
        "help mentions basalt's own options: {}",
        text(&out)
    );
}

/// The Docker image's entry point (docker/entrypoint.sh) takes what the official redis
/// image's takes. Run here with a stand-in `basalt` on PATH that prints its arguments (no
/// `basalt` user on this machine, so it does not try to drop privileges).
#[test]
fn docker_entrypoint_accepts_redis_image_commands() {
    let dir = std::env::temp_dir().join(format!("basalt-entrypoint-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let stub = dir.join("basalt");
    std::fs::write(&stub, "#!/bin/sh\nprintf '%s|' basalt \"$@\"\n").unwrap();
    std::fs::set_permissions(&stub, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/docker/entrypoint.sh");
    let path = format!("{}:{}", dir.display(), std::env::var("PATH").unwrap_or_default());
    let run = |args: &[&str]| -> String {
        let out = Command::new("sh")
            .arg(script)
            .args(args)
            .env("PATH", &path)
            .current_dir(&dir)
            .output()
            .expect("run the entry point");
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // The image's CMD, and Authentik's compose `command:` (options only).
    assert_eq!(run(&["basalt"]), "basalt|--protected-mode|no|");
    assert_eq!(
        run(&["--save", "60", "1", "--loglevel", "warning"]),
        "basalt|--protected-mode|no|--save|60|1|--loglevel|warning|"
    );
    // `redis-server ...` as compose files for the redis image write it.
    assert_eq!(
        run(&["redis-server", "--appendonly", "yes", "--requirepass", "pw"]),
        "basalt|--protected-mode|no|--appendonly|yes|--requirepass|pw|"
    );
    // A config file decides protected mode itself; so does an explicit option.
    assert_eq!(
        run(&["/etc/redis/redis.conf", "--port", "6380"]),
        "basalt|/etc/redis/redis.conf|--port|6380|"
    );
    assert_eq!(run(&["redis-server", "/etc/redis.conf"]), "basalt|/etc/redis.conf|");
    assert_eq!(run(&["--protected-mode", "yes"]), "basalt|--protected-mode|yes|");
    // Anything else runs as it is.
    assert_eq!(run(&["echo", "hello"]), "hello\n");
    let _ = std::fs::remove_dir_all(&dir);
}
