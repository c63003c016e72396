//! The per-user cache of origin codes, keyed by the verified subject.
//!
//! An entry holds the origin's [`CodeView`], its JSON body ready to send, its HTML page
//! (rendered on first use, with the reload time filled in per answer) and when it was
//! fetched. It is **fresh** for `ttl`; after that it is **stale** but still served while the
//! code has at least [`MIN_VALIDITY_SECS`] left and the entry is younger than `max_stale`;
//! otherwise it is **unusable** (kept only as a known colour for the fallback issuer until
//! moka drops it at `max_stale`). Only origin codes are ever inserted: fallback codes and
//! errors never are.
//!
//! Bounds: moka counts weight in bytes up to `max_bytes`, and every entry weighs at least
//! `max_bytes / max_entries`, so the cache also never holds more than `max_entries`.
//!
//! The change feed ([`CodeCache::apply`]): a change drops the subject's entry unless the
//! cached code is newer and at least as strict; a reset drops everything. A fetch that was in
//! flight when its subject changed must not bring the old colour back, so each change also
//! leaves a short-lived note, and each reset bumps an epoch; [`CodeCache::insert`] refuses a
//! code older than a note, or fetched before the last reset.
//!
//! [`CacheStats`] counts lookups of the display path (hits, misses) and callers that joined an
//! origin fetch already in flight, for metrics.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use shouhu_code::time::UnixTime;
use shouhu_code::{CodeView, SubjectId};
use shouhu_fallback::Known;
use shouhu_fallback::snapshot::FeedEvent;
use tokio::time::Instant;

use crate::display::body::PageTemplate;

/// A cached code is served (fresh or stale) only while it has this long left: the page reloads
/// this long before expiry ([`shouhu_code::page::REFRESH_BEFORE_EXPIRY_SECS`]).
pub const MIN_VALIDITY_SECS: u64 = shouhu_code::page::REFRESH_BEFORE_EXPIRY_SECS;
/// How long a feed change is remembered against fetches that were in flight.
pub const NOTE_TTL: Duration = Duration::from_secs(60);
/// Feed changes remembered at most.
pub const MAX_NOTES: u64 = 100_000;
/// Estimated bytes of an entry beyond its JSON: the view's strings and the HTML page with
/// its QR (about 25 KiB for a real code), so the byte bound holds before any page renders.
pub const ENTRY_OVERHEAD_BYTES: u32 = 32 * 1024;

/// What [`CodeCache`] needs from the config.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheLimits {
    /// Fresh for this long.
    pub ttl: Duration,
    /// Served stale up to this age.
    pub max_stale: Duration,
    /// Entries at most.
    pub max_entries: u64,
    /// Bytes at most (approximate).
    pub max_bytes: u64,
}

impl CacheLimits {
    /// From the `[cache]` section.
    #[must_use]
    pub fn from_config(c: &shouhu_config::proxy::Cache) -> Self {
        Self {
            ttl: c.ttl.into(),
            max_stale: c.max_stale.into(),
            max_entries: c.max_entries.get(),
            max_bytes: c.max_bytes.bytes(),
        }
    }
}

/// How usable a cached code is now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Freshness {
    /// Serve it; no need to ask the origin.
    Fresh,
    /// Serve it, and refresh it in the background.
    Stale,
    /// Do not serve it; its colour and as-of still count as known to the fallback issuer.
    Unusable,
}

/// One cached origin code.
#[derive(Debug)]
pub struct Entry {
    view: CodeView,
    json: Bytes,
    page: std::sync::OnceLock<PageTemplate>,
    fetched: Instant,
    /// Milliseconds after `fetched` of the last background refresh started, plus one; 0: none.
    refreshed_at: AtomicU64,
}

impl Entry {
    /// An entry for a code the origin just answered.
    #[must_use]
    pub fn new(view: CodeView, fetched: Instant) -> Self {
        let json = crate::display::body::view_json(&view);
        Self {
            view,
            json,
            page: std::sync::OnceLock::new(),
            fetched,
            refreshed_at: AtomicU64::new(0),
        }
    }

    /// The code.
    #[must_use]
    pub fn view(&self) -> &CodeView {
        &self.view
    }

    /// The JSON body (shared, not copied).
    #[must_use]
    pub fn json(&self) -> Bytes {
        self.json.clone()
    }

    /// The HTML page served at `now`.
    #[must_use]
    pub fn html(&self, now: UnixTime) -> Bytes {
        self.page
            .get_or_init(|| PageTemplate::new(&self.view))
            .render(self.view.refresh_after_secs(now))
    }

    /// The colour and as-of, for the fallback issuer.
    #[must_use]
    pub fn known(&self) -> Known {
        Known {
            colour: self.view.colour,
            as_of: self.view.as_of,
        }
    }

    /// How usable it is at `now` (monotonic) and `unix_now`.
    #[must_use]
    pub fn freshness(&self, limits: &CacheLimits, now: Instant, unix_now: UnixTime) -> Freshness {
        if !self.valid_at(unix_now) {
            return Freshness::Unusable;
        }
        let age = now.saturating_duration_since(self.fetched);
        if age < limits.ttl {
            Freshness::Fresh
        } else if age < limits.max_stale {
            Freshness::Stale
        } else {
            Freshness::Unusable
        }
    }

    /// Whether the code has at least [`MIN_VALIDITY_SECS`] left at `unix_now`.
    #[must_use]
    pub fn valid_at(&self, unix_now: UnixTime) -> bool {
        self.view.expires_at >= unix_now.saturating_add(MIN_VALIDITY_SECS)
    }

    /// Claims a background refresh of this entry at `now`: true at most once per `every`,
    /// so a storm of stale hits starts one fetch, and a failed one is retried later.
    pub fn claim_refresh(&self, now: Instant, every: Duration) -> bool {
        let at = u64::try_from(now.saturating_duration_since(self.fetched).as_millis())
            .unwrap_or(u64::MAX)
            .saturating_add(1);
        let last = self.refreshed_at.load(Ordering::Acquire);
        let every = u64::try_from(every.as_millis()).unwrap_or(u64::MAX);
        (last == 0 || at >= last.saturating_add(every))
            && self
                .refreshed_at
                .compare_exchange(last, at, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
    }

    fn weight(&self, floor: u32) -> u32 {
        let own = u32::try_from(self.json.len())
            .unwrap_or(u32::MAX)
            .saturating_add(ENTRY_OVERHEAD_BYTES);
        own.max(floor)
    }
}

/// Totals since start, counted by the display path with relaxed atomic additions.
#[derive(Debug, Default)]
pub struct CacheStats {
    hits: AtomicU64,
    misses: AtomicU64,
    coalesced: AtomicU64,
}

impl CacheStats {
    /// A lookup found a code it could serve (fresh or stale).
    pub fn hit(&self) {
        self.hits.fetch_add(1, Ordering::Relaxed);
    }

    /// A lookup found nothing it could serve (absent, or unusable).
    pub fn miss(&self) {
        self.misses.fetch_add(1, Ordering::Relaxed);
    }

    /// A caller waited on an origin fetch another caller had started for the same subject.
    pub fn coalesced(&self) {
        self.coalesced.fetch_add(1, Ordering::Relaxed);
    }

    /// Hits so far.
    #[must_use]
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    /// Misses so far.
    #[must_use]
    pub fn misses(&self) -> u64 {
        self.misses.load(Ordering::Relaxed)
    }

    /// Coalesced waits so far.
    #[must_use]
    pub fn coalesced_waits(&self) -> u64 {
        self.coalesced.load(Ordering::Relaxed)
    }
}

/// The cache; share it in an `Arc`.
pub struct CodeCache {
    limits: CacheLimits,
    stats: CacheStats,
    entries: moka::sync::Cache<SubjectId, Arc<Entry>>,
    notes: moka::sync::Cache<SubjectId, Known>,
    epoch: AtomicU64,
}

impl std::fmt::Debug for CodeCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CodeCache")
            .field("limits", &self.limits)
            .field("entries", &self.entries.entry_count())
            .finish_non_exhaustive()
    }
}

impl CodeCache {
    /// An empty cache.
    #[must_use]
    pub fn new(limits: CacheLimits) -> Self {
        let floor =
            u32::try_from(limits.max_bytes.div_ceil(limits.max_entries.max(1))).unwrap_or(u32::MAX);
        Self {
            entries: moka::sync::Cache::builder()
                .max_capacity(limits.max_bytes.max(1))
                .weigher(move |_, e: &Arc<Entry>| e.weight(floor))
                .time_to_live(limits.max_stale.max(Duration::from_millis(1)))
                .build(),
            notes: moka::sync::Cache::builder()
                .max_capacity(MAX_NOTES)
                .time_to_live(NOTE_TTL)
                .build(),
            epoch: AtomicU64::new(0),
            stats: CacheStats::default(),
            limits,
        }
    }

    /// The lookup counts, for metrics.
    #[must_use]
    pub fn stats(&self) -> &CacheStats {
        &self.stats
    }

    /// The limits.
    #[must_use]
    pub fn limits(&self) -> &CacheLimits {
        &self.limits
    }

    /// The subject's entry, whatever its freshness.
    #[must_use]
    pub fn get(&self, subject: &SubjectId) -> Option<Arc<Entry>> {
        self.entries.get(subject)
    }

    /// The epoch to pass to [`CodeCache::insert`]: read it before asking the origin.
    #[must_use]
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Caches an origin code fetched since `epoch`, unless the feed has since said something
    /// newer about the subject (see the module docs). Returns whether it was cached.
    pub fn insert(&self, subject: SubjectId, entry: Arc<Entry>, epoch: u64) -> bool {
        if self.epoch() != epoch {
            return false;
        }
        if let Some(note) = self.notes.get(&subject)
            && !supersedes(&entry.known(), &note)
        {
            return false;
        }
        self.entries.insert(subject, entry);
        // A reset between the check and the insert must not leave the old code behind.
        if self.epoch() != epoch {
            self.entries.invalidate(&subject);
            return false;
        }
        true
    }

    /// Drops one subject's entry.
    pub fn invalidate(&self, subject: &SubjectId) {
        self.entries.invalidate(subject);
    }

    /// Follows one change-feed event.
    pub fn apply(&self, event: &FeedEvent) {
        match event {
            FeedEvent::Reset => {
                self.epoch.fetch_add(1, Ordering::AcqRel);
                self.entries.invalidate_all();
            }
            FeedEvent::Changes(changes) => {
                for change in changes {
                    let note = Known {
                        colour: change.colour,
                        as_of: change.as_of,
                    };
                    self.notes.insert(change.subject, note);
                    if let Some(entry) = self.entries.get(&change.subject)
                        && !supersedes(&entry.known(), &note)
                    {
                        self.entries.invalidate(&change.subject);
                    }
                }
            }
        }
    }

    /// Entries now (approximate; moka counts lazily).
    #[must_use]
    pub fn entry_count(&self) -> u64 {
        self.entries.entry_count()
    }

    /// Weight now, about bytes (approximate).
    #[must_use]
    pub fn weighted_size(&self) -> u64 {
        self.entries.weighted_size()
    }

    /// Runs moka's pending evictions (tests and `/status` want exact counts).
    pub fn run_pending_tasks(&self) {
        self.entries.run_pending_tasks();
    }
}

/// Whether a cached code may stand against a feed change: it must be newer, or as new and at
/// least as strict (the order the snapshot itself keeps), so a cached green never outlives a
/// newer red. An older change says nothing the cached code did not know: a follower running
/// behind must not drop, or refuse to cache, a green the origin issued after the red it is
/// still reading about. Equal seconds are common: the origin publishes every code it issues
/// with the code's own as-of second.
fn supersedes(cached: &Known, change: &Known) -> bool {
    (cached.as_of, cached.colour.strictness()) >= (change.as_of, change.colour.strictness())
}

#[cfg(test)]
mod tests {
    use shouhu_code::{Colour, Source};
    use shouhu_fallback::snapshot::{FeedEntry, FeedId};

    use super::*;

    const NOW: UnixTime = 1_800_000_000;

    fn view(colour: Colour, as_of: UnixTime, expires_at: UnixTime) -> CodeView {
        CodeView {
            code: "HZ1:TEST".to_owned(),
            colour,
            source: Source::Origin,
            issued_at: as_of,
            expires_at,
            as_of,
            masked_name: "张*".to_owned(),
            id_last4: "123X".to_owned(),
        }
    }

    fn limits() -> CacheLimits {
        CacheLimits {
            ttl: Duration::from_secs(30),
            max_stale: Duration::from_secs(300),
            max_entries: 1000,
            max_bytes: 1 << 30,
        }
    }

    fn change(subject: SubjectId, colour: Colour, as_of: UnixTime) -> FeedEvent {
        FeedEvent::Changes(vec![FeedEntry {
            id: FeedId::ZERO,
            subject,
            colour,
            as_of,
        }])
    }

    #[tokio::test(start_paused = true)]
    async fn fresh_then_stale_then_unusable() {
        let l = limits();
        let t0 = Instant::now();
        let e = Entry::new(view(Colour::Green, NOW, NOW + 600), t0);
        assert_eq!(e.freshness(&l, t0, NOW), Freshness::Fresh);
        let t = t0 + Duration::from_secs(30);
        assert_eq!(e.freshness(&l, t, NOW + 30), Freshness::Stale);
        let t = t0 + Duration::from_secs(299);
        assert_eq!(e.freshness(&l, t, NOW + 299), Freshness::Stale);
        let t = t0 + Duration::from_secs(300);
        assert_eq!(e.freshness(&l, t, NOW + 300), Freshness::Unusable);
    }

    #[tokio::test(start_paused = true)]
    async fn a_code_near_its_expiry_is_never_served() {
        let l = limits();
        let t0 = Instant::now();
        let e = Entry::new(view(Colour::Green, NOW, NOW + 100), t0);
        assert_eq!(e.freshness(&l, t0, NOW + 80), Freshness::Fresh);
        assert_eq!(e.freshness(&l, t0, NOW + 81), Freshness::Unusable);
    }

    #[test]
    fn a_newer_red_drops_a_cached_green_and_blocks_fetches_in_flight() {
        let cache = CodeCache::new(limits());
        let s = SubjectId([1; 16]);
        let green = || {
            Arc::new(Entry::new(
                view(Colour::Green, NOW, NOW + 600),
                Instant::now(),
            ))
        };
        assert!(cache.insert(s, green(), cache.epoch()));
        cache.apply(&change(s, Colour::Red, NOW + 5));
        assert!(cache.get(&s).is_none());
        // A fetch that started before the change answers the old green: not cached.
        assert!(!cache.insert(s, green(), cache.epoch()));
        // A newer origin code is.
        let newer = Arc::new(Entry::new(
            view(Colour::Red, NOW + 6, NOW + 600),
            Instant::now(),
        ));
        assert!(cache.insert(s, newer, cache.epoch()));
    }

    #[test]
    fn an_older_stricter_change_read_late_keeps_a_newer_green_but_one_as_new_drops_it() {
        let cache = CodeCache::new(limits());
        let s = SubjectId([3; 16]);
        let green = |as_of| {
            Arc::new(Entry::new(
                view(Colour::Green, as_of, NOW + 600),
                Instant::now(),
            ))
        };
        // The follower, running behind, reads a red the origin has since cleared.
        cache.apply(&change(s, Colour::Red, NOW - 10));
        assert!(cache.insert(s, green(NOW), cache.epoch()));
        cache.apply(&change(s, Colour::Yellow, NOW - 5));
        assert!(cache.get(&s).is_some());
        // A red of the same second as the green wins.
        cache.apply(&change(s, Colour::Red, NOW));
        assert!(cache.get(&s).is_none());
        assert!(!cache.insert(s, green(NOW), cache.epoch()));
    }

    #[test]
    fn an_older_change_keeps_a_newer_as_strict_code() {
        let cache = CodeCache::new(limits());
        let s = SubjectId([2; 16]);
        let red = Arc::new(Entry::new(
            view(Colour::Red, NOW, NOW + 600),
            Instant::now(),
        ));
        assert!(cache.insert(s, red, cache.epoch()));
        cache.apply(&change(s, Colour::Yellow, NOW - 10));
        assert!(cache.get(&s).is_some());
        // Same as-of: the origin's own feed entry for this very code, or a laxer one, keeps it.
        cache.apply(&change(s, Colour::Red, NOW));
        cache.apply(&change(s, Colour::Green, NOW));
        assert!(cache.get(&s).is_some());
    }

    #[test]
    fn a_stricter_change_of_the_same_second_drops_the_code() {
        let cache = CodeCache::new(limits());
        let s = SubjectId([4; 16]);
        let green = Arc::new(Entry::new(
            view(Colour::Green, NOW, NOW + 600),
            Instant::now(),
        ));
        assert!(cache.insert(s, green, cache.epoch()));
        cache.apply(&change(s, Colour::Green, NOW));
        assert!(cache.get(&s).is_some(), "its own feed entry keeps the code");
        cache.apply(&change(s, Colour::Yellow, NOW));
        assert!(cache.get(&s).is_none());
    }

    #[test]
    fn a_reset_drops_everything_and_fetches_begun_before_it() {
        let cache = CodeCache::new(limits());
        let e = || {
            Arc::new(Entry::new(
                view(Colour::Green, NOW, NOW + 600),
                Instant::now(),
            ))
        };
        let before = cache.epoch();
        for i in 0..10 {
            assert!(cache.insert(SubjectId([i; 16]), e(), before));
        }
        cache.apply(&FeedEvent::Reset);
        cache.run_pending_tasks();
        assert_eq!(cache.entry_count(), 0);
        assert!(!cache.insert(SubjectId([1; 16]), e(), before));
        assert!(cache.insert(SubjectId([1; 16]), e(), cache.epoch()));
    }

    #[test]
    fn bounded_in_entries_and_in_bytes() {
        let e = || {
            Arc::new(Entry::new(
                view(Colour::Green, NOW, NOW + 600),
                Instant::now(),
            ))
        };
        let by_count = CodeCache::new(CacheLimits {
            max_entries: 50,
            ..limits()
        });
        for i in 0..2000u32 {
            let mut id = [0u8; 16];
            id[..4].copy_from_slice(&i.to_le_bytes());
            by_count.insert(SubjectId(id), e(), 0);
        }
        by_count.run_pending_tasks();
        assert!(by_count.entry_count() <= 50, "{}", by_count.entry_count());
        assert!(by_count.entry_count() > 0);

        let by_bytes = CodeCache::new(CacheLimits {
            max_bytes: 10 * u64::from(ENTRY_OVERHEAD_BYTES),
            ..limits()
        });
        for i in 0..2000u32 {
            let mut id = [0u8; 16];
            id[..4].copy_from_slice(&i.to_le_bytes());
            by_bytes.insert(SubjectId(id), e(), 0);
        }
        by_bytes.run_pending_tasks();
        assert!(by_bytes.entry_count() < 10, "{}", by_bytes.entry_count());
        assert!(by_bytes.weighted_size() <= 10 * u64::from(ENTRY_OVERHEAD_BYTES));
    }
}
