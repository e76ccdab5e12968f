//! Keys: the generic keyspace commands.

use crate::command::CommandSpec;

pub static COMMANDS: &[CommandSpec] = &[];
