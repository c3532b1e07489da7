//! The serial framer: fed the input in chunks at varying times, it never
//! panics, never emits a frame over the limit or holding a terminator, and
//! after a reset starts clean.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use pos_drivers::Suffix;
use pos_drivers::framing::{FRAME_BYTES_MAX, FrameEvent, Framer};

fuzz_target!(|data: &[u8]| {
    // Byte 0: suffix and prefix; then chunks of [len, gap_ms, bytes...].
    let Some((&head, mut rest)) = data.split_first() else {
        return;
    };
    let suffix = [Suffix::Cr, Suffix::Lf, Suffix::CrLf, Suffix::Tab][usize::from(head & 3)];
    let prefix = if head & 4 != 0 {
        b"]E".to_vec()
    } else {
        Vec::new()
    };
    let stall = Duration::from_millis(200);
    let mut framer = Framer::new(suffix, prefix, stall);
    let start = Instant::now();
    let mut now = start;
    let mut out = Vec::new();
    while let [len, gap, tail @ ..] = rest {
        let take = usize::from(*len).min(tail.len());
        now += Duration::from_millis(u64::from(*gap) * 4);
        framer.check_stall(now, &mut out);
        framer.push(&tail[..take], now, &mut out);
        if let Some(deadline) = framer.stall_deadline() {
            assert!(deadline >= now, "a stall deadline in the past");
        }
        rest = &tail[take..];
    }
    let terminator = match suffix {
        Suffix::Cr | Suffix::CrLf => b'\r',
        Suffix::Lf => b'\n',
        Suffix::Tab => b'\t',
    };
    for event in &out {
        if let FrameEvent::Frame(bytes) = event {
            assert!(bytes.len() <= FRAME_BYTES_MAX, "frame over the limit");
            assert!(!bytes.contains(&terminator), "terminator inside a frame");
        }
    }
    framer.reset();
    assert_eq!(framer.stall_deadline(), None, "reset leaves a frame open");
});
