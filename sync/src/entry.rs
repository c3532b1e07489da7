//! The register's ledger entry (sync spec §1) and its SHA-256 hash chain.
//!
//! This is the *domain* type shared by the agent (which appends entries) and
//! the central (which re-checks the chain before applying them). It is not
//! the wire type: `wire` converts to and from it at the edge.
//!
//! The hash covers a canonical binary encoding of every field except `hash`
//! itself, in a fixed order. The encoding is defined here and nowhere else;
//! changing it is a protocol change (bump [`CHAIN_ENCODING`]).

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// Tag mixed into every hash so a chain of another format can never verify.
pub const CHAIN_ENCODING: &[u8; 4] = b"PLE1";

/// A SHA-256 digest, shown and serialised as lowercase hex.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Digest32(pub [u8; 32]);

impl Digest32 {
    /// The `prev_hash` of a terminal's first entry.
    pub const ZERO: Digest32 = Digest32([0; 32]);

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    pub fn from_hex(text: &str) -> Result<Self, hex::FromHexError> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(text, &mut out)?;
        Ok(Digest32(out))
    }
}

impl fmt::Debug for Digest32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_hex())
    }
}

impl fmt::Display for Digest32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.to_hex())
    }
}

impl Serialize for Digest32 {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for Digest32 {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Digest32::from_hex(&text).map_err(serde::de::Error::custom)
    }
}

/// What a ledger entry records (sync spec §1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    /// Points earned by a sale.
    Earn,
    /// Points paid with on a sale (negative).
    Redeem,
    /// Reverses (part of) an earn on a return (negative).
    ReturnEarn,
    /// Gives redeemed points back on a return (positive).
    ReturnRedeem,
    /// A manual correction.
    Adjust,
}

impl EntryKind {
    pub const ALL: [EntryKind; 5] = [
        EntryKind::Earn,
        EntryKind::Redeem,
        EntryKind::ReturnEarn,
        EntryKind::ReturnRedeem,
        EntryKind::Adjust,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::Earn => "earn",
            EntryKind::Redeem => "redeem",
            EntryKind::ReturnEarn => "return_earn",
            EntryKind::ReturnRedeem => "return_redeem",
            EntryKind::Adjust => "adjust",
        }
    }

    pub fn parse(text: &str) -> Option<EntryKind> {
        EntryKind::ALL.into_iter().find(|k| k.as_str() == text)
    }
}

impl fmt::Display for EntryKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One append-only ledger entry (sync spec §1).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerEntry {
    /// UUIDv7, made and stored before anything is sent; central's dedup key.
    pub entry_id: Uuid,
    /// The register's configured id.
    pub terminal_id: String,
    /// 1, 2, 3 … per terminal, without gaps.
    pub seq: u64,
    /// `hash` of the entry before (or [`Digest32::ZERO`] for seq 1).
    pub prev_hash: Digest32,
    /// SHA-256 of [`LedgerEntry::canonical_bytes`].
    pub hash: Digest32,
    pub kind: EntryKind,
    /// Program id from the rules bundle.
    pub program: String,
    /// Member id, or the card token of a card central has not linked yet.
    pub member: String,
    /// Signed: + credits the member, − debits.
    pub points: i64,
    pub sale_id: Option<String>,
    pub return_id: Option<String>,
    /// Rules bundle version the points were computed with.
    pub rules_version: u64,
    /// The register's wall clock, RFC 3339 with offset, exactly as recorded.
    pub occurred_at: String,
    /// The quote breakdown as JSON text, kept byte for byte so the hash holds.
    pub detail: String,
}

impl LedgerEntry {
    /// The canonical encoding the hash covers: every field but `hash`, in
    /// declaration order. Strings are a big-endian u32 length then UTF-8
    /// bytes; integers are big-endian; an `Option` is a 0/1 tag then the
    /// value; the kind is its snake_case name.
    pub fn canonical_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256 + self.detail.len());
        out.extend_from_slice(CHAIN_ENCODING);
        out.extend_from_slice(self.entry_id.as_bytes());
        put_str(&mut out, &self.terminal_id);
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.extend_from_slice(&self.prev_hash.0);
        put_str(&mut out, self.kind.as_str());
        put_str(&mut out, &self.program);
        put_str(&mut out, &self.member);
        out.extend_from_slice(&self.points.to_be_bytes());
        put_opt_str(&mut out, self.sale_id.as_deref());
        put_opt_str(&mut out, self.return_id.as_deref());
        out.extend_from_slice(&self.rules_version.to_be_bytes());
        put_str(&mut out, &self.occurred_at);
        put_str(&mut out, &self.detail);
        out
    }

    /// The hash this entry should carry given its other fields.
    pub fn compute_hash(&self) -> Digest32 {
        Digest32(Sha256::digest(self.canonical_bytes()).into())
    }

    /// Sets `prev_hash` and recomputes `hash`: used when appending and when
    /// re-chaining after `seq_reused`.
    pub fn chain_after(&mut self, prev_hash: Digest32) {
        self.prev_hash = prev_hash;
        self.hash = self.compute_hash();
    }

    /// Whether `hash` matches the other fields.
    pub fn hash_is_valid(&self) -> bool {
        self.hash == self.compute_hash()
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    // Fields are bounded far below 4 GiB (batches are at most 1 MiB); a
    // longer string would be a broken invariant, not input.
    let len = u32::try_from(s.len()).expect("ledger field longer than 4 GiB");
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn put_opt_str(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        None => out.push(0),
        Some(s) => {
            out.push(1);
            put_str(out, s);
        }
    }
}

/// Where a run of entries stops being a valid chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChainBreak {
    /// `seq` is not the previous seq + 1 (or 1 at the start).
    SeqGap { seq: u64, expected: u64 },
    /// `prev_hash` does not equal the previous entry's `hash`.
    PrevHashMismatch { seq: u64 },
    /// `hash` does not match the entry's fields: it was altered.
    HashMismatch { seq: u64 },
}

impl fmt::Display for ChainBreak {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChainBreak::SeqGap { seq, expected } => {
                write!(f, "entry seq {seq}: expected seq {expected} (gap)")
            }
            ChainBreak::PrevHashMismatch { seq } => write!(
                f,
                "entry seq {seq}: prev_hash does not match the hash of the entry before"
            ),
            ChainBreak::HashMismatch { seq } => write!(
                f,
                "entry seq {seq}: hash does not match its contents (entry altered)"
            ),
        }
    }
}

/// Incremental chain checker: feed entries in seq order.
#[derive(Clone, Debug)]
pub struct ChainVerifier {
    next_seq: u64,
    prev_hash: Digest32,
}

impl Default for ChainVerifier {
    fn default() -> Self {
        ChainVerifier {
            next_seq: 1,
            prev_hash: Digest32::ZERO,
        }
    }
}

impl ChainVerifier {
    /// Starts after an already verified entry (`seq`, `hash`).
    pub fn resume(last_seq: u64, last_hash: Digest32) -> Self {
        ChainVerifier {
            next_seq: last_seq + 1,
            prev_hash: last_hash,
        }
    }

    /// Checks the next entry and advances past it.
    pub fn push(&mut self, entry: &LedgerEntry) -> Result<(), ChainBreak> {
        if entry.seq != self.next_seq {
            return Err(ChainBreak::SeqGap {
                seq: entry.seq,
                expected: self.next_seq,
            });
        }
        if entry.prev_hash != self.prev_hash {
            return Err(ChainBreak::PrevHashMismatch { seq: entry.seq });
        }
        if !entry.hash_is_valid() {
            return Err(ChainBreak::HashMismatch { seq: entry.seq });
        }
        self.next_seq += 1;
        self.prev_hash = entry.hash;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::Chain;

    /// Entry `seq`, chained after `prev`.
    fn entry(seq: u64, prev: Digest32) -> LedgerEntry {
        let mut chain = Chain::new("store-1-reg-1").occurred_at("2026-11-28T11:05:00+01:00");
        chain.resume_after(seq - 1, prev);
        chain.entry_with(|e| {
            e.member = "M-1".into();
            e.points = 42;
            e.sale_id = Some("S-1".into());
            e.rules_version = 3;
        })
    }

    #[test]
    fn chain_verifies_and_detects_each_kind_of_break() {
        let a = entry(1, Digest32::ZERO);
        let b = entry(2, a.hash);
        let mut v = ChainVerifier::default();
        v.push(&a).unwrap();
        v.push(&b).unwrap();

        let mut altered = b.clone();
        altered.points = 4200;
        let mut v = ChainVerifier::default();
        v.push(&a).unwrap();
        assert_eq!(v.push(&altered), Err(ChainBreak::HashMismatch { seq: 2 }));

        let other = entry(2, Digest32([7; 32]));
        let mut v = ChainVerifier::default();
        v.push(&a).unwrap();
        assert_eq!(v.push(&other), Err(ChainBreak::PrevHashMismatch { seq: 2 }));

        let mut v = ChainVerifier::default();
        assert_eq!(
            v.push(&b),
            Err(ChainBreak::SeqGap {
                seq: 2,
                expected: 1
            })
        );
    }

    #[test]
    fn every_field_is_covered_by_the_hash() {
        let base = entry(1, Digest32::ZERO);
        type Change = Box<dyn Fn(&mut LedgerEntry)>;
        let variants: Vec<Change> = vec![
            Box::new(|e| e.entry_id = Uuid::now_v7()),
            Box::new(|e| e.terminal_id.push('x')),
            Box::new(|e| e.seq += 1),
            Box::new(|e| e.prev_hash = Digest32([1; 32])),
            Box::new(|e| e.kind = EntryKind::Redeem),
            Box::new(|e| e.program.push('x')),
            Box::new(|e| e.member.push('x')),
            Box::new(|e| e.points = -e.points),
            Box::new(|e| e.sale_id = None),
            Box::new(|e| e.return_id = Some(String::new())),
            Box::new(|e| e.rules_version += 1),
            Box::new(|e| e.occurred_at.push('Z')),
            Box::new(|e| e.detail.push(' ')),
        ];
        for change in variants {
            let mut e = base.clone();
            change(&mut e);
            assert_ne!(e.compute_hash(), base.hash);
        }
    }

    #[test]
    fn length_prefixes_keep_adjacent_fields_apart() {
        let mut a = entry(1, Digest32::ZERO);
        let mut b = a.clone();
        a.program = "ab".into();
        a.member = "c".into();
        b.program = "a".into();
        b.member = "bc".into();
        assert_ne!(a.compute_hash(), b.compute_hash());
    }
}
