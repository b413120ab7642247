//! End-to-end tests: the real gateway on port 0, real WebSockets and HTTP, a real browser.
//! One test binary, one module per feature.

mod admin;
mod admin_console;
mod api_properties;
mod attachments;
mod bot;
mod browser;
mod channel_media;
mod channels;
mod chat;
mod chromium;
mod console_roles;
mod exports;
mod frames;
mod gaps;
mod gaps_console;
mod hostile;
mod identity;
mod isolation;
mod kb;
mod long_poll;
mod operations;
mod policies;
mod protection;
mod queues;
mod recovery;
mod reports;
mod supervise;
