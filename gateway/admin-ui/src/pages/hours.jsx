// Business hours: the `business_hours` of the settings (on/off, weekly spans, holidays, the
// message, what happens out of hours) and the tenant's UTC offset, saved as a merge patch of the
// fields that changed (PATCH settings).
import { useState } from 'preact/hooks';
import { get, patch, tp } from '../api.js';
import { useT } from '../i18n.js';
import { ErrorNote, Loading, useLoad, useToast } from '../ui.jsx';

const DAYS = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'];
const TIME = /^([01]\d|2[0-3]):[0-5]\d$|^24:00$/;
const DATE = /^\d{4}-\d{2}-\d{2}$/;
const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);

/** Every offset from UTC-12:00 to UTC+14:00 by quarter hours, as the settings store it. */
const OFFSETS = [];
for (let minutes = -720; minutes <= 840; minutes += 15) OFFSETS.push(minutes);

export function offsetName(minutes) {
  const sign = minutes < 0 ? '−' : '+';
  const value = Math.abs(minutes);
  return `UTC${sign}${String(Math.floor(value / 60)).padStart(2, '0')}:${String(value % 60).padStart(2, '0')}`;
}

const DEFAULT_HOURS = {
  enabled: false,
  weekly: [{ days: ['mon', 'tue', 'wed', 'thu', 'fri'], open: '09:00', close: '18:00' }],
  holidays: [],
  message: '',
  out_of_hours: 'queue',
};

export function BusinessHours() {
  const t = useT();
  const [toast, setToast] = useToast();
  const loaded = useLoad(() => get(tp('/settings')), []);
  const [draft, setDraft] = useState(null);
  const [holiday, setHoliday] = useState('');
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);

  if (loaded.loading && !loaded.data) return <Loading />;
  if (loaded.error) return <ErrorNote error={loaded.error} />;
  if (!loaded.data) return null;
  const original = {
    business_hours: { ...DEFAULT_HOURS, ...(loaded.data.business_hours || {}) },
    utc_offset_minutes: loaded.data.utc_offset_minutes || 0,
  };
  const current = draft || original;
  const hours = current.business_hours;
  const setHours = (change) => setDraft({ ...current, business_hours: { ...hours, ...change } });
  const setSpan = (index, change) =>
    setHours({ weekly: hours.weekly.map((span, at) => (at === index ? { ...span, ...change } : span)) });

  // The merge patch: only the fields of business_hours that changed, and the offset if it did.
  const changes = {};
  const hoursPatch = {};
  for (const key of Object.keys(hours)) {
    if (!same(hours[key], original.business_hours[key])) hoursPatch[key] = hours[key];
  }
  if (Object.keys(hoursPatch).length) changes.business_hours = hoursPatch;
  if (current.utc_offset_minutes !== original.utc_offset_minutes) changes.utc_offset_minutes = current.utc_offset_minutes;
  const dirty = Object.keys(changes).length > 0;
  const badSpans = hours.weekly.some((span) => !TIME.test(span.open) || !TIME.test(span.close) || span.days.length === 0);

  const save = async () => {
    setBusy(true);
    setError(null);
    try {
      const saved = await patch(tp('/settings'), changes);
      loaded.setData(saved);
      setDraft(null);
      setToast(t('set.saved'));
    } catch (failure) {
      setError(failure);
    } finally {
      setBusy(false);
    }
  };

  const addHoliday = () => {
    if (!DATE.test(holiday) || hours.holidays.includes(holiday)) return;
    setHours({ holidays: [...hours.holidays, holiday].sort() });
    setHoliday('');
  };

  return (
    <div class="stack-lg" id="hours">
      <section class="card card-pad">
        <div class="row-between">
          <div>
            <h2 class="section-title">{t('bh.title')}</h2>
            <p class="muted small p-0">{t('bh.help')}</p>
          </div>
          <label class="switch">
            <input
              id="hours-enabled"
              type="checkbox"
              checked={hours.enabled}
              onChange={(event) => setHours({ enabled: event.currentTarget.checked })}
            />
            <span class="switch-track" aria-hidden="true" />
            <span>{hours.enabled ? t('bh.on') : t('bh.off')}</span>
          </label>
        </div>
        <div class="form-grid hours-top">
          <label class="field">
            <span class="field-label">{t('bh.offset')}</span>
            <select
              id="hours-offset"
              value={String(current.utc_offset_minutes)}
              onChange={(event) => setDraft({ ...current, utc_offset_minutes: Number(event.currentTarget.value) })}
            >
              {OFFSETS.map((minutes) => (
                <option key={minutes} value={String(minutes)}>
                  {offsetName(minutes)}
                </option>
              ))}
            </select>
            <span class="field-hint">{t('bh.offset_hint')}</span>
          </label>
          <div class="field">
            <span class="field-label">{t('bh.out_of_hours')}</span>
            <div class="segmented" id="hours-ooh" role="radiogroup">
              {['queue', 'reject'].map((option) => (
                <button
                  type="button"
                  key={option}
                  role="radio"
                  data-value={option}
                  aria-checked={hours.out_of_hours === option ? 'true' : 'false'}
                  class={hours.out_of_hours === option ? 'segment segment-on' : 'segment'}
                  onClick={() => setHours({ out_of_hours: option })}
                >
                  {t(`bh.ooh_${option}`)}
                </button>
              ))}
            </div>
            <span class="field-hint">{t(`bh.ooh_${hours.out_of_hours}_help`)}</span>
          </div>
        </div>
      </section>

      <section class="card card-pad">
        <h2 class="section-title">{t('bh.weekly')}</h2>
        <p class="muted small">{t('bh.weekly_help')}</p>
        <div class="stack" id="hours-spans">
          {hours.weekly.map((span, index) => (
            <div class="span-row" key={index} data-span={index}>
              <div class="days">
                {DAYS.map((day) => (
                  <label class={`day${span.days.includes(day) ? ' day-on' : ''}`} key={day}>
                    <input
                      type="checkbox"
                      data-day={day}
                      checked={span.days.includes(day)}
                      onChange={(event) =>
                        setSpan(index, {
                          days: event.currentTarget.checked
                            ? DAYS.filter((d) => d === day || span.days.includes(d))
                            : span.days.filter((d) => d !== day),
                        })
                      }
                    />
                    {t(`bh.day_${day}`)}
                  </label>
                ))}
              </div>
              <input
                class={`time span-open${TIME.test(span.open) ? '' : ' invalid'}`}
                value={span.open}
                placeholder="09:00"
                maxLength={5}
                aria-label={t('bh.open')}
                onInput={(event) => setSpan(index, { open: event.currentTarget.value })}
              />
              <span class="muted">–</span>
              <input
                class={`time span-close${TIME.test(span.close) ? '' : ' invalid'}`}
                value={span.close}
                placeholder="18:00"
                maxLength={5}
                aria-label={t('bh.close')}
                onInput={(event) => setSpan(index, { close: event.currentTarget.value })}
              />
              <button
                type="button"
                class="button-small span-remove"
                onClick={() => setHours({ weekly: hours.weekly.filter((_, at) => at !== index) })}
              >
                {t('common.delete')}
              </button>
            </div>
          ))}
          {hours.weekly.length === 0 && <div class="muted small">{t('bh.no_spans')}</div>}
        </div>
        {badSpans && <div class="field-error">{t('bh.bad_span')}</div>}
        <button
          type="button"
          class="button"
          id="hours-add-span"
          onClick={() => setHours({ weekly: [...hours.weekly, { days: ['sat', 'sun'], open: '10:00', close: '16:00' }] })}
        >
          + {t('bh.add_span')}
        </button>
      </section>

      <section class="card card-pad">
        <h2 class="section-title">{t('bh.holidays')}</h2>
        <p class="muted small">{t('bh.holidays_help')}</p>
        <div id="hours-holidays">
          {hours.holidays.map((date) => (
            <span class="chip chip-static" key={date} data-holiday={date}>
              {date}{' '}
              <button
                type="button"
                class="chip-x"
                aria-label={t('common.delete')}
                onClick={() => setHours({ holidays: hours.holidays.filter((d) => d !== date) })}
              >
                ×
              </button>
            </span>
          ))}
          {hours.holidays.length === 0 && <span class="muted small">{t('bh.no_holidays')}</span>}
        </div>
        <div class="row-tight holiday-add">
          <input type="date" id="holiday-new" value={holiday} onInput={(event) => setHoliday(event.currentTarget.value)} />
          <button type="button" class="button" id="holiday-add" disabled={!DATE.test(holiday)} onClick={addHoliday}>
            + {t('bh.add_holiday')}
          </button>
        </div>
      </section>

      <section class="card card-pad">
        <h2 class="section-title">{t('bh.message')}</h2>
        <p class="muted small">{t('bh.message_help')}</p>
        <textarea
          id="hours-message"
          rows={3}
          value={hours.message}
          onInput={(event) => setHours({ message: event.currentTarget.value })}
        />
      </section>

      <div class={`savebar${dirty ? ' savebar-dirty' : ''}`}>
        <ErrorNote error={error} id="hours-error" />
        <span class="muted" id="hours-changes">
          {dirty ? t('bh.unsaved') : t('set.no_changes')}
        </span>
        <div class="toolbar-spacer" />
        <button
          type="button"
          class="button"
          disabled={!dirty || busy}
          onClick={() => {
            setDraft(null);
            setError(null);
          }}
        >
          {t('set.discard')}
        </button>
        <button type="button" class="button-primary" id="hours-save" disabled={!dirty || busy} onClick={save}>
          {t('common.save')}
        </button>
      </div>
      {toast}
    </div>
  );
}
