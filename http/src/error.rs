//! The one error shape both APIs answer with, `{"error": {"code",
//! "message"}}`, for the answers the loop writes itself (a malformed
//! request, a shed connection), and the rule every error message follows:
//! bounded in size and never holding a payment card number.

use std::borrow::Cow;

/// Longest error message sent: a message quotes what the client sent (a
/// path, an id), and a 10 MiB id must not come back as a 10 MiB answer.
pub const MESSAGE_BYTES_MAX: usize = 512;

/// What replaces the digits of a message that holds a payment card number.
const DIGIT_MASK: char = '#';

/// `message` made safe to send: when it holds a payment card number (the
/// guard of `pos-codes`), every run of digits long enough to be one is
/// masked (the text around it still says what was wrong); then it is cut
/// to [`MESSAGE_BYTES_MAX`] at a character boundary, `…` marking the cut.
pub fn safe_message(message: &str) -> Cow<'_, str> {
    let masked = mask_cards(message);
    if masked.len() <= MESSAGE_BYTES_MAX {
        return masked;
    }
    let mut end = MESSAGE_BYTES_MAX - '…'.len_utf8();
    while !masked.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(format!("{}…", &masked[..end]))
}

/// `text` with every payment card number in it masked (the first half of
/// [`safe_message`], for a server that bounds its messages itself).
pub fn mask_cards(text: &str) -> Cow<'_, str> {
    if is_card(text) {
        Cow::Owned(mask_long_digit_runs(text))
    } else {
        Cow::Borrowed(text)
    }
}

/// Masks the digits of every run of at least
/// [`pos_codes::payment_card::PAN_DIGITS_MIN`] digits, a run going on over
/// single separators (`4111 1111-1111.1111`). When the guard saw a card
/// but no run is that long, every digit is masked.
fn mask_long_digit_runs(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = chars.clone();
    let mut masked_any = false;
    let mut i = 0;
    while i < chars.len() {
        if !chars[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let start = i;
        let mut digits = 0;
        while i < chars.len() {
            if chars[i].is_ascii_digit() {
                digits += 1;
                i += 1;
            } else if !chars[i].is_alphanumeric()
                && chars.get(i + 1).is_some_and(char::is_ascii_digit)
            {
                i += 1;
            } else {
                break;
            }
        }
        if digits >= pos_codes::payment_card::PAN_DIGITS_MIN {
            masked_any = true;
            for c in &mut out[start..i] {
                if c.is_ascii_digit() {
                    *c = DIGIT_MASK;
                }
            }
        }
    }
    if !masked_any {
        for c in &mut out {
            if c.is_ascii_digit() {
                *c = DIGIT_MASK;
            }
        }
    }
    out.into_iter().collect()
}

fn is_card(text: &str) -> bool {
    use pos_codes::payment_card::{contains_pan, has_track1_format_b};
    has_track1_format_b(text) || contains_pan(text)
}

/// The JSON body `{"error": {"code": code, "message": message}}`, the
/// message made safe by [`safe_message`].
pub fn error_body(code: &str, message: &str) -> String {
    serde_json::json!({"error": {"code": code, "message": safe_message(message)}}).to_string()
}

/// A whole HTTP/1.1 answer with a JSON error body that closes the
/// connection: what the loop writes when no service is asked.
pub(crate) fn raw_answer(status: &str, extra_headers: &str, code: &str, message: &str) -> Vec<u8> {
    let body = error_body(code, message);
    format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n{extra_headers}\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn card_numbers_are_masked_and_long_messages_cut() {
        let m = safe_message("no such endpoint: GET /v1/cards/4111111111111111");
        assert_eq!(m, "no such endpoint: GET /v1/cards/################");
        assert_eq!(safe_message("no member M-12"), "no member M-12");
        assert_eq!(
            safe_message("card 4111 1111-1111 1111 of M-1"),
            "card #### ####-#### #### of M-1"
        );
        let long = "é".repeat(10_000);
        let cut = safe_message(&long);
        assert!(cut.len() <= MESSAGE_BYTES_MAX && cut.ends_with('…'));
    }
}
