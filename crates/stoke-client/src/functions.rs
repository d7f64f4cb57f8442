//! The function operations of the Lambda API: CreateFunction, GetFunction(Configuration),
//! UpdateFunctionCode/Configuration, ListFunctions, DeleteFunction, and versions
//! (PublishVersion, ListVersionsByFunction).

use reqwest::Method;
use serde_json::Value;

use crate::client::{LambdaClient, all_pages};
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
        self.call(Method::POST, API_PREFIX, Some(request), progress)
            .await
    }

    /// GetFunction: `GET /2015-03-31/functions/{name}`.
    pub async fn get_function(&self, name: &str) -> Result<GetFunctionOutput, ClientError> {
        self.call(Method::GET, &function_path(name, ""), None, None)
            .await
    }

    /// GetFunctionConfiguration: `GET /2015-03-31/functions/{name}/configuration`, as raw JSON.
    pub async fn get_function_configuration(&self, name: &str) -> Result<Value, ClientError> {
        let path = function_path(name, "/configuration");
        self.call(Method::GET, &path, None, None).await
    }

    /// UpdateFunctionCode: `PUT /2015-03-31/functions/{name}/code` with `{"ZipFile": …}`.
    pub async fn update_function_code(
        &self,
        name: &str,
        request: &Value,
        progress: Option<&str>,
    ) -> Result<FunctionConfiguration, ClientError> {
        let path = function_path(name, "/code");
        self.call(Method::PUT, &path, Some(request), progress).await
    }

    /// UpdateFunctionConfiguration: `PUT /2015-03-31/functions/{name}/configuration`.
    pub async fn update_function_configuration(
        &self,
        name: &str,
        request: &Value,
    ) -> Result<FunctionConfiguration, ClientError> {
        let path = function_path(name, "/configuration");
        self.call(Method::PUT, &path, Some(request), None).await
    }

    /// ListFunctions: one page of `GET /2015-03-31/functions/?Marker=&MaxItems=`.
    pub async fn list_functions(
        &self,
        marker: Option<&str>,
        max_items: Option<u32>,
    ) -> Result<ListFunctionsPage, ClientError> {
        let path = list_path(marker, max_items);
        self.call(Method::GET, &path, None, None).await
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
        let path = function_path(name, "/versions");
        self.call(Method::POST, &path, Some(request), None).await
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
        self.call(Method::GET, &path, None, None).await
    }

    /// Every version of a function, all pages of ListVersionsByFunction.
    pub async fn list_all_versions(
        &self,
        name: &str,
    ) -> Result<Vec<FunctionConfiguration>, ClientError> {
        all_pages(|marker| async move {
            let page = self
                .list_versions_by_function(name, marker.as_deref(), Some(LIST_PAGE_SIZE))
                .await?;
            Ok((page.versions, page.next_marker))
        })
        .await
    }
}
