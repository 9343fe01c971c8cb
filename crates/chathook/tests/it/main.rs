//! Integration tests: the real server in-process on ephemeral loopback ports (or the real binary where a
//! process must die), driven by a real HTTP client and real WebSocket clients. One test binary, as
//! svix and meilisearch do, for link time.

mod util;

mod api;
mod binary;
mod cluster;
mod conversations;
mod credentials;
mod drills;
mod events;
mod filters;
mod garbage;
mod gateway;
mod hooks;
mod lifecycle;
mod limits;
mod listen;
mod messaging;
mod nulls;
mod operational;
mod ordering;
mod polling;
mod postgres;
mod receivers;
mod relay;
mod sdk;
mod sdk_js;
mod secrets;
mod seek;
mod tencent;
mod webhooks;
mod wukongim;
