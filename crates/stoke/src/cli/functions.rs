//! `stoke functions list|get|delete`: read and remove functions.

use anyhow::{Context as _, bail};
use futures_util::{StreamExt as _, TryStreamExt as _, stream};

use super::ClientArgs;
use stoke_client::{FunctionConfiguration, LambdaClient};

/// Functions asked for per ListFunctions page.
const PAGE_SIZE: u32 = 50;
/// GetFunction calls in flight when filling in states ListFunctions leaves out.
const STATE_LOOKUPS: usize = 4;

/// Flags and subcommands of `stoke functions`.
#[derive(Debug, clap::Args)]
pub struct FunctionsArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    #[command(subcommand)]
    pub command: FunctionsCommand,
}

/// What `stoke functions` does.
#[derive(Debug, clap::Subcommand)]
pub enum FunctionsCommand {
    /// List every function: name, runtime, memory, timeout, state, last modified.
    List,
    /// Print a function's configuration as JSON.
    Get {
        /// Function name or ARN.
        name: String,
    },
    /// Delete a function.
    Delete {
        /// Function name or ARN.
        name: String,
    },
}

/// Runs `stoke functions …`.
pub async fn run(args: FunctionsArgs) -> anyhow::Result<()> {
    let client = args.client.client()?;
    match args.command {
        FunctionsCommand::List => {
            let functions = list_all(&client).await?;
            if functions.is_empty() {
                eprintln!("no functions");
            } else {
                print!("{}", render_table(&functions));
            }
        }
        FunctionsCommand::Get { name } => {
            let config = client
                .get_function_configuration(&name)
                .await
                .with_context(|| format!("cannot get function {name}"))?;
            println!("{}", serde_json::to_string_pretty(&config)?);
        }
        FunctionsCommand::Delete { name } => {
            client
                .delete_function(&name)
                .await
                .with_context(|| format!("cannot delete function {name}"))?;
            eprintln!("deleted function {name}");
        }
    }
    Ok(())
}

/// Every function, all pages; the `State` that ListFunctions leaves out (as AWS's does) is read
/// with GetFunction.
async fn list_all(client: &LambdaClient) -> anyhow::Result<Vec<FunctionConfiguration>> {
    let mut functions = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let page = client
            .list_functions(marker.as_deref(), Some(PAGE_SIZE))
            .await
            .context("cannot list functions")?;
        functions.extend(page.functions);
        match page.next_marker.filter(|m| !m.is_empty()) {
            Some(next) if Some(&next) == marker.as_ref() => {
                bail!("the server returned the same NextMarker twice ({next})")
            }
            Some(next) => marker = Some(next),
            None => break,
        }
    }
    stream::iter(functions.into_iter().map(|f| async move {
        if f.state.is_some() {
            return Ok(f);
        }
        match client.get_function(&f.function_name).await {
            Ok(found) => Ok(FunctionConfiguration {
                state: found.configuration.state,
                ..f
            }),
            // Deleted between the list and the lookup: show it without a state.
            Err(e) if e.api().is_some_and(|a| a.is_not_found()) => Ok(f),
            Err(e) => Err(e),
        }
    }))
    .buffered(STATE_LOOKUPS)
    .try_collect()
    .await
    .context("cannot read function states")
}

/// The table `stoke functions list` prints, columns padded to their widest cell.
fn render_table(functions: &[FunctionConfiguration]) -> String {
    let dash = || "-".to_owned();
    let mut rows = vec![[
        "NAME".to_owned(),
        "RUNTIME".to_owned(),
        "MEMORY".to_owned(),
        "TIMEOUT".to_owned(),
        "STATE".to_owned(),
        "LAST MODIFIED".to_owned(),
    ]];
    rows.extend(functions.iter().map(|f| {
        [
            f.function_name.clone(),
            f.runtime.clone().unwrap_or_else(dash),
            f.memory_size.map_or_else(dash, |m| format!("{m} MB")),
            f.timeout.map_or_else(dash, |t| format!("{t} s")),
            f.state.clone().unwrap_or_else(dash),
            f.last_modified.clone().unwrap_or_else(dash),
        ]
    }));
    let mut widths = [0usize; 6];
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in &rows {
        let cells: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
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
    fn table_pads_columns_and_marks_missing_values() {
        let functions = [
            FunctionConfiguration {
                function_name: "hello".into(),
                runtime: Some("wasm".into()),
                memory_size: Some(128),
                timeout: Some(3),
                state: Some("Active".into()),
                last_modified: Some("2024-01-02T03:04:05.000+0000".into()),
                ..Default::default()
            },
            FunctionConfiguration {
                function_name: "a-much-longer-name".into(),
                runtime: Some("python3.12".into()),
                memory_size: Some(1024),
                timeout: Some(900),
                ..Default::default()
            },
        ];
        assert_eq!(
            render_table(&functions),
            "NAME                RUNTIME     MEMORY   TIMEOUT  STATE   LAST MODIFIED\n\
             hello               wasm        128 MB   3 s      Active  2024-01-02T03:04:05.000+0000\n\
             a-much-longer-name  python3.12  1024 MB  900 s    -       -\n"
        );
    }
}
