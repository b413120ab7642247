/*
 * Switchboard web chat widget.
 *
 * Embed on any site with one tag:
 *
 *   <script src="https://YOUR-SWITCHBOARD/widget.js" data-tenant="demo" async></script>
 *
 * Optional attributes on the script tag:
 *   data-tenant        tenant slug (default "demo")
 *   data-lang          "en" or "zh-CN": initial language when the visitor has not chosen one
 *   data-color         accent colour (any CSS colour)
 *   data-open          "true" to open the panel on load
 *   data-user-id       the site's signed-in user (its own id for them), with
 *   data-user-hash     hex HMAC-SHA256 of that id with the tenant's identity secret, computed by
 *                      the site's backend: the same chat follows the user to every browser and
 *                      the tenant's app (docs/protocol.md, "Identified visitors")
 * A page may instead set window.SwitchboardConfig = { tenant, lang, color, open, userId, userHash } before the
 * tag; its values win over the attributes (the demo page uses this for ?tenant=NAME).
 *
 * The server origin is the origin of this script's own src, so the widget works when it is
 * embedded on another site. Everything is drawn inside an open shadow root attached to
 * <div id="switchboard-widget">, so the host page's CSS cannot break it.
 *
 * Security: text from the network is only ever inserted with textContent.
 */
(function () {
  'use strict';

  if (window.Switchboard && window.Switchboard._loaded) {
    return; // the tag was included twice
  }

  // ---------------------------------------------------------------------------------------
  // Configuration
  // ---------------------------------------------------------------------------------------

  var script = document.currentScript || findOwnScript();

  function findOwnScript() {
    var list = document.getElementsByTagName('script');
    for (var i = list.length - 1; i >= 0; i--) {
      if (/\/widget\.js(?:[?#]|$)/.test(list[i].src)) {
        return list[i];
      }
    }
    return null;
  }

  var pageConfig = (window.SwitchboardConfig && typeof window.SwitchboardConfig === 'object')
    ? window.SwitchboardConfig : {};

  // A setting from window.SwitchboardConfig, else from the script tag's data-* attribute.
  function attr(name) {
    var key = name.replace(/^data-/, '');
    if (pageConfig[key] != null) { return String(pageConfig[key]); }
    return script ? script.getAttribute(name) : null;
  }

  var ORIGIN = (function () {
    try {
      if (script && script.src) {
        return new URL(script.src, window.location.href).origin;
      }
    } catch (e) { /* fall through */ }
    return window.location.origin;
  })();
  var WS_ORIGIN = ORIGIN.replace(/^http/, 'ws');

  var SLUG = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;

  var TENANT = (function () {
    var tenant = attr('data-tenant');
    return tenant && SLUG.test(tenant) ? tenant : 'demo';
  })();

  // The host site's signed-in user, vouched for by its backend's signature: the session opens
  // with these (never with a saved token), and what this browser keeps is kept per user, so a
  // user who signs out leaves nothing to the next one.
  var USER_ID = pageConfig.userId != null ? String(pageConfig.userId) : attr('data-user-id');
  var USER_HASH = pageConfig.userHash != null ? String(pageConfig.userHash) : attr('data-user-hash');
  var IDENTIFIED = !!USER_ID;

  var KEY_PREFIX = 'switchboard:' + TENANT + ':' + (IDENTIFIED ? 'user:' + USER_ID + ':' : '');
  var KEY_TOKEN = KEY_PREFIX + 'token';
  var KEY_OUTBOX = KEY_PREFIX + 'outbox';
  var KEY_SEEN = KEY_PREFIX + 'seen';
  var KEY_LANG = 'switchboard:lang';

  var MAX_TEXT_BYTES = 64 * 1024;
  var TYPING_SEND_INTERVAL = 3000;
  var TYPING_SHOW_FOR = 4000;
  var BACKOFF_START = 500;
  var BACKOFF_CAP = 30000;
  var WS_FAILURES_BEFORE_POLL = 3;
  var POLL_TIMEOUT = 35000;

  // ---------------------------------------------------------------------------------------
  // Strings: one dictionary for the whole widget
  // ---------------------------------------------------------------------------------------

  var STRINGS = {
    en: {
      langName: 'English',
      langSwitch: '中文',
      langSwitchLabel: 'Switch language to Chinese (中文)',
      launcherOpen: 'Open chat',
      launcherClose: 'Close chat',
      unread: function (n) { return n === 1 ? '1 unread message' : n + ' unread messages'; },
      panelLabel: 'Customer support chat',
      title: 'Chat with us',
      subtitle: 'We usually reply in a few minutes',
      connecting: 'Connecting…',
      reconnecting: 'Reconnecting…',
      online: 'Online',
      unavailable: 'Chat is unavailable right now. Retrying…',
      minimize: 'Minimize chat',
      intro: 'Hi there! How can we help? Write your question below and our team will reply right here.',
      inputLabel: 'Your message',
      placeholder: 'Write a message…',
      send: 'Send',
      composerHint: 'Enter to send, Shift+Enter for a new line',
      messagesLabel: 'Conversation',
      sender: { customer: 'You', bot: 'Bot assistant', agent: 'Support', system: 'Notice' },
      sending: 'Sending…',
      sent: 'Sent',
      failed: 'Not sent. Tap to retry',
      queue: function (n) {
        return n <= 1
          ? 'You are next in the queue. An agent will be with you shortly.'
          : 'You are number ' + n + ' in the queue.';
      },
      typing: 'Support is typing…',
      newConversation: 'New conversation',
      suggestions: 'Suggested questions',
      rate: 'Rate this chat',
      stars: function (n) { return n + (n === 1 ? ' star' : ' stars'); },
      rateComment: 'Anything to add? (optional)',
      rateSend: 'Send rating',
      rated: function (n) { return 'Thank you! You rated this chat ' + n + ' of 5.'; },
      poweredBy: 'Powered by Switchboard',
      attach: 'Attach a file or image',
      dropHere: 'Drop files to attach them',
      uploading: function (pct) { return 'Uploading… ' + pct + '%'; },
      retryUpload: 'Retry',
      removeFile: function (name) { return 'Remove ' + name; },
      openImage: function (name) { return 'Open image ' + name; },
      download: function (name) { return 'Download ' + name; },
      uploadErrors: {
        unsupported_type: 'This type of file cannot be sent.',
        too_large: 'This file is too large.',
        empty_file: 'This file is empty.',
        bad_image: 'This image could not be read.',
        attachments_off: 'Files cannot be sent in this chat.',
        busy: 'The server is busy. Please retry.',
        rate_limited: 'Too many uploads. Please wait a moment and retry.',
        network: 'The connection failed. Please retry.',
        generic: 'The upload failed. Please retry.'
      },
      errors: {
        uploading: 'Please wait until the files are uploaded.',
        bad_attachment: 'A file could not be sent. Please attach it again.',
        too_many_attachments: 'At most 10 files can be sent in one message.',
        bad_frame: 'The chat could not understand that request.',
        nothing_to_rate: 'This chat can no longer be rated.',
        bad_rating: 'Please pick 1 to 5 stars (comments up to 1,000 characters).',
        too_large: 'That message is too long. Please shorten it.',
        empty_text: 'Please type a message first.',
        rate_limited: 'You are sending messages too quickly. Please wait a moment.',
        blocked: 'This message was not sent: it contains words that are not allowed.',
        generic: 'Something went wrong. Please try again.'
      }
    },
    zh: {
      langName: '中文',
      langSwitch: 'EN',
      langSwitchLabel: '切换为英文 (English)',
      launcherOpen: '打开在线客服',
      launcherClose: '关闭在线客服',
      unread: function (n) { return n + ' 条未读消息'; },
      panelLabel: '在线客服对话',
      title: '在线客服',
      subtitle: '我们通常会在几分钟内回复',
      connecting: '正在连接…',
      reconnecting: '正在重新连接…',
      online: '在线',
      unavailable: '客服暂时无法连接，正在重试…',
      minimize: '收起对话',
      intro: '您好！请问有什么可以帮您？在下方输入您的问题，客服会在这里回复您。',
      inputLabel: '您的消息',
      placeholder: '输入消息…',
      send: '发送',
      composerHint: '按 Enter 发送，Shift+Enter 换行',
      messagesLabel: '对话内容',
      sender: { customer: '我', bot: '智能助手', agent: '客服', system: '提示' },
      sending: '发送中…',
      sent: '已发送',
      failed: '发送失败，点击重试',
      queue: function (n) {
        return n <= 1
          ? '您是下一位，客服马上为您服务。'
          : '您前面还有 ' + (n - 1) + ' 位，请稍候。';
      },
      typing: '客服正在输入…',
      newConversation: '新的对话',
      suggestions: '猜您想问',
      rate: '为本次服务评分',
      stars: function (n) { return n + ' 星'; },
      rateComment: '还有什么想说的？（选填）',
      rateSend: '提交评价',
      rated: function (n) { return '感谢您的评价！您为本次服务打了 ' + n + ' 分（满分 5 分）。'; },
      poweredBy: '由 Switchboard 提供支持',
      attach: '发送文件或图片',
      dropHere: '松开鼠标即可添加文件',
      uploading: function (pct) { return '上传中… ' + pct + '%'; },
      retryUpload: '重试',
      removeFile: function (name) { return '移除 ' + name; },
      openImage: function (name) { return '查看图片 ' + name; },
      download: function (name) { return '下载 ' + name; },
      uploadErrors: {
        unsupported_type: '不支持发送此类型的文件。',
        too_large: '文件太大。',
        empty_file: '文件是空的。',
        bad_image: '无法识别这张图片。',
        attachments_off: '当前对话不能发送文件。',
        busy: '服务器繁忙，请重试。',
        rate_limited: '上传太频繁，请稍后重试。',
        network: '网络连接失败，请重试。',
        generic: '上传失败，请重试。'
      },
      errors: {
        uploading: '请等待文件上传完成。',
        bad_attachment: '有文件无法发送，请重新添加。',
        too_many_attachments: '每条消息最多发送 10 个文件。',
        bad_frame: '请求格式有误。',
        nothing_to_rate: '该会话已无法评价。',
        bad_rating: '请选择 1–5 星（评论最多 1000 字）。',
        too_large: '消息太长，请精简后再发送。',
        empty_text: '请先输入消息内容。',
        rate_limited: '您发送得太快了，请稍后再试。',
        blocked: '消息未发送：包含不允许的词语。',
        generic: '出错了，请稍后再试。'
      }
    }
  };

  // ---------------------------------------------------------------------------------------
  // Small helpers
  // ---------------------------------------------------------------------------------------

  var memoryStore = {};
  var store = {
    get: function (key) {
      try { return window.localStorage.getItem(key); } catch (e) { return memoryStore[key] || null; }
    },
    set: function (key, value) {
      try { window.localStorage.setItem(key, value); } catch (e) { memoryStore[key] = value; }
    },
    remove: function (key) {
      try { window.localStorage.removeItem(key); } catch (e) { delete memoryStore[key]; }
    },
    getJSON: function (key, fallback) {
      var raw = store.get(key);
      if (!raw) { return fallback; }
      try { return JSON.parse(raw); } catch (e) { return fallback; }
    },
    setJSON: function (key, value) { store.set(key, JSON.stringify(value)); }
  };

  function normalizeLang(lang) {
    return /^zh/i.test(String(lang || '')) ? 'zh' : 'en';
  }

  function uuid() {
    var c = window.crypto;
    if (c && typeof c.randomUUID === 'function') {
      return c.randomUUID();
    }
    var b = new Uint8Array(16);
    if (c && c.getRandomValues) {
      c.getRandomValues(b);
    } else {
      for (var i = 0; i < 16; i++) { b[i] = Math.floor(Math.random() * 256); }
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    var h = [];
    for (var j = 0; j < 16; j++) { h.push((b[j] + 0x100).toString(16).slice(1)); }
    return h.slice(0, 4).join('') + '-' + h.slice(4, 6).join('') + '-' + h.slice(6, 8).join('') +
      '-' + h.slice(8, 10).join('') + '-' + h.slice(10, 16).join('');
  }

  function byteLength(text) {
    if (window.TextEncoder) { return new TextEncoder().encode(text).length; }
    return unescape(encodeURIComponent(text)).length;
  }

  function toSeq(value) {
    var n = Number(value);
    return Number.isInteger(n) && n > 0 ? n : null;
  }

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) { node.className = className; }
    if (text != null) { node.textContent = String(text); }
    return node;
  }

  var SENDERS = { customer: true, bot: true, agent: true, system: true };
  // Refusals a resend cannot change: the message shows why instead of a retry button.
  var FINAL_ERRORS = { blocked: true, bad_attachment: true, too_many_attachments: true };

  // ---------------------------------------------------------------------------------------
  // State
  // ---------------------------------------------------------------------------------------

  var lang = normalizeLang(store.get(KEY_LANG) || attr('data-lang') || navigator.language ||
    (navigator.languages && navigator.languages[0]));

  function t(key) {
    var value = STRINGS[lang][key];
    return value === undefined ? STRINGS.en[key] : value;
  }

  var session = {
    token: store.get(KEY_TOKEN),
    visitorId: null,
    conversationId: null,
    checked: false // true once the server confirmed the token in this page's life
  };

  // One "epoch" per conversation numbering: seqs restart when a new conversation begins.
  var epoch = newEpochState(null);
  var pastConversations = {};

  function newEpochState(conv) {
    return { conv: conv, seen: {}, contig: 0, max: 0, acked: 0 };
  }

  // client_msg_id -> { id, text, at, el, seq, state: 'pending'|'sent'|'failed', inflight }
  var byClientId = {};
  // ids of messages not yet receipted, in send order
  var outbox = [];

  var conn = {
    ws: null,
    mode: 'ws', // 'ws' or 'poll'
    state: 'idle', // idle | connecting | open | reconnecting | unavailable
    started: false,
    everOpen: false,
    failedOpens: 0,
    attempt: 0,
    timer: null,
    polling: false,
    connecting: false,
    pollSkipGap: false,
    lastTypingSent: 0,
    // ids sent on the open socket, oldest first, not answered yet. The server answers each send
    // with a receipt or an error, in order, and its error frames do not name the message.
    awaiting: []
  };

  var ui = {}; // element references, filled by buildUI()
  var isOpen = false;
  var unread = 0;
  var typingTimer = null;
  var errorTimer = null;
  var queuePosition = null;
  var pendingCalls = []; // API calls made before the DOM was ready

  // ---------------------------------------------------------------------------------------
  // Styles (scoped to the shadow root)
  // ---------------------------------------------------------------------------------------

  var CSS = [
    ':host { all: initial; }',
    '*, *::before, *::after { box-sizing: border-box; }',
    '.sb-root {',
    '  --sb-accent: #2563eb;',
    '  --sb-accent-ink: #ffffff;',
    '  --sb-bg: #ffffff;',
    '  --sb-surface: #f4f6fa;',
    '  --sb-border: #e3e7ef;',
    '  --sb-text: #111827;',
    '  --sb-muted: #6b7280;',
    '  --sb-danger: #b91c1c;',
    '  --sb-radius: 16px;',
    '  font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial,',
    '    "PingFang SC", "Hiragino Sans GB", "Microsoft YaHei", "Noto Sans CJK SC", sans-serif;',
    '  font-size: 14px; line-height: 1.45; color: var(--sb-text);',
    '  -webkit-font-smoothing: antialiased;',
    '}',
    '.sb-sr { position: absolute; width: 1px; height: 1px; margin: -1px; padding: 0; overflow: hidden;',
    '  clip: rect(0 0 0 0); white-space: nowrap; border: 0; }',
    'button { font: inherit; color: inherit; }',
    ':focus-visible { outline: 2px solid var(--sb-accent); outline-offset: 2px; }',

    /* launcher */
    '#sb-launcher { position: fixed; right: 20px; bottom: 20px; z-index: 2147483646;',
    '  width: 60px; height: 60px; border-radius: 50%; border: 0; cursor: pointer;',
    '  background: var(--sb-accent); color: var(--sb-accent-ink);',
    '  display: flex; align-items: center; justify-content: center;',
    '  box-shadow: 0 8px 24px rgba(17, 24, 39, .22), 0 2px 6px rgba(17, 24, 39, .12);',
    '  transition: transform .15s ease, box-shadow .15s ease; }',
    '#sb-launcher:hover { transform: translateY(-2px); box-shadow: 0 12px 28px rgba(17, 24, 39, .26); }',
    '#sb-launcher:focus-visible { outline-offset: 4px; }',
    '#sb-launcher svg { width: 28px; height: 28px; }',
    '#sb-launcher .sb-icon-close { display: none; }',
    '#sb-launcher[aria-expanded="true"] .sb-icon-chat { display: none; }',
    '#sb-launcher[aria-expanded="true"] .sb-icon-close { display: block; }',
    '.sb-badge { position: absolute; top: -2px; right: -2px; min-width: 22px; height: 22px; padding: 0 6px;',
    '  border-radius: 11px; background: #ef4444; color: #fff; font-size: 12px; font-weight: 700;',
    '  line-height: 22px; text-align: center; border: 2px solid #fff; }',
    '.sb-badge[hidden] { display: none; }',

    /* panel */
    '#sb-panel { position: fixed; right: 20px; bottom: 92px; z-index: 2147483647;',
    '  width: 380px; height: min(640px, calc(100vh - 120px)); min-height: 360px;',
    '  display: flex; flex-direction: column; overflow: hidden;',
    '  background: var(--sb-bg); border-radius: var(--sb-radius); border: 1px solid var(--sb-border);',
    '  box-shadow: 0 24px 60px rgba(17, 24, 39, .22), 0 4px 12px rgba(17, 24, 39, .08);',
    '  transform-origin: bottom right; animation: sb-pop .18s ease-out; }',
    '#sb-panel[hidden] { display: none; }',
    '@keyframes sb-pop { from { opacity: 0; transform: translateY(8px) scale(.98); } to { opacity: 1; transform: none; } }',
    '@media (prefers-reduced-motion: reduce) { #sb-panel { animation: none; } #sb-launcher { transition: none; } .sb-dots span { animation: none !important; } }',

    '.sb-header { display: flex; align-items: center; gap: 12px; padding: 14px 12px 14px 16px;',
    '  background: var(--sb-accent); color: var(--sb-accent-ink); }',
    '.sb-avatar { flex: none; width: 38px; height: 38px; border-radius: 50%; background: rgba(255,255,255,.2);',
    '  display: flex; align-items: center; justify-content: center; }',
    '.sb-avatar svg { width: 20px; height: 20px; }',
    '.sb-heading { flex: 1; min-width: 0; }',
    '.sb-heading h2 { margin: 0; font-size: 16px; font-weight: 650; line-height: 1.25; }',
    '.sb-status { margin: 2px 0 0; font-size: 12.5px; opacity: .9; display: flex; align-items: center; gap: 6px;',
    '  white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }',
    '.sb-dot { width: 8px; height: 8px; border-radius: 50%; background: #fbbf24; flex: none; }',
    '.sb-root[data-conn="open"] .sb-dot { background: #34d399; }',
    '.sb-root[data-conn="unavailable"] .sb-dot { background: #f87171; }',
    '.sb-hbtn { flex: none; height: 32px; min-width: 32px; padding: 0 8px; border-radius: 8px; border: 0;',
    '  background: rgba(255,255,255,.16); color: inherit; cursor: pointer; font-size: 13px; font-weight: 600;',
    '  display: inline-flex; align-items: center; justify-content: center; }',
    '.sb-hbtn:hover { background: rgba(255,255,255,.28); }',
    '.sb-hbtn svg { width: 18px; height: 18px; }',
    '.sb-hbtn:focus-visible { outline-color: #fff; }',

    '.sb-banner { padding: 8px 16px; font-size: 13px; border-bottom: 1px solid var(--sb-border); }',
    '.sb-banner[hidden] { display: none; }',
    '#sb-conn { background: #fffbeb; color: #92400e; }',
    '#sb-queue { background: #eff6ff; color: #1e3a8a; display: flex; gap: 8px; align-items: center; }',
    '#sb-queue[hidden] { display: none; }',
    '#sb-queue::before { content: ""; width: 8px; height: 8px; border-radius: 50%; background: var(--sb-accent);',
    '  flex: none; animation: sb-pulse 1.6s ease-in-out infinite; }',
    '@keyframes sb-pulse { 0%, 100% { opacity: .35; } 50% { opacity: 1; } }',

    '#sb-messages { flex: 1; overflow-y: auto; padding: 16px 14px 8px; background: var(--sb-surface);',
    '  display: flex; flex-direction: column; gap: 10px; overscroll-behavior: contain; }',
    '.sb-intro { align-self: center; max-width: 92%; text-align: center; color: var(--sb-muted); font-size: 13px;',
    '  padding: 4px 8px 8px; }',
    '.sb-sep { align-self: stretch; display: flex; align-items: center; gap: 10px; color: var(--sb-muted);',
    '  font-size: 12px; margin: 6px 0; }',
    '.sb-sep::before, .sb-sep::after { content: ""; flex: 1; height: 1px; background: var(--sb-border); }',

    '.sb-msg { display: flex; flex-direction: column; max-width: 82%; align-self: flex-start; }',
    '.sb-msg[data-sender="customer"] { align-self: flex-end; align-items: flex-end; }',
    '.sb-msg[data-sender="system"] { align-self: center; align-items: center; max-width: 92%; }',
    '.sb-label { font-size: 12px; color: var(--sb-muted); margin: 0 0 3px 4px; font-weight: 600; }',
    '.sb-msg[data-sender="bot"] .sb-label { color: #6d28d9; }',
    '.sb-bubble { padding: 9px 13px; border-radius: 16px; white-space: pre-wrap; overflow-wrap: anywhere;',
    '  word-break: break-word; background: var(--sb-bg); border: 1px solid var(--sb-border);',
    '  border-bottom-left-radius: 6px; }',
    '.sb-msg[data-sender="bot"] .sb-bubble { background: #f5f3ff; border-color: #e4defd; }',
    '.sb-msg[data-sender="customer"] .sb-bubble { background: var(--sb-accent); color: var(--sb-accent-ink);',
    '  border-color: transparent; border-bottom-left-radius: 16px; border-bottom-right-radius: 6px; }',
    '.sb-msg[data-sender="system"] .sb-bubble { background: transparent; border: 0; padding: 2px 8px;',
    '  color: var(--sb-muted); font-size: 12.5px; text-align: center; }',
    '.sb-msg[data-state="pending"] .sb-bubble { opacity: .7; }',
    '.sb-msg[data-state="failed"] .sb-bubble { background: #fee2e2; color: var(--sb-danger); border-color: #fecaca; }',
    '.sb-meta { font-size: 11.5px; color: var(--sb-muted); margin: 3px 6px 0; display: flex; gap: 6px; }',
    '.sb-msg[data-sender="system"] .sb-meta { display: none; }',
    '.sb-time { flex: none; }',
    '.sb-notice { color: var(--sb-danger); }',
    '.sb-retry { border: 0; background: none; padding: 0; color: var(--sb-danger); cursor: pointer;',
    '  text-decoration: underline; font-size: inherit; }',
    '.sb-suggestions { display: flex; flex-wrap: wrap; gap: 6px; margin-top: 8px; }',
    '.sb-suggestion { border: 1px solid var(--sb-accent); color: var(--sb-accent); background: var(--sb-bg);',
    '  border-radius: 999px; padding: 6px 12px; cursor: pointer; font-size: 13px; text-align: left; }',
    '.sb-suggestion:hover:not(:disabled) { background: var(--sb-accent); color: var(--sb-accent-ink); }',
    '.sb-suggestion:disabled { opacity: .5; cursor: default; }',
    '.sb-survey { margin-top: 8px; display: flex; flex-direction: column; gap: 6px; }',
    '.sb-stars { display: flex; gap: 4px; }',
    '.sb-star { border: 1px solid var(--sb-border); background: var(--sb-bg); border-radius: 8px;',
    '  width: 36px; height: 34px; cursor: pointer; font-size: 18px; color: #d1d5db; }',
    '.sb-star[aria-pressed="true"] { color: #f59e0b; border-color: #f59e0b; }',
    '.sb-survey textarea { font: inherit; font-size: 13px; border: 1px solid var(--sb-border); border-radius: 8px;',
    '  padding: 6px 8px; resize: vertical; min-height: 34px; }',
    '.sb-rate-send { align-self: flex-start; border: 0; border-radius: 999px; padding: 6px 14px;',
    '  background: var(--sb-accent); color: var(--sb-accent-ink); cursor: pointer; font-size: 13px; }',
    '.sb-rate-send:disabled { opacity: .5; cursor: default; }',
    '.sb-rated { font-size: 13px; color: var(--sb-muted); }',

    '#sb-typing { padding: 4px 16px 6px; font-size: 12.5px; color: var(--sb-muted); background: var(--sb-surface);',
    '  display: flex; align-items: center; gap: 8px; }',
    '#sb-typing[hidden] { display: none; }',
    '.sb-dots { display: inline-flex; gap: 3px; }',
    '.sb-dots span { width: 5px; height: 5px; border-radius: 50%; background: var(--sb-muted);',
    '  animation: sb-blink 1.2s infinite ease-in-out; }',
    '.sb-dots span:nth-child(2) { animation-delay: .15s; }',
    '.sb-dots span:nth-child(3) { animation-delay: .3s; }',
    '@keyframes sb-blink { 0%, 80%, 100% { opacity: .25; } 40% { opacity: 1; } }',

    '#sb-error { margin: 0; padding: 8px 16px; background: #fef2f2; color: var(--sb-danger); font-size: 13px;',
    '  border-top: 1px solid #fecaca; }',
    '#sb-error[hidden] { display: none; }',

    '.sb-composer { display: flex; align-items: flex-end; gap: 8px; padding: 10px 12px; margin: 0;',
    '  border-top: 1px solid var(--sb-border); background: var(--sb-bg); }',
    '#sb-input { flex: 1; resize: none; border: 1px solid var(--sb-border); border-radius: 12px;',
    '  padding: 9px 12px; font: inherit; font-size: 14px; line-height: 1.4; color: var(--sb-text);',
    '  background: var(--sb-bg); max-height: 120px; min-height: 40px; outline: none; }',
    '#sb-input:focus { border-color: var(--sb-accent); box-shadow: 0 0 0 3px rgba(37, 99, 235, .15); }',
    '#sb-input::placeholder { color: #9ca3af; }',
    '#sb-send { flex: none; width: 40px; height: 40px; border-radius: 12px; border: 0; cursor: pointer;',
    '  background: var(--sb-accent); color: var(--sb-accent-ink); display: flex; align-items: center;',
    '  justify-content: center; }',
    '#sb-send:disabled { opacity: .45; cursor: default; }',
    '#sb-send svg { width: 18px; height: 18px; }',
    '#sb-attach { flex: none; width: 40px; height: 40px; border-radius: 12px; border: 0; cursor: pointer;',
    '  background: transparent; color: var(--sb-muted); display: flex; align-items: center; justify-content: center; }',
    '#sb-attach:hover { background: var(--sb-surface); color: var(--sb-accent); }',
    '#sb-attach svg { width: 20px; height: 20px; }',
    '#sb-file { display: none; }',
    '#sb-tray { display: flex; flex-direction: column; gap: 6px; padding: 8px 12px 0; background: var(--sb-bg);',
    '  border-top: 1px solid var(--sb-border); max-height: 150px; overflow-y: auto; }',
    '#sb-tray[hidden] { display: none; }',
    '.sb-upload { display: flex; align-items: center; gap: 8px; font-size: 12.5px; border: 1px solid var(--sb-border);',
    '  border-radius: 10px; padding: 5px 6px 5px 8px; background: var(--sb-surface); }',
    '.sb-upload[data-state="failed"] { border-color: #fecaca; background: #fef2f2; }',
    '.sb-upload-preview { flex: none; width: 32px; height: 32px; border-radius: 6px; object-fit: cover;',
    '  background: var(--sb-border); }',
    '.sb-upload-body { flex: 1; min-width: 0; display: flex; flex-direction: column; gap: 3px; }',
    '.sb-upload-name { white-space: nowrap; overflow: hidden; text-overflow: ellipsis; font-weight: 600; }',
    '.sb-upload-info { color: var(--sb-muted); }',
    '.sb-upload[data-state="failed"] .sb-upload-info { color: var(--sb-danger); }',
    '.sb-progress { height: 3px; border-radius: 2px; background: var(--sb-border); overflow: hidden; }',
    '.sb-progress span { display: block; height: 100%; width: 0; background: var(--sb-accent); transition: width .1s; }',
    '.sb-upload:not([data-state="uploading"]) .sb-progress { display: none; }',
    '.sb-upload button { flex: none; border: 0; background: none; cursor: pointer; padding: 4px 6px; border-radius: 6px; }',
    '.sb-upload-retry { color: var(--sb-danger); text-decoration: underline; }',
    '.sb-upload-retry[hidden] { display: none; }',
    '.sb-upload-remove { color: var(--sb-muted); font-size: 16px; line-height: 1; }',
    '.sb-upload-remove:hover { background: var(--sb-border); }',
    '.sb-root[data-drag="true"] #sb-panel::after { content: attr(data-drop); position: absolute; inset: 0;',
    '  display: flex; align-items: center; justify-content: center; background: rgba(239, 246, 255, .94);',
    '  border: 2px dashed var(--sb-accent); border-radius: inherit; color: var(--sb-accent); font-weight: 600;',
    '  pointer-events: none; }',
    '.sb-msg[data-caption="none"] .sb-bubble { display: none; }',
    '.sb-atts { display: flex; flex-wrap: wrap; gap: 6px; margin-top: 4px; justify-content: inherit; }',
    '.sb-msg[data-sender="customer"] .sb-atts { justify-content: flex-end; }',
    '.sb-att-image { display: block; border-radius: 12px; overflow: hidden; border: 1px solid var(--sb-border);',
    '  background: var(--sb-bg); line-height: 0; }',
    '.sb-att-image img { display: block; max-width: 200px; max-height: 200px; }',
    '.sb-att-file { display: flex; align-items: center; gap: 8px; padding: 8px 12px; border-radius: 12px;',
    '  border: 1px solid var(--sb-border); background: var(--sb-bg); color: var(--sb-text); text-decoration: none;',
    '  max-width: 240px; }',
    '.sb-att-file:hover { border-color: var(--sb-accent); }',
    '.sb-att-file svg { flex: none; width: 22px; height: 22px; color: var(--sb-accent); }',
    '.sb-att-name { display: block; font-weight: 600; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }',
    '.sb-att-size { display: block; font-size: 12px; color: var(--sb-muted); }',
    '.sb-att-text { min-width: 0; }',
    '.sb-footer { text-align: center; font-size: 11px; color: #9ca3af; padding: 0 0 8px; background: var(--sb-bg); }',

    /* phone-width viewports: the panel takes the whole screen */
    '@media (max-width: 480px) {',
    '  #sb-panel { inset: 0; right: 0; bottom: 0; width: 100%; height: 100%; min-height: 0;',
    '    border-radius: 0; border: 0; }',
    '  .sb-root[data-open="true"] #sb-launcher { display: none; }',
    '  #sb-input { font-size: 16px; }',
    '  #sb-launcher { right: 16px; bottom: 16px; }',
    '}'
  ].join('\n');

  // Static markup only: no data from the network or the page ever goes through innerHTML.
  var ICON_CHAT = '<svg class="sb-icon-chat" viewBox="0 0 24 24" fill="none" stroke="currentColor" ' +
    'stroke-width="2" stroke-linecap="round" stroke-linejoin="round" aria-hidden="true" focusable="false">' +
    '<path d="M21 12a8 8 0 0 1-11.6 7.1L4 20.5l1.4-4.9A8 8 0 1 1 21 12z"/></svg>';
  var ICON_CLOSE = '<svg class="sb-icon-close" viewBox="0 0 24 24" fill="none" stroke="currentColor" ' +
    'stroke-width="2.2" stroke-linecap="round" aria-hidden="true" focusable="false">' +
    '<path d="M6 6l12 12M18 6L6 18"/></svg>';
  var ICON_MIN = '<svg viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="2.2" ' +
    'stroke-linecap="round" aria-hidden="true" focusable="false"><path d="M6 9l6 6 6-6"/></svg>';
  var ICON_SEND = '<svg viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="2.2" ' +
    'stroke-linecap="round" stroke-linejoin="round" aria-hidden="true" focusable="false">' +
    '<path d="M4 12l16-8-6 16-2.5-6.5z"/><path d="M11.5 13.5L20 4"/></svg>';
  var ICON_ATTACH = '<svg viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="2" ' +
    'stroke-linecap="round" stroke-linejoin="round" aria-hidden="true" focusable="false">' +
    '<path d="M21 11.5l-8.6 8.6a5 5 0 0 1-7.1-7.1l8.6-8.6a3.3 3.3 0 0 1 4.7 4.7l-8.6 8.6a1.7 1.7 0 0 1-2.4-2.4l7.9-7.9"/></svg>';
  var ICON_FILE = '<svg viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="2" ' +
    'stroke-linecap="round" stroke-linejoin="round" aria-hidden="true" focusable="false">' +
    '<path d="M14 3H6a1 1 0 0 0-1 1v16a1 1 0 0 0 1 1h12a1 1 0 0 0 1-1V8z"/><path d="M14 3v5h5M12 11v6M9 14l3 3 3-3"/></svg>';
  var ICON_AVATAR = '<svg viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="2" ' +
    'stroke-linecap="round" stroke-linejoin="round" aria-hidden="true" focusable="false">' +
    '<path d="M4 14v-2a8 8 0 0 1 16 0v2"/><rect x="2.5" y="13" width="4" height="6" rx="1.5"/>' +
    '<rect x="17.5" y="13" width="4" height="6" rx="1.5"/><path d="M19.5 19a3 3 0 0 1-3 3H13"/></svg>';

  var TEMPLATE =
    '<div class="sb-root" data-conn="idle" data-open="false">' +
    '  <button id="sb-launcher" type="button" aria-expanded="false" aria-controls="sb-panel">' +
    ICON_CHAT + ICON_CLOSE +
    '    <span class="sb-badge" hidden></span>' +
    '  </button>' +
    '  <section id="sb-panel" role="dialog" aria-modal="false" aria-labelledby="sb-title" hidden>' +
    '    <header class="sb-header">' +
    '      <div class="sb-avatar">' + ICON_AVATAR + '</div>' +
    '      <div class="sb-heading">' +
    '        <h2 id="sb-title" data-i18n="title"></h2>' +
    '        <p class="sb-status"><span class="sb-dot" aria-hidden="true"></span><span id="sb-status-text"></span></p>' +
    '      </div>' +
    '      <button id="sb-lang" class="sb-hbtn" type="button"></button>' +
    '      <button id="sb-minimize" class="sb-hbtn" type="button">' + ICON_MIN + '</button>' +
    '    </header>' +
    '    <div id="sb-conn" class="sb-banner" role="status" hidden></div>' +
    '    <div id="sb-queue" class="sb-banner" role="status" aria-live="polite" hidden></div>' +
    '    <div id="sb-messages" role="log" aria-live="polite" aria-relevant="additions" tabindex="0">' +
    '      <p class="sb-intro" data-i18n="intro"></p>' +
    '    </div>' +
    '    <div id="sb-typing" aria-live="polite" hidden><span class="sb-dots" aria-hidden="true">' +
    '<span></span><span></span><span></span></span><span id="sb-typing-text"></span></div>' +
    '    <p id="sb-error" role="alert" hidden></p>' +
    '    <div id="sb-tray" aria-live="polite" hidden></div>' +
    '    <form class="sb-composer" novalidate>' +
    '      <button id="sb-attach" type="button">' + ICON_ATTACH + '</button>' +
    '      <input id="sb-file" type="file" multiple tabindex="-1" aria-hidden="true">' +
    '      <label for="sb-input" class="sb-sr" data-i18n="inputLabel"></label>' +
    '      <textarea id="sb-input" rows="1" autocomplete="off" aria-describedby="sb-hint"></textarea>' +
    '      <span id="sb-hint" class="sb-sr" data-i18n="composerHint"></span>' +
    '      <button id="sb-send" type="submit" disabled>' + ICON_SEND + '</button>' +
    '    </form>' +
    '    <div class="sb-footer" data-i18n="poweredBy"></div>' +
    '  </section>' +
    '</div>';

  // ---------------------------------------------------------------------------------------
  // UI
  // ---------------------------------------------------------------------------------------

  function buildUI() {
    var host = document.getElementById('switchboard-widget');
    if (!host) {
      host = document.createElement('div');
      host.id = 'switchboard-widget';
      document.body.appendChild(host);
    }
    // Keep the host out of the page's layout; the shadow content is position: fixed.
    host.style.setProperty('all', 'initial', 'important');
    host.style.setProperty('position', 'static', 'important');
    host.style.setProperty('display', 'block', 'important');

    var root = host.shadowRoot || host.attachShadow({ mode: 'open' });
    root.innerHTML = ''; // static reset of our own shadow tree only
    var style = document.createElement('style');
    style.textContent = CSS;
    root.appendChild(style);
    var wrap = document.createElement('div');
    wrap.innerHTML = TEMPLATE; // constant markup, no user data
    root.appendChild(wrap.firstChild);

    ui.host = host;
    ui.shadow = root;
    ui.root = root.querySelector('.sb-root');
    ui.launcher = root.getElementById('sb-launcher');
    ui.badge = root.querySelector('.sb-badge');
    ui.panel = root.getElementById('sb-panel');
    ui.statusText = root.getElementById('sb-status-text');
    ui.lang = root.getElementById('sb-lang');
    ui.minimize = root.getElementById('sb-minimize');
    ui.conn = root.getElementById('sb-conn');
    ui.queue = root.getElementById('sb-queue');
    ui.messages = root.getElementById('sb-messages');
    ui.typing = root.getElementById('sb-typing');
    ui.typingText = root.getElementById('sb-typing-text');
    ui.error = root.getElementById('sb-error');
    ui.form = root.querySelector('.sb-composer');
    ui.input = root.getElementById('sb-input');
    ui.send = root.getElementById('sb-send');
    ui.attach = root.getElementById('sb-attach');
    ui.file = root.getElementById('sb-file');
    ui.tray = root.getElementById('sb-tray');

    var color = attr('data-color');
    if (color && window.CSS && window.CSS.supports && window.CSS.supports('color', color)) {
      ui.root.style.setProperty('--sb-accent', color);
    }

    ui.launcher.addEventListener('click', function () { isOpen ? close() : open(); });
    ui.minimize.addEventListener('click', function () { close(); });
    ui.lang.addEventListener('click', function () { setLanguage(lang === 'zh' ? 'en' : 'zh'); });
    ui.panel.addEventListener('keydown', function (e) {
      if (e.key === 'Escape') {
        e.preventDefault();
        close();
      }
    });
    ui.form.addEventListener('submit', function (e) {
      e.preventDefault();
      submitInput();
    });
    ui.input.addEventListener('keydown', function (e) {
      if (e.key === 'Enter' && !e.shiftKey && !e.isComposing && e.keyCode !== 229) {
        e.preventDefault();
        submitInput();
      }
    });
    ui.input.addEventListener('input', function () {
      autosize();
      updateSendButton();
      if (ui.input.value.trim()) { sendTyping(); }
    });
    ui.attach.addEventListener('click', function () { ui.file.click(); });
    ui.file.addEventListener('change', function () {
      addFiles(ui.file.files);
      ui.file.value = ''; // the same file can be picked again
    });
    ui.input.addEventListener('paste', function (e) {
      var files = e.clipboardData && e.clipboardData.files;
      if (files && files.length) { // a pasted image; pasted text goes on as usual
        e.preventDefault();
        addFiles(files);
      }
    });
    var dragDepth = 0;
    function dragging(e) {
      var types = e.dataTransfer && e.dataTransfer.types;
      return !!types && Array.prototype.indexOf.call(types, 'Files') >= 0;
    }
    ui.panel.addEventListener('dragenter', function (e) {
      if (!dragging(e)) { return; }
      e.preventDefault();
      dragDepth++;
      ui.root.setAttribute('data-drag', 'true');
    });
    ui.panel.addEventListener('dragover', function (e) {
      if (dragging(e)) { e.preventDefault(); }
    });
    ui.panel.addEventListener('dragleave', function () {
      if (--dragDepth <= 0) {
        dragDepth = 0;
        ui.root.removeAttribute('data-drag');
      }
    });
    ui.panel.addEventListener('drop', function (e) {
      dragDepth = 0;
      ui.root.removeAttribute('data-drag');
      if (!dragging(e)) { return; }
      e.preventDefault();
      addFiles(e.dataTransfer.files);
    });

    applyLanguage();
    setConnState(conn.state);
  }

  function autosize() {
    ui.input.style.height = 'auto';
    ui.input.style.height = Math.min(ui.input.scrollHeight + 2, 120) + 'px';
  }

  function applyLanguage() {
    if (!ui.root) { return; }
    ui.root.setAttribute('lang', lang === 'zh' ? 'zh-CN' : 'en');
    var nodes = ui.shadow.querySelectorAll('[data-i18n]');
    for (var i = 0; i < nodes.length; i++) {
      nodes[i].textContent = t(nodes[i].getAttribute('data-i18n'));
    }
    ui.panel.setAttribute('aria-label', t('panelLabel'));
    ui.messages.setAttribute('aria-label', t('messagesLabel'));
    ui.input.setAttribute('placeholder', t('placeholder'));
    ui.send.setAttribute('aria-label', t('send'));
    ui.send.title = t('send');
    ui.attach.setAttribute('aria-label', t('attach'));
    ui.attach.title = t('attach');
    ui.panel.setAttribute('data-drop', t('dropHere'));
    uploads.forEach(renderUpload);
    var atts = ui.messages.querySelectorAll('.sb-att');
    for (var a = 0; a < atts.length; a++) { labelAttachment(atts[a]); }
    ui.minimize.setAttribute('aria-label', t('minimize'));
    ui.minimize.title = t('minimize');
    ui.lang.textContent = t('langSwitch');
    ui.lang.setAttribute('aria-label', t('langSwitchLabel'));
    ui.lang.title = t('langSwitchLabel');
    ui.typingText.textContent = t('typing');
    updateLauncherLabel();
    setConnState(conn.state);
    renderQueue();

    var msgs = ui.messages.querySelectorAll('.sb-msg');
    for (var j = 0; j < msgs.length; j++) {
      refreshMessageText(msgs[j]);
    }
    var seps = ui.messages.querySelectorAll('.sb-sep');
    for (var k = 0; k < seps.length; k++) {
      seps[k].textContent = t('newConversation');
    }
    var sugg = ui.messages.querySelectorAll('.sb-suggestions');
    for (var s = 0; s < sugg.length; s++) {
      sugg[s].setAttribute('aria-label', t('suggestions'));
    }
  }

  function updateLauncherLabel() {
    var label = isOpen ? t('launcherClose') : t('launcherOpen');
    if (unread > 0 && !isOpen) {
      label += ' (' + t('unread')(unread) + ')';
    }
    ui.launcher.setAttribute('aria-label', label);
    ui.launcher.title = isOpen ? t('launcherClose') : t('launcherOpen');
    ui.badge.textContent = unread > 99 ? '99+' : String(unread);
    ui.badge.hidden = !(unread > 0 && !isOpen);
  }

  function setConnState(state) {
    conn.state = state;
    if (!ui.root) { return; }
    ui.root.setAttribute('data-conn', state);
    var text;
    if (state === 'open') {
      text = t('subtitle');
    } else if (state === 'reconnecting') {
      text = t('reconnecting');
    } else if (state === 'unavailable') {
      text = t('reconnecting');
    } else if (state === 'connecting') {
      text = t('connecting');
    } else {
      text = t('subtitle');
    }
    ui.statusText.textContent = text;
    if (state === 'reconnecting' || state === 'unavailable') {
      ui.conn.textContent = state === 'unavailable' ? t('unavailable') : t('reconnecting');
      ui.conn.hidden = false;
    } else {
      ui.conn.hidden = true;
    }
  }

  function open() {
    if (!ui.root) { pendingCalls.push(open); return; }
    isOpen = true;
    ui.panel.hidden = false;
    ui.root.setAttribute('data-open', 'true');
    ui.launcher.setAttribute('aria-expanded', 'true');
    unread = 0;
    markSeen();
    updateLauncherLabel();
    scrollToBottom(true);
    start();
    setTimeout(function () { ui.input.focus(); }, 0);
  }

  function close() {
    if (!ui.root) { pendingCalls.push(close); return; }
    var hadFocus = ui.shadow.activeElement && ui.panel.contains(ui.shadow.activeElement);
    isOpen = false;
    ui.panel.hidden = true;
    ui.root.setAttribute('data-open', 'false');
    ui.launcher.setAttribute('aria-expanded', 'false');
    updateLauncherLabel();
    if (hadFocus) { ui.launcher.focus(); }
  }

  function setLanguage(value) {
    lang = normalizeLang(value);
    store.set(KEY_LANG, lang === 'zh' ? 'zh-CN' : 'en');
    applyLanguage();
  }

  function nearBottom() {
    var m = ui.messages;
    return m.scrollHeight - m.scrollTop - m.clientHeight < 80;
  }

  function scrollToBottom(force) {
    if (force || nearBottom()) {
      ui.messages.scrollTop = ui.messages.scrollHeight;
    }
  }

  function showError(code, serverMessage) {
    var errors = t('errors');
    ui.error.textContent = errors[code] || serverMessage || errors.generic;
    ui.error.hidden = false;
    clearTimeout(errorTimer);
    errorTimer = setTimeout(function () { ui.error.hidden = true; }, 8000);
  }

  function renderQueue() {
    if (!ui.queue) { return; }
    if (queuePosition == null) {
      ui.queue.hidden = true;
      ui.queue.textContent = '';
      return;
    }
    ui.queue.textContent = t('queue')(queuePosition);
    ui.queue.hidden = false;
  }

  function setQueue(position) {
    var n = Number(position);
    queuePosition = Number.isFinite(n) && n > 0 ? Math.floor(n) : null;
    renderQueue();
  }

  function showTyping() {
    ui.typing.hidden = false;
    scrollToBottom(false);
    clearTimeout(typingTimer);
    typingTimer = setTimeout(hideTyping, TYPING_SHOW_FOR);
  }

  function hideTyping() {
    clearTimeout(typingTimer);
    ui.typing.hidden = true;
  }

  function formatTime(iso) {
    if (!iso) { return ''; }
    var d = new Date(iso);
    if (isNaN(d.getTime())) { return ''; }
    try {
      return d.toLocaleTimeString(lang === 'zh' ? 'zh-CN' : 'en', { hour: '2-digit', minute: '2-digit' });
    } catch (e) {
      return d.toTimeString().slice(0, 5);
    }
  }

  // Builds one message element. Every piece of text goes through textContent.
  function buildMessage(m) {
    var row = el('div', 'sb-msg');
    row.setAttribute('data-sender', m.sender);
    if (m.seq) { row.setAttribute('data-seq', String(m.seq)); }
    if (m.clientMsgId) { row.setAttribute('data-client-msg-id', m.clientMsgId); }
    if (m.at) { row.setAttribute('data-at', m.at); }
    if (m.state) { row.setAttribute('data-state', m.state); }

    if (m.sender === 'bot' || m.sender === 'agent') {
      row.appendChild(el('div', 'sb-label'));
    }
    var bubble = el('div', 'sb-bubble', m.text);
    row.appendChild(bubble);
    var attachments = validAttachments(m.attachments);
    if (attachments.length) {
      row.appendChild(buildAttachments(attachments));
      if (!String(m.text || '').trim()) { row.setAttribute('data-caption', 'none'); }
    }

    // Screen readers hear who is speaking before the text.
    var who = el('span', 'sb-sr sb-who');
    bubble.insertBefore(who, bubble.firstChild);

    var meta = el('div', 'sb-meta');
    meta.appendChild(el('span', 'sb-time'));
    if (m.sender === 'customer') {
      meta.appendChild(el('span', 'sb-state'));
    }
    row.appendChild(meta);

    if (Array.isArray(m.suggestions) && m.suggestions.length) {
      var box = el('div', 'sb-suggestions');
      box.setAttribute('role', 'group');
      box.setAttribute('aria-label', t('suggestions'));
      m.suggestions.slice(0, 6).forEach(function (s) {
        if (typeof s !== 'string' || !s.trim()) { return; }
        var b = el('button', 'sb-suggestion', s);
        b.type = 'button';
        b.setAttribute('data-suggestion', s);
        b.addEventListener('click', function () {
          if (sendText(s)) { ui.input.focus(); } // the buttons just went disabled
        });
        box.appendChild(b);
      });
      row.appendChild(box);
    }
    if (m.survey && m.survey.scale) {
      row.appendChild(buildSurvey(Math.min(10, Math.max(2, m.survey.scale | 0))));
    }
    refreshMessageText(row);
    return row;
  }

  // The rating survey the bot sends after a close: stars, an optional comment, a send button.
  // Only the newest message's survey is live (refreshSuggestions); a rating replaces it with a
  // thank-you line.
  function buildSurvey(scale) {
    var box = el('div', 'sb-survey');
    box.setAttribute('role', 'group');
    box.setAttribute('aria-label', t('rate'));
    var stars = el('div', 'sb-stars');
    var picked = 0;
    var comment = el('textarea');
    comment.rows = 1;
    comment.maxLength = 1000;
    comment.placeholder = t('rateComment');
    var send = el('button', 'sb-rate-send', t('rateSend'));
    send.type = 'button';
    send.disabled = true;
    for (var n = 1; n <= scale; n++) {
      (function (score) {
        var b = el('button', 'sb-star', '★');
        b.type = 'button';
        b.setAttribute('data-score', String(score));
        b.setAttribute('aria-label', t('stars')(score));
        b.setAttribute('aria-pressed', 'false');
        b.addEventListener('click', function () {
          picked = score;
          var all = stars.querySelectorAll('.sb-star');
          for (var i = 0; i < all.length; i++) {
            all[i].setAttribute('aria-pressed', i < score ? 'true' : 'false');
          }
          send.disabled = false;
        });
        stars.appendChild(b);
      })(n);
    }
    send.addEventListener('click', function () {
      if (!picked) { return; }
      send.disabled = true;
      rate(picked, comment.value);
    });
    box.appendChild(stars);
    box.appendChild(comment);
    box.appendChild(send);
    return box;
  }

  function rate(score, comment) {
    var frame = { type: 'rate', score: score, comment: comment || '' };
    if (sendFrame(frame)) { return; } // answered by a `rated` or `error` frame
    if (!session.token) { return; }
    fetch(ORIGIN + '/v1/web/rating', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Authorization: 'Bearer ' + session.token },
      body: JSON.stringify({ score: score, comment: comment || '' }),
      credentials: 'omit'
    }).then(function (res) {
      return readJSON(res).then(function (json) {
        if (res.ok) {
          showRated((json && json.score) || score);
        } else {
          showError((json && json.code) || 'generic', json && json.message);
          reopenSurveys();
        }
      });
    }).catch(function () { reopenSurveys(); });
  }

  function showRated(score) {
    var boxes = ui.messages.querySelectorAll('.sb-survey');
    var box = boxes[boxes.length - 1];
    if (!box) { return; }
    var done = el('div', 'sb-rated', t('rated')(score));
    done.setAttribute('role', 'status');
    box.parentNode.replaceChild(done, box);
  }

  function reopenSurveys() {
    var sends = ui.messages.querySelectorAll('.sb-rate-send');
    for (var i = 0; i < sends.length; i++) { sends[i].disabled = false; }
  }

  // (Re)writes the language-dependent parts of a message element.
  function refreshMessageText(row) {
    var sender = row.getAttribute('data-sender');
    var label = row.querySelector('.sb-label');
    if (label) { label.textContent = t('sender')[sender]; }
    var who = row.querySelector('.sb-who');
    if (who) { who.textContent = t('sender')[sender] + ': '; }
    var time = row.querySelector('.sb-time');
    if (time) { time.textContent = formatTime(row.getAttribute('data-at')); }
    var stateBox = row.querySelector('.sb-state');
    if (stateBox) {
      var state = row.getAttribute('data-state');
      stateBox.textContent = '';
      if (state === 'pending') {
        stateBox.textContent = t('sending');
      } else if (state === 'failed' && FINAL_ERRORS[row.getAttribute('data-error')]) {
        // sending again cannot help
        stateBox.appendChild(el('span', 'sb-notice', t('errors')[row.getAttribute('data-error')]));
      } else if (state === 'failed') {
        var retry = el('button', 'sb-retry', t('failed'));
        retry.type = 'button';
        retry.addEventListener('click', function () {
          retryMessage(row.getAttribute('data-client-msg-id'));
        });
        stateBox.appendChild(retry);
      } else if (state === 'sent') {
        stateBox.textContent = t('sent');
      }
    }
  }

  // Inserts a message after the last shown message with a lower seq, before unsent ones.
  function insertBySeq(node, seq) {
    var kids = ui.messages.children;
    var i = kids.length - 1;
    for (; i >= 0; i--) {
      var k = kids[i];
      if (!k.classList.contains('sb-msg')) { break; }
      var s = toSeq(k.getAttribute('data-seq'));
      if (s === null) { continue; } // unsent: stays last
      if (s < seq) { break; }
    }
    ui.messages.insertBefore(node, kids[i + 1] || null);
  }

  // Only the newest message's suggestions can be picked: once the customer writes (or picks
  // one) or anyone answers, they stay visible but disabled. Unsent messages do not count.
  function refreshSuggestions() {
    var rows = ui.messages.querySelectorAll('.sb-msg:not([data-sender="system"]):not([data-state="failed"])');
    var newest = rows[rows.length - 1];
    var buttons = ui.messages.querySelectorAll('.sb-suggestion');
    for (var i = 0; i < buttons.length; i++) {
      buttons[i].disabled = buttons[i].closest('.sb-msg') !== newest;
    }
    // A survey is live until the customer writes again (a new conversation begins).
    var surveys = ui.messages.querySelectorAll('.sb-survey');
    for (var j = 0; j < surveys.length; j++) {
      if (surveys[j].closest('.sb-msg') !== newest) {
        var parts = surveys[j].querySelectorAll('button, textarea');
        for (var k = 0; k < parts.length; k++) { parts[k].disabled = true; }
      }
    }
  }

  function addSeparator() {
    var hasMessages = ui.messages.querySelector('.sb-msg');
    if (hasMessages) {
      ui.messages.appendChild(el('div', 'sb-sep', t('newConversation')));
    }
  }

  function clearTranscript() {
    var kids = Array.prototype.slice.call(ui.messages.children);
    kids.forEach(function (k) {
      if (!k.classList.contains('sb-intro')) { ui.messages.removeChild(k); }
    });
  }

  // ---------------------------------------------------------------------------------------
  // Message state
  // ---------------------------------------------------------------------------------------

  function markShown(seq) {
    epoch.seen[seq] = true;
    if (seq > epoch.max) { epoch.max = seq; }
    while (epoch.seen[epoch.contig + 1]) { epoch.contig++; }
  }

  // Seqs are numbered per conversation: a new conversation id starts a new numbering.
  // Returns false for frames of a conversation this page has already left behind.
  function noteConversation(convId) {
    if (!convId) { return true; }
    if (!epoch.conv) {
      epoch.conv = convId;
    } else if (convId !== epoch.conv) {
      if (pastConversations[convId]) { return false; }
      startEpoch(convId);
    }
    session.conversationId = convId;
    return true;
  }

  function startEpoch(convId) {
    if (epoch.conv) { pastConversations[epoch.conv] = true; }
    epoch = newEpochState(convId);
    addSeparator();
  }

  function saveOutbox() {
    store.setJSON(KEY_OUTBOX, outbox.map(function (id) {
      var item = byClientId[id];
      return { id: id, text: item.text, at: item.at, attachments: item.attachments || [] };
    }));
  }

  function removeFromOutbox(id) {
    var i = outbox.indexOf(id);
    if (i >= 0) {
      outbox.splice(i, 1);
      saveOutbox();
    }
  }

  // error: the code a failed message was refused with (shown as data-error).
  function setItemState(item, state, error) {
    item.state = state;
    item.el.setAttribute('data-state', state);
    if (error) {
      item.el.setAttribute('data-error', error);
    } else {
      item.el.removeAttribute('data-error');
    }
    refreshMessageText(item.el);
    refreshSuggestions();
  }

  function confirmItem(item, seq, at) {
    removeFromOutbox(item.id);
    item.inflight = false;
    if (!item.seq) {
      item.seq = seq;
      item.el.setAttribute('data-seq', String(seq));
      if (at) {
        item.at = at;
        item.el.setAttribute('data-at', at);
      }
      item.el.parentNode.removeChild(item.el);
      insertBySeq(item.el, seq);
    }
    setItemState(item, 'sent');
    markShown(seq);
    scheduleAck();
  }

  function handleReceipt(f) {
    var seq = toSeq(f.seq);
    var item = f.client_msg_id && byClientId[f.client_msg_id];
    if (!item || seq === null) { return; }
    if (!noteConversation(f.conversation_id)) { return; }
    if (!item.seq && !f.conversation_id && epoch.seen[seq]) {
      // This seq is taken in the conversation we know: the message opened a new conversation
      // (the previous one was closed). Its id arrives with the message frame.
      startEpoch(null);
    }
    confirmItem(item, seq, f.at);
  }

  function handleMessage(f) {
    var seq = toSeq(f.seq);
    if (seq === null || typeof f.text !== 'string') { return; }
    if (!noteConversation(f.conversation_id)) { return; }
    var sender = SENDERS[f.sender] ? f.sender : 'system';

    var cid = typeof f.client_msg_id === 'string' ? f.client_msg_id : null;
    if (cid && byClientId[cid]) {
      var own = byClientId[cid];
      if (sender === 'customer' && f.text !== own.text) {
        // Stored as the server keeps it (a tenant's mask list replaces words with '*').
        own.text = f.text;
        var stored = own.el && own.el.querySelector('.sb-bubble');
        if (stored) { stored.textContent = f.text; }
      }
      if (!own.seq) {
        confirmItem(own, seq, f.at);
      } else {
        markShown(seq);
      }
      return;
    }
    if (epoch.seen[seq]) { return; } // never show a seq twice

    var row = buildMessage({
      seq: seq,
      sender: sender,
      text: f.text,
      at: f.at,
      clientMsgId: cid,
      state: sender === 'customer' ? 'sent' : null,
      suggestions: f.suggestions,
      survey: f.survey,
      attachments: f.attachments
    });
    var follow = nearBottom();
    insertBySeq(row, seq);
    refreshSuggestions();
    if (cid) {
      // A message this visitor sent from another tab or before a reload.
      byClientId[cid] = { id: cid, text: f.text, at: f.at, el: row, seq: seq, state: 'sent' };
    }
    markShown(seq);
    if (follow) { scrollToBottom(true); }

    if (sender === 'agent') {
      setQueue(null);
      hideTyping();
    } else if (sender === 'system' && /join|connected|assigned|加入|接入|接待|为您服务/i.test(f.text)) {
      setQueue(null);
    }
    if (sender !== 'customer') {
      if (isOpen) {
        markSeen();
      } else if (isUnread(seq)) {
        unread++;
        updateLauncherLabel();
      }
    }
    scheduleAck();
  }

  function isUnread(seq) {
    var seen = store.getJSON(KEY_SEEN, null);
    if (!seen || seen.conv !== epoch.conv) { return true; }
    return seq > seen.seq;
  }

  function markSeen() {
    if (epoch.conv && epoch.max) {
      store.setJSON(KEY_SEEN, { conv: epoch.conv, seq: epoch.max });
    }
  }

  // clientMsgId: the message the error is about, when known. Nothing of it was stored.
  function handleServerError(code, message, clientMsgId) {
    code = String(code || '');
    var item = clientMsgId && byClientId[clientMsgId];
    if (item && item.seq) { item = null; }
    if (code === 'rate_limited') {
      // Keep it pending and send again a little later.
      (item ? [item.id] : outbox).forEach(function (id) { byClientId[id].inflight = false; });
      setTimeout(flushOutbox, 5000);
    } else if (item) {
      failItem(item, code);
    }
    if (!(item && FINAL_ERRORS[code])) { // such a message carries its own notice
      showError(code, message);
    }
  }

  function failItem(item, code) {
    item.inflight = false;
    removeFromOutbox(item.id);
    setItemState(item, 'failed', code);
  }

  // A receipt answers its send and, the answers coming in order, any sent before it.
  function answered(id) {
    var i = conn.awaiting.indexOf(id);
    if (i >= 0) { conn.awaiting.splice(0, i + 1); }
  }

  function handleFrame(f) {
    if (!f || typeof f !== 'object') { return; }
    switch (f.type) {
      case 'message':
        handleMessage(f);
        break;
      case 'receipt':
        answered(f.client_msg_id);
        handleReceipt(f);
        break;
      case 'queue':
        setQueue(f.position);
        break;
      case 'typing':
        showTyping();
        break;
      case 'rated':
        showRated(f.score);
        break;
      case 'error':
        if (f.code === 'nothing_to_rate' || f.code === 'bad_rating') {
          showError(f.code, f.message); // a rating's answer, not a send's
          reopenSurveys();
          break;
        }
        handleServerError(f.code, f.message, f.client_msg_id || conn.awaiting.shift());
        break;
      default:
        break; // unknown frames are ignored so the server can add new ones
    }
  }

  // ---------------------------------------------------------------------------------------
  // Attachments: a picked, dropped or pasted file is uploaded at once (the raw file as the
  // body, with progress) and waits in the tray above the composer until the next send, which
  // carries the ids of the uploaded ones; the typed text is their caption.
  // ---------------------------------------------------------------------------------------

  var MAX_ATTACHMENTS = 10;
  // { file, state: 'uploading'|'ready'|'failed', progress (0..1), view (the server's answer),
  //   error (a code), xhr, el, preview (an object URL for images) }
  var uploads = [];

  function addFiles(list) {
    var files = Array.prototype.slice.call(list || []);
    for (var i = 0; i < files.length; i++) {
      if (uploads.length >= MAX_ATTACHMENTS) {
        showError('too_many_attachments');
        break;
      }
      var u = { file: files[i], state: 'uploading', progress: 0, view: null, error: null, xhr: null };
      u.el = buildUpload(u);
      ui.tray.appendChild(u.el);
      uploads.push(u);
      upload(u);
    }
    ui.tray.hidden = !uploads.length;
    updateSendButton();
  }

  function upload(u) {
    u.state = 'uploading';
    u.progress = 0;
    u.error = null;
    renderUpload(u);
    start();
    ensureSession().then(function () {
      if (uploads.indexOf(u) < 0) { return; } // removed meanwhile
      var xhr = new XMLHttpRequest();
      u.xhr = xhr;
      xhr.open('POST', ORIGIN + '/v1/web/attachments?name=' + encodeURIComponent(u.file.name || 'file'));
      xhr.setRequestHeader('Authorization', 'Bearer ' + session.token);
      xhr.upload.onprogress = function (e) {
        if (e.lengthComputable && e.total) {
          u.progress = e.loaded / e.total;
          renderUpload(u);
        }
      };
      xhr.onload = function () {
        var body = null;
        try { body = JSON.parse(xhr.responseText); } catch (e) { body = null; }
        if (xhr.status === 201 && body && typeof body.id === 'string') {
          uploadDone(u, 'ready', null, body);
        } else {
          if (xhr.status === 401) { session.checked = false; } // the retry asks for a session again
          uploadDone(u, 'failed', (body && body.code) || (xhr.status === 413 ? 'too_large' : 'generic'));
        }
      };
      xhr.onerror = function () { uploadDone(u, 'failed', 'network'); };
      xhr.send(u.file);
    }, function () { uploadDone(u, 'failed', 'network'); });
  }

  function uploadDone(u, state, error, view) {
    u.xhr = null;
    u.state = state;
    u.error = error;
    u.view = view || null;
    renderUpload(u);
    updateSendButton();
  }

  function removeUpload(u) {
    var i = uploads.indexOf(u);
    if (i >= 0) { uploads.splice(i, 1); }
    if (u.xhr) { u.xhr.abort(); }
    if (u.preview && window.URL && URL.revokeObjectURL) { URL.revokeObjectURL(u.preview); }
    if (u.el && u.el.parentNode) { u.el.parentNode.removeChild(u.el); }
    ui.tray.hidden = !uploads.length;
    updateSendButton();
  }

  function buildUpload(u) {
    var row = el('div', 'sb-upload');
    if (/^image\//.test(u.file.type) && window.URL && URL.createObjectURL) {
      u.preview = URL.createObjectURL(u.file);
      var img = el('img', 'sb-upload-preview');
      img.src = u.preview;
      img.alt = '';
      row.appendChild(img);
    }
    var body = el('div', 'sb-upload-body');
    body.appendChild(el('span', 'sb-upload-name', u.file.name || 'file'));
    body.appendChild(el('span', 'sb-upload-info'));
    var bar = el('div', 'sb-progress');
    bar.appendChild(el('span'));
    body.appendChild(bar);
    row.appendChild(body);
    var retry = el('button', 'sb-upload-retry');
    retry.type = 'button';
    retry.addEventListener('click', function () { upload(u); });
    row.appendChild(retry);
    var remove = el('button', 'sb-upload-remove', '×');
    remove.type = 'button';
    remove.addEventListener('click', function () {
      removeUpload(u);
      ui.input.focus();
    });
    row.appendChild(remove);
    return row;
  }

  function renderUpload(u) {
    var row = u.el;
    if (!row) { return; }
    row.setAttribute('data-state', u.state);
    if (u.error) { row.setAttribute('data-error', u.error); } else { row.removeAttribute('data-error'); }
    var info = row.querySelector('.sb-upload-info');
    var pct = Math.round(u.progress * 100);
    if (u.state === 'uploading') {
      info.textContent = t('uploading')(pct);
    } else if (u.state === 'failed') {
      var errors = t('uploadErrors');
      info.textContent = errors[u.error] || errors.generic;
    } else {
      info.textContent = formatSize(u.view && u.view.size != null ? u.view.size : u.file.size);
    }
    row.querySelector('.sb-progress span').style.width = pct + '%';
    var retry = row.querySelector('.sb-upload-retry');
    retry.textContent = t('retryUpload');
    retry.hidden = u.state !== 'failed';
    var remove = row.querySelector('.sb-upload-remove');
    remove.setAttribute('aria-label', t('removeFile')(u.file.name || 'file'));
    remove.title = remove.getAttribute('aria-label');
  }

  function updateSendButton() {
    ui.send.disabled = !ui.input.value.trim() &&
      !uploads.some(function (u) { return u.state === 'ready'; });
  }

  function formatSize(bytes) {
    var n = Number(bytes);
    if (!isFinite(n) || n < 0) { return ''; }
    if (n < 1024) { return n + ' B'; }
    if (n < 1024 * 1024) { return Math.round(n / 1024) + ' KB'; }
    return (n / (1024 * 1024)).toFixed(1) + ' MB';
  }

  // Links arrive relative to the server (signed, valid for an hour); the widget runs on
  // another site, so they are made absolute. Anything else than http(s) is refused.
  function fileUrl(url) {
    if (typeof url !== 'string') { return null; }
    if (/^\/(?![\/\\])/.test(url)) { return ORIGIN + url; }
    return /^https?:\/\//i.test(url) ? url : null;
  }

  // Views the server sent (or answered an upload with), as the widget keeps them.
  function validAttachments(list) {
    return (Array.isArray(list) ? list : []).filter(function (a) {
      return a && typeof a === 'object' && typeof a.id === 'string' && fileUrl(a.url);
    }).slice(0, MAX_ATTACHMENTS);
  }

  // Images as thumbnails that open the full image in a new tab; other files as a link with
  // their name and size (the server sends those as downloads).
  function buildAttachments(list) {
    var box = el('div', 'sb-atts');
    box.setAttribute('data-issued', String(Date.now()));
    list.forEach(function (a) {
      var name = typeof a.name === 'string' ? a.name : '';
      var link = el('a', 'sb-att');
      link.href = fileUrl(a.url);
      link.target = '_blank';
      link.rel = 'noopener noreferrer';
      link.setAttribute('data-attachment-id', a.id);
      link.setAttribute('data-name', name);
      var thumb = a.kind === 'image' ? fileUrl(a.thumbnail_url) || fileUrl(a.url) : null;
      if (thumb) {
        link.className = 'sb-att sb-att-image';
        var img = el('img');
        var w = Number(a.width), h = Number(a.height);
        if (w > 0 && h > 0) { // room kept before it loads, so the list does not jump
          var scale = Math.min(1, 200 / w, 200 / h);
          img.width = Math.max(1, Math.round(w * scale));
          img.height = Math.max(1, Math.round(h * scale));
        }
        img.alt = name;
        img.onerror = function () { renewLinks(true); };
        img.src = thumb;
        link.appendChild(img);
      } else {
        link.className = 'sb-att sb-att-file';
        link.setAttribute('download', name);
        var icon = el('span');
        icon.innerHTML = ICON_FILE; // constant markup
        link.appendChild(icon.firstChild);
        var text = el('span', 'sb-att-text');
        text.appendChild(el('span', 'sb-att-name', name));
        text.appendChild(el('span', 'sb-att-size', formatSize(a.size)));
        link.appendChild(text);
      }
      labelAttachment(link);
      box.appendChild(link);
    });
    return box;
  }

  // Links are signed for an hour. Shown attachments get fresh ones from the server once theirs
  // are RENEW_AFTER old (checked every few minutes), and at once when an image fails to load (at
  // most every RENEW_FORCED_GAP, so a file that is gone for good does not loop). A message the
  // server no longer has attachments for is left as it is.
  var RENEW_AFTER = 45 * 60 * 1000;
  var RENEW_FORCED_GAP = 30 * 1000;
  var renewal = { running: false, forcedAt: 0 };

  function renewLinks(force) {
    if (renewal.running || !session.token || !ui.messages) { return; }
    var now = Date.now();
    if (force) {
      if (now - renewal.forcedAt < RENEW_FORCED_GAP) { return; }
      renewal.forcedAt = now;
    }
    var boxes = {};
    var seqs = [];
    var rows = ui.messages.querySelectorAll('.sb-msg[data-seq]');
    for (var i = rows.length - 1; i >= 0 && seqs.length < 50; i--) {
      var box = rows[i].querySelector('.sb-atts');
      if (!box || box.getAttribute('data-gone') === 'true') { continue; }
      if (!force && now - (Number(box.getAttribute('data-issued')) || 0) < RENEW_AFTER) { continue; }
      var seq = rows[i].getAttribute('data-seq');
      boxes[seq] = box;
      seqs.push(seq);
    }
    if (!seqs.length) { return; }
    renewal.running = true;
    fetch(ORIGIN + '/v1/web/attachments?seqs=' + seqs.join(','), {
      headers: { Authorization: 'Bearer ' + session.token },
      cache: 'no-store',
      credentials: 'omit'
    }).then(function (res) {
      return readJSON(res).then(function (json) {
        if (!res.ok) { throw httpError(res.status, json); }
        return json;
      });
    }).then(function (body) {
      (body && Array.isArray(body.messages) ? body.messages : []).forEach(function (m) {
        var box = boxes[String(m.seq)];
        if (!box) { return; }
        delete boxes[String(m.seq)];
        refreshAttachments(box, validAttachments(m.attachments));
      });
      Object.keys(boxes).forEach(function (seq) { boxes[seq].setAttribute('data-gone', 'true'); });
    }).catch(function () {
      // The next round tries again.
    }).then(function () {
      renewal.running = false;
    });
  }

  // Puts fresh links on the attachments of one shown message.
  function refreshAttachments(box, list) {
    var links = box.querySelectorAll('.sb-att');
    list.forEach(function (a) {
      for (var i = 0; i < links.length; i++) {
        if (links[i].getAttribute('data-attachment-id') !== a.id) { continue; }
        links[i].href = fileUrl(a.url);
        var img = links[i].querySelector('img');
        var thumb = fileUrl(a.thumbnail_url) || fileUrl(a.url);
        if (img && thumb) { img.src = thumb; }
      }
    });
    box.setAttribute('data-issued', String(Date.now()));
  }

  function labelAttachment(link) {
    var name = link.getAttribute('data-name') || '';
    var label = link.classList.contains('sb-att-image') ? t('openImage')(name) : t('download')(name);
    link.setAttribute('aria-label', label);
    link.title = label;
  }

  // ---------------------------------------------------------------------------------------
  // Sending
  // ---------------------------------------------------------------------------------------

  function submitInput() {
    var text = ui.input.value;
    if (uploads.some(function (u) { return u.state === 'uploading'; })) {
      showError('uploading');
      return;
    }
    var ready = uploads.filter(function (u) { return u.state === 'ready'; });
    if (sendText(text, ready.map(function (u) { return u.view; }))) {
      ready.forEach(removeUpload); // a failed upload stays in the tray to be retried or removed
      ui.input.value = '';
      autosize();
      updateSendButton();
    }
  }

  // attachments: the server's views of this visitor's uploads; text is then their caption.
  function sendText(text, attachments) {
    attachments = attachments || [];
    if (typeof text !== 'string' || (!text.trim() && !attachments.length)) {
      showError('empty_text');
      return false;
    }
    if (byteLength(text) > MAX_TEXT_BYTES) {
      showError('too_large');
      return false;
    }
    var id = uuid();
    var at = new Date().toISOString();
    var row = buildMessage({
      sender: 'customer', text: text, at: at, clientMsgId: id, state: 'pending', attachments: attachments
    });
    ui.messages.appendChild(row);
    byClientId[id] = {
      id: id, text: text, at: at, el: row, seq: null, state: 'pending', inflight: false, attachments: attachments
    };
    outbox.push(id);
    saveOutbox();
    refreshSuggestions();
    scrollToBottom(true);
    ui.error.hidden = true;
    start();
    flushOutbox();
    return true;
  }

  function retryMessage(id) {
    var item = byClientId[id];
    if (!item || item.seq) { return; }
    setItemState(item, 'pending');
    if (outbox.indexOf(id) < 0) {
      outbox.push(id);
      saveOutbox();
    }
    start();
    flushOutbox();
  }

  function flushOutbox() {
    outbox.forEach(function (id) {
      var item = byClientId[id];
      if (!item || item.inflight) { return; }
      if (conn.mode === 'ws' && conn.ws && conn.ws.readyState === 1) {
        item.inflight = true;
        conn.awaiting.push(id);
        sendFrame(withAttachments({ type: 'send', client_msg_id: id, text: item.text }, item));
      } else if (conn.mode === 'poll' && session.token && session.checked) {
        item.inflight = true;
        postMessage(item);
      }
    });
  }

  // Adds the ids of an outbox item's attachments to a send frame or long-poll body.
  function withAttachments(body, item) {
    if (item.attachments && item.attachments.length) {
      body.attachments = item.attachments.map(function (a) { return a.id; });
    }
    return body;
  }

  function sendFrame(frame) {
    if (conn.ws && conn.ws.readyState === 1) {
      try {
        conn.ws.send(JSON.stringify(frame));
        return true;
      } catch (e) { /* the close handler reconnects */ }
    }
    return false;
  }

  function sendTyping() {
    var now = Date.now();
    if (now - conn.lastTypingSent < TYPING_SEND_INTERVAL) { return; }
    if (sendFrame({ type: 'typing' })) { conn.lastTypingSent = now; }
  }

  var ackTimer = null;
  function scheduleAck() {
    if (ackTimer) { return; }
    ackTimer = setTimeout(function () {
      ackTimer = null;
      if (epoch.contig > epoch.acked && sendFrame({ type: 'ack', seq: epoch.contig })) {
        epoch.acked = epoch.contig;
      }
    }, 150);
  }

  // ---------------------------------------------------------------------------------------
  // Transport: session, WebSocket, long-poll fallback
  // ---------------------------------------------------------------------------------------

  function httpError(status, body) {
    var err = new Error((body && body.message) || ('HTTP ' + status));
    err.status = status;
    err.code = body && body.code;
    return err;
  }

  function readJSON(res) {
    return res.text().then(function (txt) {
      if (!txt) { return null; }
      try { return JSON.parse(txt); } catch (e) { return null; }
    });
  }

  function requestSession(token) {
    var body = { tenant: TENANT };
    if (IDENTIFIED) {
      body.user_id = USER_ID;
      if (USER_HASH) { body.user_hash = USER_HASH; }
    } else if (token) {
      body.token = token;
    }
    return fetch(ORIGIN + '/v1/web/session', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
      credentials: 'omit'
    }).then(function (res) {
      return readJSON(res).then(function (json) {
        if (!res.ok) { throw httpError(res.status, json); }
        return json;
      });
    });
  }

  // Creates or resumes the visitor session. A saved token the server rejects is dropped.
  // One request at a time: the socket and an upload may both ask before the answer.
  var sessionRequest = null;
  function ensureSession() {
    if (session.token && session.checked) { return Promise.resolve(); }
    if (!sessionRequest) {
      sessionRequest = askForSession();
      var done = function () { sessionRequest = null; };
      sessionRequest.then(done, done);
    }
    return sessionRequest;
  }

  function askForSession() {
    var saved = IDENTIFIED ? null : session.token;
    return requestSession(saved).catch(function (err) {
      if (saved && err.status === 401) {
        forgetIdentity();
        return requestSession(null);
      }
      throw err;
    }).then(function (s) {
      if (!s || !s.token) { throw httpError(500, null); }
      session.token = s.token;
      session.visitorId = s.visitor_id || null;
      session.checked = true;
      store.set(KEY_TOKEN, s.token);
      if (s.conversation_id) { noteConversation(s.conversation_id); }
    });
  }

  // The saved token belongs to a visitor the server no longer knows: start over, but keep
  // unsent messages so they go out under the new identity.
  function forgetIdentity() {
    store.remove(KEY_TOKEN);
    store.remove(KEY_SEEN);
    session.token = null;
    session.checked = false;
    session.conversationId = null;
    epoch = newEpochState(null);
    pastConversations = {};
    var keep = {};
    outbox.forEach(function (id) { keep[id] = byClientId[id]; });
    byClientId = keep;
    clearTranscript();
    outbox.forEach(function (id) {
      byClientId[id].inflight = false;
      ui.messages.appendChild(byClientId[id].el);
    });
    setQueue(null);
  }

  function start() {
    if (conn.started) { return; }
    conn.started = true;
    connect();
  }

  function connect() {
    clearTimeout(conn.timer);
    conn.timer = null;
    if (conn.ws || conn.connecting) { return; }
    conn.connecting = true;
    setConnState(conn.everOpen ? 'reconnecting' : 'connecting');
    ensureSession().then(function () {
      // A WebSocket opens with a one-time ticket: the token never rides in a URL.
      return conn.mode === 'poll' ? null : requestTicket();
    }).then(function (ticket) {
      conn.connecting = false;
      if (conn.mode === 'poll') {
        conn.attempt = 0;
        pollLoop();
      } else {
        openSocket(ticket);
      }
    }, function (err) {
      conn.connecting = false;
      // Ask the server again next time: the token may have expired or been revoked.
      session.checked = false;
      setConnState('unavailable');
      // The site's identification is refused (a wrong signature, or the tenant requires one):
      // asking again cannot help until the page is loaded with a good one.
      if (err && /^(identity_|bad_identity$)/.test(err.code || '')) {
        showError(err.code, err.message);
        return;
      }
      if (err && err.status && err.status < 500 && err.status !== 429 && err.status !== 401) {
        showError(err.code, err.message);
      }
      scheduleReconnect();
    });
  }

  function scheduleReconnect() {
    if (conn.timer) { return; }
    var base = Math.min(BACKOFF_CAP, BACKOFF_START * Math.pow(2, conn.attempt));
    var delay = Math.min(BACKOFF_CAP, Math.round(base / 2 + Math.random() * base)); // jitter
    conn.attempt++;
    if (conn.state !== 'unavailable') {
      setConnState(conn.everOpen || conn.attempt > 1 ? 'reconnecting' : 'connecting');
    }
    conn.timer = setTimeout(function () {
      conn.timer = null;
      connect();
    }, delay);
  }

  function reconnectNow() {
    if (!conn.started || conn.ws || conn.polling || conn.connecting) { return; }
    conn.attempt = 0;
    connect();
  }

  function requestTicket() {
    return fetch(ORIGIN + '/v1/web/ticket', {
      method: 'POST',
      headers: { Authorization: 'Bearer ' + session.token },
      credentials: 'omit'
    }).then(function (res) {
      return readJSON(res).then(function (json) {
        if (!res.ok || !json || typeof json.ticket !== 'string') { throw httpError(res.status, json); }
        return json.ticket;
      });
    });
  }

  function openSocket(ticket) {
    var ws;
    try {
      ws = new WebSocket(WS_ORIGIN + '/v1/web/ws?ticket=' + encodeURIComponent(ticket));
    } catch (e) {
      onSocketFailed(false);
      return;
    }
    var opened = false;
    conn.ws = ws;

    ws.onopen = function () {
      if (conn.ws !== ws) { return; }
      opened = true;
      conn.everOpen = true;
      conn.failedOpens = 0;
      conn.attempt = 0;
      epoch.acked = 0;
      setConnState('open');
      sendFrame({ type: 'resume', last_seq: epoch.contig });
      conn.awaiting = [];
      outbox.forEach(function (id) { byClientId[id].inflight = false; });
      flushOutbox();
    };
    ws.onmessage = function (ev) {
      if (conn.ws !== ws || typeof ev.data !== 'string') { return; }
      var frame;
      try { frame = JSON.parse(ev.data); } catch (e) { return; }
      handleFrame(frame);
    };
    ws.onerror = function () { /* onclose follows and handles it */ };
    ws.onclose = function () {
      if (conn.ws !== ws) { return; }
      conn.ws = null;
      onSocketFailed(opened);
    };
  }

  function onSocketFailed(hadOpened) {
    conn.awaiting = [];
    outbox.forEach(function (id) { byClientId[id].inflight = false; });
    // Ask the server again before the next attempt: it tells a revoked token from a network error.
    session.checked = false;
    if (!hadOpened) {
      conn.failedOpens++;
      // The HTTP session call just worked but the socket would not open: WebSockets are blocked.
      if (conn.failedOpens >= WS_FAILURES_BEFORE_POLL) {
        conn.mode = 'poll';
      }
    }
    scheduleReconnect();
  }

  function pollLoop() {
    if (conn.mode !== 'poll' || conn.polling) { return; }
    conn.polling = true;
    setConnState('open');
    flushOutbox();

    var after = conn.pollSkipGap ? epoch.max : epoch.contig;
    var controller = window.AbortController ? new AbortController() : null;
    var timeout = setTimeout(function () { if (controller) { controller.abort(); } }, POLL_TIMEOUT);

    fetch(ORIGIN + '/v1/web/poll?after=' + after, {
      headers: { Authorization: 'Bearer ' + session.token },
      cache: 'no-store',
      credentials: 'omit',
      signal: controller ? controller.signal : undefined
    }).then(function (res) {
      return readJSON(res).then(function (json) {
        if (!res.ok) { throw httpError(res.status, json); }
        return json;
      });
    }).then(function (body) {
      clearTimeout(timeout);
      conn.polling = false;
      conn.attempt = 0;
      var frames = (body && Array.isArray(body.frames)) ? body.frames : [];
      var before = epoch.contig + ':' + epoch.max;
      frames.forEach(handleFrame);
      // Frames came back but nothing new was shown: the gap is real, stop asking for it.
      conn.pollSkipGap = frames.length > 0 && before === epoch.contig + ':' + epoch.max;
      markSeenIfOpen();
      pollLoop();
    }).catch(function (err) {
      clearTimeout(timeout);
      conn.polling = false;
      if (err && err.status === 401) { session.checked = false; }
      setConnState('reconnecting');
      scheduleReconnect();
    });
  }

  function markSeenIfOpen() {
    if (isOpen) { markSeen(); }
  }

  function postMessage(item) {
    fetch(ORIGIN + '/v1/web/messages', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Authorization: 'Bearer ' + session.token },
      body: JSON.stringify(withAttachments({ client_msg_id: item.id, text: item.text }, item)),
      credentials: 'omit'
    }).then(function (res) {
      return readJSON(res).then(function (json) {
        if (res.ok) {
          var receipt = json || {};
          handleReceipt({
            client_msg_id: receipt.client_msg_id || item.id,
            seq: receipt.seq,
            conversation_id: receipt.conversation_id
          });
        } else if (res.status === 401) {
          item.inflight = false;
          session.checked = false;
        } else {
          var body = json || {};
          handleServerError(body.code, body.message, item.id);
        }
      });
    }).catch(function () {
      item.inflight = false; // retried after the next poll
    });
  }

  // ---------------------------------------------------------------------------------------
  // Start-up
  // ---------------------------------------------------------------------------------------

  function restoreOutbox() {
    var saved = store.getJSON(KEY_OUTBOX, []);
    if (!Array.isArray(saved)) { return; }
    saved.forEach(function (s) {
      if (!s || typeof s.id !== 'string' || typeof s.text !== 'string' || byClientId[s.id]) { return; }
      var attachments = validAttachments(s.attachments);
      var row = buildMessage({
        sender: 'customer', text: s.text, at: s.at, clientMsgId: s.id, state: 'pending', attachments: attachments
      });
      ui.messages.appendChild(row);
      byClientId[s.id] = {
        id: s.id, text: s.text, at: s.at, el: row, seq: null, state: 'pending', inflight: false,
        attachments: attachments
      };
      outbox.push(s.id);
    });
  }

  function init() {
    buildUI();
    restoreOutbox();
    // A returning visitor reconnects at once (to get replies and the unread badge);
    // a new visitor gets a session only when they open the chat.
    // An identified user connects at once too: their chat may have gone on elsewhere.
    if (session.token || outbox.length || IDENTIFIED) { start(); }
    if (attr('data-open') === 'true') { open(); }
    var calls = pendingCalls;
    pendingCalls = [];
    calls.forEach(function (fn) { fn(); });

    window.addEventListener('online', reconnectNow);
    document.addEventListener('visibilitychange', function () {
      if (document.visibilityState === 'visible') { reconnectNow(); }
    });
    setInterval(function () { renewLinks(false); }, 5 * 60 * 1000);
  }

  window.Switchboard = {
    _loaded: true,
    tenant: TENANT,
    open: open,
    close: close,
    setLanguage: setLanguage
  };

  if (document.body) {
    init();
  } else {
    document.addEventListener('DOMContentLoaded', init);
  }
})();
