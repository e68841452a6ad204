//! The request body (labels, annotations, times), the re-send and resolve
//! bookkeeping, and a sender thread against an in-process HTTP server.

mod body;
mod episodes;
mod fixtures;
mod handover;
mod sender;
