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
