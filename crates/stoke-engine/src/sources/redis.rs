//! Redis Streams as a [`Source`], on the `redis` crate: one consumer group per mapping
//! (created at the stream's start or end as `StartingPosition` says, with `MKSTREAM`), new
//! entries read with `XREADGROUP … BLOCK` (a blocking read: an idle mapping sends one command
//! per wait, never a busy loop), acknowledged with `XACK` after success, the pending entries
//! of a dead consumer taken over with `XAUTOCLAIM`, the lag from `XINFO GROUPS`.
//!
//! Bounds: two connections per mapping (the blocking reads on one, everything else on the
//! other, so an ack never waits behind a read), each with a 5 s connect timeout and a response
//! timeout (the read's block time plus 5 s); a broken connection is dropped and made again on
//! the next call, and the poller backs off between failures. An entry's `body` field is the
//! record's body; its other fields are its attributes (an entry without `body` has all its
//! fields as a JSON object for body). A mapping's `BASIC_AUTH` signs every connection in
//! (`AUTH`); the password is never in a `Debug` output or a log line.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::MultiplexedConnection;
use redis::streams::{StreamAutoClaimReply, StreamId, StreamInfoGroupsReply, StreamReadReply};
use redis::{AsyncConnectionConfig, Client, IntoConnectionInfo, RedisError};
use stoke_store::mappings::BasicAuth;
use tokio::sync::Mutex;

use super::source::{Message, Source, SourceError};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const RESPONSE_SLACK: Duration = Duration::from_secs(5);
/// The longest a read blocks; a poller's wait is cut to it.
pub const MAX_BLOCK: Duration = Duration::from_secs(5);

/// One mapping's consumer of one stream.
pub struct RedisSource {
    client: Client,
    stream: String,
    group: String,
    consumer: String,
    /// `0` (TRIM_HORIZON) or `$` (LATEST): where a new group starts.
    start: &'static str,
    reader: Mutex<Option<MultiplexedConnection>>,
    writer: Mutex<Option<MultiplexedConnection>>,
}

impl std::fmt::Debug for RedisSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry a password: never shown.
        f.debug_struct("RedisSource")
            .field("stream", &self.stream)
            .field("group", &self.group)
            .field("consumer", &self.consumer)
            .finish_non_exhaustive()
    }
}

fn connection_error(e: &RedisError) -> SourceError {
    SourceError::Connection(e.to_string())
}

fn classify(e: RedisError) -> SourceError {
    if e.is_io_error() || e.is_connection_dropped() || e.is_timeout() || e.is_unrecoverable_error()
    {
        connection_error(&e)
    } else {
        SourceError::Refused(e.to_string())
    }
}

fn message(entry: StreamId, delivery_count: u64) -> Message {
    let mut fields: BTreeMap<String, String> = entry
        .map
        .iter()
        .map(|(k, v)| {
            let text = redis::from_redis_value_ref::<String>(v).unwrap_or_default();
            (k.clone(), text)
        })
        .collect();
    let body = match fields.remove("body") {
        Some(b) => b,
        None => serde_json::to_string(&fields).unwrap_or_default(),
    };
    let sent_ms = entry
        .id
        .split('-')
        .next()
        .and_then(|ms| ms.parse::<i64>().ok());
    Message {
        id: entry.id,
        body,
        attributes: fields,
        delivery_count,
        sent_ms,
        metadata: serde_json::Map::new(),
    }
}

impl RedisSource {
    /// A consumer `consumer` of group `group` on `stream` at `url`, signing in with `auth`
    /// when given (`AUTH [username] password`; it wins over credentials in the URL). Nothing
    /// is connected until the first call.
    pub fn new(
        url: &str,
        stream: &str,
        group: &str,
        consumer: &str,
        latest: bool,
        auth: Option<&BasicAuth>,
    ) -> Result<Self, SourceError> {
        let refused = |e: RedisError| SourceError::Refused(e.to_string());
        let mut info = url.into_connection_info().map_err(refused)?;
        if let Some(a) = auth {
            let mut settings = info.redis_settings().clone().set_password(&*a.password);
            if !a.username.is_empty() {
                settings = settings.set_username(&a.username);
            }
            info = info.set_redis_settings(settings);
        }
        let client = Client::open(info).map_err(refused)?;
        Ok(Self {
            client,
            stream: stream.to_owned(),
            group: group.to_owned(),
            consumer: consumer.to_owned(),
            start: if latest { "$" } else { "0" },
            reader: Mutex::new(None),
            writer: Mutex::new(None),
        })
    }

    async fn connect(&self, response: Duration) -> Result<MultiplexedConnection, SourceError> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(response));
        let mut conn = self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(|e| connection_error(&e))?;
        // The group, created once (BUSYGROUP: it is there already, keeping its place).
        let made: Result<(), RedisError> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(&self.stream)
            .arg(&self.group)
            .arg(self.start)
            .arg("MKSTREAM")
            .query_async(&mut conn)
            .await;
        match made {
            Ok(()) => {}
            Err(e) if e.code() == Some("BUSYGROUP") => {}
            Err(e) => return Err(classify(e)),
        }
        Ok(conn)
    }

    /// Runs `cmd` on the connection in `slot` (connecting first if needed); a broken
    /// connection is dropped so that the next call connects again.
    async fn run<T: redis::FromRedisValue>(
        &self,
        slot: &Mutex<Option<MultiplexedConnection>>,
        response: Duration,
        cmd: &redis::Cmd,
    ) -> Result<T, SourceError> {
        let mut guard = slot.lock().await;
        if guard.is_none() {
            *guard = Some(self.connect(response).await?);
        }
        let Some(conn) = guard.as_mut() else {
            return Err(SourceError::Connection("not connected".into()));
        };
        match cmd.query_async::<T>(conn).await {
            Ok(v) => Ok(v),
            Err(e) => {
                let err = classify(e);
                // A lost group (a broker that restarted empty): made again on reconnect.
                if matches!(err, SourceError::Connection(_)) || err.to_string().contains("NOGROUP")
                {
                    *guard = None;
                }
                Err(err)
            }
        }
    }
}

#[async_trait]
impl Source for RedisSource {
    async fn poll(&self, max: usize, wait: Duration) -> Result<Vec<Message>, SourceError> {
        let block = wait.min(MAX_BLOCK);
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP")
            .arg(&self.group)
            .arg(&self.consumer)
            .arg("COUNT")
            .arg(max.max(1))
            .arg("BLOCK")
            .arg(u64::try_from(block.as_millis()).unwrap_or(5_000).max(1))
            .arg("STREAMS")
            .arg(&self.stream)
            .arg(">");
        let reply: Option<StreamReadReply> = self
            .run(&self.reader, MAX_BLOCK + RESPONSE_SLACK, &cmd)
            .await?;
        Ok(reply
            .into_iter()
            .flat_map(|r| r.keys)
            .flat_map(|k| k.ids)
            .map(|e| message(e, 1))
            .collect())
    }

    async fn ack(&self, ids: &[String]) -> Result<(), SourceError> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut cmd = redis::cmd("XACK");
        cmd.arg(&self.stream).arg(&self.group).arg(ids);
        let _: i64 = self.run(&self.writer, RESPONSE_SLACK, &cmd).await?;
        Ok(())
    }

    async fn nack(&self, _ids: &[String]) -> Result<(), SourceError> {
        // An unacknowledged entry stays pending in the group: the poller retries it, and a
        // consumer that takes the mapping over claims it (XAUTOCLAIM).
        Ok(())
    }

    async fn claim_stale(&self, idle: Duration, max: usize) -> Result<Vec<Message>, SourceError> {
        let mut out = Vec::new();
        let mut cursor = "0-0".to_owned();
        loop {
            let mut cmd = redis::cmd("XAUTOCLAIM");
            cmd.arg(&self.stream)
                .arg(&self.group)
                .arg(&self.consumer)
                .arg(u64::try_from(idle.as_millis()).unwrap_or(u64::MAX))
                .arg(&cursor)
                .arg("COUNT")
                .arg(max.saturating_sub(out.len()).max(1));
            let reply: StreamAutoClaimReply = self.run(&self.writer, RESPONSE_SLACK, &cmd).await?;
            out.extend(reply.claimed.into_iter().map(|e| message(e, 2)));
            cursor = reply.next_stream_id;
            if cursor == "0-0" || out.len() >= max {
                return Ok(out);
            }
        }
    }

    async fn lag(&self) -> Result<Option<u64>, SourceError> {
        let mut cmd = redis::cmd("XINFO");
        cmd.arg("GROUPS").arg(&self.stream);
        let reply: StreamInfoGroupsReply = self.run(&self.writer, RESPONSE_SLACK, &cmd).await?;
        Ok(reply
            .groups
            .into_iter()
            .find(|g| g.name == self.group)
            .and_then(|g| g.lag)
            .map(|l| u64::try_from(l).unwrap_or(u64::MAX)))
    }
}
