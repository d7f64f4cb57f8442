//! Creating the bench's functions through the API client, each waited for until it is Active.

use anyhow::Context as _;
use base64::Engine as _;
use serde_json::json;
use stoke_client::{DEFAULT_ROLE, LambdaClient};

use crate::guests;

/// A function to create.
#[derive(Debug, Clone, Copy)]
pub struct NewFunction<'a> {
    pub name: &'a str,
    pub runtime: &'a str,
    pub handler: &'a str,
    pub memory_mb: u32,
    pub timeout_s: u32,
    /// The deployment package.
    pub zip: &'a [u8],
}

/// Creates the function and waits until it is Active.
pub async fn create(api: &LambdaClient, function: &NewFunction<'_>) -> anyhow::Result<()> {
    let request = json!({
        "FunctionName": function.name,
        "Runtime": function.runtime,
        "Role": DEFAULT_ROLE,
        "Handler": function.handler,
        "MemorySize": function.memory_mb,
        "Timeout": function.timeout_s,
        "Code": { "ZipFile": base64::engine::general_purpose::STANDARD.encode(function.zip) },
    });
    api.create_function(&request, None)
        .await
        .with_context(|| format!("creating {}", function.name))?;
    stoke_client::wait_ready(api, function.name).await?;
    Ok(())
}

/// Creates a wasm function (128 MB, 3 s) from a zip of [`guests`] and waits until it is Active.
pub async fn create_wasm(api: &LambdaClient, name: &str, zip: &[u8]) -> anyhow::Result<()> {
    create(
        api,
        &NewFunction {
            name,
            runtime: "wasm",
            handler: guests::HANDLER,
            memory_mb: 128,
            timeout_s: 3,
            zip,
        },
    )
    .await
}
