// Knowledge gaps: the questions the bot could not answer, grouped by meaning (largest first),
// each with its count, a 7-day trend, examples and how agents answered; a group becomes a draft
// FAQ (the FAQ editor, prefilled) or is dismissed (and stays dismissed).
import { useState } from 'preact/hooks';
import { get, post, qs, tp } from '../api.js';
import { formatTime, useT } from '../i18n.js';
import { Badge, Empty, ErrorNote, Loading, Note, useLoad, useToast } from '../ui.jsx';
import { FaqEditor } from './knowledge.jsx';

/** Bars of questions per day, oldest first. */
function Sparkline({ values, label }) {
  const max = Math.max(1, ...values);
  const width = 8;
  const gap = 3;
  const height = 24;
  return (
    <svg
      class="sparkline"
      width={values.length * (width + gap)}
      height={height}
      role="img"
      aria-label={label}
      data-trend={values.join(',')}
    >
      {values.map((value, index) => {
        const h = value === 0 ? 1 : Math.max(3, Math.round((value / max) * height));
        return (
          <rect
            key={index}
            x={index * (width + gap)}
            y={height - h}
            width={width}
            height={h}
            rx="1"
            class={value === 0 ? 'spark-zero' : 'spark-bar'}
          />
        );
      })}
    </svg>
  );
}

function GapGroup({ group, canEdit, onDraft, onDismiss, busy }) {
  const t = useT();
  return (
    <article class={`card gap-group${group.dismissed ? ' gap-dismissed' : ''}`} data-gap-id={group.id}>
      <header class="gap-head">
        <div class="gap-title">
          <span class="gap-count" title={t('gaps.count')}>
            {group.count}
          </span>
          <strong class="gap-label">{group.label}</strong>
          {group.published && <Badge kind="ok">{t('gaps.published')}</Badge>}
          {!group.published && group.faq_id && <Badge kind="info">{t('gaps.drafted')}</Badge>}
          {group.dismissed && <Badge kind="warn">{t('gaps.dismissed')}</Badge>}
        </div>
        <div class="gap-trend">
          <Sparkline values={group.trend || []} label={t('gaps.trend_label', { counts: (group.trend || []).join(', ') })} />
          <span class="muted">{t('gaps.last', { at: formatTime(t, group.last_at, true) })}</span>
        </div>
      </header>
      <div class="gap-body">
        <div>
          <h3 class="gap-subtitle">{t('gaps.examples')}</h3>
          <ul class="gap-examples">
            {group.examples.map((example) => (
              <li key={`${example.conversation_id}-${example.created_at}-${example.text}`}>
                <span>{example.text}</span>{' '}
                <span class="muted">{t(`gaps.reason.${example.reason}`)}</span>
              </li>
            ))}
          </ul>
        </div>
        <div>
          <h3 class="gap-subtitle">{t('gaps.agent_replies')}</h3>
          {group.agent_replies.length ? (
            <ul class="gap-replies">
              {group.agent_replies.map((reply) => (
                <li key={reply}>{reply}</li>
              ))}
            </ul>
          ) : (
            <p class="muted gap-no-replies">{t('gaps.no_agent_replies')}</p>
          )}
        </div>
      </div>
      {canEdit && (
        <footer class="gap-actions">
          {group.dismissed ? (
            <button type="button" class="button gap-restore" disabled={busy} onClick={() => onDismiss(group, false)}>
              {t('gaps.restore')}
            </button>
          ) : (
            <>
              <button type="button" class="button gap-dismiss" disabled={busy} onClick={() => onDismiss(group, true)}>
                {t('gaps.dismiss')}
              </button>
              <button type="button" class="button-primary gap-draft" disabled={busy} onClick={() => onDraft(group)}>
                {group.published ? t('gaps.edit_faq') : t('gaps.draft')}
              </button>
            </>
          )}
        </footer>
      )}
    </article>
  );
}

export function GapsPage({ permissions }) {
  const t = useT();
  const [toast, setToast] = useToast();
  const [showDismissed, setShowDismissed] = useState(false);
  const [editing, setEditing] = useState(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState(null);
  const canEdit = !permissions || permissions.has('knowledge');
  const groups = useLoad(() => get(tp(`/kb/gaps${qs({ dismissed: showDismissed ? 'true' : '' })}`)), [showDismissed]);

  const draft = async (group) => {
    setBusy(true);
    setError(null);
    try {
      const faq = await post(tp(`/kb/gaps/${encodeURIComponent(group.id)}/draft`));
      if (group.published) {
        setEditing(await get(tp(`/kb/faqs/${encodeURIComponent(faq.id)}`)));
      } else {
        setEditing({ ...faq, draft: true });
      }
    } catch (failure) {
      setError(failure);
    }
    setBusy(false);
  };

  const dismiss = async (group, dismissed) => {
    setBusy(true);
    setError(null);
    try {
      await post(tp(`/kb/gaps/${encodeURIComponent(group.id)}/${dismissed ? 'dismiss' : 'restore'}`));
      setToast(t(dismissed ? 'gaps.dismissed_toast' : 'gaps.restored_toast', { label: group.label }));
      await groups.reload();
    } catch (failure) {
      setError(failure);
    }
    setBusy(false);
  };

  const list = (groups.data && groups.data.groups) || [];
  return (
    <div class="stack-lg" id="gaps-page">
      <div class="toolbar">
        <p class="muted gaps-intro">{t('gaps.intro')}</p>
        <div class="toolbar-spacer" />
        <label class="check">
          <input
            id="gaps-show-dismissed"
            type="checkbox"
            checked={showDismissed}
            onChange={(event) => setShowDismissed(event.currentTarget.checked)}
          />
          {t('gaps.show_dismissed')}
        </label>
        <button type="button" class="button" id="gaps-refresh" onClick={() => groups.reload()}>
          {t('gaps.refresh')}
        </button>
      </div>
      {groups.data && groups.data.refresh_error && (
        <Note kind="warn" id="gaps-not-regrouped">
          {t('gaps.not_regrouped')}
        </Note>
      )}
      <ErrorNote error={groups.error || error} id="gaps-error" />
      {groups.loading && !groups.data && <Loading />}
      <div class="gap-list" id="gap-list">
        {list.map((group) => (
          <GapGroup key={group.id} group={group} canEdit={canEdit} onDraft={draft} onDismiss={dismiss} busy={busy} />
        ))}
      </div>
      {!groups.loading && !groups.error && list.length === 0 && <Empty>{t('gaps.empty')}</Empty>}
      {editing && (
        <FaqEditor
          faq={editing}
          onClose={() => setEditing(null)}
          onSaved={(message) => {
            setEditing(null);
            setToast(message);
            groups.reload();
          }}
        />
      )}
      {toast}
    </div>
  );
}
