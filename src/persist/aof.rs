//! Redis 7's multi-part append-only file on disk: the directory (`dir`/`appenddirname`), the
//! manifest that lists a base file and incremental files, and atomic replacement of the
//! manifest (write a temp file, fsync, rename, fsync the directory), so a data directory
//! moves between Redis 7 and basalt.
//!
//! Names follow Redis's rules (aof.c): `<appendfilename>.<seq>.base.rdb|aof`,
//! `<appendfilename>.<seq>.incr.aof`, `<appendfilename>.manifest`, and `temp-` for files
//! being written. Manifest lines are `file <name> seq <n> type <b|h|i>`.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// What a manifest line describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Base,
    History,
    Incr,
}

impl Kind {
    fn letter(self) -> char {
        match self {
            Kind::Base => 'b',
            Kind::History => 'h',
            Kind::Incr => 'i',
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileInfo {
    pub name: String,
    pub seq: i64,
    pub kind: Kind,
}

/// The manifest: at most one base, history files (obsolete, kept until removed), and the
/// ordered incremental files.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Manifest {
    pub base: Option<FileInfo>,
    pub history: Vec<FileInfo>,
    pub incr: Vec<FileInfo>,
}

/// Longest manifest line Redis accepts.
const MAX_LINE: usize = 1024;

impl Manifest {
    /// Parses a manifest with Redis's checks (aofLoadManifestFromFile) and its messages.
    pub fn parse(text: &[u8]) -> Result<Manifest, String> {
        let mut m = Manifest::default();
        let mut max_seq = 0i64;
        if text.is_empty() {
            return Err("Found an empty AOF manifest".into());
        }
        let mut rest = text;
        let mut linenum = 0;
        while !rest.is_empty() {
            linenum += 1;
            let (line, next, complete) = match memchr::memchr(b'\n', rest) {
                Some(i) => (&rest[..i], &rest[i + 1..], true),
                None => (rest, &rest[rest.len()..], false),
            };
            rest = next;
            let fail = |what: &str| format!("{what} (manifest line {linenum}: '{}')", String::from_utf8_lossy(line));
            if line.first() == Some(&b'#') {
                continue;
            }
            if !complete || line.len() > MAX_LINE {
                return Err(fail("The AOF manifest file contains too long line"));
            }
            let argv = split_args(line).ok_or_else(|| fail("Invalid AOF manifest file format"))?;
            if argv.is_empty() || argv.len() < 6 || argv.len() % 2 != 0 {
                return Err(fail("Invalid AOF manifest file format"));
            }
            let (mut name, mut seq, mut kind) = (None, 0i64, None);
            for pair in argv.chunks(2) {
                let key = String::from_utf8_lossy(&pair[0]).to_ascii_lowercase();
                match key.as_str() {
                    "file" => {
                        let n = String::from_utf8_lossy(&pair[1]).into_owned();
                        if n.contains('/') {
                            return Err(fail("File can't be a path, just a filename"));
                        }
                        name = Some(n);
                    }
                    "seq" => seq = atoll(&pair[1]),
                    "type" => kind = pair[1].first().copied(),
                    _ => {}
                }
            }
            let (Some(name), Some(kind)) = (name, kind) else {
                return Err(fail("Invalid AOF manifest file format"));
            };
            if seq == 0 {
                return Err(fail("Invalid AOF manifest file format"));
            }
            match kind {
                b'b' => {
                    if m.base.is_some() {
                        return Err(fail("Found duplicate base file information"));
                    }
                    m.base = Some(FileInfo {
                        name,
                        seq,
                        kind: Kind::Base,
                    });
                }
                b'h' => m.history.push(FileInfo {
                    name,
                    seq,
                    kind: Kind::History,
                }),
                b'i' => {
                    if seq <= max_seq {
                        return Err(fail("Found a non-monotonic sequence number"));
                    }
                    max_seq = seq;
                    m.incr.push(FileInfo {
                        name,
                        seq,
                        kind: Kind::Incr,
                    });
                }
                _ => return Err(fail("Unknown AOF file type")),
            }
        }
        Ok(m)
    }

    /// The manifest text: base first, then history, then incremental files.
    pub fn render(&self) -> String {
        let mut s = String::new();
        for f in self.base.iter().chain(&self.history).chain(&self.incr) {
            s.push_str(&format!(
                "file {} seq {} type {}\n",
                repr_if_needed(&f.name),
                f.seq,
                f.kind.letter()
            ));
        }
        s
    }

    /// The files to load, in order: the base, then every incremental file.
    pub fn load_order(&self) -> Vec<&FileInfo> {
        self.base.iter().chain(&self.incr).collect()
    }

    pub fn base_seq(&self) -> i64 {
        self.base.as_ref().map_or(0, |b| b.seq)
    }

    pub fn incr_seq(&self) -> i64 {
        self.incr.last().map_or(0, |i| i.seq)
    }
}

/// atoll: optional sign and leading digits, 0 when there are none.
fn atoll(b: &[u8]) -> i64 {
    let s = std::str::from_utf8(b).unwrap_or("").trim_start();
    let (neg, digits) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let end = digits.find(|c: char| !c.is_ascii_digit()).unwrap_or(digits.len());
    let v: i64 = digits[..end].parse().unwrap_or(0);
    if neg {
        -v
    } else {
        v
    }
}

/// sdssplitargs: space-separated words; double quotes with C escapes (`\xHH` too), single
/// quotes literal. None on unbalanced quotes.
pub fn split_args(line: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    let mut i = 0;
    let n = line.len();
    loop {
        while i < n && line[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= n {
            return Some(out);
        }
        let mut cur = Vec::new();
        let (mut inq, mut insq) = (false, false);
        loop {
            if inq {
                if i >= n {
                    return None;
                }
                if line[i] == b'\\'
                    && i + 3 < n
                    && line[i + 1] == b'x'
                    && line[i + 2].is_ascii_hexdigit()
                    && line[i + 3].is_ascii_hexdigit()
                {
                    let h = std::str::from_utf8(&line[i + 2..i + 4]).ok()?;
                    cur.push(u8::from_str_radix(h, 16).ok()?);
                    i += 3;
                } else if line[i] == b'\\' && i + 1 < n {
                    i += 1;
                    cur.push(match line[i] {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 8,
                        b'a' => 7,
                        c => c,
                    });
                } else if line[i] == b'"' {
                    if i + 1 < n && !line[i + 1].is_ascii_whitespace() {
                        return None;
                    }
                    i += 1;
                    break;
                } else {
                    cur.push(line[i]);
                }
            } else if insq {
                if i >= n {
                    return None;
                }
                if line[i] == b'\\' && i + 1 < n && line[i + 1] == b'\'' {
                    i += 1;
                    cur.push(b'\'');
                } else if line[i] == b'\'' {
                    if i + 1 < n && !line[i + 1].is_ascii_whitespace() {
                        return None;
                    }
                    i += 1;
                    break;
                } else {
                    cur.push(line[i]);
                }
            } else {
                if i >= n || line[i].is_ascii_whitespace() {
                    break;
                }
                match line[i] {
                    b'"' => inq = true,
                    b'\'' => insq = true,
                    c => cur.push(c),
                }
            }
            i += 1;
        }
        out.push(cur);
    }
}

/// sdscatrepr when the name needs it (sdsneedsrepr), else the name as is.
fn repr_if_needed(name: &str) -> String {
    let needs = name
        .bytes()
        .any(|c| c == b'\\' || c == b'"' || c == b'\'' || c.is_ascii_whitespace() || !(c.is_ascii_graphic()));
    if !needs {
        return name.to_string();
    }
    let mut out = Vec::new();
    crate::server::conn::repr(&mut out, name.as_bytes());
    String::from_utf8_lossy(&out).into_owned()
}

/// Where the AOF lives and what its files are called.
#[derive(Clone, Debug)]
pub struct Paths {
    /// `dir/appenddirname`.
    pub dir: PathBuf,
    /// `appendfilename`.
    pub filename: String,
}

impl Paths {
    pub fn new(dir: &Path, dirname: &str, filename: &str) -> Paths {
        Paths {
            dir: dir.join(dirname),
            filename: filename.to_string(),
        }
    }

    pub fn manifest_name(&self) -> String {
        format!("{}.manifest", self.filename)
    }

    pub fn manifest(&self) -> PathBuf {
        self.dir.join(self.manifest_name())
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    pub fn base_name(&self, seq: i64, rdb: bool) -> String {
        format!("{}.{}.base.{}", self.filename, seq, if rdb { "rdb" } else { "aof" })
    }

    pub fn incr_name(&self, seq: i64) -> String {
        format!("{}.{}.incr.aof", self.filename, seq)
    }

    /// The incremental file of an AOF turned on at run time, until its first base is
    /// installed (Redis's getTempIncrAofName).
    pub fn temp_incr_name(&self) -> String {
        format!("temp-{}.incr", self.filename)
    }

    /// Reads the manifest; Ok(None) when the directory or the manifest does not exist.
    pub fn read_manifest(&self) -> Result<Option<Manifest>, String> {
        let path = self.manifest();
        match fs::read(&path) {
            Ok(text) => Manifest::parse(&text)
                .map(Some)
                .map_err(|e| format!("Fatal error: bad AOF manifest {}: {e}", path.display())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!(
                "Fatal error: can't open the AOF manifest file {} for reading: {e}",
                path.display()
            )),
        }
    }

    /// Replaces the manifest atomically: temp file, fsync, rename, fsync the directory.
    pub fn write_manifest(&self, m: &Manifest) -> io::Result<()> {
        write_atomic(&self.dir, &self.manifest_name(), m.render().as_bytes())
    }

    /// Creates the AOF of a fresh start: an empty base (RESP, `.base.aof`: basalt writes no
    /// RDB preamble yet), an empty incremental file and the manifest naming them.
    pub fn create_fresh(&self) -> io::Result<Manifest> {
        fs::create_dir_all(&self.dir)?;
        let base = self.base_name(1, false);
        let incr = self.incr_name(1);
        write_atomic(&self.dir, &base, b"")?;
        write_atomic(&self.dir, &incr, b"")?;
        let m = Manifest {
            base: Some(FileInfo {
                name: base,
                seq: 1,
                kind: Kind::Base,
            }),
            history: Vec::new(),
            incr: vec![FileInfo {
                name: incr,
                seq: 1,
                kind: Kind::Incr,
            }],
        };
        self.write_manifest(&m)?;
        Ok(m)
    }

    /// Opens the last incremental file for appending.
    pub fn open_incr(&self, m: &Manifest) -> io::Result<File> {
        let name = &m
            .incr
            .last()
            .ok_or_else(|| io::Error::other("the manifest names no incremental file"))?
            .name;
        OpenOptions::new().append(true).create(true).open(self.file(name))
    }

    /// Sizes of the base file and of all base and incremental files.
    pub fn sizes(&self, m: &Manifest) -> (u64, u64) {
        let size = |f: &FileInfo| fs::metadata(self.file(&f.name)).map(|md| md.len()).unwrap_or(0);
        let base = m.base.as_ref().map_or(0, size);
        (base, base + m.incr.iter().map(size).sum::<u64>())
    }
}

/// Writes `name` in `dir` atomically: `temp-<name>`, fsync, rename, fsync the directory.
pub fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    let tmp = dir.join(format!("temp-{name}"));
    {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, dir.join(name))?;
    fsync_dir(dir)
}

pub fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_round_trips_in_redis_format() {
        let text = b"file appendonly.aof.1.base.rdb seq 1 type b\nfile appendonly.aof.1.incr.aof seq 1 type i\n";
        let m = Manifest::parse(text).unwrap();
        assert_eq!(m.base.as_ref().unwrap().name, "appendonly.aof.1.base.rdb");
        assert_eq!(m.incr.len(), 1);
        assert_eq!(m.render().as_bytes(), text);
    }

    #[test]
    fn manifest_errors_are_redis_s() {
        assert!(Manifest::parse(b"").unwrap_err().contains("empty AOF manifest"));
        assert!(Manifest::parse(b"file a seq 1 type b\nfile b seq 1 type b\n")
            .unwrap_err()
            .contains("duplicate base"));
        assert!(Manifest::parse(b"file a seq 2 type i\nfile b seq 1 type i\n")
            .unwrap_err()
            .contains("non-monotonic"));
        assert!(Manifest::parse(b"file a/b seq 1 type i\n")
            .unwrap_err()
            .contains("just a filename"));
        assert!(Manifest::parse(b"file a seq 1 type x\n")
            .unwrap_err()
            .contains("Unknown AOF file type"));
        assert!(Manifest::parse(b"file a seq 1\n").unwrap_err().contains("Invalid"));
        // Comments are skipped, unknown keys kept for forward compatibility.
        let m = Manifest::parse(b"# hi\nfile a seq 3 type i extra x\n").unwrap();
        assert_eq!(m.incr_seq(), 3);
    }

    #[test]
    fn quoted_names_parse_and_render() {
        let m = Manifest::parse(b"file \"a b\\x41\" seq 1 type b\n").unwrap();
        assert_eq!(m.base.as_ref().unwrap().name, "a bA");
        assert_eq!(m.render(), "file \"a bA\" seq 1 type b\n");
    }

    #[test]
    fn fresh_aof_dir_has_base_incr_and_manifest() {
        let dir = std::env::temp_dir().join(format!("basalt-aof-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let p = Paths::new(&dir, "appendonlydir", "appendonly.aof");
        let m = p.create_fresh().unwrap();
        let text = fs::read_to_string(p.manifest()).unwrap();
        assert_eq!(
            text,
            "file appendonly.aof.1.base.aof seq 1 type b\nfile appendonly.aof.1.incr.aof seq 1 type i\n"
        );
        assert_eq!(p.read_manifest().unwrap(), Some(m));
        assert!(p.file("appendonly.aof.1.incr.aof").exists());
        let _ = fs::remove_dir_all(&dir);
    }
}
