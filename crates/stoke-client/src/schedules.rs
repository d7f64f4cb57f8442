//! EventBridge Scheduler's API (REST-JSON at `/schedules` and `/schedule-groups`, signed for
//! the service `scheduler`), as `stoke schedules` reads it.

use reqwest::Method;
use serde_json::Value;

use crate::client::{ApiRequest, LambdaClient, decode};
use crate::error::ClientError;
use crate::paths::{segment, with_query};

/// The service name in the credential scope of EventBridge Scheduler's API.
const SCHEDULER_SIGNING_SERVICE: &str = "scheduler";

impl LambdaClient {
    async fn scheduler_get(&self, path_and_query: &str) -> Result<Value, ClientError> {
        let answer = self
            .send_request(ApiRequest {
                method: Method::GET,
                path_and_query,
                service: SCHEDULER_SIGNING_SERVICE,
                headers: Vec::new(),
                body: None,
                progress: None,
            })
            .await?;
        decode(&answer.body)
    }

    /// One page of ListSchedules (`GroupName` filters by group; `next` continues a list).
    pub async fn list_schedules(
        &self,
        group: Option<&str>,
        next: Option<&str>,
    ) -> Result<Value, ClientError> {
        let path = with_query(
            "/schedules".to_owned(),
            &[("ScheduleGroup", group), ("NextToken", next)],
        );
        self.scheduler_get(&path).await
    }

    /// GetSchedule.
    pub async fn get_schedule(
        &self,
        name: &str,
        group: Option<&str>,
    ) -> Result<Value, ClientError> {
        let path = with_query(
            format!("/schedules/{}", segment(name)),
            &[("groupName", group)],
        );
        self.scheduler_get(&path).await
    }
}
