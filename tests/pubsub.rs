//! Black-box tests of Pub/Sub with `--shards 4`: connections land on shards by
//! SO_REUSEPORT, so many connections put publishers and subscribers on different shards.
//! PUBLISH counts exactly, every subscriber gets every message in order, patterns, RESP3
//! pushes between replies, a subscriber that never reads is disconnected at the output
//! limit while the others keep receiving, RESET and disconnect unsubscribe, keyspace events.

mod common;

use common::{poll, Raw, Server, PATIENCE, V};
use std::time::Duration;

fn push(kind: &str, channel: &str, msg: &str) -> V {
    V::Arr(vec![
        V::Bulk(kind.into()),
        V::Bulk(channel.into()),
        V::Bulk(msg.as_bytes().to_vec()),
    ])
}

fn subscriber(s: &Server, cmd: &[&str]) -> Raw {
    let mut r = s.raw();
    r.set_timeout(PATIENCE);
    r.send(cmd).unwrap();
    for _ in 1..cmd.len() {
        r.read().unwrap();
    }
    r
}

fn numsub(s: &Server, ch: &str) -> i64 {
    match s.raw().cmd(&["PUBSUB", "NUMSUB", ch]) {
        V::Arr(v) => match v[1] {
            V::Int(n) => n,
            _ => panic!("NUMSUB {v:?}"),
        },
        other => panic!("NUMSUB {other:?}"),
    }
}

#[test]
fn fan_out_to_100_subscribers_exact_count_in_order() {
    let s = Server::start(&[]);
    let mut subs: Vec<Raw> = (0..100).map(|_| subscriber(&s, &["SUBSCRIBE", "news"])).collect();
    let mut p = s.raw();
    assert_eq!(numsub(&s, "news"), 100);
    for i in 0..200 {
        assert_eq!(
            p.cmd(&["PUBLISH", "news", &format!("m{i}")]),
            V::Int(100),
            "message {i}"
        );
    }
    for (n, sub) in subs.iter_mut().enumerate() {
        for i in 0..200 {
            assert_eq!(
                sub.read().unwrap(),
                push("message", "news", &format!("m{i}")),
                "subscriber {n}"
            );
        }
    }
    // Nothing duplicated: the next thing each subscriber sees is the answer to its PING.
    for sub in subs.iter_mut() {
        assert_eq!(
            sub.cmd(&["PING"]),
            V::Arr(vec![V::Bulk(b"pong".to_vec()), V::Bulk(Vec::new())])
        );
    }
    assert_eq!(p.cmd(&["PUBLISH", "other", "x"]), V::Int(0));
}

#[test]
fn pattern_and_channel_subscribers_across_shards() {
    let s = Server::start(&[]);
    let mut pats: Vec<Raw> = (0..12).map(|_| subscriber(&s, &["PSUBSCRIBE", "n.*", "x"])).collect();
    let mut exact: Vec<Raw> = (0..12).map(|_| subscriber(&s, &["SUBSCRIBE", "n.a"])).collect();
    let mut p = s.raw();
    assert_eq!(p.cmd(&["PUBSUB", "NUMPAT"]), V::Int(2));
    assert_eq!(p.cmd(&["PUBLISH", "n.a", "1"]), V::Int(24));
    assert_eq!(p.cmd(&["PUBLISH", "n.b", "2"]), V::Int(12));
    assert_eq!(p.cmd(&["PUBLISH", "m.a", "3"]), V::Int(0));
    let pm = |ch: &str, m: &str| {
        V::Arr(vec![
            V::Bulk(b"pmessage".to_vec()),
            V::Bulk(b"n.*".to_vec()),
            V::Bulk(ch.into()),
            V::Bulk(m.into()),
        ])
    };
    for sub in pats.iter_mut() {
        assert_eq!(sub.read().unwrap(), pm("n.a", "1"));
        assert_eq!(sub.read().unwrap(), pm("n.b", "2"));
    }
    for sub in exact.iter_mut() {
        assert_eq!(sub.read().unwrap(), push("message", "n.a", "1"));
    }
    match p.cmd(&["PUBSUB", "CHANNELS"]) {
        V::Arr(v) => assert_eq!(v, vec![V::Bulk(b"n.a".to_vec())]),
        other => panic!("{other:?}"),
    }
    // Shard channels are their own namespace.
    let mut ss = subscriber(&s, &["SSUBSCRIBE", "n.a"]);
    assert_eq!(p.cmd(&["SPUBLISH", "n.a", "s"]), V::Int(1));
    assert_eq!(ss.read().unwrap(), push("smessage", "n.a", "s"));
    assert_eq!(p.cmd(&["PUBLISH", "n.a", "4"]), V::Int(24));
}

#[test]
fn resp3_pushes_between_replies() {
    let s = Server::start(&[]);
    let mut c = s.raw();
    c.set_timeout(PATIENCE);
    assert!(matches!(c.cmd(&["HELLO", "3"]), V::Map(_)));
    c.send(&["SUBSCRIBE", "ch"]).unwrap();
    assert_eq!(
        c.read().unwrap(),
        V::Push(vec![V::Bulk(b"subscribe".to_vec()), V::Bulk(b"ch".to_vec()), V::Int(1)])
    );
    // Normal commands work while subscribed in RESP3.
    assert_eq!(c.cmd(&["SET", "k", "v"]), V::Simple("OK".into()));
    let mut p = s.raw();
    for i in 0..50 {
        assert_eq!(p.cmd(&["PUBLISH", "ch", &i.to_string()]), V::Int(1));
    }
    let mut got = Vec::new();
    let mut replies = 0;
    c.send(&["GET", "k"]).unwrap();
    while replies < 1 || got.len() < 50 {
        match c.read().unwrap() {
            V::Push(v) => got.push(v[2].str()),
            V::Bulk(b) => {
                assert_eq!(b, b"v");
                replies += 1
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(got, (0..50).map(|i| i.to_string()).collect::<Vec<_>>());
    // A message to itself comes before the PUBLISH reply, as in Redis.
    c.send(&["PUBLISH", "ch", "self"]).unwrap();
    assert_eq!(
        c.read().unwrap(),
        V::Push(vec![
            V::Bulk(b"message".to_vec()),
            V::Bulk(b"ch".to_vec()),
            V::Bulk(b"self".to_vec())
        ])
    );
    assert_eq!(c.read().unwrap(), V::Int(1));
}

#[test]
fn slow_subscriber_is_disconnected_others_keep_receiving() {
    let s = Server::start(&[]);
    let mut admin = s.raw();
    assert_eq!(
        admin.cmd(&["CONFIG", "SET", "client-output-buffer-limit", "pubsub 1mb 512kb 60"]),
        V::Simple("OK".into())
    );
    let slow = subscriber(&s, &["SUBSCRIBE", "flood"]);
    let mut fast: Vec<Raw> = (0..4).map(|_| subscriber(&s, &["SUBSCRIBE", "flood"])).collect();
    let msg = "x".repeat(16 * 1024);
    let total = 1500; // 24 MB: well past the socket buffers plus the 1 MB limit.
    let readers: Vec<_> = fast
        .drain(..)
        .map(|mut r| {
            std::thread::spawn(move || {
                for i in 0..total {
                    match r.read().unwrap() {
                        V::Arr(v) => assert_eq!(v[2].str().len(), 16 * 1024, "message {i}"),
                        other => panic!("{other:?}"),
                    }
                }
                r
            })
        })
        .collect();
    let mut p = s.raw();
    p.set_timeout(PATIENCE);
    for _ in 0..total {
        match p.cmd(&["PUBLISH", "flood", &msg]) {
            V::Int(n) => assert!(n == 5 || n == 4, "{n}"),
            other => panic!("{other:?}"),
        }
    }
    let _alive: Vec<Raw> = readers.into_iter().map(|r| r.join().unwrap()).collect();
    let disconnected = poll(PATIENCE, || (numsub(&s, "flood") == 4).then_some(()));
    assert!(
        disconnected.is_some(),
        "slow subscriber still subscribed: {} subscribers\n{}",
        numsub(&s, "flood"),
        s.log_text()
    );
    let info = admin.cmd(&["INFO", "stats"]).str();
    assert!(info.contains("client_output_buffer_limit_disconnections:1"), "{info}");
    assert!(s.log_text().contains("overcoming of output buffer limits"));
    drop(slow);
}

#[test]
fn reset_and_disconnect_unsubscribe() {
    let s = Server::start(&[]);
    let mut a = subscriber(&s, &["SUBSCRIBE", "c1", "c2"]);
    let b = subscriber(&s, &["PSUBSCRIBE", "c*"]);
    let mut p = s.raw();
    assert_eq!(p.cmd(&["PUBLISH", "c1", "x"]), V::Int(2));
    assert!(s
        .raw()
        .cmd(&["CLIENT", "LIST"])
        .str()
        .contains("flags=P db=0 sub=2 psub=0 ssub=0"));
    a.read().unwrap();
    assert_eq!(a.cmd(&["RESET"]), V::Simple("RESET".into()));
    assert_eq!(a.cmd(&["GET", "k"]), V::Nil);
    assert_eq!(p.cmd(&["PUBLISH", "c1", "x"]), V::Int(1));
    drop(b);
    assert!(poll(PATIENCE, || (p.cmd(&["PUBLISH", "c1", "x"]) == V::Int(0)).then_some(())).is_some());
    assert_eq!(p.cmd(&["PUBSUB", "NUMPAT"]), V::Int(0));
    let info = p.cmd(&["INFO", "stats"]).str();
    assert!(
        info.contains("pubsub_channels:0") && info.contains("pubsub_patterns:0"),
        "{info}"
    );
}

#[test]
fn keyspace_events_for_set_del_expire_and_expired() {
    let s = Server::start(&[]);
    let mut p = s.raw();
    assert_eq!(
        p.cmd(&["CONFIG", "SET", "notify-keyspace-events", "KEA"]),
        V::Simple("OK".into())
    );
    let mut events: Vec<Raw> = (0..6)
        .map(|_| subscriber(&s, &["PSUBSCRIBE", "__keyevent@0__:*"]))
        .collect();
    let mut space = subscriber(&s, &["SUBSCRIBE", "__keyspace@0__:k1"]);
    p.cmd(&["SET", "k1", "v"]);
    p.cmd(&["EXPIRE", "k1", "100"]);
    p.cmd(&["DEL", "k1"]);
    p.cmd(&["SET", "k2", "v", "PX", "50"]);
    p.cmd(&["INCR", "k3"]);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(p.cmd(&["GET", "k2"]), V::Nil);
    let want = [
        ("set", "k1"),
        ("expire", "k1"),
        ("del", "k1"),
        ("set", "k2"),
        ("expire", "k2"),
        ("incrby", "k3"),
        ("expired", "k2"),
    ];
    for sub in events.iter_mut() {
        for (ev, key) in want {
            match sub.read().unwrap() {
                V::Arr(v) => {
                    assert_eq!(v[2].str(), format!("__keyevent@0__:{ev}"));
                    assert_eq!(v[3].str(), key);
                }
                other => panic!("{other:?}"),
            }
        }
    }
    for ev in ["set", "expire", "del"] {
        assert_eq!(space.read().unwrap(), push("message", "__keyspace@0__:k1", ev));
    }
    p.cmd(&["CONFIG", "SET", "notify-keyspace-events", ""]);
    p.cmd(&["SET", "k1", "v"]);
    assert_eq!(p.cmd(&["PUBLISH", "__keyspace@0__:k1", "end"]), V::Int(1));
    assert_eq!(space.read().unwrap(), push("message", "__keyspace@0__:k1", "end"));
}
