// Export conversations: a button and its dialog (format, rows, period, channel, skill group,
// agent) that downloads `exports/conversations`. The browser saves the streamed answer to disk
// as it arrives (a plain download link with the session cookie), so a large export never sits
// in the page's memory. Mountable on any page whose viewers may export (admins, supervisors).
import { useState } from 'preact/hooks';
import { qs, tp } from '../api.js';
import { useT } from '../i18n.js';
import { Field, FormFooter, Modal, Note } from '../ui.jsx';

const FORMATS = ['csv', 'xlsx', 'jsonl'];
const ROWS = ['conversation', 'message'];
const CHANNELS = ['', 'web', 'mobile', 'wechat', 'douyin'];

/** The download URL of an export with these choices (empty values left out). */
export function exportUrl(form) {
  return tp('/exports/conversations') + qs(form);
}

export function ExportButton() {
  const t = useT();
  const [open, setOpen] = useState(false);
  return (
    <>
      <button type="button" class="button" id="export-open" onClick={() => setOpen(true)}>
        {t('export.open')}
      </button>
      {open && <ExportDialog onClose={() => setOpen(false)} />}
    </>
  );
}

function ExportDialog({ onClose }) {
  const t = useT();
  const [form, setForm] = useState({
    format: 'csv',
    rows: 'conversation',
    from: '',
    to: '',
    channel: '',
    skill_group: '',
    agent: '',
  });
  const [error, setError] = useState('');
  const [started, setStarted] = useState('');
  const set = (key) => (event) => {
    setForm({ ...form, [key]: event.currentTarget.value });
    setStarted('');
  };
  const submit = (event) => {
    event.preventDefault();
    if (form.from && form.to && form.from > form.to) {
      setError(t('export.bad_period'));
      return;
    }
    setError('');
    const url = exportUrl(form);
    const link = document.createElement('a');
    link.href = url;
    link.download = '';
    document.body.appendChild(link);
    link.click();
    link.remove();
    setStarted(url);
  };
  return (
    <Modal
      title={t('export.title')}
      onClose={onClose}
      id="export-dialog"
      footer={<FormFooter form="export-form" submitId="export-start" label={t('export.start')} onClose={onClose} />}
    >
      <form id="export-form" class="form-grid" onSubmit={submit}>
        <Field label={t('export.format')}>
          <select id="export-format" value={form.format} onChange={set('format')}>
            {FORMATS.map((format) => (
              <option key={format} value={format}>
                {t(`export.format_${format}`)}
              </option>
            ))}
          </select>
        </Field>
        <Field label={t('export.rows')}>
          <select id="export-rows" value={form.rows} onChange={set('rows')}>
            {ROWS.map((rows) => (
              <option key={rows} value={rows}>
                {t(`export.rows_${rows}`)}
              </option>
            ))}
          </select>
        </Field>
        <Field label={t('export.from')} hint={t('export.period_hint')}>
          <input id="export-from" type="date" value={form.from} onInput={set('from')} />
        </Field>
        <Field label={t('export.to')}>
          <input id="export-to" type="date" value={form.to} onInput={set('to')} />
        </Field>
        <Field label={t('export.channel')}>
          <select id="export-channel" value={form.channel} onChange={set('channel')}>
            {CHANNELS.map((channel) => (
              <option key={channel} value={channel}>
                {channel ? channel : t('export.any')}
              </option>
            ))}
          </select>
        </Field>
        <Field label={t('export.skill_group')}>
          <input id="export-skill" value={form.skill_group} onInput={set('skill_group')} />
        </Field>
        <Field label={t('export.agent')} hint={t('export.agent_hint')}>
          <input id="export-agent" value={form.agent} onInput={set('agent')} />
        </Field>
      </form>
      <Note kind="info">{t('export.note')}</Note>
      {error && (
        <Note kind="error" id="export-error">
          {error}
        </Note>
      )}
      {started && (
        <Note kind="ok" id="export-started">
          {t('export.started')}{' '}
          <a href={started} download id="export-link">
            {t('export.again')}
          </a>
        </Note>
      )}
    </Modal>
  );
}
