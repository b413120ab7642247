// Live: the tenant now, pushed over the live WebSocket (queues per skill group, agents, open
// conversations), with a selected conversation's transcript, private notes, transfer and
// take-over; and the history of all conversations by state.
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { del, get, post, qs, tp } from '../api.js';
import { errorText, formatTime, useT } from '../i18n.js';
import { Badge, ConfirmButton, Empty, ErrorNote, Loading, Modal, Tabs, useLoad, useToast } from '../ui.jsx';
import { ExportButton } from './export.jsx';

const STATES = ['', 'bot', 'queued', 'assigned', 'closed'];
const STATE_KIND = { bot: 'info', queued: 'warn', assigned: 'ok', closed: 'neutral' };
const STATUS_KIND = { online: 'ok', away: 'warn', offline: 'neutral' };
const REFRESH_MS = 5000;
const MAX_BACKOFF_MS = 15000;

export function LivePage({ permissions }) {
  const t = useT();
  const [tab, setTab] = useState('now');
  return (
    <div>
      <div class="toolbar">
        <div class="toolbar-spacer" />
        <ExportButton />
      </div>
      <Tabs
        tabs={[
          { id: 'now', label: t('live.tab_now') },
          { id: 'history', label: t('live.tab_history') },
        ]}
        current={tab}
        onChange={setTab}
      />
      {tab === 'now' ? <LiveNow /> : <History canErase={permissions.has('settings')} />}
    </div>
  );
}

/** "1:05", "12:03:09": a duration in ms as a clock. */
export function clock(ms) {
  const total = Math.max(0, Math.floor(ms / 1000));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = String(total % 60).padStart(2, '0');
  return h ? `${h}:${String(m).padStart(2, '0')}:${s}` : `${m}:${s}`;
}

/**
 * The live view over `live/ws`: {frame, status, receivedAt}. Reconnects with a growing pause
 * when the socket closes; between tries the view is read once over HTTP (which also notices an
 * ended session: a 401 signs the member out).
 */
function useLiveView() {
  const [state, setState] = useState({ frame: null, status: 'connecting', receivedAt: 0 });
  useEffect(() => {
    let socket = null;
    let timer = null;
    let stopped = false;
    let backoff = 1000;
    const accept = (frame) => {
      if (frame && frame.view) setState({ frame, status: 'live', receivedAt: Date.now() });
    };
    const connect = () => {
      if (stopped) return;
      const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
      socket = new WebSocket(`${scheme}://${location.host}${tp('/live/ws')}`);
      socket.onmessage = (event) => {
        backoff = 1000;
        try {
          const frame = JSON.parse(event.data);
          if (frame.type === 'live') accept(frame);
        } catch {
          // not a frame of ours
        }
      };
      socket.onopen = () => setState((old) => ({ ...old, status: 'live' }));
      socket.onclose = () => {
        socket = null;
        if (stopped) return;
        setState((old) => ({ ...old, status: 'reconnecting' }));
        get(tp('/live')).then(
          (body) => !stopped && setState((old) => ({ ...old, frame: body, receivedAt: Date.now() })),
          () => {},
        );
        timer = setTimeout(connect, backoff);
        backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
      };
    };
    connect();
    return () => {
      stopped = true;
      clearTimeout(timer);
      if (socket) socket.close();
    };
  }, []);
  return state;
}

/** A re-render every second (waiting times tick between frames). */
function useTick() {
  const [, setNow] = useState(0);
  useEffect(() => {
    const timer = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(timer);
  }, []);
}

function LiveNow() {
  const t = useT();
  const { frame, status, receivedAt } = useLiveView();
  const [stateFilter, setStateFilter] = useState('');
  const [selected, setSelected] = useState(null);
  useTick();
  const view = frame && frame.view;
  const agentNames = useMemo(() => {
    const names = {};
    for (const agent of (view && view.agents) || []) names[agent.id] = agent.name;
    return names;
  }, [view]);
  // Server time now, from the frame's `at` and how long ago it came.
  const since = Date.now() - receivedAt;
  const serverNow = frame ? Number(frame.at) + since : Date.now();

  const indicator = (
    <span class={`live-status live-${status}`} id="live-status" data-state={status}>
      <span class="live-dot" aria-hidden="true" />
      {t(`live.status_${status}`)}
      {frame && <span class="muted small"> · {formatTime(t, Number(frame.at))}</span>}
    </span>
  );
  if (!view) {
    return (
      <div class="stack-lg">
        <div class="toolbar">{indicator}</div>
        <Loading />
      </div>
    );
  }
  const queues = view.queues || [];
  const agents = view.agents || [];
  const conversations = (view.conversations || []).filter(
    (row) => !stateFilter || row.state === stateFilter,
  );
  const maxWaiting = Math.max(1, ...queues.map((queue) => queue.waiting));
  const current = selected && (view.conversations || []).find((row) => row.id === selected);
  return (
    <div class="stack-lg" id="live-view">
      <div class="toolbar">
        {indicator}
        <div class="toolbar-spacer" />
        <span class="muted small">
          {t('live.totals', {
            queued: queues.reduce((sum, queue) => sum + queue.waiting, 0),
            online: agents.filter((agent) => agent.status === 'online').length,
            open: (view.conversations || []).length,
          })}
        </span>
      </div>
      <div class="live-grid">
        <section class="card card-pad">
          <h2 class="section-title">{t('live.queues')}</h2>
          <div id="live-queues" class="bars">
            {queues.map((queue) => (
              <div class="bar-row" key={queue.skill_group} data-queue={queue.skill_group} data-waiting={queue.waiting}>
                <div class="bar-label">
                  <strong>{queue.skill_group}</strong>
                  <span class="muted small">{t('live.agents_online', { n: queue.agents_online })}</span>
                </div>
                <div class="bar-track">
                  <div
                    class={`bar-fill${queue.agents_online ? '' : ' bar-alert'}`}
                    style={{ width: `${(100 * queue.waiting) / maxWaiting}%` }}
                  />
                </div>
                <div class="bar-value">
                  <span class="queue-waiting">{queue.waiting}</span>
                  {queue.waiting > 0 && (
                    <span class="muted small queue-oldest" title={t('live.oldest_wait')}>
                      {' '}
                      {t('live.oldest_short', { time: clock(queue.oldest_wait_ms + since) })}
                    </span>
                  )}
                </div>
              </div>
            ))}
            {queues.length === 0 && <Empty>{t('live.no_queues')}</Empty>}
          </div>
        </section>
        <section class="card card-pad">
          <h2 class="section-title">{t('live.agents')}</h2>
          <div id="live-agents" class="bars">
            {agents.map((agent) => (
              <div class="bar-row" key={agent.id} data-agent={agent.id} data-status={agent.status}>
                <div class="bar-label">
                  <span>
                    <span class={`dot dot-${agent.status}`} aria-hidden="true" />
                    <strong>{agent.name}</strong>
                  </span>
                  <span class="muted small">
                    <Badge kind={STATUS_KIND[agent.status] || 'neutral'}>{t(`live.status.${agent.status}`)}</Badge>{' '}
                    {(agent.skills || []).join(', ')}
                  </span>
                </div>
                <div class="bar-track">
                  <div
                    class={`bar-fill${agent.load >= agent.max_concurrent ? ' bar-full' : ''}`}
                    style={{ width: `${(100 * agent.load) / Math.max(1, agent.max_concurrent)}%` }}
                  />
                </div>
                <div class="bar-value mono">
                  {agent.load}/{agent.max_concurrent}
                </div>
              </div>
            ))}
            {agents.length === 0 && <Empty>{t('live.no_agents')}</Empty>}
          </div>
        </section>
      </div>
      <section class="card">
        <div class="toolbar card-toolbar">
          <h2 class="section-title">{t('live.open_conversations')}</h2>
          <div class="toolbar-spacer" />
          <label class="inline-field">
            <span>{t('live.state')}</span>
            <select id="live-state" value={stateFilter} onChange={(event) => setStateFilter(event.currentTarget.value)}>
              {['', 'bot', 'queued', 'assigned'].map((value) => (
                <option key={value} value={value}>
                  {t(`live.state_${value || 'all'}`)}
                </option>
              ))}
            </select>
          </label>
        </div>
        <table class="table" id="live-table">
          <thead>
            <tr>
              <th class="col-id">{t('live.conversation')}</th>
              <th>{t('live.state')}</th>
              <th>{t('live.skill')}</th>
              <th>{t('live.waiting')}</th>
              <th>{t('live.agent')}</th>
              <th>{t('live.channel')}</th>
              <th>{t('live.reason')}</th>
              <th class="col-date">{t('live.last_activity')}</th>
            </tr>
          </thead>
          <tbody>
            {conversations.map((row) => (
              <tr
                key={row.id}
                class={`row-link${row.id === selected ? ' row-selected' : ''}`}
                data-conversation={row.id}
                data-state={row.state}
                onClick={() => setSelected(row.id)}
              >
                <td class="col-id mono">{row.id}</td>
                <td>
                  <Badge kind={STATE_KIND[row.state] || 'neutral'}>{t(`live.state_${row.state}`)}</Badge>
                </td>
                <td>{row.skill_group}</td>
                <td class="mono">{row.waiting_since ? clock(serverNow - row.waiting_since) : <span class="muted">—</span>}</td>
                <td>{row.agent_id ? agentNames[row.agent_id] || <span class="mono small">{row.agent_id}</span> : <span class="muted">—</span>}</td>
                <td>{row.channel}</td>
                <td>{reasonText(t, row.handoff_reason)}</td>
                <td class="col-date">{formatTime(t, row.updated_at, true)}</td>
              </tr>
            ))}
          </tbody>
        </table>
        {conversations.length === 0 && <Empty>{t('live.empty')}</Empty>}
      </section>
      {selected && (
        <Supervise
          id={selected}
          live={current}
          view={view}
          agentNames={agentNames}
          onClose={() => setSelected(null)}
        />
      )}
    </div>
  );
}

/**
 * A note as `{author, text, at}`. `GET notes` answers the stored events (`actor_id` is the
 * author, `reason` the text, `created_at` in ms); the agent's `note` frame has the named fields.
 */
function noteOf(row) {
  const at = row.at !== undefined ? row.at : row.created_at;
  return {
    author: row.author !== undefined ? row.author : row.actor_id,
    text: row.text !== undefined ? row.text : row.reason,
    at: typeof at === 'string' ? Date.parse(at) : at,
  };
}

function reasonText(t, reason) {
  if (!reason) return '';
  return t.has(`reason.${reason}`) ? t(`reason.${reason}`) : reason;
}

/** One conversation: transcript (read-only), notes, transfer and take-over. */
function Supervise({ id, live, view, agentNames, onClose }) {
  const t = useT();
  const path = `/conversations/${encodeURIComponent(id)}`;
  const lastSeq = live ? live.last_seq : -1;
  const details = useLoad(() => get(tp(path)), [id, live && live.state, live && live.agent_id]);
  const messages = useLoad(() => get(tp(`${path}/messages${qs({ limit: 500 })}`)), [id, lastSeq]);
  const notes = useLoad(() => get(tp(`${path}/notes`)), [id]);
  const [noteText, setNoteText] = useState('');
  const [noteError, setNoteError] = useState(null);
  const [busy, setBusy] = useState(false);
  const [target, setTarget] = useState('');
  const [transferState, setTransferState] = useState(null);
  const [takeover, setTakeover] = useState(null);
  const bottom = useRef(null);
  useEffect(() => {
    if (bottom.current) bottom.current.scrollIntoView({ block: 'nearest' });
  }, [messages.data]);

  const conversation = (details.data && details.data.conversation) || live;
  const customer = details.data && details.data.customer;
  const state = conversation ? conversation.state : '';
  const groups = (view.queues || []).map((queue) => queue.skill_group);
  if (conversation && conversation.skill_group && !groups.includes(conversation.skill_group)) {
    groups.push(conversation.skill_group);
  }

  const addNote = async (event) => {
    event.preventDefault();
    if (!noteText.trim()) return;
    setBusy(true);
    setNoteError(null);
    try {
      await post(tp(`${path}/notes`), { text: noteText });
      setNoteText('');
      notes.reload();
    } catch (error) {
      setNoteError(error);
    } finally {
      setBusy(false);
    }
  };
  const transfer = async () => {
    if (!target) return;
    setBusy(true);
    setTransferState(null);
    try {
      await post(tp(`${path}/transfer`), { to: target });
      setTransferState({ ok: true });
      setTarget('');
    } catch (error) {
      setTransferState({ error });
    } finally {
      setBusy(false);
    }
  };
  const takeOver = async () => {
    setBusy(true);
    setTakeover(null);
    try {
      const body = await post(tp(`${path}/takeover`));
      setTakeover({ url: body.agent_console_url });
      window.open(body.agent_console_url, '_blank', 'noopener');
    } catch (error) {
      setTakeover({ error });
    } finally {
      setBusy(false);
    }
  };

  const rows = (messages.data && messages.data.messages) || [];
  const noteRows = (notes.data && notes.data.notes) || [];
  return (
    <Modal title={t('live.conversation_title')} onClose={onClose} wide="x" id="conversation">
      <div class="supervise" data-conversation={id} data-state={state}>
        <div class="supervise-head">
          <span class="mono small">{id}</span>
          {state && <Badge kind={STATE_KIND[state] || 'neutral'}>{t(`live.state_${state}`)}</Badge>}
          {conversation && <span class="muted small">{conversation.channel} · {conversation.skill_group}</span>}
          {conversation && conversation.agent_id && (
            <span class="small" id="conversation-agent">
              {t('live.agent')}: {agentNames[conversation.agent_id] || conversation.agent_id}
            </span>
          )}
          {customer && customer.name && <span class="small">{t('live.customer')}: {customer.name}</span>}
        </div>
        <div class="supervise-body">
          <div>
            <h3 class="sub-title">{t('live.transcript')}</h3>
            <ErrorNote error={messages.error} />
            <div class="transcript transcript-live" id="transcript">
              {rows.map((message) => (
                <div key={message.seq} class={`line line-${message.sender}`} data-seq={message.seq}>
                  <div class="line-meta">
                    {t(`live.sender_${message.sender}`)} · {formatTime(t, Date.parse(message.at), true)}
                  </div>
                  {(message.text || !message.attachments) && <div class="bubble">{message.text}</div>}
                  <Attachments list={message.attachments} />
                </div>
              ))}
              {messages.loading && !messages.data && <Loading />}
              {!messages.loading && rows.length === 0 && <Empty>{t('live.no_messages')}</Empty>}
              <div ref={bottom} />
            </div>
          </div>
          <div class="stack">
            <h3 class="sub-title">{t('live.notes')}</h3>
            <p class="muted small">{t('live.notes_help')}</p>
            <div id="notes" class="notes">
              {noteRows.map((row, index) => {
                const note = noteOf(row);
                return (
                  <div class="note-item" key={index} data-note={index}>
                    <div class="line-meta">
                      {note.author} · {formatTime(t, note.at, true)}
                    </div>
                    <div class="note-text">{note.text}</div>
                  </div>
                );
              })}
              {!notes.loading && noteRows.length === 0 && <div class="muted small">{t('live.no_notes')}</div>}
            </div>
            <form class="stack" onSubmit={addNote}>
              <textarea
                id="note-text"
                rows={3}
                maxLength={2000}
                placeholder={t('live.note_placeholder')}
                value={noteText}
                onInput={(event) => setNoteText(event.currentTarget.value)}
              />
              <ErrorNote error={noteError} id="note-error" />
              <button type="submit" class="button" id="note-add" disabled={busy || !noteText.trim()}>
                {t('live.add_note')}
              </button>
            </form>
            <h3 class="sub-title">{t('live.transfer')}</h3>
            <div class="row-tight">
              <select id="transfer-to" value={target} onChange={(event) => setTarget(event.currentTarget.value)}>
                <option value="">{t('live.transfer_choose')}</option>
                <optgroup label={t('live.skill')}>
                  {groups.map((group) => (
                    <option key={group} value={`skill:${group}`}>
                      {group}
                    </option>
                  ))}
                </optgroup>
                <optgroup label={t('live.agents')}>
                  {(view.agents || [])
                    .filter((agent) => !conversation || agent.id !== conversation.agent_id)
                    .map((agent) => (
                      <option key={agent.id} value={`agent:${agent.id}`}>
                        {agent.name} ({t(`live.status.${agent.status}`)}, {agent.load}/{agent.max_concurrent})
                      </option>
                    ))}
                </optgroup>
              </select>
              <button type="button" class="button" id="transfer-submit" disabled={busy || !target} onClick={transfer}>
                {t('live.transfer_go')}
              </button>
            </div>
            {transferState && transferState.ok && (
              <div class="note note-ok" id="transfer-done" role="status">
                {t('live.transferred')}
              </div>
            )}
            {transferState && transferState.error && (
              <div class="note note-error" role="alert" id="transfer-error" data-code={transferState.error.code}>
                {t.has(`live.err.${transferState.error.code}`)
                  ? t(`live.err.${transferState.error.code}`)
                  : errorText(t, transferState.error)}
              </div>
            )}
            <h3 class="sub-title">{t('live.takeover')}</h3>
            <p class="muted small">{t('live.takeover_help')}</p>
            <ConfirmButton
              id="takeover"
              class="button"
              disabled={busy || !(state === 'queued' || state === 'assigned')}
              onConfirm={takeOver}
            >
              {t('live.takeover_go')}
            </ConfirmButton>
            {takeover && takeover.url && (
              <div class="note note-ok" id="takeover-done" role="status">
                {t('live.taken_over')}{' '}
                <a id="takeover-link" href={takeover.url} target="_blank" rel="noopener noreferrer">
                  {t('live.open_console')}
                </a>
              </div>
            )}
            {takeover && takeover.error && (
              <div class="note note-error" role="alert" id="takeover-error" data-code={takeover.error.code}>
                {t.has(`live.err.${takeover.error.code}`) ? t(`live.err.${takeover.error.code}`) : errorText(t, takeover.error)}
              </div>
            )}
          </div>
        </div>
      </div>
    </Modal>
  );
}

/** Every conversation by state, closed ones included (paged, refreshed every few seconds). */
function History({ canErase }) {
  const t = useT();
  const [toast, setToast] = useToast();
  const [state, setState] = useState('');
  const [cursors, setCursors] = useState(['']);
  const [auto, setAuto] = useState(true);
  const [open, setOpen] = useState(null);
  const cursor = cursors[cursors.length - 1];
  const list = useLoad(
    () => get(tp(`/conversations${qs({ state, cursor, limit: 50 })}`)),
    [state, cursor],
  );
  useEffect(() => {
    if (!auto) return undefined;
    const timer = setInterval(() => list.reload(), REFRESH_MS);
    return () => clearInterval(timer);
  }, [auto, list.reload]);

  const rows = (list.data && list.data.conversations) || [];
  const next = list.data && list.data.next;
  return (
    <div class="stack-lg">
      <div class="toolbar">
        <label class="inline-field">
          <span>{t('live.state')}</span>
          <select
            id="history-state"
            value={state}
            onChange={(event) => {
              setState(event.currentTarget.value);
              setCursors(['']);
            }}
          >
            {STATES.map((value) => (
              <option key={value} value={value}>
                {t(`live.state_${value || 'all'}`)}
              </option>
            ))}
          </select>
        </label>
        <label class="check">
          <input type="checkbox" id="history-auto" checked={auto} onChange={(event) => setAuto(event.currentTarget.checked)} />
          {t('live.auto')}
        </label>
        <div class="toolbar-spacer" />
        <button type="button" class="button" onClick={() => list.reload()}>
          {t('audit.refresh')}
        </button>
      </div>
      <ErrorNote error={list.error} />
      <div class="card">
        <table class="table" id="history-table">
          <thead>
            <tr>
              <th class="col-id">{t('live.conversation')}</th>
              <th>{t('live.state')}</th>
              <th>{t('live.channel')}</th>
              <th>{t('live.skill')}</th>
              <th class="col-num">{t('live.priority')}</th>
              <th>{t('live.agent')}</th>
              <th>{t('live.reason')}</th>
              <th class="col-num">{t('live.messages')}</th>
              <th class="col-date">{t('kb.updated')}</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((row) => (
              <tr key={row.id} class="row-link" data-conversation={row.id} onClick={() => setOpen(row)}>
                <td class="col-id mono">{row.id}</td>
                <td>
                  <Badge kind={STATE_KIND[row.state] || 'neutral'}>{t(`live.state_${row.state}`)}</Badge>
                </td>
                <td>{row.channel}</td>
                <td>{row.skill_group}</td>
                <td class="col-num">{row.priority}</td>
                <td class="mono small">{row.agent_id || <span class="muted">—</span>}</td>
                <td>{reasonText(t, row.handoff_reason)}</td>
                <td class="col-num">{row.last_seq}</td>
                <td class="col-date">{formatTime(t, row.updated_at, true)}</td>
              </tr>
            ))}
          </tbody>
        </table>
        {list.loading && !list.data && <Loading />}
        {!list.loading && !list.error && rows.length === 0 && <Empty>{t('live.empty')}</Empty>}
      </div>
      <div class="pager">
        <button type="button" class="button" disabled={cursors.length < 2} onClick={() => setCursors(cursors.slice(0, -1))}>
          ← {t('common.previous')}
        </button>
        <span class="muted">{t('common.page', { n: cursors.length })}</span>
        <button type="button" class="button" disabled={!next} onClick={() => setCursors([...cursors, next])}>
          {t('common.next')} →
        </button>
      </div>
      {open && (
        <Transcript
          conversation={open}
          canErase={canErase}
          onClose={() => setOpen(null)}
          onErased={(erased) => {
            setOpen(null);
            setToast(t('live.erased', erased));
            list.reload();
          }}
        />
      )}
      {toast}
    </div>
  );
}

function Transcript({ conversation, canErase, onClose, onErased }) {
  const t = useT();
  const messages = useLoad(
    () => get(tp(`/conversations/${encodeURIComponent(conversation.id)}/messages${qs({ limit: 500 })}`)),
    [conversation.id],
  );
  const [erasing, setErasing] = useState(false);
  const [eraseError, setEraseError] = useState(null);
  const rows = (messages.data && messages.data.messages) || [];
  const erase = async () => {
    setErasing(true);
    setEraseError(null);
    try {
      onErased(await del(tp(`/customers/${encodeURIComponent(conversation.customer_id)}`)));
    } catch (error) {
      setEraseError(error);
      setErasing(false);
    }
  };
  // Admins may erase the customer (a deletion request) once the conversation is closed.
  const footer = canErase ? (
    <div>
      {conversation.state === 'closed' ? (
        <ConfirmButton
          class="button"
          id="erase-customer"
          disabled={erasing}
          confirmText={t('live.erase_confirm')}
          onConfirm={erase}
        >
          {t('live.erase')}
        </ConfirmButton>
      ) : (
        <span class="muted small">{t('live.erase_when_closed')}</span>
      )}
    </div>
  ) : null;
  return (
    <Modal title={t('live.transcript')} onClose={onClose} wide id="history-transcript" footer={footer}>
      <ErrorNote error={eraseError} id="erase-error" />
      <div class="muted small mono">{conversation.id}</div>
      <ErrorNote error={messages.error} />
      {messages.loading && <Loading />}
      <div class="transcript">
        {rows.map((message) => (
          <div key={message.seq} class={`line line-${message.sender}`} data-seq={message.seq}>
            <div class="line-meta">
              {t(`live.sender_${message.sender}`)} · {formatTime(t, Date.parse(message.at), true)}
            </div>
            {(message.text || !message.attachments) && <div class="bubble">{message.text}</div>}
            <Attachments list={message.attachments} />
          </div>
        ))}
        {!messages.loading && rows.length === 0 && <Empty>{t('live.no_messages')}</Empty>}
      </div>
    </Modal>
  );
}

/** A size in bytes for people: 812 B, 14 KB, 2.3 MB. */
function formatSize(bytes) {
  const n = Number(bytes);
  if (!Number.isFinite(n) || n < 0) return '';
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${Math.round(n / 1024)} KB`;
  return `${(n / (1024 * 1024)).toFixed(1)} MB`;
}

/** A server path (a signed link) or an http(s) URL; anything else is not linked. */
function fileUrl(url) {
  if (typeof url !== 'string') return null;
  if (/^\/(?![\/\\])/.test(url)) return url;
  return /^https?:\/\//i.test(url) ? url : null;
}

/** An image's width and height scaled to fit `side`, so the transcript keeps its room before it loads. */
function fitted(width, height, side) {
  const w = Number(width);
  const h = Number(height);
  if (!(w > 0 && h > 0)) return {};
  const scale = Math.min(1, side / w, side / h);
  return { width: Math.max(1, Math.round(w * scale)), height: Math.max(1, Math.round(h * scale)) };
}

/**
 * A message's attachments: images as thumbnails that open the full image in a new tab, other
 * files as a download link with name and size. The links are signed and expire after an hour;
 * the transcript is loaded again when it is opened.
 */
function Attachments({ list }) {
  const t = useT();
  const items = (Array.isArray(list) ? list : []).filter((a) => a && typeof a.id === 'string' && fileUrl(a.url));
  if (!items.length) return null;
  return (
    <div class="attachments">
      {items.map((a) => {
        const name = typeof a.name === 'string' ? a.name : '';
        const thumb = a.kind === 'image' ? fileUrl(a.thumbnail_url) || fileUrl(a.url) : null;
        return thumb ? (
          <a
            key={a.id}
            class="attachment attachment-image"
            href={fileUrl(a.url)}
            target="_blank"
            rel="noopener noreferrer"
            title={t('live.open_image', { name })}
          >
            <img src={thumb} alt={name} loading="lazy" {...fitted(a.width, a.height, 200)} />
          </a>
        ) : (
          <a
            key={a.id}
            class="attachment attachment-file"
            href={fileUrl(a.url)}
            target="_blank"
            rel="noopener noreferrer"
            download={name}
            title={t('live.download', { name })}
          >
            <span class="attachment-name">{name}</span>
            <span class="attachment-size">{formatSize(a.size)}</span>
          </a>
        );
      })}
    </div>
  );
}
