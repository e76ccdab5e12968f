//! Command families, one file each: shard operations first, then the handlers, then the
//! family's `COMMANDS` table, then its tests. The command table is the concatenation of
//! the `COMMANDS` of every family listed in [`ALL`].

pub mod bitmaps;
pub mod connection;
pub mod dump;
pub mod hashes;
pub mod hyperloglog;
pub mod introspection;
pub mod keys;
pub mod lists;
pub mod memory;
pub mod pubsub;
pub mod scripting;
pub mod server;
pub mod sets;
pub mod sort;
pub mod strings;
pub mod transactions;
pub mod zsets;

use crate::command::CommandSpec;

pub static ALL: &[&[CommandSpec]] = &[
    connection::COMMANDS,
    strings::COMMANDS,
    bitmaps::COMMANDS,
    hyperloglog::COMMANDS,
    keys::COMMANDS,
    dump::COMMANDS,
    server::COMMANDS,
    introspection::COMMANDS,
    memory::COMMANDS,
    lists::COMMANDS,
    hashes::COMMANDS,
    sets::COMMANDS,
    zsets::COMMANDS,
    transactions::COMMANDS,
    sort::COMMANDS,
    crate::persist::rewrite::COMMANDS,
    crate::persist::rdb::save::COMMANDS,
    pubsub::COMMANDS,
    scripting::COMMANDS,
];

/// `Box::pin` for connection-level handlers: `fn h(c: &mut Client, a: Args) -> LocalFuture<'_> { boxed(async move { .. }) }`.
pub fn boxed<'a>(
    f: impl std::future::Future<Output = Result<(), crate::error::CmdError>> + 'a,
) -> crate::command::LocalFuture<'a> {
    Box::pin(f)
}

/// A HELP subcommand's reply: one status line per line of text, as Redis's addReplyHelp.
pub fn reply_help(out: &mut crate::resp::Reply, lines: &[&str]) {
    out.array(lines.len());
    for l in lines {
        out.simple(l);
    }
}

/// A test harness for keyed commands: one store, commands as text, replies as RESP text.
#[cfg(test)]
pub mod testkit {
    use bytes::Bytes;

    use crate::command::{table, Args, Exec, Run};
    use crate::error::CmdError;
    use crate::persist::Effects;
    use crate::resp::{Proto, Reply};
    use crate::store::{EncodingLimits, Store};

    pub struct Kit {
        pub store: Store,
        pub effects: Effects,
        pub now: u64,
        pub db: usize,
        pub proto: Proto,
        pub enc: EncodingLimits,
        pub dirty: u64,
    }

    impl Default for Kit {
        fn default() -> Self {
            Kit::new()
        }
    }

    impl Kit {
        /// Effects are recorded (as with AOF on), so tests can check what is propagated.
        pub fn new() -> Kit {
            Kit {
                store: Store::new(16),
                effects: Effects::new(true),
                now: 1_700_000_000_000,
                db: 0,
                proto: Proto::Resp2,
                enc: EncodingLimits::default(),
                dirty: 0,
            }
        }

        /// Runs one command (any keyed command of the table); the reply bytes.
        pub fn exec(&mut self, argv: &[&[u8]]) -> Vec<u8> {
            let args = Args::new(argv.iter().map(|a| Bytes::copy_from_slice(a)).collect());
            let mut out = Reply::new(self.proto);
            let Some(cmd) = table::lookup(&args[0]) else {
                out.error(&CmdError::unknown_command(args.as_slice()).to_string());
                return out.take().to_vec();
            };
            if !cmd.spec.arity_ok(args.len()) {
                out.error(&CmdError::WrongArity(cmd.full_name.clone()).to_string());
                return out.take().to_vec();
            }
            let Run::Keyed(f, _) = cmd.spec.run else {
                panic!("{} is not a keyed command", cmd.spec.name)
            };
            {
                let mut ex = Exec::local(&mut self.store, &mut out, &mut self.effects, self.now);
                (ex.db, ex.enc) = (self.db, self.enc);
                let r = f(&mut ex, &args);
                if let Err(e) = &r {
                    ex.out.error(&e.to_string());
                }
                let dirty = ex.dirty;
                drop(ex);
                self.dirty += dirty;
            }
            self.effects.take_expired(&mut self.store);
            out.take().to_vec()
        }

        /// Runs a command written with space-separated arguments; the reply as text
        /// (RESP with `\r\n`, lossily decoded).
        pub fn run(&mut self, line: &str) -> String {
            let argv: Vec<&[u8]> = line.split(' ').map(str::as_bytes).collect();
            String::from_utf8_lossy(&self.exec(&argv)).into_owned()
        }

        /// The effects recorded since the last call, as RESP text.
        pub fn effects(&mut self) -> String {
            match self.effects.take(0) {
                Some(r) => String::from_utf8_lossy(&r.bytes).into_owned(),
                None => String::new(),
            }
        }
    }
}
