//! The environment overlay: every key of the configuration overridable by
//! `BACKCHANNEL_<SECTION>_<KEY>`, parsed by the type of the value it replaces (SPEC §3.3).

use super::ConfigError;

pub(super) fn merge(base: &mut toml::Table, over: toml::Table) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

/// Variables under this prefix must name a key: a misspelt push variable would otherwise
/// leave a sender silently off. (Other `BACKCHANNEL_*` names are used by tests and tools.)
pub(super) const PUSH_ENV_PREFIX: &str = "BACKCHANNEL_PUSH_";

pub(super) fn reject_unknown_env(
    table: &toml::Table,
    prefix: &str,
    vars: &[(String, String)],
) -> Result<(), ConfigError> {
    fn names(table: &toml::Table, prefix: &str, out: &mut Vec<String>) {
        for (key, value) in table {
            let name = format!("{prefix}_{}", key.to_uppercase());
            match value {
                toml::Value::Table(inner) => names(inner, &name, out),
                _ => out.push(name),
            }
        }
    }
    let mut known = Vec::new();
    names(table, "BACKCHANNEL", &mut known);
    match vars
        .iter()
        .find(|(k, _)| k.starts_with(prefix) && !known.contains(k))
    {
        Some((k, _)) => Err(ConfigError::Invalid(format!(
            "{k} is not a configuration key"
        ))),
        None => Ok(()),
    }
}

/// Walks the table: each leaf `a.b.c` is overridden by `PREFIX_A_B_C`, parsed by the type of
/// the value it replaces.
pub(super) fn apply_env(
    table: &mut toml::Table,
    prefix: &str,
    vars: &[(String, String)],
) -> Result<(), ConfigError> {
    for (key, value) in table.iter_mut() {
        let name = format!("{prefix}_{}", key.to_uppercase());
        if let toml::Value::Table(inner) = value {
            apply_env(inner, &name, vars)?;
            continue;
        }
        let Some((_, raw)) = vars.iter().find(|(k, _)| *k == name) else {
            continue;
        };
        let bad = |what: &str| ConfigError::Invalid(format!("{name} must be {what}"));
        *value = match value {
            toml::Value::Integer(_) => {
                toml::Value::Integer(raw.trim().parse().map_err(|_| bad("an integer"))?)
            }
            toml::Value::Boolean(_) => toml::Value::Boolean(match raw.trim() {
                "1" | "true" | "yes" | "on" => true,
                "0" | "false" | "no" | "off" | "" => false,
                _ => return Err(bad("true or false")),
            }),
            toml::Value::Array(_) => toml::Value::Array(
                raw.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|s| toml::Value::String(s.to_owned()))
                    .collect(),
            ),
            _ => toml::Value::String(raw.clone()),
        };
    }
    Ok(())
}
