//! The bytes on the wire: postcard, behind a leading protocol version number
//! (sync spec §2), `Content-Type: application/x-postcard`.
//!
//! Only this module knows the encoding. Ledger entries are converted from the
//! domain [`LedgerEntry`] to a private `WireEntry` (fixed-size byte arrays,
//! the kind as a small code) so the ledger schema and the protocol can evolve
//! apart. Decoding never panics and refuses anything over its byte limit
//! before looking at it.

use std::collections::BTreeMap;

use serde::Serialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::entry::{Digest32, EntryKind, LedgerEntry};
use crate::error::SyncError;
use crate::protocol::{
    BATCH_BYTES_MAX, BATCH_ENTRIES_MAX, DETAIL_BYTES_MAX, DOCUMENT_BYTES_MAX,
    DOCUMENT_ID_BYTES_MAX, DOCUMENTS_MAX, Document, DocumentKey, ID_BYTES_MAX, LineQty,
    REDEEMED_PROGRAMS_MAX, RETURN_LINES_MAX, ReceivedBatch, ReceivedEntry, SaleDocument,
    TIME_BYTES_MAX, UploadBatch,
};

/// The protocol version this build speaks; the first value of every body
/// (2: verified intake, `docs/sync-v2.md`).
pub const PROTOCOL_VERSION: u16 = 2;
/// The header every `/v1/sync/*` request carries with [`PROTOCOL_VERSION`];
/// central refuses a request without it with HTTP 426 before reading the body.
pub const PROTOCOL_HEADER: &str = "pos-sync-protocol";
/// The media type of every postcard body.
pub const CONTENT_TYPE: &str = "application/x-postcard";

/// A ledger entry as it travels. Field order is part of the protocol.
#[derive(serde::Serialize, serde::Deserialize)]
struct WireEntry {
    entry_id: [u8; 16],
    terminal_id: String,
    seq: u64,
    prev_hash: [u8; 32],
    hash: [u8; 32],
    kind: u8,
    program: String,
    member: String,
    points: i64,
    sale_id: Option<String>,
    return_id: Option<String>,
    rules_version: u64,
    occurred_at: String,
    detail: String,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct WireBatch {
    terminal_id: String,
    first_seq: u64,
    entries: Vec<WireEntry>,
    documents: Vec<Document>,
}

fn kind_code(kind: EntryKind) -> u8 {
    match kind {
        EntryKind::Earn => 0,
        EntryKind::Redeem => 1,
        EntryKind::ReturnEarn => 2,
        EntryKind::ReturnRedeem => 3,
        EntryKind::Adjust => 4,
    }
}

fn kind_from_code(code: u8) -> Option<EntryKind> {
    EntryKind::ALL.into_iter().find(|k| kind_code(*k) == code)
}

impl WireEntry {
    fn from_entry(e: &LedgerEntry) -> WireEntry {
        WireEntry {
            entry_id: *e.entry_id.as_bytes(),
            terminal_id: e.terminal_id.clone(),
            seq: e.seq,
            prev_hash: e.prev_hash.0,
            hash: e.hash.0,
            kind: kind_code(e.kind),
            program: e.program.clone(),
            member: e.member.clone(),
            points: e.points,
            sale_id: e.sale_id.clone(),
            return_id: e.return_id.clone(),
            rules_version: e.rules_version,
            occurred_at: e.occurred_at.clone(),
            detail: e.detail.clone(),
        }
    }
}

/// Encodes any protocol message behind the version number.
pub fn encode<T: Serialize>(message: &T) -> Result<Vec<u8>, SyncError> {
    let mut out = postcard::to_allocvec(&PROTOCOL_VERSION)
        .map_err(|e| SyncError::Protocol(format!("encoding the version: {e}")))?;
    let body = postcard::to_allocvec(message)
        .map_err(|e| SyncError::Protocol(format!("encoding a message: {e}")))?;
    out.extend_from_slice(&body);
    Ok(out)
}

/// Decodes a protocol message of at most `bytes_max` bytes, checking the
/// version and that nothing trails the message.
pub fn decode<T: DeserializeOwned>(bytes: &[u8], bytes_max: usize) -> Result<T, SyncError> {
    if bytes.len() > bytes_max {
        return Err(SyncError::Protocol(format!(
            "message of {} bytes is over the limit of {bytes_max} bytes",
            bytes.len()
        )));
    }
    let (version, rest) = postcard::take_from_bytes::<u16>(bytes)
        .map_err(|e| SyncError::Protocol(format!("reading the protocol version: {e}")))?;
    if version != PROTOCOL_VERSION {
        return Err(SyncError::Protocol(format!(
            "protocol version {version} is not supported (this side speaks {PROTOCOL_VERSION})"
        )));
    }
    let (message, rest) = postcard::take_from_bytes::<T>(rest)
        .map_err(|e| SyncError::Protocol(format!("decoding the message: {e}")))?;
    if !rest.is_empty() {
        return Err(SyncError::Protocol(format!(
            "{} unexpected bytes after the message",
            rest.len()
        )));
    }
    Ok(message)
}

/// Bytes one entry adds to an encoded batch.
pub fn entry_encoded_len(entry: &LedgerEntry) -> usize {
    // Encoding into memory cannot fail for these plain fields; 0 would only
    // make the batch limit check below the more conservative.
    postcard::to_allocvec(&WireEntry::from_entry(entry))
        .map(|v| v.len())
        .unwrap_or(BATCH_BYTES_MAX)
}

/// Bytes one document adds to an encoded batch.
pub fn document_encoded_len(document: &Document) -> usize {
    // As for entries: a failure only makes the cut more conservative.
    postcard::to_allocvec(document)
        .map(|v| v.len())
        .unwrap_or(BATCH_BYTES_MAX)
}

/// Room kept for the batch header (version, terminal id, first seq, counts).
const BATCH_HEADER_BYTES_MAX: usize = 24 + ID_BYTES_MAX;

/// How many of the leading `entries` fit in one batch with their documents
/// (at most [`BATCH_ENTRIES_MAX`] entries and [`BATCH_BYTES_MAX`] bytes, a
/// document counted once, with the first entry that names it). At least 1
/// when `entries` is non-empty and the first entry alone fits with its
/// document; 0 means it never can — a broken invariant of the register,
/// which bounds every field.
pub fn batch_prefix_len(
    entries: &[LedgerEntry],
    documents: &BTreeMap<DocumentKey, Document>,
) -> usize {
    let mut bytes = BATCH_HEADER_BYTES_MAX;
    let mut counted = std::collections::BTreeSet::new();
    let mut count = 0;
    for entry in entries.iter().take(BATCH_ENTRIES_MAX) {
        bytes += entry_encoded_len(entry);
        if let Some(key) = DocumentKey::of(entry)
            && let Some(document) = documents.get(&key)
            && counted.insert(key)
        {
            bytes += document_encoded_len(document);
        }
        if bytes > BATCH_BYTES_MAX {
            break;
        }
        count += 1;
    }
    count
}

impl UploadBatch {
    /// A batch of `entries` with, from `documents`, each one an entry names
    /// (in the order first named); documents no entry names stay out.
    pub fn assemble(
        terminal_id: String,
        first_seq: u64,
        entries: Vec<LedgerEntry>,
        documents: &BTreeMap<DocumentKey, Document>,
    ) -> UploadBatch {
        let mut named = std::collections::BTreeSet::new();
        let mut picked = Vec::new();
        for key in entries.iter().filter_map(DocumentKey::of) {
            if let Some(document) = documents.get(&key)
                && named.insert(key)
            {
                picked.push(document.clone());
            }
        }
        UploadBatch {
            terminal_id,
            first_seq,
            entries,
            documents: picked,
        }
    }
}

/// Encodes an upload batch, refusing one over the protocol limits.
pub fn encode_upload(batch: &UploadBatch) -> Result<Vec<u8>, SyncError> {
    if batch.entries.is_empty() {
        return Err(SyncError::Protocol(
            "an upload batch needs at least one entry".into(),
        ));
    }
    if batch.entries.len() > BATCH_ENTRIES_MAX {
        return Err(SyncError::Protocol(format!(
            "batch of {} entries is over the limit of {BATCH_ENTRIES_MAX}",
            batch.entries.len()
        )));
    }
    if batch.documents.len() > DOCUMENTS_MAX {
        return Err(SyncError::Protocol(format!(
            "batch of {} documents is over the limit of {DOCUMENTS_MAX}",
            batch.documents.len()
        )));
    }
    for document in &batch.documents {
        let len = document_encoded_len(document);
        if len > DOCUMENT_BYTES_MAX {
            return Err(SyncError::Protocol(format!(
                "the document of {} is {len} bytes, over the limit of {DOCUMENT_BYTES_MAX}",
                document.key()
            )));
        }
    }
    let wire = WireBatch {
        terminal_id: batch.terminal_id.clone(),
        first_seq: batch.first_seq,
        entries: batch.entries.iter().map(WireEntry::from_entry).collect(),
        documents: batch.documents.clone(),
    };
    let bytes = encode(&wire)?;
    if bytes.len() > BATCH_BYTES_MAX {
        return Err(SyncError::Protocol(format!(
            "batch of {} bytes is over the limit of {BATCH_BYTES_MAX} bytes",
            bytes.len()
        )));
    }
    Ok(bytes)
}

/// Decodes an upload batch at central. The batch as a whole must be well
/// formed (size, count, consecutive seqs from `first_seq`); each entry is then
/// checked on its own, and a malformed one comes back as `Err(reason)` in
/// [`ReceivedEntry::entry`] so that it can be rejected alone.
pub fn decode_upload(bytes: &[u8]) -> Result<ReceivedBatch, SyncError> {
    let wire: WireBatch = decode(bytes, BATCH_BYTES_MAX)?;
    if wire.entries.is_empty() {
        return Err(SyncError::Protocol(
            "an upload batch needs at least one entry".into(),
        ));
    }
    if wire.entries.len() > BATCH_ENTRIES_MAX {
        return Err(SyncError::Protocol(format!(
            "batch of {} entries is over the limit of {BATCH_ENTRIES_MAX}",
            wire.entries.len()
        )));
    }
    check_id("batch terminal_id", &wire.terminal_id).map_err(SyncError::Protocol)?;
    if wire.first_seq == 0 {
        return Err(SyncError::Protocol("first_seq must be at least 1".into()));
    }
    let named: std::collections::BTreeSet<DocumentKey> = wire
        .entries
        .iter()
        .filter_map(WireEntry::document_key)
        .collect();
    let documents = received_documents(wire.documents, &named)?;
    let mut entries = Vec::with_capacity(wire.entries.len());
    for (i, w) in wire.entries.into_iter().enumerate() {
        let expected = wire.first_seq.checked_add(i as u64).ok_or_else(|| {
            SyncError::Protocol(format!(
                "entry {i}: seq overflows after first_seq {}",
                wire.first_seq
            ))
        })?;
        if w.seq != expected {
            return Err(SyncError::Protocol(format!(
                "entry {i}: seq {} where {expected} was expected (a batch is consecutive from first_seq)",
                w.seq
            )));
        }
        let seq = w.seq;
        let entry_id = Uuid::from_bytes(w.entry_id);
        let hash = Digest32(w.hash);
        let entry = entry_from_wire(w, &wire.terminal_id);
        entries.push(ReceivedEntry {
            seq,
            entry_id,
            hash,
            entry,
        });
    }
    Ok(ReceivedBatch {
        terminal_id: wire.terminal_id,
        first_seq: wire.first_seq,
        entries,
        documents,
    })
}

impl WireEntry {
    /// The document this entry names, read from the wire fields alone so
    /// that a malformed entry still accounts for its document.
    fn document_key(&self) -> Option<DocumentKey> {
        match kind_from_code(self.kind)? {
            EntryKind::Earn | EntryKind::Redeem => self.sale_id.clone().map(DocumentKey::Sale),
            EntryKind::ReturnEarn | EntryKind::ReturnRedeem => {
                self.return_id.clone().map(DocumentKey::Return)
            }
            EntryKind::Adjust => None,
        }
    }
}

/// The batch's documents by key, each checked for its bounds; a document no
/// entry names, two with one key, or one over a bound refuse the batch
/// (`docs/sync-v2.md` §2): a register never sends them.
fn received_documents(
    documents: Vec<Document>,
    named: &std::collections::BTreeSet<DocumentKey>,
) -> Result<BTreeMap<DocumentKey, Document>, SyncError> {
    if documents.len() > DOCUMENTS_MAX {
        return Err(SyncError::Protocol(format!(
            "batch of {} documents is over the limit of {DOCUMENTS_MAX}",
            documents.len()
        )));
    }
    let mut by_key = BTreeMap::new();
    for (i, document) in documents.into_iter().enumerate() {
        if document_holds_card(&document) {
            // Every entry naming it carries the same id and is malformed
            // (rejected); the document is dropped, never stored nor quoted.
            continue;
        }
        let key = document.key();
        check_document(&document)
            .map_err(|e| SyncError::Protocol(format!("document {i} ({key}): {e}")))?;
        if !named.contains(&key) {
            return Err(SyncError::Protocol(format!(
                "document {i} ({key}) is named by no entry of the batch"
            )));
        }
        if by_key.insert(key.clone(), document).is_some() {
            return Err(SyncError::Protocol(format!(
                "document {i} ({key}) is in the batch twice"
            )));
        }
    }
    Ok(by_key)
}

/// True when a document's ids hold a payment card number.
fn document_holds_card(document: &Document) -> bool {
    let holds = pos_codes::payment_card::holds_payment_card;
    match document {
        Document::Sale(sale) => holds(&sale.sale_id),
        Document::Return(ret) => {
            holds(&ret.return_id) || holds(&ret.sale_id) || holds(&ret.sale.sale_id)
        }
    }
}

fn check_document(document: &Document) -> Result<(), String> {
    let len = document_encoded_len(document);
    if len > DOCUMENT_BYTES_MAX {
        return Err(format!(
            "{len} bytes, over the limit of {DOCUMENT_BYTES_MAX}"
        ));
    }
    match document {
        Document::Sale(sale) => check_sale_document(sale),
        Document::Return(ret) => {
            check_len("return_id", &ret.return_id, DOCUMENT_ID_BYTES_MAX)?;
            check_len("sale_id", &ret.sale_id, DOCUMENT_ID_BYTES_MAX)?;
            check_sale_document(&ret.sale)?;
            check_lines("remaining_before", &ret.remaining_before)?;
            check_lines("lines", &ret.lines)
        }
    }
}

fn check_sale_document(sale: &SaleDocument) -> Result<(), String> {
    check_len("sale_id", &sale.sale_id, DOCUMENT_ID_BYTES_MAX)?;
    if sale.redeemed.len() > REDEEMED_PROGRAMS_MAX {
        return Err(format!(
            "redeemed names {} programs, over the limit of {REDEEMED_PROGRAMS_MAX}",
            sale.redeemed.len()
        ));
    }
    for redeemed in &sale.redeemed {
        check_program(&redeemed.program)?;
    }
    Ok(())
}

fn check_lines(what: &str, lines: &[LineQty]) -> Result<(), String> {
    if lines.len() > RETURN_LINES_MAX {
        return Err(format!(
            "{what} has {} lines, over the limit of {RETURN_LINES_MAX}",
            lines.len()
        ));
    }
    Ok(())
}

/// The payment-card guard of `pos-codes`, the same as the register's API:
/// an entry naming a card number is malformed (and so `rejected`, never stored).
fn screen(what: &str, text: &str) -> Result<(), String> {
    pos_codes::payment_card::screen_field(what, text).map_err(|e| e.to_string())
}

fn check_id(what: &str, id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > ID_BYTES_MAX || id.chars().any(char::is_control) {
        return Err(format!(
            "{what} must be 1 to {ID_BYTES_MAX} bytes without control characters"
        ));
    }
    Ok(())
}

/// A stored text field within `max` bytes and without NUL, which no
/// PostgreSQL text column can hold: an entry carrying one is malformed
/// (rejected alone) rather than failing its whole batch at the database.
fn check_len(what: &str, text: &str, max: usize) -> Result<(), String> {
    if text.contains('\0') {
        return Err(format!("{what} contains a NUL character"));
    }
    if text.len() > max {
        return Err(format!(
            "{what} is {} bytes, over the limit of {max}",
            text.len()
        ));
    }
    Ok(())
}

/// Program ids follow the points spec: `[a-z0-9_-]{1,64}`.
fn check_program(id: &str) -> Result<(), String> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "program {id:?} is not a valid program id ([a-z0-9_-]{{1,64}})"
        ))
    }
}

fn entry_from_wire(w: WireEntry, batch_terminal: &str) -> Result<LedgerEntry, String> {
    let seq = w.seq;
    let fail = |reason: String| format!("malformed entry seq {seq}: {reason}");
    let kind =
        kind_from_code(w.kind).ok_or_else(|| fail(format!("unknown kind code {}", w.kind)))?;
    if w.terminal_id != batch_terminal {
        return Err(fail(format!(
            "terminal_id {:?} differs from the batch's {batch_terminal:?}",
            w.terminal_id
        )));
    }
    if seq == 0 {
        return Err(fail("seq starts at 1".into()));
    }
    check_program(&w.program).map_err(fail)?;
    // Screened before anything can quote them; the reason names the field only.
    screen("member", &w.member).map_err(fail)?;
    check_id("member", &w.member).map_err(fail)?;
    for (what, id) in [("sale_id", &w.sale_id), ("return_id", &w.return_id)] {
        if let Some(id) = id {
            screen(what, id).map_err(fail)?;
            check_len(what, id, DOCUMENT_ID_BYTES_MAX).map_err(fail)?;
        }
    }
    check_len("occurred_at", &w.occurred_at, TIME_BYTES_MAX).map_err(fail)?;
    if w.occurred_at.parse::<jiff::Timestamp>().is_err() {
        return Err(fail(format!(
            "occurred_at {:?} is not RFC 3339 with an offset",
            w.occurred_at
        )));
    }
    check_len("detail", &w.detail, DETAIL_BYTES_MAX).map_err(fail)?;
    let sign_ok = match kind {
        EntryKind::Earn | EntryKind::ReturnRedeem => w.points >= 0,
        EntryKind::Redeem | EntryKind::ReturnEarn => w.points <= 0,
        EntryKind::Adjust => true,
    };
    if !sign_ok {
        return Err(fail(format!(
            "{kind} entries cannot carry {} points",
            w.points
        )));
    }
    Ok(LedgerEntry {
        entry_id: Uuid::from_bytes(w.entry_id),
        terminal_id: w.terminal_id,
        seq,
        prev_hash: Digest32(w.prev_hash),
        hash: Digest32(w.hash),
        kind,
        program: w.program,
        member: w.member,
        points: w.points,
        sale_id: w.sale_id,
        return_id: w.return_id,
        rules_version: w.rules_version,
        occurred_at: w.occurred_at,
        detail: w.detail,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{BatchOutcome, EntryResult, MemberBalance, ProgramBalance, UploadAnswer};
    use crate::testing::Chain;

    fn chain(n: u64) -> Vec<LedgerEntry> {
        let mut chain = Chain::new("t-1").occurred_at("2026-11-28T11:05:00+01:00");
        (0..n)
            .map(|_| {
                chain.entry_with(|e| {
                    e.member = "M-1".into();
                    e.points = 10;
                })
            })
            .collect()
    }

    #[test]
    fn upload_round_trips_to_the_same_entries() {
        let entries = chain(5);
        let batch = UploadBatch {
            terminal_id: "t-1".into(),
            first_seq: 1,
            entries: entries.clone(),
            documents: vec![],
        };
        let bytes = encode_upload(&batch).unwrap();
        let got = decode_upload(&bytes).unwrap();
        assert_eq!(got.terminal_id, "t-1");
        let back: Vec<LedgerEntry> = got.entries.into_iter().map(|r| r.entry.unwrap()).collect();
        assert_eq!(back, entries);
        assert!(back.iter().all(LedgerEntry::hash_is_valid));
    }

    #[test]
    fn a_malformed_entry_is_isolated_not_the_batch() {
        let mut entries = chain(3);
        entries[1].program = "Not A Program".into();
        entries[2].occurred_at = "yesterday".into();
        let batch = UploadBatch {
            terminal_id: "t-1".into(),
            first_seq: 1,
            entries,
            documents: vec![],
        };
        let got = decode_upload(&encode_upload(&batch).unwrap()).unwrap();
        assert!(got.entries[0].entry.is_ok());
        let e1 = got.entries[1].entry.as_ref().unwrap_err();
        assert!(e1.contains("seq 2") && e1.contains("program"), "{e1}");
        let e2 = got.entries[2].entry.as_ref().unwrap_err();
        assert!(e2.contains("occurred_at"), "{e2}");
        assert_eq!(got.entries[2].seq, 3);
    }

    #[test]
    fn a_nul_in_a_stored_text_field_is_malformed() {
        let mut entries = chain(3);
        entries[0].detail = "a\0b".into();
        entries[1].sale_id = Some("S-\0".into());
        let batch = UploadBatch {
            terminal_id: "t-1".into(),
            first_seq: 1,
            entries,
            documents: vec![],
        };
        let got = decode_upload(&encode_upload(&batch).unwrap()).unwrap();
        let e0 = got.entries[0].entry.as_ref().unwrap_err();
        assert!(e0.contains("detail contains a NUL"), "{e0}");
        let e1 = got.entries[1].entry.as_ref().unwrap_err();
        assert!(e1.contains("sale_id contains a NUL"), "{e1}");
        assert!(got.entries[2].entry.is_ok());
    }

    #[test]
    fn wrong_sign_for_the_kind_is_malformed() {
        let mut entries = chain(1);
        entries[0].kind = EntryKind::Redeem;
        let batch = UploadBatch {
            terminal_id: "t-1".into(),
            first_seq: 1,
            entries,
            documents: vec![],
        };
        let got = decode_upload(&encode_upload(&batch).unwrap()).unwrap();
        assert!(
            got.entries[0]
                .entry
                .as_ref()
                .unwrap_err()
                .contains("redeem")
        );
    }

    #[test]
    fn non_consecutive_batches_are_refused_whole() {
        let entries = chain(3);
        let batch = UploadBatch {
            terminal_id: "t-1".into(),
            first_seq: 2,
            entries,
            documents: vec![],
        };
        let err = decode_upload(&encode_upload(&batch).unwrap()).unwrap_err();
        assert!(err.to_string().contains("consecutive"), "{err}");
    }

    #[test]
    fn seq_zero_is_refused_as_a_batch() {
        let mut entries = chain(1);
        entries[0].seq = 0;
        let batch = UploadBatch {
            terminal_id: "t-1".into(),
            first_seq: 0,
            entries,
            documents: vec![],
        };
        let err = decode_upload(&encode_upload(&batch).unwrap()).unwrap_err();
        assert!(err.to_string().contains("first_seq"), "{err}");
    }

    #[test]
    fn other_versions_and_trailing_bytes_are_refused() {
        let answer = UploadAnswer {
            outcome: BatchOutcome::Entries(vec![EntryResult::Applied]),
            balances: vec![MemberBalance {
                member: "M-1".into(),
                programs: vec![ProgramBalance {
                    program: "main".into(),
                    balance: 5,
                    available: 5,
                    pending: 0,
                }],
            }],
        };
        let bytes = encode(&answer).unwrap();
        assert_eq!(decode::<UploadAnswer>(&bytes, 1 << 20).unwrap(), answer);

        let mut v1 = bytes.clone();
        v1[0] = 1;
        let err = decode::<UploadAnswer>(&v1, 1 << 20).unwrap_err();
        assert!(err.to_string().contains("version 1"), "{err}");

        let mut long = bytes.clone();
        long.push(0);
        assert!(decode::<UploadAnswer>(&long, 1 << 20).is_err());
        assert!(decode::<UploadAnswer>(&bytes, 3).is_err());
    }

    #[test]
    fn garbage_never_panics() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for len in 0..2_000usize {
            let bytes: Vec<u8> = (0..len % 300)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    (seed & 0xff) as u8
                })
                .collect();
            let _ = decode_upload(&bytes);
            let _ = decode::<UploadAnswer>(&bytes, 1 << 20);
        }
    }

    fn sale_document(sale_id: &str, basket_bytes: usize) -> Document {
        Document::Sale(SaleDocument {
            sale_id: sale_id.into(),
            rules_version: 1,
            basket: "b".repeat(basket_bytes),
            redeemed: vec![crate::protocol::ProgramPoints {
                program: "main".into(),
                points: 500,
            }],
        })
    }

    /// `n` earns, entry `i` of sale `S-{i / per_sale}`.
    fn sales(n: u64, per_sale: u64) -> Vec<LedgerEntry> {
        let mut chain = Chain::new("t-1").occurred_at("2026-11-28T11:05:00+01:00");
        (0..n)
            .map(|i| {
                chain.entry_with(|e| {
                    e.member = "M-1".into();
                    e.points = 10;
                    e.sale_id = Some(format!("S-{}", i / per_sale));
                })
            })
            .collect()
    }

    fn documents_of(
        entries: &[LedgerEntry],
        basket_bytes: usize,
    ) -> BTreeMap<DocumentKey, Document> {
        entries
            .iter()
            .filter_map(DocumentKey::of)
            .map(|key| match &key {
                DocumentKey::Sale(id) => (key.clone(), sale_document(id, basket_bytes)),
                DocumentKey::Return(_) => unreachable!("only sales here"),
            })
            .collect()
    }

    /// Issue 10: a card number as member or sale id, grouped any way, makes
    /// its entry malformed (rejected, never stored) and its document is
    /// dropped; the reason names the field, never the digits.
    #[test]
    fn payment_card_numbers_are_screened_at_decode() {
        let pan = "4111111111111111";
        let dotted = "4111.1111.1111.1111";
        let mut entries = sales(4, 1);
        entries[0].member = dotted.into();
        entries[1].sale_id = Some("4111_1111_1111_1111".into());
        entries[2].member = format!("0{pan}");
        let mut documents = documents_of(&entries, 10);
        let key = DocumentKey::Sale("4111_1111_1111_1111".into());
        documents.insert(key.clone(), sale_document("4111_1111_1111_1111", 10));
        let batch = UploadBatch::assemble("t-1".into(), 1, entries, &documents);
        let got = decode_upload(&encode_upload(&batch).unwrap()).unwrap();
        for (i, field) in [(0, "member"), (1, "sale_id"), (2, "member")] {
            let reason = got.entries[i].entry.as_ref().unwrap_err();
            assert!(
                reason.contains(&format!("{field}: holds a payment card")),
                "{reason}"
            );
            assert!(!reason.contains("1111"), "{reason}");
        }
        assert!(got.entries[3].entry.is_ok(), "the honest entry stays");
        assert!(!got.documents.contains_key(&key), "the document is dropped");
        assert!(got.documents.contains_key(&DocumentKey::Sale("S-3".into())));
    }

    #[test]
    fn documents_travel_with_their_entries_once_each() {
        let entries = sales(6, 2);
        let documents = documents_of(&entries, 10);
        let mut spare = documents.clone();
        spare.insert(DocumentKey::Sale("S-99".into()), sale_document("S-99", 10));
        let batch = UploadBatch::assemble("t-1".into(), 1, entries, &spare);
        assert_eq!(batch.documents.len(), 3, "one per sale, none for S-99");
        let got = decode_upload(&encode_upload(&batch).unwrap()).unwrap();
        assert_eq!(got.documents, documents);
    }

    #[test]
    fn a_document_no_entry_names_or_sent_twice_refuses_the_batch() {
        let entries = sales(2, 2);
        let mut batch =
            UploadBatch::assemble("t-1".into(), 1, entries, &documents_of(&sales(2, 2), 10));
        batch.documents.push(sale_document("S-7", 10));
        let err = decode_upload(&encode_upload(&batch).unwrap()).unwrap_err();
        assert!(
            err.to_string().contains("sale S-7") && err.to_string().contains("named by no entry"),
            "{err}"
        );

        batch.documents[1] = sale_document("S-0", 10);
        let err = decode_upload(&encode_upload(&batch).unwrap()).unwrap_err();
        assert!(err.to_string().contains("twice"), "{err}");
    }

    #[test]
    fn an_oversized_document_is_refused_on_both_sides() {
        let entries = sales(1, 1);
        let documents = documents_of(&entries, DOCUMENT_BYTES_MAX);
        let batch = UploadBatch::assemble("t-1".into(), 1, entries, &documents);
        let err = encode_upload(&batch).unwrap_err();
        assert!(err.to_string().contains("sale S-0"), "{err}");
        let wire = WireBatch {
            terminal_id: batch.terminal_id.clone(),
            first_seq: 1,
            entries: batch.entries.iter().map(WireEntry::from_entry).collect(),
            documents: batch.documents.clone(),
        };
        let err = decode_upload(&encode(&wire).unwrap()).unwrap_err();
        assert!(err.to_string().contains("over the limit"), "{err}");
    }

    #[test]
    fn the_cut_counts_each_document_once_and_keeps_it_with_its_entry() {
        // 20 sales of 3 entries, each document 300 KB: 13 documents fit in 4 MiB.
        let entries = sales(60, 3);
        let documents = documents_of(&entries, 300_000);
        let n = batch_prefix_len(&entries, &documents);
        assert_eq!(
            n,
            13 * 3,
            "the 14th sale's first entry brings its document past the limit"
        );
        let batch = UploadBatch::assemble("t-1".into(), 1, entries[..n].to_vec(), &documents);
        assert!(encode_upload(&batch).unwrap().len() <= BATCH_BYTES_MAX);
        let over = UploadBatch::assemble("t-1".into(), 1, entries[..n + 1].to_vec(), &documents);
        assert!(encode_upload(&over).is_err());
    }

    #[test]
    fn batches_are_cut_at_the_entry_and_byte_limits() {
        let entries = chain(1_200);
        assert_eq!(
            batch_prefix_len(&entries, &BTreeMap::new()),
            BATCH_ENTRIES_MAX
        );
        let mut big = chain(100);
        for e in &mut big {
            e.detail = "x".repeat(60_000);
        }
        let n = batch_prefix_len(&big, &BTreeMap::new());
        assert!(n > 1 && n < 100, "{n}");
        let batch = UploadBatch {
            terminal_id: "t-1".into(),
            first_seq: 1,
            entries: big[..n].to_vec(),
            documents: vec![],
        };
        assert!(encode_upload(&batch).unwrap().len() <= BATCH_BYTES_MAX);
        let over = UploadBatch {
            terminal_id: "t-1".into(),
            first_seq: 1,
            entries: big[..n + 1].to_vec(),
            documents: vec![],
        };
        assert!(encode_upload(&over).is_err());
    }
}
