//! One live connection, customer or agent, independent of the socket type: frames come in as
//! [`Incoming`] and go out as [`Outgoing`], so tests can drive a session without a socket.
//!
//! Delivery is by seq. For each conversation a session holds a cursor (the last seq sent). A
//! message event with the next seq is sent at once; an older one is skipped; a gap (or a lagged
//! subscription) is filled from the store. A session subscribes to a conversation before it
//! reads history, so nothing falls between the two.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{Sink, SinkExt, Stream, StreamExt};
use serde::{Deserialize, Serialize};
use switchboard_channels::web::{
    decode_client_frame, decode_frame, ClientFrame, FrameError, SenderKind, ServerFrame, Survey,
};
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::StreamMap;

use engine::bus::{
    agent_topic, anonymous_visitors_topic, conversation_topic, customer_topic, BusEvent,
};
use engine::chat::{Chat, TransferTarget};
use engine::files::Files;
use engine::presence::AgentStatus;
use engine::{ServiceError, ServiceResult};
use store::util::rfc3339;
use store::{Agent, Appended, ConversationState, Customer, MessageRecord};

/// A frame from the client, whatever the transport.
#[derive(Debug)]
pub enum Incoming {
    Text(String),
    Binary,
    Close,
}

/// What a session sends: a JSON text frame, or a keep-alive ping.
#[derive(Debug)]
pub enum Outgoing {
    Text(String),
    Ping,
    /// Closes the connection (a WebSocket close frame with this reason, policy violation code).
    Close(&'static str),
}

/// How often an idle connection is pinged (keeps NAT mappings open, finds dead peers).
const KEEPALIVE: Duration = Duration::from_secs(25);
/// How many messages an agent sees when a conversation is assigned.
const ASSIGNED_HISTORY: i64 = 50;
/// Text sent by one catch-up before it waits for the client's acknowledgement (each message
/// counted with `store::MESSAGE_OVERHEAD_BYTES`).
pub const CATCH_UP_PAGE_BYTES: usize = 256 * 1024;
/// At most this many messages a catch-up page (the bytes end a page first: 256 KiB holds at most
/// about 1,640 messages with their overhead).
const CATCH_UP_PAGE_ROWS: usize = 2_000;

type Subscriptions = StreamMap<String, BroadcastStream<BusEvent>>;

/// The session ended because the client went away.
struct Gone;

/// A message as the customer sees it: the bot's suggestions, no internal meta.
pub fn message_frame(files: &Files, message: &MessageRecord) -> ServerFrame {
    message_frame_for(files, message, false)
}

/// A message as agents and admins see it: with its meta (bot decision, flags).
pub fn agent_message_frame(files: &Files, message: &MessageRecord) -> ServerFrame {
    message_frame_for(files, message, true)
}

fn message_frame_for(files: &Files, message: &MessageRecord, for_agent: bool) -> ServerFrame {
    let suggestions = message
        .meta
        .as_ref()
        .and_then(|meta| meta.get("suggestions"))
        .and_then(|value| serde_json::from_value::<Vec<String>>(value.clone()).ok())
        .unwrap_or_default();
    ServerFrame::Message {
        seq: message.seq,
        conversation_id: message.conversation_id.clone(),
        sender: message.sender,
        text: message.text.clone(),
        at: rfc3339(message.created_at),
        client_msg_id: message.client_msg_id.clone(),
        suggestions,
        // The attachments go in their own field, with links.
        meta: if for_agent {
            message.meta.clone().and_then(|mut meta| {
                if let Some(object) = meta.as_object_mut() {
                    object.remove("attachments");
                    if object.is_empty() {
                        return None;
                    }
                }
                Some(meta)
            })
        } else {
            None
        },
        survey: engine::chat::episodes::survey_of(message).map(|_| Survey { scale: 5 }),
        attachments: files.views(message),
    }
}

async fn send_json<K, T>(out: &mut K, frame: &T) -> Result<(), Gone>
where
    K: Sink<Outgoing> + Unpin,
    T: Serialize,
{
    let text = serde_json::to_string(frame).map_err(|_| Gone)?;
    // Fed, not flushed: the connection's loop flushes once nothing else is ready, so a burst of
    // frames leaves in one write (`serve`).
    out.feed(Outgoing::Text(text)).await.map_err(|_| Gone)
}

fn error_frame(error: &ServiceError) -> ServerFrame {
    ServerFrame::Error {
        code: error.code().to_owned(),
        message: error.to_string(),
        retry_after_ms: error.retry_after_ms(),
    }
}

/// Sends what a conversation has after `cursor` and moves the cursor: the event's message when it
/// is the next one, the store's messages when there is a gap. A catch-up from the store sends at
/// most [`CATCH_UP_PAGE_BYTES`] of text at a time: answers `true` when more remain, and the
/// session sends the next page once the client acknowledges this one (a resume from seq 0 of a
/// long conversation cannot hold the node's memory or the connection).
async fn deliver<K: Sink<Outgoing> + Unpin>(
    chat: &Chat,
    out: &mut K,
    conversation_id: &str,
    cursor: &mut i64,
    event: Option<&MessageRecord>,
    for_agent: bool,
) -> Result<bool, Gone> {
    match event {
        Some(message) if message.seq <= *cursor => return Ok(false),
        Some(message) if message.seq == *cursor + 1 => {
            send_message(chat, out, message, for_agent, false).await?;
            *cursor = message.seq;
            return Ok(false);
        }
        _ => {}
    }
    let page = match chat
        .store
        .messages_page(
            conversation_id,
            *cursor,
            CATCH_UP_PAGE_ROWS,
            CATCH_UP_PAGE_BYTES,
        )
        .await
    {
        Ok(page) => page,
        Err(error) => {
            tracing::error!(conversation_id, error = %error, "catch-up read failed");
            return Ok(false);
        }
    };
    for message in &page {
        send_message(chat, out, message, for_agent, true).await?;
        *cursor = message.seq;
    }
    let page_bytes: usize = page
        .iter()
        .map(|message| message.text.len() + store::MESSAGE_OVERHEAD_BYTES)
        .sum();
    Ok(page.len() == CATCH_UP_PAGE_ROWS || page_bytes >= CATCH_UP_PAGE_BYTES)
}

/// Sends one message to this connection, logged under the message's trace id (the line that
/// ends its way from ingress to delivery; `from_store`: caught up from the store, not the bus).
async fn send_message<K: Sink<Outgoing> + Unpin>(
    chat: &Chat,
    out: &mut K,
    message: &MessageRecord,
    for_agent: bool,
    from_store: bool,
) -> Result<(), Gone> {
    tracing::debug!(
        trace = %engine::chat::trace_id(message),
        to_agent = for_agent,
        from_store,
        "delivered"
    );
    send_json(out, &message_frame_for(&chat.files, message, for_agent)).await
}

/// Ends the connection for `error`: its error frame, then a close with its code as the reason.
async fn end<K: Sink<Outgoing> + Unpin>(out: &mut K, error: ServiceError) -> Result<(), Gone> {
    send_json(out, &error_frame(&error)).await?;
    let _ = out.send(Outgoing::Close(error.code())).await;
    Err(Gone)
}

fn subscribe(chat: &Chat, subscriptions: &mut Subscriptions, topic: String) {
    let receiver = chat.bus.subscribe(&topic);
    subscriptions.insert(topic, BroadcastStream::new(receiver));
}

// ---- the loop every connection runs -------------------------------------------------------

/// A connection's messages on their way to the store, oldest first, each answered in turn.
type InFlight<T> = futures_util::stream::FuturesOrdered<
    std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>,
>;

/// How many of a connection's messages may be on their way to the store at once; further
/// frames wait in the socket. Their receipts (and errors) go out in the order sent.
const PIPELINE: usize = 32;

/// What differs between a customer's and an agent's connection; [`serve`] runs the loop they
/// share (bus events first, then finished sends, then new frames while fewer than [`PIPELINE`]
/// sends are on their way, and a keep-alive ping).
trait FrameHandler {
    /// One send's result as it leaves the pipeline.
    type Sent: Send + 'static;
    /// The bus topics followed and the sends on their way (borrowed together by the loop).
    fn pipes(&mut self) -> (&mut Subscriptions, &mut InFlight<Self::Sent>);
    async fn on_event<K: Sink<Outgoing> + Unpin>(
        &mut self,
        topic: &str,
        event: Result<BusEvent, BroadcastStreamRecvError>,
        out: &mut K,
    ) -> Result<(), Gone>;
    async fn on_sent<K: Sink<Outgoing> + Unpin>(
        &mut self,
        sent: Self::Sent,
        out: &mut K,
    ) -> Result<(), Gone>;
    async fn on_frame<K: Sink<Outgoing> + Unpin>(
        &mut self,
        raw: &str,
        out: &mut K,
    ) -> Result<(), Gone>;
    /// A send that finished after the client went away: what was stored still reaches the
    /// others.
    async fn after_close(&mut self, sent: Self::Sent);
}

/// One turn of the loop: what woke it.
enum Step<T> {
    Event(String, Result<BusEvent, BroadcastStreamRecvError>),
    Sent(T),
    Frame(Option<Incoming>),
    /// Nothing else is ready and frames were fed since the last flush: send them.
    Flush,
    Ping,
}

/// Runs a connection until the client goes away, then finishes the sends still on their way.
async fn serve<H, S, K>(handler: &mut H, incoming: &mut S, out: &mut K)
where
    H: FrameHandler,
    S: Stream<Item = Incoming> + Unpin,
    K: Sink<Outgoing> + Unpin,
{
    let mut keepalive = tokio::time::interval(KEEPALIVE);
    keepalive.tick().await;
    // Frames fed before the loop (a greeting) go out on its first turn.
    let mut unflushed = true;
    loop {
        // Events first: each send adds one, so taking frames first (or at random) would let
        // them pile up past the bus's buffer and force reads from the store. The handlers are
        // boxed: an idle connection's task then holds only the waits, not the largest handler's
        // state.
        let step = {
            let (subscriptions, sending) = handler.pipes();
            tokio::select! {
                biased;
                Some((topic, event)) = subscriptions.next() => Step::Event(topic, event),
                Some(sent) = sending.next() => Step::Sent(sent),
                frame = incoming.next(), if sending.len() < PIPELINE => Step::Frame(frame),
                () = std::future::ready(()), if unflushed => Step::Flush,
                _ = keepalive.tick() => Step::Ping,
            }
        };
        unflushed = !matches!(step, Step::Flush | Step::Ping);
        let result = match step {
            Step::Event(topic, event) => Box::pin(handler.on_event(&topic, event, out)).await,
            Step::Sent(sent) => Box::pin(handler.on_sent(sent, out)).await,
            Step::Frame(None | Some(Incoming::Close)) => break,
            Step::Frame(Some(Incoming::Binary)) => {
                send_json(out, &FrameError::Binary.to_frame()).await
            }
            Step::Frame(Some(Incoming::Text(raw))) => Box::pin(handler.on_frame(&raw, out)).await,
            Step::Flush => out.flush().await.map_err(|_| Gone),
            Step::Ping => out.send(Outgoing::Ping).await.map_err(|_| Gone),
        };
        if result.is_err() {
            break;
        }
    }
    // The client is gone, but what the server read of it is stored: it still reaches the others
    // (frames the client sent after those may have died with its connection).
    loop {
        let next = handler.pipes().1.next().await;
        let Some(sent) = next else { break };
        // Boxed, like the handlers above, to keep the connection's task small.
        Box::pin(handler.after_close(sent)).await;
    }
}

/// A connection's budget for frames other than sends (acks, resumes, typing): each costs the
/// database or the bus, so a script cannot send them as fast as the socket takes them. A
/// token bucket: [`CONTROL_FRAMES_PER_SECOND`] refill, [`CONTROL_FRAMES_BURST`] at most.
struct FrameBudget {
    tokens: f64,
    refilled: std::time::Instant,
}

/// Control frames a connection may send per second, sustained (a widget acks every 150 ms and
/// sends a typing frame now and then).
const CONTROL_FRAMES_PER_SECOND: f64 = 20.0;
const CONTROL_FRAMES_BURST: f64 = 40.0;

impl FrameBudget {
    fn new() -> Self {
        FrameBudget {
            tokens: CONTROL_FRAMES_BURST,
            refilled: std::time::Instant::now(),
        }
    }

    /// Takes one frame's token, or says the frame is over the budget.
    fn take(&mut self) -> bool {
        let now = std::time::Instant::now();
        let earned = now.duration_since(self.refilled).as_secs_f64() * CONTROL_FRAMES_PER_SECOND;
        self.tokens = (self.tokens + earned).min(CONTROL_FRAMES_BURST);
        self.refilled = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

// ---- customers ------------------------------------------------------------------------------

/// A customer's sends: each one's client_msg_id and result (with whether a word list asked for
/// a person).
type Sending = InFlight<(String, ServiceResult<(Appended, bool)>)>;

struct CustomerSession {
    chat: Arc<Chat>,
    customer: Arc<Customer>,
    /// The customer's address (per-IP message limit); `None` when unknown.
    origin: Option<std::net::IpAddr>,
    conversation_id: Option<String>,
    /// A catch-up stopped at its page size: the next page goes once the client acknowledges.
    behind: bool,
    cursor: i64,
    /// The highest seq this connection acknowledged (acks are cumulative: a lower or equal
    /// one writes nothing).
    acked: i64,
    control: FrameBudget,
    subscriptions: Subscriptions,
    sending: Sending,
}

/// Runs a customer connection until the client goes away.
/// A customer's connection; `origin` is their address, for the per-IP message limit.
pub async fn run_customer<S, K>(
    chat: Arc<Chat>,
    customer: Customer,
    origin: Option<std::net::IpAddr>,
    mut incoming: S,
    mut out: K,
) where
    S: Stream<Item = Incoming> + Unpin,
    K: Sink<Outgoing> + Unpin,
{
    let _connected = chat.metrics.connected(&customer.channel);
    let mut session = CustomerSession {
        chat: chat.clone(),
        customer: Arc::new(customer),
        origin,
        conversation_id: None,
        behind: false,
        cursor: 0,
        acked: 0,
        control: FrameBudget::new(),
        subscriptions: StreamMap::new(),
        sending: Sending::new(),
    };
    subscribe(
        &chat,
        &mut session.subscriptions,
        customer_topic(&session.customer.id),
    );
    if store::identity::is_anonymous_visitor(&session.customer) {
        subscribe(
            &chat,
            &mut session.subscriptions,
            anonymous_visitors_topic(&session.customer.tenant_id),
        );
        // The tenant may have begun to require identified visitors between the ticket's check
        // and this subscription: read the setting once more now that its event would be heard.
        match chat
            .store
            .identification_required(&session.customer.tenant_id)
            .await
        {
            Ok(false) => {}
            Ok(true) => {
                let _ = end(&mut out, ServiceError::identity_required()).await;
                return;
            }
            Err(error) => {
                tracing::error!(error = %error, "customer session could not read the identity settings");
                return;
            }
        }
    }
    match chat
        .store
        .conversation_for_customer(&session.customer.id)
        .await
    {
        Ok(Some(conversation)) => {
            subscribe(
                &chat,
                &mut session.subscriptions,
                conversation_topic(&conversation.id),
            );
            // Without a resume, only what happens from now on is sent.
            session.cursor = conversation.last_seq;
            if conversation.state == ConversationState::Queued {
                if let Some(position) = chat.queue_position(&conversation.id) {
                    if send_json(&mut out, &ServerFrame::Queue { position })
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            }
            session.conversation_id = Some(conversation.id);
        }
        Ok(None) => {}
        Err(error) => {
            tracing::error!(error = %error, "customer session could not load its conversation");
            return;
        }
    }
    serve(&mut session, &mut incoming, &mut out).await;
}

impl FrameHandler for CustomerSession {
    type Sent = (String, ServiceResult<(Appended, bool)>);

    fn pipes(&mut self) -> (&mut Subscriptions, &mut Sending) {
        (&mut self.subscriptions, &mut self.sending)
    }

    async fn on_event<K: Sink<Outgoing> + Unpin>(
        &mut self,
        _topic: &str,
        event: Result<BusEvent, BroadcastStreamRecvError>,
        out: &mut K,
    ) -> Result<(), Gone> {
        self.take_event(event, out).await
    }

    async fn on_sent<K: Sink<Outgoing> + Unpin>(
        &mut self,
        (client_msg_id, result): Self::Sent,
        out: &mut K,
    ) -> Result<(), Gone> {
        self.take_sent(client_msg_id, result, out).await
    }

    async fn on_frame<K: Sink<Outgoing> + Unpin>(
        &mut self,
        raw: &str,
        out: &mut K,
    ) -> Result<(), Gone> {
        self.take_frame(raw, out).await
    }

    async fn after_close(&mut self, (_, result): Self::Sent) {
        if let Ok((appended, handoff)) = result {
            self.chat
                .customer_sent(&self.customer, &appended, handoff)
                .await;
        }
    }
}

impl CustomerSession {
    async fn take_frame<K: Sink<Outgoing> + Unpin>(
        &mut self,
        raw: &str,
        out: &mut K,
    ) -> Result<(), Gone> {
        let frame = match decode_client_frame(raw) {
            Ok(frame) => frame,
            Err(error) => {
                // In line behind the messages still on their way, so a client that sent without
                // waiting can tell which frame this refuses.
                let refused = ServiceError::invalid(error.code(), error.to_string());
                self.sending
                    .push_back(Box::pin(std::future::ready((String::new(), Err(refused)))));
                return Ok(());
            }
        };
        if !matches!(frame, ClientFrame::Send { .. }) && !self.control.take() {
            // Over the budget: typing and acks are dropped (a later ack covers this one), a
            // resume is refused with a code the client can retry on.
            if let ClientFrame::Resume { .. } = frame {
                let refused = ServiceError::RateLimited {
                    retry_after_ms: (1000.0 / CONTROL_FRAMES_PER_SECOND) as u64,
                };
                self.sending
                    .push_back(Box::pin(std::future::ready((String::new(), Err(refused)))));
            }
            return Ok(());
        }
        match frame {
            ClientFrame::Send {
                client_msg_id,
                text,
                attachments,
            } => {
                let submitted = self
                    .chat
                    .customer_submit_with(
                        &self.customer,
                        &client_msg_id,
                        &text,
                        &attachments,
                        self.origin,
                    )
                    .await;
                let chat = self.chat.clone();
                self.sending.push_back(Box::pin(async move {
                    let result = match submitted {
                        Ok(submitted) => {
                            let handoff = submitted.handoff;
                            chat.customer_stored(submitted)
                                .await
                                .map(|appended| (appended, handoff))
                        }
                        Err(error) => Err(error),
                    };
                    (client_msg_id, result)
                }));
                Ok(())
            }
            ClientFrame::Ack { seq } => {
                if seq <= self.acked {
                    return Ok(());
                }
                self.acked = seq;
                let Some(conversation_id) = self.conversation_id.clone() else {
                    return Ok(());
                };
                // Recorded for the store's ack flusher: no database round trip on the read path.
                if let Err(error) = self
                    .chat
                    .store
                    .record_ack(&conversation_id, SenderKind::Customer, seq)
                    .await
                {
                    tracing::warn!(error = %error, "ack not stored");
                }
                // The client has the page it was sent: the next one.
                if self.behind && seq >= self.cursor {
                    self.catch_up(&conversation_id, out).await?;
                }
                Ok(())
            }
            // While a page is out, a resume waits for its ack: a client cannot make the node
            // read the conversation again faster than it takes the pages.
            ClientFrame::Resume { .. } if self.behind => Ok(()),
            ClientFrame::Resume { last_seq } => {
                self.cursor = last_seq.max(0);
                match self.conversation_id.clone() {
                    Some(conversation_id) => self.catch_up(&conversation_id, out).await,
                    None => Ok(()),
                }
            }
            ClientFrame::Typing => {
                if let Some(conversation_id) = &self.conversation_id {
                    self.chat.customer_typing(conversation_id);
                }
                Ok(())
            }
            ClientFrame::Rate { score, comment } => {
                let rated = self
                    .chat
                    .rate(&self.customer, score, &comment, self.origin)
                    .await;
                let frame = match rated {
                    Ok(rating) => ServerFrame::Rated {
                        score: rating.score,
                    },
                    Err(error) => error_frame(&error),
                };
                send_json(out, &frame).await
            }
        }
    }

    /// Starts following a conversation opened by this or another connection of the customer.
    async fn open<K: Sink<Outgoing> + Unpin>(
        &mut self,
        conversation_id: String,
        out: &mut K,
    ) -> Result<(), Gone> {
        subscribe(
            &self.chat,
            &mut self.subscriptions,
            conversation_topic(&conversation_id),
        );
        self.cursor = 0;
        self.acked = 0;
        self.conversation_id = Some(conversation_id.clone());
        self.catch_up(&conversation_id, out).await
    }

    /// Sends the next page of what the conversation has after the cursor.
    async fn catch_up<K: Sink<Outgoing> + Unpin>(
        &mut self,
        conversation_id: &str,
        out: &mut K,
    ) -> Result<(), Gone> {
        self.behind = deliver(
            &self.chat,
            out,
            conversation_id,
            &mut self.cursor,
            None,
            false,
        )
        .await?;
        Ok(())
    }

    /// A message of this connection is stored (or refused): it goes on its way (to the agent,
    /// the bot), then its receipt (or error) goes out, as with a message sent on its own.
    async fn take_sent<K: Sink<Outgoing> + Unpin>(
        &mut self,
        client_msg_id: String,
        result: ServiceResult<(Appended, bool)>,
        out: &mut K,
    ) -> Result<(), Gone> {
        match result {
            Ok((appended, handoff)) => {
                self.chat
                    .customer_sent(&self.customer, &appended, handoff)
                    .await;
                let receipt = ServerFrame::Receipt {
                    client_msg_id,
                    conversation_id: appended.message.conversation_id.clone(),
                    seq: appended.message.seq,
                };
                send_json(out, &receipt).await?;
                if self.conversation_id.is_none() {
                    self.open(appended.conversation.id.clone(), out).await?;
                }
                Ok(())
            }
            Err(error) => send_json(out, &error_frame(&error)).await,
        }
    }

    async fn take_event<K: Sink<Outgoing> + Unpin>(
        &mut self,
        event: Result<BusEvent, BroadcastStreamRecvError>,
        out: &mut K,
    ) -> Result<(), Gone> {
        // The customer's tokens were revoked: this connection, opened with one, ends.
        if let Ok(BusEvent::VisitorRevoked { version, .. }) = &event {
            if *version > self.customer.token_version {
                return end(
                    out,
                    ServiceError::unauthenticated(
                        "token_revoked",
                        "this visitor token was revoked; start a new session",
                    ),
                )
                .await;
            }
            return Ok(());
        }
        // The tenant now requires identified visitors, and this one is anonymous.
        if let Ok(BusEvent::IdentificationRequired { .. }) = &event {
            return end(out, ServiceError::identity_required()).await;
        }
        let Some(conversation_id) = self.conversation_id.clone() else {
            return match event {
                Ok(BusEvent::Opened { conversation_id }) => self.open(conversation_id, out).await,
                _ => Ok(()),
            };
        };
        match event {
            // Behind a paged catch-up, new messages wait for their page.
            Ok(BusEvent::Message(_)) if self.behind => Ok(()),
            Ok(BusEvent::Message(message)) => {
                self.behind = deliver(
                    &self.chat,
                    out,
                    &conversation_id,
                    &mut self.cursor,
                    Some(&*message),
                    false,
                )
                .await?;
                Ok(())
            }
            Ok(BusEvent::Typing { from, .. }) if from != SenderKind::Customer => {
                send_json(out, &ServerFrame::Typing).await
            }
            Ok(BusEvent::Queue { position, .. }) => {
                send_json(out, &ServerFrame::Queue { position }).await
            }
            Ok(_) => Ok(()),
            Err(BroadcastStreamRecvError::Lagged(_)) => self.catch_up(&conversation_id, out).await,
        }
    }
}

// ---- agents ---------------------------------------------------------------------------------

/// Frames from the agent console.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum AgentClientFrame {
    Status {
        status: AgentStatus,
    },
    /// `attachments`: ids of the agent's own uploads (`POST /v1/agent/attachments`); the text is
    /// then a caption and may be empty.
    Send {
        conversation_id: String,
        client_msg_id: String,
        #[serde(default)]
        text: String,
        #[serde(default)]
        attachments: Vec<String>,
    },
    Close {
        conversation_id: String,
    },
    Transfer {
        conversation_id: String,
        to: String,
    },
    Ack {
        conversation_id: String,
        seq: i64,
    },
    Resume {
        conversation_id: String,
        last_seq: i64,
    },
    Typing {
        conversation_id: String,
    },
}

const AGENT_TYPES: [&str; 7] = [
    "status", "send", "close", "transfer", "ack", "resume", "typing",
];

/// Frames to the agent console (message frames are the customer's `message` frames).
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AgentServerFrame {
    Hello {
        agent: Agent,
        status: AgentStatus,
    },
    Status {
        status: AgentStatus,
    },
    Assigned {
        conversation: serde_json::Value,
        messages: Vec<ServerFrame>,
    },
    Unassigned {
        conversation_id: String,
        reason: String,
    },
    Receipt {
        conversation_id: String,
        client_msg_id: String,
        seq: i64,
    },
    Typing {
        conversation_id: String,
    },
    Error {
        code: String,
        message: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        conversation_id: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        retry_after_ms: Option<u64>,
    },
}

/// A supervisor's private note as the agent console gets it.
fn note_frame(conversation_id: &str, author: &str, text: &str, at: i64) -> serde_json::Value {
    serde_json::json!({
        "type": "note", "conversation_id": conversation_id, "author": author, "text": text,
        "at": rfc3339(at),
    })
}

/// A stored note (a `note` event) as the API shows it: the note frame's fields.
pub fn note_view(event: &store::ConversationEvent) -> serde_json::Value {
    note_frame(
        &event.conversation_id,
        event.actor_id.as_deref().unwrap_or(""),
        event.reason.as_deref().unwrap_or(""),
        event.created_at,
    )
}

/// An agent's sends: each one's conversation, client_msg_id and result.
type AgentSending = InFlight<(String, String, ServiceResult<Appended>)>;

struct AgentSession {
    chat: Arc<Chat>,
    agent: Agent,
    /// Cursor per conversation this agent holds.
    cursors: HashMap<String, i64>,
    /// Conversations whose catch-up stopped at its page size (the next page follows the ack).
    behind: HashSet<String>,
    subscriptions: Subscriptions,
    /// Up to [`PIPELINE`] sends on their way; their receipts go out in the order sent, and every
    /// other frame waits for them (a close after a burst of replies closes after the replies).
    sending: AgentSending,
}

/// Runs an agent connection until the client goes away.
pub async fn run_agent<S, K>(chat: Arc<Chat>, agent: Agent, mut incoming: S, mut out: K)
where
    S: Stream<Item = Incoming> + Unpin,
    K: Sink<Outgoing> + Unpin,
{
    let _connected = chat.metrics.connected("agent");
    let mut session = AgentSession {
        chat: chat.clone(),
        agent: agent.clone(),
        cursors: HashMap::new(),
        behind: HashSet::new(),
        subscriptions: StreamMap::new(),
        sending: AgentSending::new(),
    };
    subscribe(&chat, &mut session.subscriptions, agent_topic(&agent.id));
    let status = chat.agent_connected(&agent);
    tracing::info!(agent_id = %agent.id, "agent connected");
    let mut result = send_json(
        &mut out,
        &AgentServerFrame::Hello {
            agent: agent.clone(),
            status,
        },
    )
    .await;
    if result.is_ok() {
        result = session.sync_assigned(&mut out).await;
    }
    if result.is_ok() {
        serve(&mut session, &mut incoming, &mut out).await;
    }
    tracing::info!(agent_id = %agent.id, "agent disconnected");
    chat.agent_disconnected(&agent);
}

/// An error frame to an agent, about a conversation if given.
async fn agent_error<K: Sink<Outgoing> + Unpin>(
    out: &mut K,
    error: &ServiceError,
    conversation_id: Option<String>,
) -> Result<(), Gone> {
    let frame = AgentServerFrame::Error {
        code: error.code().to_owned(),
        message: error.to_string(),
        conversation_id,
        retry_after_ms: error.retry_after_ms(),
    };
    send_json(out, &frame).await
}

impl FrameHandler for AgentSession {
    type Sent = (String, String, ServiceResult<Appended>);

    fn pipes(&mut self) -> (&mut Subscriptions, &mut AgentSending) {
        (&mut self.subscriptions, &mut self.sending)
    }

    async fn on_event<K: Sink<Outgoing> + Unpin>(
        &mut self,
        topic: &str,
        event: Result<BusEvent, BroadcastStreamRecvError>,
        out: &mut K,
    ) -> Result<(), Gone> {
        self.take_event(topic, event, out).await
    }

    async fn on_sent<K: Sink<Outgoing> + Unpin>(
        &mut self,
        sent: Self::Sent,
        out: &mut K,
    ) -> Result<(), Gone> {
        self.take_sent(sent, out).await
    }

    async fn on_frame<K: Sink<Outgoing> + Unpin>(
        &mut self,
        raw: &str,
        out: &mut K,
    ) -> Result<(), Gone> {
        self.take_frame(raw, out).await
    }

    async fn after_close(&mut self, (_, _, result): Self::Sent) {
        if let Ok(appended) = result {
            self.chat.agent_sent(&self.agent, &appended);
        }
    }
}

impl AgentSession {
    /// Opens every conversation the store says this agent holds and drops any it no longer holds.
    async fn sync_assigned<K: Sink<Outgoing> + Unpin>(&mut self, out: &mut K) -> Result<(), Gone> {
        let held = match self.chat.store.assigned_conversations(&self.agent.id).await {
            Ok(held) => held,
            Err(error) => {
                tracing::error!(error = %error, "cannot list assigned conversations");
                return Ok(());
            }
        };
        let stale: Vec<String> = self
            .cursors
            .keys()
            .filter(|id| !held.iter().any(|c| &c.id == *id))
            .cloned()
            .collect();
        for conversation_id in stale {
            self.drop_conversation(&conversation_id, "requeued", out)
                .await?;
        }
        for conversation in held {
            if !self.cursors.contains_key(&conversation.id) {
                self.open(&conversation.id, out).await?;
            }
        }
        Ok(())
    }

    async fn open<K: Sink<Outgoing> + Unpin>(
        &mut self,
        conversation_id: &str,
        out: &mut K,
    ) -> Result<(), Gone> {
        subscribe(
            &self.chat,
            &mut self.subscriptions,
            conversation_topic(conversation_id),
        );
        let store = &self.chat.store;
        let loaded = async {
            let conversation = store
                .conversation(conversation_id)
                .await?
                .ok_or(store::StoreError::NotFound("conversation"))?;
            let customer = store
                .customer(&conversation.tenant_id, &conversation.customer_id)
                .await?;
            let messages = store
                .recent_messages(conversation_id, ASSIGNED_HISTORY)
                .await?;
            let notes = store.events(conversation_id).await?;
            Ok::<_, store::StoreError>((conversation, customer, messages, notes))
        }
        .await;
        let (conversation, customer, messages, events) = match loaded {
            Ok(loaded) => loaded,
            Err(error) => {
                tracing::error!(conversation_id, error = %error, "cannot load assigned conversation");
                self.subscriptions
                    .remove(&conversation_topic(conversation_id));
                return Ok(());
            }
        };
        if conversation.agent_id.as_deref() != Some(&self.agent.id)
            || conversation.state != ConversationState::Assigned
        {
            self.subscriptions
                .remove(&conversation_topic(conversation_id));
            return Ok(());
        }
        let cursor = messages.last().map(|m| m.seq).unwrap_or(0);
        self.cursors.insert(conversation_id.to_owned(), cursor);
        let mut summary = serde_json::to_value(&conversation).unwrap_or_default();
        summary["created_at"] = serde_json::Value::String(rfc3339(conversation.created_at));
        summary["customer"] = match customer {
            Some(customer) => serde_json::json!({
                "id": customer.id, "name": customer.profile.name, "email": customer.profile.email,
                "phone": customer.profile.phone, "channel": customer.channel,
                "vip_level": customer.attributes.vip_level, "crm_tags": customer.attributes.crm_tags,
            }),
            None => serde_json::Value::Null,
        };
        // Supervisors' private notes, for the agent only.
        summary["notes"] = events
            .iter()
            .filter(|event| event.kind == "note")
            .map(note_view)
            .collect();
        let frame = AgentServerFrame::Assigned {
            conversation: summary,
            messages: messages
                .iter()
                .map(|message| agent_message_frame(&self.chat.files, message))
                .collect(),
        };
        send_json(out, &frame).await?;
        // Anything stored between the history read and now.
        self.catch_up(conversation_id, None, out).await
    }

    /// Sends the next page of a held conversation after its cursor (or just the event's
    /// message when it is the next one).
    async fn catch_up<K: Sink<Outgoing> + Unpin>(
        &mut self,
        conversation_id: &str,
        event: Option<&MessageRecord>,
        out: &mut K,
    ) -> Result<(), Gone> {
        let Some(mut cursor) = self.cursors.get(conversation_id).copied() else {
            return Ok(());
        };
        let more = deliver(&self.chat, out, conversation_id, &mut cursor, event, true).await?;
        self.cursors.insert(conversation_id.to_owned(), cursor);
        if more {
            self.behind.insert(conversation_id.to_owned());
        } else {
            self.behind.remove(conversation_id);
        }
        Ok(())
    }

    async fn drop_conversation<K: Sink<Outgoing> + Unpin>(
        &mut self,
        conversation_id: &str,
        reason: &str,
        out: &mut K,
    ) -> Result<(), Gone> {
        self.behind.remove(conversation_id);
        if self.cursors.remove(conversation_id).is_some() {
            self.subscriptions
                .remove(&conversation_topic(conversation_id));
            let frame = AgentServerFrame::Unassigned {
                conversation_id: conversation_id.to_owned(),
                reason: reason.to_owned(),
            };
            send_json(out, &frame).await?;
        }
        Ok(())
    }

    async fn take_frame<K: Sink<Outgoing> + Unpin>(
        &mut self,
        raw: &str,
        out: &mut K,
    ) -> Result<(), Gone> {
        let frame: AgentClientFrame = match decode_frame(raw, &AGENT_TYPES) {
            Ok(frame) => frame,
            Err(error) => {
                // In line behind the sends still on their way.
                let refused = ServiceError::invalid(error.code(), error.to_string());
                self.sending.push_back(Box::pin(std::future::ready((
                    String::new(),
                    String::new(),
                    Err(refused),
                ))));
                return Ok(());
            }
        };
        if !matches!(frame, AgentClientFrame::Send { .. }) {
            // Everything else acts on what the agent sent before it.
            while let Some(sent) = self.sending.next().await {
                self.on_sent(sent, out).await?;
            }
        }
        let chat = self.chat.clone();
        match frame {
            AgentClientFrame::Status { status } => match chat.set_status(&self.agent, status).await
            {
                Ok(()) => send_json(out, &AgentServerFrame::Status { status }).await,
                Err(error) => agent_error(out, &error, None).await,
            },
            AgentClientFrame::Send {
                conversation_id,
                client_msg_id,
                text,
                attachments,
            } => {
                let submitted = chat
                    .agent_submit_with(
                        &self.agent,
                        &conversation_id,
                        &client_msg_id,
                        &text,
                        &attachments,
                    )
                    .await;
                self.sending.push_back(Box::pin(async move {
                    let result = match submitted {
                        Ok(pending) => chat.agent_stored(pending).await,
                        Err(error) => Err(error),
                    };
                    (conversation_id, client_msg_id, result)
                }));
                Ok(())
            }
            AgentClientFrame::Close { conversation_id } => {
                match chat.close(&self.agent, &conversation_id).await {
                    Ok(()) => Ok(()),
                    Err(error) => agent_error(out, &error, Some(conversation_id)).await,
                }
            }
            AgentClientFrame::Transfer {
                conversation_id,
                to,
            } => {
                let Some(target) = TransferTarget::parse(&to) else {
                    let error = ServiceError::invalid(
                        "bad_transfer",
                        "`to` must be `skill:<name>` or `agent:<id>`",
                    );
                    return agent_error(out, &error, Some(conversation_id)).await;
                };
                match chat.transfer(&self.agent, &conversation_id, &target).await {
                    Ok(()) => Ok(()),
                    Err(error) => agent_error(out, &error, Some(conversation_id)).await,
                }
            }
            AgentClientFrame::Ack {
                conversation_id,
                seq,
            } => {
                let Some(&cursor) = self.cursors.get(&conversation_id) else {
                    return Ok(());
                };
                if let Err(error) = chat
                    .store
                    .record_ack(&conversation_id, SenderKind::Agent, seq)
                    .await
                {
                    tracing::warn!(error = %error, "ack not stored");
                }
                if seq >= cursor && self.behind.contains(&conversation_id) {
                    self.catch_up(&conversation_id, None, out).await?;
                }
                Ok(())
            }
            AgentClientFrame::Resume {
                conversation_id,
                last_seq,
            } => match self.cursors.get_mut(&conversation_id) {
                // As for customers: no new catch-up while a page is out.
                Some(_) if self.behind.contains(&conversation_id) => Ok(()),
                Some(cursor) => {
                    *cursor = last_seq.max(0);
                    self.catch_up(&conversation_id, None, out).await
                }
                None => {
                    let error = ServiceError::invalid(
                        "not_assigned",
                        "conversation is not assigned to you",
                    );
                    agent_error(out, &error, Some(conversation_id)).await
                }
            },
            AgentClientFrame::Typing { conversation_id } => {
                if self.cursors.contains_key(&conversation_id) {
                    chat.agent_typing(&conversation_id);
                }
                Ok(())
            }
        }
    }

    /// A send of this connection is stored (or refused): published, then its receipt (or
    /// error) goes out.
    async fn take_sent<K: Sink<Outgoing> + Unpin>(
        &mut self,
        (conversation_id, client_msg_id, result): (String, String, ServiceResult<Appended>),
        out: &mut K,
    ) -> Result<(), Gone> {
        match result {
            Ok(appended) => {
                self.chat.agent_sent(&self.agent, &appended);
                let receipt = AgentServerFrame::Receipt {
                    conversation_id,
                    client_msg_id,
                    seq: appended.message.seq,
                };
                send_json(out, &receipt).await
            }
            Err(error) => {
                let conversation = (!conversation_id.is_empty()).then_some(conversation_id);
                agent_error(out, &error, conversation).await
            }
        }
    }

    async fn take_event<K: Sink<Outgoing> + Unpin>(
        &mut self,
        topic: &str,
        event: Result<BusEvent, BroadcastStreamRecvError>,
        out: &mut K,
    ) -> Result<(), Gone> {
        match event {
            Ok(BusEvent::Assigned { conversation_id }) => {
                if self.cursors.contains_key(&conversation_id) {
                    return Ok(());
                }
                self.open(&conversation_id, out).await
            }
            Ok(BusEvent::Unassigned {
                conversation_id,
                reason,
            }) => self.drop_conversation(&conversation_id, &reason, out).await,
            Ok(BusEvent::Message(message)) => {
                if !self.cursors.contains_key(&message.conversation_id)
                    || self.behind.contains(&message.conversation_id)
                {
                    return Ok(());
                }
                let conversation_id = message.conversation_id.clone();
                self.catch_up(&conversation_id, Some(&*message), out).await
            }
            Ok(BusEvent::Typing {
                conversation_id,
                from: SenderKind::Customer,
            }) => send_json(out, &AgentServerFrame::Typing { conversation_id }).await,
            Ok(BusEvent::Note {
                conversation_id,
                author,
                text,
                at,
            }) if self.cursors.contains_key(&conversation_id) => {
                send_json(out, &note_frame(&conversation_id, &author, &text, at)).await
            }
            Ok(BusEvent::TokenRevoked { version, .. }) if version > self.agent.token_version => {
                let frame = AgentServerFrame::Error {
                    code: "token_revoked".into(),
                    message: "this token was replaced; sign in with the new one".into(),
                    conversation_id: None,
                    retry_after_ms: None,
                };
                send_json(out, &frame).await?;
                let _ = out.send(Outgoing::Close("token_revoked")).await;
                Err(Gone)
            }
            Ok(BusEvent::Delivery(delivery))
                if self.cursors.contains_key(&delivery.conversation_id) =>
            {
                let frame = serde_json::json!({"type": "delivery", "conversation_id": delivery.conversation_id,
                    "seq": delivery.seq, "kind": delivery.kind, "state": delivery.state, "code": delivery.code,
                    "attempts": delivery.attempts});
                send_json(out, &frame).await
            }
            Ok(_) => Ok(()),
            Err(BroadcastStreamRecvError::Lagged(_)) => {
                if topic.starts_with("agent:") {
                    return self.sync_assigned(out).await;
                }
                let conversation_id = topic.trim_start_matches("conv:").to_owned();
                if !self.cursors.contains_key(&conversation_id) {
                    return Ok(());
                }
                self.catch_up(&conversation_id, None, out).await
            }
        }
    }
}
