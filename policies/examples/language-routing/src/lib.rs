//! Routes by conversation language: `zh-*` → `zh`, `en-*` → `en`, any other primary subtag `xx`
//! → `xx` when that group exists in the queue snapshot, else `general`. Prefers the online agent
//! of the group with the most spare capacity; priority 4 for VIPs, else 3.

wit_bindgen::generate!({ path: "../../wit", world: "routing" });

use switchboard::policy::types::{Route, SkillGroupSnapshot};

struct LanguageRouting;

fn least_loaded_agent(group: &SkillGroupSnapshot) -> Option<String> {
    group
        .online_agents
        .iter()
        .filter(|agent| agent.active_conversations < agent.max_conversations)
        .max_by_key(|agent| agent.max_conversations - agent.active_conversations)
        .map(|agent| agent.agent_id.clone())
}

impl Guest for LanguageRouting {
    fn route(input: Handoff) -> RoutingDecision {
        let primary = input
            .language
            .split(['-', '_'])
            .next()
            .unwrap_or("")
            .to_ascii_lowercase();
        let group = input.queues.iter().find(|queue| queue.name == primary);
        let priority = if input.customer.vip_level > 0 { 4 } else { 3 };
        match group {
            Some(group) => RoutingDecision::Route(Route {
                skill_group: group.name.clone(),
                priority,
                preferred_agent: least_loaded_agent(group),
            }),
            None => RoutingDecision::Route(Route {
                skill_group: "general".into(),
                priority,
                preferred_agent: None,
            }),
        }
    }
}

export!(LanguageRouting);
