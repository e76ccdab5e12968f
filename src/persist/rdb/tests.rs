use super::*;
use crate::store::hash::Hash;
use crate::store::list::List;
use crate::store::set::Set;
use crate::store::value::Str;
use crate::store::zset::{AddFlags, ZSet};

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn s(b: &[u8]) -> Value {
    Value::Str(Str::from_set(b))
}

fn list(items: &[&[u8]]) -> Value {
    Value::List(List::from_items(items.iter().copied(), -2))
}

fn hash(pairs: &[(&[u8], &[u8])], lim: &EncodingLimits) -> Value {
    let mut h = Hash::new();
    for (f, v) in pairs {
        h.set(f, v, lim);
    }
    Value::Hash(h)
}

fn set(members: &[&[u8]], lim: &EncodingLimits) -> Value {
    let mut st = Set::create(members[0], members.len(), lim);
    for m in members {
        st.add(m, lim);
    }
    Value::Set(st)
}

fn zset(items: &[(&[u8], f64)], lim: &EncodingLimits) -> Value {
    let mut z = ZSet::new();
    for (m, sc) in items {
        z.add(m, *sc, AddFlags::default(), lim);
    }
    Value::ZSet(z)
}

/// DUMP payloads produced by redis-server 7.0.15 (rdbcompression yes).
#[test]
fn payloads_match_redis_7_0() {
    let lim = EncodingLimits::default();
    let long = b"abcabcabc".repeat(10);
    let small_z = EncodingLimits {
        zset_max_listpack_entries: 1,
        ..lim
    };
    let cases: Vec<(Value, &str)> = vec![
        (s(b"hello"), "000568656c6c6f0a006372df766534200a"),
        (s(b"12345"), "00c139300a009d94ea2793fc08b9"),
        (s(b"9999999999"), "000a393939393939393939390a00d26ac299df53efd2"),
        (s(&long), "00c30b405a0361626361e04b020162630a00238036f9e2d0c780"),
        (
            list(&[b"a", b"b", b"1", b"2", b"300", b"-5000"]),
            "1201021818000000060081610281620201010201c12c02f178ec03ff0a00f1d302ad23d56a76",
        ),
        (
            hash(&[(b"f1", b"v1"), (b"f2", b"22")], &lim),
            "10151500000004008266310382763103826632031601ff0a00794ee62e9c48a90c",
        ),
        (
            set(&[b"1", b"2", b"3", b"-70000"], &lim),
            "0b18040000000400000090eefeff0100000002000000030000000a00a8b63c622cbf2c9c",
        ),
        (
            zset(&[(b"a", 1.0), (b"b", 2.5), (b"c", -3.0)], &lim),
            "111a1a0000000600816302dffd02816102010181620283322e3504ff0a00a68a1ab1a9f2dcc2",
        ),
        (
            zset(&[(b"a", 1.0), (b"b", 2.0)], &small_z),
            "0502016200000000000000400161000000000000f03f0a007b299e12ce9408d4",
        ),
    ];
    for (v, want) in cases {
        let want = hex(want);
        assert_eq!(dump_payload(&v, true), want, "{v:?}");
        assert!(verify_payload(&want));
        let lim_for = if v.encoding() == "skiplist" { small_z } else { lim };
        assert_eq!(restore_payload(&want, &lim_for).unwrap(), v);
    }
}

fn round_trip(v: &Value, lim: &EncodingLimits) {
    for compress in [false, true] {
        let p = dump_payload(v, compress);
        assert!(verify_payload(&p));
        let back = restore_payload(&p, lim).unwrap_or_else(|e| panic!("{e} in {v:?}"));
        assert_eq!(&back, v);
        assert_eq!(back.encoding(), v.encoding());
    }
}

#[test]
fn every_type_and_encoding_round_trips() {
    let lim = EncodingLimits::default();
    let nums: Vec<Vec<u8>> = [
        0i64,
        1,
        127,
        128,
        -1,
        4095,
        -4096,
        4096,
        32767,
        -32768,
        8388607,
        -8388608,
        8388608,
        i32::MAX as i64,
        i32::MIN as i64,
        i64::MAX,
        i64::MIN,
    ]
    .iter()
    .map(|n| n.to_string().into_bytes())
    .collect();
    let long = vec![b'x'; 5000];
    let mut strs: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"a".to_vec(),
        vec![b'y'; 63],
        vec![b'y'; 64],
        vec![b'z'; 4095],
        long.clone(),
    ];
    strs.extend(nums.iter().cloned());
    strs.push(b"007".to_vec());
    strs.push(b"-0".to_vec());
    for x in &strs {
        round_trip(&s(x), &lim);
    }
    let refs: Vec<&[u8]> = strs.iter().map(Vec::as_slice).collect();
    round_trip(&list(&refs), &lim);
    let many: Vec<Vec<u8>> = (0..5000).map(|i| format!("element-{i}").into_bytes()).collect();
    let many_refs: Vec<&[u8]> = many.iter().map(Vec::as_slice).collect();
    let big_list = list(&many_refs);
    assert_eq!(big_list.encoding(), "quicklist");
    round_trip(&big_list, &lim);
    // Hashes: listpack and hashtable.
    let pairs: Vec<(&[u8], &[u8])> = refs.iter().zip(refs.iter().rev()).map(|(a, b)| (*a, *b)).collect();
    let mut seen = std::collections::HashSet::new();
    let pairs: Vec<_> = pairs.into_iter().filter(|(f, _)| seen.insert(f.to_vec())).collect();
    let small: Vec<_> = pairs
        .iter()
        .filter(|(f, v)| f.len() <= 64 && v.len() <= 64)
        .copied()
        .collect();
    let h = hash(&small, &lim);
    assert_eq!(h.encoding(), "listpack");
    round_trip(&h, &lim);
    let h = hash(&pairs, &lim);
    assert_eq!(h.encoding(), "hashtable");
    round_trip(&h, &lim);
    // Sets: intset (each width), listpack (written as a plain set), hashtable.
    for ints in [&nums[..4], &nums[..10], &nums[..]] {
        let m: Vec<&[u8]> = ints.iter().map(Vec::as_slice).collect();
        let st = set(&m, &lim);
        assert_eq!(st.encoding(), "intset");
        round_trip(&st, &lim);
    }
    let st = set(&[b"a", b"b", b"7"], &lim);
    assert_eq!(st.encoding(), "listpack");
    round_trip(&st, &lim);
    let st = set(&many_refs, &lim);
    assert_eq!(st.encoding(), "hashtable");
    round_trip(&st, &lim);
    // Sorted sets: listpack and skiplist, odd scores included.
    let scores = [
        0.0,
        -0.0,
        1.5,
        0.1,
        1e300,
        -1e-300,
        f64::INFINITY,
        f64::NEG_INFINITY,
        3.0,
        12345678.0,
    ];
    let items: Vec<(&[u8], f64)> = refs.iter().zip(scores.iter().cycle()).map(|(m, s)| (*m, *s)).collect();
    let mut seen = std::collections::HashSet::new();
    let items: Vec<_> = items.into_iter().filter(|(m, _)| seen.insert(m.to_vec())).collect();
    let small: Vec<_> = items.iter().filter(|(m, _)| m.len() <= 64).copied().collect();
    let z = zset(&small, &lim);
    assert_eq!(z.encoding(), "listpack");
    round_trip(&z, &lim);
    let z = zset(&items, &lim);
    assert_eq!(z.encoding(), "skiplist");
    round_trip(&z, &lim);
}

#[test]
fn bad_payloads_are_refused() {
    let lim = EncodingLimits::default();
    let mut p = dump_payload(&s(b"hello"), true);
    assert!(verify_payload(&p));
    let n = p.len();
    p[n - 1] ^= 1;
    assert!(!verify_payload(&p));
    assert!(!verify_payload(b"short"));
    // A newer version than we read.
    let mut p = vec![0, 1, b'a', 12, 0];
    let crc = crc64::crc64(0, &p);
    p.extend_from_slice(&crc.to_le_bytes());
    assert!(!verify_payload(&p));
    // Valid framing, broken bodies: truncated, stream, trailing bytes, empty list.
    for body in [&[0u8, 5, b'a'][..], &[15, 0], &[18, 0]] {
        let mut p = body.to_vec();
        p.extend_from_slice(&10u16.to_le_bytes());
        let crc = crc64::crc64(0, &p);
        p.extend_from_slice(&crc.to_le_bytes());
        assert!(verify_payload(&p));
        assert!(restore_payload(&p, &lim).is_err(), "{body:?}");
    }
    let e = {
        let mut p = vec![15u8, 0];
        p.extend_from_slice(&10u16.to_le_bytes());
        let crc = crc64::crc64(0, &p);
        p.extend_from_slice(&crc.to_le_bytes());
        restore_payload(&p, &lim).unwrap_err()
    };
    assert!(e.msg.contains("stream"), "{e}");
}

#[test]
fn old_encodings_are_read() {
    let lim = EncodingLimits::default();
    // A ziplist of "a", 5 and "bc" (prevlen, encoding, data), as Redis <= 6.2 wrote.
    let entries: Vec<u8> = vec![0x00, 0x01, b'a', 0x03, 0xF6, 0x02, 0x02, b'b', b'c'];
    let mut zl = Vec::new();
    zl.extend_from_slice(&((10 + entries.len() + 1) as u32).to_le_bytes());
    zl.extend_from_slice(&15u32.to_le_bytes());
    zl.extend_from_slice(&3u16.to_le_bytes());
    zl.extend_from_slice(&entries);
    zl.push(0xFF);
    assert_eq!(
        read::ziplist(&zl, 0).unwrap(),
        vec![b"a".to_vec(), b"5".to_vec(), b"bc".to_vec()]
    );
    let mut body = vec![TYPE_LIST_ZIPLIST];
    write::string(&mut body, &zl, false);
    let mut inp = read::Input::new(&body[1..]);
    let v = read::value(&mut inp, TYPE_LIST_ZIPLIST, &lim).unwrap().unwrap();
    assert_eq!(v, list(&[b"a", b"5", b"bc"]));
    // A zipmap {f: vv}.
    let zm = [1u8, 1, b'f', 2, 0, b'v', b'v', 0xFF];
    let mut body = Vec::new();
    write::string(&mut body, &zm, false);
    let mut inp = read::Input::new(&body);
    let v = read::value(&mut inp, TYPE_HASH_ZIPMAP, &lim).unwrap().unwrap();
    assert_eq!(v, hash(&[(b"f", b"vv")], &lim));
    // RDB_TYPE_ZSET: scores as strings.
    let body = [1u8, 1, b'm', 3, b'1', b'.', b'5'];
    let mut inp = read::Input::new(&body);
    let v = read::value(&mut inp, TYPE_ZSET, &lim).unwrap().unwrap();
    assert_eq!(v, zset(&[(b"m", 1.5)], &lim));
    // Redis 7.2's listpack set.
    let mut lp = write::Listpack::new();
    lp.push(b"a");
    lp.push(b"12");
    let mut body = Vec::new();
    write::string(&mut body, &lp.finish(), false);
    let mut inp = read::Input::new(&body);
    let v = read::value(&mut inp, TYPE_SET_LISTPACK, &lim).unwrap().unwrap();
    assert_eq!(v, set(&[b"a", b"12"], &lim));
}

#[test]
fn files_round_trip() {
    let lim = EncodingLimits::default();
    let mut out = Vec::new();
    write::header(&mut out, &[("redis-ver", b"7.0.15"), ("redis-bits", b"64")]);
    write::function(
        &mut out,
        b"#!lua name=lib\nredis.register_function('f', function() return 1 end)",
        true,
    );
    write::select_db(&mut out, 0, 2, 1);
    write::key(&mut out, b"a", &s(b"1"), None, true);
    write::key(&mut out, b"b", &list(&[b"x"]), Some(1_900_000_000_000), true);
    write::select_db(&mut out, 3, 1, 0);
    write::key(&mut out, b"c", &s(&[b'q'; 100]), None, true);
    let crc = crc64::crc64(0, &out);
    write::eof(&mut out, crc);
    assert!(out.starts_with(b"REDIS0010"));
    let mut r = read::FileReader::new(&out).unwrap();
    let mut keys = Vec::new();
    let mut aux = 0;
    let mut funcs = 0;
    loop {
        match r.next(&lim).unwrap() {
            read::Item::Aux(..) => aux += 1,
            read::Item::Function(_) => funcs += 1,
            read::Item::Resize(..) => {}
            read::Item::Key(k) => keys.push((k.db, k.key, k.expire_ms)),
            read::Item::Eof => break,
        }
    }
    assert_eq!(r.inp.pos, out.len());
    assert_eq!((aux, funcs), (2, 1));
    assert_eq!(
        keys,
        vec![
            (0, b"a".to_vec(), None),
            (0, b"b".to_vec(), Some(1_900_000_000_000)),
            (3, b"c".to_vec(), None)
        ]
    );
    // A flipped byte anywhere is caught: by the parser or by the checksum.
    for i in 9..out.len() {
        let mut bad = out.clone();
        bad[i] ^= 0x20;
        let mut r = read::FileReader::new(&bad).unwrap();
        let mut res = Ok(());
        loop {
            match r.next(&lim) {
                Ok(read::Item::Eof) => break,
                Ok(_) => {}
                Err(e) => {
                    res = Err(e);
                    break;
                }
            }
        }
        assert!(res.is_err(), "flip at {i} went unnoticed");
    }
}

/// Compares DUMP payloads with a file of `value-hex payload-hex` lines captured from
/// redis-server (`RDB_DUMP_CASES=path cargo test --lib rdb::tests::dump_cases -- --ignored`).
#[test]
#[ignore]
fn dump_cases() {
    let Ok(path) = std::env::var("RDB_DUMP_CASES") else {
        return;
    };
    let text = std::fs::read_to_string(path).unwrap();
    let mut bad = 0;
    for (i, line) in text.lines().enumerate() {
        let (v, p) = line.split_once(' ').unwrap();
        let ours = dump_payload(&s(&hex(v)), true);
        if ours != hex(p) {
            bad += 1;
            eprintln!("case {i}: len {} differs", v.len() / 2);
            let h: String = ours.iter().map(|b| format!("{b:02x}")).collect();
            let _ = std::fs::write(format!("/tmp/ours{i}.hex"), h);
        }
    }
    assert_eq!(bad, 0);
}
