#!/usr/bin/env python3
"""Random differential testing: the same random command stream against redis-server (the
oracle) and basalt, replies compared after parsing (unordered replies sorted). Complements
tests/diff (hand-written cases) by trying argument combinations nobody wrote down.

Usage: scripts/diff-fuzz.py [--commands N] [--seed S] [--shards K] [--basalt PATH]
       [--keep-going] [--check-encodings] [--resp3] [--small-encodings] [--check-dumps] [--lfu] [--events]

Starts both servers itself on free loopback ports (basalt with --shards 4 by default, so
multi-key commands cross shards), runs N commands (default 20000) from one connection to
each, drawn over a small keyspace so types collide and collections grow and shrink, and stops
at the first mismatch (or reports them all with --keep-going), printing the seed and the
commands that led to it so the run can be replayed. Exit status 1 on any mismatch.

Only deterministic commands are drawn: SPOP/SRANDMEMBER/HRANDFIELD/ZRANDMEMBER only with a
count that takes the whole collection, no RANDOMKEY, expiries only as absolute times (a
relative TTL read back would differ by the time between the servers), SCAN and its
collection forms only as whole iterations compared as sets, blocking commands with a 10 ms
timeout. Replies of commands whose order Redis leaves to its hash tables (SMEMBERS, SINTER,
... once a set is a hash table) are compared sorted; DUMP payloads are compared when both
servers hold the key in one encoding with a fixed byte order, and redis-server's payloads
are RESTOREd into both. MULTI ... EXEC blocks of random commands are compared reply by
reply, and random commands are also run from EVAL (redis.pcall, keys not declared).
Differences that are Redis 7.2 behaviour (the oracle is 7.0) are accepted: see
known_difference.
"""

import argparse
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def encode(args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        b = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(out)


class Conn:
    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port))
        self.s.settimeout(10)
        self.buf = b""

    def _line(self):
        while b"\r\n" not in self.buf:
            chunk = self.s.recv(65536)
            if not chunk:
                raise ConnectionError("server closed the connection")
            self.buf += chunk
        i = self.buf.index(b"\r\n")
        line, self.buf = self.buf[:i], self.buf[i + 2:]
        return line

    def _exact(self, n):
        while len(self.buf) < n + 2:
            chunk = self.s.recv(65536)
            if not chunk:
                raise ConnectionError("server closed the connection")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def read(self):
        line = self._line()
        t, rest = line[:1], line[1:]
        if t == b"+":
            return ("ok", rest)
        if t == b"-":
            return ("err", rest)
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            return None if n < 0 else self._exact(n)
        if t == b"*":
            n = int(rest)
            return None if n < 0 else [self.read() for _ in range(n)]
        # RESP3 (--resp3): each type tagged, so a map and an array of pairs differ
        if t == b"_":
            return ("null",)
        if t in (b",", b"#", b"("):
            return (t.decode(), rest)
        if t in (b"=", b"!"):
            return (t.decode(), self._exact(int(rest)))
        if t in (b"%", b"~", b">"):
            n = int(rest) * (2 if t == b"%" else 1)
            return (t.decode(), [self.read() for _ in range(n)])
        raise ValueError("unexpected reply line %r" % line)

    def cmd(self, args):
        self.s.sendall(encode(args))
        return self.read()


KEYS = [b"a", b"b", b"c", b"d", b"e", b"{t}1", b"{t}2"]
MEMBERS = [b"m%d" % i for i in range(8)] + [b"1", b"2", b"10", b"-3", b"007", b""]
SCORES = ["0", "1", "-1", "2.5", "1e3", "-inf", "+inf", "3", "nan", "x"]
INTS = ["0", "1", "-1", "2", "5", "-5", "100", "9223372036854775807", "x", "1.5"]
RANGES = ["0", "1", "-1", "2", "-2", "5", "-100", "100"]


def pick(r, xs):
    return r.choice(xs)


def members(r, lo=1, hi=4):
    return [pick(r, MEMBERS) for _ in range(r.randint(lo, hi))]


def score_bound(r):
    s = pick(r, ["0", "1", "2.5", "-inf", "+inf", "3", "1e3"])
    return ("(" + s) if r.random() < 0.3 and s not in ("-inf", "+inf") else s


def lex_bound(r):
    return pick(r, ["-", "+", "[m1", "(m3", "[1", "(m", "[", "x"])


# (generator, unordered): unordered replies are compared sorted.
def generators():
    g = []

    def add(unordered=False):
        def deco(f):
            g.append((f, unordered))
            return f
        return deco

    # strings
    add()(lambda r: ["SET", pick(r, KEYS), pick(r, INTS + ["v", "hello"])] + pick(r, [[], ["NX"], ["XX"], ["GET"], ["KEEPTTL"], ["XX", "GET"]]))
    add()(lambda r: ["GET", pick(r, KEYS)])
    add()(lambda r: ["APPEND", pick(r, KEYS), pick(r, ["x", "12", ""])])
    add()(lambda r: [pick(r, ["INCR", "DECR"]), pick(r, KEYS)])
    add()(lambda r: [pick(r, ["INCRBY", "DECRBY"]), pick(r, KEYS), pick(r, INTS)])
    add()(lambda r: ["INCRBYFLOAT", pick(r, KEYS), pick(r, ["1.5", "-2", "1e2", "x", "inf"])])
    add()(lambda r: ["GETRANGE", pick(r, KEYS), pick(r, RANGES), pick(r, RANGES)])
    add()(lambda r: ["SETRANGE", pick(r, KEYS), pick(r, ["0", "3", "-1"]), pick(r, ["ab", ""])])
    add()(lambda r: ["STRLEN", pick(r, KEYS)])
    add()(lambda r: ["MGET"] + [pick(r, KEYS) for _ in range(r.randint(1, 4))])
    add()(lambda r: ["MSET"] + sum([[pick(r, KEYS), pick(r, INTS)] for _ in range(r.randint(1, 3))], []))
    add()(lambda r: ["MSETNX"] + sum([[pick(r, KEYS), pick(r, INTS)] for _ in range(r.randint(1, 3))], []))
    add()(lambda r: [pick(r, ["GETDEL", "TYPE", "EXISTS"]), pick(r, KEYS)])
    add()(lambda r: ["DEL"] + [pick(r, KEYS) for _ in range(r.randint(1, 3))])
    add()(lambda r: ["COPY", pick(r, KEYS), pick(r, KEYS)] + pick(r, [[], ["REPLACE"]]))
    add()(lambda r: ["RENAME", pick(r, KEYS), pick(r, KEYS)])
    add()(lambda r: ["RENAMENX", pick(r, KEYS), pick(r, KEYS)])
    add()(lambda r: ["OBJECT", "ENCODING", pick(r, KEYS)])
    # bitmaps
    bit_range = lambda r: pick(r, [[], ["0"], ["1", "-1"], ["-2", "-1"], ["0", "0", "BIT"], ["3", "20", "BIT"], ["1", "2", "BYTE"], ["x", "1"], ["2", "1", "FOO"]])
    add()(lambda r: ["SETBIT", pick(r, KEYS), pick(r, ["0", "7", "9", "31", "100", "-1", "x"]), pick(r, ["0", "1", "2"])])
    add()(lambda r: ["GETBIT", pick(r, KEYS), pick(r, ["0", "7", "9", "31", "100", "-1"])])
    add()(lambda r: ["BITCOUNT", pick(r, KEYS)] + bit_range(r))
    add()(lambda r: ["BITPOS", pick(r, KEYS), pick(r, ["0", "1", "2"])] + bit_range(r))
    # BITFIELD: every type width, #N offsets, overflow modes, fields past the string's end
    bf_type = lambda r: pick(r, ["i1", "i5", "i8", "i16", "i63", "i64", "u1", "u7", "u8", "u32", "u63", "u64", "x8"])
    bf_off = lambda r: pick(r, ["0", "3", "8", "13", "40", "#0", "#1", "#2", "-1", "x"])
    bf_val = lambda r: pick(r, ["0", "1", "-1", "100", "-128", "255", "9223372036854775807", "-9223372036854775808", "x"])
    bf_op = lambda r: pick(r, [["GET", bf_type(r), bf_off(r)], ["SET", bf_type(r), bf_off(r), bf_val(r)],
                               ["INCRBY", bf_type(r), bf_off(r), bf_val(r)], ["OVERFLOW", pick(r, ["WRAP", "SAT", "FAIL", "x"])]])
    add()(lambda r: [pick(r, ["BITFIELD", "BITFIELD", "BITFIELD_RO"]), pick(r, KEYS)] + sum([bf_op(r) for _ in range(r.randint(0, 4))], []))
    add()(lambda r: ["BITOP", pick(r, ["AND", "OR", "XOR", "NOT", "FOO"]), pick(r, KEYS)] + [pick(r, KEYS) for _ in range(r.randint(1, 3))])
    # HyperLogLog: small adds, now and then enough to turn dense; counts and merges over
    # several keys (other types answer WRONGTYPE, plain strings the not-an-HLL error)
    pf_elems = lambda r: [b"e%d" % r.randrange(100000) for _ in range(r.randint(200, 2500))] if r.random() < 0.1 else members(r, 0, 6)
    add()(lambda r: ["PFADD", pick(r, KEYS)] + pf_elems(r))
    add()(lambda r: ["PFCOUNT"] + [pick(r, KEYS) for _ in range(r.randint(1, 3))])
    add()(lambda r: ["PFMERGE", pick(r, KEYS)] + [pick(r, KEYS) for _ in range(r.randint(0, 3))])
    add()(lambda r: ["PFDEBUG", "ENCODING", pick(r, KEYS)])
    # lists
    add()(lambda r: [pick(r, ["LPUSH", "RPUSH", "LPUSHX", "RPUSHX"]), pick(r, KEYS)] + members(r))
    add()(lambda r: [pick(r, ["LPOP", "RPOP"]), pick(r, KEYS)] + pick(r, [[], ["1"], ["3"], ["0"], ["-1"]]))
    add()(lambda r: ["LRANGE", pick(r, KEYS), pick(r, RANGES), pick(r, RANGES)])
    add()(lambda r: ["LINDEX", pick(r, KEYS), pick(r, RANGES)])
    add()(lambda r: ["LSET", pick(r, KEYS), pick(r, RANGES), pick(r, MEMBERS)])
    add()(lambda r: ["LINSERT", pick(r, KEYS), pick(r, ["BEFORE", "AFTER"]), pick(r, MEMBERS), pick(r, MEMBERS)])
    add()(lambda r: ["LREM", pick(r, KEYS), pick(r, ["0", "1", "-1", "2"]), pick(r, MEMBERS)])
    add()(lambda r: ["LTRIM", pick(r, KEYS), pick(r, RANGES), pick(r, RANGES)])
    add()(lambda r: ["LPOS", pick(r, KEYS), pick(r, MEMBERS)] + pick(r, [[], ["RANK", "-1"], ["COUNT", "0"], ["RANK", "2", "COUNT", "2"], ["MAXLEN", "2"]]))
    add()(lambda r: ["LMOVE", pick(r, KEYS), pick(r, KEYS), pick(r, ["LEFT", "RIGHT"]), pick(r, ["LEFT", "RIGHT"])])
    add()(lambda r: ["LMPOP", "2", pick(r, KEYS), pick(r, KEYS), pick(r, ["LEFT", "RIGHT"])] + pick(r, [[], ["COUNT", "2"]]))
    add()(lambda r: ["LLEN", pick(r, KEYS)])
    # hashes
    add()(lambda r: ["HSET", pick(r, KEYS)] + sum([[pick(r, MEMBERS), pick(r, INTS)] for _ in range(r.randint(1, 3))], []))
    add()(lambda r: ["HSETNX", pick(r, KEYS), pick(r, MEMBERS), pick(r, INTS)])
    add()(lambda r: ["HGET", pick(r, KEYS), pick(r, MEMBERS)])
    add()(lambda r: ["HMGET", pick(r, KEYS)] + members(r))
    add()(lambda r: ["HDEL", pick(r, KEYS)] + members(r))
    add()(lambda r: ["HLEN", pick(r, KEYS)])
    # A hash past the listpack limits is a hash table: Redis's order is its own.
    add(True)(lambda r: [pick(r, ["HKEYS", "HVALS"]), pick(r, KEYS)])
    add("pairs")(lambda r: ["HGETALL", pick(r, KEYS)])
    add()(lambda r: [pick(r, ["HEXISTS", "HSTRLEN"]), pick(r, KEYS), pick(r, MEMBERS)])
    add()(lambda r: ["HINCRBY", pick(r, KEYS), pick(r, MEMBERS), pick(r, INTS)])
    add()(lambda r: ["HINCRBYFLOAT", pick(r, KEYS), pick(r, MEMBERS), pick(r, ["1.5", "-2", "x", "1e400"])])
    # sets (orders follow Redis's encodings: intset sorted, listpack insertion, hashtable
    # unordered: sorted before comparing)
    add()(lambda r: [pick(r, ["SADD", "SREM"]), pick(r, KEYS)] + members(r))
    add()(lambda r: ["SCARD", pick(r, KEYS)])
    add()(lambda r: ["SISMEMBER", pick(r, KEYS), pick(r, MEMBERS)])
    add()(lambda r: ["SMISMEMBER", pick(r, KEYS)] + members(r))
    add(True)(lambda r: ["SMEMBERS", pick(r, KEYS)])
    add(True)(lambda r: [pick(r, ["SINTER", "SUNION", "SDIFF"])] + [pick(r, KEYS) for _ in range(r.randint(1, 3))])
    add()(lambda r: [pick(r, ["SINTERSTORE", "SUNIONSTORE", "SDIFFSTORE"]), pick(r, KEYS)] + [pick(r, KEYS) for _ in range(r.randint(1, 3))])
    add()(lambda r: ["SINTERCARD", "2", pick(r, KEYS), pick(r, KEYS)] + pick(r, [[], ["LIMIT", "1"], ["LIMIT", "0"]]))
    add()(lambda r: ["SMOVE", pick(r, KEYS), pick(r, KEYS), pick(r, MEMBERS)])
    # sorted sets
    add()(lambda r: ["ZADD", pick(r, KEYS)] + pick(r, [[], ["NX"], ["XX"], ["GT"], ["LT"], ["CH"], ["XX", "CH"], ["GT", "CH"], ["INCR"], ["NX", "GT"]])
          + sum([[pick(r, SCORES), pick(r, MEMBERS)] for _ in range(r.randint(1, 3))], []))
    add()(lambda r: ["ZINCRBY", pick(r, KEYS), pick(r, SCORES), pick(r, MEMBERS)])
    add()(lambda r: ["ZREM", pick(r, KEYS)] + members(r))
    add()(lambda r: ["ZCARD", pick(r, KEYS)])
    add()(lambda r: ["ZSCORE", pick(r, KEYS), pick(r, MEMBERS)])
    add()(lambda r: ["ZMSCORE", pick(r, KEYS)] + members(r))
    add()(lambda r: [pick(r, ["ZRANK", "ZREVRANK"]), pick(r, KEYS), pick(r, MEMBERS)])
    add()(lambda r: ["ZCOUNT", pick(r, KEYS), score_bound(r), score_bound(r)])
    add()(lambda r: ["ZLEXCOUNT", pick(r, KEYS), lex_bound(r), lex_bound(r)])
    add()(lambda r: ["ZRANGE", pick(r, KEYS), pick(r, RANGES), pick(r, RANGES)] + pick(r, [[], ["REV"], ["WITHSCORES"], ["REV", "WITHSCORES"]]))
    add()(lambda r: ["ZRANGE", pick(r, KEYS), score_bound(r), score_bound(r), "BYSCORE"] + pick(r, [[], ["REV"], ["WITHSCORES"], ["LIMIT", "1", "2"], ["REV", "LIMIT", "0", "-1"]]))
    add()(lambda r: ["ZRANGE", pick(r, KEYS), lex_bound(r), lex_bound(r), "BYLEX"] + pick(r, [[], ["REV"], ["LIMIT", "1", "2"]]))
    add()(lambda r: [pick(r, ["ZRANGEBYSCORE", "ZREVRANGEBYSCORE"]), pick(r, KEYS), score_bound(r), score_bound(r)] + pick(r, [[], ["WITHSCORES"], ["LIMIT", "0", "2"]]))
    add()(lambda r: [pick(r, ["ZRANGEBYLEX", "ZREVRANGEBYLEX"]), pick(r, KEYS), lex_bound(r), lex_bound(r)])
    add()(lambda r: ["ZREMRANGEBYRANK", pick(r, KEYS), pick(r, RANGES), pick(r, RANGES)])
    add()(lambda r: ["ZREMRANGEBYSCORE", pick(r, KEYS), score_bound(r), score_bound(r)])
    add()(lambda r: ["ZREMRANGEBYLEX", pick(r, KEYS), lex_bound(r), lex_bound(r)])
    add()(lambda r: [pick(r, ["ZPOPMIN", "ZPOPMAX"]), pick(r, KEYS)] + pick(r, [[], ["1"], ["2"], ["0"]]))
    add()(lambda r: ["ZMPOP", "2", pick(r, KEYS), pick(r, KEYS), pick(r, ["MIN", "MAX"])] + pick(r, [[], ["COUNT", "2"]]))
    add()(lambda r: [pick(r, ["ZUNIONSTORE", "ZINTERSTORE"]), pick(r, KEYS), "2", pick(r, KEYS), pick(r, KEYS)]
          + pick(r, [[], ["WEIGHTS", "2", "0.5"], ["AGGREGATE", "MAX"], ["AGGREGATE", "MIN"], ["WEIGHTS", "1", "-inf"]]))
    add()(lambda r: ["ZDIFFSTORE", pick(r, KEYS), "2", pick(r, KEYS), pick(r, KEYS)])
    add()(lambda r: [pick(r, ["ZUNION", "ZINTER", "ZDIFF"]), "2", pick(r, KEYS), pick(r, KEYS)] + pick(r, [[], ["WITHSCORES"]]))
    add()(lambda r: ["ZINTERCARD", "2", pick(r, KEYS), pick(r, KEYS)] + pick(r, [[], ["LIMIT", "1"]]))
    add()(lambda r: ["ZRANGESTORE", pick(r, KEYS), pick(r, KEYS), pick(r, RANGES), pick(r, RANGES)])
    # expiry, with absolute times only (a relative TTL read back would differ by the
    # milliseconds between the two servers): 2100-01-01, a bit later, and the past
    at = lambda r: pick(r, ["4102444800", "4102444900", "1"])
    add()(lambda r: [pick(r, ["EXPIREAT", "PEXPIREAT"]), pick(r, KEYS), at(r)] + pick(r, [[], ["NX"], ["XX"], ["GT"], ["LT"], ["NX", "XX"]]))
    add()(lambda r: [pick(r, ["EXPIRE", "PEXPIRE"]), pick(r, KEYS), pick(r, ["0", "-1", "x"])])
    add()(lambda r: [pick(r, ["EXPIRETIME", "PEXPIRETIME", "PERSIST"]), pick(r, KEYS)])
    add()(lambda r: ["SET", pick(r, KEYS), "v", pick(r, ["EXAT", "PXAT"]), at(r)] + pick(r, [[], ["NX"], ["XX"], ["GET"]]))
    add()(lambda r: ["GETEX", pick(r, KEYS)] + pick(r, [[], ["PERSIST"], ["EXAT", at(r)], ["PXAT", at(r)], ["EX", "0"]]))
    add()(lambda r: [pick(r, ["GETSET", "SETNX"]), pick(r, KEYS), pick(r, INTS)])
    # DUMP of one server restored into both: the reader of each takes the other's writer's
    # output (compared afterwards by every command that reads the key)
    add()(lambda r: ["DUMP", pick(r, KEYS)])
    add()(lambda r: ["RESTORE-FROM-REDIS", pick(r, KEYS), pick(r, KEYS)])
    # a transaction of a few commands (queued replies, EXEC's array, errors while queueing)
    add()(lambda r: ["MULTI-OF", r.randint(1, 3)])
    # WATCH from a second connection, a random command, then MULTI PING EXEC there: a
    # command that invalidates WATCH on redis-server must on basalt (see run_watch)
    add()(lambda r: ["WATCH-OF", pick(r, KEYS)])
    # a client blocked on a key (another connection) while a random command that names the
    # key runs: served by it or not, with what (see run_block)
    # a subscriber connection (un)subscribing, and PUBLISH/SPUBLISH/PUBSUB from the main
    # one: receiver counts, what the subscriber gets, subscription counts (see run_pubsub)
    for _ in range(3):
        add()(lambda r: ["PUBSUB-OF"])
    add(True)(lambda r: ["KEYS", pick(r, ["*", "{t}*", "?", "[a-c]", "*1", "x*"])])
    add()(lambda r: ["DBSIZE"])
    for _ in range(3):  # drawn more often: most draws find data and block nothing
        add()(lambda r: ["BLOCK-OF", pick(r, KEYS)])
    # a random command run by a script (keys not declared, as Redis allows): the RESP ->
    # Lua -> RESP conversions of every reply shape, errors as pcall tables
    add()(lambda r: ["EVAL-OF"])
    # a script returning a random Lua value: the Lua -> RESP conversions (RESP2 and, after
    # redis.setresp(3), RESP3), redis.* helpers, cjson, cmsgpack, bit, struct, the sandbox
    for _ in range(2):
        add()(lambda r: ["EVAL", lua_script(r), "0"])
    # SORT (numeric and ALPHA, LIMIT, STORE)
    add()(lambda r: ["SORT", pick(r, KEYS)] + pick(r, [[], ["ALPHA"], ["DESC", "ALPHA"], ["LIMIT", "0", "2", "ALPHA"], ["STORE", pick(r, KEYS)]]))
    # SORT with BY and GET patterns: members "1" and "2" name the keys {t}1 and {t}2 (on
    # other shards than most sources), others name missing keys. Numeric ties sort by the
    # element; ALPHA ties by a BY pattern keep the source's order (a set's is its hash
    # table's, and LIMIT's partial quicksort is not stable), so those compare unordered.
    by = lambda r: pick(r, [["BY", "{t}*"], ["BY", "{t}*->m1"], ["BY", "none*"]])
    get = lambda r: pick(r, [[], ["GET", "#"], ["GET", "{t}*", "GET", "#"], ["GET", "{t}*->m1"], ["GET", "{t}*->"]])
    add()(lambda r: [pick(r, ["SORT", "SORT_RO"]), pick(r, KEYS)] + pick(r, [[], by(r)]) + get(r)
          + pick(r, [[], ["DESC"], ["LIMIT", "1", "2"]]))
    add(True)(lambda r: [pick(r, ["SORT", "SORT_RO"]), pick(r, KEYS)] + by(r) + get(r)
              + pick(r, [["ALPHA"], ["LIMIT", "0", "100", "ALPHA"]]))
    # blocking commands: served at once when a key has data, else nil after 10 ms (and
    # never blocking inside MULTI or a script)
    add()(lambda r: [pick(r, ["BLPOP", "BRPOP", "BZPOPMIN", "BZPOPMAX"])] + [pick(r, KEYS) for _ in range(r.randint(1, 3))] + [pick(r, ["0.01", "-1", "x"])])
    add()(lambda r: ["BLMOVE", pick(r, KEYS), pick(r, KEYS), pick(r, ["LEFT", "RIGHT"]), pick(r, ["LEFT", "RIGHT"]), "0.01"])
    add()(lambda r: ["BRPOPLPUSH", pick(r, KEYS), pick(r, KEYS), "0.01"])
    add()(lambda r: ["BLMPOP", "0.01", "2", pick(r, KEYS), pick(r, KEYS), pick(r, ["LEFT", "RIGHT"])] + pick(r, [[], ["COUNT", "3"]]))
    add()(lambda r: ["BZMPOP", "0.01", "2", pick(r, KEYS), pick(r, KEYS), pick(r, ["MIN", "MAX"])] + pick(r, [[], ["COUNT", "3"]]))
    # random picks whose result is fixed: a count at least the collection's size
    add(True)(lambda r: [pick(r, ["SPOP", "SRANDMEMBER"]), pick(r, KEYS), "100"])
    add(True)(lambda r: [pick(r, ["HRANDFIELD", "ZRANDMEMBER"]), pick(r, KEYS), "100"])
    add("pairs")(lambda r: ["HRANDFIELD", pick(r, KEYS), "100", "WITHVALUES"])
    add("pairs")(lambda r: ["ZRANDMEMBER", pick(r, KEYS), "100", "WITHSCORES"])
    # whole SCAN iterations (see run_scan)
    add()(lambda r: ["SCAN-OF", pick(r, ["SCAN", "HSCAN", "SSCAN", "ZSCAN"]), pick(r, KEYS)]
          + pick(r, [[], ["MATCH", "*1"], ["MATCH", "m[0-3]"], ["MATCH", "{t}*"]])
          + pick(r, [[], ["COUNT", "1"], ["COUNT", "1000"]])
          + pick(r, [[]] * 3 + [["TYPE", "string"], ["TYPE", "zset"]]))
    # other databases: keys leave and come back
    add()(lambda r: ["MOVE", pick(r, KEYS), pick(r, ["1", "0", "x"])])
    add()(lambda r: ["SWAPDB", "0", "1"])
    add()(lambda r: ["COPY", pick(r, KEYS), pick(r, KEYS), "DB", "1"] + pick(r, [[], ["REPLACE"]]))
    add()(lambda r: [pick(r, ["TOUCH", "UNLINK", "EXISTS"])] + [pick(r, KEYS) for _ in range(r.randint(1, 3))])
    add()(lambda r: ["LCS", pick(r, KEYS), pick(r, KEYS)] + pick(r, [[], ["LEN"], ["IDX"], ["IDX", "MINMATCHLEN", "1", "WITHMATCHLEN"]]))
    # the command connection moves between databases (SELECT in MULTI lasts; in a script it
    # is the script's own)
    add()(lambda r: ["SELECT", pick(r, ["0", "1", "0", "1", "x", "16", "-1"])])
    # relative expiry only with values that fail or expire at once (a TTL that stays would
    # be read back differently), and absolute ones at the limits
    bad_ttl = ["0", "-1", "x", "1.5", "", "9223372036854775807", "-9223372036854775808", "9223372036854775807000"]
    # (a second EX replaces the first in Redis's parser: it gets a failing value too)
    add()(lambda r: ["SET", pick(r, KEYS), "v", pick(r, ["EX", "PX"]), pick(r, bad_ttl)] + pick(r, [[], ["NX"], ["KEEPTTL"], ["EX", pick(r, bad_ttl)], ["GET"]]))
    add()(lambda r: [pick(r, ["SETEX", "PSETEX"]), pick(r, KEYS), pick(r, bad_ttl), "v"])
    add()(lambda r: ["GETEX", pick(r, KEYS), pick(r, ["EX", "PX", "EXAT", "PXAT"]), pick(r, bad_ttl)])
    add()(lambda r: [pick(r, ["EXPIRE", "PEXPIRE", "EXPIREAT", "PEXPIREAT"]), pick(r, KEYS), pick(r, bad_ttl)] + pick(r, [[], ["NX"], ["GT"], ["FOO"]]))
    # indexes, offsets and increments at and past the integer limits
    huge = lambda r: pick(r, ["9223372036854775807", "-9223372036854775808", "9223372036854775808", "4294967296", "-4294967297", "536870912", "1e3"])
    add()(lambda r: [pick(r, ["GETRANGE", "LRANGE", "LTRIM", "ZRANGE", "ZREMRANGEBYRANK", "ZRANGESTORE"]), pick(r, KEYS), huge(r), huge(r)])
    add()(lambda r: [pick(r, ["LINDEX", "LSET"]), pick(r, KEYS), huge(r)] + (["x"] if r.random() < 0.5 else []))
    add()(lambda r: ["SETRANGE", pick(r, KEYS), huge(r), pick(r, ["", "x"])])
    add()(lambda r: [pick(r, ["SETBIT", "GETBIT"]), pick(r, KEYS), huge(r), "1"])
    add()(lambda r: [pick(r, ["BITCOUNT", "BITPOS"]), pick(r, KEYS)] + (["1"] if r.random() < 0.5 else []) + [huge(r), huge(r)] + pick(r, [[], ["BIT"], ["BYTE"]]))
    add()(lambda r: [pick(r, ["INCRBY", "DECRBY", "HINCRBY"]), pick(r, KEYS)] + (["m1"] if r.random() < 0.3 else []) + [huge(r)])
    add()(lambda r: [pick(r, ["INCRBYFLOAT", "HINCRBYFLOAT"]), pick(r, KEYS)] + (["m1"] if r.random() < 0.3 else []) + [pick(r, ["1e308", "-1e308", "0x10", " 1", "1 ", "5e-324", "1.7976931348623157e308", "0.1", "-0", "00012", "1e", ".5", "5."])])
    add()(lambda r: [pick(r, ["LPOP", "RPOP", "SPOP", "ZPOPMIN"]), pick(r, KEYS), huge(r)])
    add()(lambda r: ["LPOS", pick(r, KEYS), pick(r, MEMBERS)] + pick(r, [["RANK", "0"], ["RANK", "-9223372036854775807"], ["COUNT", "-1"], ["MAXLEN", "-1"], ["RANK"], ["FOO", "1"]]))
    add()(lambda r: [pick(r, ["LMPOP", "ZMPOP"]), pick(r, ["0", "-1", "3", "x", "9223372036854775807"]), pick(r, KEYS), pick(r, ["LEFT", "MIN", "COUNT"])] + pick(r, [[], ["COUNT", "0"], ["COUNT", "-1"], ["COUNT", "1", "COUNT", "2"]]))
    # option combinations Redis refuses
    add()(lambda r: ["ZADD", pick(r, KEYS)] + pick(r, [["NX", "XX"], ["GT", "LT"], ["NX", "GT"], ["INCR", "GT"], ["INCR"], ["CH", "INCR", "XX"]])
          + sum([[pick(r, SCORES), pick(r, MEMBERS)] for _ in range(r.randint(1, 2))], []))
    add()(lambda r: ["SET", pick(r, KEYS), "v"] + pick(r, [["NX", "XX"], ["EX", "1", "PX", "1"], ["KEEPTTL", "EXAT", "1"], ["GET", "GET"], ["NX", "NX"], ["EXAT"], ["PXAT", "x"], ["FOO"]]))
    add()(lambda r: ["GETEX", pick(r, KEYS)] + pick(r, [["PERSIST", "EX", "1"], ["EX"], ["FOO"], ["EXAT", "1", "PXAT", "1"], ["PERSIST", "PERSIST"]]))
    add()(lambda r: [pick(r, ["HSET", "HMSET", "MSET", "MSETNX"]), pick(r, KEYS), "f"] + pick(r, [[], ["v", "g"]]))
    add()(lambda r: pick(r, [["PING"], ["PING", "x"], ["PING", "a", "b"], ["ECHO", "x"], ["ECHO"], ["ECHO", "a", "b"]]))
    # (not REFCOUNT: see the README's known differences)
    add()(lambda r: ["OBJECT", pick(r, ["FREQ", "HELP", "FOO", "ENCODING"]), pick(r, KEYS)] + pick(r, [[], [], ["x"]]))
    return g


LUA_ATOMS = [
    "0", "1", "-7", "3.99", "-3.99", "0.5", "2^53", "2^63", "1e300", "-1e300", "1/0", "-1/0", "0/0",
    '"abc"', '""', '"a\\0b"', '"123"', '"1.5"', "true", "false", "nil",
    'redis.status_reply("FINE")', 'redis.error_reply("ERR custom message")', 'redis.error_reply("custom")',
    'redis.error_reply("")', 'redis.sha1hex("abc")', 'redis.sha1hex("")',
    'redis.call("ECHO", "x")', 'redis.call("PING")', 'redis.pcall("NOSUCHCOMMAND")', 'redis.pcall("GET")',
    'redis.pcall("GET", "a", "b")', 'redis.call("TYPE", "a")', 'redis.call("EXISTS", "a", "b")',
    'redis.pcall("GET", "a")', 'redis.pcall("LRANGE", "b", "0", "-1")', 'redis.pcall("ZRANGE", "{t}2", "0", "-1", "WITHSCORES")',
    'redis.pcall("ZSCORE", "{t}2", "m1")', 'redis.pcall("HMGET", "c", "m1", "m2")', 'redis.pcall("INCRBYFLOAT", "{t}3", "1.5")',
    'redis.pcall("ZRANGE", "{t}2", "0", "-1", "WITHSCORES", "REV")', 'redis.pcall("HELLO")',
    'redis.pcall("LPOS", "b", "m1")', 'redis.pcall("ZMSCORE", "{t}2", "m1", "zz")', 'redis.pcall("LCS", "a", "e", "IDX")',
    'cjson.encode({1, 2, "x"})', 'cjson.encode({a=1})', 'cjson.encode({})', 'cjson.decode("[1,2,3]")',
    'cjson.decode("{\\"a\\":[1,2]}")', 'cjson.encode(cjson.decode("[1.5e300, 0.1, -0]"))', 'cjson.encode("a\\0\\n")',
    'cjson.decode("null")', 'cjson.encode({1, nil, 3})', 'cjson.encode(0.1)', 'cjson.encode(1/3)',
    'cmsgpack.unpack(cmsgpack.pack({1, 2, 3}))', 'cmsgpack.pack("abc")', 'cmsgpack.pack(1.5)', 'cmsgpack.pack(-1)',
    'cmsgpack.pack({a=1})', 'cmsgpack.pack(2^40)', 'cmsgpack.unpack(cmsgpack.pack("x", 2))',
    "bit.band(255, 15)", "bit.tohex(65535)", "bit.lshift(1, 40)", "bit.bnot(0)", "bit.bxor(5, 3)", "bit.arshift(-256, 4)",
    'struct.pack(">I2", 258)', 'struct.unpack("<i4", "\\1\\0\\0\\0")', 'struct.pack("d", 1.5)',
    'string.format("%.3f", 1/3)', "tostring(0.1)", "tostring(1e15)", "tostring(2^63)", "tostring(1/0)",
    "math.floor(-3.5)", 'string.rep("ab", 3)', 'tonumber("0x10")', '#"abc"', "type(redis)", "type(os)",
    "type(loadfile)", "type(dofile)", "type(print)", "type(setfenv)", "type(getfenv)", "type(debug)", "type(bit)",
    "type(KEYS)", "#ARGV", "type(redis.setresp)", "type(redis.set_repl)", "redis.REPL_ALL", "redis.LOG_WARNING",
    "math.max(1, 2.5)", "select('#', 1, 2, 3)", 'string.byte("A")', 'string.char(72, 105)', "unpack({7, 8})",
    "math.pi", "-0.0", "1e15", "1e16", "123456789012345678",
]

# Calls that raise: their messages (with the caller's location, as luaL_error adds it).
LUA_FAILING = [
    'cjson.decode("[1,")', 'cjson.decode("{\\"a\\":}")', 'cjson.encode(function() end)', 'cjson.encode({[1]=1, [1000]=2})',
    'bit.band("x")', 'bit.tohex({})', 'struct.pack("i")', 'struct.unpack("i4", "ab")', 'struct.pack("q", 1)',
    'cmsgpack.unpack("\\193")', 'cmsgpack.pack()', 'string.rep()', 'redis.sha1hex()', 'redis.error_reply()',
    'redis.status_reply()', 'redis.call()', 'redis.setresp(4)', 'redis.call("SET", "{t}x")', 'math.floor("x")',
    'tostring()', 'redis.log(redis.LOG_NOTICE)', 'redis.log(99, "x")', 'redis.call("SET", {}, "x")',
]

LUA_RESP3_ONLY = [
    "{double=3.25}", "{double=1/0}", "{double=0/0}", '{map={a=1}}', '{set={a=true}}', '{big_number="12345678901234567890"}',
    '{verbatim_string={format="txt", string="hi"}}', "{double=-0.0}", '{map={}}', '{set={}}',
]


def lua_value(r, depth=0, resp3=False):
    """Lua source for a random value (atoms, tables of values, {err=}/{ok=} tables)."""
    roll = r.random()
    if depth < 2 and roll < 0.25:
        items = [lua_value(r, depth + 1, resp3) for _ in range(r.randint(0, 4))]
        return "{" + ", ".join(items) + "}"
    if roll < 0.30:
        return pick(r, ['{err="ERR from table"}', '{err="bare"}', '{ok="STATUS"}', '{ok=1}', '{err=1}', '{1, err="x"}'])
    if resp3 and roll < 0.42:
        return pick(r, LUA_RESP3_ONLY)
    return pick(r, LUA_ATOMS)


def lua_script(r):
    """A script that returns a random value, sometimes in RESP3, sometimes through pcall,
    sometimes breaking the sandbox's rules."""
    form = r.random()
    if form < 0.08:
        return pick(r, ["x_global = 1 return 1", "return undefined_global_name", 'error("boom")',
                        "error({err='ERR table error'})", 'return redis.call("NOSUCHCOMMAND")',
                        'return redis.call("GET")', 'return redis.setresp(4)', "return loadstring('return 1')()",
                        'return redis.call("SET", "a")', "local t = {} t[1] = t return 1",
                        'return pcall(error, "x")', "return string.rep('x', -1)", "return 1, 2",
                        'redis.setresp(2) return redis.call("HELLO", "3")', "return cjson.decode('[1,')"])
    resp3 = form < 0.4
    value = lua_value(r, resp3=resp3)
    prefix = "redis.setresp(3) " if resp3 else ""
    show = "{tostring(ok), type(v), (type(v) == 'string' or type(v) == 'number') and v or 0}"
    if r.random() < 0.25:
        failing = pick(r, LUA_FAILING)
        fn, _, rest = failing.partition("(")
        return prefix + pick(r, [
            "return " + failing,
            "local ok, v = pcall(function() return %s end) return %s" % (failing, show),
            "local ok, v = pcall(%s, %s return %s" % (fn, rest[:-1] + ")" if rest[:-1] else ")", show),
            "local ok, v = xpcall(function() return %s end, function(e) return type(e) end) return %s" % (failing, show),
        ])
    if r.random() < 0.1:
        return prefix + "local ok, v = pcall(function() return %s end) return %s" % (value, show)
    return prefix + "return " + value


def norm(v, unordered):
    """Replies as comparable values; unordered arrays sorted (recursively only at the top)."""
    if unordered and isinstance(v, tuple) and len(v) == 2 and v[0] in ("%", "~"):
        # RESP3 map or set: the aggregate's items, unordered as its command's
        return (v[0], norm(v[1], "pairs" if v[0] == "%" else True))
    if unordered == "pairs" and isinstance(v, list):
        if v and isinstance(v[0], list):
            return sorted(v, key=repr)  # RESP3: [[field, value], ...]
        return sorted(zip(v[::2], v[1::2]), key=repr)
    if unordered and isinstance(v, list):
        return sorted(v, key=repr)
    return v


def known_difference(args, want, got, oracle):
    """Differences from the 7.0 oracle that are Redis 7.2 behaviour (issue #3 asks for 7.2):
    listpack encodings 7.0 does not have."""
    if args[:2] == ["OBJECT", "ENCODING"] and got == b"listpack":
        # 7.2: small sets are listpacks (7.0: intset or hashtable), small lists are one
        # listpack (7.0: a quicklist of one node).
        kind = oracle.cmd(["TYPE", args[2]])
        return (want, kind) in ((b"hashtable", ("ok", b"set")), (b"quicklist", ("ok", b"list")))
    return False


SPECIAL = ("RESTORE-FROM-REDIS", "MULTI-OF", "DUMP", "EVAL-OF", "SCAN-OF", "WATCH-OF", "BLOCK-OF", "PUBSUB-OF")

# Commands that can give a blocked client something (most draws use one of them).
FEEDERS = {"LPUSH", "RPUSH", "LPUSHX", "RPUSHX", "LMOVE", "LINSERT", "LMPOP", "ZADD", "ZINCRBY",
           "ZUNIONSTORE", "ZINTERSTORE", "ZDIFFSTORE", "ZRANGESTORE", "SORT", "RENAME", "RENAMENX",
           "COPY", "MOVE", "RESTORE", "SMOVE", "SUNIONSTORE", "SET", "DEL"}

BLOCKING_FORMS = [
    lambda k: ["BLPOP", k, "0"],
    lambda k: ["BRPOP", k, "0"],
    lambda k: ["BLMPOP", "0", "1", k, "RIGHT", "COUNT", "2"],
    lambda k: ["BLMOVE", k, "{t}1", "LEFT", "RIGHT", "0"],
    lambda k: ["BZPOPMIN", k, "0"],
    lambda k: ["BZPOPMAX", k, "0"],
    lambda k: ["BZMPOP", "0", "1", k, "MIN", "COUNT", "2"],
]


CHANNELS = ["ch1", "ch2", "{t}ch", "other"]
PATTERNS = ["ch*", "*", "c?1", "{t}*", "[a-o]*"]


class SubModel:
    """What the subscriber connection is subscribed to (the same on both servers), so the
    fuzzer knows how many replies an UNSUBSCRIBE without arguments sends."""

    def __init__(self):
        self.subs = {"SUBSCRIBE": set(), "PSUBSCRIBE": set(), "SSUBSCRIBE": set()}


def run_pubsub(rng, model, mains, subs, events):
    """One pub/sub step: a (P|S)(UN)SUBSCRIBE on the subscriber connections, or a
    PUBLISH/SPUBLISH (then the messages the subscriber got, as a multiset: patterns'
    order is each server's own) or a PUBSUB query on the main ones."""
    kind = rng.random()
    if kind < 0.35:
        verb = pick(rng, ["SUBSCRIBE", "PSUBSCRIBE", "SSUBSCRIBE"])
        pool = PATTERNS if verb == "PSUBSCRIBE" else CHANNELS
        if verb == "PSUBSCRIBE" and events:
            pool = [p for p in PATTERNS if p != "*"]  # not the keyspace events (--events)
        if verb == "SSUBSCRIBE":
            pool = ["{t}ch", "{t}other"] if rng.random() < 0.5 else ["ch1"]  # one slot per call
        names = [pick(rng, pool) for _ in range(rng.randint(1, 2))]
        args = [verb] + names
        n = len(names)
        model.subs[verb].update(names)
        conns = subs
    elif kind < 0.5:
        verb = pick(rng, ["UNSUBSCRIBE", "PUNSUBSCRIBE", "SUNSUBSCRIBE"])
        sub_verb = verb.replace("UN", "")
        pool = PATTERNS if verb == "PUNSUBSCRIBE" else CHANNELS + ["{t}other"]
        names = [] if rng.random() < 0.4 else [pick(rng, pool) for _ in range(rng.randint(1, 2))]
        args = [verb] + names
        n = len(names) if names else max(1, len(model.subs[sub_verb]))
        if names:
            model.subs[sub_verb].difference_update(names)
        else:
            model.subs[sub_verb].clear()
        conns = subs
    else:
        args = pick(rng, [
            ["PUBLISH", pick(rng, CHANNELS), "msg"], ["PUBLISH", pick(rng, CHANNELS), "msg"],
            ["SPUBLISH", pick(rng, ["{t}ch", "{t}other", "ch1"]), "smsg"],
            ["PUBSUB", "CHANNELS"], ["PUBSUB", "CHANNELS", pick(rng, PATTERNS)],
            ["PUBSUB", "NUMSUB"] + CHANNELS[:rng.randint(0, 4)], ["PUBSUB", "NUMPAT"],
            ["PUBSUB", "SHARDCHANNELS"], ["PUBSUB", "SHARDNUMSUB", "{t}ch", "ch1"],
        ])
        conns = mains
        n = 1
    out = []
    for conn, sub in zip(conns, subs):
        replies = [conn.cmd(args)] + [conn.read() for _ in range(n - 1)]
        if args[0] in ("PUBLISH", "SPUBLISH") and isinstance(replies[0], int):
            got = [sub.read() for _ in range(replies[0])]
            replies.append(sorted(got, key=repr))
        if args[0] == "PUBSUB" or (len(replies) > 1 and args[0].endswith("SUBSCRIBE") and len(args) == 1):
            # PUBSUB CHANNELS and an UNSUBSCRIBE of everything: their order is a dict's
            replies = [sorted(x, key=repr) if isinstance(x, list) and args[1:2] in (["CHANNELS"], ["SHARDCHANNELS"]) else x for x in replies]
            if len(args) == 1:
                # removed in dict order: the channels, and the counts left, as two multisets
                replies = (sorted((x[1] for x in replies), key=repr), sorted(x[2] for x in replies))
        out.append(replies)
    return out[0], out[1], args


def blocked_state(main, blocker, cid):
    """Whether the blocker's command was answered at once ("served") or is blocked."""
    import select
    deadline = time.time() + 5
    while time.time() < deadline:
        if blocker.buf or select.select([blocker.s], [], [], 0)[0]:
            return "served"
        info = main.cmd(["CLIENT", "LIST", "ID", str(cid)])
        flags = info[1] if isinstance(info, tuple) else info
        if b"flags=" in flags and b"b" in flags.split(b"flags=")[1].split(b" ")[0]:
            return "blocked"
        time.sleep(0.001)
    return "neither blocked nor answered"


def run_block(rng, gens, key, mains, blockers, ids):
    """A blocking command on `key` from each server's blocker connection; once it is
    blocked (or answered), a random command naming `key` on the main connections, then
    CLIENT UNBLOCK: the blocker's reply (what it was served, or nil) and the command's.
    Redis serves blocked clients before the next command, so the UNBLOCK finds the
    blocker still blocked only if nothing served it."""
    form = pick(rng, BLOCKING_FORMS)(key)
    feeders = rng.random() < 0.8
    for _ in range(2000):
        args, unordered = plain_command(rng, gens)
        if args[0] == "SWAPDB" or (key in args and not args[0].startswith("B")
                                   and (not feeders or args[0] in FEEDERS)):
            break
    states, replies, served = [], [], []
    for main, blocker, cid in zip(mains, blockers, ids):
        blocker.s.sendall(encode(form))
        states.append(blocked_state(main, blocker, cid))
        replies.append(norm(main.cmd(args), unordered))
        main.cmd(["CLIENT", "UNBLOCK", str(cid)])
        served.append(blocker.read())
    flat = form + ["(blocked connection) ;"] + args + ["; CLIENT UNBLOCK"]
    return (states[0], replies[0], served[0]), (states[1], replies[1], served[1]), flat


def show_key(conn, key):
    """A key's type, encoding and contents, for a mismatch report."""
    kind = conn.cmd(["TYPE", key])
    kind = kind[1] if isinstance(kind, tuple) else kind
    read = {b"string": ["GET", key], b"list": ["LRANGE", key, "0", "-1"], b"set": ["SMEMBERS", key],
            b"hash": ["HGETALL", key], b"zset": ["ZRANGE", key, "0", "-1", "WITHSCORES"]}.get(kind)
    return kind, conn.cmd(["OBJECT", "ENCODING", key]), conn.cmd(read) if read else None


def exec_aborted(watchers, key, run):
    """WATCH `key` on each watcher connection, `run()` (the command on the main
    connections), then MULTI PING EXEC on the watchers: whether each EXEC was aborted."""
    for w in watchers:
        w.cmd(["WATCH", key])
    run()
    aborted = []
    for w in watchers:
        w.cmd(["MULTI"])
        w.cmd(["PING"])
        aborted.append(w.cmd(["EXEC"]) is None)
    return aborted


def is_write(conn, name, cache={}):
    """Whether redis-server flags the command `write` (COMMAND INFO)."""
    if name not in cache:
        info = conn.cmd(["COMMAND", "INFO", name])[0]
        flags = info[2][1] if isinstance(info[2], tuple) else info[2]  # RESP3 set
        cache[name] = b"write" in [f[1] if isinstance(f, tuple) else f for f in flags]
    return cache[name]


def run_scan(args, conn):
    """A whole SCAN/HSCAN/SSCAN/ZSCAN iteration from cursor 0 until the cursor is 0 again:
    its elements as a set (pairs for HSCAN and ZSCAN), or the first error. Cursors and batch
    sizes are each server's own; what an iteration returns in total is not."""
    cmd, key, opts = args[1], args[2], args[3:]
    if cmd == "SCAN":
        key = None
    cursor, items = b"0", set()
    for _ in range(10000):
        reply = conn.cmd([cmd] + ([key] if key else []) + [cursor] + opts)
        if not isinstance(reply, list):
            return reply
        cursor, batch = reply
        if isinstance(batch, tuple):
            batch = batch[1]
        if cmd in ("HSCAN", "ZSCAN"):
            items.update(zip(batch[::2], batch[1::2]))
        else:
            items.update(batch)
        if cursor == b"0":
            return sorted(items, key=repr)
    return "cursor never returned to 0"

EVAL_SCRIPT = "return redis.pcall(unpack(ARGV))"


def plain_command(rng, gens):
    """A random command that can be nested in EVAL or MULTI: not one of the pseudo-commands,
    not OBJECT (its 7.2 encoding names are accepted only at the top level), not a lex range
    (see lex_unspecified: checked at the top level only)."""
    while True:
        gen, unordered = rng.choice(gens)
        args = gen(rng)
        if args[0] not in SPECIAL and args[0] != "OBJECT" and lex_key(args) is None:
            return args, unordered


def lex_key(args):
    """The sorted set a lex-range command reads, or None for other commands."""
    if args[0] in ("ZRANGEBYLEX", "ZREVRANGEBYLEX", "ZLEXCOUNT", "ZREMRANGEBYLEX") or (args[0] == "ZRANGE" and "BYLEX" in args):
        return args[1]
    if args[0] == "ZRANGESTORE" and "BYLEX" in args:
        return args[2]
    return None


def lex_unspecified(args, conn):
    """A lex range over a skiplist whose scores differ: Redis documents the result as
    unspecified, and it is: the search walks the skiplist's randomly-levelled nodes as if
    they were in lex order. (Over a listpack the walk is linear and basalt must match.)"""
    key = lex_key(args)
    if key is None or conn.cmd(["OBJECT", "ENCODING", key]) != b"skiplist":
        return False
    flat = conn.cmd(["ZRANGE", key, "0", "-1", "WITHSCORES"])
    if isinstance(flat, list) and flat and isinstance(flat[0], list):
        return len({pair[1] for pair in flat}) > 1  # RESP3: [[member, score], ...]
    return len(set(flat[1::2])) > 1


def eval_of(rng, gens):
    """EVAL of a random command; its unordered flag. Not SWAPDB: scripts may not call the
    commands that visit every shard by themselves (a documented difference)."""
    args, unordered = plain_command(rng, gens)
    while args[0] == "SWAPDB":
        args, unordered = plain_command(rng, gens)
    return ["EVAL", EVAL_SCRIPT, "0"] + args, unordered


def run_multi(rng, gens, n, r_conn, b_conn):
    """MULTI, n random commands, EXEC on both servers: every reply (QUEUED, errors while
    queueing, EXEC's array with each entry normalised as its command's) as one value."""
    cmds = [plain_command(rng, gens) for _ in range(n)]
    replies = []
    for c in (r_conn, b_conn):
        out = [c.cmd(["MULTI"])] + [c.cmd(a) for a, _ in cmds]
        ex = c.cmd(["EXEC"])
        if isinstance(ex, list) and len(ex) == len(cmds):
            ex = [norm(v, u) for v, (_, u) in zip(ex, cmds)]
        replies.append(out + [ex])
    flat = ["MULTI"] + sum([a + [";"] for a, _ in cmds], []) + ["EXEC"]
    return replies[0], replies[1], flat


# Encodings whose DUMP payload has one byte order (a hash table's follows its dict).
DUMP_EXACT = (b"int", b"embstr", b"raw", b"listpack", b"intset", b"quicklist", b"skiplist")


def dump_comparable(key, r_conn, b_conn):
    enc = ["OBJECT", "ENCODING", key]
    w, g = r_conn.cmd(enc), b_conn.cmd(enc)
    return w == g and w in DUMP_EXACT


def stop(procs, tmp):
    """Stops the servers and removes their directory (also used by proto-fuzz.py)."""
    for p in procs:
        p.terminate()
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
    shutil.rmtree(tmp, ignore_errors=True)


def start(cmd, port, log):
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=os.path.dirname(log.name))


def wait_ping(port, proc, name):
    deadline = time.time() + 20
    while time.time() < deadline:
        if proc.poll() is not None:
            sys.exit("%s exited at start-up" % name)
        try:
            if Conn(port).cmd(["PING"]) == ("ok", b"PONG"):
                return
        except OSError:
            pass
        time.sleep(0.1)
    sys.exit("%s did not answer PING" % name)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--commands", type=int, default=int(os.environ.get("FUZZ_COMMANDS", 20000)))
    ap.add_argument("--seed", type=int, default=int(os.environ.get("FUZZ_SEED", time.time_ns() % 1_000_000)))
    ap.add_argument("--shards", type=int, default=4)
    ap.add_argument("--basalt", default=os.environ.get("BASALT_BIN", os.path.join(ROOT, "target/release/basalt")))
    ap.add_argument("--keep-going", action="store_true")
    ap.add_argument("--resp3", action="store_true", help="speak RESP3 (HELLO 3) to both servers")
    ap.add_argument("--small-encodings", action="store_true",
                    help="compact-encoding limits of 4 on both servers, so collections convert to hash tables, skiplists and multi-node lists")
    ap.add_argument("--check-encodings", action="store_true",
                    help="after every command, compare every key's OBJECT ENCODING (finds the command that made them differ)")
    ap.add_argument("--check-dumps", action="store_true",
                    help="after every command, compare the DUMP of every key whose encoding fixes the byte order (finds the command that made two layouts differ, e.g. quicklist nodes)")
    ap.add_argument("--lfu", action="store_true",
                    help="allkeys-lfu with every access counted and no decay (lfu-log-factor 0, lfu-decay-time 0, maxmemory far above use); after every command, compare every key's OBJECT FREQ (finds commands that touch a key a different number of times)")
    ap.add_argument("--events", action="store_true",
                    help="keyspace notifications on (notify-keyspace-events KEA plus m and n, or $FUZZ_EVENTS), a subscriber on __key*__:* on each server; after every command, compare the events it caused (as a multiset: basalt may order a multi-shard command's events by shard; active expiry is off in every mode, so `expired` events come from commands only and compare too)")
    a = ap.parse_args()
    if not shutil.which("redis-server"):
        sys.exit("redis-server not found (apt-get install redis-server)")
    if not os.access(a.basalt, os.X_OK):
        sys.exit("basalt binary %s not found (cargo build --release)" % a.basalt)

    tmp = tempfile.mkdtemp(prefix="diff-fuzz.")
    procs = []
    try:
        rport, bport = free_port(), free_port()
        for name, cmd, port in (
            ("redis", ["redis-server", "--port", str(rport), "--save", "", "--appendonly", "no", "--enable-debug-command", "yes"], rport),
            ("basalt", [a.basalt, "--port", str(bport), "--save", "", "--appendonly", "no", "--shards", str(a.shards), "--enable-debug-command", "yes"], bport),
        ):
            d = os.path.join(tmp, name)
            os.makedirs(d)
            log = open(os.path.join(d, "log"), "w")
            procs.append((name, start(cmd, port, log), port))
        for name, p, port in procs:
            wait_ping(port, p, name)
        r_conn, b_conn = Conn(rport), Conn(bport)
        # No active expiry: a key past its deadline stays stored until a command finds it,
        # on both servers alike (DBSIZE, `expired` events and the rest do not depend on
        # when each server's expiry cycle ran).
        for c in (r_conn, b_conn):
            c.cmd(["DEBUG", "SET-ACTIVE-EXPIRE", "0"])
        watchers = (Conn(rport), Conn(bport))
        blockers = (Conn(rport), Conn(bport))
        pubsubs = (Conn(rport), Conn(bport))
        sub_model = SubModel()
        blocker_ids = [c.cmd(["CLIENT", "ID"]) for c in blockers]
        spurious_aborts = 0
        if a.resp3:
            for c in (r_conn, b_conn):
                c.cmd(["HELLO", "3"])
        if a.small_encodings:
            for c in (r_conn, b_conn):
                for name in ("hash-max-listpack-entries", "zset-max-listpack-entries",
                             "set-max-intset-entries", "set-max-listpack-entries", "list-max-listpack-size"):
                    c.cmd(["CONFIG", "SET", name, "4"])
        if a.lfu:
            for c in (r_conn, b_conn):
                # maxmemory set: Redis then gives every value its own object (no shared
                # integers), so every key has a counter of its own.
                for name, value in (("maxmemory", "100gb"), ("maxmemory-policy", "allkeys-lfu"),
                                    ("lfu-log-factor", "0"), ("lfu-decay-time", "0")):
                    c.cmd(["CONFIG", "SET", name, value])
        subs = None
        if a.events:
            subs = []
            for c, port in ((r_conn, rport), (b_conn, bport)):
                c.cmd(["CONFIG", "SET", "notify-keyspace-events", os.environ.get("FUZZ_EVENTS", "KEAmn")])
                sub = Conn(port)
                sub.cmd(["PSUBSCRIBE", "__key*__:*"])
                sub.cmd(["SUBSCRIBE", "__fuzz-barrier"])
                subs.append(sub)
        barrier = [0]

        def events_since():
            """The events each server sent since the last call: a PUBLISH on a barrier
            channel from the command connection follows them (both come from the same
            connection, so basalt routes them from the same shard, in order)."""
            barrier[0] += 1
            out = []
            for c, sub in zip((r_conn, b_conn), subs):
                c.cmd(["PUBLISH", "__fuzz-barrier", str(barrier[0])])
                got = []
                while True:
                    m = sub.read()
                    if m[0] == b"message" and m[1] == b"__fuzz-barrier":
                        if m[2] == str(barrier[0]).encode():
                            break
                        continue
                    got.append(tuple(m[2:]))
                out.append(sorted(got))
            return out

        rng = random.Random(a.seed)
        gens = generators()
        history = []
        mismatches = 0
        for i in range(a.commands):
            if i % 2000 == 0 and rng.random() < 0.5:
                for c in (r_conn, b_conn):
                    c.cmd(["FLUSHALL"])
                history.append(["FLUSHALL"])
            gen, unordered = rng.choice(gens)
            args = gen(rng)
            if args[0] == "RESTORE-FROM-REDIS":
                payload = r_conn.cmd(["DUMP", args[1]])
                b_conn.cmd(["DUMP", args[1]])  # the same access on both (DUMP touches the key)
                missing = payload is None or payload == ("null",)  # RESP2 / RESP3 null
                args = ["EXISTS", args[1]] if missing else ["RESTORE", args[2], "0", payload, "REPLACE"]
            if lex_key(args) is not None:
                # checked on both servers, so both see the same accesses
                if [lex_unspecified(args, c) for c in (r_conn, b_conn)][0]:
                    args = ["ZCARD", lex_key(args)]
            if args[0] == "EVAL-OF":
                args, unordered = eval_of(rng, gens)
            if args[0] == "SCAN-OF" and a.lfu and args[1] != "SCAN":
                # batch sizes differ, and each HSCAN/SSCAN/ZSCAN call counts as an access
                args = ["EXISTS", args[2]]
            if args[0] == "SCAN-OF":
                history.append(args)
                want, got = run_scan(args, r_conn), run_scan(args, b_conn)
            elif args[0] == "WATCH-OF":
                key = args[1]
                args, unordered = plain_command(rng, gens)
                history.append(["WATCH", key, "(second connection) ;"] + args)
                out = []
                ra, ba = exec_aborted(watchers, key, lambda: out.extend(
                    norm(c.cmd(args), unordered) for c in (r_conn, b_conn)))
                want, got = out
                if want == got and ra != ba:
                    # basalt may abort for a write that found the key but changed nothing
                    # (README, known differences): a spurious abort the client retries.
                    # A missed one, or one after a read, is a bug.
                    if ba and is_write(r_conn, args[0]):
                        spurious_aborts += 1
                    else:
                        args = args + ["=> EXEC of a transaction that WATCHed", key]
                        want, got = ("aborted" if ra else "ran"), ("aborted" if ba else "ran")
            elif args[0] == "PUBSUB-OF":
                want, got, args = run_pubsub(rng, sub_model, (r_conn, b_conn), pubsubs, a.events)
                history.append(args)
            elif args[0] == "BLOCK-OF":
                want, got, args = run_block(rng, gens, args[1], (r_conn, b_conn), blockers, blocker_ids)
                history.append(args)
            elif args[0] == "MULTI-OF":
                want, got, args = run_multi(rng, gens, args[1], r_conn, b_conn)
                history.append(args)
            else:
                history.append(args)
                want = norm(r_conn.cmd(args), unordered)
                got = norm(b_conn.cmd(args), unordered)
                if args[0] == "DUMP" and want != got and not dump_comparable(args[1], r_conn, b_conn):
                    continue
            if want == got and a.check_encodings:
                for k in KEYS:
                    enc = ["OBJECT", "ENCODING", k]
                    w, g = r_conn.cmd(enc), b_conn.cmd(enc)
                    if w != g and not known_difference(enc, w, g, r_conn):
                        args, want, got = args + ["=> OBJECT ENCODING", k], w, g
                        break
            if want == got and a.check_dumps:
                for k in KEYS:
                    if dump_comparable(k, r_conn, b_conn):
                        w, g = r_conn.cmd(["DUMP", k]), b_conn.cmd(["DUMP", k])
                        if w != g:
                            args, want, got = args + ["=> DUMP", k], w, g
                            break
            if want == got and a.lfu:
                for k in KEYS:
                    freq = ["OBJECT", "FREQ", k]
                    w, g = r_conn.cmd(freq), b_conn.cmd(freq)
                    if w != g:
                        args, want, got = args + ["=> OBJECT FREQ", k], w, g
                        break
            if subs is not None:
                # The command's events and those of the checks above (OBJECT on both).
                w, g = events_since()
                if want == got and w != g:
                    args, want, got = args + ["=> keyspace events"], w, g
            if want != got and known_difference(args, want, got, r_conn):
                continue
            if want != got:
                mismatches += 1
                print("MISMATCH (seed %d, command %d): %s" % (a.seed, i, " ".join(x.decode(errors="backslashreplace") if isinstance(x, bytes) else str(x) for x in args)))
                print("  redis-server: %r" % (want,))
                print("  basalt:       %r" % (got,))
                named = [k for k in KEYS if k in args or k.decode() in args or "SORT" in args or "SORT_RO" in args]
                for k in named:
                    for name, c in (("redis-server", r_conn), ("basalt", b_conn)):
                        print("  %s %s: %r" % (name, k.decode(), show_key(c, k)))
                print("  last commands:")
                for h in history[-12:-1]:
                    print("    " + " ".join(x.decode(errors="backslashreplace") if isinstance(x, bytes) else str(x) for x in h))
                if not a.keep_going:
                    break
                # Resynchronise: the states may differ from here on.
                for c in (r_conn, b_conn):
                    c.cmd(["FLUSHALL"])
        for name, p, _ in procs:
            if p.poll() is not None:
                print("%s died; its log:" % name)
                print(open(os.path.join(tmp, name, "log")).read()[-3000:])
                mismatches += 1
        print("diff-fuzz: seed %d, %d commands, %d mismatches (%d WATCHed transactions aborted by basalt only, after a write command)" % (a.seed, len(history), mismatches, spurious_aborts))
        return 1 if mismatches else 0
    finally:
        stop([p for _, p, _ in procs], tmp)


if __name__ == "__main__":
    sys.exit(main())
