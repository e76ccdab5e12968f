//! Reading configuration: Redis's command-line grammar (`main()` in `server.c`) and its
//! config-file loader (`loadServerConfigFromString`), line numbers and error texts included.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use super::lex::{repr, split_args};
use super::table::{self, SetCtx, PARAMS};
use super::{Config, ConfigError, FatalError, VERSION};

/// How deep `include`s may nest (Redis has no limit and eventually crashes on a loop).
const MAX_INCLUDE_DEPTH: usize = 16;

/// Directives Redis still accepts, with exactly one value, and silently drops.
const DEPRECATED: &[&str] = &[
    "list-max-ziplist-entries",
    "list-max-ziplist-value",
    "lua-replicate-commands",
];

/// An io::Error as C's strerror() would print it (without Rust's " (os error N)").
pub(crate) fn strerror(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.find(" (os error ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Where a directive was read: for error messages about its final value.
#[derive(Clone)]
struct Origin {
    file: Option<PathBuf>,
    line: usize,
    text: String,
}

struct Loader {
    cfg: Config,
    ctx: SetCtx,
    /// The last line that set each parameter, by primary name.
    origin: HashMap<&'static str, Origin>,
    depth: usize,
}

fn fatal(file: Option<&Path>, line: Option<(usize, String)>, reason: impl Into<String>) -> ConfigError {
    ConfigError::Fatal(FatalError {
        file: file.map(Path::to_path_buf),
        line,
        reason: reason.into(),
    })
}

impl Loader {
    fn new(check_fs: bool) -> Loader {
        Loader {
            cfg: Config::default(),
            ctx: SetCtx {
                reading_file: true,
                save_loaded: false,
                check_fs,
            },
            origin: HashMap::new(),
            depth: 0,
        }
    }

    /// `loadServerConfigFromString`: `file` is only set for included files, whose errors name
    /// them.
    fn load_text(&mut self, text: &[u8], file: Option<&Path>) -> Result<(), ConfigError> {
        for (i, raw) in text.split(|&c| c == b'\n').enumerate() {
            let linenum = i + 1;
            let line = trim(raw);
            if line.is_empty() || line[0] == b'#' {
                continue;
            }
            let err = |reason: String| fatal(file, Some((linenum, lossy(line))), reason);
            let Some(mut argv) = split_args(line) else {
                return Err(err("Unbalanced quotes in configuration line".to_string()));
            };
            if argv.is_empty() {
                continue;
            }
            argv[0].make_ascii_lowercase();
            let name = argv[0].clone();
            let argc = argv.len();

            if let Some((p, _)) = table::lookup(&name) {
                if !p.multi_arg() && argc != 2 {
                    return Err(err("wrong number of arguments".to_string()));
                }
                table::apply(&mut self.cfg, p, &argv[1..], &mut self.ctx).map_err(err)?;
                self.origin.insert(
                    p.name,
                    Origin {
                        file: file.map(Path::to_path_buf),
                        line: linenum,
                        text: lossy(line),
                    },
                );
                continue;
            }
            if argc == 2 && DEPRECATED.iter().any(|d| d.as_bytes() == name.as_slice()) {
                continue;
            }
            match (name.as_slice(), argc) {
                (b"include", 2) => {
                    self.include(&argv[1]).map_err(|e| match e {
                        // Errors inside the included file already carry their own position.
                        ConfigError::Fatal(f) if f.line.is_some() => ConfigError::Fatal(f),
                        other => err(other.reason().to_string()),
                    })?;
                }
                (b"rename-command", 3) => {
                    return Err(err(
                        "rename-command is not supported by basalt yet: it refuses to start rather \
                         than leave the command you meant to rename or disable reachable under its \
                         usual name"
                            .to_string(),
                    ));
                }
                (b"user", n) if n >= 2 => {
                    return Err(err(
                        "ACL users ('user' directives) are not supported by basalt yet: it refuses to \
                         start rather than run without the access rules you configured (use \
                         requirepass for a single password)"
                            .to_string(),
                    ));
                }
                (b"loadmodule", n) if n >= 2 => {
                    return Err(err(format!(
                        "modules are not supported by basalt: it cannot load '{}'",
                        lossy(&argv[1])
                    )));
                }
                (b"sentinel", _) => {
                    return Err(err("Sentinel mode is not supported by basalt".to_string()));
                }
                (n, _) if n.contains(&b'.') => {
                    return Err(err(if argc != 2 {
                        "Module config specified without value".to_string()
                    } else {
                        "modules are not supported by basalt, so module configs are not either".to_string()
                    }));
                }
                _ => return Err(err("Bad directive or wrong number of arguments".to_string())),
            }
        }
        Ok(())
    }

    /// `include path`: relative to the current `dir` (where Redis would be after its
    /// `chdir`s); `*`, `?` and `[` expand like glob(3), and a pattern matching nothing is fine.
    fn include(&mut self, arg: &[u8]) -> Result<(), ConfigError> {
        if self.depth >= MAX_INCLUDE_DEPTH {
            return Err(fatal(
                None,
                None,
                format!("include nesting deeper than {MAX_INCLUDE_DEPTH} levels"),
            ));
        }
        let path = self.cfg.dir.join(lossy(arg));
        let files = if arg.iter().any(|c| matches!(c, b'*' | b'?' | b'[')) {
            expand_glob(&path)
        } else {
            vec![path]
        };
        for f in files {
            let text = read_file(&f)?;
            self.depth += 1;
            let r = self.load_text(&text, Some(&f));
            self.depth -= 1;
            r?;
        }
        Ok(())
    }

    /// Final checks on the loaded configuration, then the configuration itself.
    fn finish(self) -> Result<Config, ConfigError> {
        // Report the refused setting that comes first in the file.
        let refused = PARAMS
            .iter()
            .filter(|p| !table::acceptable(&self.cfg, p))
            .min_by_key(|p| self.origin.get(p.name).map_or(usize::MAX, |o| o.line));
        if let Some(p) = refused {
            let o = self.origin.get(p.name);
            return Err(ConfigError::Fatal(FatalError {
                file: o.and_then(|o| o.file.clone()),
                line: o.map(|o| (o.line, o.text.clone())),
                reason: table::refusal(&self.cfg, p),
            }));
        }
        Ok(self.cfg)
    }
}

/// Redis's `sdstrim(line, " \t\r\n")`.
fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t' | b'\r' | b'\n', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t' | b'\r' | b'\n'] = s {
        s = rest;
    }
    s
}

fn read_file(path: &Path) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(path).map_err(|e| ConfigError::CantOpen {
        path: path.to_path_buf(),
        reason: strerror(&e),
    })
}

/// Expands a path whose components may hold glob characters, as glob(3) does: sorted, and
/// wildcards do not match a leading dot.
fn expand_glob(pattern: &Path) -> Vec<PathBuf> {
    use std::path::Component;
    let mut found = vec![PathBuf::new()];
    for comp in pattern.components() {
        let part = comp.as_os_str().to_string_lossy();
        let wild = part.contains(['*', '?', '[']) && matches!(comp, Component::Normal(_));
        let mut next = Vec::new();
        for base in &found {
            if !wild {
                next.push(base.join(comp.as_os_str()));
                continue;
            }
            let dir = if base.as_os_str().is_empty() {
                Path::new(".")
            } else {
                base.as_path()
            };
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            let mut names: Vec<String> = entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| !n.starts_with('.') || part.starts_with('.'))
                .filter(|n| super::glob::glob_match(part.as_bytes(), n.as_bytes(), false))
                .collect();
            names.sort();
            next.extend(names.into_iter().map(|n| base.join(n)));
        }
        found = next;
    }
    found.retain(|p| p.is_file());
    found
}

const USAGE: &str = "\
Usage: basalt [/path/to/redis.conf] [options] [-]
       basalt - (read config from stdin)
       basalt -v or --version
       basalt -h or --help

Examples:
       basalt (run the server with default conf)
       echo 'maxmemory 128mb' | basalt -
       basalt /etc/redis/6379.conf
       basalt --port 7777
       basalt --port 7777 --shards 4 --placement unpinned
       basalt /etc/myredis.conf --loglevel verbose -
       basalt /etc/myredis.conf --loglevel verbose

Every redis.conf directive works as a --name value option. basalt's own:
       --shards N|auto             shard threads (default: usable cores - 1, at least 1)
       --placement auto|pinned|unpinned
                                   pin shard threads to cores (auto: when there are enough)
";

fn version_text() -> String {
    format!("basalt server v={VERSION} sha=00000000:0 malloc=jemalloc bits=64 build=0 (Redis 7.0 compatible)")
}

/// `main()`'s argument handling, then the load.
pub(crate) fn from_args(argv: &[String], stdin: &mut dyn Read) -> Result<Config, ConfigError> {
    let args = argv.get(1..).unwrap_or(&[]);
    let mut config_file: Option<PathBuf> = None;
    let mut options: Vec<u8> = Vec::new();
    let mut from_stdin = false;

    if let Some(first) = args.first() {
        match first.as_str() {
            "-v" | "--version" => return Err(ConfigError::Version(version_text())),
            "-h" | "--help" => return Err(ConfigError::Help(USAGE.to_string())),
            "--test-memory" | "--check-system" => {
                return Err(fatal(None, None, format!("{first} is not supported by basalt")))
            }
            _ => {}
        }
    }
    let mut j = 0;
    if let Some(first) = args.first() {
        if !first.starts_with('-') {
            let p = PathBuf::from(first);
            config_file = Some(std::path::absolute(&p).unwrap_or(p));
            j = 1;
        }
    }
    // Whether the last option name has received a value yet: until it has, an argument that
    // starts with "--" is that value (`--requirepass --weird--`), not a new option.
    let mut handled_last = true;
    while j < args.len() {
        let a = args[j].as_str();
        let last = j == args.len() - 1;
        if a == "-" && (j == 0 || last) {
            from_stdin = true;
        } else if handled_last && a.starts_with("--") {
            if !options.is_empty() {
                options.push(b'\n');
            }
            options.extend_from_slice(&a.as_bytes()[2..]);
            options.push(b' ');
            // "--port 6380" in one argument already carries its value.
            let words = split_args(a.as_bytes()).map_or(0, |w| w.len());
            if words == 1 {
                handled_last = false;
                let next_is_option = !last && args[j + 1].starts_with("--");
                if a.eq_ignore_ascii_case("--save") && (last || next_is_option) {
                    // `--save` with no value means `save ""` (pre-7.0 behaviour kept by Redis).
                    options.extend_from_slice(b"\"\"");
                    handled_last = true;
                } else if a.eq_ignore_ascii_case("--sentinel") && next_is_option {
                    handled_last = true;
                }
            } else {
                handled_last = true;
            }
        } else {
            options.extend_from_slice(repr(a.as_bytes()).as_bytes());
            options.push(b' ');
            handled_last = true;
        }
        j += 1;
    }

    let mut loader = Loader::new(true);
    let mut text = Vec::new();
    if let Some(path) = &config_file {
        let s = path.to_string_lossy();
        if s.contains(['*', '?', '[']) {
            for f in expand_glob(path) {
                text.extend(read_file(&f)?);
            }
        } else {
            text.extend(read_file(path)?);
        }
    }
    if from_stdin {
        stdin.read_to_end(&mut text).map_err(|e| {
            fatal(
                None,
                None,
                format!("Can't read the configuration from stdin: {}", strerror(&e)),
            )
        })?;
    }
    text.push(b'\n');
    text.extend_from_slice(&options);
    loader.load_text(&text, None)?;
    let mut cfg = loader.finish()?;
    cfg.config_file = config_file;

    // Like Redis, fail now rather than later if the log file cannot be opened.
    if !cfg.logfile.is_empty() {
        let path = cfg.dir.join(&cfg.logfile);
        if let Err(e) = std::fs::OpenOptions::new().append(true).create(true).open(&path) {
            return Err(fatal(None, None, format!("Can't open the log file: {}", strerror(&e))));
        }
    }
    Ok(cfg)
}

/// Configuration text on top of the defaults, without file-system checks.
pub(crate) fn from_text(text: &[u8]) -> Result<Config, ConfigError> {
    let mut loader = Loader::new(false);
    loader.load_text(text, None)?;
    loader.finish()
}
