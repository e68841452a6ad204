//! Fleet-wide detection: every sensor publishes the requests it counts to
//! a NATS JetStream stream (`sink::publish`), and `siem-sensor fleet`
//! instances run the same detectors on the merged stream of all nodes, in
//! event time, so a flood or a stolen key spread over several Kong nodes
//! is seen as one.
//!
//! - [`connect`]: the NATS connection and the stream's settings;
//! - [`subject`]: the stream, its subject families and fixed partitions,
//!   partition assignments, message ids (`Nats-Msg-Id`);
//! - [`event`]: the messages (request events, node heartbeats);
//! - [`watermark`]: the merge of all nodes into event time;
//! - [`nodes`]: which nodes sent a subject's requests;
//! - [`analysis`]: messages in, detectors, alerts out;
//! - [`consume`]: the durable consumers of the partitions, the rebuild;
//! - [`claim`]: the transitions already raised (a key-value bucket).

pub mod analysis;
pub mod claim;
pub mod connect;
pub mod consume;
pub mod event;
pub mod nodes;
pub mod subject;
pub mod watermark;
