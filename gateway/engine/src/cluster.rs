//! What the nodes of a cluster share besides the store, each behind a small trait with an
//! in-process implementation (one node, the embedded default) and a Redis one (several nodes),
//! chosen once at start-up ([`Cluster::single_node`] or [`Cluster::redis`]):
//! - the delivery bus ([`Bus`]: [`LocalBus`] or [`RedisBus`]);
//! - agent presence across nodes ([`AgentRegistry`]): which agents some node has connected;
//! - the tenant's message budget across nodes ([`TenantBudget`]);
//! - mobile token nonces ([`NonceStore`]): a token used on one node is a replay on the others.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use switchboard_channels::mobile::{MemoryNonceStore, NonceStore, TenantNonceStore};

use crate::bus::{Bus, LocalBus};
use crate::redis_bus::{BusSettings, BusStats, RedisBus};

/// Which agents are connected to some node of the cluster.
pub trait AgentRegistry: Send + Sync {
    /// Marks agents as connected to this node for `ttl` (refreshed by each node's heartbeat).
    fn mark_online<'a>(
        &'a self,
        agents: &'a [String],
        ttl: Duration,
    ) -> BoxFuture<'a, anyhow::Result<()>>;
    /// Which of `agents` some node marked as connected lately, in order.
    fn online<'a>(&'a self, agents: &'a [String]) -> BoxFuture<'a, anyhow::Result<Vec<bool>>>;
}

/// A tenant's message budget counted across every node.
pub trait TenantBudget: Send + Sync {
    /// One more message for `tenant` in the current second; `Ok(Err(wait_ms))` when the
    /// budget (`per_second + burst`) is spent.
    fn take<'a>(
        &'a self,
        tenant: &'a str,
        budget: u64,
    ) -> BoxFuture<'a, anyhow::Result<Result<(), u64>>>;
}

/// The shared parts, chosen once at start-up.
#[derive(Clone)]
pub struct Cluster {
    /// This node's id when there are several (`None`: one node, nothing to tell others).
    pub node: Option<String>,
    pub bus: Arc<dyn Bus>,
    pub agents: Arc<dyn AgentRegistry>,
    pub budget: Arc<dyn TenantBudget>,
    /// Mobile tokens' and webhook pushes' nonces (keys begin with their tenant). On one node a
    /// bounded store per tenant, so one tenant's tokens cannot refuse another's.
    pub nonces: Arc<dyn NonceStore>,
    /// WebSocket tickets' nonces. On one node a store of their own (each bounded in memory),
    /// so tickets, which anonymous visitors ask for, cannot crowd out logins and pushes.
    pub tickets: Arc<dyn NonceStore>,
    redis: Option<Arc<RedisBus>>,
}

impl Cluster {
    /// One process: everything in memory.
    pub fn single_node(bus_capacity: usize) -> Cluster {
        Cluster {
            node: None,
            bus: Arc::new(LocalBus::new(bus_capacity)),
            agents: Arc::new(LocalAgents::default()),
            budget: Arc::new(LocalBudget::default()),
            nonces: Arc::new(TenantNonceStore::default()),
            tickets: Arc::new(MemoryNonceStore::default()),
            redis: None,
        }
    }

    /// Several nodes sharing one Redis (and the bus's shard servers, if any).
    pub async fn redis(
        url: &str,
        bus: &BusSettings,
        bus_capacity: usize,
    ) -> anyhow::Result<Cluster> {
        let redis = RedisBus::connect(url, bus, bus_capacity).await?;
        Ok(Cluster {
            node: Some(redis.node().to_owned()),
            bus: redis.clone(),
            agents: redis.clone(),
            budget: redis.clone(),
            nonces: redis.clone(),
            tickets: redis.clone(),
            redis: Some(redis),
        })
    }

    /// What the Redis bus did on this node (`None` on one node).
    pub fn bus_stats(&self) -> Option<&BusStats> {
        self.redis.as_ref().map(|redis| redis.stats())
    }

    /// Leaves the cluster on a clean stop (Redis: this node's consumer group is removed).
    pub async fn leave(&self) -> anyhow::Result<()> {
        match &self.redis {
            Some(redis) => redis.leave().await,
            None => Ok(()),
        }
    }
}

/// One node: the agents this node marked, until their time runs out.
#[derive(Default)]
struct LocalAgents {
    until: Mutex<HashMap<String, Instant>>,
}

impl AgentRegistry for LocalAgents {
    fn mark_online<'a>(
        &'a self,
        agents: &'a [String],
        ttl: Duration,
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        let now = Instant::now();
        let mut until = self.until.lock().unwrap_or_else(|p| p.into_inner());
        until.retain(|_, at| *at > now);
        for agent in agents {
            until.insert(agent.clone(), now + ttl);
        }
        Box::pin(async { Ok(()) })
    }

    fn online<'a>(&'a self, agents: &'a [String]) -> BoxFuture<'a, anyhow::Result<Vec<bool>>> {
        let now = Instant::now();
        let until = self.until.lock().unwrap_or_else(|p| p.into_inner());
        let found = agents
            .iter()
            .map(|agent| until.get(agent).is_some_and(|at| *at > now))
            .collect();
        Box::pin(async move { Ok(found) })
    }
}

/// One node: a counter per tenant for the current second.
#[derive(Default)]
struct LocalBudget {
    seconds: Mutex<HashMap<String, (i64, u64)>>,
}

impl TenantBudget for LocalBudget {
    fn take<'a>(
        &'a self,
        tenant: &'a str,
        budget: u64,
    ) -> BoxFuture<'a, anyhow::Result<Result<(), u64>>> {
        let now = store::util::now_ms();
        let second = now / 1000;
        let mut seconds = self.seconds.lock().unwrap_or_else(|p| p.into_inner());
        if seconds.len() > 10_000 {
            seconds.retain(|_, (at, _)| *at == second);
        }
        let count = match seconds.get_mut(tenant) {
            Some((at, count)) if *at == second => {
                *count += 1;
                *count
            }
            Some(entry) => {
                *entry = (second, 1);
                1
            }
            None => {
                seconds.insert(tenant.to_owned(), (second, 1));
                1
            }
        };
        let result = if count > budget {
            Err((1000 - now % 1000).max(1) as u64)
        } else {
            Ok(())
        };
        Box::pin(async move { Ok(result) })
    }
}

/// Several nodes: agents marked in Redis with a TTL each node refreshes.
impl AgentRegistry for RedisBus {
    fn mark_online<'a>(
        &'a self,
        agents: &'a [String],
        ttl: std::time::Duration,
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(RedisBus::mark_online(self, agents, ttl))
    }

    fn online<'a>(&'a self, agents: &'a [String]) -> BoxFuture<'a, anyhow::Result<Vec<bool>>> {
        Box::pin(RedisBus::online(self, agents))
    }
}

/// The tenant's budget across all nodes: an `INCR` per tenant and second.
impl TenantBudget for RedisBus {
    fn take<'a>(
        &'a self,
        tenant: &'a str,
        budget: u64,
    ) -> BoxFuture<'a, anyhow::Result<Result<(), u64>>> {
        Box::pin(self.tenant_message(tenant, budget))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn local_budget_refuses_past_the_budget_within_a_second() {
        let budget = LocalBudget::default();
        // Two tenants never share a budget.
        let mut refused = 0;
        for _ in 0..5 {
            if budget.take("a", 3).await.unwrap_or(Ok(())).is_err() {
                refused += 1;
            }
        }
        assert!(budget.take("b", 3).await.is_ok_and(|r| r.is_ok()));
        // Unless the second turned over mid-loop, two of five were refused.
        assert!((1..=2).contains(&refused), "refused {refused}");
    }

    #[tokio::test]
    async fn local_agents_expire() {
        let agents = LocalAgents::default();
        let ids = ["ag_1".to_owned(), "ag_2".to_owned()];
        agents
            .mark_online(&ids[..1], Duration::from_secs(60))
            .await
            .ok();
        agents
            .mark_online(&ids[1..], Duration::from_millis(0))
            .await
            .ok();
        assert_eq!(agents.online(&ids).await.ok(), Some(vec![true, false]));
    }
}
