//! The command table: the concatenation of every family's `COMMANDS`. Built once; lookups
//! are case-insensitive and allocation-free.

use std::collections::HashMap;
use std::sync::OnceLock;

use super::CommandSpec;
use crate::families;

/// A command or subcommand as dispatch sees it.
pub struct Cmd {
    pub spec: &'static CommandSpec,
    /// Dense index: per-command stats are a Vec indexed by it.
    pub id: usize,
    pub parent: Option<&'static CommandSpec>,
    /// "get", or "config|get" for a subcommand: the name Redis prints in errors and stats.
    pub full_name: String,
}

struct Table {
    cmds: Vec<Cmd>,
    top: HashMap<&'static [u8], usize, ahash::RandomState>,
    /// Per parent id: subcommand name -> id.
    subs: HashMap<usize, HashMap<&'static [u8], usize, ahash::RandomState>, ahash::RandomState>,
}

fn build() -> Table {
    let mut t = Table {
        cmds: Vec::new(),
        top: HashMap::default(),
        subs: HashMap::default(),
    };
    for family in families::ALL {
        for spec in family.iter() {
            let id = t.cmds.len();
            t.cmds.push(Cmd {
                spec,
                id,
                parent: None,
                full_name: spec.name.to_string(),
            });
            let dup = t.top.insert(spec.name.as_bytes(), id);
            assert!(dup.is_none(), "command {} declared twice", spec.name);
            for sub in spec.subcommands {
                let sid = t.cmds.len();
                t.cmds.push(Cmd {
                    spec: sub,
                    id: sid,
                    parent: Some(spec),
                    full_name: format!("{}|{}", spec.name, sub.name),
                });
                t.subs.entry(id).or_default().insert(sub.name.as_bytes(), sid);
            }
        }
    }
    t
}

fn table() -> &'static Table {
    static TABLE: OnceLock<Table> = OnceLock::new();
    TABLE.get_or_init(build)
}

/// Lower-cases `name` into `buf`; None if it is longer than any command name.
fn lower<'b>(name: &[u8], buf: &'b mut [u8; 64]) -> Option<&'b [u8]> {
    if name.len() > buf.len() {
        return None;
    }
    for (d, s) in buf.iter_mut().zip(name) {
        *d = s.to_ascii_lowercase();
    }
    Some(&buf[..name.len()])
}

pub fn lookup(name: &[u8]) -> Option<&'static Cmd> {
    let mut buf = [0u8; 64];
    let key = lower(name, &mut buf)?;
    let t = table();
    t.top.get(key).map(|&i| &t.cmds[i])
}

pub fn lookup_sub(parent: &Cmd, sub: &[u8]) -> Option<&'static Cmd> {
    let mut buf = [0u8; 64];
    let key = lower(sub, &mut buf)?;
    let t = table();
    t.subs.get(&parent.id)?.get(key).map(|&i| &t.cmds[i])
}

/// A command by its full name: "get", or "client|list" for a subcommand (Redis's
/// lookupCommandBySds, as COMMAND INFO/DOCS and LATENCY HISTOGRAM take names).
pub fn lookup_full(name: &[u8]) -> Option<&'static Cmd> {
    let mut parts = name.split(|&b| b == b'|');
    let top = lookup(parts.next()?)?;
    match (parts.next(), parts.next()) {
        (None, _) => Some(top),
        (Some(sub), None) => lookup_sub(top, sub),
        _ => None,
    }
}

/// A container's subcommands (they follow it in [`all`]); none for any other command.
pub fn subcommands(parent: &Cmd) -> impl Iterator<Item = &'static Cmd> + '_ {
    all()[parent.id + 1..]
        .iter()
        .take_while(move |c| c.parent.is_some_and(|p| std::ptr::eq(p, parent.spec)))
}

/// Every command and subcommand, top-level ones in declaration order each followed by its subcommands.
pub fn all() -> &'static [Cmd] {
    &table().cmds
}

pub fn len() -> usize {
    table().cmds.len()
}

pub fn by_id(id: usize) -> &'static Cmd {
    &table().cmds[id]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_ignore_case() {
        let get = lookup(b"GeT").expect("get");
        assert_eq!(get.spec.name, "get");
        assert!(lookup(b"nosuchcommand").is_none());
        assert!(lookup(&[b'a'; 100]).is_none());
    }

    #[test]
    fn subcommands_of_a_container_only() {
        let config = lookup(b"config").unwrap();
        let subs: Vec<&str> = subcommands(config).map(|c| c.full_name.as_str()).collect();
        assert!(subs.contains(&"config|get") && subs.iter().all(|n| n.starts_with("config|")));
        assert_eq!(subcommands(lookup(b"get").unwrap()).count(), 0);
        assert_eq!(subcommands(lookup_full(b"config|get").unwrap()).count(), 0);
        assert_eq!(
            lookup_full(b"CONFIG|Get").map(|c| c.full_name.as_str()),
            Some("config|get")
        );
        assert!(lookup_full(b"config|get|x").is_none());
    }

    #[test]
    fn subcommands_have_full_names() {
        let config = lookup(b"config").expect("config");
        let get = lookup_sub(config, b"GET").expect("config get");
        assert_eq!(get.full_name, "config|get");
        assert!(lookup_sub(config, b"nope").is_none());
    }

    #[test]
    fn every_spec_is_well_formed() {
        for c in all() {
            assert!(!c.spec.name.is_empty());
            assert_eq!(c.spec.name, c.spec.name.to_ascii_lowercase());
            assert!(c.spec.arity != 0, "{} has no arity", c.full_name);
            if c.spec.subcommands.is_empty() {
                assert!(
                    !matches!(c.spec.run, super::super::Run::Container),
                    "{} has no handler",
                    c.full_name
                );
            }
            assert!(!c.spec.summary.is_empty(), "{} has no summary", c.full_name);
        }
    }
}
