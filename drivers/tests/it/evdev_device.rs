//! The keyboard-wedge device loop around its I/O. This machine has no /dev/input, so a
//! real wedge scanner cannot be read here (the key decoding itself is unit-tested with
//! synthetic events in `wedge.rs`); what can be checked is that a path that is no input
//! device, or none at all, is reported down and retried without ever panicking, and that
//! shutdown stops the loop.
#![cfg(feature = "evdev")]

use std::sync::Arc;
use std::time::Duration;

use pos_codes::DecodeSettings;
use pos_drivers::{
    DeviceEvent, DeviceKind, DeviceSettings, DeviceStatus, KeyboardLayout, run_device,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const EVENT_WAIT: Duration = Duration::from_secs(15);

async fn first_event_for(path: std::path::PathBuf) -> (DeviceEvent, Arc<DeviceStatus>) {
    let mut settings = DeviceSettings::serial("wedge", path);
    settings.kind = DeviceKind::Evdev {
        layout: KeyboardLayout::De,
    };
    let (tx, mut rx) = mpsc::channel(8);
    let shutdown = CancellationToken::new();
    let status = Arc::new(DeviceStatus::new());
    let task = tokio::spawn(run_device(
        settings,
        Arc::new(DecodeSettings::default()),
        tx,
        shutdown.clone(),
        status.clone(),
    ));
    let event = tokio::time::timeout(EVENT_WAIT, rx.recv())
        .await
        .expect("an event")
        .expect("the loop runs");
    shutdown.cancel();
    let result = tokio::time::timeout(EVENT_WAIT, task)
        .await
        .expect("the loop stops on shutdown")
        .expect("no panic");
    assert!(result.is_ok());
    (event, status)
}

#[tokio::test]
async fn a_file_that_is_no_input_device_is_reported_down() {
    let file = tempfile::NamedTempFile::new().unwrap();
    let (event, status) = first_event_for(file.path().to_path_buf()).await;
    match event {
        DeviceEvent::Down { device, reason } => {
            assert_eq!(device, "wedge");
            assert!(
                reason.contains(&file.path().display().to_string()),
                "{reason}"
            );
        }
        other => panic!("expected Down, got {other:?}"),
    }
    assert!(!status.is_up());
}

#[tokio::test]
async fn a_missing_wedge_is_reported_down() {
    let dir = tempfile::tempdir().unwrap();
    let (event, _) = first_event_for(dir.path().join("event-kbd")).await;
    assert!(matches!(event, DeviceEvent::Down { .. }), "{event:?}");
}
