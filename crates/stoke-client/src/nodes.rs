//! Stoke's admin API for the cluster's nodes (the admin account only): ListNodes.

use reqwest::Method;
use serde_json::Value;

use crate::client::LambdaClient;
use crate::error::ClientError;

/// Where the admin API lists the nodes.
const NODES: &str = "/stoke/admin/2026-11-01/nodes";

impl LambdaClient {
    /// ListNodes: `{"Nodes": [{"NodeId", "Address", "State", "Warm", "Load", …}],
    /// "NodeTimeoutMs"}`, every node of the registry in node id order.
    pub async fn list_nodes(&self) -> Result<Value, ClientError> {
        self.call(Method::GET, NODES, None, None).await
    }
}
