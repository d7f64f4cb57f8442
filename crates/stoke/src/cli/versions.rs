//! `stoke versions NAME`: a function's versions, `$LATEST` first, as ListVersionsByFunction
//! answers them (every page); `stoke publish NAME`: PublishVersion of `$LATEST`.

use anyhow::Context as _;
use serde_json::{Map, Value, json};

use super::ClientArgs;
use stoke_client::FunctionConfiguration;

/// Flags of `stoke versions`.
#[derive(Debug, clap::Args)]
pub struct VersionsArgs {
    /// Function name or ARN.
    pub name: String,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Flags of `stoke publish`.
#[derive(Debug, clap::Args)]
pub struct PublishArgs {
    /// Function name or ARN.
    pub name: String,
    /// Description of the version [default: the function's].
    #[arg(long)]
    pub description: Option<String>,
    /// Publish only if $LATEST's code has this SHA-256 (base64, as CodeSha256 shows it).
    #[arg(long, value_name = "SHA256")]
    pub code_sha256: Option<String>,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Runs `stoke publish`: publishes `$LATEST` (the server answers the latest version instead when
/// nothing changed since it) and prints the version.
pub async fn publish(args: PublishArgs) -> anyhow::Result<()> {
    let client = args.client.client()?;
    let mut request = Map::new();
    if let Some(description) = &args.description {
        request.insert("Description".into(), json!(description));
    }
    if let Some(sha) = &args.code_sha256 {
        request.insert("CodeSha256".into(), json!(sha));
    }
    let version = client
        .publish_version(&args.name, &Value::Object(request))
        .await
        .with_context(|| format!("cannot publish a version of {}", args.name))?;
    println!(
        "published version {} of {}",
        version.version.as_deref().unwrap_or("-"),
        version.function_name
    );
    println!("  FunctionArn  {}", version.function_arn);
    println!(
        "  CodeSha256   {}",
        version.code_sha256.as_deref().unwrap_or("-")
    );
    Ok(())
}

/// Runs `stoke versions`.
pub async fn run(args: VersionsArgs) -> anyhow::Result<()> {
    let client = args.client.client()?;
    let versions = client
        .list_all_versions(&args.name)
        .await
        .with_context(|| format!("cannot list the versions of {}", args.name))?;
    print!("{}", render_versions(&versions));
    Ok(())
}

/// The table `stoke versions` prints: version, code hash, last modified, description.
fn render_versions(versions: &[FunctionConfiguration]) -> String {
    let dash = || "-".to_owned();
    let mut rows = vec![vec![
        "VERSION".to_owned(),
        "CODE SHA256".to_owned(),
        "LAST MODIFIED".to_owned(),
        "DESCRIPTION".to_owned(),
    ]];
    rows.extend(versions.iter().map(|v| {
        vec![
            v.version.clone().unwrap_or_else(dash),
            v.code_sha256.clone().unwrap_or_else(dash),
            v.last_modified.clone().unwrap_or_else(dash),
            v.description
                .clone()
                .filter(|d| !d.is_empty())
                .unwrap_or_else(dash),
        ]
    }));
    render_table(&rows)
}

/// Rows of cells as text columns, each padded to its widest cell, two spaces apart, without
/// trailing spaces.
pub(crate) fn render_table(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0usize; columns];
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, &width)| format!("{cell:<width$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_lists_latest_then_versions_with_dashes_for_missing_values() {
        let version = |v: &str, sha: &str, description: Option<&str>| FunctionConfiguration {
            function_name: "f".into(),
            version: Some(v.into()),
            code_sha256: Some(sha.into()),
            last_modified: Some("2026-11-26T20:00:00.000+0000".into()),
            description: description.map(str::to_owned),
            ..Default::default()
        };
        let versions = [
            version("$LATEST", "abc=", Some("")),
            version("1", "abc=", Some("first release")),
            version("12", "defg=", None),
        ];
        assert_eq!(
            render_versions(&versions),
            "VERSION  CODE SHA256  LAST MODIFIED                 DESCRIPTION\n\
             $LATEST  abc=         2026-11-26T20:00:00.000+0000  -\n\
             1        abc=         2026-11-26T20:00:00.000+0000  first release\n\
             12       defg=        2026-11-26T20:00:00.000+0000  -\n"
        );
    }
}
