//! `[[devices]]`: kinds, line settings, framing, and their limits.

use std::path::Path;

use crate::common::*;
use pos_config::{DeviceKind, KeyboardLayout, Parity, Role, SerialLine, Suffix};

fn serial(extra: &str) -> String {
    format!(
        "{MINIMAL}\n[[devices]]\nname = \"front-scanner\"\nkind = \"serial\"\npath = \"/dev/ttyUSB0\"\n{extra}"
    )
}

fn evdev(extra: &str) -> String {
    format!(
        "{MINIMAL}\n[[devices]]\nname = \"hand\"\nkind = \"evdev\"\npath = \"/dev/input/event3\"\n{extra}"
    )
}

#[test]
fn serial_defaults() {
    let config = parse_ok(&serial(""));
    let device = &config.devices[0];
    assert_eq!(device.name, "front-scanner");
    assert_eq!(device.path, Path::new("/dev/ttyUSB0"));
    assert_eq!(
        device.kind,
        DeviceKind::Serial(SerialLine {
            baud: 9600,
            parity: Parity::None,
            data_bits: 8,
            stop_bits: 1
        })
    );
    assert_eq!(device.suffix, Suffix::Cr);
    assert!(device.prefix.is_empty());
    assert_eq!(device.role, Role::Auto);
    assert_eq!(device.dedup_window_ms, 300);
    assert_eq!(device.stall_timeout_ms, 500);
}

#[test]
fn serial_settings_are_read() {
    let text = serial(
        "baud = 115200\nparity = \"even\"\ndata_bits = 7\nstop_bits = 2\nsuffix = \"\\r\\n\"\n\
         prefix = \"\\u0002\"\nrole = \"cards\"\ndedup_window_ms = 0\nstall_timeout_ms = 60000\n",
    );
    let device = &parse_ok(&text).devices[0];
    assert_eq!(
        device.kind,
        DeviceKind::Serial(SerialLine {
            baud: 115_200,
            parity: Parity::Even,
            data_bits: 7,
            stop_bits: 2
        })
    );
    assert_eq!(device.suffix, Suffix::CrLf);
    assert_eq!(device.suffix.as_bytes(), b"\r\n");
    assert_eq!(device.prefix, vec![2u8]);
    assert_eq!(device.role, Role::Cards);
    assert_eq!(device.dedup_window_ms, 0);
    assert_eq!(device.stall_timeout_ms, 60_000);
}

#[test]
fn evdev_defaults_and_layout() {
    let device = &parse_ok(&evdev("")).devices[0];
    assert_eq!(
        device.kind,
        DeviceKind::Evdev {
            layout: KeyboardLayout::Us
        }
    );
    let device = &parse_ok(&evdev("layout = \"de\"\n")).devices[0];
    assert_eq!(
        device.kind,
        DeviceKind::Evdev {
            layout: KeyboardLayout::De
        }
    );
    let text = evdev("layout = \"fr\"\n");
    assert_problem(
        &text,
        "layout",
        "[[devices]] #1 layout",
        "must be one of \"us\", \"de\", got \"fr\"",
    );
}

#[test]
fn keys_of_the_other_kind_are_refused() {
    let text = evdev("baud = 9600\n");
    assert_problem(
        &text,
        "baud",
        "[[devices]] #1 baud",
        "only applies to kind = \"serial\"",
    );
    let text = serial("layout = \"us\"\n");
    assert_problem(
        &text,
        "layout",
        "[[devices]] #1 layout",
        "only applies to kind = \"evdev\"",
    );
}

#[test]
fn unknown_kind() {
    let text = serial("").replace("kind = \"serial\"", "kind = \"usb\"");
    assert_problem(
        &text,
        "kind",
        "[[devices]] #1 kind",
        "must be one of \"serial\", \"evdev\", got \"usb\"",
    );
}

#[test]
fn serial_line_ranges() {
    let cases: &[(&str, &str, &str)] = &[
        ("baud = 12345", "baud", "must be a standard rate"),
        ("baud = 0", "baud", "must be between 1 and"),
        (
            "data_bits = 4",
            "data_bits",
            "must be between 5 and 8, got 4",
        ),
        (
            "data_bits = 9",
            "data_bits",
            "must be between 5 and 8, got 9",
        ),
        (
            "stop_bits = 0",
            "stop_bits",
            "must be between 1 and 2, got 0",
        ),
        (
            "stop_bits = 3",
            "stop_bits",
            "must be between 1 and 2, got 3",
        ),
        (
            "parity = \"mark\"",
            "parity",
            "must be one of \"none\", \"odd\", \"even\"",
        ),
    ];
    for (line, key, message) in cases {
        let text = serial(&format!("{line}\n"));
        assert_problem(&text, line, &format!("[[devices]] #1 {key}"), message);
    }
}

#[test]
fn timing_ranges() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "dedup_window_ms = -1",
            "dedup_window_ms",
            "must be between 0 and 10000, got -1",
        ),
        (
            "dedup_window_ms = 10001",
            "dedup_window_ms",
            "must be between 0 and 10000, got 10001",
        ),
        (
            "stall_timeout_ms = 9",
            "stall_timeout_ms",
            "must be between 10 and 60000, got 9",
        ),
        (
            "stall_timeout_ms = 60001",
            "stall_timeout_ms",
            "must be between 10 and 60000, got 60001",
        ),
    ];
    for (line, key, message) in cases {
        let text = serial(&format!("{line}\n"));
        assert_problem(&text, line, &format!("[[devices]] #1 {key}"), message);
    }
}

#[test]
fn framing_values() {
    let text = serial("suffix = \"\\r\\r\"\n");
    assert_problem(&text, "suffix", "[[devices]] #1 suffix", "must be one of");
    let text = serial("prefix = \"123456789\"\n");
    assert_problem(
        &text,
        "prefix",
        "[[devices]] #1 prefix",
        "must be at most 8 bytes, got 9",
    );
    let text = serial("prefix = \"A\\r\"\n");
    assert_problem(
        &text,
        "prefix",
        "[[devices]] #1 prefix",
        "must not contain CR, LF or TAB",
    );
    let text = serial("role = \"both\"\n");
    assert_problem(
        &text,
        "role",
        "[[devices]] #1 role",
        "must be one of \"items\"",
    );
    for (written, suffix) in [
        ("\\r", Suffix::Cr),
        ("\\n", Suffix::Lf),
        ("\\t", Suffix::Tab),
    ] {
        let text = serial(&format!("suffix = \"{written}\"\n"));
        assert_eq!(parse_ok(&text).devices[0].suffix, suffix);
    }
}

#[test]
fn duplicate_device_names_name_the_second() {
    let text = format!(
        "{}\n[[devices]]\nname = \"front-scanner\"\nkind = \"evdev\"\npath = \"/dev/input/event1\"\n",
        serial("")
    );
    let err = parse_err(&text);
    let second = text
        .lines()
        .enumerate()
        .filter(|(_, l)| l.contains("name = \"front-scanner\""))
        .map(|(i, _)| i + 1)
        .nth(1)
        .unwrap();
    assert_problem_at(
        &err,
        Some(second),
        "[[devices]] #2 name",
        "duplicate device name \"front-scanner\": device #1 has it already",
    );
    assert_eq!(err.problems().len(), 1, "{err}");
}

#[test]
fn device_names_use_the_identifier_charset() {
    let text = serial("").replace("front-scanner", "front scanner");
    assert_problem(
        &text,
        "name =",
        "[[devices]] #1 name",
        "must be 1 to 64 characters",
    );
}

#[test]
fn too_many_devices() {
    let mut text = String::from(MINIMAL);
    for i in 0..=pos_config::DEVICES_MAX {
        text.push_str(&format!(
            "[[devices]]\nname = \"d{i}\"\nkind = \"serial\"\npath = \"/dev/ttyS{i}\"\n"
        ));
    }
    assert_problem(
        &text,
        "[[devices]]",
        "devices",
        "at most 16 devices, got 17",
    );
}

#[test]
fn inline_array_of_devices_works_too() {
    let text = format!(
        "devices = [{{ name = \"a\", kind = \"evdev\", path = \"/dev/input/event0\" }}, 3]\n{MINIMAL}"
    );
    assert_problem(
        &text,
        "devices =",
        "[[devices]] #2",
        "must be a table, got an integer",
    );
}
