// Languages of the console: English and Simplified Chinese. The choice is kept in localStorage
// under `switchboard:lang` (shared with the widget and the agent console); without one,
// navigator.language decides (zh* → Chinese).
import { createContext } from 'preact';
import { useContext } from 'preact/hooks';
import { STRINGS } from './strings.js';

const STORAGE_KEY = 'switchboard:lang';

export function initialLang() {
  try {
    const saved = localStorage.getItem(STORAGE_KEY);
    if (saved === 'en' || saved === 'zh-CN') return saved;
  } catch {
    // storage unavailable
  }
  return (navigator.language || '').toLowerCase().startsWith('zh') ? 'zh-CN' : 'en';
}

export function saveLang(lang) {
  try {
    localStorage.setItem(STORAGE_KEY, lang);
  } catch {
    // storage unavailable
  }
}

/** A translator for `lang`: `t('key', {name: value})` fills `{name}` in the string. */
export function translator(lang) {
  const index = lang === 'zh-CN' ? 1 : 0;
  const t = (key, params) => {
    const entry = STRINGS[key];
    let text = entry ? entry[index] : key;
    if (params) {
      text = text.replace(/\{(\w+)\}/g, (whole, name) =>
        params[name] === undefined ? whole : String(params[name]),
      );
    }
    return text;
  };
  t.has = (key) => Object.prototype.hasOwnProperty.call(STRINGS, key);
  t.lang = lang;
  return t;
}

export const LangContext = createContext(translator('en'));

export function useT() {
  return useContext(LangContext);
}

/** The message for an error: the translation of its code when there is one, else the server's. */
export function errorText(t, error) {
  if (!error) return '';
  const code = error.code || 'unknown';
  if (t.has(`err.${code}`)) return t(`err.${code}`);
  return error.message || code;
}

/** A time in the member's language; `short` drops the seconds and the year (tables). */
export function formatTime(t, ms, short) {
  if (ms === null || ms === undefined || ms === '') return '';
  const value = typeof ms === 'number' && ms < 1e11 ? ms * 1000 : ms;
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) return String(ms);
  return date.toLocaleString(t.lang === 'zh-CN' ? 'zh-CN' : 'en-GB', {
    year: short ? undefined : 'numeric',
    month: '2-digit',
    day: '2-digit',
    hour: '2-digit',
    minute: '2-digit',
    second: short ? undefined : '2-digit',
  });
}

export function formatBytes(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

export function percent(value) {
  return `${Math.round((Number(value) || 0) * 1000) / 10}%`;
}
