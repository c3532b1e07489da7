//! A decoded scan applied to the register's checkout.
//!
//! * A member card (any scan whose reading holds `member_card`, whatever the
//!   device's role: a cashier scans the loyalty card on the item scanner as
//!   often as on the card reader) attaches the member: by id when the member
//!   cache knows the card, else by the card token, which earns as a member
//!   with no tier until central links it (agent spec §3).
//! * A product scan is looked up in the catalog cache under the keys of
//!   [`super::lookup`], in that order, and adds a line; an embedded price or
//!   weight prices it. No match: the checkout records the code under
//!   `unknown_products` and the scan's outcome says `unknown_product`.
//! * A card reader's read (role `cards`) that is not a member card is
//!   ignored, never looked up as a product.
//! * Anything else changes nothing, and the outcome says why.
//!
//! Nothing here fails as a function: every problem is an outcome the POS
//! sees, so a bad scan can never stop the device loop.

use std::sync::Arc;

use pos_codes::{Decoded, Reading};
use pos_drivers::ScanRole;

use crate::devices::lookup::{ProductScan, product_scan};
use crate::devices::notice::ScanOutcome;
use crate::model::MemberRef;
use crate::session::{Priced, Session, SessionFailure};
use crate::store::{Store, StoreError};

/// What applying a scan touches.
#[derive(Clone)]
pub struct ScanTargets {
    pub store: Store,
    pub session: Arc<Session>,
}

impl ScanTargets {
    /// Applies one decoded scan, read as `role`, to the checkout.
    pub async fn apply(&self, role: ScanRole, decoded: &Decoded) -> ScanOutcome {
        let Some(reading) = decoded.reading() else {
            // The drivers turn payment cards into their own event; kept total.
            return ScanOutcome::Ignored {
                reason: "a payment card is never used".to_string(),
            };
        };
        if !reading.valid {
            return ScanOutcome::Invalid {
                error: reading
                    .error
                    .clone()
                    .unwrap_or_else(|| "the scan did not decode".to_string()),
            };
        }
        if let Some(card) = &reading.member_card {
            return self.attach_card(card).await;
        }
        if role == ScanRole::Card {
            return ScanOutcome::Ignored {
                reason: "a card reader's read that is not a member card".to_string(),
            };
        }
        match product_scan(reading) {
            Some(scan) => self.add_product(scan).await,
            None => ScanOutcome::Ignored {
                reason: no_product_reason(reading),
            },
        }
    }

    async fn attach_card(&self, card: &str) -> ScanOutcome {
        // The decoder has screened the scan already; the member card it found
        // goes through the same screen as a card named through the API, so
        // scanner and API can never disagree on what reaches the ledger.
        if pos_codes::payment_card::screen_field("member_card", card).is_err() {
            return ScanOutcome::Ignored {
                reason: "a payment card is never used".to_string(),
            };
        }
        let member = match self.store.member(card).await {
            Ok(balances) if balances.known => MemberRef::Id(balances.member),
            // Not in the cache (or only in our own ledger): the card token.
            Ok(_) | Err(StoreError::MemberNotFound(_)) => MemberRef::Card(card.to_string()),
            Err(error) => return store_outcome(&error),
        };
        match self.session.attach_member(Some(member.clone())).await {
            Ok(_) => ScanOutcome::MemberAttached { member },
            Err(failure) => session_outcome(failure),
        }
    }

    async fn add_product(&self, scan: ProductScan) -> ScanOutcome {
        let mut found = None;
        for key in &scan.keys {
            match self.store.product(key).await {
                Ok(Some(product)) => {
                    found = Some(product);
                    break;
                }
                Ok(None) => {}
                Err(error) => return store_outcome(&error),
            }
        }
        let Some(product) = found else {
            // `keys` is never empty (lookup's contract); the first is the
            // canonical form, the one a person would look up.
            let code = scan.keys.first().cloned().unwrap_or_default();
            return match self.session.note_unknown_product(code.clone()).await {
                Ok(_) => ScanOutcome::UnknownProduct {
                    code,
                    tried: scan.keys,
                },
                Err(failure) => session_outcome(failure),
            };
        };
        let priced = Priced {
            sku: product.sku,
            name: product.name,
            category: product.category,
            unit_price: scan.price.unwrap_or(product.price),
        };
        let (sku, unit_price) = (priced.sku.clone(), priced.unit_price);
        match self.session.add_priced(priced, scan.qty).await {
            Ok((line, _)) => ScanOutcome::LineAdded {
                line,
                sku,
                qty: scan.qty,
                unit_price,
            },
            Err(failure) => session_outcome(failure),
        }
    }
}

fn no_product_reason(reading: &Reading) -> String {
    if reading.account.is_some() {
        "a card account number (not a member card) is not a product".to_string()
    } else if reading.addon.is_some() {
        "an add-on without its main symbol is not a product".to_string()
    } else {
        "the scan holds no product code".to_string()
    }
}

fn store_outcome(error: &StoreError) -> ScanOutcome {
    if error.is_bad_request() {
        ScanOutcome::Refused {
            code: error.code().to_string(),
            message: error.to_string(),
        }
    } else {
        ScanOutcome::Failed {
            code: error.code().to_string(),
            message: error.to_string(),
        }
    }
}

fn session_outcome(failure: SessionFailure) -> ScanOutcome {
    match failure {
        SessionFailure::Session(error) => ScanOutcome::Refused {
            code: error.code().to_string(),
            message: error.to_string(),
        },
        SessionFailure::Store(error) => store_outcome(&error),
    }
}
