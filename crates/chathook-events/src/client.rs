//! The client a state change came from, as far as the server saw it: the peer address and the
//! platform. Webhook formats that name the client (Tencent's `ClientIP` and `OptPlatform`) read it.

use serde::{Deserialize, Serialize};

/// Where a message or a presence change came from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientInfo {
    /// The peer IP address of the connection or of the REST call; empty when unknown.
    #[serde(default)]
    pub ip: String,
    /// The platform in Tencent Cloud Chat's words (`iOS`, `Android`, `Web`, `Windows`, `Mac`, `iPad`,
    /// `Linux`, `Unknown`), or `RESTAPI` for a REST call; empty when unknown.
    #[serde(default)]
    pub platform: String,
}

impl ClientInfo {
    /// The platform of a REST call.
    pub const REST_API: &'static str = "RESTAPI";

    /// Nothing is known (events stored before this was recorded, or made by the server itself).
    pub fn is_unknown(&self) -> bool {
        self.ip.is_empty() && self.platform.is_empty()
    }

    /// [`ClientInfo::is_unknown`] behind an `Arc` (for serde).
    pub fn is_unknown_shared(info: &std::sync::Arc<ClientInfo>) -> bool {
        info.is_unknown()
    }
}
