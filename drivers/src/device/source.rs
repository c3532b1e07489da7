//! Opening a device by path and reading raw input from it: bytes from a serial port, or
//! key events from an evdev keyboard turned into bytes by the wedge decoder.

use std::io;

use tokio::io::AsyncReadExt;
use zeroize::Zeroizing;

use super::{DeviceKind, DeviceSettings, Parity, SerialLine};
use crate::error::{Error, Result};

/// Bytes read from a serial port at once: more than a scan, less than a page.
pub(crate) const READ_CHUNK_BYTES: usize = 512;

/// One open device. Lives for one connection; the size difference between variants
/// (evdev's event buffer) does not matter for a single value per device task.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Source {
    Serial(tokio_serial::SerialStream),
    #[cfg(feature = "evdev")]
    Evdev {
        stream: evdev::EventStream,
        decoder: crate::wedge::WedgeDecoder,
    },
}

pub(crate) enum ReadOutcome {
    /// Bytes (possibly none, for a key event that types nothing) were appended.
    Data,
    /// The device is gone (read returned 0).
    Eof,
    Error(io::Error),
}

fn device_error(settings: &DeviceSettings, source: io::Error) -> Error {
    Error::Device {
        device: settings.name.clone(),
        path: settings.path.clone(),
        source,
    }
}

impl Source {
    /// Opens the device at the settings' path, resolving symlinks now (a replugged
    /// device may sit behind the same link under a new node).
    pub(crate) async fn open(settings: &DeviceSettings) -> Result<Source> {
        let resolved = tokio::fs::canonicalize(&settings.path)
            .await
            .map_err(|e| device_error(settings, e))?;
        match settings.kind {
            DeviceKind::Serial(line) => open_serial(settings, &resolved, line),
            #[cfg(feature = "evdev")]
            DeviceKind::Evdev { layout } => {
                let mut device =
                    evdev::Device::open(&resolved).map_err(|e| device_error(settings, e))?;
                // Exclusive: the scanner's key presses must reach no console or window.
                device.grab().map_err(|e| device_error(settings, e))?;
                let stream = device
                    .into_event_stream()
                    .map_err(|e| device_error(settings, e))?;
                Ok(Source::Evdev {
                    stream,
                    decoder: crate::wedge::WedgeDecoder::new(layout),
                })
            }
            #[cfg(not(feature = "evdev"))]
            DeviceKind::Evdev { .. } => Err(Error::settings(
                format!("devices.{}.kind", settings.name),
                "evdev devices need pos-drivers built with the `evdev` feature",
            )),
        }
    }

    /// Waits for input and appends it to `chunk` (which the caller zeroes after use).
    pub(crate) async fn read(&mut self, chunk: &mut Zeroizing<Vec<u8>>) -> ReadOutcome {
        match self {
            Source::Serial(port) => {
                let mut buf = Zeroizing::new([0u8; READ_CHUNK_BYTES]);
                match port.read(&mut buf[..]).await {
                    Ok(0) => ReadOutcome::Eof,
                    Ok(n) => {
                        chunk.extend_from_slice(&buf[..n]);
                        ReadOutcome::Data
                    }
                    Err(e) => ReadOutcome::Error(e),
                }
            }
            #[cfg(feature = "evdev")]
            Source::Evdev { stream, decoder } => match stream.next_event().await {
                Ok(event) => {
                    use crate::wedge::WedgeKey;
                    match decoder.event(event.event_type().0, event.code(), event.value()) {
                        Some(WedgeKey::Char(c)) => {
                            let mut utf8 = [0u8; 4];
                            chunk.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
                        }
                        Some(WedgeKey::Enter) => chunk.push(b'\r'),
                        Some(WedgeKey::Tab) => chunk.push(b'\t'),
                        Some(WedgeKey::Unmapped(code)) => {
                            tracing::debug!(message = "Unmapped key from wedge scanner.", code);
                        }
                        None => {}
                    }
                    ReadOutcome::Data
                }
                // ENODEV: the keyboard was unplugged.
                Err(e) if e.raw_os_error() == Some(19) => ReadOutcome::Eof,
                Err(e) => ReadOutcome::Error(e),
            },
        }
    }
}

fn open_serial(
    settings: &DeviceSettings,
    resolved: &std::path::Path,
    line: SerialLine,
) -> Result<Source> {
    let path = resolved.to_str().ok_or_else(|| {
        device_error(
            settings,
            io::Error::new(io::ErrorKind::InvalidInput, "device path is not UTF-8"),
        )
    })?;
    let data_bits = match line.data_bits {
        5 => tokio_serial::DataBits::Five,
        6 => tokio_serial::DataBits::Six,
        7 => tokio_serial::DataBits::Seven,
        _ => tokio_serial::DataBits::Eight,
    };
    let stop_bits = if line.stop_bits == 2 {
        tokio_serial::StopBits::Two
    } else {
        tokio_serial::StopBits::One
    };
    let parity = match line.parity {
        Parity::None => tokio_serial::Parity::None,
        Parity::Odd => tokio_serial::Parity::Odd,
        Parity::Even => tokio_serial::Parity::Even,
    };
    let builder = tokio_serial::new(path, line.baud)
        .data_bits(data_bits)
        .stop_bits(stop_bits)
        .parity(parity)
        .flow_control(tokio_serial::FlowControl::None);
    // Opened exclusively (TIOCEXCL, tokio-serial's default): a second reader would
    // steal half of every scan.
    let port = tokio_serial::SerialStream::open(&builder)
        .map_err(|e| device_error(settings, io::Error::from(e)))?;
    Ok(Source::Serial(port))
}
