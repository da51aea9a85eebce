//! devsim: simulated fitness trackers for ingest-api, and a load generator.
//!
//! - `devsim run` ([`run`]): a seeded fleet ([`fleet`]) of users, each with a wrist band and
//!   maybe a chest strap, living a day-and-night life ([`timeline`]) whose phones ([`phone`])
//!   sync SyncDevice commands through the real endpoint, with the imperfections of real phones:
//!   re-sent and overlapping batches, late batches, clock skew, time-zone travel and impossible
//!   values.
//! - `devsim load` ([`load`]): standard syncs at a fixed rate or as fast as possible, with
//!   latency percentiles that account for coordinated omission ([`latency`]).
//!
//! Everything random comes from the seed ([`rng`]), so a run can be repeated exactly.

pub mod cli;
pub mod client;
pub mod cpu;
pub mod fleet;
pub mod latency;
pub mod load;
pub mod phone;
pub mod rng;
pub mod run;
pub mod timeline;
pub mod watch;
pub mod wire;
