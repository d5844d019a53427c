//! Time-driven steps: schedules, lease recovery and retention.

use crate::Engine;
use ferry_core::config::Route;
use ferry_core::schedule::CronSchedule;
use ferry_store::{PruneRule, ScheduleEntry, StoreError};

/// Which side of a route a schedule runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    Incoming,
    Outgoing,
}

/// A scheduled run that came due and that this node won.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Fire {
    pub route: String,
    pub side: Side,
}

fn schedule_name(route: &str, side: Side) -> String {
    match side {
        Side::Incoming => format!("route:{route}:incoming"),
        Side::Outgoing => format!("route:{route}:outgoing"),
    }
}

fn parse_name(name: &str) -> Option<(&str, Side)> {
    let rest = name.strip_prefix("route:")?;
    if let Some(route) = rest.strip_suffix(":incoming") {
        Some((route, Side::Incoming))
    } else {
        rest.strip_suffix(":outgoing").map(|r| (r, Side::Outgoing))
    }
}

fn cron(route: &Route, side: Side) -> Option<&CronSchedule> {
    match side {
        Side::Incoming => route.schedule.incoming.as_ref(),
        Side::Outgoing => route.schedule.outgoing.as_ref(),
    }
}

impl Engine {
    /// Stores this configuration's schedules. Unchanged ones keep their next run time,
    /// so a restart neither skips nor repeats a run.
    pub async fn sync_schedules(&self) -> Result<(), StoreError> {
        let now = self.now();
        let mut entries = Vec::new();
        for route in &self.config.routes {
            for side in [Side::Incoming, Side::Outgoing] {
                if let Some(c) = cron(route, side)
                    && let Some(next) = c.next_after(now)
                {
                    entries.push(ScheduleEntry {
                        name: schedule_name(route.id.as_str(), side),
                        expression: c.expression().to_owned(),
                        next_run_at: next,
                    });
                }
            }
        }
        self.store.sync_schedules(&entries).await
    }

    /// The scheduler's single step: the runs due at the engine's `now` that this node
    /// won. Each due time fires once across every node sharing the store.
    pub async fn due_runs(&self) -> Result<Vec<Fire>, StoreError> {
        let now = self.now();
        let mut fires = Vec::new();
        for entry in self.store.due_schedules(now).await? {
            let Some((route_id, side)) = parse_name(&entry.name) else {
                continue;
            };
            let Some(route) = self.config.route(route_id) else {
                continue;
            };
            let Some(c) = cron(route, side) else {
                continue;
            };
            let Some(next) = c.next_after(now) else {
                continue;
            };
            if self
                .store
                .advance_schedule(&entry.name, entry.next_run_at, next, now)
                .await?
            {
                fires.push(Fire {
                    route: route_id.to_owned(),
                    side,
                });
            }
        }
        Ok(fires)
    }

    /// Returns tasks whose lease expired to `new`.
    pub async fn recover_expired(&self) -> Result<u64, StoreError> {
        let n = self.store.recover_expired(self.now()).await?;
        if n > 0 {
            tracing::warn!(tasks = n, "returned tasks of an expired lease to new");
        }
        Ok(n)
    }

    /// The retention rule at the engine's `now`.
    pub fn prune_rule(&self) -> PruneRule {
        let r = &self.config.retention;
        PruneRule {
            updated_before: self.now().plus_millis(-(r.max_age.as_millis() as i64)),
            max_tasks: r.max_tasks,
        }
    }

    /// Prunes what retention lets go, in batches of `batch`, until nothing is left.
    pub async fn prune(&self, batch: u32) -> Result<u64, StoreError> {
        let rule = self.prune_rule();
        let mut total = 0;
        loop {
            let n = self.store.prune(&rule, batch).await?;
            total += n;
            if n < u64::from(batch) || self.is_stopping() {
                break;
            }
            tokio::task::yield_now().await;
        }
        if total > 0 {
            tracing::info!(tasks = total, "pruned by retention");
        }
        Ok(total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_names_round_trip() {
        for side in [Side::Incoming, Side::Outgoing] {
            let name = schedule_name("shop-to-erp", side);
            assert_eq!(parse_name(&name), Some(("shop-to-erp", side)));
        }
        assert_eq!(parse_name("other"), None);
    }
}
