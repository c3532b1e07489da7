//! Seeded randomness for tests: a failing run prints the seed that
//! reproduces it.
//!
//! `POS_TEST_SEED=<n>` fixes the seed; without it each run draws a fresh
//! one. Either way the seed is printed on stderr (`cargo test` shows it for
//! a failing test), so rerunning with `POS_TEST_SEED=<n> cargo test <name>`
//! repeats the same choices.

use rand::SeedableRng;
use rand::rngs::StdRng;

/// The environment variable that fixes the seed.
pub const SEED_VAR: &str = "POS_TEST_SEED";

/// The seed of this run: `$POS_TEST_SEED` if set, else random; printed as
/// `POS_TEST_SEED=<n>`.
///
/// # Panics
/// When `$POS_TEST_SEED` is set but is not an unsigned 64-bit number.
pub fn seed() -> u64 {
    let seed = match std::env::var(SEED_VAR) {
        Ok(text) => text
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{SEED_VAR}={text:?} is not an unsigned 64-bit number")),
        Err(_) => rand::random(),
    };
    eprintln!("{SEED_VAR}={seed}");
    seed
}

/// A random number generator seeded with [`seed`] (which it prints).
pub fn rng() -> StdRng {
    StdRng::seed_from_u64(seed())
}
