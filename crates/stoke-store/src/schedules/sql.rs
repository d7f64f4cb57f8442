//! [`ScheduleStore`](super::ScheduleStore) in SQL that SQLite and PostgreSQL both take, as a
//! macro each backend expands with its own store, row and connection types, the method that
//! gives it a connection to write on (SQLite's takes the write gate), and its queue's
//! `insert_event` and `insert_dead_letter` (so a tick's event, or its dead letter, is inserted
//! in the fire's transaction).

/// `impl ScheduleStore for $store`. Expects `account(String) -> Result<AccountId, StoreError>`
/// in scope and `self.pool` to be the store's pool.
macro_rules! schedule_store {
    ($store:ty, $row:ty, $writer:ident, $insert_event:path, $insert_dead_letter:path) => {
        const SCHEDULE_COLUMNS: &str = "account_id, group_name, name, state, spec, next_ms, \
                                        last_tick_ms, created_ms, modified_ms";

        fn schedule_of(r: &$row) -> Result<$crate::schedules::Schedule, StoreError> {
            Ok($crate::schedules::Schedule {
                account: account(r.get("account_id"))?,
                group: r.get("group_name"),
                name: r.get("name"),
                state: r.get("state"),
                spec: r.get("spec"),
                next_ms: r.get("next_ms"),
                last_tick_ms: r.get("last_tick_ms"),
                created_ms: r.get("created_ms"),
                modified_ms: r.get("modified_ms"),
            })
        }

        fn group_of(r: &$row) -> Result<$crate::schedules::ScheduleGroup, StoreError> {
            Ok($crate::schedules::ScheduleGroup {
                account: account(r.get("account_id"))?,
                name: r.get("name"),
                created_ms: r.get("created_ms"),
                modified_ms: r.get("modified_ms"),
            })
        }

        #[async_trait::async_trait]
        impl $crate::schedules::ScheduleStore for $store {
            async fn create_schedule_group(
                &self,
                g: &$crate::schedules::ScheduleGroup,
            ) -> Result<(), StoreError> {
                let mut w = self.$writer().await?;
                let done = sqlx::query(
                    "INSERT INTO schedule_groups (account_id, name, created_ms, modified_ms) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                )
                .bind(g.account.as_str())
                .bind(&g.name)
                .bind(g.created_ms)
                .bind(g.modified_ms)
                .execute(&mut *w)
                .await?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::Conflict);
                }
                Ok(())
            }

            async fn get_schedule_group(
                &self,
                account: &AccountId,
                name: &str,
            ) -> Result<Option<$crate::schedules::ScheduleGroup>, StoreError> {
                sqlx::query(
                    "SELECT account_id, name, created_ms, modified_ms FROM schedule_groups \
                     WHERE account_id = $1 AND name = $2",
                )
                .bind(account.as_str())
                .bind(name)
                .fetch_optional(&self.pool)
                .await?
                .as_ref()
                .map(group_of)
                .transpose()
            }

            async fn list_schedule_groups(
                &self,
                account: &AccountId,
                name_prefix: Option<&str>,
                after: Option<&str>,
                limit: u32,
            ) -> Result<Vec<$crate::schedules::ScheduleGroup>, StoreError> {
                let mut q = sqlx::QueryBuilder::new(
                    "SELECT account_id, name, created_ms, modified_ms FROM schedule_groups \
                     WHERE account_id = ",
                );
                q.push_bind(account.as_str());
                if let Some(p) = name_prefix {
                    q.push(" AND substr(name, 1, ")
                        .push_bind(i32::try_from(p.len()).unwrap_or(i32::MAX))
                        .push(") = ")
                        .push_bind(p);
                }
                if let Some(a) = after {
                    q.push(" AND name > ").push_bind(a);
                }
                q.push(" ORDER BY name LIMIT ").push_bind(i64::from(limit));
                q.build()
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(group_of)
                    .collect()
            }

            async fn delete_schedule_group(
                &self,
                account: &AccountId,
                name: &str,
            ) -> Result<bool, StoreError> {
                let mut w = self.$writer().await?;
                let mut tx = sqlx::Connection::begin(&mut *w).await?;
                sqlx::query("DELETE FROM schedules WHERE account_id = $1 AND group_name = $2")
                    .bind(account.as_str())
                    .bind(name)
                    .execute(&mut *tx)
                    .await?;
                let gone =
                    sqlx::query("DELETE FROM schedule_groups WHERE account_id = $1 AND name = $2")
                        .bind(account.as_str())
                        .bind(name)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                tx.commit().await?;
                Ok(gone == 1)
            }

            async fn create_schedule(
                &self,
                s: &$crate::schedules::Schedule,
            ) -> Result<(), StoreError> {
                let mut w = self.$writer().await?;
                let mut tx = sqlx::Connection::begin(&mut *w).await?;
                if s.group != $crate::schedules::DEFAULT_GROUP {
                    let group = sqlx::query(
                        "SELECT 1 FROM schedule_groups WHERE account_id = $1 AND name = $2",
                    )
                    .bind(s.account.as_str())
                    .bind(&s.group)
                    .fetch_optional(&mut *tx)
                    .await?;
                    if group.is_none() {
                        return Err(StoreError::NotFound);
                    }
                }
                let done = sqlx::query(
                    "INSERT INTO schedules (account_id, group_name, name, state, spec, next_ms, \
                     last_tick_ms, created_ms, modified_ms) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING",
                )
                .bind(s.account.as_str())
                .bind(&s.group)
                .bind(&s.name)
                .bind(&s.state)
                .bind(&s.spec)
                .bind(s.next_ms)
                .bind(s.last_tick_ms)
                .bind(s.created_ms)
                .bind(s.modified_ms)
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::Conflict);
                }
                tx.commit().await?;
                Ok(())
            }

            async fn get_schedule(
                &self,
                account: &AccountId,
                group: &str,
                name: &str,
            ) -> Result<Option<$crate::schedules::Schedule>, StoreError> {
                sqlx::query(&format!(
                    "SELECT {SCHEDULE_COLUMNS} FROM schedules \
                     WHERE account_id = $1 AND group_name = $2 AND name = $3"
                ))
                .bind(account.as_str())
                .bind(group)
                .bind(name)
                .fetch_optional(&self.pool)
                .await?
                .as_ref()
                .map(schedule_of)
                .transpose()
            }

            async fn update_schedule(
                &self,
                s: &$crate::schedules::Schedule,
            ) -> Result<(), StoreError> {
                let mut w = self.$writer().await?;
                let done = sqlx::query(
                    "UPDATE schedules SET state = $1, spec = $2, next_ms = $3, modified_ms = $4 \
                     WHERE account_id = $5 AND group_name = $6 AND name = $7",
                )
                .bind(&s.state)
                .bind(&s.spec)
                .bind(s.next_ms)
                .bind(s.modified_ms)
                .bind(s.account.as_str())
                .bind(&s.group)
                .bind(&s.name)
                .execute(&mut *w)
                .await?;
                if done.rows_affected() == 0 {
                    return Err(StoreError::NotFound);
                }
                Ok(())
            }

            async fn delete_schedule(
                &self,
                account: &AccountId,
                group: &str,
                name: &str,
            ) -> Result<bool, StoreError> {
                let mut w = self.$writer().await?;
                let done = sqlx::query(
                    "DELETE FROM schedules WHERE account_id = $1 AND group_name = $2 AND name = $3",
                )
                .bind(account.as_str())
                .bind(group)
                .bind(name)
                .execute(&mut *w)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn list_schedules(
                &self,
                account: &AccountId,
                f: &$crate::schedules::ScheduleFilter,
            ) -> Result<Vec<$crate::schedules::Schedule>, StoreError> {
                let mut q = sqlx::QueryBuilder::new(format!(
                    "SELECT {SCHEDULE_COLUMNS} FROM schedules WHERE account_id = "
                ));
                q.push_bind(account.as_str());
                if let Some(g) = &f.group {
                    q.push(" AND group_name = ").push_bind(g);
                }
                if let Some(p) = &f.name_prefix {
                    q.push(" AND substr(name, 1, ")
                        .push_bind(i32::try_from(p.len()).unwrap_or(i32::MAX))
                        .push(") = ")
                        .push_bind(p);
                }
                if let Some(st) = &f.state {
                    q.push(" AND state = ").push_bind(st);
                }
                if let Some((g, n)) = &f.after {
                    q.push(" AND (group_name > ")
                        .push_bind(g)
                        .push(" OR (group_name = ")
                        .push_bind(g)
                        .push(" AND name > ")
                        .push_bind(n)
                        .push("))");
                }
                q.push(" ORDER BY group_name, name LIMIT ")
                    .push_bind(i64::from(f.limit));
                q.build()
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(schedule_of)
                    .collect()
            }

            async fn due_schedules(
                &self,
                now_ms: i64,
                limit: u32,
            ) -> Result<Vec<$crate::schedules::Schedule>, StoreError> {
                sqlx::query(&format!(
                    "SELECT {SCHEDULE_COLUMNS} FROM schedules \
                     WHERE state = 'ENABLED' AND next_ms IS NOT NULL AND next_ms <= $1 \
                     ORDER BY next_ms LIMIT $2"
                ))
                .bind(now_ms)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(schedule_of)
                .collect()
            }

            async fn next_schedule_ms(&self) -> Result<Option<i64>, StoreError> {
                let r = sqlx::query(
                    "SELECT MIN(next_ms) AS due FROM schedules \
                     WHERE state = 'ENABLED' AND next_ms IS NOT NULL",
                )
                .fetch_one(&self.pool)
                .await?;
                Ok(r.get::<Option<i64>, _>("due"))
            }

            async fn fire(&self, f: &$crate::schedules::Fire) -> Result<bool, StoreError> {
                let mut w = self.$writer().await?;
                let mut tx = sqlx::Connection::begin(&mut *w).await?;
                let moved = if f.delete {
                    sqlx::query(
                        "DELETE FROM schedules WHERE account_id = $1 AND group_name = $2 \
                         AND name = $3 AND next_ms = $4",
                    )
                    .bind(f.account.as_str())
                    .bind(&f.group)
                    .bind(&f.name)
                    .bind(f.expected_next_ms)
                    .execute(&mut *tx)
                    .await?
                } else {
                    sqlx::query(
                        "UPDATE schedules SET next_ms = $1, last_tick_ms = $2 \
                         WHERE account_id = $3 AND group_name = $4 AND name = $5 \
                         AND next_ms = $6",
                    )
                    .bind(f.next_ms)
                    .bind(f.tick_ms)
                    .bind(f.account.as_str())
                    .bind(&f.group)
                    .bind(&f.name)
                    .bind(f.expected_next_ms)
                    .execute(&mut *tx)
                    .await?
                };
                if moved.rows_affected() != 1 {
                    return Ok(false);
                }
                if let Some(e) = &f.event {
                    $insert_event(&mut *tx, e).await?;
                }
                if let Some(d) = &f.dead_letter {
                    $insert_dead_letter(&mut *tx, d).await?;
                }
                tx.commit().await?;
                Ok(true)
            }
        }
    };
}

pub(crate) use schedule_store;
