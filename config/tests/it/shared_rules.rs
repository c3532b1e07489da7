//! The rules the config shares with the decoders (`pos-codes`) and the device loops
//! (`pos-drivers`) are theirs: whatever they would refuse, the config refuses at
//! start-up, and what the config loads they accept.

use std::time::Duration;

use crate::common::*;
use pos_codes::{DecodeSettings, Measure as CodesMeasure, VariableMeasureLayout};
use pos_config::{Config, DeviceKind, Measure};
use pos_drivers::device::{DeviceKind as DriversKind, DeviceSettings, SerialLine};

/// What the agent hands the decoder, built from a loaded config.
fn decode_settings(config: &Config) -> DecodeSettings {
    DecodeSettings {
        loyalty_prefixes: config.cards.loyalty_prefixes.clone(),
        track_member_prefixes: config.cards.track_prefixes.clone(),
        variable_measure: config
            .variable_measure
            .iter()
            .map(|l| VariableMeasureLayout {
                prefix: l.prefix.clone(),
                item_digits: l.item_digits,
                value: match l.value {
                    Measure::Price => CodesMeasure::Price,
                    Measure::Weight => CodesMeasure::Weight,
                },
                value_digits: l.value_digits,
                decimals: l.decimals,
                value_check_digit: l.value_check_digit,
            })
            .collect(),
    }
}

#[test]
fn member_prefixes_the_decoder_refuses_the_config_refuses() {
    let thirteen = "1".repeat(13);
    let eighteen = "1".repeat(18);
    let twelve = "1".repeat(12);
    for prefix in ["", "9", "999", &twelve, &thirteen, &eighteen, "99a", " 999"] {
        let decoder = DecodeSettings {
            loyalty_prefixes: vec![prefix.to_string()],
            track_member_prefixes: vec![prefix.to_string()],
            ..DecodeSettings::default()
        };
        let decoder_ok = decoder.validate().is_ok();
        let text = format!(
            "{MINIMAL}[cards]\nloyalty_prefixes = [\"{prefix}\"]\ntrack_prefixes = [\"{prefix}\"]\n"
        );
        match parse(&text) {
            Ok(config) => {
                assert!(
                    decoder_ok,
                    "the config took {prefix:?}, the decoder refuses it"
                );
                assert!(decode_settings(&config).validate().is_ok());
            }
            Err(_) => assert!(
                !decoder_ok,
                "the config refused {prefix:?}, the decoder takes it"
            ),
        }
    }
}

#[test]
fn variable_measure_layouts_the_decoder_refuses_the_config_refuses() {
    // (prefix, item_digits, value_digits, decimals, value_check_digit)
    let layouts = [
        ("21", 5, 5, 2, false),
        ("02", 5, 5, 2, false),
        ("29", 5, 4, 3, true),
        ("2", 6, 5, 2, false),
        ("210", 4, 5, 2, false),
        ("30", 5, 5, 2, false),
        ("01", 5, 5, 2, false),
        ("2a", 5, 5, 2, false),
        ("21", 5, 4, 2, false),
        ("21", 4, 6, 2, true),
        ("21", 5, 5, 6, false),
    ];
    for (prefix, item, value, decimals, check) in layouts {
        let decoder = DecodeSettings {
            variable_measure: vec![VariableMeasureLayout {
                prefix: prefix.into(),
                item_digits: item,
                value: CodesMeasure::Price,
                value_digits: value,
                decimals,
                value_check_digit: check,
            }],
            ..DecodeSettings::default()
        };
        let decoder_ok = decoder.validate().is_ok();
        let text = format!(
            "{MINIMAL}\n[[variable_measure]]\nprefix = \"{prefix}\"\nitem_digits = {item}\n\
             value = \"price\"\nvalue_digits = {value}\ndecimals = {decimals}\n\
             value_check_digit = {check}\n"
        );
        let layout = (prefix, item, value, decimals, check);
        match parse(&text) {
            Ok(config) => {
                assert!(
                    decoder_ok,
                    "the config took {layout:?}, the decoder refuses it"
                );
                assert!(decode_settings(&config).validate().is_ok());
            }
            Err(_) => assert!(
                !decoder_ok,
                "the config refused {layout:?}, the decoder takes it"
            ),
        }
    }
}

#[test]
fn devices_the_device_loop_refuses_the_config_refuses() {
    // (extra keys, the same setting for the device loop)
    let serial = |line: SerialLine| DriversKind::Serial(line);
    let default = SerialLine::default();
    let cases: Vec<(String, DeviceSettings)> = vec![
        (String::new(), settings(serial(default), b"", 300, 500)),
        (
            "baud = 115200\n".into(),
            settings(
                serial(SerialLine {
                    baud: 115_200,
                    ..default
                }),
                b"",
                300,
                500,
            ),
        ),
        (
            "baud = 9601\n".into(),
            settings(
                serial(SerialLine {
                    baud: 9601,
                    ..default
                }),
                b"",
                300,
                500,
            ),
        ),
        (
            "data_bits = 9\n".into(),
            settings(
                serial(SerialLine {
                    data_bits: 9,
                    ..default
                }),
                b"",
                300,
                500,
            ),
        ),
        (
            "stop_bits = 3\n".into(),
            settings(
                serial(SerialLine {
                    stop_bits: 3,
                    ..default
                }),
                b"",
                300,
                500,
            ),
        ),
        (
            "prefix = \"\\u0002\"\n".into(),
            settings(serial(default), b"\x02", 300, 500),
        ),
        (
            "prefix = \"123456789\"\n".into(),
            settings(serial(default), b"123456789", 300, 500),
        ),
        (
            "prefix = \"A\\t\"\n".into(),
            settings(serial(default), b"A\t", 300, 500),
        ),
        (
            "dedup_window_ms = 10001\n".into(),
            settings(serial(default), b"", 10_001, 500),
        ),
        (
            "stall_timeout_ms = 9\n".into(),
            settings(serial(default), b"", 300, 9),
        ),
        (
            "stall_timeout_ms = 60001\n".into(),
            settings(serial(default), b"", 300, 60_001),
        ),
    ];
    for (extra, loop_settings) in cases {
        let loop_ok = loop_settings.validate().is_ok();
        let text = format!(
            "{MINIMAL}\n[[devices]]\nname = \"front\"\nkind = \"serial\"\npath = \"/dev/ttyUSB0\"\n{extra}"
        );
        match parse(&text) {
            Ok(config) => {
                assert!(
                    loop_ok,
                    "the config took {extra:?}, the device loop refuses it"
                );
                let DeviceKind::Serial(line) = config.devices[0].kind else {
                    panic!("a serial device");
                };
                assert_eq!(line.baud, loop_settings_baud(&loop_settings));
            }
            Err(_) => assert!(
                !loop_ok,
                "the config refused {extra:?}, the device loop takes it"
            ),
        }
    }
}

fn settings(kind: DriversKind, prefix: &[u8], dedup_ms: u64, stall_ms: u64) -> DeviceSettings {
    DeviceSettings {
        kind,
        prefix: prefix.to_vec(),
        dedup_window: Duration::from_millis(dedup_ms),
        stall_timeout: Duration::from_millis(stall_ms),
        ..DeviceSettings::serial("front", "/dev/ttyUSB0")
    }
}

fn loop_settings_baud(settings: &DeviceSettings) -> u32 {
    match settings.kind {
        DriversKind::Serial(line) => line.baud,
        DriversKind::Evdev { .. } => panic!("a serial device"),
    }
}
