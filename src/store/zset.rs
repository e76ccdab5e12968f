//! A sorted set: listpack while small, then a skiplist plus a member index (OBJECT ENCODING listpack / skiplist).
//!
//! Placeholder shape: the collections work replaces this file.

#[derive(Debug, Clone, PartialEq, Default)]
pub struct ZSet {
    items: Vec<Box<[u8]>>,
}

impl ZSet {
    pub fn encoding(&self) -> &'static str {
        "listpack"
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn heap_bytes(&self) -> usize {
        self.items.iter().map(|i| i.len() + 16).sum()
    }
}
