//! A persistent hash map (a hash array mapped trie with `Arc`-shared branches): cloning it
//! is O(1), so the replica thread captures the tree for a snapshot without copying it; an
//! update after a clone copies only the branches on its path (O(log₃₂ n) branches of at
//! most 32 entries), while a branch owned by one map is changed in place (`Arc::make_mut`).
//!
//! Keys are hashed with SipHash under a random key drawn once per process, so the order of
//! iteration is arbitrary (callers that need an order sort), and a client cannot choose names
//! that collide. Branches hold exactly as many entries as they use (no spare capacity, no
//! empty slots: a 32-bit bitmap says which of the 32 slots are present).

use std::borrow::Borrow;
use std::hash::{BuildHasher, Hash, RandomState};
use std::sync::{Arc, OnceLock};

const BITS: u32 = 5;
const MASK: u64 = (1 << BITS) - 1;

fn hash_of<Q: Hash + ?Sized>(key: &Q) -> u64 {
    static STATE: OnceLock<RandomState> = OnceLock::new();
    STATE.get_or_init(RandomState::new).hash_one(key)
}

/// One slot of a branch: a key and its value, or a deeper branch.
#[derive(Clone)]
enum Entry<K, V> {
    Leaf(K, V),
    Sub(Arc<Branch<K, V>>),
}

/// A branch: the entries of the slots its bitmap marks, in slot order. Below the last hash
/// bits (`shift >= 64`) a branch is a list of keys whose whole hashes collide (bitmap 0).
#[derive(Clone)]
struct Branch<K, V> {
    bitmap: u32,
    entries: Vec<Entry<K, V>>,
}

impl<K, V> Branch<K, V> {
    fn empty() -> Branch<K, V> {
        Branch {
            bitmap: 0,
            entries: Vec::new(),
        }
    }
}

/// Which slot `hash` takes at `shift`, and its index among the present ones.
fn slot(bitmap: u32, hash: u64, shift: u32) -> (u32, usize) {
    let bit = 1u32 << ((hash >> shift) & MASK);
    (bit, (bitmap & (bit - 1)).count_ones() as usize)
}

/// A persistent map from `K` to `V`.
pub struct PMap<K, V> {
    root: Option<Arc<Branch<K, V>>>,
    len: usize,
}

impl<K, V> Clone for PMap<K, V> {
    fn clone(&self) -> Self {
        PMap {
            root: self.root.clone(),
            len: self.len,
        }
    }
}

impl<K, V> Default for PMap<K, V> {
    fn default() -> Self {
        PMap { root: None, len: 0 }
    }
}

impl<K: Hash + Eq + Clone, V: Clone> PMap<K, V> {
    /// An empty map.
    #[must_use]
    pub fn new() -> Self {
        PMap::default()
    }

    /// Number of entries.
    #[must_use]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the map is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The value of `key`.
    pub fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = hash_of(key);
        let mut branch = self.root.as_deref()?;
        let mut shift = 0;
        loop {
            if shift >= 64 {
                return branch.entries.iter().find_map(|e| match e {
                    Entry::Leaf(k, v) if k.borrow() == key => Some(v),
                    _ => None,
                });
            }
            let (bit, idx) = slot(branch.bitmap, hash, shift);
            if branch.bitmap & bit == 0 {
                return None;
            }
            match branch.entries.get(idx)? {
                Entry::Leaf(k, v) => return (k.borrow() == key).then_some(v),
                Entry::Sub(sub) => {
                    branch = sub;
                    shift += BITS;
                }
            }
        }
    }

    /// Whether `key` is present.
    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.get(key).is_some()
    }

    /// The value of `key`, to change; the branches on its path are copied first if another
    /// map shares them.
    pub fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        // Not there: no branch copied for nothing.
        self.get(key)?;
        let hash = hash_of(key);
        get_mut_in(self.root.as_mut()?, hash, 0, key)
    }

    /// Inserts `key` with `value`; returns the value it replaces.
    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        let hash = hash_of(&key);
        let root = self.root.get_or_insert_with(|| Arc::new(Branch::empty()));
        let old = insert_in(root, hash, 0, key, value);
        if old.is_none() {
            self.len += 1;
        }
        old
    }

    /// Removes `key`; returns its value.
    pub fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.get(key)?;
        let hash = hash_of(key);
        let root = self.root.as_mut()?;
        let old = remove_in(root, hash, 0, key)?;
        self.len -= 1;
        if root.entries.is_empty() {
            self.root = None;
        }
        Some(old)
    }

    /// Every entry, in no particular order.
    #[must_use]
    pub fn iter(&self) -> Iter<'_, K, V> {
        Iter {
            stack: self
                .root
                .as_deref()
                .map(|b| vec![b.entries.iter()])
                .unwrap_or_default(),
        }
    }

    /// Empties the map, moving out the values no other map shares (into `values`) without
    /// recursion: how a deep tree is dropped without exhausting the stack.
    pub fn dismantle(&mut self, values: &mut Vec<V>) {
        self.len = 0;
        let mut stack: Vec<Arc<Branch<K, V>>> = self.root.take().into_iter().collect();
        while let Some(arc) = stack.pop() {
            if let Ok(branch) = Arc::try_unwrap(arc) {
                for e in branch.entries {
                    match e {
                        Entry::Leaf(_, v) => values.push(v),
                        Entry::Sub(s) => stack.push(s),
                    }
                }
            }
        }
    }

    /// Bytes held by the map's own branches (not by keys' or values' heap parts), counting
    /// a branch shared with another map too: the figure the memory-bound test uses.
    #[must_use]
    pub fn branch_bytes(&self) -> usize {
        let mut total = 0;
        let mut stack: Vec<&Branch<K, V>> = self.root.as_deref().into_iter().collect();
        while let Some(b) = stack.pop() {
            // Arc's two counts, the branch, its entries.
            total += 2 * size_of::<usize>()
                + size_of::<Branch<K, V>>()
                + b.entries.capacity() * size_of::<Entry<K, V>>();
            for e in &b.entries {
                if let Entry::Sub(s) = e {
                    stack.push(s);
                }
            }
        }
        total
    }
}

fn get_mut_in<'a, K, V, Q>(
    arc: &'a mut Arc<Branch<K, V>>,
    hash: u64,
    shift: u32,
    key: &Q,
) -> Option<&'a mut V>
where
    K: Borrow<Q> + Clone,
    V: Clone,
    Q: Eq + ?Sized,
{
    let branch = Arc::make_mut(arc);
    if shift >= 64 {
        return branch.entries.iter_mut().find_map(|e| match e {
            Entry::Leaf(k, v) if (*k).borrow() == key => Some(v),
            _ => None,
        });
    }
    let (bit, idx) = slot(branch.bitmap, hash, shift);
    if branch.bitmap & bit == 0 {
        return None;
    }
    match branch.entries.get_mut(idx)? {
        Entry::Leaf(k, v) => ((*k).borrow() == key).then_some(v),
        Entry::Sub(sub) => get_mut_in(sub, hash, shift + BITS, key),
    }
}

fn insert_in<K: Hash + Eq + Clone, V: Clone>(
    arc: &mut Arc<Branch<K, V>>,
    hash: u64,
    shift: u32,
    key: K,
    value: V,
) -> Option<V> {
    let branch = Arc::make_mut(arc);
    if shift >= 64 {
        for e in &mut branch.entries {
            if let Entry::Leaf(k, v) = e {
                if *k == key {
                    return Some(std::mem::replace(v, value));
                }
            }
        }
        branch.entries.reserve_exact(1);
        branch.entries.push(Entry::Leaf(key, value));
        return None;
    }
    let (bit, idx) = slot(branch.bitmap, hash, shift);
    if branch.bitmap & bit == 0 {
        branch.entries.reserve_exact(1);
        branch.entries.insert(idx, Entry::Leaf(key, value));
        branch.bitmap |= bit;
        return None;
    }
    let entry = branch.entries.get_mut(idx)?;
    match entry {
        Entry::Sub(sub) => insert_in(sub, hash, shift + BITS, key, value),
        Entry::Leaf(k, v) if *k == key => Some(std::mem::replace(v, value)),
        Entry::Leaf(..) => {
            // Two keys in one slot: push the one there down into a new branch with the new one.
            let placeholder = Entry::Sub(Arc::new(Branch::empty()));
            let Entry::Leaf(k, v) = std::mem::replace(entry, placeholder) else {
                return None;
            };
            let mut sub = Arc::new(Branch::empty());
            insert_in(&mut sub, hash_of(&k), shift + BITS, k, v);
            insert_in(&mut sub, hash, shift + BITS, key, value);
            *entry = Entry::Sub(sub);
            None
        }
    }
}

fn remove_in<K, V, Q>(arc: &mut Arc<Branch<K, V>>, hash: u64, shift: u32, key: &Q) -> Option<V>
where
    K: Borrow<Q> + Clone,
    V: Clone,
    Q: Eq + ?Sized,
{
    let branch = Arc::make_mut(arc);
    if shift >= 64 {
        let pos = branch
            .entries
            .iter()
            .position(|e| matches!(e, Entry::Leaf(k, _) if (*k).borrow() == key))?;
        let Entry::Leaf(_, v) = branch.entries.remove(pos) else {
            return None;
        };
        branch.entries.shrink_to_fit();
        return Some(v);
    }
    let (bit, idx) = slot(branch.bitmap, hash, shift);
    if branch.bitmap & bit == 0 {
        return None;
    }
    let removed = match branch.entries.get_mut(idx)? {
        Entry::Leaf(k, _) => {
            if (*k).borrow() != key {
                return None;
            }
            let Entry::Leaf(_, v) = branch.entries.remove(idx) else {
                return None;
            };
            branch.bitmap &= !bit;
            v
        }
        Entry::Sub(sub) => {
            let v = remove_in(sub, hash, shift + BITS, key)?;
            // Keep the trie canonical: an emptied branch goes, a lone leaf moves up.
            if sub.entries.is_empty() {
                branch.entries.remove(idx);
                branch.bitmap &= !bit;
            } else if sub.entries.len() == 1 && matches!(sub.entries[0], Entry::Leaf(..)) {
                if let Some(leaf) = Arc::make_mut(sub).entries.pop() {
                    branch.entries[idx] = leaf;
                }
            }
            v
        }
    };
    branch.entries.shrink_to_fit();
    Some(removed)
}

/// An iterator over a [`PMap`]'s entries.
pub struct Iter<'a, K, V> {
    stack: Vec<std::slice::Iter<'a, Entry<K, V>>>,
}

impl<'a, K, V> Iterator for Iter<'a, K, V> {
    type Item = (&'a K, &'a V);

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let top = self.stack.last_mut()?;
            match top.next() {
                None => {
                    self.stack.pop();
                }
                Some(Entry::Leaf(k, v)) => return Some((k, v)),
                Some(Entry::Sub(sub)) => self.stack.push(sub.entries.iter()),
            }
        }
    }
}

impl<K: Hash + Eq + Clone, V: Clone + PartialEq> PartialEq for PMap<K, V> {
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len && self.iter().all(|(k, v)| other.get(k) == Some(v))
    }
}

impl<K: Hash + Eq + Clone, V: Clone + Eq> Eq for PMap<K, V> {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn behaves_as_a_map_and_clones_share() {
        let mut m: PMap<String, u32> = PMap::new();
        let mut model: HashMap<String, u32> = HashMap::new();
        let mut snapshots = Vec::new();
        let mut x: u64 = 7;
        for i in 0..20_000u32 {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            let k = format!("k{}", (x >> 33) % 3000);
            match (x >> 20) % 4 {
                0 => assert_eq!(m.remove(k.as_str()), model.remove(&k)),
                1 => {
                    if let (Some(a), Some(b)) = (m.get_mut(k.as_str()), model.get_mut(&k)) {
                        *a += 1;
                        *b += 1;
                    }
                }
                _ => assert_eq!(m.insert(k.clone(), i), model.insert(k, i)),
            }
            assert_eq!(m.len(), model.len());
            if i % 2000 == 0 {
                snapshots.push((m.clone(), model.clone()));
            }
        }
        for (k, v) in &model {
            assert_eq!(m.get(k.as_str()), Some(v));
        }
        assert_eq!(m.iter().count(), model.len());
        // Earlier clones kept their contents while the map changed.
        for (snap, model) in &snapshots {
            assert_eq!(snap.len(), model.len());
            assert_eq!(snap.iter().count(), model.len());
            for (k, v) in snap.iter() {
                assert_eq!(model.get(k), Some(v));
            }
        }
        let keys: Vec<String> = model.keys().cloned().collect();
        for k in keys {
            assert_eq!(m.remove(k.as_str()), model.remove(&k));
        }
        assert!(m.is_empty());
        assert!(m.root.is_none(), "an emptied map holds no branch");
    }

    #[test]
    fn full_hash_collisions_are_kept_apart() {
        // Below 64 bits of hash, keys live in a collision list: exercise it directly.
        let mut arc: Arc<Branch<u32, u32>> = Arc::new(Branch::empty());
        for k in 0..5 {
            assert_eq!(insert_in(&mut arc, 0, 64, k, k * 10), None);
        }
        assert_eq!(insert_in(&mut arc, 0, 64, 3, 33), Some(30));
        assert_eq!(get_mut_in(&mut arc, 0, 64, &3).copied(), Some(33));
        assert_eq!(remove_in(&mut arc, 0, 64, &2), Some(20));
        assert_eq!(remove_in(&mut arc, 0, 64, &2), None);
        assert_eq!(arc.entries.len(), 4);
    }
}
