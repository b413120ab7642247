/*
 * Switchboard agent console. Served at /console.js for the page at /console.
 *
 * Signs in with an agent token (typed, or passed as #token=... in the address, which is then
 * removed), keeps it in sessionStorage, and speaks the agent WebSocket protocol
 * (/v1/agent/ws). Text from the network is only ever inserted with textContent.
 */
(function () {
  'use strict';

  var ORIGIN = window.location.origin;
  var WS_ORIGIN = ORIGIN.replace(/^http/, 'ws');
  var KEY_TOKEN = 'switchboard:agent:token';
  var KEY_STATUS = 'switchboard:agent:status';
  var KEY_LANG = 'switchboard:lang';
  var BACKOFF_START = 500;
  var BACKOFF_CAP = 30000;
  var TYPING_SEND_INTERVAL = 3000;
  var TYPING_SHOW_FOR = 4000;
  var MAX_TEXT_BYTES = 64 * 1024;

  // -----------------------------------------------------------------------------------------
  // Strings: one dictionary for the whole console
  // -----------------------------------------------------------------------------------------

  var STRINGS = {
    en: {
      langSwitch: '中文',
      langSwitchLabel: 'Switch language to Chinese (中文)',
      pageTitle: 'Switchboard console',
      signinTitle: 'Agent console',
      signinHint: 'Sign in with the agent token your administrator gave you.',
      tokenLabel: 'Agent token',
      signinButton: 'Sign in',
      signingIn: 'Signing in…',
      badToken: 'This token was not accepted. Check it and try again.',
      tokenRequired: 'Please paste your agent token.',
      sessionExpired: 'Your sign-in is no longer valid. Please sign in again.',
      tokenRevoked: 'An administrator issued you a new token. Sign in with the new one.',
      networkError: 'Cannot reach the server. Check your connection and try again.',
      signOut: 'Sign out',
      online: 'Online',
      away: 'Away',
      statusLabel: 'Availability: online when switched on',
      connConnecting: 'Connecting…',
      connOpen: 'Connected',
      connReconnecting: 'Reconnecting…',
      connOffline: 'Offline',
      chats: 'Chats',
      capacity: function (n, max) { return n + ' / ' + max + ' active'; },
      noChats: 'No chats yet. While you are online, new chats are assigned to you automatically.',
      selectChat: 'Select a chat on the left.',
      visitor: function (shortId) { return 'Visitor ' + shortId; },
      skills: 'Skills',
      tenant: 'Tenant',
      noSkills: 'no skills',
      channel: { web: 'Web' },
      priority: 'Priority',
      skillGroup: 'Queue',
      started: 'Started',
      transfer: 'Transfer',
      transferTo: 'Transfer to',
      transferSubmit: 'Transfer',
      transferHelp: 'Type skill:<name> to send the chat to a queue, or agent:<id> for one colleague.',
      transferInvalid: 'Use skill:<name> or agent:<id>.',
      cancel: 'Cancel',
      closeChat: 'Close',
      dismiss: 'Remove from list',
      transcript: 'Transcript',
      customerTyping: 'Customer is typing…',
      typingShort: 'typing…',
      replyLabel: 'Reply',
      replyPlaceholder: 'Write a reply…  (type / for canned replies)',
      replyHint: 'Enter to send · Shift+Enter for a new line · / at the start for canned replies',
      send: 'Send',
      cannedTitle: 'Canned replies',
      cannedNone: 'No matching canned reply',
      handoff: function (reason) { return 'Handed over to a person. Reason: ' + reason; },
      noteFrom: function (who) { return 'Note from ' + who; },
      assistTitle: 'Suggested answers for the last message',
      assistInsert: 'Insert',
      assistFaq: 'FAQ',
      assistCanned: 'Canned reply',
      assistConfidence: function (p) { return p + '% sure'; },
      notePrivate: 'private: the customer does not see it',
      handoffReasons: {
        explicit_request: 'the customer asked for a person',
        handoff_intent: 'the customer asked for a person',
        complaint: 'complaint',
        unsure_twice: 'the bot was unsure twice',
        low_confidence: 'the bot was not confident',
        sensitive_word: 'sensitive word',
        human_first: 'this tenant answers with people first',
        bot_busy: 'the bot was busy',
        bot_unavailable: 'the bot was unavailable',
        attachment: 'the customer sent a file or image'
      },
      crmTags: 'Tags',
      ended: {
        closed: 'This chat was closed.',
        transferred: 'This chat was transferred.',
        requeued: 'This chat went back to the queue.',
        other: 'This chat is no longer assigned to you.'
      },
      sender: { customer: 'Customer', bot: 'Bot', agent: 'Agent', system: 'System' },
      botTag: 'automated',
      sending: 'Sending…',
      failed: 'Not sent',
      delivery: { pending: 'Delivering to the customer\u2019s app…', sent: 'Delivered to the channel', failed: 'Not delivered' },
      suggested: function (list) { return 'Suggested: ' + list.join(' · '); },
      intent: 'Intent: ',
      sensitive: {
        flag: function (words) { return '⚑ flagged' + (words.length ? ': ' + words.join(', ') : ''); },
        mask: 'masked',
        handoff: '⚑ asked for a person (sensitive word)'
      },
      attach: 'Attach files or images',
      dropHere: 'Drop files to attach them',
      uploading: function (pct) { return 'Uploading… ' + pct + '%'; },
      retryUpload: 'Retry',
      removeFile: function (name) { return 'Remove ' + name; },
      openImage: function (name) { return 'Open image ' + name; },
      download: function (name) { return 'Download ' + name; },
      attachmentPreview: function (names) { return '📎 ' + names.join(', '); },
      uploadErrors: {
        unsupported_type: 'This type of file cannot be sent.',
        too_large: 'This file is too large.',
        empty_file: 'This file is empty.',
        bad_image: 'This image could not be read.',
        attachments_off: 'Files are turned off for this tenant.',
        busy: 'The server is busy. Retry.',
        rate_limited: 'Too many uploads. Wait a moment and retry.',
        network: 'The connection failed. Retry.',
        generic: 'The upload failed. Retry.'
      },
      errors: {
        uploading: 'Wait until the files are uploaded.',
        bad_attachment: 'A file could not be sent. Attach it again.',
        too_many_attachments: 'At most 10 files in one message.',
        attachment_not_deliverable: 'WeChat and Douyin customers can only get images their app takes (up to 10 MB): this file cannot be sent.',
        bad_frame: 'The server did not understand a request.',
        too_large: 'That message is too long.',
        empty_text: 'Type a message first.',
        rate_limited: 'Too many messages at once. Wait a moment.',
        blocked: 'Not sent: the message contains words that are not allowed.',
        generic: 'Something went wrong.'
      }
    },
    zh: {
      langSwitch: 'EN',
      langSwitchLabel: '切换为英文 (English)',
      pageTitle: 'Switchboard 客服工作台',
      signinTitle: '客服工作台',
      signinHint: '请使用管理员发给您的客服令牌登录。',
      tokenLabel: '客服令牌',
      signinButton: '登录',
      signingIn: '正在登录…',
      badToken: '令牌无效，请检查后重试。',
      tokenRequired: '请粘贴您的客服令牌。',
      sessionExpired: '登录已失效，请重新登录。',
      tokenRevoked: '管理员已为你重新签发令牌，请使用新令牌登录。',
      networkError: '无法连接服务器，请检查网络后重试。',
      signOut: '退出',
      online: '在线',
      away: '离开',
      statusLabel: '接待状态：打开为在线',
      connConnecting: '正在连接…',
      connOpen: '已连接',
      connReconnecting: '正在重新连接…',
      connOffline: '已断开',
      chats: '会话',
      capacity: function (n, max) { return '接待中 ' + n + ' / ' + max; },
      noChats: '暂无会话。在线时，新的会话会自动分配给您。',
      selectChat: '请在左侧选择一个会话。',
      visitor: function (shortId) { return '访客 ' + shortId; },
      skills: '技能组',
      tenant: '租户',
      noSkills: '无技能组',
      channel: { web: '网页' },
      priority: '优先级',
      skillGroup: '队列',
      started: '开始于',
      transfer: '转接',
      transferTo: '转接给',
      transferSubmit: '转接',
      transferHelp: '输入 skill:<技能组> 转到队列，或 agent:<客服 ID> 转给指定同事。',
      transferInvalid: '请输入 skill:<技能组> 或 agent:<客服 ID>。',
      cancel: '取消',
      closeChat: '结束会话',
      dismiss: '从列表移除',
      transcript: '聊天记录',
      customerTyping: '客户正在输入…',
      typingShort: '正在输入…',
      replyLabel: '回复',
      replyPlaceholder: '输入回复…（输入 / 使用快捷回复）',
      replyHint: 'Enter 发送 · Shift+Enter 换行 · 开头输入 / 调出快捷回复',
      send: '发送',
      cannedTitle: '快捷回复',
      cannedNone: '没有匹配的快捷回复',
      handoff: function (reason) { return '已转人工。原因：' + reason; },
      noteFrom: function (who) { return who + ' 的备注'; },
      assistTitle: '针对最新消息的推荐答案',
      assistInsert: '插入',
      assistFaq: '知识库',
      assistCanned: '快捷回复',
      assistConfidence: function (p) { return '把握 ' + p + '%'; },
      notePrivate: '内部备注，客户看不到',
      handoffReasons: {
        explicit_request: '客户要求人工',
        handoff_intent: '客户要求人工',
        complaint: '投诉',
        unsure_twice: '机器人两次未能确定',
        low_confidence: '机器人把握不足',
        sensitive_word: '触发敏感词',
        human_first: '该租户优先人工接待',
        bot_busy: '机器人繁忙',
        bot_unavailable: '机器人不可用',
        attachment: '客户发送了文件或图片'
      },
      crmTags: '标签',
      ended: {
        closed: '会话已结束。',
        transferred: '会话已转接。',
        requeued: '会话已退回队列。',
        other: '该会话已不再分配给您。'
      },
      sender: { customer: '客户', bot: '机器人', agent: '客服', system: '系统' },
      botTag: '自动回复',
      sending: '发送中…',
      failed: '发送失败',
      delivery: { pending: '正在投递到客户渠道…', sent: '已投递到渠道', failed: '投递失败' },
      suggested: function (list) { return '推荐问题：' + list.join(' · '); },
      intent: '意图：',
      sensitive: {
        flag: function (words) { return '⚑ 已标记' + (words.length ? '：' + words.join('、') : ''); },
        mask: '已打码',
        handoff: '⚑ 敏感词，已请求转人工'
      },
      attach: '发送文件或图片',
      dropHere: '松开鼠标即可添加文件',
      uploading: function (pct) { return '上传中… ' + pct + '%'; },
      retryUpload: '重试',
      removeFile: function (name) { return '移除 ' + name; },
      openImage: function (name) { return '查看图片 ' + name; },
      download: function (name) { return '下载 ' + name; },
      attachmentPreview: function (names) { return '📎 ' + names.join('、'); },
      uploadErrors: {
        unsupported_type: '不支持发送此类型的文件。',
        too_large: '文件太大。',
        empty_file: '文件是空的。',
        bad_image: '无法识别这张图片。',
        attachments_off: '该租户未开启文件发送。',
        busy: '服务器繁忙，请重试。',
        rate_limited: '上传太频繁，请稍后重试。',
        network: '网络连接失败，请重试。',
        generic: '上传失败，请重试。'
      },
      errors: {
        uploading: '请等待文件上传完成。',
        bad_attachment: '有文件无法发送，请重新添加。',
        too_many_attachments: '每条消息最多 10 个文件。',
        attachment_not_deliverable: '微信和抖音客户只能接收平台支持的图片（最大 10 MB），此文件无法发送。',
        bad_frame: '服务器无法识别该请求。',
        too_large: '消息太长。',
        empty_text: '请先输入内容。',
        rate_limited: '发送太频繁，请稍候。',
        blocked: '未发送：消息包含不允许的词语。',
        generic: '出错了。'
      }
    }
  };

  var lang = normalizeLang(readLocal(KEY_LANG) || navigator.language ||
    (navigator.languages && navigator.languages[0]));

  function normalizeLang(value) {
    return /^zh/i.test(String(value || '')) ? 'zh' : 'en';
  }

  function t(key) {
    var v = STRINGS[lang][key];
    return v === undefined ? STRINGS.en[key] : v;
  }

  // -----------------------------------------------------------------------------------------
  // Helpers
  // -----------------------------------------------------------------------------------------

  function $(id) { return document.getElementById(id); }

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) { node.className = className; }
    if (text != null) { node.textContent = String(text); }
    return node;
  }

  function readLocal(key) {
    try { return window.localStorage.getItem(key); } catch (e) { return null; }
  }
  function writeLocal(key, value) {
    try { window.localStorage.setItem(key, value); } catch (e) { /* private mode */ }
  }
  function readSession(key) {
    try { return window.sessionStorage.getItem(key); } catch (e) { return null; }
  }
  function writeSession(key, value) {
    try {
      if (value == null) { window.sessionStorage.removeItem(key); } else { window.sessionStorage.setItem(key, value); }
    } catch (e) { /* private mode */ }
  }

  function uuid() {
    var c = window.crypto;
    if (c && typeof c.randomUUID === 'function') { return c.randomUUID(); }
    var b = new Uint8Array(16);
    c.getRandomValues(b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    var h = Array.prototype.map.call(b, function (x) { return (x + 0x100).toString(16).slice(1); }).join('');
    return h.slice(0, 8) + '-' + h.slice(8, 12) + '-' + h.slice(12, 16) + '-' + h.slice(16, 20) + '-' + h.slice(20);
  }

  function toSeq(v) {
    var n = Number(v);
    return Number.isInteger(n) && n > 0 ? n : null;
  }

  function byteLength(text) {
    return new TextEncoder().encode(text).length;
  }

  function shortId(id) {
    return String(id || '').replace(/^[a-z]+_/i, '').replace(/-/g, '').slice(0, 8) || '?';
  }

  function formatTime(iso, withDate) {
    if (!iso) { return ''; }
    var d = new Date(iso);
    if (isNaN(d.getTime())) { return ''; }
    var locale = lang === 'zh' ? 'zh-CN' : 'en';
    var sameDay = d.toDateString() === new Date().toDateString();
    var opts = { hour: '2-digit', minute: '2-digit' };
    if (withDate || !sameDay) {
      opts.month = 'short';
      opts.day = 'numeric';
    }
    try { return d.toLocaleString(locale, opts); } catch (e) { return d.toISOString(); }
  }

  var SENDERS = { customer: true, bot: true, agent: true, system: true };

  // -----------------------------------------------------------------------------------------
  // State
  // -----------------------------------------------------------------------------------------

  var state = {
    token: null,
    me: null,
    status: 'away',
    desiredStatus: readSession(KEY_STATUS), // what the agent last chose in this tab
    chats: {}, // conversation id -> chat
    order: [], // conversation ids, first assigned first
    selected: null,
    canned: []
  };

  var conn = {
    ws: null,
    state: 'idle',
    attempt: 0,
    timer: null,
    everOpen: false,
    stopped: true,
    lastTypingSent: {}
  };

  function newChat(conversation) {
    return {
      id: conversation.id,
      conversation: conversation,
      messages: {}, // seq -> message
      seqs: [], // sorted
      pending: {}, // client_msg_id -> { id, text, at, state }
      pendingOrder: [],
      contig: 0,
      acked: 0,
      unread: 0,
      ended: null,
      closing: false,
      typingUntil: 0,
      lastAt: conversation.created_at || null,
      notes: validNotes(conversation.notes),
      draft: '',
      uploads: [] // files attached to the next reply (see Attachments)
    };
  }

  // -----------------------------------------------------------------------------------------
  // i18n
  // -----------------------------------------------------------------------------------------

  function applyLanguage() {
    document.documentElement.lang = lang === 'zh' ? 'zh-CN' : 'en';
    var nodes = document.querySelectorAll('[data-i18n]');
    for (var i = 0; i < nodes.length; i++) {
      nodes[i].textContent = t(nodes[i].getAttribute('data-i18n'));
    }
    var attrs = document.querySelectorAll('[data-i18n-attr]');
    for (var j = 0; j < attrs.length; j++) {
      var spec = attrs[j].getAttribute('data-i18n-attr').split(':');
      attrs[j].setAttribute(spec[0], t(spec[1]));
    }
    $('reply').setAttribute('placeholder', t('replyPlaceholder'));
    $('transfer-to').setAttribute('placeholder', 'skill:billing · agent:…');
    $('attach').title = t('attach');
    $('chat-view').setAttribute('data-drop', t('dropHere'));
    renderStatus();
    renderConn();
    renderHeader();
    renderChatList();
    renderSelected(true);
    renderTray();
    updateTitle();
  }

  function setLanguage(value) {
    lang = normalizeLang(value);
    writeLocal(KEY_LANG, lang === 'zh' ? 'zh-CN' : 'en');
    applyLanguage();
  }

  // -----------------------------------------------------------------------------------------
  // Sign-in
  // -----------------------------------------------------------------------------------------

  function takeTokenFromFragment() {
    var hash = window.location.hash || '';
    var m = /(?:^#|&)token=([^&]+)/.exec(hash);
    if (!m) { return null; }
    var token = decodeURIComponent(m[1]);
    // Remove the token from the address bar (and from history).
    try {
      window.history.replaceState(null, '', window.location.pathname + window.location.search);
    } catch (e) {
      window.location.hash = '';
    }
    return token;
  }

  function api(path, token, method) {
    return fetch(ORIGIN + path, {
      method: method || 'GET',
      headers: { Authorization: 'Bearer ' + token, Accept: 'application/json' },
      cache: 'no-store'
    }).then(function (res) {
      return res.text().then(function (txt) {
        var body = null;
        try { body = txt ? JSON.parse(txt) : null; } catch (e) { body = null; }
        if (!res.ok) {
          var err = new Error((body && body.message) || ('HTTP ' + res.status));
          err.status = res.status;
          err.code = body && body.code;
          throw err;
        }
        return body;
      });
    });
  }

  function showSignin(message) {
    $('app').hidden = true;
    $('signin-view').hidden = false;
    var err = $('signin-error');
    err.textContent = message || '';
    err.hidden = !message;
    $('signin').disabled = false;
    $('signin').textContent = t('signinButton');
    $('token').focus();
  }

  function signIn(token) {
    token = String(token || '').trim();
    if (!token) {
      showSignin(t('tokenRequired'));
      return;
    }
    $('signin').disabled = true;
    $('signin').textContent = t('signingIn');
    $('signin-error').hidden = true;
    api('/v1/agent/me', token).then(function (me) {
      // The answer carries a renewed token: keep it (tokens expire when left unused).
      var renewed = me && typeof me.token === 'string' ? me.token : token;
      state.token = renewed;
      state.me = me || {};
      writeSession(KEY_TOKEN, renewed);
      $('token').value = '';
      $('signin-view').hidden = true;
      $('app').hidden = false;
      renderHeader();
      renderChatList();
      renderSelected(true);
      loadCanned();
      conn.stopped = false;
      connect();
    }, function (err) {
      writeSession(KEY_TOKEN, null);
      var msg;
      if (err.status === 401 || err.status === 403) {
        msg = t('badToken');
      } else if (err.status) {
        msg = err.message;
      } else {
        msg = t('networkError');
      }
      showSignin(msg);
    });
  }

  function signOut(message) {
    conn.stopped = true;
    clearTimeout(conn.timer);
    if (conn.ws) {
      var ws = conn.ws;
      conn.ws = null;
      try { ws.close(1000); } catch (e) { /* already closed */ }
    }
    writeSession(KEY_TOKEN, null);
    state.token = null;
    state.me = null;
    state.chats = {};
    state.order = [];
    state.selected = null;
    state.canned = [];
    conn.everOpen = false;
    setConn('idle');
    updateTitle();
    showSignin(message);
  }

  function loadCanned() {
    var me = state.me;
    if (!me || !me.tenant) { return; }
    api('/v1/tenants/' + encodeURIComponent(me.tenant) + '/canned-replies', state.token).then(function (list) {
      var items = Array.isArray(list) ? list : (list && Array.isArray(list.items) ? list.items : []);
      state.canned = items.filter(function (c) { return c && typeof c.text === 'string'; });
    }, function () {
      state.canned = []; // canned replies are optional
    });
  }

  // -----------------------------------------------------------------------------------------
  // Connection
  // -----------------------------------------------------------------------------------------

  function setConn(s) {
    conn.state = s;
    renderConn();
  }

  function connect() {
    clearTimeout(conn.timer);
    conn.timer = null;
    if (conn.stopped || conn.ws || conn.ticketing) { return; }
    setConn(conn.everOpen ? 'reconnecting' : 'connecting');
    // The socket opens with a one-time ticket, so the token never rides in a URL.
    conn.ticketing = true;
    api('/v1/agent/ticket', state.token, 'POST').then(function (granted) {
      conn.ticketing = false;
      if (conn.stopped || conn.ws) { return; }
      openSocket(granted && granted.ticket);
    }, function (err) {
      conn.ticketing = false;
      if (err.status === 401 || err.status === 403) {
        signOut(t('sessionExpired'));
      } else {
        scheduleReconnect(false);
      }
    });
  }

  function openSocket(ticket) {
    var ws;
    try {
      ws = new WebSocket(WS_ORIGIN + '/v1/agent/ws?ticket=' + encodeURIComponent(String(ticket || '')));
    } catch (e) {
      scheduleReconnect(false);
      return;
    }
    conn.ws = ws;
    var opened = false;

    ws.onopen = function () {
      if (conn.ws !== ws) { return; }
      opened = true;
      conn.everOpen = true;
      conn.attempt = 0;
      setConn('open');
      // Resume every open chat from the last seq we have, then resend anything unreceipted.
      state.order.forEach(function (id) {
        var chat = state.chats[id];
        if (!chat || chat.ended) { return; }
        chat.acked = 0;
        sendFrame({ type: 'resume', conversation_id: id, last_seq: chat.contig });
      });
      state.order.forEach(function (id) {
        var chat = state.chats[id];
        if (!chat || chat.ended) { return; }
        chat.pendingOrder.forEach(function (cid) {
          var p = chat.pending[cid];
          if (p && p.state === 'pending') {
            sendFrame({ type: 'send', conversation_id: id, client_msg_id: cid, text: p.text });
          }
        });
      });
    };
    ws.onmessage = function (ev) {
      if (conn.ws !== ws || typeof ev.data !== 'string') { return; }
      var frame;
      try { frame = JSON.parse(ev.data); } catch (e) { return; }
      handleFrame(frame);
    };
    ws.onerror = function () { /* onclose follows */ };
    ws.onclose = function () {
      if (conn.ws !== ws) { return; }
      conn.ws = null;
      scheduleReconnect(opened);
    };
  }

  function scheduleReconnect(hadOpened) {
    if (conn.stopped || conn.timer) { return; }
    setConn(conn.everOpen ? 'reconnecting' : 'offline');
    var base = Math.min(BACKOFF_CAP, BACKOFF_START * Math.pow(2, conn.attempt));
    var delay = Math.min(BACKOFF_CAP, Math.round(base / 2 + Math.random() * base));
    conn.attempt++;
    conn.timer = setTimeout(function () {
      conn.timer = null;
      if (hadOpened) {
        connect();
        return;
      }
      // The socket never opened: find out whether the token is still good before retrying.
      api('/v1/agent/me', state.token).then(function (me) {
        state.me = me || state.me;
        if (me && typeof me.token === 'string') {
          state.token = me.token;
          writeSession(KEY_TOKEN, me.token);
        }
        connect();
      }, function (err) {
        if (err.status === 401 || err.status === 403) {
          signOut(t('sessionExpired'));
        } else {
          scheduleReconnect(false);
        }
      });
    }, delay);
  }

  function reconnectNow() {
    if (conn.stopped || conn.ws || !conn.timer) { return; }
    clearTimeout(conn.timer);
    conn.timer = null;
    conn.attempt = 0;
    connect();
  }

  function sendFrame(frame) {
    if (conn.ws && conn.ws.readyState === 1) {
      try {
        conn.ws.send(JSON.stringify(frame));
        return true;
      } catch (e) { /* close handler reconnects */ }
    }
    return false;
  }

  // -----------------------------------------------------------------------------------------
  // Frames
  // -----------------------------------------------------------------------------------------

  function handleFrame(f) {
    if (!f || typeof f !== 'object') { return; }
    switch (f.type) {
      case 'hello':
        onHello(f);
        break;
      case 'assigned':
        onAssigned(f);
        break;
      case 'message':
        onMessage(f, true);
        break;
      case 'receipt':
        onReceipt(f);
        break;
      case 'unassigned':
        onUnassigned(f);
        break;
      case 'typing':
        onTyping(f);
        break;
      case 'status':
        setStatus(f.status);
        break;
      case 'error':
        onError(f);
        break;
      case 'delivery':
        onDelivery(f);
        break;
      case 'note':
        onNote(f);
        break;
      default:
        break; // ignore frames this console does not know yet
    }
  }

  function onHello(f) {
    if (f.agent && typeof f.agent === 'object') {
      var me = state.me || {};
      ['id', 'name', 'skills', 'max_concurrent'].forEach(function (k) {
        if (f.agent[k] !== undefined) { me[k] = f.agent[k]; }
      });
      state.me = me;
    }
    setStatus(f.status);
    // Keep the availability the agent chose in this tab across reconnects.
    if (state.desiredStatus && state.desiredStatus !== state.status) {
      sendFrame({ type: 'status', status: state.desiredStatus });
      setStatus(state.desiredStatus);
    }
    renderHeader();
  }

  function onAssigned(f) {
    var c = f.conversation;
    if (!c || typeof c.id !== 'string') { return; }
    var chat = state.chats[c.id];
    var isNew = !chat || !!chat.ended;
    if (!chat) {
      chat = newChat(c);
      state.chats[c.id] = chat;
      state.order.push(c.id);
    } else {
      chat.conversation = c;
      chat.notes = validNotes(c.notes);
    }
    chat.ended = null;
    chat.closing = false;
    var list = Array.isArray(f.messages) ? f.messages : [];
    list.forEach(function (m) {
      if (!m.conversation_id) { m.conversation_id = c.id; }
      onMessage(m, false);
    });
    if (isNew && state.selected !== c.id) {
      chat.unread = Math.max(chat.unread, 1);
    }
    if (!state.selected) {
      select(c.id);
    } else {
      renderChatList();
      if (state.selected === c.id) { renderSelected(true); }
    }
    updateTitle();
    scheduleAck(chat);
  }

  // ---- agent assist --------------------------------------------------------------------------
  // For the customer's last message in the selected chat: the bot's best FAQ answers (hybrid
  // search, with confidence) and the canned replies that share words with it. One click puts an
  // answer in the reply box; nothing is sent until the agent sends it.

  function lastCustomerText(chat) {
    for (var i = chat.seqs.length - 1; i >= 0; i--) {
      var m = chat.messages[chat.seqs[i]];
      if (m && m.sender === 'customer') { return m.text; }
    }
    return null;
  }

  // Words of a message: its space-separated words, and for Chinese every two-character piece.
  function assistWords(text) {
    var words = [];
    String(text).toLowerCase().split(/[\s,.!?;:，。！？；：、？]+/).forEach(function (w) {
      if (/[\u3400-\u9fff]/.test(w)) {
        for (var i = 0; i + 2 <= w.length; i++) { words.push(w.slice(i, i + 2)); }
      } else if (w.length >= 3) {
        words.push(w);
      }
    });
    return words;
  }

  function matchingCanned(text) {
    var words = assistWords(text);
    return (state.canned || []).filter(function (c) {
      var hay = (String(c.shortcut || '') + ' ' + String(c.text || '')).toLowerCase();
      return words.some(function (w) { return hay.indexOf(w) >= 0; });
    }).slice(0, 3);
  }

  function refreshAssist(chat) {
    var box = $('assist');
    var text = chat && !chat.ended ? lastCustomerText(chat) : null;
    if (!text || !state.me || !state.me.tenant) {
      box.hidden = true;
      return;
    }
    if (chat.assist && chat.assist.text === text) {
      renderAssist(chat);
      return;
    }
    chat.assist = { text: text, faqs: [], canned: matchingCanned(text) };
    renderAssist(chat);
    var path = '/v1/tenants/' + encodeURIComponent(state.me.tenant) + '/kb/search?mode=hybrid&k=3&q=' +
      encodeURIComponent(text.slice(0, 500));
    api(path, state.token).then(function (hits) {
      if (!chat.assist || chat.assist.text !== text) { return; }
      chat.assist.faqs = (Array.isArray(hits) ? hits : []).filter(function (h) {
        return h && typeof h.answer === 'string' && typeof h.question === 'string';
      });
      if (state.selected === chat.id) { renderAssist(chat); }
    }, function () { /* suggestions are optional (models loading, no knowledge base) */ });
  }

  function renderAssist(chat) {
    var box = $('assist');
    var list = $('assist-list');
    list.textContent = '';
    var items = [];
    chat.assist.faqs.forEach(function (h) {
      var conf = typeof h.confidence === 'number' ? Math.round(h.confidence * 100) : null;
      items.push({ kind: t('assistFaq'), head: h.question, text: h.answer, extra: conf === null ? '' : t('assistConfidence')(conf), id: h.id });
    });
    chat.assist.canned.forEach(function (c) {
      items.push({ kind: t('assistCanned'), head: '/' + c.shortcut, text: c.text, extra: '' });
    });
    items.forEach(function (item) {
      var row = el('li', 'assist-item');
      var body = el('div', 'assist-body');
      var head = el('div', 'assist-head', item.head);
      head.appendChild(el('span', 'tag', item.kind + (item.extra ? ' · ' + item.extra : '')));
      body.appendChild(head);
      body.appendChild(el('div', 'assist-text', item.text));
      row.appendChild(body);
      var insert = el('button', 'assist-insert', t('assistInsert'));
      insert.type = 'button';
      if (item.id) { insert.setAttribute('data-faq', item.id); }
      insert.addEventListener('click', function () {
        var reply = $('reply');
        reply.value = item.text;
        reply.dispatchEvent(new Event('input', { bubbles: true }));
        reply.focus();
      });
      row.appendChild(insert);
      list.appendChild(row);
    });
    box.hidden = items.length === 0;
  }

  // Supervisors' private notes: {author, text, at}; never shown to the customer.
  function validNotes(list) {
    return (Array.isArray(list) ? list : []).filter(function (n) {
      return n && typeof n.text === 'string' && typeof n.author === 'string';
    });
  }

  function onNote(f) {
    var chat = state.chats[f.conversation_id];
    if (!chat || typeof f.text !== 'string') { return; }
    chat.notes = chat.notes.concat(validNotes([f]));
    if (state.selected === chat.id) {
      renderNotes(chat);
    } else {
      chat.unread++;
    }
    renderChatList();
    updateTitle();
  }

  function renderNotes(chat) {
    var box = $('chat-notes');
    box.textContent = '';
    box.hidden = !chat || !chat.notes.length;
    if (!chat) { return; }
    chat.notes.forEach(function (n) {
      var row = el('div', 'note');
      var head = el('span', 'note-head', t('noteFrom')(n.author));
      head.appendChild(el('span', 'tag', t('notePrivate')));
      row.appendChild(head);
      row.appendChild(el('span', null, n.text));
      if (n.at) { row.appendChild(el('span', 'msg-meta', ' · ' + formatTime(n.at))); }
      box.appendChild(row);
    });
  }

  // Adds a message to its chat. live=false for history inside an assigned frame.
  function onMessage(f, live) {
    var chat = state.chats[f.conversation_id];
    var seq = toSeq(f.seq);
    if (!chat || seq === null || typeof f.text !== 'string') { return; }

    var cid = typeof f.client_msg_id === 'string' ? f.client_msg_id : null;
    if (cid && chat.pending[cid]) {
      dropPending(chat, cid);
    }
    if (chat.messages[seq]) {
      // Never show a seq twice; history sent again (after a reconnect) brings fresh links to
      // the files, which expire after an hour. The transcript is redrawn by the caller.
      var fresh = validAttachments(f.attachments);
      if (fresh.length) {
        chat.messages[seq].attachments = fresh;
        chat.messages[seq].linksAt = Date.now();
      }
      return;
    }

    var msg = {
      seq: seq,
      sender: SENDERS[f.sender] ? f.sender : 'system',
      text: f.text,
      at: f.at || null,
      suggestions: Array.isArray(f.suggestions) ? f.suggestions.filter(function (s) { return typeof s === 'string'; }) : null,
      meta: f.meta && typeof f.meta === 'object' ? f.meta : null, // bot decision, sensitive words
      attachments: validAttachments(f.attachments),
      linksAt: Date.now()
    };
    addMessage(chat, msg);

    if (live) {
      if (msg.sender === 'customer') {
        chat.typingUntil = 0;
        if (state.selected === chat.id) { refreshAssist(chat); }
      }
      var visible = state.selected === chat.id && document.visibilityState === 'visible';
      if (msg.sender !== 'agent' && !visible) {
        chat.unread++;
      }
      renderChatList();
      updateTitle();
      scheduleAck(chat);
    }
  }

  function addMessage(chat, msg) {
    chat.messages[msg.seq] = msg;
    var seqs = chat.seqs;
    var i = seqs.length;
    while (i > 0 && seqs[i - 1] > msg.seq) { i--; }
    seqs.splice(i, 0, msg.seq);
    while (chat.messages[chat.contig + 1]) { chat.contig++; }
    if (msg.at && (!chat.lastAt || msg.at > chat.lastAt)) { chat.lastAt = msg.at; }
    if (state.selected === chat.id) {
      insertMessageEl(chat, msg);
      if (msg.sender === 'customer') { renderTyping(); }
    }
  }

  function dropPending(chat, cid) {
    delete chat.pending[cid];
    var i = chat.pendingOrder.indexOf(cid);
    if (i >= 0) { chat.pendingOrder.splice(i, 1); }
    if (state.selected === chat.id) {
      var node = $('transcript').querySelector('.msg[data-client-msg-id="' + cssEscape(cid) + '"]:not([data-seq])');
      if (node) { node.parentNode.removeChild(node); }
    }
  }

  function cssEscape(s) {
    return window.CSS && window.CSS.escape ? window.CSS.escape(s) : String(s).replace(/["\\]/g, '\\$&');
  }

  function onReceipt(f) {
    var chat = state.chats[f.conversation_id];
    var seq = toSeq(f.seq);
    if (!chat || seq === null) { return; }
    var p = chat.pending[f.client_msg_id];
    if (!p) { return; }
    dropPending(chat, p.id);
    if (!chat.messages[seq]) {
      addMessage(chat, {
        seq: seq, sender: 'agent', text: p.text, at: f.at || p.at, suggestions: null, meta: null,
        attachments: p.attachments
      });
    }
    renderChatList();
    scheduleAck(chat);
  }

  function onUnassigned(f) {
    var chat = state.chats[f.conversation_id];
    if (!chat) { return; }
    chat.ended = f.reason || 'other';
    chat.closing = false;
    chat.typingUntil = 0;
    // Unsent replies can no longer be delivered.
    chat.pendingOrder.slice().forEach(function (cid) {
      chat.pending[cid].state = 'failed';
    });
    renderChatList();
    if (state.selected === chat.id) { renderSelected(true); }
    updateTitle();
  }

  function onTyping(f) {
    var chat = state.chats[f.conversation_id];
    if (!chat || chat.ended) { return; }
    chat.typingUntil = Date.now() + TYPING_SHOW_FOR;
    renderChatList();
    renderTyping();
    setTimeout(function () {
      if (Date.now() >= chat.typingUntil) {
        renderChatList();
        renderTyping();
      }
    }, TYPING_SHOW_FOR + 50);
  }

  // Errors only a send gets. The error frame does not name the reply, but the server answers
  // sends in order: it is the oldest reply of that chat still pending.
  var SEND_ERRORS = {
    blocked: true, too_large: true, empty_text: true, bad_attachment: true, too_many_attachments: true,
    attachment_not_deliverable: true
  };

  function onError(f) {
    if (f.code === 'token_revoked') {
      // An admin reissued this agent's token: this one will never work again.
      signOut(t('tokenRevoked'));
      return;
    }
    var errors = t('errors');
    var text = errors[f.code] || f.message || errors.generic;
    var chat = f.conversation_id && state.chats[f.conversation_id];
    if (chat) {
      var p = chat.pending[f.client_msg_id] || (SEND_ERRORS[f.code] && chat.pendingOrder
        .map(function (cid) { return chat.pending[cid]; })
        .filter(function (x) { return x.state === 'pending'; })[0]);
      if (p) { p.state = 'failed'; }
      chat.closing = false;
      if (state.selected === chat.id) {
        renderSelected(false);
        showChatError(text);
        return;
      }
    }
    showGlobalError(text);
  }

  var ackTimers = {};
  function scheduleAck(chat) {
    if (ackTimers[chat.id]) { return; }
    ackTimers[chat.id] = setTimeout(function () {
      delete ackTimers[chat.id];
      if (!chat.ended && chat.contig > chat.acked &&
          sendFrame({ type: 'ack', conversation_id: chat.id, seq: chat.contig })) {
        chat.acked = chat.contig;
      }
    }, 200);
  }

  // -----------------------------------------------------------------------------------------
  // Actions
  // -----------------------------------------------------------------------------------------

  function setStatus(s) {
    if (s !== 'online' && s !== 'away') { return; }
    state.status = s;
    renderStatus();
  }

  function toggleStatus() {
    var next = state.status === 'online' ? 'away' : 'online';
    state.desiredStatus = next;
    writeSession(KEY_STATUS, next);
    sendFrame({ type: 'status', status: next });
    setStatus(next);
  }

  function select(id) {
    var chat = state.chats[id];
    if (!chat) { return; }
    var prev = state.chats[state.selected];
    if (prev) { prev.draft = $('reply').value; }
    state.selected = id;
    chat.unread = 0;
    hideTransferForm();
    closeCanned();
    $('chat-error').hidden = true;
    $('reply').value = chat.draft || '';
    renderTray();
    renderChatList();
    renderSelected(true);
    updateTitle();
  }

  function sendReply() {
    var chat = state.chats[state.selected];
    if (!chat || chat.ended) { return; }
    var text = $('reply').value;
    if (chat.uploads.some(function (u) { return u.state === 'uploading'; })) {
      showChatError(t('errors').uploading);
      return;
    }
    var ready = chat.uploads.filter(function (u) { return u.state === 'ready'; });
    if (!text.trim() && !ready.length) {
      showChatError(t('errors').empty_text);
      return;
    }
    if (byteLength(text) > MAX_TEXT_BYTES) {
      showChatError(t('errors').too_large);
      return;
    }
    var cid = uuid();
    var attachments = ready.map(function (u) { return u.view; });
    var p = { id: cid, text: text, at: new Date().toISOString(), state: 'pending', attachments: attachments };
    chat.pending[cid] = p;
    chat.pendingOrder.push(cid);
    var frame = { type: 'send', conversation_id: chat.id, client_msg_id: cid, text: text };
    if (attachments.length) {
      frame.attachments = attachments.map(function (a) { return a.id; });
    }
    sendFrame(frame);
    ready.forEach(function (u) { removeUpload(chat, u); }); // failed ones stay to be retried
    $('reply').value = '';
    chat.draft = '';
    $('chat-error').hidden = true;
    closeCanned();
    insertPendingEl(p);
    scrollTranscript(true);
  }

  function closeChat() {
    var chat = state.chats[state.selected];
    if (!chat || chat.ended) { return; }
    if (sendFrame({ type: 'close', conversation_id: chat.id })) {
      chat.closing = true;
      renderSelected(false);
    } else {
      showChatError(t('connReconnecting'));
    }
  }

  function showTransferForm() {
    var chat = state.chats[state.selected];
    if (!chat || chat.ended) { return; }
    var form = $('transfer-form');
    var options = $('transfer-options');
    options.textContent = '';
    var skills = (state.me && Array.isArray(state.me.skills)) ? state.me.skills : [];
    var group = chat.conversation.skill_group;
    if (group && skills.indexOf(group) < 0) { skills = skills.concat([group]); }
    skills.forEach(function (s) {
      var o = document.createElement('option');
      o.value = 'skill:' + s;
      options.appendChild(o);
    });
    form.hidden = false;
    $('transfer').setAttribute('aria-expanded', 'true');
    $('transfer-to').value = '';
    $('transfer-to').focus();
  }

  function hideTransferForm() {
    $('transfer-form').hidden = true;
    $('transfer').setAttribute('aria-expanded', 'false');
  }

  function submitTransfer() {
    var chat = state.chats[state.selected];
    var to = $('transfer-to').value.trim();
    if (!chat || chat.ended) { return; }
    if (!/^(skill|agent):\S+$/.test(to)) {
      showChatError(t('transferInvalid'));
      $('transfer-to').focus();
      return;
    }
    if (sendFrame({ type: 'transfer', conversation_id: chat.id, to: to })) {
      hideTransferForm();
      $('chat-error').hidden = true;
    } else {
      showChatError(t('connReconnecting'));
    }
  }

  function dismissChat() {
    var id = state.selected;
    var chat = state.chats[id];
    if (!chat || !chat.ended) { return; }
    delete state.chats[id];
    state.order.splice(state.order.indexOf(id), 1);
    state.selected = null;
    var next = state.order.filter(function (x) { return !state.chats[x].ended; })[0] || state.order[0];
    if (next) {
      select(next);
    } else {
      renderChatList();
      renderSelected(true);
      renderTray();
    }
  }

  function onReplyInput() {
    var chat = state.chats[state.selected];
    if (chat && !chat.ended && $('reply').value.trim()) {
      var now = Date.now();
      if (now - (conn.lastTypingSent[chat.id] || 0) >= TYPING_SEND_INTERVAL &&
          sendFrame({ type: 'typing', conversation_id: chat.id })) {
        conn.lastTypingSent[chat.id] = now;
      }
    }
    updateCanned();
  }

  // -----------------------------------------------------------------------------------------
  // Canned replies: "/" at the start of the reply box
  // -----------------------------------------------------------------------------------------

  var canned = { open: false, items: [], active: 0 };

  function updateCanned() {
    var value = $('reply').value;
    if (value.charAt(0) !== '/' || value.indexOf('\n') >= 0) {
      closeCanned();
      return;
    }
    var q = value.slice(1).trim().toLowerCase();
    canned.items = state.canned.filter(function (c) {
      var sc = String(c.shortcut || '').toLowerCase().replace(/^\//, '');
      return !q || sc.indexOf(q) >= 0 || c.text.toLowerCase().indexOf(q) >= 0;
    }).slice(0, 20);
    canned.active = 0;
    canned.open = true;
    renderCanned();
  }

  function renderCanned() {
    var list = $('canned');
    list.textContent = '';
    if (!canned.open) {
      list.hidden = true;
      $('reply').setAttribute('aria-expanded', 'false');
      $('reply').removeAttribute('aria-activedescendant');
      return;
    }
    if (!canned.items.length) {
      var none = el('li', 'none', t('cannedNone'));
      none.setAttribute('role', 'option');
      none.setAttribute('aria-disabled', 'true');
      list.appendChild(none);
    }
    canned.items.forEach(function (c, i) {
      var li = el('li');
      li.id = 'canned-' + i;
      li.setAttribute('role', 'option');
      li.setAttribute('aria-selected', i === canned.active ? 'true' : 'false');
      li.setAttribute('data-canned-id', String(c.id));
      var sc = String(c.shortcut || '');
      li.appendChild(el('span', 'shortcut', sc.charAt(0) === '/' ? sc : '/' + sc));
      li.appendChild(el('span', 'text', c.text));
      li.addEventListener('mousedown', function (e) {
        e.preventDefault(); // keep focus in the reply box
        insertCanned(i);
      });
      list.appendChild(li);
    });
    list.hidden = false;
    $('reply').setAttribute('aria-expanded', 'true');
    if (canned.items.length) {
      $('reply').setAttribute('aria-activedescendant', 'canned-' + canned.active);
      var active = $('canned-' + canned.active);
      if (active && active.scrollIntoView) { active.scrollIntoView({ block: 'nearest' }); }
    } else {
      $('reply').removeAttribute('aria-activedescendant');
    }
  }

  function closeCanned() {
    if (!canned.open) { return; }
    canned.open = false;
    renderCanned();
  }

  function insertCanned(i) {
    var c = canned.items[i];
    if (!c) { return; }
    var reply = $('reply');
    reply.value = c.text;
    closeCanned();
    reply.focus();
    reply.setSelectionRange(reply.value.length, reply.value.length);
    onReplyInput();
  }

  function onReplyKeydown(e) {
    if (canned.open) {
      var n = canned.items.length;
      if (e.key === 'ArrowDown' && n) {
        e.preventDefault();
        canned.active = (canned.active + 1) % n;
        renderCanned();
        return;
      }
      if (e.key === 'ArrowUp' && n) {
        e.preventDefault();
        canned.active = (canned.active - 1 + n) % n;
        renderCanned();
        return;
      }
      if ((e.key === 'Enter' || e.key === 'Tab') && n && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        insertCanned(canned.active);
        return;
      }
      if (e.key === 'Escape') {
        e.preventDefault();
        closeCanned();
        return;
      }
    }
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing && e.keyCode !== 229) {
      e.preventDefault();
      sendReply();
    }
  }

  // -----------------------------------------------------------------------------------------
  // Rendering
  // -----------------------------------------------------------------------------------------

  function customerName(chat) {
    var cust = chat.conversation.customer || {};
    if (cust.name) { return cust.name; }
    return t('visitor')(shortId(cust.id || chat.id));
  }

  function channelLabel(ch) {
    var map = t('channel');
    return map[ch] || ch || '';
  }

  function renderHeader() {
    var me = state.me;
    if (!me) { return; }
    $('agent-name').textContent = me.name || shortId(me.id);
    var skills = Array.isArray(me.skills) && me.skills.length ? me.skills.join(', ') : t('noSkills');
    var parts = [];
    if (me.tenant) { parts.push(t('tenant') + ': ' + me.tenant); }
    parts.push(t('skills') + ': ' + skills);
    $('agent-meta').textContent = parts.join(' · ');
    renderCapacity();
  }

  function renderCapacity() {
    var me = state.me;
    var active = state.order.filter(function (id) { return !state.chats[id].ended; }).length;
    $('capacity').textContent = me && me.max_concurrent ? t('capacity')(active, me.max_concurrent) : '';
  }

  function renderStatus() {
    var btn = $('status');
    var online = state.status === 'online';
    btn.setAttribute('data-status', state.status);
    btn.setAttribute('aria-checked', online ? 'true' : 'false');
    btn.setAttribute('aria-label', t('statusLabel'));
    $('status-text').textContent = online ? t('online') : t('away');
  }

  function renderConn() {
    var box = $('conn');
    var s = conn.state;
    box.setAttribute('data-state', s === 'idle' ? 'connecting' : s);
    var text = {
      idle: t('connConnecting'),
      connecting: t('connConnecting'),
      open: t('connOpen'),
      reconnecting: t('connReconnecting'),
      offline: t('connOffline')
    }[s];
    $('conn-text').textContent = text || '';
  }

  function renderChatList() {
    var ul = $('chats');
    // Keep keyboard focus on the same chat across the rebuild.
    var active = document.activeElement;
    var focusedLi = active && ul.contains(active) && active.closest ? active.closest('.chat') : null;
    var focusedId = focusedLi ? focusedLi.getAttribute('data-conversation-id') : null;
    ul.textContent = '';
    state.order.forEach(function (id) {
      var chat = state.chats[id];
      var li = el('li', 'chat');
      li.setAttribute('data-conversation-id', id);
      if (chat.ended) { li.setAttribute('data-ended', 'true'); }
      var current = state.selected === id;
      if (current) { li.setAttribute('aria-current', 'true'); }

      var btn = el('button', 'chat-item');
      btn.type = 'button';
      if (current) { btn.setAttribute('aria-current', 'true'); }
      var name = customerName(chat);
      var cust = chat.conversation.customer || {};
      var initial = cust.name ? Array.from(cust.name.trim())[0] || '?' : (lang === 'zh' ? '访' : 'V');
      var avatar = el('span', 'chat-avatar', initial.toUpperCase());
      avatar.setAttribute('aria-hidden', 'true');
      btn.appendChild(avatar);
      btn.appendChild(el('span', 'chat-name', name));

      var side = el('span', 'chat-side');
      side.appendChild(el('span', 'chat-time', formatTime(chat.lastAt)));
      btn.appendChild(side);

      var preview = el('span', 'chat-preview');
      if (chat.typingUntil > Date.now()) {
        preview.appendChild(el('span', 'typing-mini', t('typingShort')));
      } else if (chat.ended) {
        preview.textContent = t('ended')[chat.ended] || t('ended').other;
      } else {
        var last = chat.seqs.length ? chat.messages[chat.seqs[chat.seqs.length - 1]] : null;
        preview.textContent = !last ? '' : last.text.trim() || !(last.attachments && last.attachments.length)
          ? last.text.slice(0, 80)
          : t('attachmentPreview')(last.attachments.map(function (a) { return String(a.name || ''); })).slice(0, 80);
      }
      btn.appendChild(preview);

      var side2 = el('span', 'chat-side');
      side2.appendChild(el('span', 'channel', channelLabel(chat.conversation.channel)));
      if (chat.unread > 0) {
        var badge = el('span', 'unread', chat.unread > 99 ? '99+' : chat.unread);
        badge.setAttribute('aria-label', chat.unread + (lang === 'zh' ? ' 条未读' : ' unread'));
        side2.appendChild(badge);
      }
      btn.appendChild(side2);

      btn.addEventListener('click', function () { select(id); });
      li.appendChild(btn);
      ul.appendChild(li);
      if (focusedId === id) { btn.focus(); }
    });
    $('chats-empty').hidden = state.order.length > 0;
    renderCapacity();
  }

  // Rebuilds the chat pane for the selected chat. full=true also rebuilds the transcript.
  function renderSelected(full) {
    var chat = state.chats[state.selected];
    $('no-chat').hidden = !!chat;
    $('chat-view').hidden = !chat;
    if (!chat) { return; }
    var c = chat.conversation;

    $('chat-title').textContent = customerName(chat);
    var meta = [channelLabel(c.channel)];
    if (c.skill_group) { meta.push(t('skillGroup') + ': ' + c.skill_group); }
    if (c.priority != null) { meta.push(t('priority') + ': ' + c.priority); }
    if (c.created_at) { meta.push(t('started') + ' ' + formatTime(c.created_at, true)); }
    $('chat-meta').textContent = meta.join(' · ');
    var cust = c.customer || {};
    var contact = [cust.email, cust.phone].filter(Boolean);
    $('chat-contact').textContent = contact.join(' · ');
    $('chat-contact').hidden = !contact.length;

    renderCustomerAttributes(cust);

    var handoff = $('handoff');
    handoff.hidden = !c.handoff_reason;
    handoff.textContent = c.handoff_reason ? t('handoff')(handoffReason(c.handoff_reason)) : '';
    if (c.handoff_reason) {
      handoff.setAttribute('data-reason', c.handoff_reason);
    } else {
      handoff.removeAttribute('data-reason');
    }

    renderNotes(chat);
    refreshAssist(chat);

    $('chat-ended').hidden = !chat.ended;
    $('chat-ended-text').textContent = chat.ended ? (t('ended')[chat.ended] || t('ended').other) : '';

    var disabled = !!chat.ended;
    $('reply').disabled = disabled;
    $('send').disabled = disabled;
    $('attach').disabled = disabled;
    $('transfer').disabled = disabled || chat.closing;
    $('close-chat').disabled = disabled || chat.closing;
    if (disabled) { hideTransferForm(); }

    if (full) {
      var tr = $('transcript');
      tr.setAttribute('aria-live', 'off'); // do not read the whole history out loud
      tr.textContent = '';
      chat.seqs.forEach(function (seq) { tr.appendChild(buildMessageEl(chat.messages[seq])); });
      chat.pendingOrder.forEach(function (cid) { tr.appendChild(buildPendingEl(chat.pending[cid])); });
      scrollTranscript(true);
      setTimeout(function () { tr.setAttribute('aria-live', 'polite'); }, 0);
    } else {
      // refresh pending states (e.g. failed)
      chat.pendingOrder.forEach(function (cid) {
        var node = $('transcript').querySelector('.msg[data-client-msg-id="' + cssEscape(cid) + '"]');
        if (node) { node.parentNode.replaceChild(buildPendingEl(chat.pending[cid]), node); }
      });
    }
    renderTyping();
  }

  // A handoff reason code in words; an unknown code as it is. A routing note after the code
  // (e.g. "complaint (routing policy failed, built-in used)") is kept.
  function handoffReason(reason) {
    var m = /^([a-z_]+)(.*)$/.exec(String(reason));
    var label = m && t('handoffReasons')[m[1]];
    return label ? label + m[2] : String(reason);
  }

  // VIP level and CRM tags from the customer's attributes, when there are any.
  function renderCustomerAttributes(cust) {
    var box = $('chat-customer');
    box.textContent = '';
    var vip = Number(cust.vip_level);
    if (vip > 0) { box.appendChild(el('span', 'vip', 'VIP ' + vip)); }
    var tags = Array.isArray(cust.crm_tags) ? cust.crm_tags.filter(function (x) { return typeof x === 'string'; }) : [];
    if (tags.length) {
      box.appendChild(el('span', 'muted', t('crmTags') + ':'));
      tags.forEach(function (tag) { box.appendChild(el('span', 'crm-tag', tag)); });
    }
    box.hidden = !box.firstChild;
  }

  // The bot's decision in one line: "answer · FAQ zh-ship-fee · 97%", "handoff · complaint".
  function decisionText(meta) {
    var parts = [meta.decision];
    if (meta.faq_id) { parts.push('FAQ ' + meta.faq_id); }
    if (typeof meta.confidence === 'number' && meta.confidence > 0) {
      parts.push(Math.round(meta.confidence * 100) + '%');
    }
    if (meta.reason && meta.reason !== 'faq_match') { parts.push(meta.reason); }
    return parts.join(' · ');
  }

  function buildDecisionEl(meta) {
    var node = el('div', 'msg-decision', decisionText(meta));
    node.setAttribute('data-decision', meta.decision);
    var intent = meta.intent;
    if (intent && intent.label) {
      var score = typeof intent.score === 'number' ? ' (' + Math.round(intent.score * 100) + '%)' : '';
      node.title = t('intent') + intent.label + score + (meta.skill_hint ? ' · ' + meta.skill_hint : '');
    }
    return node;
  }

  // "⚑ flagged: words", "masked", "⚑ asked for a person (sensitive word)".
  function buildSensitiveEl(sensitive) {
    var words = Array.isArray(sensitive.words) ? sensitive.words.filter(function (w) { return typeof w === 'string'; }) : [];
    var labels = t('sensitive');
    var label = sensitive.action === 'flag' ? labels.flag(words) : (labels[sensitive.action] || sensitive.action);
    var node = el('span', 'sensitive', label);
    node.setAttribute('data-sensitive', sensitive.action);
    if (sensitive.action !== 'flag' && words.length) { node.title = words.join(', '); }
    return node;
  }

  // Replies to webhook channels (WeChat, Douyin, app push) go through an outbox; the server tells
  // the console how each one fares, so a failed delivery is never silent.
  function onDelivery(f) {
    var chat = state.chats[f.conversation_id];
    if (!chat || typeof f.seq !== 'number') { return; }
    chat.deliveries = chat.deliveries || {};
    chat.deliveries[f.seq] = { state: f.state, code: f.code || null, attempts: f.attempts || 0 };
    if (state.selected !== f.conversation_id) { return; }
    var node = $('transcript').querySelector('.msg[data-seq="' + f.seq + '"]');
    if (!node) { return; }
    var old = node.querySelector('.msg-delivery');
    var fresh = buildDeliveryEl(chat.deliveries[f.seq]);
    if (old) { node.replaceChild(fresh, old); } else { node.appendChild(fresh); }
  }

  function buildDeliveryEl(d) {
    var words = t('delivery');
    var text = words[d.state] || d.state;
    if (d.state === 'failed' && d.code) { text += ' (' + d.code + ')'; }
    var node = el('div', 'msg-delivery', text);
    node.setAttribute('data-delivery', d.state);
    return node;
  }

  function buildMessageEl(m) {
    var row = el('div', 'msg');
    row.setAttribute('data-sender', m.sender);
    row.setAttribute('data-seq', String(m.seq));
    var chat = state.chats[state.selected];

    if (m.sender !== 'system') {
      var label = el('div', 'msg-label');
      var who = m.sender === 'customer' && chat ? customerName(chat) : t('sender')[m.sender];
      label.appendChild(el('span', null, who));
      if (m.sender === 'bot') { label.appendChild(el('span', 'tag', t('botTag'))); }
      var sensitive = m.meta && m.meta.sensitive;
      if (sensitive && typeof sensitive.action === 'string') { label.appendChild(buildSensitiveEl(sensitive)); }
      row.appendChild(label);
    }
    var bubble = el('div', 'msg-bubble', m.text);
    row.appendChild(bubble);
    appendAttachments(row, m.text, m.attachments);
    if (m.sender === 'bot' && m.meta && typeof m.meta.decision === 'string') {
      row.appendChild(buildDecisionEl(m.meta));
    }
    if (m.suggestions && m.suggestions.length) {
      row.appendChild(el('div', 'msg-suggestions', t('suggested')(m.suggestions)));
    }
    if (m.sender !== 'system') {
      row.appendChild(el('div', 'msg-meta', formatTime(m.at)));
    }
    var delivery = chat && chat.deliveries && chat.deliveries[m.seq];
    if (delivery) { row.appendChild(buildDeliveryEl(delivery)); }
    return row;
  }

  function buildPendingEl(p) {
    var row = el('div', 'msg');
    row.setAttribute('data-sender', 'agent');
    row.setAttribute('data-client-msg-id', p.id);
    row.setAttribute('data-state', p.state);
    var label = el('div', 'msg-label');
    label.appendChild(el('span', null, t('sender').agent));
    row.appendChild(label);
    row.appendChild(el('div', 'msg-bubble', p.text));
    appendAttachments(row, p.text, p.attachments);
    row.appendChild(el('div', 'msg-meta', p.state === 'failed' ? t('failed') : t('sending')));
    return row;
  }

  function insertMessageEl(chat, m) {
    var tr = $('transcript');
    var node = buildMessageEl(m);
    var follow = nearBottom();
    var kids = tr.children;
    var i = kids.length - 1;
    for (; i >= 0; i--) {
      var s = toSeq(kids[i].getAttribute('data-seq'));
      if (s === null) { continue; } // pending replies stay last
      if (s < m.seq) { break; }
    }
    tr.insertBefore(node, kids[i + 1] || null);
    scrollTranscript(follow);
  }

  function insertPendingEl(p) {
    $('transcript').appendChild(buildPendingEl(p));
  }

  function nearBottom() {
    var tr = $('transcript');
    return tr.scrollHeight - tr.scrollTop - tr.clientHeight < 80;
  }

  function scrollTranscript(force) {
    var tr = $('transcript');
    if (force) { tr.scrollTop = tr.scrollHeight; }
  }

  function renderTyping() {
    var chat = state.chats[state.selected];
    $('typing').hidden = !(chat && chat.typingUntil > Date.now());
  }

  var errorTimer = null;
  function showChatError(text) {
    var box = $('chat-error');
    box.textContent = text;
    box.hidden = false;
    clearTimeout(errorTimer);
    errorTimer = setTimeout(function () { box.hidden = true; }, 8000);
  }

  var globalTimer = null;
  function showGlobalError(text) {
    var box = $('global-error');
    box.textContent = text;
    box.hidden = false;
    clearTimeout(globalTimer);
    globalTimer = setTimeout(function () { box.hidden = true; }, 8000);
  }

  function updateTitle() {
    var total = 0;
    state.order.forEach(function (id) { total += state.chats[id].unread; });
    document.title = (total ? '(' + total + ') ' : '') + t('pageTitle');
  }

  // -----------------------------------------------------------------------------------------
  // Attachments: a picked, dropped or pasted file is uploaded at once (the raw file as the
  // body, with progress) and waits in the tray of its chat until the next reply carries it.
  // -----------------------------------------------------------------------------------------

  var MAX_ATTACHMENTS = 10;
  var ICON_FILE = '<svg viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="2" ' +
    'stroke-linecap="round" stroke-linejoin="round" aria-hidden="true" focusable="false">' +
    '<path d="M14 3H6a1 1 0 0 0-1 1v16a1 1 0 0 0 1 1h12a1 1 0 0 0 1-1V8z"/><path d="M14 3v5h5M12 11v6M9 14l3 3 3-3"/></svg>';

  function addFiles(list) {
    var chat = state.chats[state.selected];
    if (!chat || chat.ended) { return; }
    var files = Array.prototype.slice.call(list || []);
    for (var i = 0; i < files.length; i++) {
      if (chat.uploads.length >= MAX_ATTACHMENTS) {
        showChatError(t('errors').too_many_attachments);
        break;
      }
      // { file, state: 'uploading'|'ready'|'failed', progress, view, error, xhr, el, preview }
      var u = { file: files[i], state: 'uploading', progress: 0, view: null, error: null, xhr: null };
      u.el = buildUpload(chat, u);
      chat.uploads.push(u);
      upload(u);
    }
    renderTray();
  }

  function upload(u) {
    u.state = 'uploading';
    u.progress = 0;
    u.error = null;
    renderUpload(u);
    var xhr = new XMLHttpRequest();
    u.xhr = xhr;
    xhr.open('POST', ORIGIN + '/v1/agent/attachments?name=' + encodeURIComponent(u.file.name || 'file'));
    xhr.setRequestHeader('Authorization', 'Bearer ' + state.token);
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
        uploadDone(u, 'failed', (body && body.code) || (xhr.status === 413 ? 'too_large' : 'generic'));
      }
    };
    xhr.onerror = function () { uploadDone(u, 'failed', 'network'); };
    xhr.send(u.file);
  }

  function uploadDone(u, st, error, view) {
    u.xhr = null;
    u.state = st;
    u.error = error;
    u.view = view || null;
    renderUpload(u);
  }

  function removeUpload(chat, u) {
    var i = chat.uploads.indexOf(u);
    if (i >= 0) { chat.uploads.splice(i, 1); }
    if (u.xhr) { u.xhr.abort(); }
    if (u.preview && window.URL && URL.revokeObjectURL) { URL.revokeObjectURL(u.preview); }
    if (u.el.parentNode) { u.el.parentNode.removeChild(u.el); }
    $('attach-tray').hidden = !$('attach-tray').children.length;
  }

  // The tray shows the selected chat's uploads.
  function renderTray() {
    var tray = $('attach-tray');
    var chat = state.chats[state.selected];
    tray.textContent = '';
    (chat ? chat.uploads : []).forEach(function (u) {
      renderUpload(u);
      tray.appendChild(u.el);
    });
    tray.hidden = !tray.children.length;
  }

  function buildUpload(chat, u) {
    var row = el('div', 'upload');
    if (/^image\//.test(u.file.type) && window.URL && URL.createObjectURL) {
      u.preview = URL.createObjectURL(u.file);
      var img = el('img', 'upload-preview');
      img.src = u.preview;
      img.alt = '';
      row.appendChild(img);
    }
    var body = el('div', 'upload-body');
    body.appendChild(el('span', 'upload-name', u.file.name || 'file'));
    body.appendChild(el('span', 'upload-info'));
    var bar = el('div', 'upload-progress');
    bar.appendChild(el('span'));
    body.appendChild(bar);
    row.appendChild(body);
    var retry = el('button', 'upload-retry');
    retry.type = 'button';
    retry.addEventListener('click', function () { upload(u); });
    row.appendChild(retry);
    var remove = el('button', 'upload-remove', '×');
    remove.type = 'button';
    remove.addEventListener('click', function () {
      removeUpload(chat, u);
      $('reply').focus();
    });
    row.appendChild(remove);
    return row;
  }

  function renderUpload(u) {
    var row = u.el;
    row.setAttribute('data-state', u.state);
    if (u.error) { row.setAttribute('data-error', u.error); } else { row.removeAttribute('data-error'); }
    var pct = Math.round(u.progress * 100);
    var info = row.querySelector('.upload-info');
    if (u.state === 'uploading') {
      info.textContent = t('uploading')(pct);
    } else if (u.state === 'failed') {
      var errors = t('uploadErrors');
      info.textContent = errors[u.error] || errors.generic;
    } else {
      info.textContent = formatSize(u.view && u.view.size != null ? u.view.size : u.file.size);
    }
    row.querySelector('.upload-progress span').style.width = pct + '%';
    var retry = row.querySelector('.upload-retry');
    retry.textContent = t('retryUpload');
    retry.hidden = u.state !== 'failed';
    var remove = row.querySelector('.upload-remove');
    remove.setAttribute('aria-label', t('removeFile')(u.file.name || 'file'));
    remove.title = remove.getAttribute('aria-label');
  }

  function formatSize(bytes) {
    var n = Number(bytes);
    if (!isFinite(n) || n < 0) { return ''; }
    if (n < 1024) { return n + ' B'; }
    if (n < 1024 * 1024) { return Math.round(n / 1024) + ' KB'; }
    return (n / (1024 * 1024)).toFixed(1) + ' MB';
  }

  // Signed links relative to the server; anything but a path or http(s) is refused.
  function fileUrl(url) {
    if (typeof url !== 'string') { return null; }
    if (/^\/(?![\/\\])/.test(url)) { return ORIGIN + url; }
    return /^https?:\/\//i.test(url) ? url : null;
  }

  function validAttachments(list) {
    return (Array.isArray(list) ? list : []).filter(function (a) {
      return a && typeof a === 'object' && typeof a.id === 'string' && fileUrl(a.url);
    }).slice(0, MAX_ATTACHMENTS);
  }

  // Links to files are signed for an hour. The selected chat's attachments get fresh ones from
  // the server once theirs are RENEW_AFTER old (checked every few minutes), and at once when an
  // image fails to load (at most every RENEW_FORCED_GAP, so a file that is gone for good does not
  // loop). A seq the server no longer has attachments for is left as it is.
  var RENEW_AFTER = 45 * 60 * 1000;
  var RENEW_FORCED_GAP = 30 * 1000;
  var renewal = { running: false, forcedAt: 0 };

  function renewLinks(force) {
    var chat = state.chats[state.selected];
    if (renewal.running || !chat || !state.token) { return; }
    var now = Date.now();
    if (force) {
      if (now - renewal.forcedAt < RENEW_FORCED_GAP) { return; }
      renewal.forcedAt = now;
    }
    var seqs = Object.keys(chat.messages).filter(function (seq) {
      var m = chat.messages[seq];
      return m.attachments && m.attachments.length && !m.linksGone &&
        (force || now - (m.linksAt || 0) >= RENEW_AFTER);
    }).slice(-50);
    if (!seqs.length) { return; }
    renewal.running = true;
    var path = '/v1/agent/attachments?conversation_id=' + encodeURIComponent(chat.conversation.id) +
      '&seqs=' + seqs.join(',');
    api(path, state.token).then(function (body) {
      var renewed = {};
      (body && Array.isArray(body.messages) ? body.messages : []).forEach(function (m) {
        var msg = chat.messages[m.seq];
        var fresh = validAttachments(m.attachments);
        if (msg && fresh.length) {
          msg.attachments = fresh;
          msg.linksAt = Date.now();
          renewed[m.seq] = true;
        }
      });
      seqs.forEach(function (seq) {
        if (!renewed[seq]) { chat.messages[seq].linksGone = true; }
      });
      if (state.chats[state.selected] === chat) { renderSelected(true); }
    }).catch(function () {
      // The next round tries again.
    }).then(function () {
      renewal.running = false;
    });
  }

  // Images as thumbnails opening the full image in a new tab, other files as a download link
  // with name and size. A message of attachments only has no text bubble.
  function appendAttachments(row, text, list) {
    if (!list || !list.length) { return; }
    var box = el('div', 'msg-atts');
    list.forEach(function (a) {
      var name = typeof a.name === 'string' ? a.name : '';
      var link = el('a', 'att');
      link.href = fileUrl(a.url);
      link.target = '_blank';
      link.rel = 'noopener noreferrer';
      link.setAttribute('data-attachment-id', a.id);
      var thumb = a.kind === 'image' ? fileUrl(a.thumbnail_url) || fileUrl(a.url) : null;
      if (thumb) {
        link.className = 'att att-image';
        var img = el('img');
        var w = Number(a.width), h = Number(a.height);
        if (w > 0 && h > 0) { // room kept before it loads
          var scale = Math.min(1, 240 / w, 240 / h);
          img.width = Math.max(1, Math.round(w * scale));
          img.height = Math.max(1, Math.round(h * scale));
        }
        img.alt = name;
        img.onerror = function () { renewLinks(true); };
        img.src = thumb;
        link.appendChild(img);
        link.title = t('openImage')(name);
      } else {
        link.className = 'att att-file';
        link.setAttribute('download', name);
        var icon = el('span');
        icon.innerHTML = ICON_FILE; // constant markup
        link.appendChild(icon.firstChild);
        var label = el('span', 'att-text');
        label.appendChild(el('span', 'att-name', name));
        label.appendChild(el('span', 'att-size', formatSize(a.size)));
        link.appendChild(label);
        link.title = t('download')(name);
      }
      link.setAttribute('aria-label', link.title);
      box.appendChild(link);
    });
    row.appendChild(box);
    if (!String(text || '').trim()) { row.setAttribute('data-caption', 'none'); }
  }

  // -----------------------------------------------------------------------------------------
  // Wiring
  // -----------------------------------------------------------------------------------------

  function init() {
    $('signin-form').addEventListener('submit', function (e) {
      e.preventDefault();
      signIn($('token').value);
    });
    var toggles = document.querySelectorAll('.lang-toggle');
    for (var i = 0; i < toggles.length; i++) {
      toggles[i].addEventListener('click', function () { setLanguage(lang === 'zh' ? 'en' : 'zh'); });
    }
    $('signout').addEventListener('click', function () { signOut(); });
    $('status').addEventListener('click', toggleStatus);
    $('reply-form').addEventListener('submit', function (e) {
      e.preventDefault();
      sendReply();
    });
    $('reply').addEventListener('keydown', onReplyKeydown);
    $('reply').addEventListener('input', onReplyInput);
    $('reply').addEventListener('blur', function () { setTimeout(closeCanned, 150); });
    $('close-chat').addEventListener('click', closeChat);
    $('transfer').addEventListener('click', function () {
      if ($('transfer-form').hidden) { showTransferForm(); } else { hideTransferForm(); }
    });
    $('transfer-form').addEventListener('submit', function (e) {
      e.preventDefault();
      submitTransfer();
    });
    $('transfer-cancel').addEventListener('click', function () {
      hideTransferForm();
      $('chat-error').hidden = true;
      $('transfer').focus();
    });
    $('transfer-form').addEventListener('keydown', function (e) {
      if (e.key === 'Escape') {
        hideTransferForm();
        $('transfer').focus();
      }
    });
    $('dismiss-chat').addEventListener('click', dismissChat);
    $('attach').addEventListener('click', function () { $('attach-file').click(); });
    $('attach-file').addEventListener('change', function () {
      addFiles($('attach-file').files);
      $('attach-file').value = ''; // the same file can be picked again
    });
    $('reply').addEventListener('paste', function (e) {
      var files = e.clipboardData && e.clipboardData.files;
      if (files && files.length) { // a pasted image; pasted text goes on as usual
        e.preventDefault();
        addFiles(files);
      }
    });
    var view = $('chat-view'), dragDepth = 0;
    var dragging = function (e) {
      var types = e.dataTransfer && e.dataTransfer.types;
      return !!types && Array.prototype.indexOf.call(types, 'Files') >= 0;
    };
    view.addEventListener('dragenter', function (e) {
      if (!dragging(e)) { return; }
      e.preventDefault();
      dragDepth++;
      view.setAttribute('data-drag', 'true');
    });
    view.addEventListener('dragover', function (e) {
      if (dragging(e)) { e.preventDefault(); }
    });
    view.addEventListener('dragleave', function () {
      if (--dragDepth <= 0) {
        dragDepth = 0;
        view.removeAttribute('data-drag');
      }
    });
    view.addEventListener('drop', function (e) {
      dragDepth = 0;
      view.removeAttribute('data-drag');
      if (!dragging(e)) { return; }
      e.preventDefault();
      addFiles(e.dataTransfer.files);
    });

    document.addEventListener('visibilitychange', function () {
      if (document.visibilityState === 'visible') {
        var chat = state.chats[state.selected];
        if (chat && chat.unread) {
          chat.unread = 0;
          renderChatList();
          updateTitle();
        }
        reconnectNow();
      }
    });
    window.addEventListener('online', reconnectNow);
    // Keep relative times and typing hints fresh.
    setInterval(function () {
      if (state.order.length) { renderChatList(); }
    }, 60000);
    setInterval(function () { renewLinks(false); }, 5 * 60 * 1000);

    applyLanguage();

    var token = takeTokenFromFragment() || readSession(KEY_TOKEN);
    if (token) {
      signIn(token);
    } else {
      showSignin();
    }
  }

  window.SwitchboardConsole = { setLanguage: setLanguage };

  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', init);
  } else {
    init();
  }
})();
