//! The documented example configs in examples/ parse, and mean what their
//! comments say.

use std::path::{Path, PathBuf};

use pos_config::{Config, DeviceKind, Env, KeyboardLayout, Measure, Role, Suffix, TokenSource};

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(name)
}

fn load(name: &str) -> Config {
    let path = example(name);
    let text = std::fs::read_to_string(&path).unwrap();
    // No environment: the examples must stand on their own outside systemd.
    match Config::parse(&text, &path, &Env::default()) {
        Ok(config) => config,
        Err(err) => panic!("{name} should parse:\n{err}"),
    }
}

#[test]
fn full_example_parses() {
    let config = load("agent.toml");
    assert_eq!(config.terminal.id, "store-042-reg-3");
    let central = config.central.expect("the full example has [central]");
    assert_eq!(
        central.token,
        TokenSource::Credential("central-token".into())
    );
    assert_eq!(central.server_name, "loyalty.example.com");
    // Issue 10: the TCP API is off in the example (every local user could
    // reach it); the Unix socket is the POS's way in.
    assert_eq!(config.api.listen, None);
    assert_eq!(config.api.token, None);
    assert_eq!(config.health, pos_config::Health::default());
    assert_eq!(config.devices.len(), 2);
    assert!(matches!(config.devices[0].kind, DeviceKind::Serial(line) if line.baud == 115_200));
    assert_eq!(config.devices[0].suffix, Suffix::CrLf);
    assert_eq!(
        config.devices[1].kind,
        DeviceKind::Evdev {
            layout: KeyboardLayout::De
        }
    );
    assert_eq!(config.devices[1].role, Role::Items);
    assert_eq!(config.cards.loyalty_prefixes, vec!["999"]);
    assert_eq!(config.variable_measure.len(), 2);
    assert_eq!(config.variable_measure[1].value, Measure::Weight);
}

#[test]
fn standalone_example_parses() {
    let config = load("agent-standalone.toml");
    assert!(config.central.is_none());
    assert!(config.devices.is_empty());
    assert_eq!(
        config.storage.path,
        Path::new("/var/lib/pos-agent/agent.db")
    );
}
