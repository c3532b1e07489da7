//! Property tests of the framer: the frames do not depend on how the byte stream is cut
//! into reads, and no byte sequence makes it emit an over-long or unterminated frame.
//! (The decoders' properties are pos-codes' own.)

use std::time::{Duration, Instant};

use pos_drivers::Suffix;
use pos_drivers::framing::{FRAME_BYTES_MAX, FrameEvent, Framer};
use proptest::prelude::*;

proptest! {
    #[test]
    fn framing_does_not_depend_on_chunking(
        scans in proptest::collection::vec("[ -~]{0,30}", 0..8),
        cuts in proptest::collection::vec(0usize..400, 0..10),
        crlf in any::<bool>(),
    ) {
        let terminator = if crlf { "\r\n" } else { "\r" };
        let input: String = scans.iter().map(|s| format!("{s}{terminator}")).collect();
        let bytes = input.as_bytes();
        let run = |chunks: &[&[u8]]| -> Vec<Vec<u8>> {
            let mut framer = Framer::new(Suffix::Cr, Vec::new(), Duration::from_secs(1));
            let mut out = Vec::new();
            let now = Instant::now();
            for chunk in chunks {
                framer.push(chunk, now, &mut out);
            }
            out.into_iter()
                .map(|e| match e {
                    FrameEvent::Frame(f) => f.to_vec(),
                    FrameEvent::Discarded(r) => panic!("unexpected discard {r:?}"),
                })
                .collect()
        };
        let mut points: Vec<usize> = cuts.into_iter().map(|c| c.min(bytes.len())).collect();
        points.sort_unstable();
        let mut chunks = Vec::new();
        let mut start = 0;
        for p in points {
            chunks.push(&bytes[start..p]);
            start = p;
        }
        chunks.push(&bytes[start..]);
        let whole = run(&[bytes]);
        prop_assert_eq!(&run(&chunks), &whole);
        // Exactly the non-empty scans come out, in order, without terminators.
        let expected: Vec<Vec<u8>> = scans.iter().filter(|s| !s.is_empty()).map(|s| s.as_bytes().to_vec()).collect();
        prop_assert_eq!(whole, expected);
    }

    #[test]
    fn framer_survives_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..(FRAME_BYTES_MAX + 200))) {
        let mut framer = Framer::new(Suffix::Lf, b"\x02".to_vec(), Duration::from_millis(10));
        let mut out = Vec::new();
        let now = Instant::now();
        framer.push(&bytes, now, &mut out);
        framer.check_stall(now + Duration::from_secs(1), &mut out);
        for event in out {
            if let FrameEvent::Frame(f) = event {
                prop_assert!(f.len() <= FRAME_BYTES_MAX);
                prop_assert!(!f.contains(&b'\n'));
            }
        }
    }
}
