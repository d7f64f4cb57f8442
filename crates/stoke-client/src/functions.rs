//! The function operations of the Lambda API: CreateFunction, GetFunction(Configuration),
//! UpdateFunctionCode/Configuration, ListFunctions, DeleteFunction, and versions
//! (PublishVersion, ListVersionsByFunction).

use reqwest::Method;
use serde_json::Value;

use crate::client::{LambdaClient, decode};
use crate::error::ClientError;
use crate::model::{FunctionConfiguration, GetFunctionOutput, ListFunctionsPage, ListVersionsPage};
use crate::paths::{API_PREFIX, function_path, list_path, with_query};

/// The role sent when none is given: Stoke has no IAM, but the API checks that a role looks like
/// one.
pub const DEFAULT_ROLE: &str = "arn:aws:iam::000000000000:role/stoke";
/// Items asked for per page of ListVersionsByFunction and ListAliases (Lambda's most).
pub(crate) const LIST_PAGE_SIZE: u32 = 50;

impl LambdaClient {
    /// CreateFunction: `POST /2015-03-31/functions` with the request JSON; answers 201. With
    /// `progress`, a bar with that message shows the upload.
    pub async fn create_function(
        &self,
        request: &Value,
        progress: Option<&str>,
    ) -> Result<FunctionConfiguration, ClientError> {
        let body = request.to_string().into_bytes();
        let answer = self
            .send(Method::POST, API_PREFIX, Some(body), progress)
            .await?;
        decode(&answer)
    }

    /// GetFunction: `GET /2015-03-31/functions/{name}`.
    pub async fn get_function(&self, name: &str) -> Result<GetFunctionOutput, ClientError> {
        let answer = self
            .send(Method::GET, &function_path(name, ""), None, None)
            .await?;
        decode(&answer)
    }

    /// GetFunctionConfiguration: `GET /2015-03-31/functions/{name}/configuration`, as raw JSON.
    pub async fn get_function_configuration(&self, name: &str) -> Result<Value, ClientError> {
        let answer = self
            .send(
                Method::GET,
                &function_path(name, "/configuration"),
                None,
                None,
            )
            .await?;
        decode(&answer)
    }

    /// UpdateFunctionCode: `PUT /2015-03-31/functions/{name}/code` with `{"ZipFile": …}`.
    pub async fn update_function_code(
        &self,
        name: &str,
        request: &Value,
        progress: Option<&str>,
    ) -> Result<FunctionConfiguration, ClientError> {
        let body = request.to_string().into_bytes();
        let answer = self
            .send(
                Method::PUT,
                &function_path(name, "/code"),
                Some(body),
                progress,
            )
            .await?;
        decode(&answer)
    }

    /// UpdateFunctionConfiguration: `PUT /2015-03-31/functions/{name}/configuration`.
    pub async fn update_function_configuration(
        &self,
        name: &str,
        request: &Value,
    ) -> Result<FunctionConfiguration, ClientError> {
        let body = request.to_string().into_bytes();
        let answer = self
            .send(
                Method::PUT,
                &function_path(name, "/configuration"),
                Some(body),
                None,
            )
            .await?;
        decode(&answer)
    }

    /// ListFunctions: one page of `GET /2015-03-31/functions/?Marker=&MaxItems=`.
    pub async fn list_functions(
        &self,
        marker: Option<&str>,
        max_items: Option<u32>,
    ) -> Result<ListFunctionsPage, ClientError> {
        let answer = self
            .send(Method::GET, &list_path(marker, max_items), None, None)
            .await?;
        decode(&answer)
    }

    /// DeleteFunction: `DELETE /2015-03-31/functions/{name}`; answers 204.
    pub async fn delete_function(&self, name: &str) -> Result<(), ClientError> {
        self.send(Method::DELETE, &function_path(name, ""), None, None)
            .await?;
        Ok(())
    }

    /// PublishVersion: `POST /2015-03-31/functions/{name}/versions` with `{"CodeSha256",
    /// "Description", "RevisionId"}` (each optional); answers 201 with the version's
    /// configuration (or the latest version's, when nothing changed since it).
    pub async fn publish_version(
        &self,
        name: &str,
        request: &Value,
    ) -> Result<FunctionConfiguration, ClientError> {
        let body = request.to_string().into_bytes();
        let answer = self
            .send(
                Method::POST,
                &function_path(name, "/versions"),
                Some(body),
                None,
            )
            .await?;
        decode(&answer)
    }

    /// ListVersionsByFunction: one page of `GET /2015-03-31/functions/{name}/versions`.
    pub async fn list_versions_by_function(
        &self,
        name: &str,
        marker: Option<&str>,
        max_items: Option<u32>,
    ) -> Result<ListVersionsPage, ClientError> {
        let path = with_query(
            function_path(name, "/versions"),
            &[
                ("Marker", marker),
                ("MaxItems", max_items.map(|m| m.to_string()).as_deref()),
            ],
        );
        let answer = self.send(Method::GET, &path, None, None).await?;
        decode(&answer)
    }

    /// Every version of a function, all pages of ListVersionsByFunction.
    pub async fn list_all_versions(
        &self,
        name: &str,
    ) -> Result<Vec<FunctionConfiguration>, ClientError> {
        let mut out = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let page = self
                .list_versions_by_function(name, marker.as_deref(), Some(LIST_PAGE_SIZE))
                .await?;
            out.extend(page.versions);
            match page.next_marker.filter(|m| !m.is_empty()) {
                Some(next) if Some(&next) != marker.as_ref() => marker = Some(next),
                _ => return Ok(out),
            }
        }
    }
}
