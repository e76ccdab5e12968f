//! A set: intset for small integer sets, listpack for small sets, then a hash table.
//!
//! Placeholder shape: the collections work replaces this file.

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Set {
    items: Vec<Box<[u8]>>,
}

impl Set {
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
