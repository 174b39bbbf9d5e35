//! Store switches (cut-over, rollback) that survive their process.
//!
//! A switch is written into `shh.toml` before it starts ([`crate::config::Switch`]) and moves
//! through two phases, each one atomic rewrite of the file:
//!
//! ```text
//! Started   read-only, store = from   ─► copy, verify ─► failure: event, then writable on `from`
//! Switched  read-only, store = to     ─► event on `to` ─► writable on `to`, switch cleared
//! ```
//!
//! If the process dies anywhere in between (`kill -9`, a power loss), the next process that
//! opens the hub finds the switch, takes `switch.lock` (so that of several openers one
//! recovers and the others then read its result), and ends it: a `Started` switch is undone
//! (the hub stays on `from`, writable, with a failure event), a `Switched` one is completed
//! (its event recorded, if it was not, and the hub writable on `to`). Either way it ends on
//! one store and writable. Events carry the switch's id, so recovery records nothing twice.

use crate::config::{Switch, SwitchPhase};
use crate::core::{CallMut, read_config, save_config};
use crate::{Draft, HubError, Result};
use std::fs::{File, OpenOptions, TryLockError};
use std::path::Path;
use std::time::{Duration, Instant};

const RECOVERY_LOCK: &str = "switch.lock";

/// Exclusive hold of the recovery lock, waited for up to 30 s.
fn recovery_lock(dir: &Path) -> Result<File> {
    let path = dir.join(RECOVERY_LOCK);
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(crate::io(&path))?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match f.try_lock() {
            Ok(()) => return Ok(f),
            Err(TryLockError::WouldBlock) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(TryLockError::WouldBlock) => {
                return Err(HubError::Busy(
                    "another process is recovering an interrupted store switch; retry".into(),
                ));
            }
            Err(TryLockError::Error(e)) => return Err(crate::io(&path)(e)),
        }
    }
}

impl CallMut<'_> {
    /// Journals the start of a switch: read-only, the switch recorded in `shh.toml`.
    pub(crate) fn start_switch(&mut self, action: &str, from: &str, to: &str) -> Result<Switch> {
        let switch = Switch {
            id: uuid::Uuid::new_v4().to_string(),
            action: action.to_owned(),
            from: from.to_owned(),
            to: to.to_owned(),
            phase: SwitchPhase::Started,
            started_at: chrono::Utc::now(),
            details: serde_json::Map::new(),
        };
        let mut config = self.config.clone();
        config.read_only = true;
        config.switch = Some(switch.clone());
        save_config(&self.dir, &config)?;
        self.config = config;
        Ok(switch)
    }

    /// Undoes a started switch that failed: its failure event first (so a crash in between is
    /// recovered, not lost), then the hub writable on the store it ran on.
    pub(crate) async fn abandon_switch(&mut self, switch: &Switch, why: String) -> Result<()> {
        self.record(
            Draft::new(switch.action.clone())
                .object(switch.to.clone())
                .detail("from", switch.from.clone())
                .detail("switch_id", switch.id.clone())
                .failed(why),
        )
        .await?;
        self.clear_switch()
    }

    /// Ends a switch whose configuration (`store = to`) is current: its event, with the
    /// switch's id, then the hub writable.
    pub(crate) async fn finish_switch(&mut self, event: Draft) -> Result<()> {
        let Some(switch) = self.config.switch.clone() else {
            return Ok(());
        };
        self.record(event.detail("switch_id", switch.id.clone()))
            .await?;
        self.clear_switch()
    }

    /// The hub writable again, the switch gone from `shh.toml` (on whichever store it is).
    fn clear_switch(&mut self) -> Result<()> {
        let mut config = self.config.clone();
        config.read_only = false;
        config.switch = None;
        save_config(&self.dir, &config)?;
        self.config = config;
        Ok(())
    }

    /// The configuration for the switched store, marked `Switched` with the details of the
    /// event that will end it.
    pub(crate) fn switched_config(
        &self,
        mut config: crate::HubConfig,
        event: &Draft,
    ) -> crate::HubConfig {
        let mut switch = self.config.switch.clone();
        if let Some(s) = switch.as_mut() {
            s.phase = SwitchPhase::Switched;
            s.details = event.details.clone().into_iter().collect();
        }
        config.read_only = true;
        config.switch = switch;
        config
    }

    /// Called by [`crate::Hub::open`] when `shh.toml` holds a switch: the process that ran it is gone
    /// (a live one holds the hub lock exclusively, and opening would have failed), so it is
    /// finished or undone here. Of several processes opening at once, one recovers; the others
    /// wait for it and then read what it wrote.
    pub(crate) async fn recover_switch(&mut self) -> Result<()> {
        let _lock = recovery_lock(&self.dir)?;
        self.config = read_config(&self.dir)?;
        let Some(switch) = self.config.switch.clone() else {
            return Ok(());
        };
        let recorded = self.switch_recorded(&switch).await?;
        match switch.phase {
            // Its ending event was recorded; only the configuration was not rewritten.
            _ if recorded => self.clear_switch()?,
            SwitchPhase::Started => {
                let why = format!(
                    "interrupted: the process running it stopped before the switch (recovered \
                     when the hub was next opened); the hub stays on {}, writable",
                    switch.from
                );
                self.abandon_switch(&switch, why).await?;
            }
            SwitchPhase::Switched => {
                let mut event = Draft::new(switch.action.clone())
                    .object(switch.to.clone())
                    .detail("recovered", true);
                event.details.extend(switch.details.clone());
                self.finish_switch(event).await?;
            }
        }
        Ok(())
    }

    /// Whether the log already holds the event that ends `switch`.
    async fn switch_recorded(&self, switch: &Switch) -> Result<bool> {
        let mut found = false;
        self.audit_log()
            .await?
            .for_each_event(|e| {
                found |= e.action == switch.action
                    && e.details.get("switch_id").and_then(|v| v.as_str()) == Some(&switch.id);
            })
            .await?;
        Ok(found)
    }
}
