//! The small text routines Redis's configuration relies on, with Redis's exact edge cases:
//! `sdssplitargs` (how a config line splits into words), `sdscatrepr` (how a value is quoted
//! back), `memtoull` (`1k`, `1kb`, `5gb`...), `string2ll` (a strict integer) and `strtoll`
//! (a lenient one, used by `save` and `client-output-buffer-limit`).

/// Splits a config line into arguments like Redis's `sdssplitargs`: blanks separate words;
/// `"..."` understands `\n \r \t \b \a \\ \"` and `\xHH`; `'...'` understands only `\'`;
/// a quote may open in the middle of a word (`foo"bar"` is `foobar`) but a closing quote must
/// be followed by a blank or the end. `None` means unbalanced quotes.
pub fn split_args(line: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    let mut i = 0;
    let n = line.len();
    loop {
        while i < n && is_space(line[i]) {
            i += 1;
        }
        if i >= n {
            return Some(out);
        }
        let mut cur = Vec::new();
        let mut inq = false;
        let mut insq = false;
        loop {
            if inq {
                if i >= n {
                    return None;
                }
                let c = line[i];
                if c == b'\\'
                    && i + 3 < n
                    && line[i + 1] == b'x'
                    && line[i + 2].is_ascii_hexdigit()
                    && line[i + 3].is_ascii_hexdigit()
                {
                    cur.push(hex(line[i + 2]) * 16 + hex(line[i + 3]));
                    i += 3;
                } else if c == b'\\' && i + 1 < n {
                    i += 1;
                    cur.push(match line[i] {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 8,
                        b'a' => 7,
                        other => other,
                    });
                } else if c == b'"' {
                    // A closing quote must be followed by a space or nothing at all.
                    if i + 1 < n && !is_space(line[i + 1]) {
                        return None;
                    }
                    i += 1;
                    break;
                } else {
                    cur.push(c);
                }
            } else if insq {
                if i >= n {
                    return None;
                }
                let c = line[i];
                if c == b'\\' && i + 1 < n && line[i + 1] == b'\'' {
                    i += 1;
                    cur.push(b'\'');
                } else if c == b'\'' {
                    if i + 1 < n && !is_space(line[i + 1]) {
                        return None;
                    }
                    i += 1;
                    break;
                } else {
                    cur.push(c);
                }
            } else {
                if i >= n {
                    break;
                }
                match line[i] {
                    b' ' | b'\n' | b'\r' | b'\t' | 0 => {
                        i += 1;
                        break;
                    }
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

/// C's `isspace` in the C locale.
fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

fn hex(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        b'A'..=b'F' => c - b'A' + 10,
        _ => 0,
    }
}

/// Quotes bytes the way Redis's `sdscatrepr` does, so `split_args` reads them back unchanged.
pub fn repr(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() + 2);
    s.push('"');
    for &c in bytes {
        match c {
            b'\\' => s.push_str("\\\\"),
            b'"' => s.push_str("\\\""),
            b'\n' => s.push_str("\\n"),
            b'\r' => s.push_str("\\r"),
            b'\t' => s.push_str("\\t"),
            7 => s.push_str("\\a"),
            8 => s.push_str("\\b"),
            0x20..=0x7e => s.push(c as char),
            _ => s.push_str(&format!("\\x{c:02x}")),
        }
    }
    s.push('"');
    s
}

/// Redis's `memtoull`: digits then an optional unit, case-insensitive: `b` (1), `k` (1000),
/// `kb` (1024), `m`, `mb`, `g`, `gb`. No sign, no spaces, no fractions. Like Redis (which uses
/// `strtoull` unchecked), digits that overflow saturate at `u64::MAX`, and an empty number
/// (`""` or a bare unit) is 0.
pub fn parse_memory(s: &[u8]) -> Option<u64> {
    let digits = s.iter().take_while(|c| c.is_ascii_digit()).count();
    let unit = &s[digits..];
    let mul: u64 = if unit.is_empty() || unit.eq_ignore_ascii_case(b"b") {
        1
    } else if unit.eq_ignore_ascii_case(b"k") {
        1000
    } else if unit.eq_ignore_ascii_case(b"kb") {
        1024
    } else if unit.eq_ignore_ascii_case(b"m") {
        1000 * 1000
    } else if unit.eq_ignore_ascii_case(b"mb") {
        1024 * 1024
    } else if unit.eq_ignore_ascii_case(b"g") {
        1000 * 1000 * 1000
    } else if unit.eq_ignore_ascii_case(b"gb") {
        1024 * 1024 * 1024
    } else {
        return None;
    };
    if digits >= 128 {
        return None;
    }
    let mut val: u64 = 0;
    for &c in &s[..digits] {
        val = val
            .checked_mul(10)
            .and_then(|v| v.checked_add((c - b'0') as u64))
            .unwrap_or(u64::MAX);
    }
    if val > u64::MAX / mul {
        return None;
    }
    Some(val * mul)
}

/// Redis's `string2ll`: an optional `-`, then digits with no leading zero (except "0"
/// itself), nothing else, at most 20 bytes, within `i64`.
pub fn parse_ll(s: &[u8]) -> Option<i64> {
    if s.is_empty() || s.len() >= 21 {
        return None;
    }
    if s == b"0" {
        return Some(0);
    }
    let (neg, digits) = match s[0] {
        b'-' => (true, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() || !(b'1'..=b'9').contains(&digits[0]) {
        return None;
    }
    let mut v: u64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add((c - b'0') as u64)?;
    }
    if neg {
        if v > (i64::MAX as u64) + 1 {
            return None;
        }
        Some((v as i64).wrapping_neg())
    } else {
        i64::try_from(v).ok()
    }
}

/// C's `strtoll(s, &end, base)` followed by Redis's usual `*end == '\0'` check: leading
/// blanks and a sign are allowed, overflow saturates, and a string with no digits at all
/// parses as 0 only when it is empty (because then `end` points at the terminator).
pub fn strtoll_full(s: &[u8], base: u32) -> Option<i64> {
    let mut i = 0;
    while i < s.len() && is_space(s[i]) {
        i += 1;
    }
    let mut neg = false;
    if i < s.len() && (s[i] == b'+' || s[i] == b'-') {
        neg = s[i] == b'-';
        i += 1;
    }
    let start = i;
    let mut v: i128 = 0;
    while i < s.len() {
        let d = match (s[i] as char).to_digit(base) {
            Some(d) => d,
            None => break,
        };
        v = (v * base as i128 + d as i128).min(i64::MAX as i128 + 1);
        i += 1;
    }
    if i == start {
        // No conversion: end = the original string.
        return if s.is_empty() { Some(0) } else { None };
    }
    if i != s.len() {
        return None;
    }
    let v = if neg { -v } else { v };
    Some(v.clamp(i64::MIN as i128, i64::MAX as i128) as i64)
}

/// Redis's `sdssplitlen(value, " ")` as CONFIG SET uses it for multi-word parameters:
/// every single space separates, so doubled spaces give empty words, and "" gives no words.
pub fn split_spaces(value: &[u8]) -> Vec<Vec<u8>> {
    if value.is_empty() {
        return Vec::new();
    }
    value.split(|&c| c == b' ').map(|w| w.to_vec()).collect()
}

/// How CONFIG REWRITE writes a byte count: the largest of gb/mb/kb that divides it.
pub fn format_memory(bytes: i64) -> String {
    const GB: i64 = 1024 * 1024 * 1024;
    const MB: i64 = 1024 * 1024;
    const KB: i64 = 1024;
    if bytes != 0 && bytes % GB == 0 {
        format!("{}gb", bytes / GB)
    } else if bytes != 0 && bytes % MB == 0 {
        format!("{}mb", bytes / MB)
    } else if bytes != 0 && bytes % KB == 0 {
        format!("{}kb", bytes / KB)
    } else {
        bytes.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(s: &str) -> Option<Vec<String>> {
        split_args(s.as_bytes()).map(|v| {
            v.into_iter()
                .map(|w| String::from_utf8_lossy(&w).into_owned())
                .collect()
        })
    }

    #[test]
    fn split_plain_words() {
        assert_eq!(split("port 6379").unwrap(), ["port", "6379"]);
        assert_eq!(split("  save   900\t1  ").unwrap(), ["save", "900", "1"]);
        assert_eq!(split("").unwrap(), Vec::<String>::new());
        assert_eq!(split("   ").unwrap(), Vec::<String>::new());
    }

    #[test]
    fn split_double_quotes_and_escapes() {
        assert_eq!(split(r#"requirepass "a b""#).unwrap(), ["requirepass", "a b"]);
        assert_eq!(split(r#"x "\n\r\t\b\a\\\"\q""#).unwrap(), ["x", "\n\r\t\x08\x07\\\"q"]);
        assert_eq!(split_args(br#"x "\x41\xff\x4""#).unwrap()[1], b"A\xffx4".to_vec());
        assert_eq!(split(r#"save """#).unwrap(), ["save", ""]);
        assert_eq!(split(r#"a"b c"d"#), None, "closing quote must be followed by a blank");
        assert_eq!(split(r#"a"b c" d"#).unwrap(), ["ab c", "d"], "quote may open mid-word");
        assert_eq!(split(r#"port "7400"#), None);
        assert_eq!(split(r#"port "74"00"#), None);
        assert_eq!(split(r#"x "a\"#), None, "escaped closing quote leaves it open");
    }

    #[test]
    fn split_single_quotes() {
        assert_eq!(split(r"x 'a b'").unwrap(), ["x", "a b"]);
        assert_eq!(split(r"x 'it\'s'").unwrap(), ["x", "it's"]);
        assert_eq!(split(r"x 'a\nb'").unwrap(), ["x", "a\\nb"], "no escapes but \\'");
        assert_eq!(split(r"x 'open"), None);
        assert_eq!(split(r"x 'a'b"), None);
        assert_eq!(split(r#"x '"'"#).unwrap(), ["x", "\""]);
    }

    #[test]
    fn repr_round_trips() {
        for v in [
            &b"plain"[..],
            b"",
            b"a b",
            b"q\"uote",
            b"back\\slash",
            b"\x00\x01\xff\n\t\r\x07\x08",
        ] {
            let line = format!("x {}", repr(v));
            assert_eq!(split_args(line.as_bytes()).unwrap()[1], v.to_vec(), "{line}");
        }
        assert_eq!(repr(b"p\"w d"), r#""p\"w d""#);
        assert_eq!(repr(b"\xc3\xa9"), r#""\xc3\xa9""#);
    }

    #[test]
    fn memory_units() {
        assert_eq!(parse_memory(b"0"), Some(0));
        assert_eq!(parse_memory(b"123"), Some(123));
        assert_eq!(parse_memory(b"1b"), Some(1));
        assert_eq!(parse_memory(b"1k"), Some(1000));
        assert_eq!(parse_memory(b"1K"), Some(1000));
        assert_eq!(parse_memory(b"1kb"), Some(1024));
        assert_eq!(parse_memory(b"1KB"), Some(1024));
        assert_eq!(parse_memory(b"1kB"), Some(1024));
        assert_eq!(parse_memory(b"2m"), Some(2_000_000));
        assert_eq!(parse_memory(b"2mb"), Some(2 * 1024 * 1024));
        assert_eq!(parse_memory(b"3g"), Some(3_000_000_000));
        assert_eq!(parse_memory(b"3Gb"), Some(3 * 1024 * 1024 * 1024));
        assert_eq!(parse_memory(b""), Some(0));
        assert_eq!(parse_memory(b"b"), Some(0));
        assert_eq!(parse_memory(b"-1"), None);
        assert_eq!(parse_memory(b" 1"), None);
        assert_eq!(parse_memory(b"1 "), None);
        assert_eq!(parse_memory(b"1.5gb"), None);
        assert_eq!(parse_memory(b"0x10"), None);
        assert_eq!(parse_memory(b"1bb"), None);
        assert_eq!(parse_memory(b"1t"), None);
        assert_eq!(parse_memory(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(
            parse_memory(b"99999999999999999999"),
            Some(u64::MAX),
            "saturates like strtoull"
        );
        assert_eq!(parse_memory(b"99999999999999999999kb"), None);
        assert_eq!(parse_memory(b"17179869184gb"), None, "overflow with a unit");
    }

    #[test]
    fn strict_integers() {
        assert_eq!(parse_ll(b"0"), Some(0));
        assert_eq!(parse_ll(b"10"), Some(10));
        assert_eq!(parse_ll(b"-5"), Some(-5));
        assert_eq!(parse_ll(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_ll(b"-9223372036854775808"), Some(i64::MIN));
        assert_eq!(parse_ll(b"9223372036854775808"), None);
        for bad in [&b""[..], b"-", b"+5", b"010", b"-0", b" 1", b"1 ", b"1e3", b"abc"] {
            assert_eq!(parse_ll(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn lenient_integers() {
        assert_eq!(strtoll_full(b"", 10), Some(0));
        assert_eq!(strtoll_full(b" 5", 10), Some(5));
        assert_eq!(strtoll_full(b"+5", 10), Some(5));
        assert_eq!(strtoll_full(b"-5", 10), Some(-5));
        assert_eq!(strtoll_full(b"5 ", 10), None);
        assert_eq!(strtoll_full(b" ", 10), None);
        assert_eq!(strtoll_full(b"+", 10), None);
        assert_eq!(strtoll_full(b"1.5", 10), None);
        assert_eq!(strtoll_full(b"777", 8), Some(0o777));
        assert_eq!(strtoll_full(b"8", 8), None);
        assert_eq!(strtoll_full(b"99999999999999999999", 10), Some(i64::MAX));
    }

    #[test]
    fn space_splitting_for_config_set() {
        assert!(split_spaces(b"").is_empty());
        assert_eq!(split_spaces(b"1 2"), vec![b"1".to_vec(), b"2".to_vec()]);
        assert_eq!(split_spaces(b"1  2").len(), 3);
        assert_eq!(split_spaces(b" 1").len(), 2);
    }

    #[test]
    fn memory_formatting() {
        assert_eq!(format_memory(0), "0");
        assert_eq!(format_memory(1000), "1000");
        assert_eq!(format_memory(4096), "4kb");
        assert_eq!(format_memory(64 * 1024 * 1024), "64mb");
        assert_eq!(format_memory(1024 * 1024 * 1024), "1gb");
        assert_eq!(format_memory(-1), "-1");
    }
}
