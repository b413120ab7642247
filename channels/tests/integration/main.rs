//! One test binary for the channels crate, a module per feature.

mod conformance;
mod douyin;
mod mobile;
mod senders;
mod test_server;
mod wechat_vectors;
