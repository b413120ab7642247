//! Routes by what the customer sent (WIT 0.2.0): a customer who sent photos (a damaged parcel, a
//! broken cup) goes to the `claims` group at priority 6; one whose recent messages carry a PDF
//! (an invoice, a receipt) to `billing` at priority 5; one who sent other files to the skill hint
//! (or `general`) at priority 4, since someone has to open them; everyone else to the skill hint
//! (or `general`) at priority 2.

wit_bindgen::generate!({ path: "../../wit", world: "routing" });

use switchboard::policy::types::{AttachmentKind, Route, Speaker};

struct ClaimsRouting;

fn route(group: String, priority: u8) -> RoutingDecision {
    RoutingDecision::Route(Route {
        skill_group: group,
        priority,
        preferred_agent: None,
    })
}

impl Guest for ClaimsRouting {
    fn route(input: Handoff) -> RoutingDecision {
        // The whole conversation so far (since it was opened or reopened), counted by the host.
        let sent = input.customer_attachments;
        if sent.images > 0 {
            return route("claims".into(), 6);
        }
        // The last messages carry each attachment, with the media type the host sniffed.
        let sent_pdf = input
            .last_messages
            .iter()
            .filter(|message| message.speaker == Speaker::Customer)
            .flat_map(|message| &message.attachments)
            .any(|attachment| {
                attachment.kind == AttachmentKind::File
                    && attachment.media_type == "application/pdf"
            });
        if sent_pdf {
            return route("billing".into(), 5);
        }
        let hint = input
            .skill_hint
            .filter(|hint| !hint.is_empty())
            .unwrap_or_else(|| "general".into());
        route(hint, if sent.files > 0 { 4 } else { 2 })
    }
}

export!(ClaimsRouting);
