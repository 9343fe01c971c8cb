//! WuKongIM's own configuration, carried over: its YAML file (`--config wk.yaml`) and its `WK_*`
//! environment variables (`WK_` + the key upper-cased with `.` as `_`, e.g. `WK_WEBHOOK_HTTPADDR`).
//! The keys both servers share are mapped onto chathook's settings; every other key is named once in a
//! warning, so nothing is ignored silently.

use std::path::Path;

use figment::providers::{Format, Yaml};
use figment::Figment;
use serde_json::Value;
use toml::Table;

use crate::config::ConfigError;

/// A WuKongIM key (its spelling) and the chathook setting it sets.
struct Mapping {
    wukongim: &'static str,
    chathook: &'static str,
    convert: fn(Value) -> Value,
}

fn same(v: Value) -> Value {
    v
}

/// `ws://0.0.0.0:5200` -> `0.0.0.0:5200` (WuKongIM writes listen addresses with a scheme).
fn strip_scheme(v: Value) -> Value {
    match v {
        Value::String(s) => Value::String(match s.split_once("://") {
            Some((_, rest)) => rest.to_string(),
            None => s,
        }),
        other => other,
    }
}

/// A list from an environment string: a JSON array, or items split on commas or white space.
fn list(v: Value) -> Value {
    match v {
        Value::String(s) if s.trim_start().starts_with('[') => {
            serde_json::from_str(&s).unwrap_or(Value::String(s))
        }
        Value::String(s) => Value::Array(
            s.split(|c: char| c == ',' || c.is_whitespace())
                .filter(|item| !item.is_empty())
                .map(|item| Value::String(item.to_string()))
                .collect(),
        ),
        other => other,
    }
}

/// A number from an environment string.
fn number(v: Value) -> Value {
    match v {
        Value::String(s) => s
            .trim()
            .parse::<u64>()
            .map(Value::from)
            .unwrap_or(Value::String(s)),
        other => other,
    }
}

const MAPPINGS: [Mapping; 16] = [
    Mapping {
        wukongim: "httpAddr",
        chathook: "api_addr",
        convert: strip_scheme,
    },
    Mapping {
        wukongim: "addr",
        chathook: "gateway.tcp_addr",
        convert: strip_scheme,
    },
    Mapping {
        wukongim: "wsAddr",
        chathook: "ws_addr",
        convert: strip_scheme,
    },
    Mapping {
        wukongim: "rootDir",
        chathook: "data_dir",
        convert: same,
    },
    Mapping {
        wukongim: "managerToken",
        chathook: "admin_key",
        convert: same,
    },
    Mapping {
        wukongim: "external.tcpAddr",
        chathook: "route.tcp_addr",
        convert: same,
    },
    Mapping {
        wukongim: "external.wsAddr",
        chathook: "route.ws_addr",
        convert: same,
    },
    Mapping {
        wukongim: "external.wssAddr",
        chathook: "route.wss_addr",
        convert: same,
    },
    Mapping {
        wukongim: "intranet.tcpAddr",
        chathook: "route.intranet_tcp_addr",
        convert: same,
    },
    Mapping {
        wukongim: "webhook.httpAddr",
        chathook: "webhook.http_addr",
        convert: same,
    },
    Mapping {
        wukongim: "agent.webhook.httpAddr",
        chathook: "webhook.agent_http_addr",
        convert: same,
    },
    Mapping {
        wukongim: "webhook.grpcAddr",
        chathook: "webhook.grpc_addr",
        convert: same,
    },
    Mapping {
        wukongim: "webhook.focusEvents",
        chathook: "webhook.focus_events",
        convert: list,
    },
    Mapping {
        wukongim: "webhook.msgNotifyEventPushInterval",
        chathook: "webhook.msg_notify_interval",
        convert: same,
    },
    Mapping {
        wukongim: "webhook.msgNotifyEventCountPerPush",
        chathook: "webhook.msg_notify_max_batch",
        convert: number,
    },
    Mapping {
        wukongim: "webhook.msgNotifyEventRetryMaxCount",
        chathook: "webhook.msg_notify_retry_max_count",
        convert: number,
    },
];

/// chathook's settings from WuKongIM's keys, and the keys it did not use.
#[derive(Debug, Default)]
pub struct Mapped {
    /// Nested like chathook's TOML (`webhook.http_addr` is `[webhook] http_addr`).
    pub settings: Table,
    /// WuKongIM keys with no chathook meaning, in their WuKongIM spelling.
    pub ignored: Vec<String>,
}

impl Mapped {
    fn set(&mut self, mapping: &Mapping, value: Value) -> Result<(), ConfigError> {
        let value = toml::Value::try_from((mapping.convert)(value))
            .map_err(|e| ConfigError::Invalid(format!("{}: {e}", mapping.wukongim)))?;
        let mut path: Vec<&str> = mapping.chathook.split('.').collect();
        let leaf = path.pop().unwrap_or_default();
        let mut table = &mut self.settings;
        for part in path {
            let entry = table
                .entry(part.to_string())
                .or_insert_with(|| toml::Value::Table(Table::new()));
            let toml::Value::Table(inner) = entry else {
                return Err(ConfigError::Invalid(format!(
                    "{}: clashes",
                    mapping.chathook
                )));
            };
            table = inner;
        }
        table.insert(leaf.to_string(), value);
        Ok(())
    }

    /// Logs the ignored keys in one warning.
    pub fn warn_ignored(&self, source: &str) {
        if !self.ignored.is_empty() {
            tracing::warn!(
                source,
                keys = %self.ignored.join(", "),
                "WuKongIM settings chathook does not use were ignored"
            );
        }
    }
}

/// Flattens a YAML document into dotted WuKongIM keys (lists stay values).
fn flatten(prefix: &str, value: Value, out: &mut Vec<(String, Value)>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let key = if prefix.is_empty() {
                    k
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        other => out.push((prefix.to_string(), other)),
    }
}

/// Reads WuKongIM's YAML configuration file.
pub fn from_yaml(path: &Path) -> Result<Mapped, ConfigError> {
    let doc: Value = Figment::from(Yaml::file_exact(path))
        .extract()
        .map_err(|e| ConfigError::Invalid(format!("{}: {e}", path.display())))?;
    let mut flat = Vec::new();
    flatten("", doc, &mut flat);
    let mut mapped = Mapped::default();
    for (key, value) in flat {
        match MAPPINGS
            .iter()
            .find(|m| m.wukongim.eq_ignore_ascii_case(&key))
        {
            Some(mapping) => mapped.set(mapping, value)?,
            None => mapped.ignored.push(key),
        }
    }
    Ok(mapped)
}

/// Reads WuKongIM's `WK_*` environment variables from `vars`.
pub fn from_env(vars: impl Iterator<Item = (String, String)>) -> Result<Mapped, ConfigError> {
    let mut mapped = Mapped::default();
    for (name, value) in vars {
        let Some(rest) = name.strip_prefix("WK_") else {
            continue;
        };
        let found = MAPPINGS
            .iter()
            .find(|m| m.wukongim.replace('.', "_").eq_ignore_ascii_case(rest));
        match found {
            Some(mapping) => mapped.set(mapping, Value::String(value))?,
            None => mapped.ignored.push(name),
        }
    }
    Ok(mapped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_keys_map_and_the_rest_is_listed() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("wk.yaml");
        std::fs::write(
            &file,
            "mode: release\naddr: tcp://0.0.0.0:5100\nhttpAddr: 0.0.0.0:6001\nwsAddr: ws://0.0.0.0:6200\n\
             rootDir: /var/wk\nmanagerToken: secret-token-1\nexternal:\n  ip: 1.2.3.4\n  wssAddr: wss://im.example\n\
             webhook:\n  httpAddr: http://127.0.0.1:9000/hook\n  focusEvents: [msg.notify]\n\
             \x20 msgNotifyEventPushInterval: 250ms\n  msgNotifyEventCountPerPush: 20\n",
        )
        .unwrap();
        let m = from_yaml(&file).unwrap();
        let s = &m.settings;
        assert_eq!(s["api_addr"].as_str(), Some("0.0.0.0:6001"));
        assert_eq!(s["ws_addr"].as_str(), Some("0.0.0.0:6200"));
        assert_eq!(s["gateway"]["tcp_addr"].as_str(), Some("0.0.0.0:5100"));
        assert_eq!(s["data_dir"].as_str(), Some("/var/wk"));
        assert_eq!(s["admin_key"].as_str(), Some("secret-token-1"));
        assert_eq!(s["route"]["wss_addr"].as_str(), Some("wss://im.example"));
        assert_eq!(
            s["webhook"]["http_addr"].as_str(),
            Some("http://127.0.0.1:9000/hook")
        );
        assert_eq!(s["webhook"]["msg_notify_max_batch"].as_integer(), Some(20));
        let mut ignored = m.ignored.clone();
        ignored.sort();
        assert_eq!(ignored, vec!["external.ip", "mode"]);
    }

    #[test]
    fn wk_variables_map_with_lists_and_numbers() {
        let vars = [
            ("WK_WEBHOOK_HTTPADDR", "http://h/x"),
            ("WK_WEBHOOK_FOCUSEVENTS", "msg.notify, msg.offline"),
            ("WK_WEBHOOK_MSGNOTIFYEVENTCOUNTPERPUSH", "7"),
            ("WK_MANAGERTOKEN", "abcdefgh"),
            ("WK_CLUSTER_NODEID", "3"),
            ("WK_ADDR", "tcp://0.0.0.0:7100"),
            ("PATH", "/bin"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()));
        let m = from_env(vars.into_iter()).unwrap();
        let w = &m.settings["webhook"];
        assert_eq!(w["http_addr"].as_str(), Some("http://h/x"));
        assert_eq!(
            w["focus_events"].as_array().unwrap().len(),
            2,
            "{:?}",
            w["focus_events"]
        );
        assert_eq!(w["msg_notify_max_batch"].as_integer(), Some(7));
        assert_eq!(m.settings["admin_key"].as_str(), Some("abcdefgh"));
        assert_eq!(
            m.settings["gateway"]["tcp_addr"].as_str(),
            Some("0.0.0.0:7100"),
            "WK_ADDR is the TCP gateway"
        );
        assert_eq!(m.ignored, vec!["WK_CLUSTER_NODEID"]);
    }
}
