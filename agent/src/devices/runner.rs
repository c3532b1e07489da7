//! Spawns the device loops and the one task that turns their events into
//! checkout changes and SSE notices.

use std::sync::Arc;

use pos_drivers::device::EVENTS_CHANNEL_CAPACITY;
use pos_drivers::{DeviceEvent, DeviceStatus, run_device};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::devices::DevicesOptions;
use crate::devices::notice::DeviceNotice;
use crate::devices::scan::ScanTargets;
use crate::events::{Event, EventBus};
use crate::health::HealthState;

/// Validates `options`, registers each device with `health`, and spawns one
/// loop per device plus the forwarding task. Every task ends when
/// `shutdown` is cancelled. No devices: no tasks.
pub fn start(
    options: &DevicesOptions,
    targets: ScanTargets,
    events: EventBus,
    health: &HealthState,
    shutdown: CancellationToken,
) -> Result<Vec<JoinHandle<()>>, pos_drivers::Error> {
    options.validate()?;
    if options.devices.is_empty() {
        return Ok(Vec::new());
    }
    let (sender, receiver) = mpsc::channel(EVENTS_CHANNEL_CAPACITY);
    let decode = Arc::new(options.decode.clone());
    let mut tasks = Vec::with_capacity(options.devices.len() + 1);
    for device in &options.devices {
        let status = Arc::new(DeviceStatus::new());
        health.watch_device(device.name.clone(), status.clone());
        let name = device.name.clone();
        let run = run_device(
            device.clone(),
            decode.clone(),
            sender.clone(),
            shutdown.clone(),
            status,
        );
        tasks.push(tokio::spawn(async move {
            // Only invalid settings end a loop early, and they were checked
            // above; logged rather than stopping the agent, which can still
            // sell without a scanner.
            if let Err(error) = run.await {
                tracing::error!(message = "Device loop stopped.", device = %name, %error);
            }
        }));
    }
    // The loops hold the only senders: when they all stop, the forwarder
    // sees the channel close.
    drop(sender);
    tasks.push(tokio::spawn(forward(receiver, targets, events, shutdown)));
    Ok(tasks)
}

/// Applies events in arrival order and publishes one notice per event.
async fn forward(
    mut receiver: mpsc::Receiver<DeviceEvent>,
    targets: ScanTargets,
    events: EventBus,
    shutdown: CancellationToken,
) {
    loop {
        let event = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            event = receiver.recv() => match event {
                Some(event) => event,
                None => break,
            },
        };
        let notice = notice_for(event, &targets).await;
        events.publish(Event::Device(notice));
    }
}

async fn notice_for(event: DeviceEvent, targets: &ScanTargets) -> DeviceNotice {
    match event {
        DeviceEvent::Scan {
            device,
            role,
            decoded,
        } => {
            let outcome = targets.apply(role, &decoded).await;
            // Device and outcome kind only: scan data may be a card token.
            tracing::info!(message = "Scan.", device = %device, outcome = outcome.kind());
            DeviceNotice::Scan {
                device,
                role,
                decoded,
                outcome,
            }
        }
        DeviceEvent::Up { device } => DeviceNotice::DeviceUp { device },
        DeviceEvent::Down { device, reason } => DeviceNotice::DeviceDown { device, reason },
        DeviceEvent::FrameDiscarded { device, reason } => {
            DeviceNotice::FrameDiscarded { device, reason }
        }
        DeviceEvent::PaymentCardRejected { device } => DeviceNotice::PaymentCardRejected { device },
    }
}
