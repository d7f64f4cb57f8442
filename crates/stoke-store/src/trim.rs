//! The loops of log retention, the same on both backends: a trim is a run of bounded
//! `DELETE` statements, each its own short commit ([`TrimStep::trim_step`], which each backend
//! writes for its database), until a batch removes fewer rows than it could or the excess is
//! gone.

use async_trait::async_trait;

use crate::StoreError;

/// Rows per statement of the count and age trims: small enough that one statement holds the
/// database's write lock (SQLite's) or its row locks for a few milliseconds.
pub(crate) const TRIM_BATCH: i64 = 500;

pub(crate) fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

pub(crate) fn to_u64(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// A value bound to a retention statement.
#[derive(Clone, Copy)]
pub(crate) enum Arg<'a> {
    Int(i64),
    Text(&'a str),
}

/// One retention statement, and the loops made of it.
#[async_trait]
pub(crate) trait TrimStep: Sync {
    /// Runs one retention statement (a bounded `DELETE`, bound to `args`) as a commit of its
    /// own that need not wait for the disk (log rows are not acknowledged data). Answers the
    /// rows removed.
    async fn trim_step(&self, sql: &str, args: &[Arg<'_>]) -> Result<u64, StoreError>;

    /// Runs `sql` (a `DELETE` of at most [`TRIM_BATCH`] rows, bound to `args` and then the
    /// batch size) until a batch removes fewer. Answers the rows removed.
    async fn delete_in_batches(&self, sql: &str, args: &[Arg<'_>]) -> Result<u64, StoreError> {
        let mut bound = args.to_vec();
        bound.push(Arg::Int(TRIM_BATCH));
        let mut gone = 0;
        loop {
            let n = self.trim_step(sql, &bound).await?;
            gone += n;
            if n < to_u64(TRIM_BATCH) {
                return Ok(gone);
            }
        }
    }

    /// Removes `excess` of one function's oldest rows, [`TRIM_BATCH`] at a time: `sql` is a
    /// `DELETE` bound to the account, the function name and the batch size. Answers the rows
    /// removed.
    async fn delete_oldest_of(
        &self,
        sql: &str,
        (account, function): (&str, &str),
        mut excess: i64,
    ) -> Result<u64, StoreError> {
        let mut gone = 0;
        while excess > 0 {
            let args = [
                Arg::Text(account),
                Arg::Text(function),
                Arg::Int(excess.min(TRIM_BATCH)),
            ];
            let n = self.trim_step(sql, &args).await?;
            if n == 0 {
                break;
            }
            gone += n;
            excess -= to_i64(n);
        }
        Ok(gone)
    }
}
