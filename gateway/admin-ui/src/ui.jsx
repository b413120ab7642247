// Small building blocks shared by the pages: dialogs, notices, a two-step confirm button,
// a progress bar, a copy-once secret box, and a loader hook.
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { errorText, useT } from './i18n.js';

/** Runs `load` on mount and when `deps` change: {data, error, loading, reload, setData}. */
export function useLoad(load, deps) {
  const [state, setState] = useState({ data: null, error: null, loading: true });
  const serial = useRef(0);
  const reload = useCallback(() => {
    const mine = ++serial.current;
    setState((old) => ({ ...old, loading: true, error: null }));
    return Promise.resolve()
      .then(load)
      .then(
        (data) => mine === serial.current && setState({ data, error: null, loading: false }),
        (error) => mine === serial.current && setState({ data: null, error, loading: false }),
      );
  }, deps);
  useEffect(() => {
    reload();
  }, [reload]);
  const setData = (data) => setState((old) => ({ ...old, data }));
  return { ...state, reload, setData };
}

export function ErrorNote({ error, id }) {
  const t = useT();
  if (!error) return null;
  return (
    <div class="note note-error" role="alert" id={id} data-code={error.code}>
      <strong>{errorText(t, error)}</strong>
      {error.code && <span class="note-code">{error.code}</span>}
      {error.message && errorText(t, error) !== error.message && (
        <div class="note-detail">{error.message}</div>
      )}
    </div>
  );
}

export function Note({ kind = 'info', children, id }) {
  return (
    <div class={`note note-${kind}`} id={id} role={kind === 'error' ? 'alert' : 'status'}>
      {children}
    </div>
  );
}

export function Loading() {
  const t = useT();
  return <div class="loading">{t('common.loading')}</div>;
}

export function Empty({ children }) {
  return <div class="empty">{children}</div>;
}

export function Modal({ title, onClose, children, footer, wide, id }) {
  useEffect(() => {
    const onKey = (event) => event.key === 'Escape' && onClose();
    document.addEventListener('keydown', onKey);
    return () => document.removeEventListener('keydown', onKey);
  }, [onClose]);
  return (
    <div class="modal-backdrop" onMouseDown={(event) => event.target === event.currentTarget && onClose()}>
      <div class={`modal${wide === 'x' ? ' modal-xwide' : wide ? ' modal-wide' : ''}`} role="dialog" aria-modal="true" aria-label={title} id={id}>
        <div class="modal-head">
          <h2>{title}</h2>
          <button type="button" class="icon-button" aria-label="close" onClick={onClose}>
            ×
          </button>
        </div>
        <div class="modal-body">{children}</div>
        {footer && <div class="modal-foot">{footer}</div>}
      </div>
    </div>
  );
}

/** A form dialog's footer: what `children` puts on the left, then Cancel and the submit button
 *  of the form `form`. */
export function FormFooter({ form, submitId, label, disabled, onClose, children }) {
  const t = useT();
  return (
    <>
      {children}
      <div class="toolbar-spacer" />
      <button type="button" class="button" onClick={onClose}>
        {t('common.cancel')}
      </button>
      <button type="submit" form={form} class="button-primary" id={submitId} disabled={disabled}>
        {label}
      </button>
    </>
  );
}

/** A button that asks once more before acting: the first click arms it for four seconds. */
export function ConfirmButton({ onConfirm, children, confirmText, class: className = '', disabled, ...rest }) {
  const t = useT();
  const [armed, setArmed] = useState(false);
  useEffect(() => {
    if (!armed) return undefined;
    const timer = setTimeout(() => setArmed(false), 4000);
    return () => clearTimeout(timer);
  }, [armed]);
  return (
    <button
      type="button"
      {...rest}
      disabled={disabled}
      data-armed={armed ? 'true' : 'false'}
      class={`${className}${armed ? ' button-danger' : ''}`}
      onClick={() => {
        if (armed) {
          setArmed(false);
          onConfirm();
        } else {
          setArmed(true);
        }
      }}
    >
      {armed ? confirmText || t('common.confirm') : children}
    </button>
  );
}

export function ProgressBar({ value, state, id, label }) {
  const shown = Math.max(0, Math.min(100, Math.round(value)));
  return (
    <div class="progress" id={id} data-state={state} data-value={shown}>
      <div
        class="progress-track"
        role="progressbar"
        aria-valuemin="0"
        aria-valuemax="100"
        aria-valuenow={shown}
      >
        <div class={`progress-fill progress-${state}`} style={{ width: `${shown}%` }} />
      </div>
      <div class="progress-label">{label}</div>
    </div>
  );
}

/** A value shown once (a generated password, a console link) with a copy button. */
export function SecretBox({ label, value, id, hint }) {
  const t = useT();
  const [copied, setCopied] = useState(false);
  return (
    <div class="secret" id={id}>
      <div class="secret-label">{label}</div>
      <div class="secret-row">
        <code class="secret-value">{value}</code>
        <button
          type="button"
          class="button-small"
          onClick={() => {
            navigator.clipboard?.writeText(value).then(() => setCopied(true), () => {});
          }}
        >
          {copied ? t('common.copied') : t('common.copy')}
        </button>
      </div>
      <div class="secret-hint">{hint || t('common.shown_once')}</div>
    </div>
  );
}

export function Field({ label, hint, children, wide }) {
  return (
    <label class={`field${wide ? ' field-wide' : ''}`}>
      <span class="field-label">{label}</span>
      {children}
      {hint && <span class="field-hint">{hint}</span>}
    </label>
  );
}

export function Badge({ kind = 'neutral', children, title }) {
  return (
    <span class={`badge badge-${kind}`} title={title}>
      {children}
    </span>
  );
}

export function Tabs({ tabs, current, onChange }) {
  return (
    <div class="tabs" role="tablist">
      {tabs.map((tab) => (
        <button
          type="button"
          role="tab"
          key={tab.id}
          id={`tab-${tab.id}`}
          aria-selected={current === tab.id ? 'true' : 'false'}
          class={current === tab.id ? 'tab tab-current' : 'tab'}
          onClick={() => onChange(tab.id)}
        >
          {tab.label}
        </button>
      ))}
    </div>
  );
}

/** A short-lived success message at the bottom of the page. */
export function useToast() {
  const [toast, setToast] = useState(null);
  useEffect(() => {
    if (!toast) return undefined;
    const timer = setTimeout(() => setToast(null), 3500);
    return () => clearTimeout(timer);
  }, [toast]);
  const view = toast ? (
    <div class="toast" role="status" id="toast">
      {toast}
    </div>
  ) : null;
  return [view, setToast];
}

/** Switches between English and Chinese (the label names the other language). */
export function LangToggle({ onLang }) {
  const t = useT();
  return (
    <button type="button" class="lang-toggle" id="lang" onClick={onLang} title={t('common.language')}>
      {t('common.other_lang')}
    </button>
  );
}
