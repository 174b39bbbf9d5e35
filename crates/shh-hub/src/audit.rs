//! The hub's side of the audit log: who the actor is, the one-line [`Hub::record`] every
//! operation calls, and the operations behind `shh audit …`.

use crate::{Hub, Result};
use shh_audit::{
    Actor, AuditLog, Draft, Event, EventFilter, ExportSummary, InclusionProof, PublicKey,
    SignedTreeHead, Signer, VerifyReport,
};
use shh_keys::KeyPurpose;

/// The actor a CLI process acts as: `SHH_ACTOR` (default `user@host`) in role `SHH_ROLE`
/// (default `operator`). The server will set it from the authenticated principal instead.
pub fn actor_from_env() -> Actor {
    let id = std::env::var("SHH_ACTOR").ok().filter(|s| !s.is_empty());
    let id = id.unwrap_or_else(|| {
        let user = std::env::var("USER")
            .or_else(|_| std::env::var("USERNAME"))
            .unwrap_or_else(|_| "unknown".into());
        let host = std::fs::read_to_string("/etc/hostname")
            .ok()
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
            .or_else(|| std::env::var("HOSTNAME").ok())
            .unwrap_or_else(|| "localhost".into());
        format!("{user}@{host}")
    });
    let role = std::env::var("SHH_ROLE")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "operator".into());
    Actor::new(id, role)
}

impl Hub {
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
    pub async fn audit_log(&self) -> Result<&AuditLog> {
        self.audit
            .get_or_try_init(|| async {
                let store: std::sync::Arc<dyn object_store::ObjectStore> = self.store.clone();
                Ok(AuditLog::open(store, &self.config.hub_id, self.audit_signer()?).await?)
            })
            .await
    }

    /// The actor events are recorded for.
    pub fn actor(&self) -> &Actor {
        &self.actor
    }

    /// Acts as someone else from now on (the server, per request).
    pub fn set_actor(&mut self, actor: Actor) {
        self.actor = actor;
    }

    /// Records an event and returns its sequence number once it is durable. Callers return
    /// their own result only after this succeeds.
    pub async fn record(&self, event: Draft) -> Result<u64> {
        // The last net: whatever reached a message or a detail, no direct identifier is signed
        // into the log.
        let event = event.map_strings(&crate::guard::redact);
        let mut actor = self.actor.clone();
        crate::guard::redact_actor(&mut actor.id);
        crate::guard::redact_actor(&mut actor.role);
        Ok(self.audit_log().await?.append(&actor, event).await?)
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

    /// Events matching `filter`, in order.
    pub async fn audit_events(&self, filter: &EventFilter) -> Result<Vec<Event>> {
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
    pub async fn audit_verify(&self, known: Vec<SignedTreeHead>) -> Result<VerifyReport> {
        Ok(self.audit_log().await?.verify(known).await?)
    }

    /// Exports the log for an auditor; the export itself is recorded (after it, so the copy
    /// ends at a signed head).
    pub async fn audit_export(&self, out: &std::path::Path) -> Result<ExportSummary> {
        crate::guard::check_path("the export directory's path", out)?;
        let failed = Draft::new("audit.export").object(out.display().to_string());
        let s = self
            .audited(failed, async {
                Ok(self.audit_log().await?.export(out).await?)
            })
            .await?;
        self.record(
            Draft::new("audit.export")
                .object(out.display().to_string())
                .detail("events", s.events)
                .detail("heads", s.heads),
        )
        .await?;
        Ok(s)
    }

    /// An inclusion proof for event `seq`.
    pub async fn audit_proof(&self, seq: u64, size: Option<u64>) -> Result<InclusionProof> {
        Ok(self.audit_log().await?.inclusion_proof(seq, size).await?)
    }

    /// The public key auditors verify with.
    pub fn audit_public_key(&self) -> Result<PublicKey> {
        Ok(self.audit_signer()?.public())
    }

    /// The latest signed tree head (for an auditor to keep).
    pub async fn audit_head(&self) -> Result<Option<SignedTreeHead>> {
        Ok(self.audit_log().await?.latest_head().await?)
    }
}
