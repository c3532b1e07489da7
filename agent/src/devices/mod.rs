//! Scanners and card readers in the running agent (agent spec §3–§4).
//!
//! One task per `[[devices]]` entry runs the drivers' device loop
//! ([`pos_drivers::run_device`]); all of them send into one bounded channel
//! ([`pos_drivers::device::EVENTS_CHANNEL_CAPACITY`]), read by one forwarding
//! task ([`runner`]) that applies scans to the checkout in the order they
//! came ([`scan`]) and publishes a [`DeviceNotice`] per event on the event
//! bus (`GET /v1/events`). One consumer, so two quick scans add their lines
//! in scan order, and the device loops never wait for the store: the drivers
//! drop (and count) events when the channel is full rather than block.
//!
//! Health reads each loop's [`pos_drivers::DeviceStatus`] live (up/down,
//! counters, last sign of life): up/down stays right even when an Up or
//! Down event was dropped.
//!
//! Payment cards never get here: the drivers turn them into
//! `payment_card_rejected` with nothing of the number; this module logs
//! device names and outcome kinds only, never scan data.
//!
//! Layout: [`config_map`] maps the config onto driver settings,
//! [`lookup`] turns a reading into catalog keys (and the key order),
//! [`scan`] applies a scan to the checkout, [`notice`] is the SSE payload,
//! [`runner`] spawns and wires the tasks.

pub mod config_map;
pub mod lookup;
pub mod notice;
pub mod runner;
pub mod scan;

pub use config_map::{decode_settings, device_settings};
pub use notice::{DeviceNotice, ScanOutcome};
pub use runner::start;
pub use scan::ScanTargets;

use pos_codes::DecodeSettings;
use pos_drivers::DeviceSettings;

/// Everything the device tasks need from the config.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DevicesOptions {
    /// One loop per entry; empty runs no device task at all.
    pub devices: Vec<DeviceSettings>,
    /// Member prefixes and variable-measure layouts, shared by all devices.
    pub decode: DecodeSettings,
}

impl DevicesOptions {
    /// `[[devices]]`, `[cards]` and `[[variable_measure]]` of the config.
    pub fn from_config(config: &pos_config::Config) -> DevicesOptions {
        DevicesOptions {
            devices: config.devices.iter().map(device_settings).collect(),
            decode: decode_settings(config),
        }
    }

    /// Checks every device and the decode settings before anything starts,
    /// so a bad setting stops the agent at start-up, not a device loop later.
    pub fn validate(&self) -> Result<(), pos_drivers::Error> {
        self.decode.validate()?;
        for (i, device) in self.devices.iter().enumerate() {
            device.validate()?;
            if self.devices[..i].iter().any(|d| d.name == device.name) {
                return Err(pos_drivers::Error::Settings {
                    setting: format!("devices[{i}].name"),
                    message: format!("\"{}\" names another device too", device.name),
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_device_names_are_refused() {
        let options = DevicesOptions {
            devices: vec![
                DeviceSettings::serial("front", "/dev/ttyACM0"),
                DeviceSettings::serial("front", "/dev/ttyACM1"),
            ],
            decode: DecodeSettings::default(),
        };
        let error = options.validate().expect_err("duplicate names");
        assert!(error.to_string().contains("devices[1].name"), "{error}");
    }

    #[test]
    fn invalid_device_settings_are_refused_before_start() {
        let mut device = DeviceSettings::serial("front", "/dev/ttyACM0");
        device.prefix = vec![0; 64];
        let options = DevicesOptions {
            devices: vec![device],
            decode: DecodeSettings::default(),
        };
        let error = options.validate().expect_err("prefix too long");
        assert!(
            error.to_string().contains("devices.front.prefix"),
            "{error}"
        );
    }
}
