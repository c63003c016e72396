//! `SIGHUP`: re-read the config and apply what can change while running, without dropping a
//! connection. Routes and deadlines, the anonymous paths, the cookie name, origin timeouts,
//! `scan.verify_at_edge`, the breaker's thresholds, `[admission]` and `origin.max_in_flight`,
//! the waiting room's rate and timings,
//! `journal.max_body` and the keys (the session key, the origin's trust list, the fallback
//! keys in the key folder) are replaced together, or not at all: a config that does not
//! load, or keys that do not, leave the running config in force and say why in the log.
//! Fields that need a restart (listeners, threads, data folder, origin URL, Redis, cache
//! sizes, ...) are named in a warning when they differ.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use shouhu_code::TrustList;
use shouhu_config::ProxyConfig;
use shouhu_fallback::{Issuer, Keyring};

use super::bootstrap::{IDENTITY_ENTRIES, live, merge, origin_trust_list, session_key};
use crate::admission::{Admission, AdmissionConfig};
use crate::breaker::{Breaker, BreakerConfig};
use crate::identity::Identity;
use crate::metrics::Metrics;
use crate::service::{EdgeTrust, Live};
use crate::waiting_room::WaitingRoom;

/// How long a reload waits for the origin to publish its session key.
const ORIGIN_KEY_WAIT: Duration = Duration::from_millis(500);

/// A new config from its file: the same loader and flags as at start-up.
pub type ConfigSource = Box<dyn Fn() -> Result<ProxyConfig, String> + Send + Sync>;

/// Everything a reload touches.
pub(super) struct Reloader {
    pub running: Mutex<ProxyConfig>,
    pub live: Arc<ArcSwap<Live>>,
    /// The session key text in force and its verifier with its cache of verified tokens.
    pub identity: Mutex<(String, Arc<Identity>)>,
    pub breaker: Arc<Breaker>,
    pub admission: Arc<Admission>,
    pub trust: Arc<EdgeTrust>,
    /// The origin's part of the edge trust list, kept when the origin cannot be asked.
    pub origin_trust: Mutex<TrustList>,
    pub issuer: Option<Issuer>,
    pub http: reqwest::Client,
    pub base: String,
    pub metrics: Arc<Metrics>,
    pub waiting_room: Option<Arc<WaitingRoom>>,
}

impl Reloader {
    /// Loads the config from `source` and applies it; logs and counts the result.
    pub async fn reload(&self, source: &ConfigSource) {
        let result = match source() {
            Ok(config) => self.apply(config).await,
            Err(e) => Err(e),
        };
        match result {
            Ok(()) => {
                self.metrics.config_reload(true);
                tracing::info!("config reloaded");
            }
            Err(e) => {
                self.metrics.config_reload(false);
                tracing::error!("config reload refused, the running config stays in force: {e}");
            }
        }
    }

    /// Applies a config that loaded: first everything that can fail, then the swaps.
    async fn apply(&self, config: ProxyConfig) -> Result<(), String> {
        let key = session_key(&config, &self.http, &self.base, ORIGIN_KEY_WAIT).await;
        let (key_text, identity) = {
            let current = lock(&self.identity);
            match key {
                Ok(key) if key.text == current.0 => (key.text, Arc::clone(&current.1)),
                Ok(key) => {
                    tracing::info!("session key changed");
                    let identity = Arc::new(Identity::new(key.verifier, IDENTITY_ENTRIES));
                    (key.text, identity)
                }
                // The origin may be down while the operator reloads routes: keep its key.
                Err(e) if config.identity.session_key_file.is_none() => {
                    tracing::warn!(error = %e, "session key not refreshed; the current one stays");
                    (current.0.clone(), Arc::clone(&current.1))
                }
                Err(e) => return Err(e.to_string()),
            }
        };
        let keyring = if self.issuer.is_some() {
            Some(
                Keyring::load(&config.fallback_key_dir(), &config.fallback.region)
                    .map_err(|e| format!("fallback keys: {e}"))?,
            )
        } else {
            None
        };
        let origin_trust = match origin_trust_list(&self.http, &self.base).await {
            Ok(list) => list,
            Err(e) => {
                tracing::warn!(error = %e, "origin trust list not refreshed; the current one stays");
                lock(&self.origin_trust).clone()
            }
        };
        let ours = match (&keyring, &self.issuer) {
            (Some(k), _) => k.trust_list().clone(),
            (None, Some(issuer)) => issuer.trust_list(),
            (None, None) => TrustList::default(),
        };
        let trust = merge(&origin_trust, &ours).map_err(|e| e.to_string())?;

        let mut running = lock(&self.running);
        let restart = needs_restart(&running, &config);
        if !restart.is_empty() {
            tracing::warn!(
                fields = %restart.join(", "),
                "changed in the config but only take effect after a restart"
            );
        }
        if let (Some(issuer), Some(keyring)) = (&self.issuer, keyring) {
            issuer.set_keys(keyring);
        }
        self.trust.set(trust);
        *lock(&self.origin_trust) = origin_trust;
        self.breaker
            .reconfigure(BreakerConfig::from_config(&config.breaker));
        self.admission.reconfigure(AdmissionConfig::from_config(
            &config.admission,
            config.origin.max_in_flight,
        ));
        self.live
            .store(Arc::new(live(&config, Arc::clone(&identity))));
        *lock(&self.identity) = (key_text, identity);
        if let Some(room) = &self.waiting_room {
            room.reconfigure(&config.waiting_room);
        }
        *running = config;
        Ok(())
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The fields that differ between `old` and `new` but are only read at start-up.
fn needs_restart(old: &ProxyConfig, new: &ProxyConfig) -> Vec<&'static str> {
    let mut fields = Vec::new();
    let mut check = |name: &'static str, same: bool| {
        if !same {
            fields.push(name);
        }
    };
    check("data_dir", old.data_dir == new.data_dir);
    check("server", old.server == new.server);
    check("origin.url", old.origin.url == new.origin.url);
    check(
        "origin.keepalive_pool",
        old.origin.keepalive_pool == new.origin.keepalive_pool,
    );
    check("cache", old.cache == new.cache);
    let mut fallback = new.fallback.clone();
    fallback.key_dir.clone_from(&old.fallback.key_dir);
    check("fallback", old.fallback == fallback);
    check(
        "journal.enabled",
        old.journal.enabled == new.journal.enabled,
    );
    check(
        "journal.replay_rate",
        old.journal.replay_rate == new.journal.replay_rate,
    );
    check(
        "journal.consumer",
        old.journal.consumer == new.journal.consumer,
    );
    fields
}
