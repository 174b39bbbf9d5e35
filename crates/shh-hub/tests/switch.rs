//! A store switch whose process died is ended by the next open, in both phases: undone if it
//! had not switched (the hub writable on its source, a failure event), completed if it had
//! (its event recorded once, the hub writable on the target). The kill itself is tested
//! through the binary (`crates/shh/tests/state.rs`); here the two states it can leave are
//! written directly, since the second lasts only between two file writes.

use shh_hub::config::{Switch, SwitchPhase};
use shh_hub::{CONFIG_FILE, Hub, HubConfig, InitOptions, KdfParams};
use std::path::Path;

const PASS: &str = "switch recovery";

async fn hub(dir: &Path) -> Hub {
    Hub::init(
        &dir.join("hub"),
        PASS,
        InitOptions {
            kdf: KdfParams::INSECURE_FAST,
            ..InitOptions::default()
        },
    )
    .await
    .expect("init")
}

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

async fn cutover_events(h: &Hub) -> Vec<shh_hub::audit_log::Event> {
    h.audit_events(&shh_hub::audit_log::EventFilter {
        action: Some("migrate.cutover".into()),
        ..Default::default()
    })
    .await
    .expect("events")
}

#[tokio::test]
async fn a_started_switch_is_undone_on_the_next_open() {
    let dir = tempfile::tempdir().expect("tmp");
    let h = hub(dir.path()).await;
    let hub_dir = h.dir().to_owned();
    let clean = h.config().clone();
    drop(h);
    write(
        &hub_dir,
        &left_behind(&clean, SwitchPhase::Started, "file:///nowhere"),
    );

    let h = Hub::open(&hub_dir, PASS).await.expect("open recovers");
    assert_eq!(
        h.config(),
        &clean,
        "writable, on the source, switch cleared"
    );
    h.ensure_writable().expect("writable");
    let events = cutover_events(&h).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert!(
        matches!(&events[0].outcome, shh_hub::audit_log::Outcome::Failed { reason } if reason.contains("interrupted")),
        "{events:?}"
    );
    drop(h);
    // Opening again records nothing more.
    let h = Hub::open(&hub_dir, PASS).await.expect("open");
    assert_eq!(cutover_events(&h).await.len(), 1);
}

#[tokio::test]
async fn a_switched_switch_is_completed_on_the_next_open_and_recorded_once() {
    let dir = tempfile::tempdir().expect("tmp");
    let h = hub(dir.path()).await;
    let hub_dir = h.dir().to_owned();
    let clean = h.config().clone();
    drop(h);
    // As the cut-over writes it: the store switched (here to the same directory, which holds
    // the log), the event still to record.
    let mut switched = left_behind(&clean, SwitchPhase::Switched, &clean.store);
    switched.mirror = Some("memory://".into());
    write(&hub_dir, &switched);

    let h = Hub::open(&hub_dir, PASS).await.expect("open recovers");
    assert!(
        !h.config().read_only && h.config().switch.is_none(),
        "{:?}",
        h.config()
    );
    assert_eq!(
        h.config().mirror.as_deref(),
        Some("memory://"),
        "the switched config kept"
    );
    let events = cutover_events(&h).await;
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
    let h = Hub::open(&hub_dir, PASS).await.expect("open");
    assert!(h.config().switch.is_none() && !h.config().read_only);
    assert_eq!(cutover_events(&h).await.len(), 1, "recorded once");
}
