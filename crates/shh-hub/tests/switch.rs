//! A store switch whose process died is ended by the next open, in both phases: undone if it
//! had not switched (the hub writable on its source, a failure event), completed if it had
//! (its event recorded once, the hub writable on the target). The kill itself is tested
//! through the binary (`crates/shh/tests/state.rs`); here the two states it can leave are
//! written directly, since the second lasts only between two file writes.

mod common;

use common::{Fixture, open};
use shh_hub::config::{Switch, SwitchPhase};
use shh_hub::{CONFIG_FILE, Hub, HubConfig, Session};
use std::path::Path;

fn write(dir: &Path, config: &HubConfig) {
    let text = toml::to_string_pretty(config).expect("toml");
    std::fs::write(dir.join(CONFIG_FILE), text).expect("write");
}

fn left_behind(config: &HubConfig, phase: SwitchPhase, to: &str) -> HubConfig {
    let mut c = config.clone();
    c.read_only = true;
    let mut details = serde_json::Map::new();
    details.insert("from".into(), config.store.clone().into());
    c.switch = Some(Switch {
        id: format!("test-{phase:?}"),
        action: "migrate.cutover".into(),
        from: config.store.clone(),
        to: to.to_owned(),
        phase,
        started_at: chrono::Utc::now(),
        details,
    });
    c
}

async fn cutover_events(h: &Hub, s: &Session) -> Vec<shh_hub::audit::Event> {
    h.audit_events(
        s,
        &shh_hub::audit::EventFilter {
            action: Some("migrate.cutover".into()),
            ..Default::default()
        },
    )
    .await
    .expect("events")
}

#[tokio::test]
async fn a_started_switch_is_undone_on_the_next_open() {
    let f = Fixture::new().await;
    let hub_dir = f.dir();
    let clean = f.hub.config().await;
    drop(f.hub);
    write(
        &hub_dir,
        &left_behind(&clean, SwitchPhase::Started, "file:///nowhere"),
    );

    let (h, s) = open(&hub_dir).await;
    assert_eq!(
        h.config().await,
        clean,
        "writable, on the source, switch cleared"
    );
    h.ensure_writable().await.expect("writable");
    let events = cutover_events(&h, &s).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert!(
        matches!(&events[0].outcome, shh_hub::audit::Outcome::Failed { reason } if reason.contains("interrupted")),
        "{events:?}"
    );
    drop(h);
    // Opening again records nothing more.
    let (h, s) = open(&hub_dir).await;
    assert_eq!(cutover_events(&h, &s).await.len(), 1);
}

#[tokio::test]
async fn a_switched_switch_is_completed_on_the_next_open_and_recorded_once() {
    let f = Fixture::new().await;
    let hub_dir = f.dir();
    let clean = f.hub.config().await;
    drop(f.hub);
    // As the cut-over writes it: the store switched (here to the same directory, which holds
    // the log), the event still to record.
    let mut switched = left_behind(&clean, SwitchPhase::Switched, &clean.store);
    switched.mirror = Some("memory://".into());
    write(&hub_dir, &switched);

    let (h, s) = open(&hub_dir).await;
    let config = h.config().await;
    assert!(!config.read_only && config.switch.is_none(), "{config:?}");
    assert_eq!(
        config.mirror.as_deref(),
        Some("memory://"),
        "the switched config kept"
    );
    let events = cutover_events(&h, &s).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(
        events[0].details.get("recovered"),
        Some(&serde_json::json!(true))
    );
    assert_eq!(
        events[0].details.get("switch_id"),
        Some(&serde_json::json!("test-Switched"))
    );
    drop(h);

    // The process had recorded the event but died before clearing the switch: recovery
    // clears it without recording it again.
    let mut again = switched.clone();
    again.mirror = None;
    write(&hub_dir, &again);
    let (h, s) = open(&hub_dir).await;
    let config = h.config().await;
    assert!(config.switch.is_none() && !config.read_only);
    assert_eq!(cutover_events(&h, &s).await.len(), 1, "recorded once");
}
