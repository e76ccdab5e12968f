//! SORT and SORT_RO: sort a list, set or sorted set, numerically or lexicographically,
//! optionally by the values of other keys (`BY weight_*`, `BY h_*->field`), fetching other
//! keys' values (`GET obj_*`, `GET #`), and storing the result as a list (`STORE`).
//!
//! BY and GET patterns name keys that may live on any shard, so a SORT with a real pattern
//! reserves every shard (`CommandSpec::wide`) and looks them up through the coordinator's
//! keyspace; without patterns it runs where its key (and STORE destination) live.

use std::cmp::Ordering;

use crate::command::keys::{Begin, Find};
use crate::command::{acl, flags::*, Args, CommandSpec, Exec, KeySpec, Multi, Run};
use crate::config::NotifyFlags;
use crate::error::CmdError;
use crate::store::list::List;
use crate::store::Value;

/// What `SORT` was asked to do.
struct SortOpts<'a> {
    desc: bool,
    alpha: bool,
    limit: Option<(i64, i64)>,
    by: Option<&'a [u8]>,
    /// BY with no `*`: keep the native order.
    dontsort: bool,
    get: Vec<&'a [u8]>,
    store: Option<&'a [u8]>,
}

fn parse(args: &Args, readonly: bool) -> Result<SortOpts<'_>, CmdError> {
    let mut o = SortOpts {
        desc: false,
        alpha: false,
        limit: None,
        by: None,
        dontsort: false,
        get: Vec::new(),
        store: None,
    };
    let mut j = 2;
    while j < args.len() {
        let left = args.len() - j - 1;
        if args.is(j, "asc") {
            o.desc = false;
        } else if args.is(j, "desc") {
            o.desc = true;
        } else if args.is(j, "alpha") {
            o.alpha = true;
        } else if args.is(j, "limit") && left >= 2 {
            o.limit = Some((args.int(j + 1)?, args.int(j + 2)?));
            j += 2;
        } else if !readonly && args.is(j, "store") && left >= 1 {
            o.store = Some(&args[j + 1]);
            j += 1;
        } else if args.is(j, "by") && left >= 1 {
            let p = &args[j + 1];
            o.by = Some(p);
            o.dontsort = memchr::memchr(b'*', p).is_none();
            j += 1;
        } else if args.is(j, "get") && left >= 1 {
            o.get.push(&args[j + 1]);
            j += 1;
        } else {
            return Err(CmdError::Syntax);
        }
        j += 1;
    }
    Ok(o)
}

/// A pattern that reads other keys: BY with a `*`, or GET other than `#`.
fn uses_patterns(args: &Args) -> bool {
    let mut j = 2;
    while j < args.len() {
        let left = args.len() - j - 1;
        if args.is(j, "limit") && left >= 2 {
            j += 2;
        } else if (args.is(j, "by") || args.is(j, "get")) && left >= 1 {
            let p = &args[j + 1];
            if memchr::memchr(b'*', p).is_some() {
                return true;
            }
            j += 1;
        } else if args.is(j, "store") && left >= 1 {
            j += 1;
        }
        j += 1;
    }
    false
}

/// The STORE destination's position (the last STORE wins, as Redis's sortGetKeys).
fn store_key(args: &Args) -> Option<usize> {
    let mut found = None;
    let mut j = 2;
    while j < args.len() {
        let left = args.len() - j - 1;
        if args.is(j, "limit") && left >= 2 {
            j += 2;
        } else if (args.is(j, "by") || args.is(j, "get")) && left >= 1 {
            j += 1;
        } else if args.is(j, "store") && left >= 1 {
            found = Some(j + 1);
            j += 1;
        }
        j += 1;
    }
    found
}

/// Redis's lookupKeyByPattern: `#` is the element itself; the first `*` is replaced by the
/// element; `key->field` reads a hash field; otherwise a string value. Missing keys, wrong
/// types and patterns without `*` give None.
fn lookup_by_pattern(ex: &mut Exec, pattern: &[u8], elem: &[u8]) -> Option<Vec<u8>> {
    if pattern == b"#" {
        return Some(elem.to_vec());
    }
    let star = memchr::memchr(b'*', pattern)?;
    let (field, key_end) = match memchr::memmem::find(&pattern[star + 1..], b"->") {
        Some(at) if star + 1 + at + 2 < pattern.len() => {
            let f = star + 1 + at;
            (Some(&pattern[f + 2..]), f)
        }
        _ => (None, pattern.len()),
    };
    let mut key = Vec::with_capacity(key_end + elem.len());
    key.extend_from_slice(&pattern[..star]);
    key.extend_from_slice(elem);
    key.extend_from_slice(&pattern[star + 1..key_end]);
    let (now, touch) = (ex.now, ex.touch());
    let entry = ex.db(&key).lookup(&key, now, touch)?;
    match (field, &mut entry.value) {
        (Some(f), Value::Hash(h)) => h.get(f).map(|v| v.to_vec()),
        (None, Value::Str(s)) => Some(s.to_vec()),
        _ => None,
    }
}

/// strtod as SORT uses it: leading spaces allowed, the whole rest must parse, an empty string
/// is 0, NaN and overflow are errors. Redis hands strtod the value as a C string, so it ends
/// at the first NUL byte ("\0\0" is 0, "12\0x" is 12).
fn sort_score(b: &[u8]) -> Option<f64> {
    let b = crate::error::c_str(b, b.len());
    let start = b.iter().position(|c| !c.is_ascii_whitespace()).unwrap_or(b.len());
    let t = &b[start..];
    if t.is_empty() {
        return Some(0.0);
    }
    let v = crate::command::args::parse_f64(t)?;
    let literal_inf = t
        .iter()
        .skip_while(|&&c| c == b'+' || c == b'-')
        .take(3)
        .map(u8::to_ascii_lowercase)
        .eq(b"inf".iter().copied());
    if v.is_infinite() && !literal_inf {
        return None;
    }
    Some(v)
}

/// An element and what it sorts by.
struct Item {
    elem: Vec<u8>,
    score: f64,
    cmp: Option<Vec<u8>>,
}

/// `SORT key [BY pattern] [LIMIT offset count] [GET pattern [GET pattern ...]] [ASC | DESC] [ALPHA] [STORE destination]`
fn sort(ex: &mut Exec, a: &Args) -> Result<(), CmdError> {
    sort_generic(ex, a, false)
}

/// `SORT_RO key [BY pattern] [LIMIT offset count] [GET pattern [GET pattern ...]] [ASC | DESC] [ALPHA]`
fn sort_ro(ex: &mut Exec, a: &Args) -> Result<(), CmdError> {
    sort_generic(ex, a, true)
}

fn sort_generic(ex: &mut Exec, a: &Args, readonly: bool) -> Result<(), CmdError> {
    let mut o = parse(a, readonly)?;
    let (now, touch) = (ex.now, ex.touch());
    let key = &a[1];
    // The elements in the value's native order (a missing key is an empty list).
    let (elems, is_set, is_ordered) = match ex.db(key).lookup(key, now, touch) {
        None => (Vec::new(), false, true),
        Some(e) => match &mut e.value {
            Value::List(l) => (l.iter().map(|e| e.to_vec()).collect::<Vec<_>>(), false, true),
            Value::Set(s) => (s.iter().map(|m| m.to_vec()).collect(), true, false),
            Value::ZSet(z) => {
                // Redis's sortCommandGeneric "destructively" converts a sorted set to a
                // skiplist, SORT_RO too (OBJECT ENCODING shows it; the contents are the same).
                z.convert_to_skiplist();
                (z.iter().map(|(m, _)| m.to_vec()).collect(), false, true)
            }
            _ => return Err(CmdError::WrongType),
        },
    };
    // A set has no stable order: sort it when the result is stored (or replicated).
    if o.dontsort && is_set && o.store.is_some() {
        o.dontsort = false;
        o.alpha = true;
        o.by = None;
    }
    let len = elems.len() as i64;
    let (lstart, lcount) = o.limit.unwrap_or((0, -1));
    let mut start = lstart.clamp(0, len);
    let count = lcount.clamp(-1, len);
    let mut end = if count < 0 { len - 1 } else { start + count - 1 };
    if start >= len {
        start = len - 1;
        end = len - 2;
    }
    if end >= len {
        end = len - 1;
    }
    let mut items: Vec<Item> = elems
        .into_iter()
        .map(|elem| Item {
            elem,
            score: 0.0,
            cmp: None,
        })
        .collect();
    if o.dontsort && is_ordered && o.desc {
        items.reverse();
    }
    if !o.dontsort {
        let mut conversion_error = false;
        for it in &mut items {
            let by = match o.by {
                Some(p) => match lookup_by_pattern(ex, p, &it.elem) {
                    Some(v) => v,
                    None => continue,
                },
                None => it.elem.clone(),
            };
            if o.alpha {
                if o.by.is_some() {
                    it.cmp = Some(by);
                }
            } else {
                match sort_score(&by) {
                    Some(s) => it.score = s,
                    None => conversion_error = true,
                }
            }
        }
        if conversion_error {
            return Err(CmdError::Static(
                "ERR One or more scores can't be converted into double",
            ));
        }
        let (alpha, by, desc) = (o.alpha, o.by.is_some(), o.desc);
        items.sort_by(|x, y| {
            let c = if !alpha {
                x.score
                    .partial_cmp(&y.score)
                    .unwrap_or(Ordering::Equal)
                    .then_with(|| x.elem.cmp(&y.elem))
            } else if by {
                match (&x.cmp, &y.cmp) {
                    (None, None) => Ordering::Equal,
                    (None, Some(_)) => Ordering::Less,
                    (Some(_), None) => Ordering::Greater,
                    (Some(p), Some(q)) => p.cmp(q),
                }
            } else {
                x.elem.cmp(&y.elem)
            };
            if desc {
                c.reverse()
            } else {
                c
            }
        });
    }
    let range: &[Item] = if end >= start {
        &items[start as usize..=end as usize]
    } else {
        &[]
    };
    let per = o.get.len().max(1);
    match o.store {
        None => {
            ex.out.array(range.len() * per);
            for it in range {
                if o.get.is_empty() {
                    ex.out.bulk(&it.elem);
                }
                for p in &o.get {
                    match lookup_by_pattern(ex, p, &it.elem) {
                        Some(v) => ex.out.bulk(&v),
                        None => ex.out.null(),
                    }
                }
            }
        }
        Some(dst) => {
            let mut out: Vec<Vec<u8>> = Vec::with_capacity(range.len() * per);
            for it in range {
                if o.get.is_empty() {
                    out.push(it.elem.clone());
                }
                for p in &o.get {
                    out.push(lookup_by_pattern(ex, p, &it.elem).unwrap_or_default());
                }
            }
            let n = out.len();
            if n > 0 {
                let list = List::from_items(out.iter().map(Vec::as_slice), ex.enc.list_max_listpack_size);
                let now = ex.now;
                ex.db(dst).set_key(dst, Value::List(list), now);
                ex.notify(NotifyFlags::LIST, "sortstore", dst);
                ex.dirty += n as u64;
                ex.propagate_as_is(a);
            } else if ex.db(dst).remove(dst).is_some() {
                // An empty result deletes the destination (and only then is there
                // anything to propagate).
                ex.notify(NotifyFlags::GENERIC, "del", dst);
                ex.dirty += 1;
                ex.propagate_as_is(a);
            }
            ex.out.int(n as i64);
        }
    }
    Ok(())
}

const SORT_KEYS: &[KeySpec] = &[
    KeySpec::one(1, &["RO", "ACCESS"]),
    KeySpec {
        flags: &["RO", "ACCESS"],
        begin: Begin::Unknown(None),
        find: Find::Unknown,
        notes: "For the optional BY/GET keyword. It is marked 'unknown' because the key names derive from the content of the key we sort",
    },
    KeySpec {
        flags: &["OW", "UPDATE"],
        begin: Begin::Unknown(Some(store_key)),
        find: Find::Unknown,
        notes: "For the optional STORE keyword. It is marked 'unknown' because the keyword can appear anywhere in the argument array",
    },
];

const SORT_RO_KEYS: &[KeySpec] = &[
    KeySpec::one(1, &["RO", "ACCESS"]),
    KeySpec {
        flags: &["RO", "ACCESS"],
        begin: Begin::Unknown(None),
        find: Find::Unknown,
        notes: "For the optional BY/GET keyword. It is marked 'unknown' because the key names derive from the content of the key we sort",
    },
];

pub static COMMANDS: &[CommandSpec] = &[
    CommandSpec {
        name: "sort",
        arity: -2,
        flags: WRITE | DENYOOM | MOVABLEKEYS,
        acl: acl::SET | acl::SORTEDSET | acl::LIST | acl::DANGEROUS,
        key_specs: SORT_KEYS,
        group: "generic",
        since: "1.0.0",
        summary: "Sorts the elements in a list, a set, or a sorted set, optionally storing the result.",
        complexity: "O(N+M*log(M)) where N is the number of elements in the list or set to sort, and M the number of returned elements. When the elements are not sorted, complexity is O(N).",
        syntax: "key [BY pattern] [LIMIT offset count] [GET pattern [GET pattern ...]] [ASC | DESC] [ALPHA] [STORE destination]",
        run: Run::Keyed(sort, Multi::Atomic),
        wide: Some(uses_patterns),
        ..CommandSpec::DEFAULT
    },
    CommandSpec {
        name: "sort_ro",
        arity: -2,
        flags: READONLY,
        acl: acl::SET | acl::SORTEDSET | acl::LIST | acl::DANGEROUS,
        key_specs: SORT_RO_KEYS,
        group: "generic",
        since: "7.0.0",
        summary: "Returns the sorted elements of a list, a set, or a sorted set.",
        complexity: "O(N+M*log(M)) where N is the number of elements in the list or set to sort, and M the number of returned elements. When the elements are not sorted, complexity is O(N).",
        syntax: "key [BY pattern] [LIMIT offset count] [GET pattern [GET pattern ...]] [ASC | DESC] [ALPHA]",
        run: Run::Keyed(sort_ro, Multi::Atomic),
        wide: Some(uses_patterns),
        ..CommandSpec::DEFAULT
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_parse_like_strtod() {
        assert_eq!(sort_score(b"  1.5"), Some(1.5));
        assert_eq!(sort_score(b""), Some(0.0));
        assert_eq!(sort_score(b"-inf"), Some(f64::NEG_INFINITY));
        assert_eq!(sort_score(b"1e400"), None);
        assert_eq!(sort_score(b"nan"), None);
        assert_eq!(sort_score(b"1x"), None);
    }

    #[test]
    fn store_key_is_found_anywhere() {
        let a = |v: &[&str]| Args::new(v.iter().map(|s| bytes::Bytes::copy_from_slice(s.as_bytes())).collect());
        assert_eq!(store_key(&a(&["SORT", "k", "LIMIT", "0", "1", "STORE", "d"])), Some(6));
        assert_eq!(store_key(&a(&["SORT", "k", "GET", "store", "ALPHA"])), None);
        assert!(uses_patterns(&a(&["SORT", "k", "BY", "w_*"])));
        assert!(!uses_patterns(&a(&["SORT", "k", "BY", "nosort", "GET", "#"])));
    }
}
