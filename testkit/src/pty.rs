//! Pseudo-terminal pairs standing in for serial scanners: the test writes on
//! the master end as a scanner would, the code under test opens the slave
//! end by path (through a symlink, as `/dev/serial/by-id/...`).

use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use tokio::io::AsyncWriteExt;
use tokio_serial::{SerialPort, SerialStream};

/// A pty whose slave end the code under test opens by path; the master is
/// the scanner. The pty lives while the master does.
pub struct Pty {
    /// The scanner's end.
    pub master: SerialStream,
    /// The device path the code under test opens.
    pub slave_path: PathBuf,
}

impl Pty {
    /// A new pair, its slave end closed (so a driver can open it
    /// exclusively) and its master close-on-exec (so an agent spawned later
    /// does not inherit it and keep the pty alive after the test "unplugs"
    /// it).
    pub fn new() -> Result<Pty> {
        let (master, slave) = SerialStream::pair().context("a pty pair (needs /dev/ptmx)")?;
        let slave_path = PathBuf::from(slave.name().context("the slave end has a name")?);
        drop(slave);
        nix::fcntl::fcntl(
            master.as_raw_fd(),
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
        )
        .context("set close-on-exec on the pty master")?;
        Ok(Pty { master, slave_path })
    }

    /// Writes `bytes` as the scanner would, and flushes.
    pub async fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.master
            .write_all(bytes)
            .await
            .context("write to the pty")?;
        self.master.flush().await.context("flush the pty")?;
        Ok(())
    }
}

/// Points `link` at `target`, replacing it atomically (as udev does for
/// by-id links).
pub fn point_link(link: &Path, target: &Path) -> Result<()> {
    let tmp = link.with_extension("new");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(target, &tmp)
        .with_context(|| format!("symlink {} -> {}", tmp.display(), target.display()))?;
    std::fs::rename(&tmp, link).with_context(|| format!("rename to {}", link.display()))?;
    Ok(())
}
