//! The `basalt` binary: arguments -> Config -> runtime::start(). Nothing else.

use basalt::config::Config;

fn main() {
    let argv: Vec<String> = std::env::args().collect();
    if argv.get(1).is_some_and(|a| a == "check-aof") {
        std::process::exit(basalt::persist::load::check_aof(&argv[2..]));
    }
    if argv.get(1).is_some_and(|a| a == "check-rdb") {
        std::process::exit(basalt::persist::rdb::check::check_rdb(&argv[2..]));
    }
    let config = match Config::from_args(&argv) {
        Ok(c) => c,
        Err(e) => {
            if e.to_stdout() {
                println!("{e}");
            } else {
                eprintln!("{e}");
            }
            std::process::exit(e.exit_code());
        }
    };
    if let Err(e) = basalt::logging::init(&config) {
        eprintln!("Can't open the log file: {e}");
        std::process::exit(1);
    }
    basalt::logging::crash_on_panic();
    for w in config.warnings() {
        tracing::warn!("{w}");
    }
    match basalt::shard::runtime::start(config) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("basalt: {e}");
            std::process::exit(1);
        }
    }
}
