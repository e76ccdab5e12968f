//! COMMAND and its subcommands: the command table describing itself.

use crate::command::CommandSpec;

pub static COMMANDS: &[CommandSpec] = &[];
