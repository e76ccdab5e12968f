//! Key specifications, as Redis 7 declares them (begin_search + find_keys). They are the one
//! source of key positions: routing to shards, `COMMAND GETKEYS`, the legacy
//! first/last/step triple and the key specs of `COMMAND INFO` all read them.

use super::Args;

#[derive(Clone, Copy, Debug)]
pub enum Begin {
    /// The first key is at this argument index.
    Index(usize),
    /// The first key follows this keyword, searched from `startfrom` (negative: from the end, backwards).
    Keyword { keyword: &'static str, startfrom: i32 },
    /// Redis's "unknown" begin_search (SORT's STORE and BY/GET keys): COMMAND INFO says
    /// unknown; the function (if any) finds the key's position the way Redis's getkeys
    /// procedure does. Use with `Find::Unknown`.
    Unknown(Option<fn(&Args) -> Option<usize>>),
}

#[derive(Clone, Copy, Debug)]
pub enum Find {
    /// Keys from the start up to `lastkey` (relative; -1 = the last argument) every `step`;
    /// with lastkey -1, `limit` > 1 keeps only 1/limit of the remaining arguments.
    Range { lastkey: i32, step: usize, limit: usize },
    /// The key count is at `keynumidx` (relative to the start), keys from `firstkey` every `step`.
    Keynum {
        keynumidx: usize,
        firstkey: usize,
        step: usize,
    },
    /// Redis's "unknown" find_keys: the one key `Begin::Unknown` found.
    Unknown,
}

#[derive(Clone, Copy, Debug)]
pub struct KeySpec {
    pub flags: &'static [&'static str],
    pub begin: Begin,
    pub find: Find,
    /// Redis's `notes` for the spec (COMMAND INFO shows them); empty for none.
    pub notes: &'static str,
}

impl KeySpec {
    /// The common case: one key at `index`.
    pub const fn one(index: usize, flags: &'static [&'static str]) -> KeySpec {
        KeySpec {
            flags,
            begin: Begin::Index(index),
            find: Find::Range {
                lastkey: 0,
                step: 1,
                limit: 0,
            },
            notes: "",
        }
    }

    /// Keys from `index` to the end, every `step` (MGET: step 1, MSET: step 2).
    pub const fn rest(index: usize, step: usize, flags: &'static [&'static str]) -> KeySpec {
        KeySpec {
            flags,
            begin: Begin::Index(index),
            find: Find::Range {
                lastkey: -1,
                step,
                limit: 0,
            },
            notes: "",
        }
    }

    /// The same spec with Redis's notes: `KeySpec::one(1, RW).with_notes("...")`.
    pub const fn with_notes(self, notes: &'static str) -> KeySpec {
        KeySpec { notes, ..self }
    }
}

/// Why key extraction failed (a numkeys argument that is not a valid count).
#[derive(Debug, PartialEq, Eq)]
pub enum KeysError {
    BadNumkeys,
}

/// Appends the positions of the keys of a command to `out`, in order (Redis's
/// getKeysUsingKeySpecs). Positions past the argument list are never produced.
pub fn key_positions(specs: &[KeySpec], args: &Args, out: &mut Vec<usize>) -> Result<(), KeysError> {
    for_each_key(specs, args, |p| out.push(p))
}

/// Calls `f` with the position of each key, in order, without allocating (dispatch routes
/// every command through this).
pub fn for_each_key(specs: &[KeySpec], args: &Args, mut f: impl FnMut(usize)) -> Result<(), KeysError> {
    let argc = args.len();
    for spec in specs {
        let first = match spec.begin {
            Begin::Index(i) => i,
            Begin::Keyword { keyword, startfrom } => {
                let found = if startfrom >= 0 {
                    (startfrom as usize..argc).find(|&i| args.is(i, keyword))
                } else {
                    let start = argc as i64 + startfrom as i64;
                    (1..=start.max(0) as usize)
                        .rev()
                        .find(|&i| i < argc && args.is(i, keyword))
                };
                match found {
                    Some(i) => i + 1,
                    None => continue,
                }
            }
            Begin::Unknown(finder) => match finder.and_then(|find| find(args)) {
                Some(i) => i,
                None => continue,
            },
        };
        if first >= argc {
            continue;
        }
        match spec.find {
            Find::Unknown => f(first),
            Find::Range { lastkey, step, limit } => {
                let last = if lastkey >= 0 {
                    first + lastkey as usize
                } else if lastkey == -1 && limit > 1 {
                    first + (argc - first) / limit - 1
                } else {
                    let l = argc as i64 + lastkey as i64;
                    if l < first as i64 {
                        continue;
                    }
                    l as usize
                };
                let last = last.min(argc - 1);
                let mut i = first;
                while i <= last {
                    f(i);
                    i += step.max(1);
                }
            }
            Find::Keynum {
                keynumidx,
                firstkey,
                step,
            } => {
                let idx = first + keynumidx;
                if idx >= argc {
                    return Err(KeysError::BadNumkeys);
                }
                let n = super::args::parse_i64(&args[idx]).ok_or(KeysError::BadNumkeys)?;
                if n < 0 {
                    return Err(KeysError::BadNumkeys);
                }
                let start = first + firstkey;
                let mut i = start;
                for _ in 0..n {
                    if i >= argc {
                        return Err(KeysError::BadNumkeys);
                    }
                    f(i);
                    i += step.max(1);
                }
            }
        }
    }
    Ok(())
}

/// The legacy (first, last, step) triple of `COMMAND INFO`, derived from the key specs as
/// Redis's populateCommandLegacyRangeSpec does: consecutive index/range specs merge; anything
/// else makes the command's keys movable and is left out.
pub fn legacy_range(specs: &[KeySpec]) -> (i64, i64, i64, bool) {
    let (mut first, mut last, mut step) = (0i64, 0i64, 0i64);
    let mut movable = false;
    for spec in specs {
        let (
            Begin::Index(index),
            Find::Range {
                lastkey,
                step: s,
                limit,
            },
        ) = (spec.begin, spec.find)
        else {
            movable = true;
            continue;
        };
        if limit > 1 {
            movable = true;
            continue;
        }
        let index = index as i64;
        let this_last = if lastkey >= 0 {
            index + lastkey as i64
        } else {
            lastkey as i64
        };
        if first == 0 {
            first = index;
            last = this_last;
            step = s as i64;
        } else if last >= 0 && last + 1 == index && (step == s as i64 || last == first) && this_last >= 0 {
            if last == first {
                step = s as i64;
            }
            last = this_last;
        } else if last >= 0 && this_last < 0 && last + step == index {
            last = this_last;
        } else {
            movable = true;
        }
    }
    (first, last, step, movable)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn args(v: &[&str]) -> Args {
        Args::new(v.iter().map(|s| Bytes::copy_from_slice(s.as_bytes())).collect())
    }

    fn keys(specs: &[KeySpec], a: &[&str]) -> Result<Vec<usize>, KeysError> {
        let mut out = vec![];
        key_positions(specs, &args(a), &mut out).map(|_| out)
    }

    #[test]
    fn ranges() {
        assert_eq!(keys(&[KeySpec::one(1, &[])], &["get", "k"]).unwrap(), vec![1]);
        assert_eq!(
            keys(&[KeySpec::rest(1, 1, &[])], &["mget", "a", "b", "c"]).unwrap(),
            vec![1, 2, 3]
        );
        assert_eq!(
            keys(&[KeySpec::rest(1, 2, &[])], &["mset", "a", "1", "b", "2"]).unwrap(),
            vec![1, 3]
        );
        let rename = [KeySpec::one(1, &[]), KeySpec::one(2, &[])];
        assert_eq!(keys(&rename, &["rename", "a", "b"]).unwrap(), vec![1, 2]);
        assert_eq!(legacy_range(&rename), (1, 2, 1, false));
        assert_eq!(legacy_range(&[KeySpec::rest(1, 2, &[])]), (1, -1, 2, false));
        assert_eq!(legacy_range(&[KeySpec::one(1, &[])]), (1, 1, 1, false));
    }

    #[test]
    fn keynum() {
        let spec = [KeySpec {
            flags: &[],
            begin: Begin::Index(2),
            find: Find::Keynum {
                keynumidx: 0,
                firstkey: 1,
                step: 1,
            },
            notes: "",
        }];
        assert_eq!(keys(&spec, &["eval", "s", "2", "a", "b", "x"]).unwrap(), vec![3, 4]);
        assert_eq!(keys(&spec, &["eval", "s", "3", "a"]), Err(KeysError::BadNumkeys));
        assert_eq!(keys(&spec, &["eval", "s", "x"]), Err(KeysError::BadNumkeys));
        assert!(legacy_range(&spec).3);
    }

    #[test]
    fn keyword_search() {
        let spec = [KeySpec {
            flags: &[],
            begin: Begin::Keyword {
                keyword: "STREAMS",
                startfrom: 1,
            },
            find: Find::Range {
                lastkey: -1,
                step: 1,
                limit: 2,
            },
            notes: "",
        }];
        assert_eq!(
            keys(&spec, &["xread", "count", "1", "streams", "a", "b", "0", "0"]).unwrap(),
            vec![4, 5]
        );
    }
}
