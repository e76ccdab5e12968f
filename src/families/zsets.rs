//! The sorted set commands.

use crate::command::CommandSpec;

pub static COMMANDS: &[CommandSpec] = &[];
