//! App-level feature switches (seed: Tencent's "Webhook Event Activation Guide"): an event whose switch
//! is off may be selected on an endpoint but is not delivered.

use serde::{Deserialize, Serialize};

/// The switches, stored durably and changed by `PUT /v1/features`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Features {
    /// `user.online`, `user.offline` (WuKongIM's `user.onlinestatus`).
    pub online_status_notify: bool,
    /// `user.profile_changed`.
    pub profile_change_subscription: bool,
    /// `group.member_online_status`.
    pub live_group_member_status: bool,
}

impl Default for Features {
    fn default() -> Self {
        Features {
            online_status_notify: true,
            profile_change_subscription: false,
            live_group_member_status: false,
        }
    }
}

impl Features {
    /// The switch an event needs, if any.
    pub fn required_for(event: &str) -> Option<&'static str> {
        match event {
            "user.online" | "user.offline" => Some("online_status_notify"),
            "user.profile_changed" => Some("profile_change_subscription"),
            "group.member_online_status" => Some("live_group_member_status"),
            _ => None,
        }
    }

    /// Whether an event is delivered under these switches.
    pub fn allows(&self, event: &str) -> bool {
        match Self::required_for(event) {
            Some("online_status_notify") => self.online_status_notify,
            Some("profile_change_subscription") => self.profile_change_subscription,
            Some("live_group_member_status") => self.live_group_member_status,
            _ => true,
        }
    }
}
