//! `[[devices]]`: the scanners and card readers attached to this register.

use std::collections::HashMap;
use std::ops::RangeInclusive;
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
// The device limits and defaults are the device loops': one definition, so a device
// this config accepts is one `pos_drivers::DeviceSettings::validate` accepts.
use pos_drivers::device::{DATA_BITS, DEFAULT_DATA_BITS, DEFAULT_STOP_BITS, STOP_BITS};
pub use pos_drivers::device::{
    DEDUP_WINDOW_MS_MAX, DEFAULT_BAUD, DEFAULT_DEDUP_WINDOW_MS, DEFAULT_STALL_TIMEOUT_MS,
    PREFIX_BYTES_MAX, STALL_TIMEOUT_MS_MAX, STALL_TIMEOUT_MS_MIN, STANDARD_BAUD_RATES,
};
use pos_drivers::framing::is_terminator_byte;

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
    report_foreign_keys(ctx, &table, kind);
    let kind = match kind {
        Some(Kind::Serial) => read_serial_line(ctx, &table).map(DeviceKind::Serial),
        Some(Kind::Evdev) => read_layout(ctx, &table).map(|layout| DeviceKind::Evdev { layout }),
        None => None,
    };
    let suffix = choice_or_default(ctx, &table, "suffix", SUFFIXES);
    let prefix = match table.field("prefix") {
        Some(f) => read_prefix(ctx, &f),
        None => Some(Vec::new()),
    };
    let role = choice_or_default(ctx, &table, "role", ROLES);
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

const SUFFIXES: &[(&str, Suffix)] = &[
    ("\r", Suffix::Cr),
    ("\n", Suffix::Lf),
    ("\r\n", Suffix::CrLf),
    ("\t", Suffix::Tab),
];

const ROLES: &[(&str, Role)] = &[
    ("items", Role::Items),
    ("cards", Role::Cards),
    ("auto", Role::Auto),
];

/// `key`, one of `choices`, or the type's default when absent.
fn choice_or_default<T: Copy + Default>(
    ctx: &mut Ctx<'_>,
    table: &Table<'_, '_>,
    key: &'static str,
    choices: &[(&str, T)],
) -> Option<T> {
    match table.field(key) {
        Some(f) => f.choice(ctx, choices),
        None => Some(T::default()),
    }
}

/// Keys of the other kind are mistakes (a baud rate on a keyboard),
/// reported rather than ignored.
fn report_foreign_keys(ctx: &mut Ctx<'_>, table: &Table<'_, '_>, kind: Option<Kind>) {
    let (foreign, only): (&[&str], &str) = match kind {
        Some(Kind::Serial) => (EVDEV_KEYS, "evdev"),
        Some(Kind::Evdev) => (SERIAL_KEYS, "serial"),
        None => return,
    };
    for key in foreign {
        if let Some(f) = table.field(key) {
            f.misplaced(ctx, format!("only applies to kind = \"{only}\""));
        }
    }
}

fn read_layout(ctx: &mut Ctx<'_>, table: &Table<'_, '_>) -> Option<KeyboardLayout> {
    choice_or_default(
        ctx,
        table,
        "layout",
        &[("us", KeyboardLayout::Us), ("de", KeyboardLayout::De)],
    )
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
    let data_bits = small_integer(ctx, table, "data_bits", &DATA_BITS, DEFAULT_DATA_BITS);
    let stop_bits = small_integer(ctx, table, "stop_bits", &STOP_BITS, DEFAULT_STOP_BITS);
    Some(SerialLine {
        baud: baud?,
        parity: parity?,
        data_bits: data_bits?,
        stop_bits: stop_bits?,
    })
}

/// `key` within `range`, or `default` when absent.
fn small_integer(
    ctx: &mut Ctx<'_>,
    table: &Table<'_, '_>,
    key: &'static str,
    range: &RangeInclusive<u8>,
    default: u8,
) -> Option<u8> {
    let range = i64::from(*range.start())..=i64::from(*range.end());
    match table.field(key) {
        Some(f) => f.integer(ctx, range).map(|n| n as u8),
        None => Some(default),
    }
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
    if text.bytes().any(is_terminator_byte) {
        field.invalid(ctx, "must not contain CR, LF or TAB (they end a scan)");
        return None;
    }
    Some(text.as_bytes().to_vec())
}
