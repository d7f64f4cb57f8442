//! Stoke's admin API (accounts, access keys, limits; the admin account only), one method per
//! operation, answering the server's JSON.

use reqwest::Method;
use serde_json::{Value, json};

use crate::client::LambdaClient;
use crate::error::ClientError;
use crate::paths::segment;

/// Where the admin API's accounts are.
const ACCOUNTS: &str = "/stoke/admin/2026-11-01/accounts";

fn account_path(account: &str, suffix: &str) -> String {
    format!("{ACCOUNTS}/{}{suffix}", segment(account))
}

impl LambdaClient {
    /// CreateAccount: `{"Account": …, "AccessKey": {"AccessKeyId", "SecretAccessKey", …}}`.
    pub async fn create_account(&self, name: &str) -> Result<Value, ClientError> {
        let body = json!({ "AccountName": name });
        self.call(Method::POST, ACCOUNTS, Some(&body), None).await
    }

    /// ListAccounts: `{"Accounts": […]}`.
    pub async fn list_accounts(&self) -> Result<Value, ClientError> {
        self.call(Method::GET, ACCOUNTS, None, None).await
    }

    /// GetAccount (by id or name): the account, its keys, limits and usage.
    pub async fn get_account(&self, account: &str) -> Result<Value, ClientError> {
        self.call(Method::GET, &account_path(account, ""), None, None)
            .await
    }

    /// DeleteAccount (refused while it owns functions).
    pub async fn delete_account(&self, account: &str) -> Result<(), ClientError> {
        self.send(Method::DELETE, &account_path(account, ""), None, None)
            .await?;
        Ok(())
    }

    /// PutAccountLimits: the account's concurrency (`None`: the server's default).
    pub async fn set_account_limits(
        &self,
        account: &str,
        concurrency: Option<u32>,
    ) -> Result<Value, ClientError> {
        let body = json!({ "ConcurrentExecutions": concurrency });
        let path = account_path(account, "/limits");
        self.call(Method::PUT, &path, Some(&body), None).await
    }

    /// CreateAccessKey: `{"AccessKey": {"AccessKeyId", "SecretAccessKey", …}}`.
    pub async fn create_access_key(&self, account: &str) -> Result<Value, ClientError> {
        let path = account_path(account, "/keys");
        self.call(Method::POST, &path, None, None).await
    }

    /// ListAccessKeys: `{"AccessKeys": […]}` (no secrets).
    pub async fn list_access_keys(&self, account: &str) -> Result<Value, ClientError> {
        let path = account_path(account, "/keys");
        self.call(Method::GET, &path, None, None).await
    }

    /// DeleteAccessKey: the key is refused from the next request on.
    pub async fn delete_access_key(&self, account: &str, key: &str) -> Result<(), ClientError> {
        let path = account_path(account, &format!("/keys/{}", segment(key)));
        self.send(Method::DELETE, &path, None, None).await?;
        Ok(())
    }
}
