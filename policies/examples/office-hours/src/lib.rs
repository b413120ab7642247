//! Opening hours Monday to Friday 09:00–18:00 in the tenant's time zone, computed from the time
//! the host passes in (a policy has no clock). Outside them the customer gets a message instead of
//! a queue; inside, the conversation goes to the skill hint (or `general`) at priority 3.

wit_bindgen::generate!({ path: "../../wit", world: "routing" });

use switchboard::policy::types::Route;

struct OfficeHours;

const OPEN_MINUTE: i64 = 9 * 60;
const CLOSE_MINUTE: i64 = 18 * 60;

impl Guest for OfficeHours {
    fn route(input: Handoff) -> RoutingDecision {
        let local_minutes =
            (input.now_unix_ms / 60_000) as i64 + i64::from(input.utc_offset_minutes);
        let minute_of_day = local_minutes.rem_euclid(24 * 60);
        // 1970-01-01 was a Thursday: day 0 → weekday 3 with Monday = 0.
        let weekday = (local_minutes.div_euclid(24 * 60) + 3).rem_euclid(7);
        let open = weekday < 5 && (OPEN_MINUTE..CLOSE_MINUTE).contains(&minute_of_day);
        if !open {
            return RoutingDecision::Reject(
                "人工客服工作时间为周一至周五 9:00-18:00，请在工作时间再联系我们。Our agents are available Monday to Friday, 9:00-18:00."
                    .into(),
            );
        }
        let group = input
            .skill_hint
            .filter(|hint| !hint.is_empty())
            .unwrap_or_else(|| "general".into());
        RoutingDecision::Route(Route {
            skill_group: group,
            priority: 3,
            preferred_agent: None,
        })
    }
}

export!(OfficeHours);
