//! Command families, one file each: shard operations first, then the handlers, then the
//! family's `COMMANDS` table, then its tests. The command table is the concatenation of
//! the `COMMANDS` of every family listed in [`ALL`].

pub mod connection;
pub mod introspection;
pub mod keys;
pub mod server;
pub mod strings;

use crate::command::CommandSpec;

pub static ALL: &[&[CommandSpec]] = &[
    connection::COMMANDS,
    strings::COMMANDS,
    keys::COMMANDS,
    server::COMMANDS,
    introspection::COMMANDS,
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
