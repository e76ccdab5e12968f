//! The benchmark tests: what each one sends, and the set-up some of them need.
//!
//! Keys follow redis-benchmark so the two tools load a server the same way: random parts are
//! 12-digit zero-padded numbers below `--keyspace` (`key:000000012345`), lists, sets, hashes
//! and sorted sets are single keys (`mylist`, `myset`, `myhash`, `myzset`).

use crate::client::Conn;
use crate::resp::{self, Value};

/// The Lua script `evalsha` runs: one SET through `redis.call`.
pub const EVAL_SCRIPT: &str = "return redis.call('SET', KEYS[1], ARGV[1])";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Test {
    Ping,
    Set,
    Get,
    Incr,
    Mset,
    Mget,
    Lpush,
    Rpush,
    Lpop,
    Rpop,
    Sadd,
    Hset,
    Spop,
    Zadd,
    Zpopmin,
    Lrange(u32),
    Publish,
    Evalsha,
}

pub const ALL_TESTS: &str =
    "ping,set,get,incr,mset,mget,lpush,rpush,lpop,rpop,sadd,hset,spop,zadd,zpopmin,lrange_100,lrange_300,lrange_500,lrange_600,publish,evalsha";

impl Test {
    pub fn parse(s: &str) -> Result<Test, String> {
        let s = s.trim().to_ascii_lowercase();
        Ok(match s.as_str() {
            "ping" | "ping_mbulk" => Test::Ping,
            "set" => Test::Set,
            "get" => Test::Get,
            "incr" => Test::Incr,
            "mset" => Test::Mset,
            "mget" => Test::Mget,
            "lpush" => Test::Lpush,
            "rpush" => Test::Rpush,
            "lpop" => Test::Lpop,
            "rpop" => Test::Rpop,
            "sadd" => Test::Sadd,
            "hset" => Test::Hset,
            "spop" => Test::Spop,
            "zadd" => Test::Zadd,
            "zpopmin" => Test::Zpopmin,
            "lrange" => Test::Lrange(100),
            "publish" => Test::Publish,
            "evalsha" => Test::Evalsha,
            other => match other.strip_prefix("lrange_").map(str::parse::<u32>) {
                Some(Ok(n)) if n > 0 => Test::Lrange(n),
                _ => return Err(format!("unknown test {other:?} (known: {ALL_TESTS})")),
            },
        })
    }

    pub fn parse_list(s: &str) -> Result<Vec<Test>, String> {
        s.split(',').filter(|t| !t.trim().is_empty()).map(Test::parse).collect()
    }

    pub fn name(&self) -> String {
        match self {
            Test::Lrange(n) => format!("LRANGE_{n}"),
            other => format!("{other:?}").to_ascii_uppercase(),
        }
    }
}

/// xorshift64*: fast, and good enough to pick keys.
#[derive(Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        // splitmix64 of the seed, so small consecutive seeds give unrelated streams.
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Rng((z ^ (z >> 31)) | 1)
    }

    #[inline]
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    #[inline]
    pub fn below(&mut self, n: u64) -> u64 {
        if n <= 1 {
            0
        } else {
            ((self.next() >> 32) * n) >> 32
        }
    }

    /// A uniform float in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Writes `prefix` + the 12-digit zero-padded `n` into `out`, returning the used slice.
#[inline]
fn padded<'a>(out: &'a mut [u8; 40], prefix: &[u8], mut n: u64) -> &'a [u8] {
    let p = prefix.len();
    out[..p].copy_from_slice(prefix);
    for i in (0..12).rev() {
        out[p + i] = b'0' + (n % 10) as u8;
        n /= 10;
    }
    &out[..p + 12]
}

/// Generates one test's commands.
pub struct Gen {
    test: Test,
    value: Vec<u8>,
    keyspace: u64,
    sha: Vec<u8>,
    lrange_stop: Vec<u8>,
    pub rng: Rng,
}

impl Gen {
    pub fn new(test: Test, data_size: usize, keyspace: u64, sha: &str, seed: u64) -> Gen {
        let stop = match test {
            Test::Lrange(n) => (n - 1).to_string().into_bytes(),
            _ => Vec::new(),
        };
        Gen {
            test,
            value: vec![b'x'; data_size],
            keyspace,
            sha: sha.as_bytes().to_vec(),
            lrange_stop: stop,
            rng: Rng::new(seed),
        }
    }

    /// Appends one command of this test to `buf`.
    #[inline]
    pub fn push(&mut self, buf: &mut Vec<u8>) {
        let mut a = [0u8; 40];
        let Gen {
            test,
            value,
            keyspace,
            sha,
            lrange_stop,
            rng,
        } = self;
        let ks = *keyspace;
        let v = &value[..];
        match *test {
            Test::Ping => resp::push_cmd(buf, &[b"PING"]),
            Test::Set => {
                let r = rng.below(ks);
                resp::push_cmd(buf, &[b"SET", padded(&mut a, b"key:", r), v])
            }
            Test::Get => {
                let r = rng.below(ks);
                resp::push_cmd(buf, &[b"GET", padded(&mut a, b"key:", r)])
            }
            Test::Incr => {
                let r = rng.below(ks);
                resp::push_cmd(buf, &[b"INCR", padded(&mut a, b"counter:", r)])
            }
            Test::Mset | Test::Mget => {
                let mset = *test == Test::Mset;
                resp::push_header(buf, b'*', if mset { 21 } else { 11 });
                resp::push_header(buf, b'$', 4);
                buf.extend_from_slice(if mset { b"MSET\r\n" } else { b"MGET\r\n" });
                for _ in 0..10 {
                    let r = rng.below(ks);
                    let k = padded(&mut a, b"key:", r);
                    resp::push_header(buf, b'$', k.len());
                    buf.extend_from_slice(k);
                    buf.extend_from_slice(b"\r\n");
                    if mset {
                        resp::push_header(buf, b'$', v.len());
                        buf.extend_from_slice(v);
                        buf.extend_from_slice(b"\r\n");
                    }
                }
            }
            Test::Lpush => resp::push_cmd(buf, &[b"LPUSH", b"mylist", v]),
            Test::Rpush => resp::push_cmd(buf, &[b"RPUSH", b"mylist", v]),
            Test::Lpop => resp::push_cmd(buf, &[b"LPOP", b"mylist"]),
            Test::Rpop => resp::push_cmd(buf, &[b"RPOP", b"mylist"]),
            Test::Sadd => {
                let r = rng.below(ks);
                resp::push_cmd(buf, &[b"SADD", b"myset", padded(&mut a, b"element:", r)])
            }
            Test::Hset => {
                let r = rng.below(ks);
                resp::push_cmd(buf, &[b"HSET", b"myhash", padded(&mut a, b"element:", r), v])
            }
            Test::Spop => resp::push_cmd(buf, &[b"SPOP", b"myset"]),
            Test::Zadd => {
                let score = rng.below(1000);
                let mut s = Vec::with_capacity(4);
                resp::push_uint(&mut s, score);
                let r = rng.below(ks);
                resp::push_cmd(buf, &[b"ZADD", b"myzset", &s, padded(&mut a, b"element:", r)])
            }
            Test::Zpopmin => resp::push_cmd(buf, &[b"ZPOPMIN", b"myzset"]),
            Test::Lrange(_) => resp::push_cmd(buf, &[b"LRANGE", b"mylist", b"0", &lrange_stop[..]]),
            Test::Publish => resp::push_cmd(buf, &[b"PUBLISH", b"channel", v]),
            Test::Evalsha => {
                let r = rng.below(ks);
                resp::push_cmd(buf, &[b"EVALSHA", &sha[..], b"1", padded(&mut a, b"key:", r), v])
            }
        }
    }
}

/// Prepares the server for `test` (untimed). Returns the script SHA for `evalsha`.
pub fn setup(test: Test, conn: &mut Conn, data_size: usize) -> Result<String, String> {
    match test {
        Test::Evalsha => match conn.cmd(&[b"SCRIPT", b"LOAD", EVAL_SCRIPT.as_bytes()])? {
            Value::Bulk(sha) => Ok(String::from_utf8_lossy(&sha).into_owned()),
            other => Err(format!("SCRIPT LOAD: unexpected reply {}", other.describe())),
        },
        // Like redis-benchmark's "LPUSH (needed to benchmark LRANGE)": make the list long
        // enough that every LRANGE returns the full range.
        Test::Lrange(n) => {
            let have = match conn.cmd(&[b"LLEN", b"mylist"])? {
                Value::Int(n) => n.max(0) as u64,
                other => return Err(format!("LLEN mylist: unexpected reply {}", other.describe())),
            };
            let value = vec![b'x'; data_size];
            let mut missing = (n as u64).saturating_sub(have);
            while missing > 0 {
                let k = missing.min(100) as usize;
                let mut args: Vec<&[u8]> = vec![b"LPUSH", b"mylist"];
                args.extend(std::iter::repeat_n(&value[..], k));
                if let Value::Error(e) = conn.cmd(&args)? {
                    return Err(format!("LPUSH mylist: {e}"));
                }
                missing -= k as u64;
            }
            Ok(String::new())
        }
        _ => Ok(String::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_test_names() {
        assert_eq!(Test::parse("LRANGE_100").unwrap(), Test::Lrange(100));
        assert_eq!(Test::Lrange(600).name(), "LRANGE_600");
        assert_eq!(Test::parse("zpopmin").unwrap().name(), "ZPOPMIN");
        assert!(Test::parse("nope").is_err());
        assert_eq!(Test::parse_list(ALL_TESTS).unwrap().len(), 21);
    }

    #[test]
    fn generates_valid_resp() {
        for t in Test::parse_list(ALL_TESTS).unwrap() {
            let mut g = Gen::new(t, 3, 100_000, "abc", 1);
            let mut buf = Vec::new();
            g.push(&mut buf);
            g.push(&mut buf);
            let (first, _) = crate::resp::parse_value(&buf).unwrap().unwrap();
            let crate::resp::Value::Array(args) = first else {
                panic!("{t:?}")
            };
            assert!(!args.is_empty());
        }
        let mut g = Gen::new(Test::Mset, 3, 100, "", 1);
        let mut buf = Vec::new();
        g.push(&mut buf);
        let (v, n) = crate::resp::parse_value(&buf).unwrap().unwrap();
        assert_eq!(n, buf.len());
        let crate::resp::Value::Array(args) = v else { panic!() };
        assert_eq!(args.len(), 21);
        assert_eq!(args[1].as_bytes().unwrap().len(), 16);
    }
}
