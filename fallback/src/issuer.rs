//! The stateless fallback issuer: for a verified subject, read the snapshot, apply the
//! [`policy`](crate::policy), and sign a code with `source = fallback` using the newest
//! active fallback key. Used in-process by the proxy and by the standalone `shouhu issuer`.

use std::sync::{Arc, RwLock};

use shouhu_code::time::UnixTime;
use shouhu_code::{Claims, CodeId, CodeView, Region, Source, SubjectId, TrustList};

use crate::keyring::Keyring;
use crate::policy::{Basis, Decision, Known, Policy, decide};
use crate::snapshot::{Lookup, SnapshotError, SnapshotStore};

/// Why no code was signed. A snapshot that cannot be read is not an error (the code says
/// `unknown`); these are faults of the issuer itself.
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    /// No fallback key is valid now (all expired or not yet valid).
    #[error("no fallback signing key is valid at {0}")]
    NoActiveKey(UnixTime),
    /// Signing failed (a claim out of range, a key refusing the claims).
    #[error("signing: {0}")]
    Sign(#[from] shouhu_code::SignError),
    /// The system has no randomness for the code id.
    #[error("no randomness for the code id: {0}")]
    Random(String),
}

/// A signed fallback code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Issued {
    /// The `HZ1:` text.
    pub text: String,
    /// What it says.
    pub claims: Claims,
    /// Why it shows this colour.
    pub basis: Basis,
    /// Whether the snapshot could be read (false: Redis was down or slow).
    pub snapshot_read: bool,
}

impl Issued {
    /// The citizen-facing JSON view (the same as the origin's).
    #[must_use]
    pub fn view(&self) -> CodeView {
        CodeView::new(&self.claims, &self.text)
    }
}

/// The issuer; cheap to clone.
#[derive(Clone, Debug)]
pub struct Issuer {
    store: SnapshotStore,
    keys: Arc<RwLock<Keyring>>,
    region: Region,
    policy: Policy,
}

impl Issuer {
    /// An issuer for `region` signing with `keys`.
    #[must_use]
    pub fn new(store: SnapshotStore, keys: Keyring, region: Region, policy: Policy) -> Self {
        Self {
            store,
            keys: Arc::new(RwLock::new(keys)),
            region,
            policy,
        }
    }

    /// The snapshot store.
    #[must_use]
    pub fn store(&self) -> &SnapshotStore {
        &self.store
    }

    /// The policy.
    #[must_use]
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Replaces the keys (after a rotation); codes already issued stay valid as long as their
    /// keys stay in the trust list.
    pub fn set_keys(&self, keys: Keyring) {
        if let Ok(mut k) = self.keys.write() {
            *k = keys;
        }
    }

    /// The trust list of every key the issuer knows.
    #[must_use]
    pub fn trust_list(&self) -> TrustList {
        match self.keys.read() {
            Ok(k) => k.trust_list().clone(),
            Err(poisoned) => poisoned.into_inner().trust_list().clone(),
        }
    }

    /// Reads the snapshot and signs a code for `subject` at `now`. `known` is a colour the
    /// caller knows from elsewhere (see the policy). A snapshot that cannot be read counts
    /// as "no record" and is reported in [`Issued::snapshot_read`].
    ///
    /// # Errors
    /// See [`IssueError`].
    pub async fn issue(
        &self,
        subject: &SubjectId,
        known: Option<Known>,
        now: UnixTime,
    ) -> Result<Issued, IssueError> {
        let lookup = self.store.get(subject).await;
        self.issue_from(subject, lookup.as_ref(), known, now)
    }

    /// Signs a code from a lookup already made (no I/O).
    ///
    /// # Errors
    /// See [`IssueError`].
    pub fn issue_from(
        &self,
        subject: &SubjectId,
        lookup: Result<&Lookup, &SnapshotError>,
        known: Option<Known>,
        now: UnixTime,
    ) -> Result<Issued, IssueError> {
        let lookup = lookup.ok();
        let Decision {
            colour,
            basis,
            as_of,
            expires_at,
        } = decide(lookup, known, now, &self.policy);
        // Display fields only when the code shows the record's own colour or the record
        // exists: they identify the holder at staffed lanes whatever the colour.
        let record = lookup.and_then(|l| l.record.as_ref());
        let claims = Claims {
            issuer: self.region.clone(),
            issued_at: now,
            expires_at,
            code_id: CodeId::random().map_err(|e| IssueError::Random(e.to_string()))?,
            colour,
            subject: *subject,
            masked_name: record.map(|r| r.masked_name.clone()).unwrap_or_default(),
            id_last4: record.map(|r| r.id_last4.clone()).unwrap_or_default(),
            source: Source::Fallback,
            as_of,
            ruleset_version: record.map_or(0, |r| r.ruleset_version),
        };
        let text = {
            let keys = match self.keys.read() {
                Ok(k) => k,
                Err(poisoned) => poisoned.into_inner(),
            };
            let signer = keys.signer(now).ok_or(IssueError::NoActiveKey(now))?;
            signer.sign(&claims)?
        };
        Ok(Issued {
            text,
            claims,
            basis,
            snapshot_read: lookup.is_some(),
        })
    }
}
