//! Start-up: checks that the machine can run us (io_uring, locked memory), decides the
//! shard count and placement, binds the listeners, wires the channel mesh and the
//! persistence core, and runs one executor per shard plus the persistence thread.

use std::os::fd::{FromRawFd, RawFd};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use glommio::channels::channel_mesh::MeshBuilder;
use glommio::net::TcpListener;
use glommio::{LocalExecutorBuilder, Placement};

use crate::config::{Config, Placement as PlacementCfg, SharedConfig};
use crate::persist;
use crate::server::{listener, ServerShared, ShardLocal};
use crate::shard::{serve_mesh, Msg, Shard};
use crate::store::Store;

/// Bytes of io memory per executor: glommio registers it with io_uring for file I/O. Kept
/// small so that every executor's registration fits in a default 8 MiB RLIMIT_MEMLOCK.
const IO_MEMORY: usize = 256 * 1024;
/// glommio refuses to start below this RLIMIT_MEMLOCK.
const MIN_MEMLOCK: u64 = 512 * 1024;
const MESH_CAPACITY: usize = 1024;

/// Why the server could not start: printed as one short message, no backtrace.
#[derive(Debug)]
pub struct StartError(pub String);

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Probes io_uring with a tiny ring, so a blocked or disabled io_uring is reported with
/// its cause and fix instead of failing deep inside the runtime.
pub fn check_io_uring() -> Result<(), StartError> {
    let mut params = [0u8; 120]; // struct io_uring_params
                                 // SAFETY: io_uring_setup with 1 entry and a zeroed params struct of the kernel's size.
    let fd = unsafe { libc::syscall(libc::SYS_io_uring_setup, 1u32, params.as_mut_ptr()) };
    if fd >= 0 {
        // SAFETY: closing the ring we just created.
        unsafe { libc::close(fd as i32) };
        return Ok(());
    }
    let err = std::io::Error::last_os_error();
    let disabled = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let why = match err.raw_os_error() {
        Some(libc::ENOSYS) => "this kernel has no io_uring (Linux 5.8 or newer is needed), or a seccomp profile hides it".to_string(),
        Some(libc::EPERM) | Some(libc::EACCES) if disabled != "0" && !disabled.is_empty() => {
            format!("io_uring is disabled by sysctl kernel.io_uring_disabled={disabled}: set it to 0 (sysctl -w kernel.io_uring_disabled=0)")
        }
        Some(libc::EPERM) | Some(libc::EACCES) => {
            "io_uring is blocked by a seccomp profile (Docker's default profile blocks it): run the container with a profile that allows io_uring_setup, io_uring_enter and io_uring_register (e.g. --security-opt seccomp=unconfined)".to_string()
        }
        _ => format!("io_uring_setup failed: {err}"),
    };
    Err(StartError(format!("basalt needs io_uring and cannot use it: {why}")))
}

/// Makes sure RLIMIT_MEMLOCK is large enough for glommio, raising the soft limit if the
/// hard limit allows.
pub fn check_memlock() -> Result<(), StartError> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit on a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut lim) != 0 {
            return Ok(());
        }
        if lim.rlim_cur >= MIN_MEMLOCK {
            return Ok(());
        }
        if lim.rlim_max >= MIN_MEMLOCK {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max.min(64 << 20),
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_MEMLOCK, &raised) == 0 {
                return Ok(());
            }
        }
    }
    Err(StartError(format!(
        "RLIMIT_MEMLOCK is {} KiB and basalt's io_uring runtime needs at least {} KiB: raise it (`ulimit -l 8192`, or Docker's `--ulimit memlock=8388608:8388608`)",
        lim.rlim_cur / 1024,
        MIN_MEMLOCK / 1024
    )))
}

/// The CPUs this process may run on (sched_getaffinity: taskset, cpusets), cut down to the
/// cgroup CPU quota when one is set.
pub fn usable_cpus() -> Vec<usize> {
    let mut cpus = Vec::new();
    // SAFETY: sched_getaffinity into a zeroed cpu_set_t of the right size.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) == 0 {
            for i in 0..libc::CPU_SETSIZE as usize {
                if libc::CPU_ISSET(i, &set) {
                    cpus.push(i);
                }
            }
        }
    }
    if cpus.is_empty() {
        cpus.push(0);
    }
    if let Some(quota) = cgroup_cpu_quota() {
        cpus.truncate(quota.max(1));
    }
    cpus
}

/// cgroup v2 `cpu.max` ("max 100000" or "<quota> <period>"), rounded up to whole CPUs.
fn cgroup_cpu_quota() -> Option<usize> {
    let s = std::fs::read_to_string("/sys/fs/cgroup/cpu.max").ok()?;
    let mut it = s.split_whitespace();
    let quota: f64 = it.next()?.parse().ok()?;
    let period: f64 = it.next()?.parse().ok()?;
    if period <= 0.0 {
        return None;
    }
    Some((quota / period).ceil() as usize)
}

/// An AOF to load after the shards start serving (they answer -LOADING meanwhile).
struct PendingLoad {
    paths: persist::aof::Paths,
    manifest: persist::aof::Manifest,
}

/// With `appendonly yes`: opens the AOF (creating base, incremental file and manifest on a
/// fresh start) and says what to load. Without it, nothing.
#[allow(clippy::type_complexity)]
fn open_aof(
    config: &Config,
    nshards: usize,
    shared: &ServerShared,
) -> Result<(Option<PendingLoad>, Option<persist::AofFile>, Option<Vec<Store>>), StartError> {
    if !config.appendonly {
        // dump.rdb is loaded before the shards serve (no -LOADING for it yet).
        let enc = crate::server::CachedConfig::load(&shared.config).enc;
        let dir = std::path::Path::new(&config.dir);
        let stores = persist::rdb::save::load_at_startup(dir, &config.dbfilename, nshards, config.databases, enc)
            .map_err(StartError)?;
        return Ok((None, None, Some(stores)));
    }
    let paths = persist::aof::Paths::new(&config.dir, &config.appenddirname, &config.appendfilename);
    let (pending, manifest) = match paths.read_manifest().map_err(StartError)? {
        None => {
            let m = paths.create_fresh().map_err(|e| {
                StartError(format!(
                    "Can't create the AOF directory or files in {}: {e}",
                    paths.dir.display()
                ))
            })?;
            tracing::info!(
                "Creating AOF base file {} and incr file {} in {} (the base is RESP: basalt writes no RDB preamble yet)",
                m.base.as_ref().map_or("", |b| b.name.as_str()),
                m.incr.last().map_or("", |i| i.name.as_str()),
                paths.dir.display()
            );
            (None, m)
        }
        Some(mut m) => {
            let pending = PendingLoad {
                paths: paths.clone(),
                manifest: m.clone(),
            };
            if m.incr.is_empty() {
                // A base alone (an upgraded or rewritten AOF): appends go to a new incr file.
                let seq = m.incr_seq() + 1;
                m.incr.push(persist::aof::FileInfo {
                    name: paths.incr_name(seq),
                    seq,
                    kind: persist::aof::Kind::Incr,
                });
                paths
                    .write_manifest(&m)
                    .map_err(|e| StartError(format!("Can't write the AOF manifest: {e}")))?;
            }
            (Some(pending), m)
        }
    };
    let file = paths
        .open_incr(&manifest)
        .map_err(|e| StartError(format!("Can't open the append-only file {}: {e}", paths.dir.display())))?;
    let (base, total) = paths.sizes(&manifest);
    shared.persist.base_size.store(base, Ordering::Relaxed);
    shared.persist.current_size.store(total, Ordering::Relaxed);
    shared.persist.aof_state.store(persist::AOF_ON, Ordering::SeqCst);
    if pending.is_some() {
        let p = &shared.persist;
        p.loading.store(true, Ordering::SeqCst);
        p.loading_start_ms.store(crate::server::unix_ms(), Ordering::SeqCst);
        p.loading_total_bytes.store(total, Ordering::SeqCst);
        p.loading_loaded_bytes.store(0, Ordering::SeqCst);
    }
    Ok((pending, Some(persist::AofFile { paths, manifest, file }), None))
}

/// Loads the AOF on a thread of its own while the shards serve, then hands each shard its
/// store. A file that cannot be loaded stops the server, as Redis does.
fn spawn_loader(
    pending: PendingLoad,
    config: &Config,
    shared: Arc<ServerShared>,
    txs: Vec<futures_channel::oneshot::Sender<Store>>,
) -> Result<(), StartError> {
    let (databases, truncated) = (config.databases, config.aof_load_truncated);
    let enc = crate::server::CachedConfig::load(&shared.config).enc;
    let nshards = txs.len();
    std::thread::Builder::new()
        .name("aof-loader".into())
        .spawn(move || {
            let start = Instant::now();
            let progress = |b: u64| shared.persist.loading_loaded_bytes.store(b, Ordering::Relaxed);
            let loaded = match persist::load::load(
                &pending.paths,
                &pending.manifest,
                nshards,
                databases,
                enc,
                truncated,
                &progress,
            ) {
                Ok(l) => l,
                Err(e) => {
                    tracing::error!("{}", e.0);
                    std::process::exit(1);
                }
            };
            tracing::info!(
                "DB loaded from append only file: {:.3} seconds ({} keys from {} commands)",
                start.elapsed().as_secs_f64(),
                loaded.keys,
                loaded.commands
            );
            // A truncated tail was cut: the sizes are the files' now.
            let (base, total) = pending.paths.sizes(&pending.manifest);
            shared.persist.base_size.store(base, Ordering::Relaxed);
            shared.persist.current_size.store(total, Ordering::Relaxed);
            for (tx, store) in txs.into_iter().zip(loaded.stores) {
                let _ = tx.send(store);
            }
        })
        .map_err(|e| StartError(format!("cannot start the AOF loading thread: {e}")))?;
    Ok(())
}

/// How many shards and where they run.
pub struct Plan {
    pub shards: usize,
    /// CPU of each shard, then the persistence thread's; None = unpinned.
    pub cpus: Option<Vec<usize>>,
    pub description: String,
}

pub fn plan(config: &Config) -> Result<Plan, StartError> {
    let cpus = usable_cpus();
    let shards = config.shards.unwrap_or(cpus.len().saturating_sub(1)).max(1);
    let fits = shards < cpus.len();
    let pinned = match config.placement {
        PlacementCfg::Pinned if !fits => {
            return Err(StartError(format!(
                "placement pinned needs {} usable CPUs ({} shards + persistence), this process may use {}",
                shards + 1,
                shards,
                cpus.len()
            )))
        }
        PlacementCfg::Pinned => true,
        PlacementCfg::Unpinned => false,
        PlacementCfg::Auto => fits,
    };
    if pinned {
        let mut assigned: Vec<usize> = cpus[..shards].to_vec();
        assigned.push(cpus[cpus.len() - 1]);
        let description = format!(
            "pinned: shards on CPUs {:?}, persistence on CPU {}",
            &assigned[..shards],
            assigned[shards]
        );
        Ok(Plan {
            shards,
            cpus: Some(assigned),
            description,
        })
    } else {
        let description = format!(
            "unpinned: {} shards and persistence share {} usable CPUs",
            shards,
            cpus.len()
        );
        Ok(Plan {
            shards,
            cpus: None,
            description,
        })
    }
}

fn placement(plan: &Plan, i: usize) -> Placement {
    match &plan.cpus {
        Some(cpus) => Placement::Fixed(cpus[i]),
        None => Placement::Unbound,
    }
}

/// Pins the calling thread to `cpu` (the persistence core, which is not an executor).
fn pin_current_thread(cpu: usize) {
    // SAFETY: sched_setaffinity(0, ...) on this thread with a cpu_set_t we own.
    let ok = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0
    };
    if !ok {
        tracing::warn!(
            "cannot pin the persistence thread to CPU {cpu}: {}",
            std::io::Error::last_os_error()
        );
    }
}

/// Blocks SIGINT/SIGTERM in every thread and turns them into a shutdown request on a
/// dedicated thread; ignores SIGPIPE (a client that goes away is an error return, not a signal).
fn install_signals(shared: Arc<ServerShared>) {
    // SAFETY: signal mask manipulation before any other thread is started.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || loop {
                let mut sig: libc::c_int = 0;
                if libc::sigwait(&set, &mut sig) == 0 {
                    let name = if sig == libc::SIGINT { "SIGINT" } else { "SIGTERM" };
                    if shared.is_shutting_down() {
                        tracing::warn!("{name} received again while shutting down; exiting now");
                        std::process::exit(1);
                    }
                    tracing::warn!("Received {name} scheduling shutdown...");
                    // With save points, shard 0 saves dump.rdb first (as Redis on SIGTERM);
                    // a second signal while it saves shuts down at once.
                    let save = !shared.config.read().save.is_empty();
                    if !save || persist::rdb::save::SHUTDOWN_AFTER_SAVE.swap(true, Ordering::SeqCst) {
                        shared.request_shutdown();
                    }
                }
            })
            .expect("spawn signal thread");
    }
}

/// Binds `port` on every `bind` address once per shard, adding the sockets to each shard's
/// list (`tls` marks those of the TLS port). Returns the port bound (the kernel's pick for 0).
fn bind_all(
    config: &Config,
    mut port: u16,
    nshards: usize,
    tls: bool,
    fds: &mut [Vec<(RawFd, bool)>],
) -> Result<u16, StartError> {
    let kind = if tls { "TLS" } else { "TCP" };
    let backlog = config.tcp_backlog as i32;
    for spec in &config.bind {
        let bind = listener::parse_bind(spec).map_err(StartError)?;
        if port != 0 {
            if let Err(e) = listener::probe_exclusive(std::net::SocketAddr::new(bind.ip, port)) {
                if bind.optional {
                    tracing::warn!("Warning: Could not create server {kind} listening socket {spec}:{port}: {e}");
                    continue;
                }
                return Err(StartError(format!(
                    "Could not create server {kind} listening socket {spec}:{port}: {e}"
                )));
            }
        }
        let mut bound = Vec::new();
        for _ in 0..nshards {
            match listener::listen(std::net::SocketAddr::new(bind.ip, port), backlog) {
                Ok(fd) => {
                    if port == 0 {
                        port = listener::local_port(fd).map_err(|e| StartError(e.to_string()))?;
                    }
                    bound.push(fd);
                }
                Err(e) => {
                    for fd in bound.drain(..) {
                        // SAFETY: closing descriptors we created above.
                        unsafe { libc::close(fd) };
                    }
                    if bind.optional {
                        tracing::warn!("Warning: Could not create server {kind} listening socket {spec}:{port}: {e}");
                        break;
                    }
                    return Err(StartError(format!(
                        "Could not create server {kind} listening socket {spec}:{port}: {e}"
                    )));
                }
            }
        }
        for (i, fd) in bound.into_iter().enumerate() {
            fds[i].push((fd, tls));
        }
    }
    Ok(port)
}

/// Runs the server until shutdown. Returns the process exit code.
pub fn start(config: Config) -> Result<i32, StartError> {
    check_io_uring()?;
    check_memlock()?;
    let plan = plan(&config)?;
    let nshards = plan.shards;

    // Bind every address once per shard, in this thread, so `port 0` resolves to one port.
    // With a TLS port, `port 0` means no plain listener (Redis's TLS-only setup).
    let mut fds: Vec<Vec<(RawFd, bool)>> = vec![Vec::new(); nshards];
    let mut port = config.port;
    if config.tls_port == 0 || port != 0 {
        port = bind_all(&config, port, nshards, false, &mut fds)?;
    }
    let tls = if config.tls_port != 0 {
        let tls = crate::server::tls::server_config(&config)
            .map_err(|e| StartError(format!("Failed to configure TLS: {e}")))?;
        bind_all(&config, config.tls_port, nshards, true, &mut fds)?;
        Some(tls)
    } else {
        None
    };
    if fds[0].is_empty() {
        return Err(StartError(
            "Failed listening on any address (check the bind setting)".into(),
        ));
    }

    let persistence = match (config.appendonly, config.save.is_empty()) {
        (true, true) => "appendonly",
        (true, false) => "appendonly and rdb save points",
        (false, false) => "rdb save points",
        (false, true) => "off",
    };
    let aof_config = config.clone();
    let shared_config = SharedConfig::new(config);
    let shared = Arc::new(ServerShared::new(shared_config, nshards, plan.description.clone()));
    shared.port.store(port as usize, Ordering::SeqCst);
    *shared.tls.write().unwrap_or_else(|e| e.into_inner()) = tls;
    install_signals(shared.clone());
    crate::server::memory::refresh(&shared);

    tracing::info!(
        "basalt {} (git:{}) starting: pid={}, port={}, shards={}, {}, persistence={}",
        env!("CARGO_PKG_VERSION"),
        option_env!("BASALT_GIT").unwrap_or("unknown"),
        std::process::id(),
        port,
        nshards,
        plan.description,
        persistence
    );

    // Loaded while the shards serve (see spawn_loader).
    let (pending, aof, rdb_stores) = open_aof(&aof_config, nshards, &shared)?;
    let stores: Vec<Store> =
        rdb_stores.unwrap_or_else(|| (0..nshards).map(|_| Store::new(aof_config.databases)).collect());
    let mut load_txs = Vec::new();
    let mut load_rxs = Vec::new();
    for _ in 0..nshards {
        if pending.is_some() {
            let (tx, rx) = futures_channel::oneshot::channel::<Store>();
            load_txs.push(tx);
            load_rxs.push(Some(rx));
        } else {
            load_rxs.push(None);
        }
    }
    shared.persist.loading_shards.store(nshards, Ordering::SeqCst);

    let mesh = MeshBuilder::<Msg, _>::full(nshards, MESH_CAPACITY);
    let core = persist::Core::new(nshards);
    let persist_cpu = plan.cpus.as_ref().map(|cpus| cpus[nshards]);
    let (persist_core, persist_shared) = (core.clone(), shared.clone());
    let persist = std::thread::Builder::new()
        .name("persistence".into())
        .spawn(move || {
            if let Some(cpu) = persist_cpu {
                pin_current_thread(cpu);
            }
            persist::run(persist_core, persist_shared, aof);
        })
        .map_err(|e| StartError(format!("cannot start the persistence thread: {e}")))?;

    let ready = Arc::new(AtomicUsize::new(0));
    let mut handles = Vec::new();
    let shard_io = fds.into_iter().zip(stores).zip(load_rxs);
    for (i, ((listen_fds, store), load_rx)) in shard_io.enumerate() {
        let mesh = mesh.clone();
        let shared = shared.clone();
        let ready = ready.clone();
        let core = core.clone();
        let h = LocalExecutorBuilder::new(placement(&plan, i))
            .name(&format!("shard-{i}"))
            .io_memory(IO_MEMORY)
            .spawn(move || async move {
                let io = ShardIo {
                    core,
                    listen_fds,
                    load_rx,
                };
                shard_main(i, nshards, store, mesh, io, shared, ready).await;
            })
            .map_err(|e| StartError(format!("cannot start shard {i}: {e}")))?;
        handles.push(h);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while ready.load(Ordering::SeqCst) < nshards && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    match pending {
        Some(p) => spawn_loader(p, &aof_config, shared.clone(), load_txs)?,
        None => tracing::info!("Ready to accept connections tcp"),
    }

    let mut failed = false;
    for h in handles {
        failed |= h.join().is_err();
    }
    failed |= persist.join().is_err();
    if failed {
        return Err(StartError("an executor failed; see the log above".into()));
    }
    tracing::info!("basalt is now ready to exit, bye bye...");
    Ok(shared.exit_code.load(Ordering::SeqCst) as i32)
}

/// A shard's endpoints, created at start-up.
struct ShardIo {
    core: Arc<persist::Core>,
    /// Listening sockets, and whether each is the TLS port's.
    listen_fds: Vec<(RawFd, bool)>,
    /// This shard's part of the AOF being loaded, when there is one.
    load_rx: Option<futures_channel::oneshot::Receiver<Store>>,
}

async fn shard_main(
    id: usize,
    nshards: usize,
    store: Store,
    mesh: MeshBuilder<Msg, glommio::channels::channel_mesh::Full>,
    io: ShardIo,
    shared: Arc<ServerShared>,
    ready: Arc<AtomicUsize>,
) {
    let ShardIo {
        core,
        listen_fds,
        load_rx,
    } = io;
    let (senders, receivers) = match mesh.join().await {
        Ok(x) => x,
        Err(_) => {
            tracing::error!("shard {id}: cannot join the channel mesh");
            return;
        }
    };
    let seed = crate::server::unix_us() ^ ((id as u64 + 1) << 32);
    let local = ShardLocal::new(shared.clone(), Some(core.clone()), seed);
    local.refresh_config();
    let mut store = store;
    store.restamp_if_lfu();
    let shard = Rc::new(Shard::new(id, nshards, store, senders, local));
    // The persistence core's signal that writes became durable: wake the connections
    // holding their replies.
    let wake_shard = shard.clone();
    let wake_task = glommio::spawn_local(async move {
        loop {
            core.signal(wake_shard.id).wait().await;
            wake_shard
                .local
                .durable
                .wake(&wake_shard.local.shared.persist, &core, wake_shard.id);
        }
    });

    let mesh_task = glommio::spawn_local(serve_mesh(shard.clone(), receivers));
    let cut_task = glommio::spawn_local(crate::server::dispatch::cut_each_turn(shard.clone()));
    if let Some(rx) = load_rx {
        let shard = shard.clone();
        glommio::spawn_local(async move {
            let Ok(store) = rx.await else { return };
            // Nothing wrote meanwhile (writes answer -LOADING): the loaded store replaces
            // the empty one.
            if shard
                .local(move |st| {
                    *st = store;
                    st.restamp_if_lfu();
                })
                .await
                .is_err()
            {
                return;
            }
            let p = &shard.local.shared.persist;
            if p.loading_shards.fetch_sub(1, Ordering::SeqCst) == 1 {
                p.loading.store(false, Ordering::SeqCst);
                tracing::info!("Ready to accept connections tcp");
            }
        })
        .detach();
    }
    let mut accepts = Vec::new();
    for (fd, tls) in listen_fds {
        // SAFETY: a listening socket created by `listener::listen`, owned from here on.
        let l = unsafe { TcpListener::from_raw_fd(fd) };
        let shard = shard.clone();
        accepts.push(glommio::spawn_local(async move {
            loop {
                match l.accept().await {
                    Ok(stream) => {
                        glommio::spawn_local(crate::server::conn::serve(shard.clone(), stream, tls)).detach();
                    }
                    Err(e) => {
                        tracing::warn!("accept failed: {e}");
                        glommio::timer::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
        }));
    }
    let expire_task = glommio::spawn_local(crate::server::info::expire_loop(shard.clone()));
    if shard.id == 0 {
        glommio::spawn_local(persist::rdb::save::cron(shard.clone())).detach();
    }
    ready.fetch_add(1, Ordering::SeqCst);

    // The cron: housekeeping at `hz`, and the watch for shutdown.
    while !shared.is_shutting_down() {
        crate::server::info::cron(&shard);
        let hz = shard.local.cfg.borrow().hz;
        glommio::timer::sleep(Duration::from_millis(1000 / hz)).await;
    }

    // Shutdown: stop accepting, let connections finish what they are running, then close.
    for a in accepts {
        a.cancel().await;
    }
    let handles: Vec<_> = shard.local.clients.borrow().clients.values().cloned().collect();
    for h in &handles {
        // SAFETY: shutdown(SHUT_RD) on a registered client's socket: its pending read
        // returns end-of-file; replies already computed are still written.
        unsafe { libc::shutdown(h.fd, libc::SHUT_RD) };
        if let Some(w) = h.monitor_wake.borrow_mut().take() {
            h.killed.set(true);
            w.wake();
        }
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while !shard.local.clients.borrow().clients.is_empty() && Instant::now() < deadline {
        glommio::timer::sleep(Duration::from_millis(5)).await;
    }
    expire_task.cancel().await;
    cut_task.cancel().await;
    shard.flush_effects();
    if let Some(core) = shard.local.persist.as_ref() {
        core.close();
    }
    // Other shards may still hop here while they shut down; serve them a little longer.
    glommio::timer::sleep(Duration::from_millis(50)).await;
    mesh_task.cancel().await;
    wake_task.cancel().await;
}
