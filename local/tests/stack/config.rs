//! docs/configuration.md's table is the contract for every setting: each variable whose default it
//! gives as a value is read with exactly that default (setting it to that value changes nothing)
//! by the settings that read it: the product's, the local runner's, the embedded model server's or
//! the log filter.

use std::collections::HashMap;

/// Every setting as its readers see `vars`: their debug form, or the variable they refuse. The
/// readers: the product's settings, the local runner's, the model server's, and the log filter.
fn settings(vars: &HashMap<String, String>) -> Result<[String; 4], String> {
    let product = chat_core::Config::from_vars(vars).map_err(|e| e.name.to_string())?;
    let local = chat_local::LocalConfig::from_vars(vars).map_err(|e| e.name.to_string())?;
    let model = chat_model::ModelServerConfig::from_vars(vars).map_err(|e| e.name.to_string())?;
    let log_filter = chat_core::telemetry::log_filter(&|name| vars.get(name).cloned());
    Ok([format!("{product:?}"), format!("{local:?}"), format!("{model:?}"), log_filter])
}

/// docs/configuration.md's rows: each variable and its default cell.
fn documented_rows() -> Vec<(String, String)> {
    let documented = include_str!("../../../docs/configuration.md");
    let table = documented.split("## Configuration").nth(1).expect("docs/configuration.md has a Configuration section");
    let table = table.split("\n## ").next().unwrap();
    table
        .lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.split(" | ").collect();
            let name = cells.first()?.strip_prefix("| `")?.strip_suffix('`')?;
            Some((name.to_string(), cells.get(1)?.trim().to_string()))
        })
        .collect()
}

/// A default cell that is one value (`` `20` ``, or `` `20` (a remark) ``), not a description.
fn literal(cell: &str) -> Option<&str> {
    let (value, rest) = cell.strip_prefix('`')?.split_once('`')?;
    (rest.is_empty() || rest.starts_with(" (") && rest.ends_with(')')).then_some(value)
}

#[test]
fn every_default_docs_configuration_md_gives_is_the_default_the_settings_read() {
    // Setting these at all means something beyond their value: the local runner starts its own
    // Redis and its embedded model only while they are unset. Their value is compared in the
    // product's settings alone.
    let presence_matters = ["REDIS_URL", "OPENAI_BASE_URL", "OPENAI_API_KEY"];
    // A home of its own: the model's default path is under it.
    let home = "/home/tester";
    // The settings that only count once another is set are read in that setting's company.
    let company = |name: &str| -> &[(&str, &str)] {
        if name.starts_with("REDIS_IAM_") && name != "REDIS_IAM_AUTH" {
            &[("REDIS_IAM_AUTH", "true"), ("REDIS_IAM_CACHE_NAME", "chat"), ("AWS_REGION", "eu-west-1")]
        } else {
            &[]
        }
    };
    let vars = |name: &str, value: Option<&str>| {
        let mut vars: HashMap<String, String> =
            company(name).iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        vars.insert("HOME".into(), home.into());
        if let Some(value) = value {
            vars.insert(name.into(), value.into());
        }
        vars
    };
    let rows = documented_rows();
    // A value as a shell would pass it: `~` is the home, `$NAME` another row's default.
    let expand = |value: &str| {
        let mut value = value.replace("~/", &format!("{home}/"));
        for (name, cell) in &rows {
            if let Some(default) = literal(cell).filter(|_| value.contains(&format!("${name}"))) {
                value = value.replace(&format!("${name}"), &default.replace("~/", &format!("{home}/")));
            }
        }
        value
    };
    assert!(rows.len() >= 70, "docs/configuration.md's table has {} rows", rows.len());
    let mut checked = Vec::new();
    for (name, cell) in &rows {
        let Some(value) = literal(cell).map(expand) else { continue };
        let unset = settings(&vars(name, None)).expect("the defaults are valid");
        let set = settings(&vars(name, Some(&value))).unwrap_or_else(|refused| {
            panic!("docs/configuration.md's default of {name} ({value}) is refused as {refused}")
        });
        let compared = if presence_matters.contains(&name.as_str()) { 1 } else { 4 };
        assert_eq!(
            set[..compared],
            unset[..compared],
            "{name}: docs/configuration.md says {value}, the default is not that"
        );
        // And the variable is read at all: another value changes something or is refused.
        let read = ["0.5-not-a-default", "7", "debug"]
            .iter()
            .any(|other| settings(&vars(name, Some(other))).map_or(true, |other| other != set));
        assert!(read, "{name} is read by none of the settings");
        checked.push(name.as_str());
    }
    // "(none)": unset is nothing at all, as an empty value is.
    for (name, _) in rows.iter().filter(|(_, cell)| cell == "(none)") {
        let unset = settings(&vars(name, None)).expect("the defaults are valid");
        assert_eq!(settings(&vars(name, Some(""))), Ok(unset), "{name}: docs/configuration.md says it has no default");
        checked.push(name.as_str());
    }
    println!("{} defaults checked: {}", checked.len(), checked.join(" "));
    let described: Vec<_> = rows
        .iter()
        .filter(|(_, cell)| literal(cell).is_none() && cell != "(none)")
        .map(|(n, c)| format!("{n}: {c}"))
        .collect();
    println!("{} described, not values:\n{}", described.len(), described.join("\n"));
    assert!(checked.len() >= 65, "{} of {} rows checked", checked.len(), rows.len());
}

#[test]
fn every_variable_the_settings_read_is_documented_and_every_documented_one_is_read() {
    use std::collections::BTreeSet;
    let mut read: BTreeSet<String> = chat_core::Config::variables().into_iter().collect();
    read.extend(chat_local::LocalConfig::variables());
    read.extend(chat_model::ModelServerConfig::variables());
    // The log filter's: `RUST_LOG` is ours; Lambda sets `AWS_LAMBDA_LOG_LEVEL` (RUST_LOG's row
    // says it wins).
    let log_reads = std::cell::RefCell::new(BTreeSet::new());
    chat_core::telemetry::log_filter(&|name| {
        log_reads.borrow_mut().insert(name.to_string());
        None
    });
    read.extend(log_reads.into_inner());
    // Not settings of ours: the user's home (the model cache's default lies under it) and
    // Lambda's own log level.
    for not_ours in ["HOME", "AWS_LAMBDA_LOG_LEVEL"] {
        assert!(read.remove(not_ours), "{not_ours} is no longer read: drop it from this list");
    }
    let documented: BTreeSet<String> = documented_rows().into_iter().map(|(name, _)| name).collect();
    let undocumented: Vec<_> = read.difference(&documented).collect();
    let unread: Vec<_> = documented.difference(&read).collect();
    assert!(undocumented.is_empty(), "read but not in docs/configuration.md: {undocumented:?}");
    assert!(unread.is_empty(), "in docs/configuration.md but read by no settings: {unread:?}");
    println!("{} variables, each read and documented", read.len());
}
