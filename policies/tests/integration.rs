//! One integration binary: the wasmtime host against the committed fixtures (built by
//! `policies/build-examples.sh`), and the sensitive-word engine with the real 65k list.

use std::time::{Duration, Instant};

use switchboard_policies::types::{
    AgentLoad, Assessment, ClosedConversation, Customer, Handoff, Message, Route, RoutingDecision,
    SkillGroupSnapshot, Speaker,
};
use switchboard_policies::{
    route_handoff, sample_closed_conversation, sample_handoff, score_conversation, BuiltinQuality,
    BuiltinRouting, DecidedBy, FailureKind, PolicyEngine, PolicyEngineConfig, PolicyError,
    PolicyId, PolicyKind, PolicyLimits, RoutingPolicy,
};

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/fixtures/{name}.wasm", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path)
        .unwrap_or_else(|error| panic!("{path}: {error} (run policies/build-examples.sh)"))
}

/// The default limits, but a wall-time deadline long enough that a loaded CI machine cannot
/// turn a fuel or memory failure into a timeout: each test then sees exactly one failure kind.
/// The deadline itself is tested with the real 10 ms in
/// `infinite_loop_with_ample_fuel_hits_the_wall_time_deadline`.
fn engine() -> PolicyEngine {
    let limits = PolicyLimits {
        wall_time: Duration::from_secs(5),
        ..PolicyLimits::default()
    };
    PolicyEngine::new(PolicyEngineConfig {
        limits,
        ..PolicyEngineConfig::default()
    })
    .unwrap()
}

fn route(group: &str, priority: u8, preferred_agent: Option<&str>) -> RoutingDecision {
    RoutingDecision::Route(Route {
        skill_group: group.into(),
        priority,
        preferred_agent: preferred_agent.map(str::to_owned),
    })
}

/// Loads a hostile fixture past the sample call (which refuses it, see
/// `validation_refuses_every_hostile_fixture_before_activation`), as if it misbehaved only on
/// real traffic.
fn hostile_policy(engine: &PolicyEngine, name: &str) -> RoutingPolicy {
    engine
        .load_routing_without_sample(PolicyId::new("evil", 7), &fixture(name))
        .unwrap()
}

mod examples {
    use super::*;

    #[test]
    fn vip_customers_get_priority_9_in_the_vip_group() {
        let engine = engine();
        let policy = engine
            .load_routing(PolicyId::new("acme", 1), &fixture("vip-routing"))
            .unwrap();
        let mut input = sample_handoff();
        input.customer.vip_level = 3;
        let outcome = policy.route(&input, &BuiltinRouting::default());
        assert_eq!(outcome.decision, route("vip", 9, None));
        assert_eq!(
            outcome.decided_by,
            DecidedBy::Policy(PolicyId::new("acme", 1))
        );
        assert!(outcome.failure.is_none());

        input.customer.vip_level = 0;
        input.customer.crm_tags = vec!["vip".into()];
        assert_eq!(
            policy.route(&input, &BuiltinRouting::default()).decision,
            route("vip", 9, None)
        );

        input.customer.crm_tags.clear();
        assert_eq!(
            policy.route(&input, &BuiltinRouting::default()).decision,
            route("billing", 2, None)
        );
        assert_eq!(engine.metrics().snapshot().routing.ok, 3);
    }

    #[test]
    fn language_routing_picks_the_language_group_and_least_loaded_agent() {
        let engine = engine();
        let policy = engine
            .load_routing(PolicyId::new("acme", 2), &fixture("language-routing"))
            .unwrap();
        let agent = |id: &str, active, max| AgentLoad {
            agent_id: id.into(),
            active_conversations: active,
            max_conversations: max,
        };
        let mut input = sample_handoff();
        input.queues = vec![
            SkillGroupSnapshot {
                name: "zh".into(),
                queue_length: 1,
                online_agents: vec![agent("li", 3, 4), agent("wang", 1, 4)],
            },
            SkillGroupSnapshot {
                name: "en".into(),
                queue_length: 0,
                online_agents: vec![agent("amy", 2, 2)],
            },
        ];
        input.language = "zh-TW".into();
        assert_eq!(
            policy.route(&input, &BuiltinRouting::default()).decision,
            route("zh", 3, Some("wang"))
        );
        input.language = "en-GB".into();
        input.customer.vip_level = 1;
        assert_eq!(
            policy.route(&input, &BuiltinRouting::default()).decision,
            route("en", 4, None),
            "amy is full"
        );
        input.language = "fr".into();
        assert_eq!(
            policy.route(&input, &BuiltinRouting::default()).decision,
            route("general", 4, None)
        );
    }

    #[test]
    fn office_hours_rejects_outside_opening_hours_from_the_given_time() {
        let engine = engine();
        let policy = engine
            .load_routing(PolicyId::new("acme", 3), &fixture("office-hours"))
            .unwrap();
        let mut input = sample_handoff(); // Thursday 10:30 in UTC+8
        assert_eq!(
            policy.route(&input, &BuiltinRouting::default()).decision,
            route("billing", 3, None)
        );

        input.now_unix_ms += 10 * 3_600_000; // Thursday 20:30
        let outcome = policy.route(&input, &BuiltinRouting::default());
        match outcome.decision {
            RoutingDecision::Reject { message } => {
                assert!(message.contains("9:00-18:00"), "{message}")
            }
            other => panic!("expected a rejection, got {other:?}"),
        }
        assert!(outcome.failure.is_none(), "a rejection is a valid answer");

        input.now_unix_ms = sample_handoff().now_unix_ms + 2 * 86_400_000; // Saturday 10:30
        assert!(matches!(
            policy.route(&input, &BuiltinRouting::default()).decision,
            RoutingDecision::Reject { .. }
        ));

        input.utc_offset_minutes = -300; // the same instant is Friday 21:30 in UTC-5: closed
        assert!(matches!(
            policy.route(&input, &BuiltinRouting::default()).decision,
            RoutingDecision::Reject { .. }
        ));
    }

    #[test]
    fn quality_scorer_finds_slow_start_forbidden_phrase_and_unanswered_close() {
        let engine = engine();
        let policy = engine
            .load_quality(PolicyId::new("acme", 1), &fixture("quality-scorer"))
            .unwrap();

        let good = policy.score(&sample_closed_conversation(), &BuiltinQuality::default());
        assert_eq!(
            good.assessment,
            Assessment {
                score: 100,
                findings: vec![]
            }
        );

        let message = |speaker, text: &str, at_s: u64| Message {
            speaker,
            author_id: String::new(),
            text: text.into(),
            at_unix_ms: at_s * 1000,
            attachments: vec![],
        };
        let conversation = ClosedConversation {
            tenant: "acme".into(),
            conversation_id: "c9".into(),
            channel: "wechat".into(),
            language: "zh-CN".into(),
            opened_at_unix_ms: 0,
            handed_off_at_unix_ms: Some(10_000),
            assigned_at_unix_ms: Some(20_000),
            closed_at_unix_ms: 500_000,
            closed_by: Speaker::Agent,
            transcript: vec![
                message(Speaker::Customer, "转人工", 5),
                message(Speaker::Agent, "什么事", 100),
                message(Speaker::Customer, "退款怎么办", 110),
                message(Speaker::Agent, "这个我不知道", 120),
                message(Speaker::Customer, "???", 130),
            ],
        };
        let outcome = policy.score(&conversation, &BuiltinQuality::default());
        let labels: Vec<&str> = outcome
            .assessment
            .findings
            .iter()
            .map(|finding| finding.label.as_str())
            .collect();
        assert_eq!(
            labels,
            [
                "slow_first_response",
                "no_greeting",
                "forbidden_phrase",
                "closed_while_customer_waited"
            ]
        );
        assert_eq!(outcome.assessment.score, 100 - 15 - 5 - 20 - 20);
        assert_eq!(outcome.assessment.findings[2].message_index, Some(3));
        assert!(outcome.failure.is_none());
    }

    #[test]
    fn tenants_without_a_policy_get_the_built_in_decisions() {
        let mut input = sample_handoff();
        input.customer.vip_level = 2;
        let outcome = route_handoff(None, &input, &BuiltinRouting::default());
        assert_eq!(outcome.decision, route("billing", 6, None));
        assert_eq!(outcome.decided_by, DecidedBy::BuiltIn);
        let outcome = score_conversation(
            None,
            &sample_closed_conversation(),
            &BuiltinQuality::default(),
        );
        assert_eq!(outcome.assessment.score, 100);
    }

    #[test]
    fn check_tells_the_world() {
        let engine = engine();
        assert_eq!(
            engine.check(&fixture("vip-routing")).unwrap(),
            PolicyKind::Routing
        );
        assert_eq!(
            engine.check(&fixture("quality-scorer")).unwrap(),
            PolicyKind::Quality
        );
        assert!(matches!(
            engine.check(&fixture("wrong-world")),
            Err(PolicyError::UnknownWorld)
        ));
    }
}

/// WIT 0.2.0 added attachments; components built against 0.1.0 still load and decide the same.
mod versions {
    use super::*;
    use switchboard_policies::types::{Attachment, AttachmentCounts, AttachmentKind};
    use switchboard_policies::WIT_VERSIONS;

    fn attachment(kind: AttachmentKind, name: &str, media_type: &str) -> Attachment {
        Attachment {
            kind,
            name: name.into(),
            media_type: media_type.into(),
            size_bytes: 48_213,
        }
    }

    /// The sample handoff with `attachments` on its customer message, counted as the host does.
    fn handoff_with(attachments: Vec<Attachment>) -> Handoff {
        let mut input = sample_handoff();
        for message in &mut input.last_messages {
            message.attachments.clear();
        }
        let customer = input
            .last_messages
            .iter_mut()
            .find(|message| message.speaker == Speaker::Customer)
            .expect("a customer message");
        customer.attachments = attachments;
        input.customer_attachments = AttachmentCounts::sent_by_customer(&input.last_messages);
        input
    }

    #[test]
    fn claims_routing_reads_what_the_customer_sent() {
        let engine = engine();
        let policy = engine
            .load_routing(PolicyId::new("acme", 4), &fixture("claims-routing"))
            .unwrap();
        assert_eq!(policy.wit_version(), WIT_VERSIONS[0]);
        let decide = |input: &Handoff| {
            let outcome = policy.route(input, &BuiltinRouting::default());
            assert!(outcome.failure.is_none(), "{:?}", outcome.failure);
            outcome.decision
        };
        let photo = attachment(AttachmentKind::Image, "broken cup.jpg", "image/jpeg");
        let invoice = attachment(AttachmentKind::File, "invoice.pdf", "application/pdf");
        let sheet = attachment(
            AttachmentKind::File,
            "order.xlsx",
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        );
        let mut input = handoff_with(vec![photo.clone(), invoice.clone()]);
        input.skill_hint = None;
        assert_eq!(decide(&input), route("claims", 6, None));

        let mut input = handoff_with(vec![invoice]);
        input.skill_hint = None;
        assert_eq!(decide(&input), route("billing", 5, None));

        let mut input = handoff_with(vec![sheet]);
        input.skill_hint = None;
        assert_eq!(decide(&input), route("general", 4, None));

        // Counted over messages older than the last ones: the count alone decides.
        let mut input = handoff_with(vec![]);
        input.skill_hint = None;
        assert_eq!(decide(&input), route("general", 2, None));
        input.customer_attachments = AttachmentCounts {
            images: 2,
            files: 0,
        };
        assert_eq!(decide(&input), route("claims", 6, None));

        // An agent's attachment is not the customer's.
        let mut input = handoff_with(vec![]);
        input.skill_hint = None;
        let agent_message = Message {
            speaker: Speaker::Agent,
            author_id: "a1".into(),
            text: "label attached".into(),
            at_unix_ms: 1_767_234_602_000,
            attachments: vec![photo],
        };
        input.last_messages.push(agent_message);
        input.customer_attachments = AttachmentCounts::sent_by_customer(&input.last_messages);
        assert_eq!(input.customer_attachments.total(), 0);
        assert_eq!(decide(&input), route("general", 2, None));
    }

    #[test]
    fn components_built_against_0_1_0_still_load_and_decide_the_same() {
        let engine = engine();
        let current = engine
            .load_routing(PolicyId::new("acme", 1), &fixture("vip-routing"))
            .unwrap();
        let legacy = engine
            .load_routing(PolicyId::new("acme", 2), &fixture("legacy-vip-routing"))
            .unwrap();
        assert_eq!(WIT_VERSIONS, ["0.2.0", "0.1.0"]);
        assert_eq!(current.wit_version(), "0.2.0");
        assert_eq!(legacy.wit_version(), "0.1.0");
        assert_eq!(
            engine.check(&fixture("legacy-vip-routing")).unwrap(),
            PolicyKind::Routing
        );
        for (vip_level, tags, attachments) in [
            (3, vec![], vec![]),
            (0, vec!["vip".to_owned()], vec![]),
            (0, vec![], vec![]),
            (
                1,
                vec![],
                vec![attachment(AttachmentKind::Image, "a.png", "image/png")],
            ),
        ] {
            let mut input = handoff_with(attachments);
            input.customer.vip_level = vip_level;
            input.customer.crm_tags = tags;
            let old = legacy.route(&input, &BuiltinRouting::default());
            let new = current.route(&input, &BuiltinRouting::default());
            assert!(old.failure.is_none() && new.failure.is_none());
            assert_eq!(old.decision, new.decision, "{input:?}");
        }
    }

    #[test]
    fn quality_policies_see_attachments_only_from_0_2_0() {
        let engine = engine();
        let current = engine
            .load_quality(PolicyId::new("acme", 1), &fixture("quality-scorer"))
            .unwrap();
        let legacy = engine
            .load_quality(PolicyId::new("acme", 2), &fixture("legacy-quality-scorer"))
            .unwrap();
        assert_eq!(
            (current.wit_version(), legacy.wit_version()),
            ("0.2.0", "0.1.0")
        );
        let message = |speaker, text: &str, at_s: u64, attachments: Vec<Attachment>| Message {
            speaker,
            author_id: String::new(),
            text: text.into(),
            at_unix_ms: at_s * 1000,
            attachments,
        };
        let photo = attachment(AttachmentKind::Image, "damaged parcel.jpg", "image/jpeg");
        let conversation = ClosedConversation {
            tenant: "acme".into(),
            conversation_id: "c10".into(),
            channel: "web".into(),
            language: "zh-CN".into(),
            opened_at_unix_ms: 0,
            handed_off_at_unix_ms: Some(10_000),
            assigned_at_unix_ms: Some(20_000),
            closed_at_unix_ms: 900_000,
            closed_by: Speaker::Customer,
            transcript: vec![
                message(Speaker::Customer, "转人工", 5, vec![]),
                message(Speaker::Agent, "您好，请讲", 25, vec![]),
                message(Speaker::Customer, "", 40, vec![photo]),
                // Answered ten minutes later: past the scorer's two minutes.
                message(Speaker::Agent, "您好，收到", 640, vec![]),
                message(Speaker::Customer, "谢谢", 650, vec![]),
            ],
        };
        let new = current.score(&conversation, &BuiltinQuality::default());
        let old = legacy.score(&conversation, &BuiltinQuality::default());
        assert!(new.failure.is_none() && old.failure.is_none());
        assert_eq!(
            old.assessment,
            Assessment {
                score: 100,
                findings: vec![]
            }
        );
        assert_eq!(new.assessment.score, 90);
        assert_eq!(new.assessment.findings.len(), 1);
        let finding = &new.assessment.findings[0];
        assert_eq!(finding.label, "attachment_unanswered");
        assert_eq!(finding.message_index, Some(2));
        assert!(
            finding.detail.contains("damaged parcel.jpg"),
            "{}",
            finding.detail
        );
    }
}

mod hostile {
    use super::*;

    /// A hostile call must come back well within this (5 M fuel is a few ms of CPU; a debug host
    /// and a loaded 2-core machine get slack).
    const FAST: Duration = Duration::from_millis(1000);

    fn assert_contained(engine: &PolicyEngine, policy: &RoutingPolicy, expected: FailureKind) {
        let mut input = sample_handoff();
        input.customer.vip_level = 1;
        let before = engine.metrics().snapshot().routing.get(expected);
        let started = Instant::now();
        let outcome = policy.route(&input, &BuiltinRouting::default());
        let elapsed = started.elapsed();
        assert!(elapsed < FAST, "{expected} took {elapsed:?}");
        assert_eq!(outcome.decided_by, DecidedBy::BuiltIn);
        assert_eq!(
            outcome.decision,
            BuiltinRouting::default().route(&input),
            "the built-in decision is used"
        );
        let failure = outcome.failure.expect("a failure record");
        assert_eq!(failure.kind, expected, "{failure}");
        assert_eq!(failure.policy, PolicyId::new("evil", 7));
        assert_eq!(failure.policy_kind, PolicyKind::Routing);
        assert_eq!(
            engine.metrics().snapshot().routing.get(expected),
            before + 1,
            "the failure is counted"
        );
    }

    #[test]
    fn infinite_loop_runs_out_of_fuel() {
        let engine = engine();
        let policy = hostile_policy(&engine, "hostile-loop");
        assert_contained(&engine, &policy, FailureKind::OutOfFuel);
    }

    #[test]
    fn infinite_loop_with_ample_fuel_hits_the_wall_time_deadline() {
        let limits = PolicyLimits {
            fuel: u64::MAX / 2,
            ..PolicyLimits::default()
        };
        let engine = PolicyEngine::new(PolicyEngineConfig {
            limits,
            ..PolicyEngineConfig::default()
        })
        .unwrap();
        let policy = hostile_policy(&engine, "hostile-loop");
        let started = Instant::now();
        assert_contained(&engine, &policy, FailureKind::Timeout);
        assert!(
            started.elapsed() >= Duration::from_millis(8),
            "the deadline is about 10 ms"
        );
    }

    #[test]
    fn memory_bomb_hits_the_memory_cap() {
        let engine = engine();
        let policy = hostile_policy(&engine, "hostile-memory");
        assert_contained(&engine, &policy, FailureKind::MemoryLimit);
    }

    #[test]
    fn trap_is_contained() {
        let engine = engine();
        let policy = hostile_policy(&engine, "hostile-trap");
        assert_contained(&engine, &policy, FailureKind::Trap);
        // The next call starts from a fresh store and fails the same way, nothing leaks.
        assert_contained(&engine, &policy, FailureKind::Trap);
    }

    #[test]
    fn invalid_answer_is_contained() {
        let engine = engine();
        let policy = hostile_policy(&engine, "hostile-invalid");
        assert_contained(&engine, &policy, FailureKind::InvalidAnswer);
    }

    /// An answer of 4 MiB is refused while it is copied out of the guest (at 1 MiB), not copied
    /// whole and then found too long.
    #[test]
    fn an_oversized_answer_is_refused_before_it_is_copied_whole() {
        let engine = engine();
        let policy = hostile_policy(&engine, "hostile-answer");
        assert_contained(&engine, &policy, FailureKind::InvalidAnswer);
        let failure = policy
            .route(&sample_handoff(), &BuiltinRouting::default())
            .failure
            .expect("a failure record");
        assert!(
            failure.detail.contains("larger than 1048576 bytes"),
            "{failure}"
        );
    }

    #[test]
    fn validation_refuses_every_hostile_fixture_before_activation() {
        let engine = engine();
        for (name, kind) in [
            ("hostile-loop", FailureKind::OutOfFuel),
            ("hostile-memory", FailureKind::MemoryLimit),
            ("hostile-trap", FailureKind::Trap),
            ("hostile-invalid", FailureKind::InvalidAnswer),
            ("hostile-answer", FailureKind::InvalidAnswer),
        ] {
            match engine.load_routing(PolicyId::new("evil", 1), &fixture(name)) {
                Err(PolicyError::SampleFailed { kind: got, .. }) => assert_eq!(got, kind, "{name}"),
                other => panic!("{name}: expected a failed sample call, got {other:?}"),
            }
        }
    }

    #[test]
    fn wrong_world_is_rejected_at_validation() {
        let engine = engine();
        let error = engine
            .load_routing(PolicyId::new("evil", 1), &fixture("wrong-world"))
            .unwrap_err();
        assert!(
            matches!(
                error,
                PolicyError::WrongWorld {
                    expected: PolicyKind::Routing,
                    ..
                }
            ),
            "{error}"
        );
        assert_eq!(error.code(), "wrong_world");
        // A real policy of the other world is the wrong world too.
        let error = engine
            .load_quality(PolicyId::new("acme", 1), &fixture("vip-routing"))
            .unwrap_err();
        assert!(
            matches!(
                error,
                PolicyError::WrongWorld {
                    expected: PolicyKind::Quality,
                    ..
                }
            ),
            "{error}"
        );
        let error = engine
            .load_routing(PolicyId::new("acme", 1), &fixture("quality-scorer"))
            .unwrap_err();
        assert!(
            matches!(
                error,
                PolicyError::WrongWorld {
                    expected: PolicyKind::Routing,
                    ..
                }
            ),
            "{error}"
        );
    }

    #[test]
    fn imports_are_refused() {
        let engine = engine();
        let error = engine
            .load_routing(PolicyId::new("evil", 1), &fixture("hostile-import"))
            .unwrap_err();
        match &error {
            PolicyError::ForbiddenImport(names) => {
                assert!(names.contains("evil:policy/outside"), "{names}")
            }
            other => panic!("expected a forbidden import, got {other:?}"),
        }
        let message = error.to_string();
        assert!(
            message.chars().next().is_some_and(char::is_lowercase) && !message.ends_with('.'),
            "{message}"
        );
    }

    #[test]
    fn garbage_bytes_are_typed_errors() {
        let engine = engine();
        let id = || PolicyId::new("evil", 1);
        assert!(matches!(
            engine.load_routing(id(), b""),
            Err(PolicyError::Empty)
        ));
        assert!(matches!(
            engine.load_routing(id(), b"hello, world"),
            Err(PolicyError::NotAComponent(_))
        ));
        // A core module header (version 1, layer 0) is not a component.
        let core_module = b"\0asm\x01\x00\x00\x00";
        assert!(matches!(
            engine.load_routing(id(), core_module),
            Err(PolicyError::NotAComponent(_))
        ));
        // A component header followed by garbage does not compile.
        let mut broken = b"\0asm\x0d\x00\x01\x00".to_vec();
        broken.extend_from_slice(&[0xff; 64]);
        assert!(matches!(
            engine.load_routing(id(), &broken),
            Err(PolicyError::Compile(_))
        ));
        // A good component cut in half does not compile either.
        let vip = fixture("vip-routing");
        assert!(matches!(
            engine.load_routing(id(), &vip[..vip.len() / 2]),
            Err(PolicyError::Compile(_))
        ));
        let small = PolicyEngine::new(PolicyEngineConfig {
            limits: PolicyLimits {
                max_component_bytes: 1024,
                ..PolicyLimits::default()
            },
            ..PolicyEngineConfig::default()
        })
        .unwrap();
        assert!(matches!(
            small.load_routing(id(), &vip),
            Err(PolicyError::TooLarge { limit: 1024, .. })
        ));
    }
}

mod cache {
    use super::*;

    #[test]
    fn reloading_the_same_bytes_hits_the_compile_cache() {
        let engine = engine();
        let bytes = fixture("vip-routing");
        let started = Instant::now();
        let first = engine
            .load_routing(PolicyId::new("acme", 1), &bytes)
            .unwrap();
        let cold = started.elapsed();
        let started = Instant::now();
        let second = engine
            .load_routing(PolicyId::new("other-tenant", 4), &bytes)
            .unwrap();
        let warm = started.elapsed();
        let metrics = engine.metrics().snapshot();
        assert_eq!((metrics.cache_misses, metrics.cache_hits), (1, 1));
        assert_eq!(engine.cached_components(), 1);
        assert_eq!(first.content_hash(), second.content_hash());
        assert_eq!(
            second.id(),
            &PolicyId::new("other-tenant", 4),
            "the cache shares code, not identity"
        );
        assert!(warm < cold, "warm {warm:?} vs cold {cold:?}");
    }

    #[test]
    fn cache_is_bounded() {
        let engine = PolicyEngine::new(PolicyEngineConfig {
            cache_capacity: 1,
            ..PolicyEngineConfig::default()
        })
        .unwrap();
        engine
            .load_routing(PolicyId::new("a", 1), &fixture("vip-routing"))
            .unwrap();
        engine
            .load_routing(PolicyId::new("a", 2), &fixture("office-hours"))
            .unwrap();
        assert_eq!(engine.cached_components(), 1);
    }

    #[test]
    fn disk_cache_directory_is_used() {
        let dir = tempfile::tempdir().unwrap();
        let config = PolicyEngineConfig {
            disk_cache_dir: Some(dir.path().to_owned()),
            ..PolicyEngineConfig::default()
        };
        let engine = PolicyEngine::new(config).unwrap();
        engine
            .load_routing(PolicyId::new("a", 1), &fixture("vip-routing"))
            .unwrap();
        drop(engine);
        let files = walk(dir.path());
        assert!(files > 0, "compiled code was written to the disk cache");
    }

    fn walk(path: &std::path::Path) -> usize {
        std::fs::read_dir(path)
            .map(|entries| {
                entries
                    .flatten()
                    .map(|entry| {
                        if entry.path().is_dir() {
                            walk(&entry.path())
                        } else {
                            1
                        }
                    })
                    .sum()
            })
            .unwrap_or(0)
    }
}

mod metrics {
    use super::*;

    #[test]
    fn prometheus_text_has_every_outcome() {
        let engine = engine();
        let policy = engine
            .load_routing(PolicyId::new("acme", 1), &fixture("vip-routing"))
            .unwrap();
        policy.route(&sample_handoff(), &BuiltinRouting::default());
        let mut text = String::new();
        engine.metrics().render_prometheus(&mut text);
        assert!(
            text.contains("switchboard_policy_calls_total{kind=\"routing\",outcome=\"ok\"} 1"),
            "{text}"
        );
        assert!(text.contains(
            "switchboard_policy_calls_total{kind=\"quality\",outcome=\"memory_limit\"} 0"
        ));
        assert!(text.contains("switchboard_policy_compile_cache_total{result=\"miss\"} 1"));
    }

    #[test]
    fn calls_run_in_parallel_from_one_policy() {
        let engine = engine();
        let policy = engine
            .load_routing(PolicyId::new("acme", 1), &fixture("vip-routing"))
            .unwrap();
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let policy = policy.clone();
                std::thread::spawn(move || {
                    for _ in 0..50 {
                        let outcome = policy.route(&sample_handoff(), &BuiltinRouting::default());
                        assert!(outcome.failure.is_none(), "{:?}", outcome.failure);
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        assert_eq!(engine.metrics().snapshot().routing.ok, 200);
    }
}

#[test]
fn inputs_read_from_json() {
    let input: Handoff = serde_json::from_value(serde_json::json!({
        "tenant": "acme", "conversation_id": "c1", "channel": "web",
        "customer": {"id": "u1", "vip_level": 4},
        "language": "en", "handoff_reason": "complaint", "now_unix_ms": 0
    }))
    .unwrap();
    assert_eq!(
        input.customer,
        Customer {
            id: "u1".into(),
            vip_level: 4,
            ..Customer::default()
        }
    );
    let json = serde_json::to_value(route("vip", 9, None)).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"decision": "route", "skill_group": "vip", "priority": 9, "preferred_agent": null})
    );
}

mod sensitive_words_65k {
    use switchboard_policies::sensitive::{Action, SensitiveWords, WordList};

    #[test]
    fn the_shared_65k_list_builds_and_catches_evasions() {
        let path = format!(
            "{}/../../shared/eval/sensitive_words_zh_65k.txt",
            env!("CARGO_MANIFEST_DIR")
        );
        let Ok(text) = std::fs::read_to_string(&path) else {
            eprintln!("skipped: {path} is not there");
            return;
        };
        let list = WordList::from_plain_text("zh65k", Action::Block, &text).unwrap();
        assert!(list.words().len() > 65_000, "{}", list.words().len()); // 65,143 lines, 2 duplicates
        let words = SensitiveWords::build(std::slice::from_ref(&list)).unwrap();
        assert!(words.stats().patterns > 60_000, "{:?}", words.stats());

        let verdict = words.check("请问 ０８ 宪·章 是什么");
        assert_eq!(verdict.action, Action::Block);
        let found = verdict
            .matches
            .iter()
            .find(|found| found.word == "08宪章")
            .expect("08宪章 found");
        assert_eq!((found.start, found.end), (3, 9));
        assert_eq!(verdict.masked, "请问 ****** 是什么");
        assert_eq!(
            words.check("您好，请问订单什么时候发货").action,
            Action::Allow
        );
    }
}
