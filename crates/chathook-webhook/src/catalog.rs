//! The event catalog: one row per event kind giving its description, the feature switch it needs, its
//! name and batching route in each flavour, and its sample. Everything that describes an event type
//! (selection by name, `GET /v1/webhooks/event-types`, feature gating, routing, test deliveries) reads
//! this table; adding a flavour adds a column here.

use chathook_events::{Event, EventKind};

use crate::features::{Feature, Features};
use crate::sample;

/// How the wukongim flavour sends an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// One delivery per event.
    Single,
    /// Batched into `msg.notify`.
    Notify,
    /// Batched into `user.onlinestatus`.
    Status,
}

/// One event kind as the webhook engine knows it.
pub struct EventType {
    pub kind: EventKind,
    pub description: &'static str,
    /// The switch that must be on for the event to be delivered, if any.
    pub feature: Option<Feature>,
    /// The `?event=` name in the wukongim flavour.
    pub wukongim: &'static str,
    /// How the wukongim flavour sends it: alone, or batched into `msg.notify` / `user.onlinestatus`.
    pub wukongim_route: Route,
    /// WuKongIM itself has this webhook (the others are chathook's additions, sent by native name).
    pub wukongim_own: bool,
    /// Tencent Cloud Chat's `CallbackCommand`s for it (a message's: the person channel's, then the
    /// group's); empty when the tencent flavour does not send it.
    pub tencent: &'static [&'static str],
    /// An example of the event, for the listing and for test deliveries.
    pub sample: fn() -> Event,
}

/// The catalog, in the order of [`EventKind::ALL`] (a test holds it there), so that `entry` is an index.
const CATALOG: [EventType; EventKind::ALL.len()] = [
    EventType {
        kind: EventKind::UserOnline,
        description: "A device connection authenticated.",
        feature: Some(Feature::OnlineStatusNotify),
        wukongim: "user.onlinestatus",
        wukongim_route: Route::Status,
        wukongim_own: true,
        tencent: &["State.StateChange"],
        sample: sample::user_online,
    },
    EventType {
        kind: EventKind::UserOffline,
        description: "A device connection ended (with the reason).",
        feature: Some(Feature::OnlineStatusNotify),
        wukongim: "user.onlinestatus",
        wukongim_route: Route::Status,
        wukongim_own: true,
        tencent: &["State.StateChange"],
        sample: sample::user_offline,
    },
    EventType {
        kind: EventKind::ProfileChanged,
        description: "A user's profile was written.",
        feature: Some(Feature::ProfileChangeSubscription),
        wukongim: "user.profile_changed",
        wukongim_route: Route::Single,
        wukongim_own: false,
        tencent: &["Profile.CallbackPortraitSet"],
        sample: sample::profile_changed,
    },
    EventType {
        kind: EventKind::MessageSent,
        description: "Every accepted message.",
        feature: None,
        wukongim: "msg.notify",
        wukongim_route: Route::Notify,
        wukongim_own: true,
        tencent: &["C2C.CallbackAfterSendMsg", "Group.CallbackAfterSendMsg"],
        sample: sample::message_sent,
    },
    EventType {
        kind: EventKind::MessageOffline,
        description: "A message with recipients that had no primary connection.",
        feature: None,
        wukongim: "msg.offline",
        wukongim_route: Route::Single,
        wukongim_own: true,
        tencent: &[],
        sample: sample::message_offline,
    },
    EventType {
        kind: EventKind::GroupCreated,
        description: "A group was created with its first subscribers.",
        feature: None,
        wukongim: "group.created",
        wukongim_route: Route::Single,
        wukongim_own: false,
        tencent: &["Group.CallbackAfterCreateGroup"],
        sample: sample::group_created,
    },
    EventType {
        kind: EventKind::GroupMemberAdded,
        description: "Subscribers joined a group.",
        feature: None,
        wukongim: "group.member_added",
        wukongim_route: Route::Single,
        wukongim_own: false,
        tencent: &["Group.CallbackAfterNewMemberJoin"],
        sample: sample::group_member_added,
    },
    EventType {
        kind: EventKind::GroupMemberRemoved,
        description: "Subscribers left a group.",
        feature: None,
        wukongim: "group.member_removed",
        wukongim_route: Route::Single,
        wukongim_own: false,
        tencent: &["Group.CallbackAfterMemberExit"],
        sample: sample::group_member_removed,
    },
    EventType {
        kind: EventKind::GroupDismissed,
        description: "A group was disbanded or deleted.",
        feature: None,
        wukongim: "group.dismissed",
        wukongim_route: Route::Single,
        wukongim_own: false,
        tencent: &["Group.CallbackAfterGroupDestroyed"],
        sample: sample::group_dismissed,
    },
    EventType {
        kind: EventKind::GroupMemberOnlineStatus,
        description: "A member of a live group went online or offline.",
        feature: Some(Feature::LiveGroupMemberStatus),
        wukongim: "group.member_online_status",
        wukongim_route: Route::Single,
        wukongim_own: false,
        tencent: &["Group.CallbackOnMemberStateChange"],
        sample: sample::group_member_online_status,
    },
    EventType {
        kind: EventKind::Foreign,
        description:
            "Relay mode: another IM server's webhook that chathook has no typed event for, \
                      delivered as it came (to its own flavour, and to the standard flavour as \
                      `tencent.<CallbackCommand>` or `wukongim.<event>` with the body in `data`).",
        feature: None,
        wukongim: "foreign",
        wukongim_route: Route::Single,
        wukongim_own: false,
        tencent: &[],
        sample: sample::foreign,
    },
    EventType {
        kind: EventKind::EndpointFailing,
        description: "An endpoint failed `webhook.failing_notice_after` attempts in a row (once per run of failures), with the last error. Operational: standard flavour only, never to the endpoint it concerns.",
        feature: None,
        wukongim: "endpoint.failing",
        wukongim_route: Route::Single,
        wukongim_own: false,
        tencent: &[],
        sample: sample::endpoint_failing,
    },
    EventType {
        kind: EventKind::EndpointRecovered,
        description: "The first success of an endpoint that was reported failing. Operational.",
        feature: None,
        wukongim: "endpoint.recovered",
        wukongim_route: Route::Single,
        wukongim_own: false,
        tencent: &[],
        sample: sample::endpoint_recovered,
    },
    EventType {
        kind: EventKind::EndpointBreakerOpen,
        description: "An endpoint's circuit breaker opened: deliveries pause but for a probe now and then. Operational.",
        feature: None,
        wukongim: "endpoint.breaker_open",
        wukongim_route: Route::Single,
        wukongim_own: false,
        tencent: &[],
        sample: sample::endpoint_breaker_open,
    },
    EventType {
        kind: EventKind::EndpointDisabled,
        description: "The server disabled an endpoint (410 Gone, or failing for `webhook.disable_after`), with why. Operational.",
        feature: None,
        wukongim: "endpoint.disabled",
        wukongim_route: Route::Single,
        wukongim_own: false,
        tencent: &[],
        sample: sample::endpoint_disabled,
    },
    EventType {
        kind: EventKind::EndpointEnabled,
        description: "An endpoint the server had disabled was enabled again by the operator. Operational.",
        feature: None,
        wukongim: "endpoint.enabled",
        wukongim_route: Route::Single,
        wukongim_own: false,
        tencent: &[],
        sample: sample::endpoint_enabled,
    },
    EventType {
        kind: EventKind::DeliveryExhausted,
        description: "Deliveries of an endpoint ran out of retries and were dead-lettered: the first at once, then one notice per `webhook.exhausted_notice_window` with the count. Operational.",
        feature: None,
        wukongim: "delivery.exhausted",
        wukongim_route: Route::Single,
        wukongim_own: false,
        tencent: &[],
        sample: sample::delivery_exhausted,
    },
    EventType {
        kind: EventKind::RelayRefused,
        description: "A relay source's ingest refused at least `relay.refused_notice_after` requests in `relay.refused_notice_window` (counts by reason). Operational.",
        feature: None,
        wukongim: "relay.refused",
        wukongim_route: Route::Single,
        wukongim_own: false,
        tencent: &[],
        sample: sample::relay_refused,
    },
];

/// The catalog row of `kind`.
pub fn entry(kind: EventKind) -> &'static EventType {
    &CATALOG[kind as usize]
}

/// Every row, in the order of [`EventKind::ALL`].
pub fn rows() -> &'static [EventType] {
    &CATALOG
}

/// Whether events of `kind` are delivered under the switches `features`.
pub fn allowed(features: &Features, kind: EventKind) -> bool {
    entry(kind).feature.is_none_or(|f| features.is_on(f))
}

/// The kinds WuKongIM itself sends webhooks for: what a `webhook.httpAddr` endpoint gets when
/// `focusEvents` is empty, as in WuKongIM.
pub fn wukongim_own() -> Vec<EventKind> {
    CATALOG
        .iter()
        .filter(|t| t.wukongim_own)
        .map(|t| t.kind)
        .collect()
}

/// The kinds selected by `name`: a native name, or a name of another flavour that stands for one or
/// more kinds (WuKongIM's `msg.notify`, `msg.offline`, `user.onlinestatus`; Tencent's commands, such
/// as `State.StateChange` or `C2C.CallbackAfterSendMsg`). `None` when unknown.
pub fn resolve(name: &str) -> Option<Vec<EventKind>> {
    if let Some(kind) = EventKind::from_name(name) {
        return Some(vec![kind]);
    }
    let mapped: Vec<EventKind> = CATALOG
        .iter()
        .filter(|t| t.wukongim == name || t.tencent.contains(&name))
        .map(|t| t.kind)
        .collect();
    (!mapped.is_empty()).then_some(mapped)
}

/// The channel types whose messages a selection means when it names Tencent's after-send commands
/// for one channel type only: `[1]` for `C2C.CallbackAfterSendMsg` alone, `[2]` for
/// `Group.CallbackAfterSendMsg` alone; empty (every channel) otherwise.
pub fn message_channel_types(names: &[String]) -> Vec<u8> {
    let commands = entry(EventKind::MessageSent).tencent;
    let named = |c: &str| names.iter().any(|n| n == c);
    let (person, group) = (named(commands[0]), named(commands[1]));
    let by_other_name = names.iter().any(|n| {
        !commands.contains(&n.as_str())
            && resolve(n).is_some_and(|kinds| kinds.contains(&EventKind::MessageSent))
    });
    match (person, group, by_other_name) {
        (true, false, false) => vec![1],
        (false, true, false) => vec![2],
        _ => Vec::new(),
    }
}

/// A sample of `kind` as logged at position 0.
pub fn sample(kind: EventKind) -> chathook_events::LoggedEvent {
    chathook_events::LoggedEvent {
        position: 0,
        at_ms: sample::AT_MS,
        event: (entry(kind).sample)(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_row_per_kind_in_order_with_a_sample_of_that_kind() {
        for (i, kind) in EventKind::ALL.into_iter().enumerate() {
            let row = &CATALOG[i];
            assert_eq!(row.kind, kind);
            let sample = (row.sample)();
            assert_eq!(sample.kind(), kind);
            // the event log stores `type` by serde tag: it must be the kind's name
            let v = serde_json::to_value(&sample).unwrap();
            assert_eq!(v["type"], kind.name());
            assert_eq!(serde_json::from_value::<Event>(v).unwrap(), sample);
        }
    }

    #[test]
    fn each_switch_gates_its_events_only() {
        let all_off = Features {
            online_status_notify: false,
            profile_change_subscription: false,
            live_group_member_status: false,
        };
        assert!(!allowed(&all_off, EventKind::UserOnline));
        assert!(!allowed(&all_off, EventKind::UserOffline));
        assert!(!allowed(&all_off, EventKind::ProfileChanged));
        assert!(!allowed(&all_off, EventKind::GroupMemberOnlineStatus));
        assert!(allowed(&all_off, EventKind::MessageSent));
        let profiles = Features {
            profile_change_subscription: true,
            ..all_off
        };
        assert!(allowed(&profiles, EventKind::ProfileChanged));
        assert!(!allowed(&profiles, EventKind::UserOnline));
    }

    #[test]
    fn names_of_either_flavour_resolve() {
        assert_eq!(resolve("message.sent"), Some(vec![EventKind::MessageSent]));
        assert_eq!(resolve("msg.notify"), Some(vec![EventKind::MessageSent]));
        assert_eq!(
            resolve("user.onlinestatus"),
            Some(vec![EventKind::UserOnline, EventKind::UserOffline])
        );
        assert_eq!(
            resolve("group.created"),
            Some(vec![EventKind::GroupCreated])
        );
        assert_eq!(
            resolve("State.StateChange"),
            Some(vec![EventKind::UserOnline, EventKind::UserOffline])
        );
        assert_eq!(
            resolve("Group.CallbackAfterSendMsg"),
            Some(vec![EventKind::MessageSent])
        );
        assert_eq!(resolve("nope"), None);
    }

    #[test]
    fn tencent_after_send_names_select_their_channel_type() {
        let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            message_channel_types(&names(&["C2C.CallbackAfterSendMsg"])),
            vec![1]
        );
        assert_eq!(
            message_channel_types(&names(&["Group.CallbackAfterSendMsg", "State.StateChange"])),
            vec![2]
        );
        assert!(message_channel_types(&names(&[
            "C2C.CallbackAfterSendMsg",
            "Group.CallbackAfterSendMsg"
        ]))
        .is_empty());
        assert!(
            message_channel_types(&names(&["C2C.CallbackAfterSendMsg", "message.sent"])).is_empty()
        );
    }
}
