//! `stoke alias set|list|delete` and `stoke rollback`: a function's aliases.
//!
//! `alias set` creates the alias or, when it exists, points it at the given version (sending
//! the `RevisionId` it read, so a concurrent change is refused rather than overwritten). Without
//! `--weight` the alias sends every call to that version; `--weight V=W` sends the share `W` of
//! the calls to version `V`. `rollback` asks the server to move the alias back to where it was
//! before its last change (Stoke's own endpoint; Lambda has none).

use anyhow::Context as _;
use serde_json::{Map, Value, json};

use super::ClientArgs;
use super::versions::render_table;
use stoke_client::{AliasConfiguration, ApiError};

/// Flags and subcommands of `stoke alias`.
#[derive(Debug, clap::Args)]
pub struct AliasArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    #[command(subcommand)]
    pub command: AliasCommand,
}

/// What `stoke alias` does.
#[derive(Debug, clap::Subcommand)]
pub enum AliasCommand {
    /// Point an alias at a version, creating the alias if it does not exist.
    Set {
        /// Function name or ARN.
        name: String,
        /// Alias name (not only digits).
        alias: String,
        /// The version the alias invokes ($LATEST or a number).
        version: String,
        /// Send this share of the calls (0–1) to a second version, e.g. --weight 3=0.1.
        #[arg(long, value_name = "VERSION=WEIGHT", value_parser = parse_weight)]
        weight: Option<(String, f64)>,
        /// Description of the alias.
        #[arg(long)]
        description: Option<String>,
    },
    /// List a function's aliases: name, version, routing, description.
    List {
        /// Function name or ARN.
        name: String,
    },
    /// Delete an alias.
    Delete {
        /// Function name or ARN.
        name: String,
        /// Alias name.
        alias: String,
    },
}

/// Flags of `stoke rollback`.
#[derive(Debug, clap::Args)]
pub struct RollbackArgs {
    /// Function name or ARN.
    pub name: String,
    /// The alias to move back to its previous version.
    pub alias: String,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Parses `VERSION=WEIGHT` (a version number, and a share as a decimal number).
fn parse_weight(text: &str) -> Result<(String, f64), String> {
    let Some((version, weight)) = text.split_once('=') else {
        return Err(format!("expected VERSION=WEIGHT, got {text:?}"));
    };
    if version.is_empty() || !version.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("the version in {text:?} is not a version number"));
    }
    match weight.trim().parse::<f64>() {
        Ok(w) if w.is_finite() => Ok((version.to_owned(), w)),
        _ => Err(format!("the weight in {text:?} is not a number")),
    }
}

/// Runs `stoke alias …`.
pub async fn run(args: AliasArgs) -> anyhow::Result<()> {
    let client = args.client.client()?;
    match args.command {
        AliasCommand::Set {
            name,
            alias,
            version,
            weight,
            description,
        } => {
            let existing = match client.get_alias(&name, &alias).await {
                Ok(found) => Some(found),
                Err(e) if e.api().is_some_and(ApiError::is_not_found) => None,
                Err(e) => {
                    return Err(e).context(format!("cannot look up alias {alias} of {name}"));
                }
            };
            let (verb, config) = match existing {
                None => {
                    let request = create_request(&alias, &version, weight, description);
                    let created = client
                        .create_alias(&name, &request)
                        .await
                        .with_context(|| format!("cannot create alias {alias} of {name}"))?;
                    ("created", created)
                }
                Some(current) => {
                    let request = update_request(&current, &version, weight, description);
                    let updated = client
                        .update_alias(&name, &alias, &request)
                        .await
                        .with_context(|| format!("cannot update alias {alias} of {name}"))?;
                    ("updated", updated)
                }
            };
            println!("{verb} alias {} of {name}", config.name);
            print_alias(&config);
        }
        AliasCommand::List { name } => {
            let aliases = client
                .list_all_aliases(&name)
                .await
                .with_context(|| format!("cannot list the aliases of {name}"))?;
            if aliases.is_empty() {
                eprintln!("no aliases");
            } else {
                print!("{}", render_aliases(&aliases));
            }
        }
        AliasCommand::Delete { name, alias } => {
            client
                .delete_alias(&name, &alias)
                .await
                .with_context(|| format!("cannot delete alias {alias} of {name}"))?;
            eprintln!("deleted alias {alias} of {name}");
        }
    }
    Ok(())
}

/// Runs `stoke rollback`.
pub async fn rollback(args: RollbackArgs) -> anyhow::Result<()> {
    let client = args.client.client()?;
    let config = client
        .rollback_alias(&args.name, &args.alias)
        .await
        .with_context(|| format!("cannot roll back alias {} of {}", args.alias, args.name))?;
    println!(
        "rolled back alias {} of {} to version {}",
        config.name, args.name, config.function_version
    );
    print_alias(&config);
    Ok(())
}

/// CreateAlias's request.
fn create_request(
    alias: &str,
    version: &str,
    weight: Option<(String, f64)>,
    description: Option<String>,
) -> Value {
    let mut request = Map::new();
    request.insert("Name".into(), json!(alias));
    request.insert("FunctionVersion".into(), json!(version));
    if let Some(description) = description {
        request.insert("Description".into(), json!(description));
    }
    if let Some((extra, share)) = weight {
        request.insert(
            "RoutingConfig".into(),
            json!({ "AdditionalVersionWeights": { extra: share } }),
        );
    }
    Value::Object(request)
}

/// UpdateAlias's request: the version, the routing (none without `--weight`, so the alias no
/// longer splits calls), the description when given, and the `RevisionId` read.
fn update_request(
    current: &AliasConfiguration,
    version: &str,
    weight: Option<(String, f64)>,
    description: Option<String>,
) -> Value {
    let mut request = Map::new();
    request.insert("FunctionVersion".into(), json!(version));
    let weights = match weight {
        Some((extra, share)) => json!({ extra: share }),
        None => json!({}),
    };
    request.insert(
        "RoutingConfig".into(),
        json!({ "AdditionalVersionWeights": weights }),
    );
    if let Some(description) = description {
        request.insert("Description".into(), json!(description));
    }
    if let Some(revision) = &current.revision_id {
        request.insert("RevisionId".into(), json!(revision));
    }
    Value::Object(request)
}

/// `V=W` for each additional version, or `-`.
fn routing_text(alias: &AliasConfiguration) -> String {
    let parts: Vec<String> = alias.weights().map(|(v, w)| format!("{v}={w}")).collect();
    if parts.is_empty() {
        "-".to_owned()
    } else {
        parts.join(",")
    }
}

/// The lines under "created/updated/rolled back alias …".
fn print_alias(alias: &AliasConfiguration) {
    println!("  AliasArn     {}", alias.alias_arn);
    println!("  Version      {}", alias.function_version);
    println!("  Routing      {}", routing_text(alias));
}

/// The table `stoke alias list` prints.
fn render_aliases(aliases: &[AliasConfiguration]) -> String {
    let mut rows = vec![vec![
        "NAME".to_owned(),
        "VERSION".to_owned(),
        "ROUTING".to_owned(),
        "DESCRIPTION".to_owned(),
    ]];
    rows.extend(aliases.iter().map(|a| {
        vec![
            a.name.clone(),
            a.function_version.clone(),
            routing_text(a),
            a.description
                .clone()
                .filter(|d| !d.is_empty())
                .unwrap_or_else(|| "-".to_owned()),
        ]
    }));
    render_table(&rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Test {
        #[command(flatten)]
        alias: AliasArgs,
    }

    #[test]
    fn weights_parse_as_version_equals_share() {
        assert_eq!(parse_weight("2=0.1"), Ok(("2".to_owned(), 0.1)));
        assert_eq!(parse_weight("10=1"), Ok(("10".to_owned(), 1.0)));
        assert!(parse_weight("2").is_err());
        assert!(parse_weight("$LATEST=0.1").is_err());
        assert!(parse_weight("=0.1").is_err());
        assert!(parse_weight("2=lots").is_err());
        assert!(parse_weight("2=NaN").is_err());
    }

    #[test]
    fn set_takes_a_weight_and_a_description() {
        let argv = [
            "alias",
            "set",
            "f",
            "live",
            "1",
            "--weight",
            "2=0.25",
            "--description",
            "prod",
        ];
        let parsed = Test::try_parse_from(argv).expect("parses").alias;
        let AliasCommand::Set {
            name,
            alias,
            version,
            weight,
            description,
        } = parsed.command
        else {
            panic!("not set");
        };
        assert_eq!(
            (name.as_str(), alias.as_str(), version.as_str()),
            ("f", "live", "1")
        );
        assert_eq!(weight, Some(("2".to_owned(), 0.25)));
        assert_eq!(description.as_deref(), Some("prod"));
    }

    #[test]
    fn create_sends_routing_only_with_a_weight() {
        assert_eq!(
            create_request("live", "1", None, None),
            json!({ "Name": "live", "FunctionVersion": "1" })
        );
        assert_eq!(
            create_request("live", "1", Some(("2".into(), 0.1)), Some("d".into())),
            json!({
                "Name": "live",
                "FunctionVersion": "1",
                "Description": "d",
                "RoutingConfig": { "AdditionalVersionWeights": { "2": 0.1 } },
            })
        );
    }

    #[test]
    fn update_clears_routing_without_a_weight_and_sends_the_revision() {
        let current = AliasConfiguration {
            name: "live".into(),
            function_version: "1".into(),
            revision_id: Some("rev-1".into()),
            ..Default::default()
        };
        assert_eq!(
            update_request(&current, "2", None, None),
            json!({
                "FunctionVersion": "2",
                "RoutingConfig": { "AdditionalVersionWeights": {} },
                "RevisionId": "rev-1",
            })
        );
        assert_eq!(
            update_request(&current, "2", Some(("3".into(), 0.5)), Some("x".into())),
            json!({
                "FunctionVersion": "2",
                "RoutingConfig": { "AdditionalVersionWeights": { "3": 0.5 } },
                "Description": "x",
                "RevisionId": "rev-1",
            })
        );
    }

    #[test]
    fn table_shows_routing_and_dashes() {
        let aliases = [
            AliasConfiguration {
                name: "live".into(),
                function_version: "2".into(),
                description: Some("production".into()),
                routing_config: Some(stoke_client::RoutingConfig {
                    additional_version_weights: [("3".to_owned(), 0.1)].into(),
                }),
                ..Default::default()
            },
            AliasConfiguration {
                name: "edge".into(),
                function_version: "$LATEST".into(),
                description: Some(String::new()),
                ..Default::default()
            },
        ];
        assert_eq!(
            render_aliases(&aliases),
            "NAME  VERSION  ROUTING  DESCRIPTION\n\
             live  2        3=0.1    production\n\
             edge  $LATEST  -        -\n"
        );
    }
}
