//! Cutting a device's byte stream into scans: a pure state machine, fed bytes and the
//! time they arrived, so every edge case is tested without a device or a clock.
//!
//! Rules (agent spec §4):
//! * A frame ends at the configured suffix. Empty frames (two terminators in a row) are
//!   skipped silently: they carry nothing and come from CR/LF mismatches.
//! * CR versus CRLF: with suffix CR or CRLF, the frame ends at the CR — without waiting
//!   for the LF, which keeps latency low — and one LF right after it is swallowed. So a
//!   CRLF device configured as CR, or a CR device configured as CRLF, gives clean frames.
//!   With suffix LF, a CR right before the LF is dropped (a CRLF device configured as LF).
//!   A CR or LF that is not a terminator by these rules is data.
//! * A configured prefix must start each frame and is stripped; a frame without it is
//!   discarded and reported.
//! * A frame longer than [`FRAME_BYTES_MAX`], or one that stops mid-way for longer than
//!   the stall timeout, is discarded and reported; then everything up to the next
//!   terminator is skipped, so the tail of a broken frame never becomes a scan.
//!   While skipping, a new stall is reported again (once per silence), so a device whose
//!   suffix is misconfigured keeps showing up in the reports instead of going quiet.
//! * Every buffer that held frame bytes is zeroed when it is let go: a frame may be a
//!   payment card swipe.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};

/// Longest frame, prefix included, terminator excluded (agent spec §4: 4 KiB): the
/// decoder's [`pos_codes::decode::SCAN_BYTES_MAX`], so one frame is one decode.
pub const FRAME_BYTES_MAX: usize = pos_codes::decode::SCAN_BYTES_MAX;

const CR: u8 = b'\r';
const LF: u8 = b'\n';
const TAB: u8 = b'\t';

/// True for a byte that can end a frame under some [`Suffix`] (CR, LF, TAB). A frame
/// prefix must hold none of them, or it would split every frame in two; the config
/// refuses such a prefix with this same test.
pub fn is_terminator_byte(byte: u8) -> bool {
    matches!(byte, CR | LF | TAB)
}

/// What ends a scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Suffix {
    /// Carriage return, the commonest factory setting.
    #[default]
    Cr,
    /// Line feed.
    Lf,
    /// CR LF.
    CrLf,
    /// Horizontal tab.
    Tab,
}

/// Which bytes end a frame. `Suffix` for serial devices; keyboard wedges end a scan at
/// Enter or Tab, which the key decoder turns into CR and TAB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Terminators {
    Suffix(Suffix),
    EnterOrTab,
}

/// Why a frame was thrown away.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DiscardReason {
    /// The frame grew past the limit before its terminator.
    TooLong { limit_bytes: usize },
    /// No byte came for the stall timeout while a frame was open.
    Stalled { timeout_ms: u64 },
    /// The frame did not start with the configured prefix.
    MissingPrefix,
}

/// One output of the framer. `Debug` shows a frame's length, never its bytes: a frame
/// may be a payment card swipe until the decoder has looked at it.
#[derive(PartialEq, Eq)]
pub enum FrameEvent {
    /// A complete frame: prefix and terminator removed. Zeroed when dropped.
    Frame(Zeroizing<Vec<u8>>),
    /// A frame was discarded.
    Discarded(DiscardReason),
}

impl std::fmt::Debug for FrameEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameEvent::Frame(bytes) => write!(f, "Frame({} bytes)", bytes.len()),
            FrameEvent::Discarded(reason) => f.debug_tuple("Discarded").field(reason).finish(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Collecting a frame (possibly empty).
    Collecting,
    /// Dropping bytes until the next terminator, after a discard.
    Skipping,
}

/// The framing state machine for one device. `Debug` leaves out the buffered bytes.
pub struct Framer {
    terminators: Terminators,
    prefix: Vec<u8>,
    frame_bytes_max: usize,
    stall_timeout: Duration,
    buf: Zeroizing<Vec<u8>>,
    state: State,
    /// The previous byte was a CR that ended a frame: one LF after it is swallowed.
    swallow_lf: bool,
    /// When the last byte arrived, while a frame is open or bytes are being skipped;
    /// `None` when there is nothing to time out.
    open_since_last_byte: Option<Instant>,
}

impl std::fmt::Debug for Framer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Framer")
            .field("terminators", &self.terminators)
            .field("prefix_bytes", &self.prefix.len())
            .field("buffered_bytes", &self.buf.len())
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl Framer {
    /// A framer for a serial device.
    pub fn new(suffix: Suffix, prefix: Vec<u8>, stall_timeout: Duration) -> Self {
        Self::with_terminators(Terminators::Suffix(suffix), prefix, stall_timeout)
    }

    pub(crate) fn with_terminators(
        terminators: Terminators,
        prefix: Vec<u8>,
        stall_timeout: Duration,
    ) -> Self {
        Framer {
            terminators,
            prefix,
            frame_bytes_max: FRAME_BYTES_MAX,
            stall_timeout,
            buf: Zeroizing::new(Vec::with_capacity(256)),
            state: State::Collecting,
            swallow_lf: false,
            open_since_last_byte: None,
        }
    }

    fn is_terminator(&self, byte: u8) -> bool {
        match self.terminators {
            Terminators::Suffix(Suffix::Cr | Suffix::CrLf) => byte == CR,
            Terminators::Suffix(Suffix::Lf) => byte == LF,
            Terminators::Suffix(Suffix::Tab) => byte == TAB,
            Terminators::EnterOrTab => byte == CR || byte == TAB,
        }
    }

    fn discard(&mut self, reason: DiscardReason, out: &mut Vec<FrameEvent>) {
        self.buf.zeroize();
        self.state = State::Skipping;
        out.push(FrameEvent::Discarded(reason));
    }

    /// Feeds bytes that arrived at `now`; completed frames and discards go to `out`.
    pub fn push(&mut self, bytes: &[u8], now: Instant, out: &mut Vec<FrameEvent>) {
        for &byte in bytes {
            if std::mem::take(&mut self.swallow_lf) && byte == LF {
                continue;
            }
            if self.is_terminator(byte) {
                self.swallow_lf = byte == CR;
                self.open_since_last_byte = None;
                if self.state == State::Skipping {
                    self.state = State::Collecting;
                    self.buf.zeroize();
                    continue;
                }
                self.finish(out);
                continue;
            }
            self.open_since_last_byte = Some(now);
            if self.state == State::Skipping {
                continue;
            }
            if self.buf.len() >= self.frame_bytes_max {
                self.discard(
                    DiscardReason::TooLong {
                        limit_bytes: self.frame_bytes_max,
                    },
                    out,
                );
                continue;
            }
            self.buf.push(byte);
        }
    }

    fn finish(&mut self, out: &mut Vec<FrameEvent>) {
        if self.terminators == Terminators::Suffix(Suffix::Lf) && self.buf.last() == Some(&CR) {
            self.buf.pop();
        }
        if self.buf.is_empty() {
            return;
        }
        if !self.buf.starts_with(&self.prefix) {
            self.buf.zeroize();
            out.push(FrameEvent::Discarded(DiscardReason::MissingPrefix));
            return;
        }
        let frame = Zeroizing::new(self.buf[self.prefix.len()..].to_vec());
        self.buf.zeroize();
        if !frame.is_empty() {
            out.push(FrameEvent::Frame(frame));
        }
    }

    /// When the open frame (or the skipped bytes) will count as stalled, if anything is
    /// open. The device loop sleeps until then.
    pub fn stall_deadline(&self) -> Option<Instant> {
        self.open_since_last_byte.map(|t| t + self.stall_timeout)
    }

    /// Discards the open frame if it has stalled by `now`.
    pub fn check_stall(&mut self, now: Instant, out: &mut Vec<FrameEvent>) {
        if self
            .stall_deadline()
            .is_some_and(|deadline| now >= deadline)
        {
            self.open_since_last_byte = None;
            let timeout_ms = u64::try_from(self.stall_timeout.as_millis()).unwrap_or(u64::MAX);
            self.discard(DiscardReason::Stalled { timeout_ms }, out);
        }
    }

    /// Drops any partial frame (the device went away); its bytes are zeroed.
    pub fn reset(&mut self) {
        self.buf.zeroize();
        self.state = State::Collecting;
        self.swallow_lf = false;
        self.open_since_last_byte = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STALL: Duration = Duration::from_millis(50);

    fn frames(framer: &mut Framer, input: &[u8]) -> Vec<Result<String, DiscardReason>> {
        let mut out = Vec::new();
        framer.push(input, Instant::now(), &mut out);
        out.into_iter().map(as_result).collect()
    }

    fn as_result(event: FrameEvent) -> Result<String, DiscardReason> {
        match event {
            FrameEvent::Frame(f) => Ok(String::from_utf8(f.to_vec()).unwrap()),
            FrameEvent::Discarded(r) => Err(r),
        }
    }

    fn ok(s: &str) -> Result<String, DiscardReason> {
        Ok(s.to_string())
    }

    #[test]
    fn cr_suffix_with_cr_and_crlf_devices() {
        let mut f = Framer::new(Suffix::Cr, vec![], STALL);
        assert_eq!(frames(&mut f, b"123\r456\r"), vec![ok("123"), ok("456")]);
        assert_eq!(
            frames(&mut f, b"123\r\n456\r\n"),
            vec![ok("123"), ok("456")]
        );
        // The LF of a CRLF split across reads is still swallowed.
        assert_eq!(frames(&mut f, b"789\r"), vec![ok("789")]);
        assert_eq!(frames(&mut f, b"\n0\r"), vec![ok("0")]);
        // Empty frames never come out.
        assert_eq!(frames(&mut f, b"\r\r\r\n"), vec![]);
    }

    #[test]
    fn crlf_suffix_behaves_like_cr() {
        let mut f = Framer::new(Suffix::CrLf, vec![], STALL);
        assert_eq!(
            frames(&mut f, b"1\r\n2\r3\r\n"),
            vec![ok("1"), ok("2"), ok("3")]
        );
    }

    #[test]
    fn lf_suffix_drops_a_cr_before_lf_and_keeps_other_crs() {
        let mut f = Framer::new(Suffix::Lf, vec![], STALL);
        assert_eq!(frames(&mut f, b"1\r\n2\n"), vec![ok("1"), ok("2")]);
        assert_eq!(frames(&mut f, b"a\rb\n"), vec![ok("a\rb")]);
        assert_eq!(frames(&mut f, b"\r\n\n"), vec![]);
    }

    #[test]
    fn tab_suffix() {
        let mut f = Framer::new(Suffix::Tab, vec![], STALL);
        assert_eq!(frames(&mut f, b"1\t2\r\n\t"), vec![ok("1"), ok("2\r\n")]);
    }

    #[test]
    fn prefix_is_required_and_stripped() {
        let mut f = Framer::new(Suffix::Cr, vec![0x02], STALL);
        assert_eq!(
            frames(&mut f, b"\x02123\rNOPE\r\x02\r"),
            vec![ok("123"), Err(DiscardReason::MissingPrefix)]
        );
    }

    #[test]
    fn byte_by_byte_equals_all_at_once() {
        let input = b"]E04006381333931\r\n]C0ABC\r\n";
        let mut whole = Framer::new(Suffix::Cr, vec![], STALL);
        let expected = frames(&mut whole, input);
        let mut f = Framer::new(Suffix::Cr, vec![], STALL);
        let got: Vec<_> = input.iter().flat_map(|b| frames(&mut f, &[*b])).collect();
        assert_eq!(got, expected);
        assert_eq!(got.len(), 2);
    }

    #[test]
    fn overlong_frame_is_discarded_then_resynchronised() {
        let mut f = Framer::new(Suffix::Cr, vec![], STALL);
        let mut input = vec![b'7'; FRAME_BYTES_MAX + 10];
        input.extend_from_slice(b"\rGOOD\r");
        assert_eq!(
            frames(&mut f, &input),
            vec![
                Err(DiscardReason::TooLong {
                    limit_bytes: FRAME_BYTES_MAX
                }),
                ok("GOOD")
            ]
        );
        // Exactly at the limit is still a frame.
        let mut input = vec![b'8'; FRAME_BYTES_MAX];
        input.push(b'\r');
        assert_eq!(frames(&mut f, &input).len(), 1);
        assert!(matches!(&frames(&mut f, &input)[0], Ok(s) if s.len() == FRAME_BYTES_MAX));
    }

    #[test]
    fn stalled_frame_is_discarded_and_its_tail_skipped() {
        let mut f = Framer::new(Suffix::Cr, vec![], STALL);
        let t0 = Instant::now();
        let mut out = Vec::new();
        f.push(b"4006", t0, &mut out);
        assert!(out.is_empty());
        assert_eq!(f.stall_deadline(), Some(t0 + STALL));
        f.check_stall(t0 + STALL / 2, &mut out);
        assert!(out.is_empty(), "not stalled yet");
        f.check_stall(t0 + STALL, &mut out);
        assert_eq!(
            out.drain(..).map(as_result).collect::<Vec<_>>(),
            vec![Err(DiscardReason::Stalled { timeout_ms: 50 })]
        );
        assert_eq!(f.stall_deadline(), None);
        // The tail of the stalled frame is skipped; the next frame is clean.
        let t1 = t0 + STALL * 2;
        f.push(b"381333931\rNEXT\r", t1, &mut out);
        assert_eq!(
            out.drain(..).map(as_result).collect::<Vec<_>>(),
            vec![ok("NEXT")]
        );
        // Idle with nothing open: no deadline at all.
        assert_eq!(f.stall_deadline(), None);
    }

    #[test]
    fn a_misconfigured_suffix_keeps_reporting_stalls() {
        let mut f = Framer::new(Suffix::Tab, vec![], STALL);
        let t0 = Instant::now();
        let mut out = Vec::new();
        for i in 0..3u32 {
            let t = t0 + STALL * (3 * i);
            f.push(b"SCAN\r", t, &mut out);
            f.check_stall(t + STALL, &mut out);
        }
        assert_eq!(out.len(), 3);
        assert!(
            out.iter()
                .all(|e| matches!(e, FrameEvent::Discarded(DiscardReason::Stalled { .. })))
        );
    }

    #[test]
    fn reset_drops_a_partial_frame() {
        let mut f = Framer::new(Suffix::Cr, vec![], STALL);
        let mut out = Vec::new();
        f.push(b"PART", Instant::now(), &mut out);
        f.reset();
        f.push(b"IAL\r", Instant::now(), &mut out);
        assert_eq!(
            out.into_iter().map(as_result).collect::<Vec<_>>(),
            vec![ok("IAL")]
        );
    }

    #[test]
    fn debug_output_never_shows_frame_bytes() {
        let mut f = Framer::new(Suffix::Cr, vec![], STALL);
        let mut out = Vec::new();
        f.push(b"SECRET1\rSECRET2", Instant::now(), &mut out);
        let debug = format!("{f:?} {out:?}");
        assert!(
            !debug.contains("SECRET") && !debug.contains("83, 69"),
            "{debug}"
        );
        assert!(debug.contains("Frame(7 bytes)"), "{debug}");
    }

    #[test]
    fn wedge_terminators() {
        let mut f = Framer::with_terminators(Terminators::EnterOrTab, vec![], STALL);
        assert_eq!(
            frames(&mut f, b"A\rB\tC\r"),
            vec![ok("A"), ok("B"), ok("C")]
        );
    }
}
