//! The background work of `ferry serve`: schedules, realtime routes, lease recovery and
//! retention, with bounded concurrency and a graceful stop. Each loop only calls one of
//! the engine's steps; the steps hold the logic.

use crate::{Engine, Fire, Side};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

/// Tasks a pruner batch deletes at most.
pub const PRUNE_BATCH: u32 = 1_000;

pub struct Runtime {
    engine: Arc<Engine>,
    stop: watch::Sender<bool>,
    loops: JoinSet<()>,
    permits: Arc<Semaphore>,
}

impl Runtime {
    /// Starts the background loops.
    pub async fn start(engine: Arc<Engine>) -> Runtime {
        if let Err(e) = engine.sync_schedules().await {
            tracing::error!(error = %e, "could not store the schedules; scheduled runs will not fire");
        }
        if let Err(e) = engine.recover_expired().await {
            tracing::error!(error = %e, "could not recover expired leases");
        }
        let (stop, _) = watch::channel(false);
        let workers = engine.workers().clone();
        let permits = Arc::new(Semaphore::new(workers.concurrency as usize));
        let mut loops = JoinSet::new();

        let ctx = Ctx {
            engine: engine.clone(),
            permits: permits.clone(),
            stop: stop.subscribe(),
        };
        loops.spawn(ctx.clone().scheduler(workers.poll_interval));
        // Tasks created by other processes on a shared database wake realtime routes too.
        if let Some(mut events) = engine.store().new_task_events().await {
            let (waker, mut stop_rx) = (engine.clone(), stop.subscribe());
            loops.spawn(async move {
                loop {
                    tokio::select! {
                        route = events.recv() => match route {
                            Some(route) => {
                                if let Some(n) = waker.wake.get(&route) {
                                    n.notify_one();
                                }
                            }
                            None => return,
                        },
                        _ = stop_rx.changed() => return,
                    }
                }
            });
        }
        for route in engine
            .config()
            .routes
            .iter()
            .filter(|r| r.realtime && !r.disabled)
        {
            loops.spawn(
                ctx.clone()
                    .realtime(route.id.to_string(), workers.poll_interval),
            );
        }
        let recover_every =
            (workers.lease / 4).clamp(Duration::from_millis(200), Duration::from_secs(30));
        loops.spawn(ctx.clone().every(recover_every, |e| async move {
            if let Err(err) = e.recover_expired().await {
                tracing::error!(error = %err, "lease recovery failed");
            }
        }));
        loops.spawn(
            ctx.every(engine.config().retention.interval, |e| async move {
                if let Err(err) = e.prune(PRUNE_BATCH).await {
                    tracing::error!(error = %err, "pruning failed");
                }
            }),
        );
        tracing::info!(
            worker = engine.worker(),
            concurrency = workers.concurrency,
            "workers started"
        );
        Runtime {
            engine,
            stop,
            loops,
            permits,
        }
    }

    /// Stops the loops, lets runs in progress finish their current task (the rest of
    /// their batch goes back to `new`), and waits for them up to the configured grace.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        self.engine.stop();
        while self.loops.join_next().await.is_some() {}
        let workers = self.engine.workers();
        let all = workers.concurrency;
        match tokio::time::timeout(workers.shutdown_grace, self.permits.acquire_many(all)).await {
            Ok(_) => tracing::info!("workers stopped; no task is left processing by this node"),
            Err(_) => tracing::warn!(
                grace = ?workers.shutdown_grace,
                "runs still in progress at the end of the grace period; their tasks return to new when their leases expire"
            ),
        }
    }
}

#[derive(Clone)]
struct Ctx {
    engine: Arc<Engine>,
    permits: Arc<Semaphore>,
    stop: watch::Receiver<bool>,
}

impl Ctx {
    /// Waits `period` or until stopped; false when stopped.
    async fn wait(&mut self, period: Duration) -> bool {
        tokio::select! {
            () = tokio::time::sleep(period) => !*self.stop.borrow(),
            _ = self.stop.changed() => false,
        }
    }

    async fn scheduler(mut self, period: Duration) {
        while self.wait(period).await {
            let fires = match self.engine.due_runs().await {
                Ok(f) => f,
                Err(e) => {
                    tracing::error!(error = %e, "could not read the schedules");
                    continue;
                }
            };
            for fire in fires {
                let Ok(permit) = self.permits.clone().acquire_owned().await else {
                    return;
                };
                let engine = self.engine.clone();
                tokio::spawn(async move {
                    run_fire(&engine, &fire).await;
                    drop(permit);
                });
            }
        }
    }

    async fn realtime(mut self, route: String, period: Duration) {
        let notify = self.engine.wake[&route].clone();
        loop {
            tokio::select! {
                () = notify.notified() => {},
                () = tokio::time::sleep(period) => {},
                _ = self.stop.changed() => return,
            }
            if *self.stop.borrow() {
                return;
            }
            let Ok(_permit) = self.permits.acquire().await else {
                return;
            };
            if let Err(e) = self.engine.drain_route(&route).await {
                tracing::error!(route, error = %e, "realtime run failed");
            }
        }
    }

    async fn every<F, Fut>(mut self, period: Duration, step: F)
    where
        F: Fn(Arc<Engine>) -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        while self.wait(period).await {
            step(self.engine.clone()).await;
        }
    }
}

async fn run_fire(engine: &Engine, fire: &Fire) {
    let Some(route) = engine.config().route(&fire.route) else {
        return;
    };
    match fire.side {
        Side::Outgoing => {
            if let Err(e) = engine.drain_route(&fire.route).await {
                tracing::error!(route = fire.route, error = %e, "scheduled run failed");
            }
        }
        Side::Incoming => {
            for incoming in &route.incoming {
                match engine.run_incoming(incoming.as_str()).await {
                    Ok(_) | Err(crate::IncomingRunError::Webhook(_)) => {}
                    Err(e) => {
                        tracing::error!(route = fire.route, incoming = %incoming, error = %e, "scheduled subscriber run failed")
                    }
                }
            }
        }
    }
}
