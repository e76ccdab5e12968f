//! `basalt check-rdb PATH`: validates an RDB file as redis-check-rdb does, printing what it
//! read and, on the first problem, the offset and what is wrong. Exit code 0 when the file
//! is sound, 1 otherwise.

use super::read::{FileReader, Item};
use crate::store::EncodingLimits;

pub fn check_rdb(args: &[String]) -> i32 {
    let [path] = args else {
        eprintln!("Usage: basalt check-rdb <rdb-file-name>");
        return 1;
    };
    let buf = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => {
            println!("Cannot check RDB file {path}: {e}");
            return 1;
        }
    };
    println!("[offset 0] Checking RDB file {path}");
    let (report, ok) = check_bytes(&buf);
    print!("{report}");
    if ok {
        0
    } else {
        1
    }
}

/// The report for an image, and whether it is sound.
pub fn check_bytes(buf: &[u8]) -> (String, bool) {
    let mut out = String::new();
    let lim = EncodingLimits::default();
    let now = crate::server::unix_ms();
    let (mut keys, mut expires, mut expired, mut functions) = (0u64, 0u64, 0u64, 0u64);
    let mut last_key: Option<Vec<u8>> = None;
    let result = (|| -> Result<(), super::read::Error> {
        let mut r = FileReader::new(buf)?;
        out.push_str(&format!("[offset 9] RDB version {}\n", r.version));
        loop {
            let at = r.inp.pos;
            match r.next(&lim)? {
                Item::Aux(k, v) => out.push_str(&format!(
                    "[offset {at}] AUX FIELD {} = '{}'\n",
                    String::from_utf8_lossy(&k),
                    String::from_utf8_lossy(&v)
                )),
                Item::Resize(..) => {}
                Item::Function(_) => functions += 1,
                Item::Key(k) => {
                    keys += 1;
                    if let Some(at) = k.expire_ms {
                        expires += 1;
                        if at < now {
                            expired += 1;
                        }
                    }
                    last_key = Some(k.key);
                }
                Item::Eof => {
                    let end = r.inp.pos;
                    if r.version >= 5 && buf[end - 8..end] == [0; 8] {
                        out.push_str(&format!(
                            "[offset {end}] RDB file was saved with checksum disabled: no check performed.\n"
                        ));
                    } else {
                        out.push_str(&format!("[offset {end}] Checksum OK\n"));
                    }
                    if end != buf.len() {
                        out.push_str(&format!(
                            "[offset {end}] {} bytes after the end of the RDB (an AOF tail?)\n",
                            buf.len() - end
                        ));
                    }
                    out.push_str(&format!("[offset {end}] \\o/ RDB looks OK! \\o/\n"));
                    return Ok(());
                }
            }
        }
    })();
    let ok = result.is_ok();
    if let Err(e) = result {
        out.push_str("--- RDB ERROR DETECTED ---\n");
        out.push_str(&format!("[offset {}] {}\n", e.offset, e.msg));
        if let Some(k) = &last_key {
            out.push_str(&format!(
                "[additional info] Last key read: '{}'\n",
                String::from_utf8_lossy(k)
            ));
        }
    }
    out.push_str(&format!("[info] {keys} keys read\n"));
    out.push_str(&format!("[info] {expires} expires\n"));
    out.push_str(&format!("[info] {expired} already expired\n"));
    if functions > 0 {
        out.push_str(&format!("[info] {functions} functions read\n"));
    }
    (out, ok)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::persist::rdb::{crc64, write};
    use crate::store::value::{Str, Value};

    fn image() -> Vec<u8> {
        let mut out = Vec::new();
        write::header(&mut out, &[("redis-ver", b"7.0.15")]);
        write::select_db(&mut out, 0, 1, 0);
        write::key(&mut out, b"k", &Value::Str(Str::from_set(b"hello")), None, true);
        let crc = crc64::crc64(0, &out);
        write::eof(&mut out, crc);
        out
    }

    #[test]
    fn sound_file() {
        let (report, ok) = check_bytes(&image());
        assert!(ok, "{report}");
        assert!(report.contains("AUX FIELD redis-ver = '7.0.15'"), "{report}");
        assert!(report.contains("Checksum OK"));
        assert!(report.contains("[info] 1 keys read"));
    }

    #[test]
    fn truncated_and_corrupt_files_name_the_offset() {
        let img = image();
        let (report, ok) = check_bytes(&img[..img.len() - 12]);
        assert!(!ok);
        assert!(report.contains("--- RDB ERROR DETECTED ---"), "{report}");
        assert!(report.contains("exceeds the data left"), "{report}");
        let mut bad = img.clone();
        let n = bad.len();
        bad[n - 12] ^= 1; // inside the value: the checksum no longer matches
        let (report, ok) = check_bytes(&bad);
        assert!(!ok);
        assert!(report.contains("wrong RDB checksum"), "{report}");
        let (report, ok) = check_bytes(b"NOTREDIS0010");
        assert!(!ok);
        assert!(report.contains("[offset 0] wrong signature"), "{report}");
    }
}
