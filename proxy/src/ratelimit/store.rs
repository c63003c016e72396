//! A governor state store that holds at most a fixed number of keys.
//!
//! governor's `DashMapStateStore` grows with every key it sees until `retain_recent` runs;
//! keys are cheap to make (a new address per request from an IPv6 block), so between two
//! clean-ups an unbounded store is a memory lever for anyone. This one is the same DashMap of
//! the same per-key state, plus a count: once `max` keys are held, a new key is decided as a
//! fresh one and not stored (its request passes this limit) until housekeeping frees room.
//! Failing open is deliberate: failing closed would let a flood of new keys refuse everyone
//! new, and the global limit and the admission limit still stand behind this one.

use std::hash::Hash;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use dashmap::DashMap;
use dashmap::mapref::entry::Entry;
use governor::nanos::Nanos;
use governor::state::keyed::ShrinkableKeyedStateStore;
use governor::state::{InMemoryState, NotKeyed, StateStore};

/// Per-key rate-limit state, at most `max` keys.
pub(super) struct BoundedStore<K> {
    map: DashMap<K, InMemoryState>,
    /// Keys held: counted up on insert, set exact by `retain_recent`. Concurrent inserts may
    /// pass `max` by at most one per thread.
    len: AtomicUsize,
    max: usize,
    /// Decisions made for keys not stored because the store was full; shared with the
    /// owner, as governor does not lend its store out.
    untracked: Arc<AtomicU64>,
}

impl<K: Hash + Eq> BoundedStore<K> {
    /// A store of at most `max` keys that counts the decisions it made untracked into
    /// `untracked`.
    pub(super) fn new(max: usize, untracked: Arc<AtomicU64>) -> Self {
        Self {
            map: DashMap::new(),
            len: AtomicUsize::new(0),
            max,
            untracked,
        }
    }
}

impl<K: Hash + Eq + Clone> StateStore for BoundedStore<K> {
    type Key = K;

    fn measure_and_replace<T, F, E>(&self, key: &K, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        // The common case: a known key, under a shard read lock, no allocation.
        if let Some(state) = self.map.get(key) {
            return state.measure_and_replace(&NotKeyed::NonKey, f);
        }
        if self.len.load(Ordering::Relaxed) >= self.max {
            self.untracked.fetch_add(1, Ordering::Relaxed);
            // `None` is the state of a key never seen: a full bucket.
            return f(None).map(|(decision, _)| decision);
        }
        let state = match self.map.entry(key.clone()) {
            // Another thread inserted it since the `get`.
            Entry::Occupied(entry) => entry.into_ref(),
            Entry::Vacant(entry) => {
                self.len.fetch_add(1, Ordering::Relaxed);
                entry.insert(InMemoryState::default())
            }
        };
        state.measure_and_replace(&NotKeyed::NonKey, f)
    }
}

impl<K: Hash + Eq + Clone> ShrinkableKeyedStateStore<K> for BoundedStore<K> {
    fn retain_recent(&self, drop_below: Nanos) {
        ShrinkableKeyedStateStore::retain_recent(&self.map, drop_below);
        self.len.store(self.map.len(), Ordering::Relaxed);
    }

    fn shrink_to_fit(&self) {
        self.map.shrink_to_fit();
    }

    fn len(&self) -> usize {
        self.map.len()
    }

    fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}
