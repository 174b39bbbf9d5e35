//! The hub's side of the audit log: the one-line `record` every operation calls (with the
//! actor of the calling session, through the redaction net), and the operations behind
//! `shh audit …`.

use crate::core::{Call, Core};
use crate::{Hub, Result, Session, Task};
use serde::{Deserialize, Serialize};
use shh_audit::{Actor, AuditLog, Draft, Signer};
use shh_sink::Sink;

pub use shh_audit::{
    Event, EventFilter, ExportSummary, InclusionProof, PublicKey, SignedTreeHead, VerifyReport,
};
use shh_keys::KeyPurpose;

pub use shh_audit::{Outcome, merkle};

/// A verification of the stored log.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct AuditVerifyRequest {
    /// Signed heads the auditor kept: the log must still agree with each.
    pub known_heads: Vec<SignedTreeHead>,
}

/// The auditor's copy of the log.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct AuditExportRequest {
    /// The copy's name in the caller's sink (a directory name for a local one).
    pub name: String,
}

/// An inclusion proof.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct AuditProofRequest {
    /// The event.
    pub seq: u64,
    /// The tree the proof is for (default: the latest signed head's).
    pub size: Option<u64>,
}

/// Verifies an exported copy of the log in `dir` against the hub's public keys (and heads the
/// auditor kept), without the hub: what an auditor runs.
pub fn verify_export(
    dir: &std::path::Path,
    keys: &[PublicKey],
    known: Vec<SignedTreeHead>,
) -> Result<VerifyReport> {
    Ok(shh_audit::verify_export(dir, keys, known)?)
}

impl Core {
    pub(crate) fn audit_signer(&self) -> Result<Signer> {
        let key = self
            .keystore
            .current(KeyPurpose::AuditSigning)
            .ok_or_else(|| crate::HubError::Config {
                path: self.keystore.path().to_owned(),
                reason: "no audit-signing key".into(),
            })?;
        Ok(Signer::from_seed(key.secret())?)
    }

    /// The audit log (opened on first use: listing commands never touch it).
    pub(crate) async fn audit_log(&self) -> Result<&AuditLog> {
        self.audit
            .get_or_try_init(|| async {
                let store: std::sync::Arc<dyn object_store::ObjectStore> = self.store.clone();
                Ok(AuditLog::open(store, &self.config.hub_id, self.audit_signer()?).await?)
            })
            .await
    }

    /// The public key auditors verify with.
    pub(crate) fn audit_public_key(&self) -> Result<PublicKey> {
        Ok(self.audit_signer()?.public())
    }

    /// Records an event as `actor` and returns its sequence number once it is durable. Callers return
    /// their own result only after this succeeds.
    pub(crate) async fn record_as(&self, mut actor: Actor, event: Draft) -> Result<u64> {
        // The last net: whatever reached a message or a detail, no direct identifier is signed
        // into the log.
        let event = event.map_strings(&crate::guard::redact);
        crate::guard::redact_actor(&mut actor.id);
        crate::guard::redact_actor(&mut actor.role);
        Ok(self.audit_log().await?.append(&actor, event).await?)
    }
}

impl Call<'_> {
    /// Records an event with the session's actor and returns its sequence number once it is
    /// durable. Callers return their own result only after this succeeds.
    pub(crate) async fn record(&self, event: Draft) -> Result<u64> {
        self.record_as(self.session.actor(), event).await
    }

    /// Runs `op` and, if it fails, records `event` as failed with the error's message (which
    /// names files, lines and fields, never a value, and passes the redaction net) before
    /// returning the error: a command that touches data leaves an event whether it succeeds
    /// or not. If even that event cannot be recorded, the operation's own error is returned.
    pub(crate) async fn audited<T>(
        &self,
        event: Draft,
        op: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        match op.await {
            Ok(v) => Ok(v),
            Err(e) => {
                let _ = self.record(event.failed(e.to_string())).await;
                Err(e)
            }
        }
    }

    /// Records `event`, then runs `op` (a change of the catalog): what `op` makes visible is
    /// never visible without its event, and its failure is recorded after it as `event`
    /// failed.
    pub(crate) async fn recorded<T>(
        &self,
        event: Draft,
        op: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        self.record(event.clone()).await?;
        match op.await {
            Ok(v) => Ok(v),
            Err(e) => {
                self.record(event.failed(e.to_string())).await?;
                Err(e)
            }
        }
    }

    /// Events matching `filter`, in order.
    async fn audit_events(&self, filter: &EventFilter) -> Result<Vec<Event>> {
        let mut out = Vec::new();
        self.audit_log()
            .await?
            .for_each_event(|e| {
                if filter.matches(&e) {
                    out.push(e)
                }
            })
            .await?;
        Ok(out)
    }

    /// Verifies the stored log (and its agreement with heads the auditor kept).
    async fn audit_verify(&self, known: Vec<SignedTreeHead>) -> Result<VerifyReport> {
        Ok(self.audit_log().await?.verify(known).await?)
    }

    /// Exports the log for an auditor; the export itself is recorded (after it, so the copy
    /// ends at a signed head).
    async fn audit_export(&self, name: &str, sink: &dyn Sink) -> Result<ExportSummary> {
        crate::guard::check("the export's name", name)?;
        let where_ = format!("{}/{name}", sink.location());
        crate::guard::check("the export's location", &where_)?;
        let failed = Draft::new("audit.export").object(where_.clone());
        let s = self
            .audited(failed, async {
                Ok(self.audit_log().await?.export(sink, name).await?)
            })
            .await?;
        self.record(
            Draft::new("audit.export")
                .object(s.out.clone())
                .detail("events", s.events)
                .detail("heads", s.heads),
        )
        .await?;
        Ok(s)
    }

    /// An inclusion proof for event `seq`.
    async fn audit_proof(&self, seq: u64, size: Option<u64>) -> Result<InclusionProof> {
        Ok(self.audit_log().await?.inclusion_proof(seq, size).await?)
    }

    /// The latest signed tree head (for an auditor to keep).
    async fn audit_head(&self) -> Result<Option<SignedTreeHead>> {
        Ok(self.audit_log().await?.latest_head().await?)
    }
}

/// The audit operations: any session may read and verify the log (it holds no data).
impl Hub {
    /// Events matching `filter`, in order.
    pub async fn audit_events(&self, s: &Session, filter: &EventFilter) -> Result<Vec<Event>> {
        self.allow(s, shh_access::Action::AuditRead).await?;
        let core = self.core.read().await;
        Call::new(&core, s, &Task::silent())
            .audit_events(filter)
            .await
    }

    /// Verifies the stored log (and its agreement with heads the auditor kept).
    pub async fn audit_verify(
        &self,
        s: &Session,
        req: &AuditVerifyRequest,
    ) -> Result<VerifyReport> {
        self.allow(s, shh_access::Action::AuditRead).await?;
        let core = self.core.read().await;
        Call::new(&core, s, &Task::silent())
            .audit_verify(req.known_heads.clone())
            .await
    }

    /// Exports the log for an auditor as the result `req.name` of the caller's `sink`; the
    /// export itself is recorded (after it, so the copy ends at a signed head).
    pub async fn audit_export(
        &self,
        s: &Session,
        req: &AuditExportRequest,
        sink: &dyn Sink,
    ) -> Result<ExportSummary> {
        self.allow(s, shh_access::Action::AuditRead).await?;
        let core = self.core.read().await;
        Call::new(&core, s, &Task::silent())
            .audit_export(&req.name, sink)
            .await
    }

    /// An inclusion proof for event `req.seq` (in the tree of `req.size` events, default the
    /// latest).
    pub async fn audit_proof(
        &self,
        s: &Session,
        req: &AuditProofRequest,
    ) -> Result<InclusionProof> {
        self.allow(s, shh_access::Action::AuditRead).await?;
        let core = self.core.read().await;
        Call::new(&core, s, &Task::silent())
            .audit_proof(req.seq, req.size)
            .await
    }

    /// The latest signed tree head (for an auditor to keep).
    pub async fn audit_head(&self, s: &Session) -> Result<Option<SignedTreeHead>> {
        self.allow(s, shh_access::Action::AuditRead).await?;
        let core = self.core.read().await;
        Call::new(&core, s, &Task::silent()).audit_head().await
    }

    /// The public key auditors verify with.
    pub async fn audit_public_key(&self) -> Result<PublicKey> {
        self.core.read().await.audit_public_key()
    }
}
