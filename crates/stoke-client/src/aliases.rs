//! The alias operations of the Lambda API (CreateAlias, UpdateAlias, GetAlias, DeleteAlias,
//! ListAliases) and Stoke's own rollback of an alias.

use reqwest::Method;
use serde_json::Value;

use crate::client::{LambdaClient, all_pages};
use crate::error::ClientError;
use crate::functions::LIST_PAGE_SIZE;
use crate::model::{AliasConfiguration, ListAliasesPage};
use crate::paths::{STOKE_PREFIX, alias_path, function_path, segment, with_query};

impl LambdaClient {
    /// CreateAlias: `POST /2015-03-31/functions/{name}/aliases` with `{"Name",
    /// "FunctionVersion", "Description", "RoutingConfig"}`; answers 201.
    pub async fn create_alias(
        &self,
        name: &str,
        request: &Value,
    ) -> Result<AliasConfiguration, ClientError> {
        let path = function_path(name, "/aliases");
        self.call(Method::POST, &path, Some(request), None).await
    }

    /// UpdateAlias: `PUT /2015-03-31/functions/{name}/aliases/{alias}` with the fields to change
    /// (and `RevisionId`, to refuse the change if the alias changed since it was read).
    pub async fn update_alias(
        &self,
        name: &str,
        alias: &str,
        request: &Value,
    ) -> Result<AliasConfiguration, ClientError> {
        let path = alias_path(name, alias);
        self.call(Method::PUT, &path, Some(request), None).await
    }

    /// GetAlias: `GET /2015-03-31/functions/{name}/aliases/{alias}`.
    pub async fn get_alias(
        &self,
        name: &str,
        alias: &str,
    ) -> Result<AliasConfiguration, ClientError> {
        let path = alias_path(name, alias);
        self.call(Method::GET, &path, None, None).await
    }

    /// DeleteAlias: `DELETE /2015-03-31/functions/{name}/aliases/{alias}`; answers 204.
    pub async fn delete_alias(&self, name: &str, alias: &str) -> Result<(), ClientError> {
        self.send(Method::DELETE, &alias_path(name, alias), None, None)
            .await?;
        Ok(())
    }

    /// ListAliases: one page of `GET /2015-03-31/functions/{name}/aliases`, optionally only the
    /// aliases of one version.
    pub async fn list_aliases(
        &self,
        name: &str,
        function_version: Option<&str>,
        marker: Option<&str>,
        max_items: Option<u32>,
    ) -> Result<ListAliasesPage, ClientError> {
        let path = with_query(
            function_path(name, "/aliases"),
            &[
                ("FunctionVersion", function_version),
                ("Marker", marker),
                ("MaxItems", max_items.map(|m| m.to_string()).as_deref()),
            ],
        );
        self.call(Method::GET, &path, None, None).await
    }

    /// Every alias of a function, all pages of ListAliases.
    pub async fn list_all_aliases(
        &self,
        name: &str,
    ) -> Result<Vec<AliasConfiguration>, ClientError> {
        all_pages(|marker| async move {
            let page = self
                .list_aliases(name, None, marker.as_deref(), Some(LIST_PAGE_SIZE))
                .await?;
            Ok((page.aliases, page.next_marker))
        })
        .await
    }

    /// Stoke's rollback of an alias: `POST
    /// /stoke/2026-11-01/functions/{name}/aliases/{alias}/rollback` (empty body) moves the alias
    /// back to its previous target and answers its configuration; `ResourceConflictException`
    /// when it has none.
    pub async fn rollback_alias(
        &self,
        name: &str,
        alias: &str,
    ) -> Result<AliasConfiguration, ClientError> {
        let path = format!(
            "{STOKE_PREFIX}/{}/aliases/{}/rollback",
            segment(name),
            segment(alias)
        );
        self.call(Method::POST, &path, None, None).await
    }
}
