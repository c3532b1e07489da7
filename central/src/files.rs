//! Central's state directory: what `pos-central init` creates and `serve`
//! reads.
//!
//! ```text
//! DIR/central.db      SQLite database (the default), and its -wal and -shm (0600: member
//!                     data, token hashes)
//! DIR/database.url    PostgreSQL instead (`init --database`): its URL (0600)
//! DIR/signing.key     Ed25519 bundle signing key (PKCS#8 PEM, 0600)
//! DIR/admin.token     the admin API bearer token (0600)
//! DIR/ca.pem          development CA certificate: give it to registers (ca_file)
//! DIR/ca.key          its key (0600), to issue more certificates later
//! DIR/server.pem      TLS certificate for localhost / 127.0.0.1 / ::1, signed by the CA
//! DIR/server.key      its key (0600)
//! DIR/serve.url       written by `serve`: the sync API's URL
//! DIR/admin.url       written by `serve`: the admin API's URL, for admin commands
//! ```
//!
//! The directory is 0700 and every file that is not meant to be handed out
//! is 0600. `init` creates the directory 0700, or tightens an existing one
//! to 0700 (saying so), except a shared sticky directory such as `/tmp`,
//! which it refuses. Opening the database (every command) creates
//! `central.db` 0600 before SQLite does (SQLite gives `-wal` and `-shm` the
//! database file's mode) and tightens an older one. `serve` refuses a
//! directory that others can write (they could swap its keys or database)
//! and warns about one that others can read.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use rand::RngCore;
use rand::rngs::OsRng;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::error::CentralError;
use crate::postgres::{self, PgStorage};
use crate::sqlite::SqliteStorage;
use crate::storage::Storage;

/// Largest key, token or certificate file read: 64 KiB.
const SMALL_FILE_BYTES_MAX: u64 = 65_536;
/// Random bytes in a token (hex-encoded: 64 characters).
const TOKEN_BYTES: usize = 32;

/// The names the development certificate is valid for, besides any extra.
pub const DEV_CERT_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// A fresh random bearer token (its random bytes are wiped once encoded).
pub fn new_token() -> SecretString {
    let mut bytes = Zeroizing::new([0u8; TOKEN_BYTES]);
    OsRng.fill_bytes(bytes.as_mut_slice());
    // hex::encode allocates exactly the 2 × TOKEN_BYTES it writes, so
    // the conversion into a boxed str copies nothing.
    SecretString::from(hex::encode(bytes.as_slice()))
}

/// What central stores of a token: its SHA-256 (a leaked database does not
/// leak working tokens; tokens are random, so no salt or slow hash is needed).
pub fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.trim().as_bytes()).into()
}

#[derive(Clone, Debug)]
pub struct CentralDir {
    pub path: PathBuf,
}

/// Mode of the state directory.
const DIR_MODE: u32 = 0o700;
/// Mode of a file only central reads.
const SECRET_MODE: u32 = 0o600;

fn dir_mode(path: &Path) -> Result<u32, CentralError> {
    std::fs::metadata(path)
        .map(|m| m.permissions().mode() & 0o7777)
        .map_err(|e| CentralError::io(format!("reading {}", path.display()), e))
}

fn set_mode(path: &Path, mode: u32) -> Result<(), CentralError> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| CentralError::io(format!("chmod {mode:o} {}", path.display()), e))
}

fn write_new(path: &Path, contents: &[u8], secret: bool) -> Result<(), CentralError> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(if secret { SECRET_MODE } else { 0o644 })
        .open(path)
        .map_err(|e| CentralError::io(format!("creating {}", path.display()), e))?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .map_err(|e| CentralError::io(format!("writing {}", path.display()), e))
}

fn read_small(path: &Path) -> Result<Vec<u8>, CentralError> {
    use std::io::Read;
    let file = std::fs::File::open(path)
        .map_err(|e| CentralError::io(format!("reading {}", path.display()), e))?;
    // Sized from the file's length up front, so a token or key is read
    // into one buffer and no grown-out copy of it is freed unwiped.
    let size = file.metadata().map_or(0, |meta| meta.len());
    let capacity = usize::try_from(size.min(SMALL_FILE_BYTES_MAX) + 1).unwrap_or(0);
    let mut out = Vec::with_capacity(capacity);
    file.take(SMALL_FILE_BYTES_MAX + 1)
        .read_to_end(&mut out)
        .map_err(|e| CentralError::io(format!("reading {}", path.display()), e))?;
    if out.len() as u64 > SMALL_FILE_BYTES_MAX {
        return Err(CentralError::Invalid(format!(
            "{} is over {SMALL_FILE_BYTES_MAX} bytes",
            path.display()
        )));
    }
    Ok(out)
}

/// Reads a token file (at most 64 KiB of text), trimmed; empty is an
/// error. The read buffer is wiped, and so is the secret when dropped.
pub fn read_token(path: &Path) -> Result<SecretString, CentralError> {
    let bytes = Zeroizing::new(read_small(path)?);
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| CentralError::Invalid(format!("{} is not text", path.display())))?;
    let token = text.trim();
    if token.is_empty() {
        return Err(CentralError::Invalid(format!(
            "{} is empty",
            path.display()
        )));
    }
    Ok(SecretString::from(token))
}

/// A token as its file holds it: the text and a newline, in a buffer
/// wiped on drop.
fn token_file_text(token: &SecretString) -> Zeroizing<Vec<u8>> {
    let token = token.expose_secret().as_bytes();
    let mut text = Zeroizing::new(Vec::with_capacity(token.len() + 1));
    text.extend_from_slice(token);
    text.push(b'\n');
    text
}

fn tls_err(e: impl std::fmt::Display) -> CentralError {
    CentralError::Tls(e.to_string())
}

impl CentralDir {
    pub fn new(path: impl Into<PathBuf>) -> CentralDir {
        CentralDir { path: path.into() }
    }

    pub fn db_path(&self) -> PathBuf {
        self.path.join("central.db")
    }
    pub fn signing_key_path(&self) -> PathBuf {
        self.path.join("signing.key")
    }
    pub fn admin_token_path(&self) -> PathBuf {
        self.path.join("admin.token")
    }
    pub fn ca_path(&self) -> PathBuf {
        self.path.join("ca.pem")
    }
    pub fn server_cert_path(&self) -> PathBuf {
        self.path.join("server.pem")
    }
    pub fn server_key_path(&self) -> PathBuf {
        self.path.join("server.key")
    }
    pub fn serve_url_path(&self) -> PathBuf {
        self.path.join("serve.url")
    }

    /// Where `serve` writes the admin API's URL (its own listener).
    pub fn admin_url_path(&self) -> PathBuf {
        self.path.join("admin.url")
    }

    /// Creates the directory's keys, token, certificates and database.
    /// Refuses to overwrite an existing key: re-running `init` on a live
    /// central would orphan every register's trust.
    pub fn init(&self, extra_names: &[String]) -> Result<(), CentralError> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(DIR_MODE)
            .create(&self.path)
            .map_err(|e| CentralError::io(format!("creating {}", self.path.display()), e))?;
        self.tighten_dir()?;
        if self.signing_key_path().exists() {
            return Err(CentralError::Conflict(format!(
                "{} already exists: this directory is initialised",
                self.signing_key_path().display()
            )));
        }
        let key = SigningKey::generate(&mut OsRng);
        let pem = key
            .to_pkcs8_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
            .map_err(|e| CentralError::Invalid(format!("encoding the signing key: {e}")))?;
        write_new(&self.signing_key_path(), pem.as_bytes(), true)?;
        write_new(
            &self.admin_token_path(),
            &token_file_text(&new_token()),
            true,
        )?;

        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(tls_err)?;
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "pos-central development CA");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let ca_key = rcgen::KeyPair::generate().map_err(tls_err)?;
        let ca_pem_key = ca_key.serialize_pem();
        let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).map_err(tls_err)?;

        let mut names: Vec<String> = DEV_CERT_NAMES.iter().map(|s| s.to_string()).collect();
        names.extend(extra_names.iter().cloned());
        let mut server_params = rcgen::CertificateParams::new(names).map_err(tls_err)?;
        server_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "pos-central");
        server_params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let server_key = rcgen::KeyPair::generate().map_err(tls_err)?;
        let server_cert = server_params.signed_by(&server_key, &ca).map_err(tls_err)?;

        write_new(&self.ca_path(), ca.pem().as_bytes(), false)?;
        write_new(&self.path.join("ca.key"), ca_pem_key.as_bytes(), true)?;
        write_new(
            &self.server_cert_path(),
            server_cert.pem().as_bytes(),
            false,
        )?;
        write_new(
            &self.server_key_path(),
            server_key.serialize_pem().as_bytes(),
            true,
        )?;
        self.open_storage()?;
        Ok(())
    }

    /// Opens the SQLite database, first making it (and its `-wal`, `-shm`) 0600.
    fn open_sqlite(&self) -> Result<SqliteStorage, CentralError> {
        let db = self.db_path();
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(SECRET_MODE)
            .open(&db)
            .map_err(|e| CentralError::io(format!("creating {}", db.display()), e))?;
        for suffix in ["", "-wal", "-shm"] {
            let path = PathBuf::from(format!("{}{suffix}", db.display()));
            match std::fs::metadata(&path) {
                Ok(meta) if meta.permissions().mode() & 0o077 != 0 => {
                    set_mode(&path, SECRET_MODE)?;
                }
                _ => {}
            }
        }
        SqliteStorage::open(&db)
    }

    /// Tightens the directory to 0700 (init): a sticky one (`/tmp`) is
    /// shared by design and refused instead.
    fn tighten_dir(&self) -> Result<(), CentralError> {
        let mode = dir_mode(&self.path)?;
        if mode & 0o077 == 0 {
            return Ok(());
        }
        if mode & 0o1000 != 0 {
            return Err(CentralError::Invalid(format!(
                "{} is a shared directory (mode {mode:04o}): give central a directory of its own",
                self.path.display()
            )));
        }
        set_mode(&self.path, DIR_MODE)?;
        eprintln!(
            "tightened {} from mode {mode:04o} to {DIR_MODE:04o}: it holds member data and keys",
            self.path.display()
        );
        Ok(())
    }

    /// What `serve` requires of the directory: that others cannot write it
    /// (refused, with how to fix it); readable by others is only warned
    /// about, in the returned text.
    pub fn check_serving_dir(&self) -> Result<Option<String>, CentralError> {
        let mode = dir_mode(&self.path)?;
        let fix = format!("chmod 700 {}", self.path.display());
        if mode & 0o022 != 0 {
            return Err(CentralError::Invalid(format!(
                "{} is writable by others (mode {mode:04o}): they could replace its keys or database; run {fix}",
                self.path.display()
            )));
        }
        Ok((mode & 0o055 != 0).then(|| {
            format!(
                "{} is readable by others (mode {mode:04o}); run {fix}",
                self.path.display()
            )
        }))
    }

    /// Where `init --database` records a PostgreSQL URL.
    pub fn database_url_path(&self) -> PathBuf {
        self.path.join("database.url")
    }

    /// `init` with central's data on the PostgreSQL database at `url`
    /// rather than in DIR/central.db: the URL is recorded in
    /// DIR/database.url (0600: it may hold a password), and every command
    /// on DIR uses it. Several directories may name one database: that is
    /// how several `serve` instances share it.
    pub fn init_on_database(&self, extra_names: &[String], url: &str) -> Result<(), CentralError> {
        if self.signing_key_path().exists() {
            return Err(CentralError::Conflict(format!(
                "{} already exists: this directory is initialised",
                self.signing_key_path().display()
            )));
        }
        // Reachable and migrated before anything is written: a wrong URL
        // leaves no half-initialised directory behind.
        drop(PgStorage::open(url.trim(), 1)?);
        std::fs::create_dir_all(&self.path)
            .map_err(|e| CentralError::io(format!("creating {}", self.path.display()), e))?;
        let path = self.database_url_path();
        // A failed earlier init may have left one: this URL replaces it.
        let _ = std::fs::remove_file(&path);
        write_new(&path, format!("{}\n", url.trim()).as_bytes(), true)?;
        self.init(extra_names)
    }

    /// `pos-central migrate`: copies DIR's SQLite central into the empty
    /// PostgreSQL database at `url` ([`crate::migrate`]), and once the copy
    /// is verified records `url` in DIR/database.url. Refused when DIR is
    /// on PostgreSQL already.
    pub fn migrate_to(&self, url: &str) -> Result<crate::migrate::Migrated, CentralError> {
        if self.database_url()?.is_some() {
            return Err(CentralError::Conflict(format!(
                "{} is on PostgreSQL already ({})",
                self.path.display(),
                self.database_url_path().display()
            )));
        }
        if !self.db_path().exists() {
            return Err(CentralError::NotFound(format!(
                "{} has no SQLite database to migrate",
                self.path.display()
            )));
        }
        let url = url.trim();
        let migrated = crate::migrate::migrate_to(&self.db_path(), url)?;
        write_new(
            &self.database_url_path(),
            format!("{url}\n").as_bytes(),
            true,
        )?;
        Ok(migrated)
    }

    /// The PostgreSQL URL DIR records, if any.
    pub fn database_url(&self) -> Result<Option<String>, CentralError> {
        let path = self.database_url_path();
        if !path.exists() {
            return Ok(None);
        }
        let text = String::from_utf8(read_small(&path)?)
            .map_err(|_| CentralError::Invalid(format!("{} is not text", path.display())))?;
        Ok(Some(text.trim().to_string()))
    }

    /// Central's storage: PostgreSQL when DIR records a database URL
    /// (pool size from `POS_CENTRAL_DB_POOL`, default
    /// [`postgres::POOL_SIZE_DEFAULT`]), else SQLite in DIR/central.db.
    pub fn open_storage(&self) -> Result<Arc<dyn Storage>, CentralError> {
        let Some(url) = self.database_url()? else {
            return Ok(Arc::new(self.open_sqlite()?));
        };
        let pool = match std::env::var("POS_CENTRAL_DB_POOL") {
            Ok(v) => v.trim().parse().map_err(|_| {
                CentralError::Invalid(format!("POS_CENTRAL_DB_POOL {v:?} is not a number"))
            })?,
            Err(_) => postgres::POOL_SIZE_DEFAULT,
        };
        let storage = PgStorage::open(&url, pool)?;
        tracing::info!(
            message = "Storage opened.",
            backend = "postgres",
            database = %postgres::redacted(&url),
            pool
        );
        Ok(Arc::new(storage))
    }

    pub fn signing_key(&self) -> Result<SigningKey, CentralError> {
        let text = String::from_utf8(read_small(&self.signing_key_path())?).map_err(|_| {
            CentralError::Invalid(format!("{} is not text", self.signing_key_path().display()))
        })?;
        SigningKey::from_pkcs8_pem(&text).map_err(|e| {
            CentralError::Invalid(format!(
                "{} is not an Ed25519 PKCS#8 key: {e}",
                self.signing_key_path().display()
            ))
        })
    }

    /// The admin token from `admin.token`.
    pub fn admin_token(&self) -> Result<SecretString, CentralError> {
        read_token(&self.admin_token_path())
    }

    /// The rustls server configuration from `server.pem` / `server.key`.
    pub fn tls_server_config(&self) -> Result<Arc<rustls::ServerConfig>, CentralError> {
        tls_server_config_from(&self.server_cert_path(), &self.server_key_path())
    }
}

/// The TLS server configuration of a certificate chain and key in PEM
/// files (the server's certificate first).
pub fn tls_server_config_from(
    cert_path: &Path,
    key_path: &Path,
) -> Result<Arc<rustls::ServerConfig>, CentralError> {
    let cert_pem = read_small(cert_path)?;
    let certs = rustls_pemfile::certs(&mut cert_pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| tls_err(format!("{}: {e}", cert_path.display())))?;
    if certs.is_empty() {
        return Err(tls_err(format!(
            "{} holds no certificate",
            cert_path.display()
        )));
    }
    let key_pem = read_small(key_path)?;
    let key = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .map_err(|e| tls_err(format!("{}: {e}", key_path.display())))?
        .ok_or_else(|| tls_err(format!("{} holds no private key", key_path.display())))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(tls_err)?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(tls_err)?;
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_read_trimmed_and_never_shown() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("admin.token");
        let token = new_token();
        std::fs::write(&path, token_file_text(&token).as_slice()).unwrap();
        let read = read_token(&path).unwrap();
        assert_eq!(read.expose_secret(), token.expose_secret());
        assert_eq!(read.expose_secret().len(), 2 * TOKEN_BYTES);
        assert!(!format!("{read:?}").contains(token.expose_secret()));

        std::fs::write(&path, " \n").unwrap();
        let err = read_token(&path).unwrap_err();
        assert!(err.to_string().contains("is empty"), "{err}");
    }
}
