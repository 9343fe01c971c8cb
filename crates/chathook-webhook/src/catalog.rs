//! The event types an endpoint may select: native names, their WuKongIM names, descriptions, the
//! feature switch each needs, and example bodies (`GET /v1/webhooks/event-types`).

use serde_json::{json, Value};

use crate::features::Features;

/// One selectable event type.
pub struct EventType {
    pub name: &'static str,
    pub description: &'static str,
    /// The `?event=` name in the wukongim flavour.
    pub wukongim: &'static str,
}

pub const EVENT_TYPES: [EventType; 10] = [
    EventType {
        name: "user.online",
        description: "A device connection authenticated.",
        wukongim: "user.onlinestatus",
    },
    EventType {
        name: "user.offline",
        description: "A device connection ended (with the reason).",
        wukongim: "user.onlinestatus",
    },
    EventType {
        name: "user.profile_changed",
        description: "A user's profile was written.",
        wukongim: "user.profile_changed",
    },
    EventType {
        name: "message.sent",
        description: "Every accepted message.",
        wukongim: "msg.notify",
    },
    EventType {
        name: "message.offline",
        description: "A message with recipients that had no connection.",
        wukongim: "msg.offline",
    },
    EventType {
        name: "group.created",
        description: "A group was created with its first subscribers.",
        wukongim: "group.created",
    },
    EventType {
        name: "group.member_added",
        description: "Subscribers joined a group.",
        wukongim: "group.member_added",
    },
    EventType {
        name: "group.member_removed",
        description: "Subscribers left a group.",
        wukongim: "group.member_removed",
    },
    EventType {
        name: "group.dismissed",
        description: "A group was disbanded or deleted.",
        wukongim: "group.dismissed",
    },
    EventType {
        name: "group.member_online_status",
        description: "A member of a live group went online or offline.",
        wukongim: "group.member_online_status",
    },
];

/// Native names selected by `name`: a native name, or one of WuKongIM's (`msg.notify`,
/// `msg.offline`, `user.onlinestatus`). `None` when the name is unknown.
pub fn resolve(name: &str) -> Option<Vec<&'static str>> {
    if let Some(t) = EVENT_TYPES.iter().find(|t| t.name == name) {
        return Some(vec![t.name]);
    }
    let mapped: Vec<&'static str> = EVENT_TYPES
        .iter()
        .filter(|t| t.wukongim == name && t.wukongim != t.name)
        .map(|t| t.name)
        .collect();
    (!mapped.is_empty()).then_some(mapped)
}

/// The catalogue as JSON, with example bodies in every flavour.
pub fn listing() -> Value {
    let items: Vec<Value> = EVENT_TYPES
        .iter()
        .map(|t| {
            let sample = crate::sample::event(t.name);
            let wukongim = crate::format::render_sample(crate::endpoint::Flavour::Wukongim, &sample);
            let standard = crate::format::render_sample(crate::endpoint::Flavour::Standard, &sample);
            json!({
                "name": t.name,
                "description": t.description,
                "flavours": {"standard": t.name, "wukongim": t.wukongim},
                "feature": Features::required_for(t.name),
                "examples": {
                    "standard": serde_json::from_slice::<Value>(&standard.body).unwrap_or(Value::Null),
                    "wukongim": serde_json::from_slice::<Value>(&wukongim.body).unwrap_or(Value::Null),
                },
            })
        })
        .collect();
    Value::Array(items)
}
