#!/usr/bin/env python3
"""Protocol fuzzing against redis-server: random mutations of valid requests (RESP and
inline) sent raw, on a fresh connection each, to both servers; everything each answers
until it closes the connection or goes quiet is compared byte for byte.

Usage: scripts/proto-fuzz.py [--count N] [--seed S] [--basalt PATH] [--keep-going]

Starts both servers itself on free loopback ports (basalt with --shards 4). Each request is
one to three valid commands with one to three mutations (a byte deleted, inserted, replaced,
or the rest cut off), so parsers meet truncated lengths, stray bytes, bad multibulk counts
and non-UTF-8 names. Exit status 1 on any difference.
"""

import argparse
import importlib.util
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Server start-up and teardown are diff-fuzz.py's.
_spec = importlib.util.spec_from_file_location("diff_fuzz", os.path.join(ROOT, "scripts", "diff-fuzz.py"))
diff_fuzz = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(diff_fuzz)

BASE = [
    b"*2\r\n$4\r\nECHO\r\n$3\r\nabc\r\n",
    b"*1\r\n$4\r\nPING\r\n",
    b"PING\r\n",
    b"ECHO hi\r\n",  # (not "hello": HELLO answers with each server's version and ids)
    b'SET k "a b"\r\n',
    b"GET k\r\n",
    b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\nvv\r\n",
    b"*3\r\n$5\r\nRPUSH\r\n$1\r\nl\r\n$1\r\nx\r\n",
    b"*2\r\n$6\r\nCONFIG\r\n$3\r\nGET\r\n",
]
INSERTS = b"*$\r\n-+:0123456789 \"'\\x{}abc"


def exchange(port, payload, quiet=0.05):
    """Sends `payload` on a new connection; everything read until the server closes
    (marked <EOF>) or sends nothing for `quiet` seconds (marked <open>)."""
    s = socket.create_connection(("127.0.0.1", port))
    s.settimeout(quiet)
    s.sendall(payload)
    out = b""
    try:
        while True:
            d = s.recv(65536)
            if not d:
                out += b"<EOF>"
                break
            out += d
    except socket.timeout:
        out += b"<open>"
    except ConnectionResetError:
        out += b"<reset>"
    s.close()
    return out


def mutate(rng):
    msg = bytearray(b"".join(rng.choice(BASE) for _ in range(rng.randint(1, 3))))
    for _ in range(rng.randint(1, 3)):
        op, pos = rng.random(), rng.randrange(len(msg) + 1)
        if op < 0.3 and msg:
            del msg[min(pos, len(msg) - 1)]
        elif op < 0.6:
            msg.insert(pos, rng.choice(INSERTS))
        elif op < 0.8 and msg:
            msg[min(pos, len(msg) - 1)] = rng.randrange(256)
        else:
            del msg[pos:]
    return bytes(msg)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--count", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=time.time_ns() % 1_000_000)
    ap.add_argument("--basalt", default=os.environ.get("BASALT_BIN", os.path.join(ROOT, "target/release/basalt")))
    ap.add_argument("--keep-going", action="store_true")
    a = ap.parse_args()
    if not shutil.which("redis-server"):
        sys.exit("redis-server not found (apt-get install redis-server)")
    tmp = tempfile.mkdtemp(prefix="proto-fuzz.")
    rport, bport = diff_fuzz.free_port(), diff_fuzz.free_port()
    procs = []
    try:
        for name, cmd, port in (
            ("redis", ["redis-server", "--port", str(rport), "--save", "", "--dir", tmp], rport),
            ("basalt", [a.basalt, "--port", str(bport), "--save", "", "--shards", "4", "--dir", tmp], bport),
        ):
            p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            procs.append((name, p))
            diff_fuzz.wait_ping(port, p, name)
        rng = random.Random(a.seed)
        differences = 0
        for i in range(a.count):
            msg = mutate(rng)
            want, got = exchange(rport, msg), exchange(bport, msg)
            if want != got:
                # A busy machine may be slower than the quiet period: again, patiently.
                want, got = exchange(rport, msg, 1.0), exchange(bport, msg, 1.0)
            if want != got:
                differences += 1
                print("DIFFERENCE (seed %d, request %d): %r" % (a.seed, i, msg))
                print("  redis-server: %r" % want[:400])
                print("  basalt:       %r" % got[:400])
                if not a.keep_going:
                    break
        for name, p in procs:
            if p.poll() is not None:
                print("%s died" % name)
                differences += 1
        print("proto-fuzz: seed %d, %d requests, %d differences" % (a.seed, a.count, differences))
        return 1 if differences else 0
    finally:
        diff_fuzz.stop([p for _, p in procs], tmp)


if __name__ == "__main__":
    sys.exit(main())
