//! Redis's glob-style matcher (`stringmatchlen` in Redis's `util.c`), byte for byte.
//!
//! Used by CONFIG GET (case-insensitive), and by KEYS, SCAN ... MATCH, PSUBSCRIBE and
//! friends (case-sensitive). The grammar:
//!
//! - `*` any run of bytes (also empty), `?` exactly one byte;
//! - `[abc]` one of, `[^abc]` none of, `[a-z]` a range (either order: `[z-a]` works too),
//!   `\x` inside a class is a literal `x`; an unterminated class runs to the end of the pattern;
//! - `\x` outside a class is a literal `x`; a trailing lone `\` matches a `\`.
//!
//! Cost stays polynomial on hostile patterns: once the text after a `*` failed to match at
//! every later position, no earlier `*` can help either (`skip_longer`), so `a*a*a*...b`
//! against `aaaa...` is quadratic, not exponential. As in Redis, more than 1000 nested `*`
//! groups simply do not match, which also bounds the recursion depth.

/// Does `s` match the glob `pattern`? `nocase` folds ASCII letters (CONFIG GET uses it).
pub fn glob_match(pattern: &[u8], s: &[u8], nocase: bool) -> bool {
    // The overwhelmingly common patterns, answered without the general machinery.
    if pattern == b"*" {
        return true;
    }
    let mut skip_longer = false;
    match_at(pattern, 0, s, 0, nocase, &mut skip_longer, 0)
}

const MAX_NESTING: u32 = 1000;

#[inline]
fn fold(c: u8, nocase: bool) -> u8 {
    if nocase {
        c.to_ascii_lowercase()
    } else {
        c
    }
}

/// A transcription of `stringmatchlen_impl`, with indices instead of moving pointers so that
/// its one step backwards (an unterminated `[`) stays in bounds.
fn match_at(
    pat: &[u8],
    mut pi: usize,
    s: &[u8],
    mut si: usize,
    nocase: bool,
    skip_longer: &mut bool,
    nesting: u32,
) -> bool {
    if nesting > MAX_NESTING {
        return false;
    }
    while pi < pat.len() && si < s.len() {
        match pat[pi] {
            b'*' => {
                while pi + 1 < pat.len() && pat[pi + 1] == b'*' {
                    pi += 1;
                }
                if pi + 1 == pat.len() {
                    return true;
                }
                while si < s.len() {
                    if match_at(pat, pi + 1, s, si, nocase, skip_longer, nesting + 1) {
                        return true;
                    }
                    if *skip_longer {
                        return false;
                    }
                    si += 1;
                }
                // Nothing after this star matches anywhere in the rest of the string, so
                // letting an earlier star swallow more cannot help: fail the whole match.
                *skip_longer = true;
                return false;
            }
            b'?' => si += 1,
            b'[' => {
                pi += 1;
                let not = pi < pat.len() && pat[pi] == b'^';
                if not {
                    pi += 1;
                }
                let mut matched = false;
                let c = s[si];
                loop {
                    let rest = pat.len() - pi;
                    if rest >= 2 && pat[pi] == b'\\' {
                        pi += 1;
                        if pat[pi] == c {
                            matched = true;
                        }
                    } else if rest >= 1 && pat[pi] == b']' {
                        break;
                    } else if rest == 0 {
                        // Unterminated class: step back so the shared advance below ends
                        // exactly at the end of the pattern.
                        pi -= 1;
                        break;
                    } else if rest >= 3 && pat[pi + 1] == b'-' {
                        // C compares `char`s, which are signed on the platforms Redis runs
                        // on: bytes >= 0x80 sort before ASCII in ranges.
                        let mut start = fold(pat[pi], nocase) as i8 as i32;
                        let mut end = fold(pat[pi + 2], nocase) as i8 as i32;
                        let ch = fold(c, nocase) as i8 as i32;
                        if start > end {
                            std::mem::swap(&mut start, &mut end);
                        }
                        pi += 2;
                        if ch >= start && ch <= end {
                            matched = true;
                        }
                    } else if fold(pat[pi], nocase) == fold(c, nocase) {
                        matched = true;
                    }
                    pi += 1;
                }
                if not {
                    matched = !matched;
                }
                if !matched {
                    return false;
                }
                si += 1;
            }
            b'\\' if pat.len() - pi >= 2 => {
                pi += 1;
                if fold(pat[pi], nocase) != fold(s[si], nocase) {
                    return false;
                }
                si += 1;
            }
            p => {
                if fold(p, nocase) != fold(s[si], nocase) {
                    return false;
                }
                si += 1;
            }
        }
        pi += 1;
        if si == s.len() {
            while pi < pat.len() && pat[pi] == b'*' {
                pi += 1;
            }
            break;
        }
    }
    pi == pat.len() && si == s.len()
}

#[cfg(test)]
mod tests {
    use super::glob_match;
    use std::time::{Duration, Instant};

    fn m(p: &str, s: &str) -> bool {
        glob_match(p.as_bytes(), s.as_bytes(), false)
    }
    fn mi(p: &str, s: &str) -> bool {
        glob_match(p.as_bytes(), s.as_bytes(), true)
    }

    #[test]
    fn literals_and_wildcards() {
        assert!(m("", ""));
        assert!(!m("", "a"));
        assert!(!m("a", ""));
        assert!(m("abc", "abc"));
        assert!(!m("abc", "abd"));
        assert!(!m("abc", "abcd"));
        assert!(m("*", ""));
        assert!(m("*", "anything"));
        assert!(m("**", "x"));
        assert!(m("a*", "a"));
        assert!(m("a*", "abc"));
        assert!(!m("a*", "bac"));
        assert!(m("*c", "abc"));
        assert!(m("a*c", "ac"));
        assert!(m("a*c", "abbbc"));
        assert!(!m("a*c", "abbbd"));
        assert!(m("a*b*c", "a-b-c"));
        assert!(m("a**c", "abc"));
        assert!(m("h?llo", "hello"));
        assert!(m("h?llo", "hallo"));
        assert!(!m("h?llo", "hllo"));
        assert!(m("?", "x"));
        assert!(!m("?", ""));
        assert!(m("*?", "x"));
        assert!(!m("?*?", "x"));
        assert!(m("a*", "a"));
        assert!(m("a**", "a"));
    }

    #[test]
    fn classes() {
        assert!(m("h[ae]llo", "hello"));
        assert!(m("h[ae]llo", "hallo"));
        assert!(!m("h[ae]llo", "hillo"));
        assert!(m("h[^e]llo", "hallo"));
        assert!(!m("h[^e]llo", "hello"));
        assert!(m("h[a-b]llo", "hbllo"));
        assert!(!m("h[a-b]llo", "hcllo"));
        assert!(m("h[b-a]llo", "hallo"), "reversed ranges work");
        assert!(m("[\\]]", "]"));
        assert!(m("[\\-]", "-"));
        assert!(!m("[\\-]", "a"));
        assert!(m("[a-]", "]"), "Redis reads `a-]` as the range a..]");
        assert!(m("[abc", "c"), "unterminated class runs to the end");
        assert!(!m("[abc", "d"));
        assert!(!m("[", "["));
        assert!(m("[^", "x"), "empty negated class matches any byte");
        assert!(!m("x[]", "x]"));
        assert!(!m("[]]", "]"), "`[]` is an empty class, which matches nothing");
        assert!(!m("[]]]", "]]"));
        assert!(m("[*]", "*"));
        assert!(!m("[*]", "a"));
        assert!(m("[?]x", "?x"));
    }

    #[test]
    fn escapes() {
        assert!(m("\\*", "*"));
        assert!(!m("\\*", "a"));
        assert!(m("\\?", "?"));
        assert!(m("a\\[b", "a[b"));
        assert!(m("\\", "\\"), "a trailing backslash is literal");
        assert!(m("ab\\", "ab\\"));
        assert!(m("\\\\", "\\"));
    }

    #[test]
    fn nocase() {
        assert!(mi("PORT", "port"));
        assert!(mi("Max*", "maxmemory"));
        assert!(!m("Max*", "maxmemory"));
        assert!(mi("[A-Z]ort", "port"));
        assert!(mi("[P]ort", "port"));
        assert!(mi("[^Q]ort", "port"));
        assert!(!mi("[^P]ort", "port"));
        assert!(mi("\\P*", "port"));
    }

    #[test]
    fn binary_and_high_bytes() {
        assert!(glob_match(b"a\x00*", b"a\x00bc", false));
        assert!(glob_match(b"\xff?", b"\xff\x01", false));
        // Signed-char ranges, as Redis on x86: 0x80..0xff sort below ASCII.
        assert!(glob_match(b"[\x80-a]", b"0", false));
        assert!(glob_match(b"[\x80-a]", b"\xff", false));
        assert!(!glob_match(b"[\x80-a]", b"b", false));
    }

    #[test]
    fn trailing_stars_after_exhausted_string() {
        assert!(m("abc*", "abc"));
        assert!(m("abc***", "abc"));
        assert!(!m("abc*d", "abc"));
        assert!(!m("abc?", "abc"));
    }

    #[test]
    fn pathological_patterns_are_fast() {
        let text = "a".repeat(4000);
        let pat = format!("{}b", "a*".repeat(400));
        let start = Instant::now();
        assert!(!m(&pat, &text));
        let p2 = "*a".repeat(500) + "*b";
        assert!(!m(&p2, &text));
        let p3 = "?*".repeat(300) + "b";
        assert!(!m(&p3, &text));
        // And a match at the very end.
        let mut t2 = text.clone();
        t2.push('b');
        assert!(m(&pat, &t2));
        assert!(start.elapsed() < Duration::from_secs(2), "took {:?}", start.elapsed());
    }

    #[test]
    fn nesting_limit_like_redis() {
        // More than 1000 star groups: Redis gives up (no match) rather than recursing on.
        let pat = "a*".repeat(1100);
        let text = "a".repeat(1200);
        assert!(!m(&pat, &text));
        let ok = "a*".repeat(900);
        assert!(m(&ok, &text));
    }
}
