//! `stoke deploy PATH --name N …`: package a folder or a zip, create the function or update its
//! configuration (when flags ask for a change) and then its code, then wait until it is Active and
//! its last update is done, as boto3's `function_active_v2` and `function_updated_v2` waiters do.
//! With `--publish`, the create or the code update also publishes a version (`Publish: true`),
//! and its number is printed.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context as _, bail};
use base64::Engine as _;
use indicatif::HumanBytes;
use serde_json::{Map, Value, json};
use stoke_client::{ApiError, DEFAULT_ROLE, FunctionConfiguration, Settled, wait_until};

use super::ClientArgs;
use super::package::{self, Package};

/// Flags of `stoke deploy`.
#[derive(Debug, clap::Args)]
pub struct DeployArgs {
    /// A folder (zipped on the fly) or a .zip file.
    pub path: PathBuf,
    /// Name of the function to create or update.
    #[arg(long)]
    pub name: String,
    /// Runtime: wasm, provided, provided.al2023, python3.x, nodejs*. Needed to create a
    /// function; on an update it changes the runtime.
    #[arg(long)]
    pub runtime: Option<String>,
    /// Handler; by default the one .wasm file (wasm), bootstrap (provided*),
    /// lambda_function.lambda_handler (python*) or index.handler (nodejs*).
    #[arg(long)]
    pub handler: Option<String>,
    /// Memory in MB (128–10240).
    #[arg(long, value_name = "MB")]
    pub memory: Option<u32>,
    /// Timeout in seconds (1–900).
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<u32>,
    /// An environment variable; repeat for more. On an update, the given set replaces the old one.
    #[arg(long = "env", value_name = "KEY=VALUE", value_parser = parse_env_pair)]
    pub env: Vec<(String, String)>,
    /// Description of the function.
    #[arg(long)]
    pub description: Option<String>,
    /// Execution role ARN (only its form is checked) [default on create: arn:aws:iam::000000000000:role/stoke]
    #[arg(long)]
    pub role: Option<String>,
    /// Publish a version of the new code and configuration (printed as `Version`); when
    /// nothing changed since the latest version, that version is printed.
    #[arg(long)]
    pub publish: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Parses `KEY=VALUE` (the value may contain `=` or be empty).
fn parse_env_pair(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("expected KEY=VALUE, got {text:?}")),
    }
}

/// Runs `stoke deploy`.
pub async fn run(args: DeployArgs) -> anyhow::Result<()> {
    let package = package::load(&args.path)?;
    eprintln!(
        "packaged {}: {} files, {}",
        args.path.display(),
        package.files.len(),
        HumanBytes(package.zip.len() as u64)
    );
    let client = args.client.client()?;
    let zip_file = base64::engine::general_purpose::STANDARD.encode(&package.zip);

    let existing = match client.get_function(&args.name).await {
        Ok(found) => Some(found.configuration),
        Err(e) if e.api().is_some_and(ApiError::is_not_found) => None,
        Err(e) => return Err(e).context(format!("cannot look up function {}", args.name)),
    };

    let upload = format!("uploading {}", args.name);
    let (verb, answer) = match existing {
        None => {
            let request = create_request(&args, &package, zip_file)?;
            let created = client
                .create_function(&request, Some(upload.as_str()))
                .await
                .with_context(|| format!("cannot create function {}", args.name))?;
            ("created", created)
        }
        Some(current) => {
            // Worked out before anything is sent, so a bad flag fails before anything changes.
            let update = config_update(&args, &current, &package)?;
            // Lambda refuses a change while another one is in progress.
            if current.last_update_status.as_deref() == Some("InProgress") {
                wait_until(&client, &args.name, Settled::UpdateDone).await?;
            }
            // The configuration goes first: the server checks it on the spot, so a refused value
            // leaves the function as it was. Its asynchronous checks may still fail (a handler
            // that only the new code holds); the code update that follows is checked with it.
            if let Some(update) = update {
                client
                    .update_function_configuration(&args.name, &update)
                    .await
                    .with_context(|| format!("cannot update the configuration of {}", args.name))?;
                wait_until(&client, &args.name, Settled::UpdateDone).await?;
            }
            let updated = client
                .update_function_code(
                    &args.name,
                    &code_request(zip_file, args.publish),
                    Some(upload.as_str()),
                )
                .await
                .with_context(|| format!("cannot update the code of {}", args.name))?;
            ("updated", updated)
        }
    };

    let config = wait_until(&client, &args.name, Settled::Ready).await?;
    println!("{verb} function {}", config.function_name);
    println!("  FunctionArn  {}", config.function_arn);
    println!(
        "  CodeSha256   {}",
        config.code_sha256.as_deref().unwrap_or("-")
    );
    println!("  State        {}", config.state.as_deref().unwrap_or("-"));
    if args.publish {
        // The answer to a create or update with `Publish` is the published version's.
        println!(
            "  Version      {}",
            answer.version.as_deref().unwrap_or("-")
        );
    }
    Ok(())
}

/// UpdateFunctionCode's request.
fn code_request(zip_file: String, publish: bool) -> Value {
    if publish {
        json!({ "ZipFile": zip_file, "Publish": true })
    } else {
        json!({ "ZipFile": zip_file })
    }
}

/// The CreateFunction request for `args`.
fn create_request(args: &DeployArgs, package: &Package, zip_file: String) -> anyhow::Result<Value> {
    let Some(runtime) = &args.runtime else {
        bail!(
            "function {} does not exist yet; creating it needs --runtime",
            args.name
        );
    };
    let handler = match &args.handler {
        Some(handler) => Some(handler.clone()),
        None => package::default_handler(runtime, &package.files)?,
    };
    let mut request = Map::new();
    request.insert("FunctionName".into(), json!(args.name));
    request.insert("Runtime".into(), json!(runtime));
    request.insert(
        "Role".into(),
        json!(args.role.as_deref().unwrap_or(DEFAULT_ROLE)),
    );
    if let Some(handler) = handler {
        request.insert("Handler".into(), json!(handler));
    }
    request.insert("Code".into(), json!({ "ZipFile": zip_file }));
    insert_common(&mut request, args);
    if args.publish {
        request.insert("Publish".into(), json!(true));
    }
    Ok(Value::Object(request))
}

/// The UpdateFunctionConfiguration request `args` ask for on top of `current`, if any.
///
/// The runtime is sent when it differs from the current one; the handler when given, or when the
/// runtime changes (its default for the new runtime), or for wasm when the current module is not
/// in the new package and the package holds exactly one.
fn config_update(
    args: &DeployArgs,
    current: &FunctionConfiguration,
    package: &Package,
) -> anyhow::Result<Option<Value>> {
    let mut request = Map::new();
    let runtime_change = args
        .runtime
        .as_ref()
        .filter(|r| current.runtime.as_ref() != Some(*r));
    if let Some(runtime) = runtime_change {
        request.insert("Runtime".into(), json!(runtime));
    }
    let runtime = args.runtime.as_ref().or(current.runtime.as_ref());
    let handler = match (&args.handler, runtime) {
        (Some(handler), _) => Some(handler.clone()),
        (None, Some(runtime)) if runtime_change.is_some() => {
            package::default_handler(runtime, &package.files)?
        }
        (None, Some(runtime)) if runtime == "wasm" => {
            let present = current
                .handler
                .as_ref()
                .is_some_and(|h| package.files.contains(h));
            if present {
                None
            } else {
                package::default_handler(runtime, &package.files)?
            }
        }
        _ => None,
    };
    if let Some(handler) = handler.filter(|h| current.handler.as_ref() != Some(h)) {
        request.insert("Handler".into(), json!(handler));
    }
    if let Some(role) = &args.role {
        request.insert("Role".into(), json!(role));
    }
    insert_common(&mut request, args);
    Ok((!request.is_empty()).then_some(Value::Object(request)))
}

/// The fields create and update share: memory, timeout, environment, description.
fn insert_common(request: &mut Map<String, Value>, args: &DeployArgs) {
    if let Some(memory) = args.memory {
        request.insert("MemorySize".into(), json!(memory));
    }
    if let Some(timeout) = args.timeout {
        request.insert("Timeout".into(), json!(timeout));
    }
    if !args.env.is_empty() {
        let variables: BTreeMap<&str, &str> = args
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        request.insert("Environment".into(), json!({ "Variables": variables }));
    }
    if let Some(description) = &args.description {
        request.insert("Description".into(), json!(description));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Test {
        #[command(flatten)]
        deploy: DeployArgs,
    }

    fn args(line: &[&str]) -> DeployArgs {
        let argv = std::iter::once("deploy").chain(line.iter().copied());
        Test::try_parse_from(argv).expect("parses").deploy
    }

    fn package(files: &[&str]) -> Package {
        Package {
            zip: Vec::new(),
            files: files.iter().map(|f| (*f).to_owned()).collect(),
        }
    }

    fn current(runtime: &str, handler: &str) -> FunctionConfiguration {
        FunctionConfiguration {
            function_name: "f".into(),
            runtime: Some(runtime.into()),
            handler: Some(handler.into()),
            ..Default::default()
        }
    }

    #[test]
    fn env_pairs_split_at_the_first_equals_sign() {
        assert_eq!(
            parse_env_pair("A=b=c"),
            Ok(("A".to_owned(), "b=c".to_owned()))
        );
        assert_eq!(parse_env_pair("A="), Ok(("A".to_owned(), String::new())));
        assert!(parse_env_pair("=x").is_err());
        assert!(parse_env_pair("novalue").is_err());
    }

    #[test]
    fn create_request_fills_defaults_and_flags() {
        let a = args(&[
            "dir",
            "--name",
            "hello",
            "--runtime",
            "wasm",
            "--memory",
            "256",
            "--timeout",
            "5",
            "--env",
            "B=2",
            "--env",
            "A=1",
            "--description",
            "hi",
        ]);
        let request =
            create_request(&a, &package(&["hello.wasm", "x.txt"]), "WklQ".into()).expect("ok");
        assert_eq!(
            request,
            json!({
                "FunctionName": "hello",
                "Runtime": "wasm",
                "Role": DEFAULT_ROLE,
                "Handler": "hello.wasm",
                "Code": { "ZipFile": "WklQ" },
                "MemorySize": 256,
                "Timeout": 5,
                "Environment": { "Variables": { "A": "1", "B": "2" } },
                "Description": "hi",
            })
        );
    }

    #[test]
    fn publish_is_sent_on_create_and_on_the_code_update() {
        let a = args(&["dir", "--name", "f", "--runtime", "wasm", "--publish"]);
        let request = create_request(&a, &package(&["f.wasm"]), "WklQ".into()).expect("ok");
        assert_eq!(request["Publish"], json!(true));
        let a = args(&["dir", "--name", "f", "--runtime", "wasm"]);
        let request = create_request(&a, &package(&["f.wasm"]), "WklQ".into()).expect("ok");
        assert!(request.get("Publish").is_none());
        assert_eq!(
            code_request("WklQ".into(), true),
            json!({ "ZipFile": "WklQ", "Publish": true })
        );
        assert_eq!(
            code_request("WklQ".into(), false),
            json!({ "ZipFile": "WklQ" })
        );
    }

    #[test]
    fn create_needs_a_runtime_and_leaves_unknown_runtimes_to_the_server() {
        let a = args(&["dir", "--name", "f"]);
        assert!(create_request(&a, &package(&[]), String::new()).is_err());
        let a = args(&["dir", "--name", "f", "--runtime", "cobol"]);
        let request = create_request(&a, &package(&[]), String::new()).expect("ok");
        assert!(request.get("Handler").is_none());
    }

    #[test]
    fn update_without_config_flags_changes_only_the_code() {
        let a = args(&["dir", "--name", "f", "--runtime", "python3.12"]);
        let c = current("python3.12", "app.handler");
        assert_eq!(
            config_update(&a, &c, &package(&["app.py"])).expect("ok"),
            None
        );
    }

    #[test]
    fn update_sends_the_flags_given_and_a_new_runtime_with_its_default_handler() {
        let a = args(&[
            "dir",
            "--name",
            "f",
            "--runtime",
            "nodejs20.x",
            "--memory",
            "512",
        ]);
        let c = current("python3.12", "app.handler");
        assert_eq!(
            config_update(&a, &c, &package(&["index.js"])).expect("ok"),
            Some(json!({ "Runtime": "nodejs20.x", "Handler": "index.handler", "MemorySize": 512 }))
        );
    }

    #[test]
    fn wasm_update_follows_a_renamed_module() {
        let a = args(&["dir", "--name", "f"]);
        let c = current("wasm", "old.wasm");
        assert_eq!(
            config_update(&a, &c, &package(&["new.wasm"])).expect("ok"),
            Some(json!({ "Handler": "new.wasm" }))
        );
        assert_eq!(
            config_update(&a, &c, &package(&["old.wasm", "other.wasm"])).expect("ok"),
            None
        );
    }
}
