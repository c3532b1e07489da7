//! `pos-agent quote --rules FILE --basket FILE` (points spec §4).

use std::path::Path;

use crate::commands::Failure;

pub fn run(_rules: &Path, _basket: &Path) -> Result<(), Failure> {
    Err(crate::commands::other(anyhow::anyhow!(
        "`quote` is not built yet"
    )))
}
