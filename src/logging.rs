//! Logging with tracing, honouring Redis's `loglevel` and `logfile`.

use tracing_subscriber::filter::LevelFilter;

use crate::config::{Config, LogLevel};

pub fn init(config: &Config) -> std::io::Result<()> {
    let level = match config.loglevel {
        LogLevel::Debug => LevelFilter::DEBUG,
        LogLevel::Verbose => LevelFilter::DEBUG,
        LogLevel::Notice => LevelFilter::INFO,
        LogLevel::Warning => LevelFilter::WARN,
    };
    let builder = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_target(false)
        .with_thread_names(true);
    if config.logfile.is_empty() {
        // Colours only on a terminal: Docker logs and redirected output stay plain text.
        let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
        builder.with_ansi(ansi).with_writer(std::io::stdout).try_init().ok();
    } else {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&config.logfile)?;
        builder
            .with_ansi(false)
            .with_writer(std::sync::Mutex::new(file))
            .try_init()
            .ok();
    }
    Ok(())
}

thread_local! {
    /// Depth of [`catch_panic`] calls on this thread: a panic under one is caught there.
    static CATCHING: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// A panic anywhere else is a bug that may have left a shard's data half changed, or a shard
/// gone while the others wait on it: like Redis's serverPanic, log it with a backtrace and end
/// the process at once, so that its supervisor starts it again from what it persisted (every
/// acknowledged write is in the AOF as `appendfsync` promises). Installed by `main`.
pub fn crash_on_panic() {
    std::panic::set_hook(Box::new(|info| {
        let thread = std::thread::current().name().unwrap_or("unnamed").to_string();
        if CATCHING.with(|c| c.get()) > 0 {
            tracing::error!("caught a panic on thread {thread}: {info}");
            return;
        }
        let backtrace = std::backtrace::Backtrace::force_capture();
        tracing::error!(
            "=== BASALT BUG REPORT: basalt crashed on thread {thread}: {info}\n{backtrace}\n\
             === basalt exits now; acknowledged writes are in the AOF (per appendfsync): restart it"
        );
        eprintln!("basalt crashed on thread {thread}: {info}");
        std::process::abort();
    }));
}

/// Runs `f`, catching a panic in it (the [`crash_on_panic`] hook then only logs it): for the
/// callers that can undo what the panic interrupted (a script run gives its shards back and
/// rebuilds its VM).
pub fn catch_panic<R>(f: impl FnOnce() -> R) -> std::thread::Result<R> {
    CATCHING.with(|c| c.set(c.get() + 1));
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    CATCHING.with(|c| c.set(c.get() - 1));
    r
}
