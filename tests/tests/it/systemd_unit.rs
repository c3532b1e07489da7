//! The shipped systemd files (agent spec §5) say what the agent needs: a
//! notify service with a watchdog, its directories and token credential,
//! closed device policy with the scanners allowed (never PrivateDevices),
//! a static user from the sysusers file, the config's credential name, and
//! an exposure of at most 2.5 by `systemd-analyze security --offline=true`
//! (a test ignored by default, since it needs systemd-analyze: `.ci/run`
//! installs the tool and runs it with `-- --ignored`); and the Debian
//! package's metadata ships all of it.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, ensure};
use pos_testkit::bins;

/// The spec's bound on the unit's exposure level.
pub(crate) const EXPOSURE_MAX: &str = "2.5";

pub(crate) fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

pub(crate) fn read(path: &str) -> Result<String> {
    std::fs::read_to_string(repo(path)).with_context(|| format!("read {path}"))
}

/// Every `KEY=value` of the unit (comments and sections left out).
pub(crate) fn settings(unit: &str) -> Vec<(String, String)> {
    unit.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#') && !l.starts_with('['))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

pub(crate) fn values<'a>(all: &'a [(String, String)], key: &str) -> Vec<&'a str> {
    all.iter()
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .collect()
}

#[test]
fn the_unit_asks_for_what_the_agent_needs() -> Result<()> {
    let all = settings(&read("systemd/pos-agent.service")?);
    let one = |key: &str| -> Result<&str> {
        let found = values(&all, key);
        ensure!(found.len() == 1, "{key}: {found:?}");
        Ok(found[0])
    };
    ensure!(one("Type")? == "notify");
    ensure!(one("WatchdogSec")? != "0");
    ensure!(one("StateDirectory")? == "pos-agent");
    ensure!(one("RuntimeDirectory")? == "pos-agent");
    ensure!(one("ConfigurationDirectory")? == "pos-agent");
    ensure!(one("DevicePolicy")? == "closed");
    ensure!(
        values(&all, "PrivateDevices").is_empty(),
        "PrivateDevices hides the scanners"
    );
    let allowed = values(&all, "DeviceAllow");
    for device in ["char-ttyUSB rw", "char-ttyACM rw", "char-input rw"] {
        ensure!(
            allowed.contains(&device),
            "DeviceAllow={device} missing: {allowed:?}"
        );
    }
    ensure!(
        one("RestartPreventExitStatus")? == "2",
        "bad input must not restart-loop"
    );

    // The credential the example config names is the one the unit loads.
    let credential = one("LoadCredential")?
        .split_once(':')
        .context("LoadCredential=NAME:PATH")?
        .0;
    let config = read("examples/agent.toml")?;
    ensure!(
        config.contains(&format!("credential = \"{credential}\"")),
        "examples/agent.toml does not name credential {credential:?}"
    );

    // The user is the sysusers file's.
    let user = one("User")?;
    let sysusers = read("systemd/pos-agent.sysusers")?;
    ensure!(
        sysusers
            .lines()
            .any(|l| l.starts_with(&format!("u {user} "))),
        "no `u {user}` in pos-agent.sysusers"
    );

    // ExecStart is a command line the binary accepts.
    let exec = one("ExecStart")?;
    let mut words = exec.split_whitespace();
    ensure!(words.next() == Some("/usr/bin/pos-agent"), "{exec}");
    let args: Vec<&str> = words.collect();
    ensure!(
        args.first() == Some(&"run") && args.contains(&"--config"),
        "{exec}"
    );
    let help = Command::new(bins::path("pos-agent"))
        .args(["run", "--help"])
        .output()?;
    ensure!(help.status.success(), "{help:?}");
    ensure!(String::from_utf8_lossy(&help.stdout).contains("--config"));
    Ok(())
}

#[test]
#[ignore = "needs systemd-analyze (run by .ci/run with --ignored)"]
fn the_unit_is_hardened_to_the_specified_exposure() -> Result<()> {
    check_exposure("systemd/pos-agent.service")
}

#[test]
#[ignore = "needs systemd-analyze (run by .ci/run with --ignored)"]
fn the_central_unit_is_hardened_to_the_specified_exposure() -> Result<()> {
    check_exposure("systemd/pos-central.service")
}

/// `systemd-analyze security --offline=true` puts `unit` at most at
/// [`EXPOSURE_MAX`].
fn check_exposure(unit: &str) -> Result<()> {
    let unit = repo(unit);
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=true"])
        .arg(format!("--threshold={}", EXPOSURE_MAX.replace('.', "")))
        .arg(&unit)
        .output()
        .context("run systemd-analyze (install systemd to run this test)")?;
    let report = String::from_utf8_lossy(&out.stdout);
    let overall = report
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .with_context(|| format!("no overall level in:\n{report}"))?;
    ensure!(
        out.status.success(),
        "above {EXPOSURE_MAX}: {overall}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// `cargo deb -p pos-agent-cli --strip` packages what the unit needs, as
/// the Debian package `pos-agent` built without the demo: the binary where
/// ExecStart looks for it, the unit and sysusers file from
/// systemd/, the udev rules, the example configs as documentation, and
/// maintainer scripts that let cargo-deb add its fragments. The unit is
/// neither enabled nor started on install (the register needs its config
/// first). Built and installed by hand (`dpkg -i`, then `--purge`) on this
/// machine; here only the metadata is checked, since cargo-deb is not part
/// of the toolchain.
#[test]
fn the_debian_package_ships_the_unit_and_its_files() -> Result<()> {
    let deb = deb_metadata("agent-cli", "pos-agent")?;
    ensure!(
        deb.get("default-features").and_then(toml::Value::as_bool) == Some(false),
        "the Debian package is built without the default feature `demo`"
    );
    let features = deb.get("features").and_then(toml::Value::as_array);
    ensure!(
        !features.is_some_and(|f| f.iter().any(|f| f.as_str() == Some("demo"))),
        "the Debian package is built without the feature `demo`: {features:?}"
    );
    let targets = check_package("agent-cli", &deb, "pos-agent")?;
    ensure!(
        targets
            .iter()
            .any(|t| t.starts_with("usr/lib/udev/rules.d/")),
        "{targets:?}"
    );

    let scripts = repo("agent-cli").join(
        deb["maintainer-scripts"]
            .as_str()
            .context("maintainer-scripts")?,
    );
    for entry in std::fs::read_dir(&scripts)? {
        let path = entry?.path();
        let text = std::fs::read_to_string(&path)?;
        ensure!(
            text.contains("#DEBHELPER#"),
            "{path:?} has no #DEBHELPER# token"
        );
    }
    Ok(())
}

/// `[package.metadata.deb]` of the crate in `dir`, checked to name the
/// Debian package `name`.
pub(crate) fn deb_metadata(dir: &str, name: &str) -> Result<toml::Table> {
    let manifest: toml::Table = read(&format!("{dir}/Cargo.toml"))?.parse()?;
    let deb = manifest["package"]["metadata"]["deb"]
        .as_table()
        .context("[package.metadata.deb]")?
        .clone();
    ensure!(
        deb.get("name").and_then(toml::Value::as_str) == Some(name),
        "the Debian package is named {name}: {:?}",
        deb.get("name")
    );
    Ok(deb)
}

/// What every package of ours ships: the binary where ExecStart looks for
/// it, assets that exist (paths relative to the crate's directory), the
/// unit `unit.service` and its sysusers file, neither enabled nor started
/// on install (a service needs its config first). The assets' targets.
pub(crate) fn check_package(dir: &str, deb: &toml::Table, unit: &str) -> Result<Vec<String>> {
    let crate_dir = repo(dir);
    let mut targets = Vec::new();
    for asset in deb["assets"].as_array().context("assets")? {
        let asset = asset
            .as_array()
            .context("an asset is [source, target, mode]")?;
        let source = asset[0].as_str().context("source")?;
        let target = asset[1].as_str().context("target")?;
        if !source.starts_with("target/release/") {
            ensure!(
                crate_dir.join(source).is_file(),
                "asset {source} does not exist"
            );
        }
        targets.push(target.to_string());
    }
    ensure!(targets.contains(&"usr/bin/".to_string()), "{targets:?}");

    let units = deb["systemd-units"].as_table().context("systemd-units")?;
    ensure!(
        units.get("unit-name").and_then(toml::Value::as_str) == Some(unit),
        "unit-name {unit}"
    );
    let unit_dir = crate_dir.join(units["unit-scripts"].as_str().context("unit-scripts")?);
    for file in [format!("{unit}.service"), format!("{unit}.sysusers")] {
        ensure!(unit_dir.join(&file).is_file(), "{file} not in {unit_dir:?}");
    }
    ensure!(
        units["enable"].as_bool() == Some(false),
        "enabled before it has a config"
    );
    ensure!(
        units["start"].as_bool() == Some(false),
        "started before it has a config"
    );
    Ok(targets)
}

/// pos-central's unit: a notify service (READY=1 once it listens) of a
/// static user from its sysusers file, its own private state directory,
/// the packaged config path, and bad input not restart-looping.
#[test]
fn the_central_unit_asks_for_what_central_needs() -> Result<()> {
    let all = settings(&read("systemd/pos-central.service")?);
    let one = |key: &str| -> Result<&str> {
        let found = values(&all, key);
        ensure!(found.len() == 1, "{key}: {found:?}");
        Ok(found[0])
    };
    ensure!(one("Type")? == "notify");
    ensure!(one("StateDirectory")? == "pos-central");
    ensure!(one("StateDirectoryMode")? == "0700", "keys and member data");
    ensure!(one("RestartPreventExitStatus")? == "2");
    let user = one("User")?;
    let sysusers = read("systemd/pos-central.sysusers")?;
    ensure!(
        sysusers
            .lines()
            .any(|l| l.starts_with(&format!("u {user} "))),
        "no `u {user}` in pos-central.sysusers"
    );
    let exec = one("ExecStart")?;
    let mut words = exec.split_whitespace();
    ensure!(words.next() == Some("/usr/bin/pos-central"), "{exec}");
    let args: Vec<&str> = words.collect();
    ensure!(
        args == ["serve", "--config", pos_config::DEFAULT_CENTRAL_CONFIG_PATH],
        "{exec}"
    );
    let help = Command::new(bins::path("pos-central"))
        .args(["serve", "--help"])
        .output()?;
    ensure!(help.status.success(), "{help:?}");
    ensure!(String::from_utf8_lossy(&help.stdout).contains("--config"));
    Ok(())
}

#[test]
fn the_central_debian_package_ships_its_unit_and_example() -> Result<()> {
    let deb = deb_metadata("central", "pos-central")?;
    let targets = check_package("central", &deb, "pos-central")?;
    ensure!(
        targets.iter().any(|t| t.ends_with("examples/central.toml")),
        "{targets:?}"
    );
    Ok(())
}
