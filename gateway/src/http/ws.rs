//! Adapts axum's WebSocket to the transport-free sessions in `crate::session`.

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use futures_util::{SinkExt, StreamExt};

use crate::session::{Incoming, Outgoing};

/// Browsers cannot set headers on a WebSocket request, so its credential rides in the query:
/// a one-time `ticket` (`POST /v1/web/ticket`, `POST /v1/agent/ticket`), or, from older
/// clients, the `token` itself.
#[derive(serde::Deserialize)]
pub struct TokenQuery {
    #[serde(default)]
    pub ticket: Option<String>,
    #[serde(default)]
    pub token: Option<String>,
}

/// The largest frame accepted: the 64 KiB text limit plus the JSON around it. Larger frames
/// close the connection (the session answers `too_large` for texts between the two limits).
const MAX_FRAME_BYTES: usize = 80 * 1024;

/// Upgrades with small buffers: idle connections should cost little memory. Every connection
/// holds its read buffer (1 KiB: chat frames are a few hundred bytes, and a larger frame grows
/// it); 2 KiB cost about a kilobyte more per idle connection with the same relay throughput.
pub fn upgrade<F, Fut>(upgrade: WebSocketUpgrade, run: F) -> Response
where
    F: FnOnce(
            std::pin::Pin<Box<dyn futures_util::Stream<Item = Incoming> + Send>>,
            std::pin::Pin<Box<dyn futures_util::Sink<Outgoing, Error = axum::Error> + Send>>,
        ) -> Fut
        + Send
        + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    upgrade
        .read_buffer_size(1024)
        .write_buffer_size(4 * 1024)
        .max_message_size(MAX_FRAME_BYTES)
        .max_frame_size(MAX_FRAME_BYTES)
        .on_upgrade(move |socket: WebSocket| {
            let (sink, stream) = socket.split();
            let incoming = stream.filter_map(|message| async move {
                match message {
                    Ok(Message::Text(text)) => Some(Incoming::Text(text.to_string())),
                    Ok(Message::Binary(_)) => Some(Incoming::Binary),
                    Ok(Message::Close(_)) | Err(_) => Some(Incoming::Close),
                    Ok(Message::Ping(_) | Message::Pong(_)) => None,
                }
            });
            let outgoing = sink.with(|out: Outgoing| async move {
                Ok::<_, axum::Error>(match out {
                    Outgoing::Text(text) => Message::Text(text.into()),
                    Outgoing::Ping => Message::Ping(Default::default()),
                    Outgoing::Close(reason) => Message::Close(Some(CloseFrame {
                        code: axum::extract::ws::close_code::POLICY,
                        reason: reason.into(),
                    })),
                })
            });
            run(Box::pin(incoming), Box::pin(outgoing))
        })
}
