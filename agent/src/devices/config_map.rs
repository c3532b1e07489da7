//! Mapping `[[devices]]`, `[cards]` and `[[variable_measure]]` from the
//! config onto `pos-codes` and `pos-drivers` settings.
//!
//! The two crates keep their own types on purpose (the drivers know nothing
//! of the config file); this module is the one place that knows both, so a
//! field added on one side fails to compile here until it is mapped.

use std::time::Duration;

use pos_codes as codes;
use pos_config as config;
use pos_drivers as drivers;

/// Decoding settings (member-card prefixes, variable-measure layouts) from the config.
pub fn decode_settings(config: &config::Config) -> codes::DecodeSettings {
    codes::DecodeSettings {
        loyalty_prefixes: config.cards.loyalty_prefixes.clone(),
        track_member_prefixes: config.cards.track_prefixes.clone(),
        variable_measure: config
            .variable_measure
            .iter()
            .map(variable_measure_layout)
            .collect(),
    }
}

fn variable_measure_layout(layout: &config::VariableMeasure) -> codes::VariableMeasureLayout {
    codes::VariableMeasureLayout {
        prefix: layout.prefix.clone(),
        item_digits: layout.item_digits,
        value: match layout.value {
            config::Measure::Price => codes::Measure::Price,
            config::Measure::Weight => codes::Measure::Weight,
        },
        value_digits: layout.value_digits,
        decimals: layout.decimals,
        value_check_digit: layout.value_check_digit,
    }
}

/// One device loop's settings from its `[[devices]]` entry.
pub fn device_settings(device: &config::Device) -> drivers::DeviceSettings {
    drivers::DeviceSettings {
        name: device.name.clone(),
        kind: match device.kind {
            config::DeviceKind::Serial(line) => drivers::DeviceKind::Serial(drivers::SerialLine {
                baud: line.baud,
                parity: match line.parity {
                    config::Parity::None => drivers::Parity::None,
                    config::Parity::Odd => drivers::Parity::Odd,
                    config::Parity::Even => drivers::Parity::Even,
                },
                data_bits: line.data_bits,
                stop_bits: line.stop_bits,
            }),
            config::DeviceKind::Evdev { layout } => drivers::DeviceKind::Evdev {
                layout: match layout {
                    config::KeyboardLayout::Us => drivers::KeyboardLayout::Us,
                    config::KeyboardLayout::De => drivers::KeyboardLayout::De,
                },
            },
        },
        path: device.path.clone(),
        prefix: device.prefix.clone(),
        suffix: match device.suffix {
            config::Suffix::Cr => drivers::Suffix::Cr,
            config::Suffix::Lf => drivers::Suffix::Lf,
            config::Suffix::CrLf => drivers::Suffix::CrLf,
            config::Suffix::Tab => drivers::Suffix::Tab,
        },
        role: match device.role {
            config::Role::Items => drivers::Role::Items,
            config::Role::Cards => drivers::Role::Cards,
            config::Role::Auto => drivers::Role::Auto,
        },
        dedup_window: Duration::from_millis(device.dedup_window_ms),
        stall_timeout: Duration::from_millis(device.stall_timeout_ms),
    }
}
