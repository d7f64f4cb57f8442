//! Dead letters: async events that failed for good with no on-failure destination (their
//! condition, runs, error type and last response kept with them), listed, shown and redriven
//! (sent back to the queue for another run).

use std::sync::Arc;

use stoke_core::{AccountId, LambdaError};
use stoke_store::queue::{DeadLetter, NewEvent, Queue};
use tokio::sync::Notify;

use crate::error::ControlError;
use crate::record::now_ms;

fn not_found(id: i64) -> LambdaError {
    LambdaError::ResourceNotFound(format!("Dead letter not found: {id}"))
}

/// The dead letters of the queue.
pub struct DeadLetters {
    queue: Arc<dyn Queue>,
    /// Wakes the async dispatcher when a redrive adds an event.
    wake: Arc<Notify>,
}

impl std::fmt::Debug for DeadLetters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DeadLetters")
    }
}

impl DeadLetters {
    pub fn new(queue: Arc<dyn Queue>, wake: Arc<Notify>) -> Self {
        Self { queue, wake }
    }

    /// An account's dead letters after `after_id`, oldest first.
    pub async fn list(
        &self,
        account: &AccountId,
        after_id: i64,
        limit: u32,
    ) -> Result<Vec<DeadLetter>, LambdaError> {
        self.queue
            .list_dead_letters(account, after_id, limit)
            .await
            .map_err(|e| ControlError::from(e).into())
    }

    pub async fn get(&self, account: &AccountId, id: i64) -> Result<DeadLetter, LambdaError> {
        self.queue
            .get_dead_letter(account, id)
            .await
            .map_err(ControlError::from)?
            .ok_or_else(|| not_found(id))
    }

    /// Sends a dead letter back to the queue for another run (same request id, counts reset,
    /// its age starting again, and its hops: a redrive is a new start). Answers the request
    /// id.
    pub async fn redrive(&self, account: &AccountId, id: i64) -> Result<String, LambdaError> {
        let d = self.get(account, id).await?;
        let now = now_ms();
        let l = d.letter;
        let event = NewEvent {
            request_id: l.request_id.clone(),
            account: l.account,
            function_name: l.function_name,
            qualifier: l.qualifier,
            payload: l.payload,
            trace_id: l.trace_id,
            enqueued_ms: now,
            next_run_ms: now,
            hops: 0,
            caller: None,
        };
        let moved = self
            .queue
            .redrive(account, id, &event)
            .await
            .map_err(ControlError::from)?;
        if !moved {
            return Err(not_found(id));
        }
        self.wake.notify_one();
        Ok(l.request_id)
    }
}
