//! `[[devices]]`: the scanners and card readers attached to this register.

use std::collections::HashMap;
use std::path::PathBuf;

use toml::de::DeArray;

use crate::reader::{Ctx, Field, Table, element_table, quote};
use crate::values::{identifier, path};

pub(crate) const KEYS: &[&str] = &[
    "name",
    "kind",
    "path",
    "baud",
    "parity",
    "data_bits",
    "stop_bits",
    "suffix",
    "prefix",
    "role",
    "dedup_window_ms",
    "stall_timeout_ms",
    "layout",
];

/// Keys that only a serial line has.
const SERIAL_KEYS: &[&str] = &["baud", "parity", "data_bits", "stop_bits"];
/// Keys that only a keyboard wedge has.
const EVDEV_KEYS: &[&str] = &["layout"];

/// A register has a handful of devices; more is a config mistake, and each
/// one is a task and an open file.
pub const DEVICES_MAX: usize = 16;
/// The standard serial rates scanners and card readers support.
pub const STANDARD_BAUD_RATES: &[u32] = &[
    300, 600, 1200, 2400, 4800, 9600, 19200, 38400, 57600, 115_200, 230_400,
];
/// The factory rate of most serial scanners.
pub const DEFAULT_BAUD: u32 = 9600;
/// Longest frame prefix: scanners send one or two bytes (STX, an AIM id).
pub const PREFIX_BYTES_MAX: usize = 8;
/// Scans of the same data within this window are one scan (agent spec §4).
pub const DEFAULT_DEDUP_WINDOW_MS: u64 = 300;
pub const DEDUP_WINDOW_MS_MAX: u64 = 10_000;
/// A frame that stops mid-way for this long is discarded.
pub const DEFAULT_STALL_TIMEOUT_MS: u64 = 500;
pub const STALL_TIMEOUT_MS_MIN: u64 = 10;
pub const STALL_TIMEOUT_MS_MAX: u64 = 60_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// Unique among devices; names the device in events, health and logs.
    pub name: String,
    /// The device node, best a stable `/dev/serial/by-id/...` link.
    pub path: PathBuf,
    /// Serial line or keyboard wedge, with what only that kind has.
    pub kind: DeviceKind,
    /// Bytes the device sends before each scan; empty for none.
    pub prefix: Vec<u8>,
    /// What ends a scan.
    pub suffix: Suffix,
    /// What its scans are: items, member cards, or decided per scan.
    pub role: Role,
    pub dedup_window_ms: u64,
    pub stall_timeout_ms: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceKind {
    /// `kind = "serial"`: read through tokio-serial.
    Serial(SerialLine),
    /// `kind = "evdev"`: a USB HID keyboard-wedge scanner, grabbed exclusively.
    Evdev { layout: KeyboardLayout },
}

/// Line settings of a serial device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SerialLine {
    pub baud: u32,
    pub parity: Parity,
    /// 5 to 8.
    pub data_bits: u8,
    /// 1 or 2.
    pub stop_bits: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parity {
    None,
    Odd,
    Even,
}

/// The terminator of a scan. The default is CR, the commonest factory
/// setting; the drivers tolerate a CR LF device configured as CR.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Suffix {
    #[default]
    Cr,
    Lf,
    CrLf,
    Tab,
}

impl Suffix {
    pub fn as_bytes(self) -> &'static [u8] {
        match self {
            Suffix::Cr => b"\r",
            Suffix::Lf => b"\n",
            Suffix::CrLf => b"\r\n",
            Suffix::Tab => b"\t",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Role {
    /// Every scan is an item.
    Items,
    /// Every scan is a member card.
    Cards,
    /// Decided per scan: a configured member-card prefix makes a card.
    #[default]
    Auto,
}

/// Keyboard layout the wedge scanner "types" in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeyboardLayout {
    #[default]
    Us,
    De,
}

const KINDS: &[(&str, Kind)] = &[("serial", Kind::Serial), ("evdev", Kind::Evdev)];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Serial,
    Evdev,
}

/// Reads `[[devices]]`. Bad devices are reported and left out.
pub(crate) fn read(ctx: &mut Ctx<'_>, field: &Field<'_, '_>) -> Vec<Device> {
    let Some(array) = field.array(ctx) else {
        return Vec::new();
    };
    read_array(ctx, field, array)
}

fn read_array(ctx: &mut Ctx<'_>, field: &Field<'_, '_>, array: &DeArray<'_>) -> Vec<Device> {
    if array.len() > DEVICES_MAX {
        field.invalid(
            ctx,
            format!("at most {DEVICES_MAX} devices, got {}", array.len()),
        );
        return Vec::new();
    }
    let mut devices = Vec::new();
    // name -> 1-based position of the first device with it.
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (index, element) in array.iter().enumerate() {
        let label = format!("[[devices]] #{}", index + 1);
        let Some(table) = element_table(ctx, element, label, KEYS) else {
            continue;
        };
        let name_field = table.required(ctx, "name");
        let name = name_field.as_ref().and_then(|f| identifier(ctx, f));
        if let (Some(name), Some(f)) = (&name, &name_field) {
            if let Some(first) = seen.get(name) {
                f.invalid(
                    ctx,
                    format!(
                        "duplicate device name {}: device #{first} has it already",
                        quote(name)
                    ),
                );
            } else {
                seen.insert(name.clone(), index + 1);
            }
        }
        if let Some(device) = read_device(ctx, table, name) {
            devices.push(device);
        }
    }
    devices
}

fn ms(
    ctx: &mut Ctx<'_>,
    table: &Table<'_, '_>,
    key: &'static str,
    default: u64,
    min: u64,
    max: u64,
) -> u64 {
    table
        .field(key)
        .and_then(|f| f.integer(ctx, min as i64..=max as i64))
        .map_or(default, |n| n as u64)
}

fn read_device(ctx: &mut Ctx<'_>, table: Table<'_, '_>, name: Option<String>) -> Option<Device> {
    let kind = table
        .required(ctx, "kind")
        .and_then(|f| f.choice(ctx, KINDS));
    let path = table.required(ctx, "path").and_then(|f| path(ctx, &f));

    // Keys of the other kind are mistakes (a baud rate on a keyboard),
    // reported rather than ignored.
    let foreign: &[&str] = match kind {
        Some(Kind::Serial) => EVDEV_KEYS,
        Some(Kind::Evdev) => SERIAL_KEYS,
        None => &[],
    };
    for key in foreign {
        if let Some(f) = table.field(key) {
            let only = if kind == Some(Kind::Serial) {
                "evdev"
            } else {
                "serial"
            };
            f.misplaced(ctx, format!("only applies to kind = \"{only}\""));
        }
    }

    let kind = match kind {
        Some(Kind::Serial) => read_serial_line(ctx, &table).map(DeviceKind::Serial),
        Some(Kind::Evdev) => {
            let layout = match table.field("layout") {
                Some(f) => f.choice(
                    ctx,
                    &[("us", KeyboardLayout::Us), ("de", KeyboardLayout::De)],
                ),
                None => Some(KeyboardLayout::default()),
            };
            layout.map(|layout| DeviceKind::Evdev { layout })
        }
        None => None,
    };

    let suffix = match table.field("suffix") {
        Some(f) => f.choice(
            ctx,
            &[
                ("\r", Suffix::Cr),
                ("\n", Suffix::Lf),
                ("\r\n", Suffix::CrLf),
                ("\t", Suffix::Tab),
            ],
        ),
        None => Some(Suffix::default()),
    };
    let prefix = match table.field("prefix") {
        Some(f) => read_prefix(ctx, &f),
        None => Some(Vec::new()),
    };
    let role = match table.field("role") {
        Some(f) => f.choice(
            ctx,
            &[
                ("items", Role::Items),
                ("cards", Role::Cards),
                ("auto", Role::Auto),
            ],
        ),
        None => Some(Role::default()),
    };
    let dedup_window_ms = ms(
        ctx,
        &table,
        "dedup_window_ms",
        DEFAULT_DEDUP_WINDOW_MS,
        0,
        DEDUP_WINDOW_MS_MAX,
    );
    let stall_timeout_ms = ms(
        ctx,
        &table,
        "stall_timeout_ms",
        DEFAULT_STALL_TIMEOUT_MS,
        STALL_TIMEOUT_MS_MIN,
        STALL_TIMEOUT_MS_MAX,
    );
    table.finish(ctx);
    Some(Device {
        name: name?,
        path: path?,
        kind: kind?,
        prefix: prefix?,
        suffix: suffix?,
        role: role?,
        dedup_window_ms,
        stall_timeout_ms,
    })
}

fn read_serial_line(ctx: &mut Ctx<'_>, table: &Table<'_, '_>) -> Option<SerialLine> {
    let baud = match table.field("baud") {
        Some(f) => f.integer(ctx, 1..=i64::from(u32::MAX)).and_then(|n| {
            let rate = u32::try_from(n).ok()?;
            if STANDARD_BAUD_RATES.contains(&rate) {
                Some(rate)
            } else {
                let rates: Vec<String> = STANDARD_BAUD_RATES.iter().map(u32::to_string).collect();
                f.invalid(
                    ctx,
                    format!("must be a standard rate ({}), got {rate}", rates.join(", ")),
                );
                None
            }
        }),
        None => Some(DEFAULT_BAUD),
    };
    let parity = match table.field("parity") {
        Some(f) => f.choice(
            ctx,
            &[
                ("none", Parity::None),
                ("odd", Parity::Odd),
                ("even", Parity::Even),
            ],
        ),
        None => Some(Parity::None),
    };
    let data_bits = match table.field("data_bits") {
        Some(f) => f.integer(ctx, 5..=8).map(|n| n as u8),
        None => Some(8),
    };
    let stop_bits = match table.field("stop_bits") {
        Some(f) => f.integer(ctx, 1..=2).map(|n| n as u8),
        None => Some(1),
    };
    Some(SerialLine {
        baud: baud?,
        parity: parity?,
        data_bits: data_bits?,
        stop_bits: stop_bits?,
    })
}

/// At most [`PREFIX_BYTES_MAX`] bytes, and none of the terminators: a
/// prefix holding CR, LF or TAB would split every frame in two.
fn read_prefix(ctx: &mut Ctx<'_>, field: &Field<'_, '_>) -> Option<Vec<u8>> {
    let text = field.string(ctx)?;
    if text.len() > PREFIX_BYTES_MAX {
        field.invalid(
            ctx,
            format!(
                "must be at most {PREFIX_BYTES_MAX} bytes, got {}",
                text.len()
            ),
        );
        return None;
    }
    if text.contains(['\r', '\n', '\t']) {
        field.invalid(ctx, "must not contain CR, LF or TAB (they end a scan)");
        return None;
    }
    Some(text.as_bytes().to_vec())
}
