//! The function operations: CreateFunction, GetFunction, GetFunctionConfiguration,
//! ListFunctions, UpdateFunctionCode, UpdateFunctionConfiguration, DeleteFunction.
//!
//! Each handler decodes the request, calls the control plane, and shapes the answer; no
//! decisions are taken here.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::{Value, json};
use stoke_core::ConfigInput;
use stoke_core::LambdaError;
use stoke_core::function::limits;
use stoke_core::validate::Violations;
use stoke_engine::CreateFunction;

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, LambdaJson};
use crate::wire::{self, CreateFunctionIn, UpdateCodeIn, UpdateConfigurationIn};

type Result<T, E = ApiError> = std::result::Result<T, E>;

fn decode_zip(b64: &str) -> Result<Vec<u8>> {
    // A zip over the limit is refused before it is decoded (base64 is 4/3 of the bytes).
    if b64.len() as u64 > limits::MAX_ZIP_BYTES.div_ceil(3) * 4 + 4 {
        return Err(too_large().into());
    }
    base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .map_err(|_| {
            LambdaError::InvalidRequestContent(
                "Could not parse request body into json: Code.ZipFile is not valid base64".into(),
            )
            .into()
        })
}

fn too_large() -> LambdaError {
    LambdaError::RequestEntityTooLarge(format!(
        "Zipped size must be smaller than {} bytes",
        limits::MAX_ZIP_BYTES
    ))
}

fn no_s3(member: &str) -> ApiError {
    LambdaError::InvalidParameterValue(format!(
        "Stoke does not read code from S3 or from images ({member}); send the zip in ZipFile."
    ))
    .into()
}

/// `http://HOST` of this request, for URLs that point back at this server.
pub(crate) fn base_url(headers: &HeaderMap) -> String {
    let host = headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    let scheme = headers
        .get("x-forwarded-proto")
        .and_then(|h| h.to_str().ok())
        .filter(|p| *p == "https")
        .unwrap_or("http");
    format!("{scheme}://{host}")
}

pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `POST /2015-03-31/functions`
pub async fn create(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    LambdaJson(body): LambdaJson<CreateFunctionIn>,
) -> Result<Response> {
    let mut v = Violations::new();
    v.not_null("functionName", body.function_name.as_ref());
    v.not_null("code", body.code.as_ref());
    v.into_result()?;
    if let Some(p) = body.package_type.as_deref()
        && p != "Zip"
    {
        return Err(LambdaError::InvalidParameterValue(format!(
            "Stoke runs Zip packages only; PackageType {p} is not supported."
        ))
        .into());
    }
    let code = body.code.unwrap_or_default();
    if code.s3_bucket.is_some() || code.s3_key.is_some() {
        return Err(no_s3("S3Bucket"));
    }
    if code.image_uri.is_some() {
        return Err(no_s3("ImageUri"));
    }
    let config = ConfigInput {
        runtime: body.runtime,
        handler: body.handler,
        role: body.role,
        memory_size: body.memory_size,
        timeout: body.timeout,
        description: body.description,
        environment: body.environment.map(|e| e.variables.unwrap_or_default()),
        architectures: body.architectures,
        ephemeral_storage: body.ephemeral_storage.and_then(|e| e.size),
        layers: body.layers,
    };
    // The model's checks come first, before the zip is looked at.
    let mut v = Violations::new();
    config.check(&mut v);
    v.into_result()?;
    let Some(zip_b64) = code.zip_file else {
        return Err(LambdaError::InvalidParameterValue(
            "Please provide a source for function code (Code.ZipFile).".into(),
        )
        .into());
    };
    let zip = decode_zip(&zip_b64)?;
    let f = app
        .control
        .create_function(
            &caller.account,
            CreateFunction {
                function_name: body.function_name.unwrap_or_default(),
                config,
                zip,
                tags: body.tags.unwrap_or_default(),
                publish: body.publish == Some(true),
            },
        )
        .await?;
    // With `Publish`, the answer is version 1 (`Version: "1"`) under the function's
    // unqualified ARN, as measured on AWS (UpdateFunctionCode's publish answers the new
    // version under its qualified ARN).
    let region = app.control.region();
    let mut out = wire::configuration(&f, region);
    if let Some(o) = out.as_object_mut() {
        o.insert("FunctionArn".into(), json!(f.arn(region)));
    }
    Ok((StatusCode::CREATED, axum::Json(out)).into_response())
}

#[derive(Debug, serde::Deserialize)]
pub struct QualifierQuery {
    #[serde(rename = "Qualifier")]
    pub(crate) qualifier: Option<String>,
}

/// `GET /2015-03-31/functions/{name}`
pub async fn get(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    Query(q): Query<QualifierQuery>,
    headers: HeaderMap,
) -> Result<Response> {
    let f = app
        .control
        .get_function(&caller.account, &name, q.qualifier.as_deref())
        .await?;
    let location = app.presigner.url(
        &base_url(&headers),
        &f.code.sha256_hex,
        &f.account,
        unix_now(),
    );
    let mut out = json!({
        "Configuration": qualified_configuration(&f, &name, q.qualifier.as_deref(), app.control.region()),
        "Code": { "RepositoryType": "S3", "Location": location },
    });
    if let Some(o) = out.as_object_mut() {
        if !f.tags.is_empty() {
            o.insert("Tags".into(), json!(f.tags));
        }
        // The function's own (a version's record keeps a copy from when it was published).
        if let Some(r) = f.reserved_concurrency.filter(|_| f.is_latest()) {
            o.insert(
                "Concurrency".into(),
                json!({ "ReservedConcurrentExecutions": r }),
            );
        }
    }
    Ok(axum::Json(out).into_response())
}

/// `GET /2015-03-31/functions/{name}/configuration`
pub async fn get_configuration(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    Query(q): Query<QualifierQuery>,
) -> Result<Response> {
    let f = app
        .control
        .get_function_as(
            &caller.account,
            &name,
            q.qualifier.as_deref(),
            "lambda:GetFunctionConfiguration",
        )
        .await?;
    Ok(axum::Json(qualified_configuration(
        &f,
        &name,
        q.qualifier.as_deref(),
        app.control.region(),
    ))
    .into_response())
}

/// The configuration a qualified read answers: through an alias, the version it points to
/// under the alias's ARN; `$LATEST` named explicitly under `…:$LATEST`, as Lambda answers them.
pub(crate) fn qualified_configuration(
    f: &stoke_core::Function,
    name: &str,
    qualifier: Option<&str>,
    region: &str,
) -> serde_json::Value {
    let mut v = wire::configuration(f, region);
    let from_name = stoke_core::FunctionRef::parse(
        "functionName",
        name,
        stoke_core::validate::patterns::NAMESPACED_FUNCTION_NAME,
        170,
    )
    .ok()
    .and_then(|r| r.qualifier);
    // An alias, or `$LATEST` named explicitly, shows in the ARN; a version's ARN has its number.
    let shown = qualifier
        .or(from_name.as_deref())
        .filter(|q| !q.bytes().all(|b| b.is_ascii_digit()));
    if let (Some(alias), Some(o)) = (shown, v.as_object_mut()) {
        o.insert(
            "FunctionArn".into(),
            json!(format!("{}:{alias}", f.arn(region))),
        );
    }
    v
}

/// `GET /2015-03-31/functions/`
pub async fn list(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response> {
    let max_items = wire::capped_max_items(&q)?;
    let function_version = q.get("FunctionVersion").map(String::as_str);
    let page = app
        .control
        .list_functions(
            &caller.account,
            function_version,
            q.get("Marker").map(String::as_str),
            max_items,
        )
        .await?;
    let region = app.control.region();
    let functions: Vec<_> = page
        .functions
        .iter()
        .map(|f| {
            // With `FunctionVersion=ALL` every item has its qualified ARN, `$LATEST` too.
            let shown = (function_version.is_some() && f.is_latest()).then_some(stoke_core::LATEST);
            wire::list_item(qualified_configuration(f, f.name.as_str(), shown, region))
        })
        .collect();
    let mut out = json!({ "Functions": functions });
    if let (Some(m), Some(o)) = (page.next_marker, out.as_object_mut()) {
        o.insert("NextMarker".into(), json!(m));
    }
    Ok(axum::Json(out).into_response())
}

/// `PUT /2015-03-31/functions/{name}/code`
pub async fn update_code(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    LambdaJson(body): LambdaJson<UpdateCodeIn>,
) -> Result<Response> {
    if body.s3_bucket.is_some() {
        return Err(no_s3("S3Bucket"));
    }
    if body.image_uri.is_some() {
        return Err(no_s3("ImageUri"));
    }
    if let Some(a) = &body.architectures {
        let mut v = Violations::new();
        let input = ConfigInput {
            architectures: Some(a.clone()),
            ..Default::default()
        };
        input.check(&mut v);
        v.into_result()?;
    }
    let Some(zip_b64) = body.zip_file else {
        return Err(LambdaError::InvalidParameterValue(
            "Please provide a source for function code (ZipFile).".into(),
        )
        .into());
    };
    let zip = decode_zip(&zip_b64)?;
    if body.dry_run == Some(true) {
        // DryRun checks the request and changes nothing.
        let f = app
            .control
            .get_function(&caller.account, &name, None)
            .await?;
        return Ok(axum::Json(wire::configuration(&f, app.control.region())).into_response());
    }
    let f = app
        .control
        .update_code(
            &caller.account,
            &name,
            zip,
            body.revision_id.as_deref(),
            body.publish == Some(true),
        )
        .await?;
    Ok(axum::Json(wire::configuration(&f, app.control.region())).into_response())
}

/// `PUT /2015-03-31/functions/{name}/configuration`
pub async fn update_configuration(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    LambdaJson(body): LambdaJson<UpdateConfigurationIn>,
) -> Result<Response> {
    let f = app
        .control
        .update_configuration(
            &caller.account,
            &name,
            body.config_input(),
            body.revision_id.as_deref(),
        )
        .await?;
    Ok(axum::Json(wire::configuration(&f, app.control.region())).into_response())
}

/// `DELETE /2015-03-31/functions/{name}`
pub async fn delete(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    Query(q): Query<QualifierQuery>,
) -> Result<Response> {
    app.control
        .delete_function(&caller.account, &name, q.qualifier.as_deref())
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /2016-08-19/account-settings/`
pub async fn account_settings(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Response> {
    Ok(axum::Json(settings_of(&app, &caller.account).await?).into_response())
}

/// GetAccountSettings' answer for `account`: its own limits and usage.
pub(crate) async fn settings_of(app: &AppState, account: &stoke_core::AccountId) -> Result<Value> {
    let usage = app.control.account_usage(account).await?;
    let reserved = app
        .control
        .reserved_concurrency_total(account, None)
        .await?;
    let concurrency = app.control.account_concurrency(account);
    let unreserved = i64::from(concurrency).saturating_sub(reserved);
    Ok(json!({
        "AccountLimit": {
            "TotalCodeSize": limits::TOTAL_CODE_BYTES,
            "CodeSizeUnzipped": limits::MAX_UNZIPPED_BYTES,
            "CodeSizeZipped": limits::MAX_ZIP_BYTES,
            "ConcurrentExecutions": concurrency,
            "UnreservedConcurrentExecutions": unreserved,
        },
        "AccountUsage": {
            "TotalCodeSize": usage.total_code_size,
            "FunctionCount": usage.function_count,
        },
    }))
}

/// `GET /code/{sha256}`: the zip behind a presigned `Code.Location`; no SigV4.
pub async fn code_blob(
    State(app): State<AppState>,
    Path(sha): Path<String>,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
) -> Result<Response> {
    app.presigner
        .check(&sha, query.as_deref().unwrap_or(""), unix_now())?;
    let zip =
        app.control.code_zip(&sha).await?.ok_or_else(|| {
            LambdaError::ResourceNotFound("The specified key does not exist.".into())
        })?;
    Ok(([(http::header::CONTENT_TYPE, "application/zip")], zip).into_response())
}
