//! `reverse_proxy` (Caddy's `http.handlers.reverse_proxy`): upstream hosts, load balancing and
//! health checks; the handler itself and the upstream I/O build on these.

pub mod health;
pub mod hosts;
pub mod select;
