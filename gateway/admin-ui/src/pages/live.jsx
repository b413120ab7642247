// Live: the tenant's conversations by state (refreshed every few seconds) and any one's
// transcript, for supervisors.
import { useEffect, useState } from 'preact/hooks';
import { get, qs, tp } from '../api.js';
import { formatTime, useT } from '../i18n.js';
import { Badge, Empty, ErrorNote, Loading, Modal, useLoad } from '../ui.jsx';

const STATES = ['', 'bot', 'queued', 'assigned', 'closed'];
const STATE_KIND = { bot: 'info', queued: 'warn', assigned: 'ok', closed: 'neutral' };
const REFRESH_MS = 5000;

export function LivePage() {
  const t = useT();
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
            id="live-state"
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
          <input type="checkbox" id="live-auto" checked={auto} onChange={(event) => setAuto(event.currentTarget.checked)} />
          {t('live.auto')}
        </label>
        <div class="toolbar-spacer" />
        <button type="button" class="button" onClick={() => list.reload()}>
          {t('audit.refresh')}
        </button>
      </div>
      <ErrorNote error={list.error} />
      <div class="card">
        <table class="table" id="live-table">
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
                <td>{row.handoff_reason ? (t.has(`reason.${row.handoff_reason}`) ? t(`reason.${row.handoff_reason}`) : row.handoff_reason) : ''}</td>
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
      {open && <Transcript conversation={open} onClose={() => setOpen(null)} />}
    </div>
  );
}

function Transcript({ conversation, onClose }) {
  const t = useT();
  const messages = useLoad(
    () => get(tp(`/conversations/${encodeURIComponent(conversation.id)}/messages${qs({ limit: 500 })}`)),
    [conversation.id],
  );
  const rows = (messages.data && messages.data.messages) || [];
  return (
    <Modal title={t('live.transcript')} onClose={onClose} wide id="transcript">
      <div class="muted small mono">{conversation.id}</div>
      <ErrorNote error={messages.error} />
      {messages.loading && <Loading />}
      <div class="transcript">
        {rows.map((message) => (
          <div key={message.seq} class={`line line-${message.sender}`} data-seq={message.seq}>
            <div class="line-meta">
              {t(`live.sender_${message.sender}`)} · {formatTime(t, Date.parse(message.at), true)}
            </div>
            <div class="bubble">{message.text}</div>
          </div>
        ))}
        {!messages.loading && rows.length === 0 && <Empty>{t('live.no_messages')}</Empty>}
      </div>
    </Modal>
  );
}
