//! Which agents are connected to this node, their chosen status and when they last got work.
//! In-memory: the embedded default runs one node.

use std::collections::HashMap;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use store::Agent;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentStatus {
    Online,
    Away,
}

#[derive(Debug, Clone)]
struct Entry {
    agent: Agent,
    connections: u32,
    status: AgentStatus,
    /// Connection generation: a grace timer started for an older generation does nothing.
    generation: u64,
    /// When the agent last received a conversation (or came online): ties go to the longest idle.
    idle_since: i64,
}

/// An agent who can take conversations now.
#[derive(Debug, Clone)]
pub struct Available {
    pub agent: Agent,
    pub idle_since: i64,
}

#[derive(Default)]
pub struct Presence {
    agents: Mutex<HashMap<String, Entry>>,
}

impl Presence {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.agents
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A connection opened; returns the agent's status.
    pub fn connect(&self, agent: &Agent, now: i64) -> AgentStatus {
        let mut agents = self.lock();
        let entry = agents.entry(agent.id.clone()).or_insert_with(|| Entry {
            agent: agent.clone(),
            connections: 0,
            status: AgentStatus::Online,
            generation: 0,
            idle_since: now,
        });
        entry.agent = agent.clone();
        entry.connections += 1;
        entry.generation += 1;
        entry.status
    }

    /// A connection closed; returns the generation to check after the grace period when it was
    /// the agent's last connection.
    pub fn disconnect(&self, agent_id: &str) -> Option<u64> {
        let mut agents = self.lock();
        let entry = agents.get_mut(agent_id)?;
        entry.connections = entry.connections.saturating_sub(1);
        (entry.connections == 0).then_some(entry.generation)
    }

    /// After the grace period: forgets the agent if nothing reconnected since `generation`.
    pub fn expire(&self, agent_id: &str, generation: u64) -> bool {
        let mut agents = self.lock();
        match agents.get(agent_id) {
            Some(entry) if entry.connections == 0 && entry.generation == generation => {
                agents.remove(agent_id);
                true
            }
            Some(_) => false,
            // Never connected on this node since start-up: its chats are orphans.
            None => true,
        }
    }

    /// The agent connected to another node: a grace timer running here for them must not
    /// requeue their chats.
    pub fn connected_elsewhere(&self, agent_id: &str) {
        if let Some(entry) = self.lock().get_mut(agent_id) {
            if entry.connections == 0 {
                entry.generation += 1;
            }
        }
    }

    pub fn set_status(&self, agent_id: &str, status: AgentStatus) {
        if let Some(entry) = self.lock().get_mut(agent_id) {
            entry.status = status;
        }
    }

    pub fn status(&self, agent_id: &str) -> Option<AgentStatus> {
        self.lock()
            .get(agent_id)
            .filter(|entry| entry.connections > 0)
            .map(|entry| entry.status)
    }

    pub fn touch(&self, agent_id: &str, now: i64) {
        if let Some(entry) = self.lock().get_mut(agent_id) {
            entry.idle_since = now;
        }
    }

    /// Every agent with a live connection to this node.
    pub fn connected_agents(&self) -> Vec<String> {
        self.lock()
            .values()
            .filter(|entry| entry.connections > 0)
            .map(|entry| entry.agent.id.clone())
            .collect()
    }

    /// Connected agents of a tenant whose status is online.
    pub fn available(&self, tenant: &str) -> Vec<Available> {
        self.lock()
            .values()
            .filter(|entry| {
                entry.agent.tenant_id == tenant
                    && entry.connections > 0
                    && entry.status == AgentStatus::Online
            })
            .map(|entry| Available {
                agent: entry.agent.clone(),
                idle_since: entry.idle_since,
            })
            .collect()
    }
}
