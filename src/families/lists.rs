//! The list commands.

use crate::command::CommandSpec;

pub static COMMANDS: &[CommandSpec] = &[];
