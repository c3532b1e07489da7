//! Scan-to-event latency over a pseudo-terminal: the time from writing one scan (with
//! its terminator) on the pty master to receiving its `Scan` event from the device loop.
//! Goal (brief): p99 under 5 ms. Prints median, p99 and max over N scans.
//!
//! Run: `cargo bench -p pos-drivers --bench scan_latency` (N from `SCAN_LATENCY_SCANS`,
//! default 2000).

use std::sync::Arc;
use std::time::{Duration, Instant};

use pos_codes::DecodeSettings;
use pos_drivers::{DeviceEvent, DeviceSettings, DeviceStatus, run_device};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use tokio_serial::{SerialPort, SerialStream};
use tokio_util::sync::CancellationToken;

const SCANS_DEFAULT: usize = 2000;
const EVENT_WAIT: Duration = Duration::from_secs(10);

fn percentile(sorted: &[Duration], per_mille: usize) -> Duration {
    let index = (sorted.len() * per_mille / 1000).min(sorted.len() - 1);
    sorted[index]
}

fn main() {
    let scans: usize = std::env::var("SCAN_LATENCY_SCANS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(SCANS_DEFAULT)
        .max(1);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(async move {
        let (mut master, slave) = SerialStream::pair().expect("a pty pair");
        let slave_path = slave.name().expect("slave name");
        drop(slave);
        let mut settings = DeviceSettings::serial("bench", slave_path);
        settings.dedup_window = Duration::ZERO;
        let (tx, mut rx) = mpsc::channel(256);
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(run_device(
            settings,
            Arc::new(DecodeSettings::default()),
            tx,
            shutdown.clone(),
            Arc::new(DeviceStatus::new()),
        ));
        match tokio::time::timeout(EVENT_WAIT, rx.recv()).await {
            Ok(Some(DeviceEvent::Up { .. })) => {}
            other => panic!("device did not come up: {other:?}"),
        }
        let mut latencies = Vec::with_capacity(scans);
        for i in 0..scans {
            // Alternate two products so every scan is a real decode.
            let scan: &[u8] = if i % 2 == 0 {
                b"]E04006381333931\r"
            } else {
                b"]C10109501101530003\x1d17261231\x1d10LOT42\r"
            };
            let start = Instant::now();
            master.write_all(scan).await.expect("write to pty");
            match tokio::time::timeout(EVENT_WAIT, rx.recv()).await {
                Ok(Some(DeviceEvent::Scan { .. })) => latencies.push(start.elapsed()),
                other => panic!("expected a scan event, got {other:?}"),
            }
        }
        shutdown.cancel();
        let _ = task.await;
        latencies.sort();
        println!(
            "scan_latency: {scans} scans over a pty: median {:?}, p99 {:?}, max {:?}",
            percentile(&latencies, 500),
            percentile(&latencies, 990),
            latencies[latencies.len() - 1]
        );
    });
}
