//! Keyboard-wedge scanners: a USB HID scanner "types" its scan as key presses. This pure
//! decoder turns Linux input key events (type, code, value) back into characters, with
//! shift, caps lock, AltGr, Ctrl control characters and Alt+keypad codes, for the US and
//! German layouts. Enter and Tab end a scan.
//!
//! Key codes are the Linux `input-event-codes.h` values (a stable kernel ABI), so the
//! decoder needs no evdev crate and is built and tested everywhere; the device reader
//! behind the `evdev` feature only feeds it.
//!
//! How scanners send the GS separator of GS1 data: Ctrl+] (the `]` key position, whatever
//! the layout) or Alt+0029 on the keypad; both give 0x1D here.

use serde::{Deserialize, Serialize};

/// The keyboard layout the scanner is set to type in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyboardLayout {
    #[default]
    Us,
    /// German QWERTZ.
    De,
}

/// Linux key codes used here (`linux/input-event-codes.h`).
pub mod keys {
    pub const EV_KEY: u16 = 0x01;
    pub const KEY_1: u16 = 2;
    pub const KEY_0: u16 = 11;
    pub const KEY_MINUS: u16 = 12;
    pub const KEY_EQUAL: u16 = 13;
    pub const KEY_TAB: u16 = 15;
    pub const KEY_Q: u16 = 16;
    pub const KEY_Y: u16 = 21;
    pub const KEY_P: u16 = 25;
    pub const KEY_LEFTBRACE: u16 = 26;
    pub const KEY_RIGHTBRACE: u16 = 27;
    pub const KEY_ENTER: u16 = 28;
    pub const KEY_LEFTCTRL: u16 = 29;
    pub const KEY_A: u16 = 30;
    pub const KEY_L: u16 = 38;
    pub const KEY_SEMICOLON: u16 = 39;
    pub const KEY_APOSTROPHE: u16 = 40;
    pub const KEY_GRAVE: u16 = 41;
    pub const KEY_LEFTSHIFT: u16 = 42;
    pub const KEY_BACKSLASH: u16 = 43;
    pub const KEY_Z: u16 = 44;
    pub const KEY_M: u16 = 50;
    pub const KEY_COMMA: u16 = 51;
    pub const KEY_DOT: u16 = 52;
    pub const KEY_SLASH: u16 = 53;
    pub const KEY_RIGHTSHIFT: u16 = 54;
    pub const KEY_KPASTERISK: u16 = 55;
    pub const KEY_LEFTALT: u16 = 56;
    pub const KEY_SPACE: u16 = 57;
    pub const KEY_CAPSLOCK: u16 = 58;
    pub const KEY_KP7: u16 = 71;
    pub const KEY_KP8: u16 = 72;
    pub const KEY_KP9: u16 = 73;
    pub const KEY_KPMINUS: u16 = 74;
    pub const KEY_KP4: u16 = 75;
    pub const KEY_KP5: u16 = 76;
    pub const KEY_KP6: u16 = 77;
    pub const KEY_KPPLUS: u16 = 78;
    pub const KEY_KP1: u16 = 79;
    pub const KEY_KP2: u16 = 80;
    pub const KEY_KP3: u16 = 81;
    pub const KEY_KP0: u16 = 82;
    pub const KEY_KPDOT: u16 = 83;
    pub const KEY_102ND: u16 = 86;
    pub const KEY_KPENTER: u16 = 96;
    pub const KEY_RIGHTCTRL: u16 = 97;
    pub const KEY_KPSLASH: u16 = 98;
    pub const KEY_RIGHTALT: u16 = 100;
}

use keys::*;

/// Key event values.
const RELEASE: i32 = 0;
const PRESS: i32 = 1;

/// Alt+keypad codes above this are ignored (beyond Unicode they mean nothing; the limit
/// also bounds the accumulator).
const ALT_CODE_MAX: u32 = 0x10_FFFF;

/// What one key event means for the scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WedgeKey {
    /// A character of the scan.
    Char(char),
    /// Enter (main or keypad): end of scan.
    Enter,
    /// Tab: end of scan.
    Tab,
    /// A pressed key with no meaning in the layout (reported so a reader can count them).
    Unmapped(u16),
}

/// The decoder: modifier state and the layout.
#[derive(Debug, Clone)]
pub struct WedgeDecoder {
    layout: KeyboardLayout,
    left_shift: bool,
    right_shift: bool,
    ctrl_left: bool,
    ctrl_right: bool,
    alt: bool,
    altgr: bool,
    caps_lock: bool,
    /// Digits typed on the keypad while Alt is held.
    alt_code: Option<u32>,
}

/// The key's characters in the US layout: (plain, shifted).
fn us(code: u16) -> Option<(char, char)> {
    const DIGITS_SHIFTED: &[u8; 10] = b"!@#$%^&*()";
    Some(match code {
        KEY_1..=KEY_0 => {
            let i = usize::from(code - KEY_1);
            let digit = if code == KEY_0 {
                '0'
            } else {
                char::from(b'1' + (i as u8))
            };
            (digit, char::from(DIGITS_SHIFTED[i]))
        }
        KEY_MINUS => ('-', '_'),
        KEY_EQUAL => ('=', '+'),
        KEY_LEFTBRACE => ('[', '{'),
        KEY_RIGHTBRACE => (']', '}'),
        KEY_SEMICOLON => (';', ':'),
        KEY_APOSTROPHE => ('\'', '"'),
        KEY_GRAVE => ('`', '~'),
        KEY_BACKSLASH | KEY_102ND => ('\\', '|'),
        KEY_COMMA => (',', '<'),
        KEY_DOT => ('.', '>'),
        KEY_SLASH => ('/', '?'),
        KEY_SPACE => (' ', ' '),
        _ => {
            let letter = letter_us(code)?;
            (letter, letter.to_ascii_uppercase())
        }
    })
}

/// The letter on a key in the US layout.
fn letter_us(code: u16) -> Option<char> {
    const ROW_Q: &[u8] = b"qwertyuiop";
    const ROW_A: &[u8] = b"asdfghjkl";
    const ROW_Z: &[u8] = b"zxcvbnm";
    let pick = |row: &[u8], first: u16| char::from(row[usize::from(code - first)]);
    match code {
        KEY_Q..=KEY_P => Some(pick(ROW_Q, KEY_Q)),
        KEY_A..=KEY_L => Some(pick(ROW_A, KEY_A)),
        KEY_Z..=KEY_M => Some(pick(ROW_Z, KEY_Z)),
        _ => None,
    }
}

/// The key's characters in the German layout: (plain, shifted, AltGr). Dead keys (´ `
/// ^) give their character directly: a scanner never composes accents.
fn de(code: u16) -> Option<(char, char, Option<char>)> {
    const DIGITS_SHIFTED: [char; 10] = ['!', '"', '§', '$', '%', '&', '/', '(', ')', '='];
    const DIGITS_ALTGR: [Option<char>; 10] = [
        None,
        Some('²'),
        Some('³'),
        None,
        None,
        None,
        Some('{'),
        Some('['),
        Some(']'),
        Some('}'),
    ];
    Some(match code {
        KEY_1..=KEY_0 => {
            let i = usize::from(code - KEY_1);
            let digit = if code == KEY_0 {
                '0'
            } else {
                char::from(b'1' + (i as u8))
            };
            (digit, DIGITS_SHIFTED[i], DIGITS_ALTGR[i])
        }
        KEY_MINUS => ('ß', '?', Some('\\')),
        KEY_EQUAL => ('´', '`', None),
        KEY_LEFTBRACE => ('ü', 'Ü', None),
        KEY_RIGHTBRACE => ('+', '*', Some('~')),
        KEY_SEMICOLON => ('ö', 'Ö', None),
        KEY_APOSTROPHE => ('ä', 'Ä', None),
        KEY_GRAVE => ('^', '°', None),
        KEY_BACKSLASH => ('#', '\'', None),
        KEY_102ND => ('<', '>', Some('|')),
        KEY_COMMA => (',', ';', None),
        KEY_DOT => ('.', ':', None),
        KEY_SLASH => ('-', '_', None),
        KEY_SPACE => (' ', ' ', None),
        KEY_Y => ('z', 'Z', None),
        KEY_Z => ('y', 'Y', None),
        _ => {
            let letter = letter_us(code)?;
            let altgr = match letter {
                'q' => Some('@'),
                'e' => Some('€'),
                'm' => Some('µ'),
                _ => None,
            };
            (letter, letter.to_ascii_uppercase(), altgr)
        }
    })
}

/// The keypad, with Num Lock assumed on (scanners type digits there).
fn keypad(code: u16) -> Option<char> {
    Some(match code {
        KEY_KP0 => '0',
        KEY_KP1 => '1',
        KEY_KP2 => '2',
        KEY_KP3 => '3',
        KEY_KP4 => '4',
        KEY_KP5 => '5',
        KEY_KP6 => '6',
        KEY_KP7 => '7',
        KEY_KP8 => '8',
        KEY_KP9 => '9',
        KEY_KPDOT => '.',
        KEY_KPPLUS => '+',
        KEY_KPMINUS => '-',
        KEY_KPASTERISK => '*',
        KEY_KPSLASH => '/',
        _ => return None,
    })
}

impl WedgeDecoder {
    pub fn new(layout: KeyboardLayout) -> Self {
        WedgeDecoder {
            layout,
            left_shift: false,
            right_shift: false,
            ctrl_left: false,
            ctrl_right: false,
            alt: false,
            altgr: false,
            caps_lock: false,
            alt_code: None,
        }
    }

    /// Feeds one input event; non-key events (sync, misc scan codes) are ignored.
    pub fn event(&mut self, event_type: u16, code: u16, value: i32) -> Option<WedgeKey> {
        if event_type == EV_KEY {
            self.key(code, value)
        } else {
            None
        }
    }

    /// Feeds one key event: value 1 press, 0 release, 2 auto-repeat (ignored: a scanner
    /// does not hold keys, and a repeat would double a character).
    pub fn key(&mut self, code: u16, value: i32) -> Option<WedgeKey> {
        let pressed = match value {
            PRESS => true,
            RELEASE => false,
            _ => return None,
        };
        match code {
            KEY_LEFTSHIFT => self.left_shift = pressed,
            KEY_RIGHTSHIFT => self.right_shift = pressed,
            KEY_LEFTCTRL => self.ctrl_left = pressed,
            KEY_RIGHTCTRL => self.ctrl_right = pressed,
            KEY_RIGHTALT => self.altgr = pressed,
            KEY_LEFTALT => {
                self.alt = pressed;
                if pressed {
                    self.alt_code = None;
                } else if let Some(code) = self.alt_code.take() {
                    return char::from_u32(code).map(WedgeKey::Char);
                }
            }
            KEY_CAPSLOCK if pressed => self.caps_lock = !self.caps_lock,
            _ if pressed => return self.press(code),
            _ => {}
        }
        None
    }

    fn press(&mut self, code: u16) -> Option<WedgeKey> {
        match code {
            KEY_ENTER | KEY_KPENTER => return Some(WedgeKey::Enter),
            KEY_TAB => return Some(WedgeKey::Tab),
            _ => {}
        }
        if self.alt {
            // Alt + keypad digits: a character by its decimal code, sent on Alt release.
            if let Some(digit) = keypad(code).and_then(|c| c.to_digit(10)) {
                let so_far = self.alt_code.unwrap_or(0);
                let next = so_far.saturating_mul(10).saturating_add(digit);
                self.alt_code = (next <= ALT_CODE_MAX).then_some(next);
                return None;
            }
            return Some(WedgeKey::Unmapped(code));
        }
        if self.ctrl_left || self.ctrl_right {
            return self
                .control(code)
                .map(WedgeKey::Char)
                .or(Some(WedgeKey::Unmapped(code)));
        }
        if let Some(c) = keypad(code) {
            return Some(WedgeKey::Char(c));
        }
        let shift = self.left_shift || self.right_shift;
        let c = match self.layout {
            KeyboardLayout::Us => {
                us(code).map(|(plain, shifted)| if shift { shifted } else { plain })
            }
            KeyboardLayout::De => de(code).and_then(|(plain, shifted, altgr)| {
                if self.altgr {
                    altgr
                } else if shift {
                    Some(shifted)
                } else {
                    Some(plain)
                }
            }),
        };
        let Some(c) = c else {
            return Some(WedgeKey::Unmapped(code));
        };
        // Caps lock inverts the case of letters only (and not AltGr symbols like µ).
        let c = if self.caps_lock && c.is_alphabetic() && !self.altgr {
            if c.is_lowercase() {
                c.to_uppercase().next().unwrap_or(c)
            } else {
                c.to_lowercase().next().unwrap_or(c)
            }
        } else {
            c
        };
        Some(WedgeKey::Char(c))
    }

    /// Ctrl + key: the control characters a scanner sends. Ctrl+letter gives 0x01–0x1A
    /// (by the letter of the layout), Ctrl+[ \ ] by key position give ESC, FS and GS.
    fn control(&self, code: u16) -> Option<char> {
        let letter = match self.layout {
            KeyboardLayout::Us => letter_us(code),
            KeyboardLayout::De => match code {
                KEY_Y => Some('z'),
                KEY_Z => Some('y'),
                _ => letter_us(code),
            },
        };
        if let Some(letter) = letter {
            return Some(char::from((letter as u8) & 0x1f));
        }
        match code {
            KEY_LEFTBRACE => Some('\u{1b}'),
            KEY_BACKSLASH => Some('\u{1c}'),
            KEY_RIGHTBRACE => Some('\u{1d}'),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Types `keys` (code, shift?) as press/release pairs, like a scanner does.
    fn type_keys(decoder: &mut WedgeDecoder, keys: &[(u16, bool)]) -> Vec<WedgeKey> {
        let mut out = Vec::new();
        for &(code, shift) in keys {
            if shift {
                out.extend(decoder.key(KEY_LEFTSHIFT, 1));
            }
            out.extend(decoder.key(code, 1));
            out.extend(decoder.key(code, 0));
            if shift {
                out.extend(decoder.key(KEY_LEFTSHIFT, 0));
            }
        }
        out
    }

    fn text(keys: &[WedgeKey]) -> String {
        keys.iter()
            .map(|k| match k {
                WedgeKey::Char(c) => *c,
                WedgeKey::Enter => '⏎',
                WedgeKey::Tab => '⇥',
                WedgeKey::Unmapped(_) => '?',
            })
            .collect()
    }

    #[test]
    fn us_digits_letters_and_shift() {
        let mut d = WedgeDecoder::new(KeyboardLayout::Us);
        let keys = [
            (KEY_1, false),
            (KEY_0, false),
            (KEY_A, true),
            (KEY_Z, false),
            (KEY_Y, false),
            (KEY_1, true),
            (KEY_MINUS, true),
            (KEY_ENTER, false),
        ];
        assert_eq!(text(&type_keys(&mut d, &keys)), "10Azy!_⏎");
    }

    #[test]
    fn de_layout_swaps_y_z_and_moves_symbols() {
        let mut d = WedgeDecoder::new(KeyboardLayout::De);
        let keys = [
            (KEY_Z, false),
            (KEY_Y, true),
            (KEY_7, true),
            (KEY_SLASH, false),
            (KEY_SEMICOLON, false),
            (KEY_0, true),
            (KEY_TAB, false),
        ];
        assert_eq!(text(&type_keys(&mut d, &keys)), "yZ/-ö=⇥");
        // AltGr+Q is @ on German keyboards.
        let mut out = Vec::new();
        out.extend(d.key(KEY_RIGHTALT, 1));
        out.extend(d.key(KEY_Q, 1));
        out.extend(d.key(KEY_Q, 0));
        out.extend(d.key(KEY_RIGHTALT, 0));
        assert_eq!(text(&out), "@");
    }

    const KEY_7: u16 = 8;

    #[test]
    fn caps_lock_inverts_letters_only() {
        let mut d = WedgeDecoder::new(KeyboardLayout::De);
        d.key(KEY_CAPSLOCK, 1);
        d.key(KEY_CAPSLOCK, 0);
        let keys = [
            (KEY_A, false),
            (KEY_A, true),
            (KEY_1, false),
            (KEY_APOSTROPHE, false),
        ];
        assert_eq!(text(&type_keys(&mut d, &keys)), "Aa1Ä");
        d.key(KEY_CAPSLOCK, 1);
        assert_eq!(text(&type_keys(&mut d, &[(KEY_A, false)])), "a");
    }

    #[test]
    fn gs_by_ctrl_bracket_and_by_alt_code() {
        for layout in [KeyboardLayout::Us, KeyboardLayout::De] {
            let mut d = WedgeDecoder::new(layout);
            let mut out = Vec::new();
            out.extend(d.key(KEY_LEFTCTRL, 1));
            out.extend(d.key(KEY_RIGHTBRACE, 1));
            out.extend(d.key(KEY_RIGHTBRACE, 0));
            out.extend(d.key(KEY_LEFTCTRL, 0));
            out.extend(d.key(KEY_LEFTALT, 1));
            for k in [KEY_KP0, KEY_KP0, KEY_KP2, KEY_KP9] {
                out.extend(d.key(k, 1));
                out.extend(d.key(k, 0));
            }
            out.extend(d.key(KEY_LEFTALT, 0));
            assert_eq!(
                out,
                vec![WedgeKey::Char('\u{1d}'), WedgeKey::Char('\u{1d}')]
            );
        }
    }

    #[test]
    fn repeats_sync_events_and_unknown_keys() {
        let mut d = WedgeDecoder::new(KeyboardLayout::Us);
        assert_eq!(d.key(KEY_A, 2), None, "auto-repeat is ignored");
        assert_eq!(d.event(0, 0, 0), None, "EV_SYN is ignored");
        assert_eq!(d.event(EV_KEY, KEY_KP5, 1), Some(WedgeKey::Char('5')));
        assert_eq!(d.key(59, 1), Some(WedgeKey::Unmapped(59)), "F1");
        assert_eq!(d.key(KEY_KPENTER, 1), Some(WedgeKey::Enter));
    }

    /// Our key codes are the kernel's: checked against the evdev crate's table, and the
    /// decoder fed with the crate's own synthetic `InputEvent`s.
    #[cfg(feature = "evdev")]
    #[test]
    fn synthetic_evdev_events() {
        use evdev::{EventType, InputEvent, KeyCode};
        for (ours, theirs) in [
            (KEY_1, KeyCode::KEY_1),
            (KEY_0, KeyCode::KEY_0),
            (KEY_Q, KeyCode::KEY_Q),
            (KEY_Y, KeyCode::KEY_Y),
            (KEY_RIGHTBRACE, KeyCode::KEY_RIGHTBRACE),
            (KEY_ENTER, KeyCode::KEY_ENTER),
            (KEY_LEFTSHIFT, KeyCode::KEY_LEFTSHIFT),
            (KEY_102ND, KeyCode::KEY_102ND),
            (KEY_KPENTER, KeyCode::KEY_KPENTER),
            (KEY_RIGHTALT, KeyCode::KEY_RIGHTALT),
            (KEY_KP0, KeyCode::KEY_KP0),
            (KEY_CAPSLOCK, KeyCode::KEY_CAPSLOCK),
        ] {
            assert_eq!(ours, theirs.code(), "{theirs:?}");
        }
        assert_eq!(EV_KEY, EventType::KEY.0);
        let mut d = WedgeDecoder::new(KeyboardLayout::Us);
        let mut out = String::new();
        let sequence = [
            (KeyCode::KEY_4, 1),
            (KeyCode::KEY_4, 0),
            (KeyCode::KEY_LEFTSHIFT, 1),
            (KeyCode::KEY_B, 1),
            (KeyCode::KEY_B, 0),
            (KeyCode::KEY_LEFTSHIFT, 0),
            (KeyCode::KEY_ENTER, 1),
        ];
        for (key, value) in sequence {
            let event = InputEvent::new(EventType::KEY.0, key.code(), value);
            let sync = InputEvent::new(EventType::SYNCHRONIZATION.0, 0, 0);
            for e in [event, sync] {
                match d.event(e.event_type().0, e.code(), e.value()) {
                    Some(WedgeKey::Char(c)) => out.push(c),
                    Some(WedgeKey::Enter) => out.push('\n'),
                    _ => {}
                }
            }
        }
        assert_eq!(out, "4B\n");
    }
}
