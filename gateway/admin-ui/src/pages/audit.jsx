// Audit: who changed what, newest first, filtered by actor and action, paged by `before`.
import { useState } from 'preact/hooks';
import { get, qs, tp } from '../api.js';
import { formatTime, useT } from '../i18n.js';
import { Badge, Empty, ErrorNote, Loading, useLoad } from '../ui.jsx';

const LIMIT = 50;

function summaryText(summary) {
  if (summary === null || summary === undefined) return '';
  if (typeof summary !== 'object') return String(summary);
  return Object.entries(summary)
    .map(([key, value]) => `${key}=${typeof value === 'object' ? JSON.stringify(value) : value}`)
    .join('  ');
}

/** An HTTP status (or a word) as a badge colour: 2xx ok, 4xx warn, 5xx error. */
function statusKind(status) {
  const code = Number(status);
  if (Number.isFinite(code) && code > 0) {
    if (code < 400) return 'ok';
    return code < 500 ? 'warn' : 'error';
  }
  return status === 'ok' || status === 'success' ? 'ok' : 'neutral';
}

export function AuditPage() {
  const t = useT();
  const [actor, setActor] = useState('');
  const [action, setAction] = useState('');
  const [filters, setFilters] = useState({ actor: '', action: '' });
  // The `before` of each page shown so far; '' is the newest page.
  const [pages, setPages] = useState(['']);
  const before = pages[pages.length - 1];
  const entries = useLoad(
    () => get(tp(`/audit${qs({ ...filters, limit: LIMIT, before })}`)),
    [filters.actor, filters.action, before],
  );
  const rows = (entries.data && entries.data.entries) || [];
  const next = entries.data && entries.data.next_before;

  return (
    <div class="stack-lg">
      <form
        class="toolbar"
        id="audit-filters"
        onSubmit={(event) => {
          event.preventDefault();
          setFilters({ actor: actor.trim(), action: action.trim() });
          setPages(['']);
        }}
      >
        <label class="inline-field">
          <span>{t('audit.actor')}</span>
          <input id="audit-actor" value={actor} placeholder={t('audit.actor_placeholder')} onInput={(event) => setActor(event.currentTarget.value)} />
        </label>
        <label class="inline-field">
          <span>{t('audit.action')}</span>
          <input id="audit-action" value={action} placeholder={t('audit.action_placeholder')} onInput={(event) => setAction(event.currentTarget.value)} />
        </label>
        <button type="submit" class="button">
          {t('audit.filter')}
        </button>
        {(filters.actor || filters.action) && (
          <button
            type="button"
            class="button-ghost"
            onClick={() => {
              setActor('');
              setAction('');
              setFilters({ actor: '', action: '' });
              setPages(['']);
            }}
          >
            {t('audit.clear')}
          </button>
        )}
        <div class="toolbar-spacer" />
        <button type="button" class="button" onClick={() => entries.reload()}>
          {t('audit.refresh')}
        </button>
      </form>
      <ErrorNote error={entries.error} id="audit-error" />
      <div class="card">
        <table class="table" id="audit-table">
          <thead>
            <tr>
              <th class="col-date">{t('audit.at')}</th>
              <th>{t('audit.actor')}</th>
              <th>{t('audit.action')}</th>
              <th>{t('audit.target')}</th>
              <th>{t('audit.status')}</th>
              <th>{t('audit.summary')}</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((entry) => (
              <tr key={entry.id} data-action={entry.action}>
                <td class="col-date">{formatTime(t, entry.at)}</td>
                <td>
                  <span class="cell-strong">{entry.actor}</span>
                  {entry.actor_kind && <span class="muted small"> · {entry.actor_kind}</span>}
                </td>
                <td class="mono">{entry.action}</td>
                <td class="mono cell-clip">{entry.target}</td>
                <td>
                  <Badge kind={statusKind(entry.status)}>
                    {entry.status}
                  </Badge>
                </td>
                <td class="mono small cell-clip" title={summaryText(entry.summary)}>
                  {summaryText(entry.summary)}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
        {entries.loading && <Loading />}
        {!entries.loading && !entries.error && rows.length === 0 && <Empty>{t('audit.empty')}</Empty>}
      </div>
      <div class="pager" id="audit-pager">
        <button type="button" class="button" disabled={pages.length < 2} onClick={() => setPages(['' ])}>
          {t('audit.newest')}
        </button>
        <button type="button" class="button" disabled={pages.length < 2} onClick={() => setPages(pages.slice(0, -1))}>
          ← {t('common.previous')}
        </button>
        <span class="muted">{t('common.page', { n: pages.length })}</span>
        <button type="button" class="button" id="audit-older" disabled={!next} onClick={() => setPages([...pages, next])}>
          {t('audit.older')} →
        </button>
      </div>
    </div>
  );
}
