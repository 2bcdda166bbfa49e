// weir console: a single-page app over weir's REST API. Navigation lives in
// the URL fragment (#/vod, #/vod/{id}, #/live, #/live/{id}, #/jobs,
// #/jobs/{id}, #/alerts; a player page also takes ?t=SECONDS), so every view can be
// bookmarked and the server needs to know no page but "/".
//
// Everything on screen that comes from the server is inserted as text
// (textContent), never as HTML.
//
// This file holds the shared helpers, the VOD and live views and the
// router. It exports the helpers on window.weir, where the other scripts
// (dag.js, jobs.js, timeline.js, alerts.js, loaded after it) find them and add their
// views; the router starts once every script has run (DOMContentLoaded).
(function () {
  'use strict';

  const weir = window.weir = window.weir || {};

  const TOKEN_KEY = 'weir.apiToken';
  const ENGINE_KEY = 'weir.playerEngine';
  const PUBLISH_KEY_PREFIX = 'weir.publish.';
  const app = document.getElementById('app');

  // ---------------------------------------------------------------- DOM

  // h builds an element: props sets attributes (strings), properties
  // (booleans and functions as on* listeners), class and text; children
  // may be nodes, strings, arrays, or null/false to skip.
  function h(tag, props, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (v == null || v === false) continue;
      if (k === 'class') el.className = v;
      else if (k === 'text') el.textContent = v;
      else if (k === 'dataset') Object.assign(el.dataset, v);
      else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
      else if (v === true) el.setAttribute(k, '');
      else el.setAttribute(k, String(v));
    }
    appendAll(el, children);
    return el;
  }

  function appendAll(el, children) {
    for (const c of children.flat(Infinity)) {
      if (c == null || c === false) continue;
      el.append(c instanceof Node ? c : String(c));
    }
  }

  // fill replaces el's children, skipping null and flattening arrays.
  function fill(el, ...children) {
    el.replaceChildren();
    appendAll(el, children);
  }

  function setNotice(el, kind, ...content) {
    el.className = 'notice' + (kind ? ' ' + kind : '');
    el.replaceChildren();
    appendAll(el, content);
  }

  function progressBar(big) {
    const fill = h('span');
    const el = h('div', { class: big ? 'bar big' : 'bar', role: 'progressbar', 'aria-valuemin': '0', 'aria-valuemax': '100' }, fill);
    return {
      el,
      set(pct) {
        const v = Math.max(0, Math.min(100, Number(pct) || 0));
        fill.style.width = v.toFixed(1) + '%';
        el.setAttribute('aria-valuenow', v.toFixed(0));
      },
    };
  }

  // copyable shows a value in code with a Copy button.
  function copyable(value, label) {
    const code = h('code', { text: value });
    const btn = h('button', {
      type: 'button', class: 'ghost small', text: 'Copy', 'aria-label': 'Copy ' + (label || 'value'),
      onclick: async () => {
        try {
          await navigator.clipboard.writeText(value);
          btn.textContent = 'Copied';
        } catch (e) {
          // Clipboard access needs a secure context; select the text instead.
          const range = document.createRange();
          range.selectNodeContents(code);
          const sel = window.getSelection();
          sel.removeAllRanges();
          sel.addRange(range);
          btn.textContent = 'Selected';
        }
        setTimeout(() => { btn.textContent = 'Copy'; }, 1500);
      },
    });
    return h('div', { class: 'copy' }, code, btn);
  }

  function facts(pairs) {
    const dl = h('dl', { class: 'facts' });
    for (const [k, v] of pairs) {
      if (v == null || v === '') continue;
      dl.append(h('dt', { text: k }), h('dd', null, v));
    }
    return dl;
  }

  // ---------------------------------------------------------- formatting

  function fmtTime(iso) {
    if (!iso) return '—';
    const d = new Date(iso);
    return isNaN(d) ? String(iso) : d.toLocaleString();
  }

  // fmtClock is the local time of day, to the millisecond, for stage
  // timestamps that are often a fraction of a second apart.
  function fmtClock(iso) {
    if (!iso) return '—';
    const d = new Date(iso);
    if (isNaN(d)) return String(iso);
    return d.toLocaleTimeString(undefined, { hour12: false }) + '.' + String(d.getMilliseconds()).padStart(3, '0');
  }

  function fmtAgo(iso) {
    if (!iso) return '—';
    const secs = (Date.now() - new Date(iso).getTime()) / 1000;
    if (!isFinite(secs)) return String(iso);
    if (secs < 5) return 'just now';
    if (secs < 60) return Math.round(secs) + ' s ago';
    if (secs < 3600) return Math.round(secs / 60) + ' min ago';
    if (secs < 86400) return Math.round(secs / 3600) + ' h ago';
    return new Date(iso).toLocaleDateString();
  }

  function fmtMS(ms) {
    if (ms == null || !isFinite(ms)) return '—';
    if (ms < 1000) return Math.round(ms) + ' ms';
    const s = ms / 1000;
    if (s < 60) return s.toFixed(s < 10 ? 2 : 1) + ' s';
    const m = Math.floor(s / 60);
    return m + ' min ' + Math.round(s - m * 60) + ' s';
  }

  // fmtDuration is a media duration: "42.5 s", "3:07", "1:02:09".
  function fmtDuration(secs) {
    if (secs == null || !isFinite(secs) || secs <= 0) return '—';
    if (secs < 60) return secs.toFixed(1) + ' s';
    const t = Math.round(secs);
    const hh = Math.floor(t / 3600), mm = Math.floor((t % 3600) / 60), ss = t % 60;
    const two = (n) => String(n).padStart(2, '0');
    return (hh ? hh + ':' + two(mm) : String(mm)) + ':' + two(ss);
  }

  // renditions names a title's ladder rungs: "1080p · 720p · 360p".
  function renditions(names) {
    return names && names.length ? names.join(' · ') : '—';
  }

  function fmtBytes(n) {
    if (n == null || !isFinite(n)) return '—';
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return (i === 0 ? n : n.toFixed(n < 10 ? 1 : 0)) + ' ' + units[i];
  }

  function fmtBitrate(bps) {
    if (!bps) return '—';
    return bps >= 1e6 ? (bps / 1e6).toFixed(2) + ' Mb/s' : Math.round(bps / 1e3) + ' kb/s';
  }

  const statusKinds = {
    ready: 'ok', vod: 'ok', live: 'ok live', complete: 'ok',
    uploaded: 'info', processing: 'info', transcoding: 'info', pending: 'info', running: 'info',
    created: 'warn', cancelled: 'warn', failed: 'bad',
  };
  const statusLabels = { created: 'waiting for publisher' };

  // statusPill shows a status; stage tables pass raw to show the stage's
  // own name rather than its friendlier label.
  function statusPill(status, raw) {
    const label = (!raw && statusLabels[status]) || status || 'unknown';
    return h('span', { class: 'pill ' + (statusKinds[status] || ''), text: label });
  }

  const vodPending = new Set(['uploaded', 'processing', 'transcoding']);
  const livePending = new Set(['created', 'live']);

  // ---------------------------------------------------------------- API

  class APIError extends Error {
    constructor(status, detail) {
      super(detail);
      this.status = status;
    }
  }

  function token() {
    try { return localStorage.getItem(TOKEN_KEY) || ''; } catch (e) { return ''; }
  }

  // problemDetail turns an error response (RFC 9457 problem documents from
  // weir) into one sentence for the user.
  function problemDetail(status, data, text) {
    let msg = (data && (data.detail || data.title)) || (text && text.slice(0, 300)) || ('HTTP ' + status);
    if (status === 401) msg += ' Set the API token (top right) and try again.';
    return msg;
  }

  async function api(method, path, body) {
    const headers = { Accept: 'application/json' };
    if (method !== 'GET' && method !== 'HEAD' && token()) headers.Authorization = 'Bearer ' + token();
    const init = { method, headers, cache: 'no-store' };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let resp;
    try {
      resp = await fetch(path, init);
    } catch (e) {
      throw new APIError(0, 'Cannot reach the weir server (' + e.message + ').');
    }
    const text = await resp.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
    if (!resp.ok) throw new APIError(resp.status, problemDetail(resp.status, data, text));
    return data;
  }

  // ------------------------------------------------------- view lifetime

  // A scope owns what a view started (pollers, players, intervals):
  // leaving the view disposes it, and late callbacks check alive.
  function newScope() {
    const s = {
      alive: true,
      disposers: [],
      onDispose(fn) { s.disposers.push(fn); },
      dispose() {
        s.alive = false;
        for (const fn of s.disposers.splice(0)) {
          try { fn(); } catch (e) { console.warn('weir console: dispose', e); }
        }
      },
    };
    return s;
  }

  // poll runs fn now and again after the delay (ms) it returns, until it
  // returns 0 or the scope ends. A throw retries after 5 s. The returned
  // kick() runs fn again at once (after the run in flight, if any), so a
  // view that just changed something need not wait out a slow interval.
  function poll(scope, fn) {
    let timer = null;
    let running = false;
    let again = false;
    const tick = async () => {
      timer = null;
      running = true;
      let next = 5000;
      try { next = await fn(); } catch (e) { console.warn('weir console: poll', e); }
      running = false;
      if (!scope.alive) return;
      if (again) {
        again = false;
        tick();
      } else if (next > 0) {
        timer = setTimeout(tick, next);
      }
    };
    scope.onDispose(() => { if (timer) clearTimeout(timer); });
    tick();
    return {
      kick() {
        if (!scope.alive) return;
        if (running) {
          again = true;
          return;
        }
        if (timer) clearTimeout(timer);
        tick();
      },
    };
  }

  // ------------------------------------------------------------- player

  function hlsJSAvailable() {
    return typeof window.Hls === 'function' && window.Hls.isSupported();
  }

  function nativeHLS(video) {
    return video.canPlayType('application/vnd.apple.mpegurl') !== '';
  }

  function preferredEngine() {
    try { return localStorage.getItem(ENGINE_KEY) || 'auto'; } catch (e) { return 'auto'; }
  }

  // chooseEngine prefers hls.js wherever Media Source Extensions work,
  // as hls.js itself recommends: it reports the variants and errors the
  // console shows, and behaves the same in every browser (recent Chrome
  // also claims native HLS). Native HLS is the fallback (iPhone Safari,
  // or a binary built without hls.js).
  function chooseEngine(pref, video) {
    const hjs = hlsJSAvailable();
    const nat = nativeHLS(video);
    if (pref === 'native') return nat ? 'native' : null;
    if (pref === 'hls.js') return hjs ? 'hls.js' : null;
    if (hjs) return 'hls.js';
    if (nat) return 'native';
    return null;
  }

  function unsupportedMessage(pref, video) {
    const bundled = document.body.dataset.hlsjs === 'bundled';
    if (pref === 'native' && !nativeHLS(video)) return 'This browser has no native HLS support; choose "auto" or "hls.js".';
    if (!bundled) return 'hls.js not bundled: run make build (it fetches hls.js), then restart weir. This browser cannot play HLS natively.';
    return 'This browser supports neither Media Source Extensions (needed by hls.js) nor native HLS.';
  }

  // mountPlayer plays url in box and reports what happens through
  // box.dataset (engine, manifest, fatal), the callbacks and its return
  // value, which the view disposes.
  // mountPlayer plays url in box. With fallback, a URL whose playlist
  // cannot be loaded or read (a server without generated masters) is
  // replaced by fallback, once.
  function mountPlayer(box, opts) {
    const { url, fallback, live, poster, onLevels, onLevel, onStatus } = opts;
    const pref = preferredEngine();
    const video = h('video', { controls: true, playsinline: true, preload: 'auto', poster: poster || null });
    // Start muted so browsers allow autoplay; the controls unmute.
    video.muted = true;
    video.autoplay = true;
    delete box.dataset.fatal;
    delete box.dataset.manifest;
    const engine = chooseEngine(pref, video);
    box.dataset.engine = engine || 'none';
    const report = (kind, msg) => onStatus && onStatus(kind, msg);

    if (!engine) {
      box.replaceChildren(h('div', { class: 'placeholder', text: unsupportedMessage(pref, video) }));
      box.dataset.fatal = 'unsupported';
      report('bad', unsupportedMessage(pref, video));
      return { engine: null, destroy() {} };
    }
    box.replaceChildren(video);
    const tryPlay = () => video.play().catch(() => { /* autoplay refused: the controls start it */ });

    if (engine === 'native') {
      video.addEventListener('loadedmetadata', () => {
        box.dataset.manifest = 'loaded';
        tryPlay();
      });
      let usedFallback = false;
      video.addEventListener('error', () => {
        const err = video.error;
        if (fallback && !usedFallback && !box.dataset.manifest) {
          usedFallback = true;
          video.src = fallback;
          return;
        }
        box.dataset.fatal = 'media: ' + (err ? err.code + ' ' + (err.message || '') : 'unknown');
        report('bad', 'The browser could not play this playlist (' + box.dataset.fatal + ').');
      });
      video.src = url;
      const bundled = document.body.dataset.hlsjs === 'bundled';
      report('', bundled ? 'Playing with the browser\'s native HLS support.' :
        'Playing with the browser\'s native HLS support (hls.js not bundled: run make build for variant details).');
      return {
        engine,
        video,
        destroy() {
          video.removeAttribute('src');
          video.load();
        },
      };
    }

    const Hls = window.Hls;
    const hls = new Hls({
      // A weir live playlist holds a DVR window of whole segments; start
      // three segments behind the edge, the HLS spec's advice.
      liveSyncDurationCount: 3,
      backBufferLength: live ? 120 : Infinity,
    });
    let mediaRecoveries = 0;
    let networkRetries = 0;
    let usedFallback = false;
    hls.on(Hls.Events.MANIFEST_PARSED, () => {
      box.dataset.manifest = 'loaded';
      if (onLevels) onLevels(hls.levels, hls);
      tryPlay();
    });
    hls.on(Hls.Events.LEVEL_SWITCHED, (_, data) => onLevel && onLevel(data.level, hls));
    hls.on(Hls.Events.FRAG_LOADED, () => { networkRetries = 0; });
    hls.on(Hls.Events.ERROR, (_, data) => {
      if (!data.fatal) return;
      if (fallback && !usedFallback && !box.dataset.manifest &&
          (data.details === Hls.ErrorDetails.MANIFEST_LOAD_ERROR || data.details === Hls.ErrorDetails.MANIFEST_PARSING_ERROR)) {
        usedFallback = true;
        report('warn', 'No master playlist (' + data.details + '); playing ' + fallback.split('/').pop() + ' without captions.');
        hls.loadSource(fallback);
        return;
      }
      if (data.type === Hls.ErrorTypes.MEDIA_ERROR && mediaRecoveries < 2) {
        mediaRecoveries++;
        hls.recoverMediaError();
        return;
      }
      if (data.type === Hls.ErrorTypes.NETWORK_ERROR && networkRetries < 5) {
        // A live playlist may not exist yet, or the server restarted:
        // retry with growing pauses before giving up.
        networkRetries++;
        report('warn', 'Network trouble (' + data.details + '); retrying…');
        setTimeout(() => hls.startLoad(), 1000 * networkRetries);
        return;
      }
      box.dataset.fatal = data.type + ': ' + data.details;
      report('bad', 'Playback stopped: ' + data.type + ' (' + data.details + ').');
      hls.destroy();
    });
    hls.loadSource(url);
    hls.attachMedia(video);
    report('', 'Playing with hls.js ' + (Hls.version || '') + '.');
    return { engine, video, hls, destroy() { hls.destroy(); } };
  }

  function engineSelect(onChange) {
    const sel = h('select', { 'aria-label': 'Player engine', title: 'How the console plays HLS' },
      h('option', { value: 'auto', text: 'auto' }),
      h('option', { value: 'hls.js', text: 'hls.js' }),
      h('option', { value: 'native', text: 'native' }));
    sel.value = preferredEngine();
    sel.addEventListener('change', () => {
      try { localStorage.setItem(ENGINE_KEY, sel.value); } catch (e) { /* private mode */ }
      onChange();
    });
    return h('label', { class: 'row muted' }, 'Player', sel);
  }

  // qualityControl lists hls.js levels in a select; "auto" lets hls.js
  // adapt to the bandwidth.
  function qualityControl() {
    const sel = h('select', { 'aria-label': 'Quality', disabled: true }, h('option', { value: '-1', text: 'auto' }));
    const now = h('span', { class: 'muted' });
    let hls = null;
    sel.addEventListener('change', () => { if (hls) hls.currentLevel = Number(sel.value); });
    return {
      el: h('span', { class: 'row' }, h('label', { class: 'row muted' }, 'Quality', sel), now),
      levels(levels, player) {
        hls = player;
        sel.replaceChildren(h('option', { value: '-1', text: 'auto' }));
        levels.forEach((l, i) => sel.append(h('option', { value: String(i), text: levelName(l) })));
        sel.disabled = levels.length < 2;
      },
      level(i, player) {
        const l = player.levels[i];
        // A media playlist played directly (live) is one level that
        // says nothing about itself.
        now.textContent = l && (l.height || l.bitrate) ? 'now ' + levelName(l) : '';
      },
      reset() {
        hls = null;
        sel.replaceChildren(h('option', { value: '-1', text: 'auto' }));
        sel.disabled = true;
        now.textContent = '';
      },
    };
  }

  function levelName(l) {
    const res = l.height ? l.height + 'p' : (l.name || 'level');
    return l.bitrate ? res + ' · ' + fmtBitrate(l.bitrate) : res;
  }

  // ------------------------------------------------------------- header

  async function checkReadiness() {
    const pill = document.getElementById('readiness');
    try {
      const resp = await fetch('/ready', { headers: { Accept: 'application/json' }, cache: 'no-store' });
      let body = {};
      try { body = await resp.json(); } catch (e) { body = {}; }
      if (resp.ok) {
        pill.className = 'pill ok';
        pill.textContent = 'ready';
        pill.title = 'GET /ready: every dependency answers';
      } else {
        const failed = body.failed || [];
        pill.className = 'pill bad';
        pill.textContent = 'not ready' + (failed.length ? ': ' + failed.join(', ') : '');
        const checks = body.checks || {};
        pill.title = Object.keys(checks).map((k) => k + ': ' + (checks[k].ok ? 'ok' : checks[k].error || 'failed')).join('\n') || 'GET /ready answered ' + resp.status;
      }
    } catch (e) {
      pill.className = 'pill bad';
      pill.textContent = 'unreachable';
      pill.title = 'GET /ready failed: ' + e.message;
    }
    setTimeout(checkReadiness, 10000);
  }

  function setupToken() {
    const toggle = document.getElementById('token-toggle');
    const panel = document.getElementById('token-panel');
    const input = document.getElementById('token-input');
    const paint = () => {
      toggle.textContent = token() ? 'API token ✓' : 'API token';
      toggle.title = token() ? 'A token is saved in this browser' : 'No token saved';
    };
    toggle.addEventListener('click', () => {
      panel.hidden = !panel.hidden;
      toggle.setAttribute('aria-expanded', String(!panel.hidden));
      if (!panel.hidden) {
        input.value = token();
        input.focus();
      }
    });
    document.getElementById('token-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      try {
        const v = input.value.trim();
        if (v) localStorage.setItem(TOKEN_KEY, v); else localStorage.removeItem(TOKEN_KEY);
      } catch (e) { alert('This browser does not let the console store the token: ' + e.message); }
      panel.hidden = true;
      toggle.setAttribute('aria-expanded', 'false');
      paint();
    });
    document.getElementById('token-forget').addEventListener('click', () => {
      try { localStorage.removeItem(TOKEN_KEY); } catch (e) { /* nothing stored */ }
      input.value = '';
      paint();
    });
    paint();
  }

  // ----------------------------------------------------------------- VOD

  // pagedList is a status-filtered, paged table body over GET path (/vod or
  // /streams). refresh reloads as many items as are shown, so pages added
  // with "Load more" keep updating too; rowFor makes one item's row; kick
  // asks the view's poller to refresh at once (used when the filter changes).
  function pagedList(scope, path, statuses, emptyText, rowFor, kick, cols = 5) {
    // path may carry a query of its own (/jobs?stream=...).
    const [basePath, baseQuery] = path.split('?');
    const filter = h('select', { 'aria-label': 'Filter by status' },
      ['', ...statuses].map((s) => h('option', { value: s, text: s || 'all statuses' })));
    const tbody = h('tbody');
    const listNote = h('div', { class: 'notice bad', role: 'alert' });
    const more = h('button', { type: 'button', class: 'ghost small', text: 'Load more', hidden: true });
    const state = { items: [], cursor: '', shown: 25, gen: 0 };

    async function fetchPage(cursor, limit) {
      const q = new URLSearchParams(baseQuery || '');
      q.set('limit', String(limit));
      if (filter.value) q.set('status', filter.value);
      if (cursor) q.set('cursor', cursor);
      return api('GET', basePath + '?' + q.toString());
    }

    async function refresh() {
      const gen = state.gen;
      const page = await fetchPage('', Math.min(1000, Math.max(25, state.shown)));
      if (gen !== state.gen || !scope.alive) return;
      state.items = page.items || [];
      state.cursor = page.next_cursor || '';
      setNotice(listNote, 'bad');
      render();
    }

    function render() {
      tbody.replaceChildren();
      if (state.items.length === 0) {
        tbody.append(h('tr', null, h('td', { colspan: String(cols), class: 'empty', text: emptyText(filter.value) })));
      }
      for (const it of state.items) tbody.append(rowFor(it));
      more.hidden = !state.cursor;
    }

    more.addEventListener('click', async () => {
      more.disabled = true;
      try {
        const page = await fetchPage(state.cursor, 25);
        state.items = state.items.concat(page.items || []);
        state.cursor = page.next_cursor || '';
        state.shown = state.items.length;
        render();
      } catch (e) {
        setNotice(listNote, 'bad', e.message);
      } finally {
        more.disabled = false;
      }
    });
    filter.addEventListener('change', () => {
      state.gen++;
      state.shown = 25;
      kick();
    });
    return { filter, tbody, listNote, more, state, refresh };
  }

  function vodListView(scope) {
    let poller = null;
    const kick = () => poller && poller.kick();
    // Upload form.
    const fileInput = h('input', { type: 'file', id: 'upload-file', name: 'file', required: true, accept: 'video/*,audio/*,.ts,.mkv,.flv,.mov,.mxf' });
    const titleInput = h('input', { type: 'text', id: 'upload-title', name: 'title', maxlength: '200', placeholder: 'defaults to the file name' });
    const submit = h('button', { type: 'submit', text: 'Upload' });
    const cancel = h('button', { type: 'button', class: 'ghost', text: 'Cancel', hidden: true });
    const bar = progressBar(true);
    const barLabel = h('div', { class: 'hint', id: 'upload-progress-label' });
    const barBox = h('div', { id: 'upload-progress', hidden: true }, bar.el, barLabel);
    const uploadNote = h('div', { class: 'notice', role: 'status' });
    const form = h('form', { id: 'upload-form', onsubmit: (ev) => { ev.preventDefault(); upload(); } },
      h('div', { class: 'row fields' },
        h('div', { class: 'field' }, h('label', { for: 'upload-file', text: 'Media file' }), fileInput),
        h('div', { class: 'field' }, h('label', { for: 'upload-title', text: 'Title' }), titleInput)),
      h('div', { class: 'row' }, submit, cancel),
      barBox, uploadNote);

    function upload() {
      const file = fileInput.files[0];
      if (!file) {
        setNotice(uploadNote, 'bad', 'Choose a file first.');
        return;
      }
      const fd = new FormData();
      const title = titleInput.value.trim();
      if (title) fd.append('title', title); // before the file, so the server has it early
      fd.append('file', file);
      const xhr = new XMLHttpRequest();
      xhr.open('POST', '/vod/upload');
      xhr.setRequestHeader('Accept', 'application/json');
      if (token()) xhr.setRequestHeader('Authorization', 'Bearer ' + token());
      const started = performance.now();
      // Leaving the page would abort the upload: ask first. Moving
      // around inside the console does not stop it.
      const guard = (ev) => { ev.preventDefault(); ev.returnValue = ''; };
      const busy = (on) => {
        if (on) window.addEventListener('beforeunload', guard);
        else window.removeEventListener('beforeunload', guard);
        submit.disabled = on;
        fileInput.disabled = on;
        titleInput.disabled = on;
        cancel.hidden = !on;
      };
      xhr.upload.addEventListener('progress', (e) => {
        if (!e.lengthComputable) return;
        bar.set((e.loaded / e.total) * 100);
        const secs = Math.max((performance.now() - started) / 1000, 0.001);
        barLabel.textContent = fmtBytes(e.loaded) + ' of ' + fmtBytes(e.total) + ' · ' +
          Math.floor((e.loaded / e.total) * 100) + ' % · ' + fmtBytes(e.loaded / secs) + '/s';
      });
      xhr.upload.addEventListener('load', () => {
        bar.set(100);
        barLabel.textContent = fmtBytes(file.size) + ' sent; the server is storing it…';
      });
      xhr.addEventListener('load', () => {
        busy(false);
        let data = null;
        try { data = JSON.parse(xhr.responseText); } catch (e) { data = null; }
        if (xhr.status >= 200 && xhr.status < 300 && data && data.stream_id) {
          barLabel.textContent = fmtBytes(file.size) + ' uploaded in ' + fmtMS(performance.now() - started) + '.';
          setNotice(uploadNote, 'ok', 'Uploaded "' + data.title + '" as ',
            h('a', { href: '#/vod/' + encodeURIComponent(data.stream_id), text: data.stream_id }),
            '. It is being transcoded; the list below follows its progress.');
          form.reset();
          kick();
        } else {
          barBox.hidden = true;
          setNotice(uploadNote, 'bad', 'Upload refused: ' + problemDetail(xhr.status, data, xhr.responseText));
        }
      });
      xhr.addEventListener('error', () => {
        busy(false);
        barBox.hidden = true;
        setNotice(uploadNote, 'bad', 'The upload failed: the connection to the server broke.');
      });
      xhr.addEventListener('abort', () => {
        busy(false);
        barBox.hidden = true;
        setNotice(uploadNote, 'warn', 'Upload cancelled.');
      });
      cancel.onclick = () => xhr.abort();
      busy(true);
      bar.set(0);
      barLabel.textContent = 'Starting upload of ' + fmtBytes(file.size) + '…';
      barBox.hidden = false;
      setNotice(uploadNote, '');
      xhr.send(fd);
    }

    // Import from a URL.
    const urlInput = h('input', { type: 'url', id: 'import-url', required: true, placeholder: 'https://example.com/episode.mp4' });
    const urlTitle = h('input', { type: 'text', id: 'import-title', maxlength: '200', placeholder: 'defaults to the URL\'s file name' });
    const importNote = h('div', { class: 'notice', role: 'status' });
    const importBtn = h('button', { type: 'submit', text: 'Import' });
    const importForm = h('form', {
      id: 'import-form',
      onsubmit: async (ev) => {
        ev.preventDefault();
        importBtn.disabled = true;
        try {
          const body = { url: urlInput.value.trim() };
          if (urlTitle.value.trim()) body.title = urlTitle.value.trim();
          const data = await api('POST', '/vod/upload', body);
          setNotice(importNote, 'ok', 'Queued ', h('a', { href: '#/vod/' + encodeURIComponent(data.stream_id), text: data.stream_id }),
            ': weir fetches the file and transcodes it.');
          importForm.reset();
          kick();
        } catch (e) {
          setNotice(importNote, 'bad', e.message);
        } finally {
          importBtn.disabled = false;
        }
      },
    },
    h('div', { class: 'row fields' },
      h('div', { class: 'field' }, h('label', { for: 'import-url', text: 'URL' }), urlInput),
      h('div', { class: 'field' }, h('label', { for: 'import-title', text: 'Title' }), urlTitle)),
    h('div', { class: 'row' }, importBtn), importNote);

    // The list.
    const list = pagedList(scope, '/vod', ['uploaded', 'processing', 'transcoding', 'ready', 'failed'],
      (status) => status ? 'No titles with status ' + status + '.' : 'No VOD titles yet: upload one above, or run weir vod upload FILE.',
      (it) => {
        const href = '#/vod/' + encodeURIComponent(it.stream_id);
        let progress = '';
        if (it.status === 'processing' || it.status === 'transcoding') {
          const b = progressBar();
          b.set(it.progress);
          progress = h('div', { class: 'row' }, b.el, h('span', { class: 'muted num', text: Math.floor(it.progress || 0) + ' %' }));
        } else if (it.status === 'uploaded') {
          progress = h('span', { class: 'muted', text: 'queued' });
        } else if (it.status === 'failed') {
          progress = h('span', { class: 'fail-reason', text: it.error || 'no reason given' });
        }
        return h('tr', { class: 'clickable', dataset: { id: it.stream_id, status: it.status }, onclick: (ev) => { if (ev.target.tagName !== 'A') location.hash = href; } },
          h('td', null, h('a', { href, text: it.title || it.stream_id })),
          h('td', null, statusPill(it.status)),
          h('td', { class: 'num duration', text: it.duration_s ? fmtDuration(it.duration_s) : '—' }),
          h('td', { class: 'renditions', text: renditions(it.variants_generated) }),
          h('td', { class: 'progress-cell' }, progress),
          h('td', { title: fmtTime(it.created_at), text: fmtAgo(it.created_at) }),
          h('td', { class: 'mono muted', text: it.stream_id }));
      }, kick, 7);
    const { filter, tbody, listNote, more, state, refresh } = list;
    const recorded = recordedLiveCard(scope);

    app.append(h('div', { class: 'stack' },
      h('section', { class: 'card' },
        h('div', { class: 'card-head' }, h('h2', { text: 'Upload a file' })),
        form,
        h('details', null, h('summary', { text: 'or import from a URL' }), importForm)),
      h('section', { class: 'card' },
        h('div', { class: 'card-head' }, h('h2', { text: 'VOD titles' }), h('span', { class: 'spacer' }), filter),
        listNote,
        h('div', { class: 'table-wrap' },
          h('table', { id: 'vod-table' },
            h('thead', null, h('tr', null, ['Title', 'Status', 'Duration', 'Renditions', 'Progress', 'Created', 'ID'].map((t) => h('th', { text: t })))),
            tbody)),
        h('div', { class: 'row' }, more)),
      recorded.el));

    // Poll fast while anything is on its way to ready, slowly otherwise
    // (to notice titles uploaded elsewhere).
    poller = poll(scope, async () => {
      recorded.refresh();
      try {
        await refresh();
      } catch (e) {
        setNotice(listNote, 'bad', 'Could not list VOD titles: ' + e.message);
        return 5000;
      }
      return state.items.some((it) => vodPending.has(it.status)) ? 1500 : 10000;
    });
  }

  // recordedLiveCard lists the live streams that ended and were kept as
  // recordings (GET /streams?status=vod), newest first. They are live
  // streams, not VOD titles: each links to its live page, which plays the
  // recording (vod.m3u8).
  function recordedLiveCard(scope) {
    const tbody = h('tbody');
    const note = h('div', { class: 'notice bad', role: 'alert' });
    const moreLink = h('a', { href: '#/live', text: 'all live streams →', hidden: true });
    const el = h('section', { class: 'card', id: 'recorded-card' },
      h('div', { class: 'card-head' }, h('h2', { text: 'Recorded live streams' }), h('span', { class: 'spacer' }), moreLink),
      h('p', { class: 'hint', text: 'Live streams that ended. Each stays playable from its live page, from the first kept segment to the end.' }),
      note,
      h('div', { class: 'table-wrap' },
        h('table', { id: 'recorded-table' },
          h('thead', null, h('tr', null, ['Title', 'Segments', 'Started', 'ID'].map((t) => h('th', { text: t })))),
          tbody)));
    async function refresh() {
      let page;
      try {
        page = await api('GET', '/streams?status=vod&limit=25');
      } catch (e) {
        setNotice(note, 'bad', 'Could not list recorded live streams: ' + e.message);
        return;
      }
      if (!scope.alive) return;
      setNotice(note, 'bad');
      const items = page.items || [];
      moreLink.hidden = !page.next_cursor;
      if (!items.length) {
        tbody.replaceChildren(h('tr', null, h('td', { colspan: '4', class: 'empty', text: 'No recorded live streams yet: a live stream appears here when it ends.' })));
        return;
      }
      tbody.replaceChildren(...items.map((it) => {
        const href = '#/live/' + encodeURIComponent(it.stream_id);
        return h('tr', { class: 'clickable', dataset: { id: it.stream_id, status: it.status }, onclick: (ev) => { if (ev.target.tagName !== 'A') location.hash = href; } },
          h('td', null, h('a', { href, text: it.title || it.stream_id })),
          h('td', { class: 'num', text: it.segment_count ? String(it.segment_count) : '—' }),
          h('td', { title: fmtTime(it.created_at), text: fmtAgo(it.created_at) }),
          h('td', { class: 'mono muted', text: it.stream_id }));
      }));
    }
    return { el, refresh };
  }

  // mountTimeline puts the results timeline (timeline.js) under a player,
  // or nothing when timeline.js is not loaded.
  function mountTimeline(scope, opts) {
    return weir.timeline ? weir.timeline.mount(scope, opts).el : null;
  }

  function vodDetailView(scope, id, query) {
    const title = h('h1', { text: id });
    const pill = h('span');
    const note = h('div', { class: 'notice', role: 'status' });
    const box = h('div', { class: 'player', id: 'player' }, h('div', { class: 'placeholder', text: 'Loading…' }));
    const playerNote = h('div', { class: 'hint', id: 'player-status' });
    const quality = qualityControl();
    const progressBox = h('div', { hidden: true });
    const bar = progressBar(true);
    const barLabel = h('div', { class: 'hint' });
    progressBox.append(bar.el, barLabel);
    const info = h('div');
    const variants = h('div');
    const stages = h('div');
    let player = null;
    let meta = null;
    let levels = [];
    let playing = -1;

    const startPlayer = () => {
      if (player) player.destroy();
      quality.reset();
      levels = [];
      playing = -1;
      player = mountPlayer(box, {
        url: '/hls/' + encodeURIComponent(id) + '/master.m3u8',
        live: false,
        poster: meta && meta.details && meta.details.thumbnail ? '/hls/' + meta.details.thumbnail : null,
        onLevels: (ls, hls) => {
          levels = ls;
          quality.levels(ls, hls);
          renderVariants();
        },
        onLevel: (i, hls) => {
          playing = i;
          quality.level(i, hls);
          renderVariants();
        },
        onStatus: (kind, msg) => {
          playerNote.className = kind ? 'notice ' + kind : 'hint';
          playerNote.textContent = msg;
        },
      });
    };
    scope.onDispose(() => player && player.destroy());

    function renderVariants() {
      const outputs = (meta && meta.details && meta.details.outputs) || {};
      const names = (meta && meta.variants_generated) || Object.keys(outputs);
      if (!names.length) {
        variants.replaceChildren(h('p', { class: 'muted', text: 'Variants appear once the title is ready.' }));
        return;
      }
      const current = levels[playing];
      const rows = names.map((name) => {
        const o = outputs[name] || {};
        const isPlaying = current && o.height && current.height === o.height && (!o.width || current.width === o.width);
        return h('tr', { dataset: { variant: name }, class: isPlaying ? 'playing' : null },
          h('td', null, h('strong', { text: name }), isPlaying ? [' ', h('span', { class: 'pill ok', text: 'playing' })] : null),
          h('td', { class: 'num', text: o.width ? o.width + '×' + o.height : 'audio' }),
          h('td', { class: 'num', text: fmtBitrate(o.average_bandwidth) }),
          h('td', { class: 'num', text: fmtBitrate(o.bandwidth) }),
          h('td', { class: 'mono muted codecs' }, [].concat(o.codecs || []).join(',').split(',').filter(Boolean).map((c) => h('div', { text: c }))),
          h('td', { class: 'num', text: o.segments != null ? String(o.segments) : '' }));
      });
      variants.replaceChildren(h('div', { class: 'table-wrap' }, h('table', { id: 'variants' },
        h('thead', null, h('tr', null, ['Variant', 'Size', 'Average', 'Peak', 'Codecs', 'Segments'].map((t) => h('th', { text: t })))),
        h('tbody', null, rows))));
    }

    function renderStages() {
      const times = Object.entries((meta && meta.stage_times) || {}).sort((a, b) => new Date(a[1]) - new Date(b[1]));
      if (!times.length) {
        stages.replaceChildren();
        return;
      }
      const t0 = new Date(times[0][1]).getTime();
      stages.replaceChildren(h('table', { id: 'stages' },
        h('thead', null, h('tr', null, h('th', { text: 'Stage' }), h('th', { text: 'At' }), h('th', { text: 'Since upload' }))),
        h('tbody', null, times.map(([stage, at]) => h('tr', null,
          h('td', null, statusPill(stage, true)),
          h('td', { class: 'num', title: fmtTime(at), text: fmtClock(at) }),
          h('td', { class: 'num', text: '+' + fmtMS(new Date(at).getTime() - t0) }))))));
    }

    function render() {
      title.textContent = meta.title || id;
      document.title = (meta.title || id) + ' · weir';
      pill.replaceChildren(statusPill(meta.status));
      if (vodPending.has(meta.status)) {
        progressBox.hidden = false;
        bar.set(meta.status === 'uploaded' ? 0 : meta.progress);
        barLabel.textContent = meta.status === 'uploaded' ? 'Queued for transcoding…' :
          meta.status + ': ' + Math.floor(meta.progress || 0) + ' % of this stage';
      } else {
        progressBox.hidden = true;
      }
      if (meta.status === 'failed') setNotice(note, 'bad', 'Processing failed: ' + (meta.error || 'no reason given'));
      else setNotice(note, '');
      const probe = (meta.details && meta.details.probe) || {};
      const source = [];
      if (probe.video) source.push(probe.video.codec + ' ' + probe.video.width + '×' + probe.video.height + ' @ ' + probe.video.frame_rate + ' fps');
      if (probe.audio) source.push(probe.audio.codec + ' ' + probe.audio.sample_rate + ' Hz × ' + probe.audio.channels);
      fill(info, facts([
        ['Stream id', h('span', { class: 'mono', text: meta.stream_id })],
        ['Created', fmtTime(meta.created_at)],
        ['Processing latency', meta.processing_latency_ms ? fmtMS(meta.processing_latency_ms) : null],
        ['First playable', meta.details && meta.details.first_playable_ms ? fmtMS(meta.details.first_playable_ms) : null],
        ['Source', source.join(', ') || null],
        ['Duration', probe.duration_s ? fmtMS(probe.duration_s * 1000) : null],
        ['Source file', meta.details && meta.details.source_filename ? meta.details.source_filename + (meta.details.source_size ? ' (' + fmtBytes(meta.details.source_size) + ')' : '') : (meta.source_url || null)],
      ]), meta.manifest_url ? [h('h3', { text: 'Master playlist' }), copyable(meta.manifest_url, 'playlist URL')] : null);
      renderVariants();
      renderStages();
    }

    app.append(
      h('div', { class: 'crumbs' }, h('a', { href: '#/vod', text: '← VOD titles' })),
      h('div', { class: 'card-head' }, title, pill),
      note,
      h('div', { class: 'grid' },
        h('div', { class: 'stack' },
          h('section', { class: 'card' }, box,
            h('div', { class: 'player-bar' }, quality.el, h('span', { class: 'spacer' }), engineSelect(() => { if (meta && meta.status === 'ready') startPlayer(); })),
            playerNote, progressBox),
          mountTimeline(scope, {
            stream: id,
            video: () => player && player.video,
            live: () => false,
            offset: () => 0,
            startAt: query.t,
          }),
          h('section', { class: 'card' }, h('h2', { text: 'Variants' }), variants)),
        h('div', { class: 'stack' },
          h('section', { class: 'card' }, h('h2', { text: 'Details' }), info),
          h('section', { class: 'card' }, h('h2', { text: 'Stage timestamps' }), stages))));

    poll(scope, async () => {
      try {
        meta = await api('GET', '/vod/' + encodeURIComponent(id) + '/metadata');
      } catch (e) {
        setNotice(note, 'bad', e.message);
        if (e.status === 404) {
          box.replaceChildren(h('div', { class: 'placeholder', text: 'No such title.' }));
          return 0;
        }
        return 5000;
      }
      if (!scope.alive) return 0;
      render();
      if (meta.status === 'ready') {
        if (!player) startPlayer();
        return 0;
      }
      if (meta.status === 'failed') {
        box.replaceChildren(h('div', { class: 'placeholder', text: 'Nothing to play: processing failed.' }));
        return 0;
      }
      if (!player) box.replaceChildren(h('div', { class: 'placeholder', text: 'The player starts when the title is ready.' }));
      return 1500;
    });
  }

  // ---------------------------------------------------------------- live

  function savePublish(resp) {
    try { sessionStorage.setItem(PUBLISH_KEY_PREFIX + resp.stream_id, JSON.stringify(resp)); } catch (e) { /* private mode */ }
  }

  function loadPublish(id) {
    try { return JSON.parse(sessionStorage.getItem(PUBLISH_KEY_PREFIX + id) || 'null'); } catch (e) { return null; }
  }

  // publishCard shows where and how to send media to a new stream: URLs,
  // OBS settings and ffmpeg command lines.
  function publishCard(resp) {
    const rtmp = resp.publish.rtmp;
    const cut = rtmp.lastIndexOf('/');
    const obsServer = rtmp.slice(0, cut);
    const key = resp.publish_key || rtmp.slice(cut + 1);
    const enc = '-c:v libx264 -preset veryfast -g 50 -keyint_min 50 -sc_threshold 0 \\\n  -c:a aac -b:a 128k';
    const srtURL = resp.publish.srt + (resp.publish.srt.includes('?') ? '&' : '?') + 'pkt_size=1316';
    return h('section', { class: 'card', id: 'publish-card' },
      h('div', { class: 'card-head' }, h('h2', { text: 'Publish to "' + (resp.title || resp.stream_id) + '"' }),
        h('span', { class: 'spacer' }), h('a', { href: '#/live/' + encodeURIComponent(resp.stream_id), text: 'Watch →' })),
      resp.source_url ? h('div', { class: 'notice', text: 'weir pulls this stream from ' + resp.source_url + '; nothing to publish. The settings below still work if you would rather push.' }) : null,
      h('div', { class: 'notice warn', text: 'The publish key is shown only now (this tab keeps it until you close it). Anyone who has it can publish to this stream until it ends.' }),
      h('h3', { text: 'RTMP' }), copyable(rtmp, 'RTMP URL'),
      h('h3', { text: 'SRT' }), copyable(resp.publish.srt, 'SRT URL'),
      h('h3', { text: 'OBS' }),
      facts([
        ['Settings → Stream', 'Service: Custom'],
        ['Server', h('span', { class: 'mono', text: obsServer })],
        ['Stream Key', h('span', { class: 'mono', text: key })],
        ['Settings → Output', 'x264 (or a hardware H.264 encoder), Keyframe Interval 2 s, AAC audio'],
        ['Over SRT instead', h('span', null, 'Server ', h('span', { class: 'mono', text: resp.publish.srt }), ', Stream Key empty')],
      ]),
      h('h3', { text: 'ffmpeg over RTMP' }),
      copyable('ffmpeg -re -i input.mp4 \\\n  ' + enc + ' \\\n  -f flv "' + rtmp + '"', 'ffmpeg RTMP command'),
      h('h3', { text: 'ffmpeg over SRT' }),
      copyable('ffmpeg -re -i input.mp4 \\\n  ' + enc + ' \\\n  -f mpegts "' + srtURL + '"', 'ffmpeg SRT command'),
      h('p', { class: 'hint' }, 'No file at hand? Replace ', h('code', { text: '-re -i input.mp4' }), ' with ',
        h('code', { text: '-re -f lavfi -i testsrc2=size=1280x720:rate=25 -f lavfi -i sine' }), '.'),
      h('h3', { text: 'Playback' }), copyable(resp.playback, 'playback URL'));
  }

  async function endStream(id, btn, noteEl) {
    if (!confirm('End live stream ' + id + '? Its publish key stops working and the recording becomes VOD.')) return false;
    if (btn) btn.disabled = true;
    try {
      const r = await api('POST', '/streams/' + encodeURIComponent(id) + '/end');
      if (noteEl) setNotice(noteEl, 'ok', 'Ending ' + id + ' (status ' + r.status + ').');
      return true;
    } catch (e) {
      if (noteEl) setNotice(noteEl, 'bad', e.message);
      if (btn) btn.disabled = false;
      return false;
    }
  }

  function liveListView(scope) {
    let poller = null;
    const kick = () => poller && poller.kick();
    const titleInput = h('input', { type: 'text', id: 'live-title', maxlength: '200', placeholder: 'Match day' });
    const srcInput = h('input', { type: 'url', id: 'live-source', placeholder: 'optional: http(s) MPEG-TS or Icecast URL to pull' });
    const startBtn = h('button', { type: 'submit', text: 'Start stream' });
    const startNote = h('div', { class: 'notice', role: 'status' });
    const publishBox = h('div');
    const form = h('form', {
      id: 'start-form',
      onsubmit: async (ev) => {
        ev.preventDefault();
        startBtn.disabled = true;
        try {
          const body = {};
          if (titleInput.value.trim()) body.title = titleInput.value.trim();
          if (srcInput.value.trim()) body.source_url = srcInput.value.trim();
          const resp = await api('POST', '/streams/start', body);
          savePublish(resp);
          setNotice(startNote, 'ok', 'Created ', h('a', { href: '#/live/' + encodeURIComponent(resp.stream_id), text: resp.stream_id }), '.');
          publishBox.replaceChildren(publishCard(resp));
          form.reset();
          kick();
        } catch (e) {
          setNotice(startNote, 'bad', e.message);
        } finally {
          startBtn.disabled = false;
        }
      },
    },
    h('div', { class: 'row fields' },
      h('div', { class: 'field' }, h('label', { for: 'live-title', text: 'Title' }), titleInput),
      h('div', { class: 'field' }, h('label', { for: 'live-source', text: 'Source URL' }), srcInput)),
    h('div', { class: 'row' }, startBtn),
    startNote);

    const list = pagedList(scope, '/streams', ['created', 'live', 'vod', 'failed'],
      (status) => status ? 'No streams with status ' + status + '.' : 'No live streams yet: start one above.',
      (it) => {
        const href = '#/live/' + encodeURIComponent(it.stream_id);
        const end = livePending.has(it.status) ? h('button', {
          type: 'button', class: 'danger small', text: 'End',
          onclick: async (ev) => {
            ev.stopPropagation();
            if (await endStream(it.stream_id, ev.currentTarget, list.listNote)) kick();
          },
        }) : null;
        return h('tr', { class: 'clickable', dataset: { id: it.stream_id, status: it.status }, onclick: (ev) => { if (ev.target.tagName !== 'A' && ev.target.tagName !== 'BUTTON') location.hash = href; } },
          h('td', null, h('a', { href, text: it.title || it.stream_id })),
          h('td', null, statusPill(it.status)),
          h('td', { title: fmtTime(it.created_at), text: fmtAgo(it.created_at) }),
          h('td', { class: 'mono muted', text: it.stream_id }),
          h('td', null, end));
      }, kick);
    const { filter, tbody, listNote, more, state, refresh } = list;

    app.append(h('div', { class: 'stack' },
      h('section', { class: 'card' },
        h('div', { class: 'card-head' }, h('h2', { text: 'Start a live stream' })),
        form,
        h('p', { class: 'hint', text: 'Leave the source URL empty to push from OBS or ffmpeg over RTMP or SRT; the publish settings appear here.' })),
      publishBox,
      h('section', { class: 'card' },
        h('div', { class: 'card-head' }, h('h2', { text: 'Live streams' }), h('span', { class: 'spacer' }), filter),
        listNote,
        h('div', { class: 'table-wrap' },
          h('table', { id: 'live-table' },
            h('thead', null, h('tr', null, ['Title', 'Status', 'Created', 'ID', ''].map((t) => h('th', { text: t })))),
            tbody)),
        h('div', { class: 'row' }, more))));

    poller = poll(scope, async () => {
      try {
        await refresh();
      } catch (e) {
        setNotice(listNote, 'bad', 'Could not list live streams: ' + e.message);
        return 5000;
      }
      return state.items.some((it) => livePending.has(it.status)) ? 3000 : 10000;
    });
  }

  function liveDetailView(scope, id, query) {
    const title = h('h1', { text: id });
    const pill = h('span');
    const note = h('div', { class: 'notice', role: 'status' });
    const box = h('div', { class: 'player', id: 'player' }, h('div', { class: 'placeholder', text: 'Loading…' }));
    const playerNote = h('div', { class: 'hint', id: 'player-status' });
    const quality = qualityControl();
    const edge = h('span', { class: 'muted', id: 'live-edge' });
    const endBtn = h('button', { type: 'button', class: 'danger', text: 'End stream', hidden: true });
    const info = h('div');
    const windowInfo = h('div');
    const stages = h('div');
    let player = null;
    let playing = ''; // which playlist the player has: live or vod
    let meta = null;
    let poller = null;

    endBtn.addEventListener('click', async () => {
      if (await endStream(id, endBtn, note) && poller) poller.kick();
    });

    // The player plays the stream's generated master playlist: its one
    // variant is live.m3u8 while the stream is live (vod.m3u8 once it
    // has ended), with the subtitles rendition of an stt job and the
    // metadata session data. A server that generates no master gets the
    // media playlist itself.
    const startPlayer = (which) => {
      if (player) player.destroy();
      quality.reset();
      playing = which;
      const file = which === 'vod' ? 'vod.m3u8' : 'live.m3u8';
      player = mountPlayer(box, {
        url: '/hls/' + encodeURIComponent(id) + '/master.m3u8',
        fallback: '/hls/' + encodeURIComponent(id) + '/' + file,
        live: which === 'live',
        onLevels: (ls, hls) => quality.levels(ls, hls),
        onLevel: (i, hls) => quality.level(i, hls),
        onStatus: (kind, msg) => {
          playerNote.className = kind ? 'notice ' + kind : 'hint';
          playerNote.textContent = msg;
        },
      });
    };
    scope.onDispose(() => player && player.destroy());

    // The distance to the live edge and the seekable (DVR) range, from
    // the player's point of view.
    const edgeTimer = setInterval(() => {
      if (!player || !player.video) { edge.textContent = ''; return; }
      const v = player.video;
      const parts = [];
      if (player.hls && player.hls.latency != null && playing === 'live' && isFinite(player.hls.latency)) {
        parts.push(player.hls.latency.toFixed(1) + ' s behind live');
      }
      if (v.seekable && v.seekable.length) {
        const span = v.seekable.end(v.seekable.length - 1) - v.seekable.start(0);
        if (isFinite(span) && span > 0) parts.push(fmtMS(span * 1000) + ' seekable');
      }
      edge.textContent = parts.join(' · ');
    }, 1000);
    scope.onDispose(() => clearInterval(edgeTimer));

    function render() {
      title.textContent = meta.title || id;
      document.title = (meta.title || id) + ' · weir';
      pill.replaceChildren(statusPill(meta.status));
      endBtn.hidden = !livePending.has(meta.status);
      if (meta.status === 'failed') setNotice(note, 'bad', 'The stream failed: ' + (meta.error || 'no reason given'));
      const d = meta.details || {};
      const lat = d.latency_ms || {};
      fill(info, facts([
        ['Stream id', h('span', { class: 'mono', text: meta.stream_id })],
        ['Source', meta.source_url ? h('span', { class: 'mono', text: meta.source_url }) : 'push (RTMP or SRT)'],
        ['Created', fmtTime(meta.created_at)],
        ['Live since', meta.started_at ? fmtTime(meta.started_at) : null],
        ['Ended', meta.ended_at ? fmtTime(meta.ended_at) : null],
        ['Segments', String(meta.segment_count || 0)],
        ['Gaps', String(meta.gaps || 0)],
        ['Checksum failures', String(meta.checksum_failures || 0)],
        ['Last segment', d.last_segment_at ? fmtAgo(d.last_segment_at) : null],
        ['Publish latency', lat.samples ? 'p50 ' + fmtMS(lat.p50) + ' · p99 ' + fmtMS(lat.p99) + ' · max ' + fmtMS(lat.max) + ' (' + lat.samples + ' segments)' : null],
      ]), h('h3', { text: meta.status === 'vod' ? 'VOD playlist' : 'Live playlist' }),
      copyable(meta.status === 'vod' && d.vod_playlist ? location.origin + '/hls/' + d.vod_playlist : meta.playback, 'playlist URL'));

      const w = d.window;
      if (w && w.segments) {
        windowInfo.replaceChildren(facts([
          ['Segments listed', String(w.segments)],
          ['Duration', fmtMS(w.duration_seconds * 1000)],
          ['Sequence', w.first_sequence + ' – ' + w.last_sequence],
          ['Target duration', d.target_duration_seconds ? d.target_duration_seconds + ' s' : null],
          ['Discontinuity sequence', String(w.discontinuity_sequence || 0)],
          ['First stored segment', d.first_retained_sequence ? String(d.first_retained_sequence) : null],
        ]));
      } else {
        windowInfo.replaceChildren(h('p', { class: 'muted', text: 'The window fills as segments arrive.' }));
      }

      const times = Object.entries(meta.stage_times || {}).sort((a, b) => new Date(a[1]) - new Date(b[1]));
      stages.replaceChildren(h('table', { id: 'stages' },
        h('tbody', null, times.map(([stage, at]) => h('tr', null, h('td', null, statusPill(stage, true)), h('td', { class: 'num', title: fmtTime(at), text: fmtClock(at) }))))));
    }

    // mediaOffset is where the player's time 0 lies on the stream's
    // timeline, the one results are on (seconds). The recording
    // (vod.m3u8) starts at the stream's first segment, so 0 while that is
    // kept; a live playlist starts inside its DVR window, placed through
    // the first segment's EXT-X-PROGRAM-DATE-TIME and the time the stream
    // went live (close, not exact: a second or so either way).
    function mediaOffset() {
      const d = (meta && meta.details) || {};
      if (playing === 'vod' && !d.first_retained_sequence) return 0;
      const hls = player && player.hls;
      const level = hls && hls.levels && hls.levels[Math.max(hls.currentLevel, 0)];
      const frag = level && level.details && level.details.fragments && level.details.fragments[0];
      const t0 = meta && Date.parse(meta.started_at || '');
      if (!frag || !frag.programDateTime || !isFinite(t0)) return 0;
      return Math.max(0, (frag.programDateTime - t0) / 1000 - frag.start);
    }

    const publish = loadPublish(id);
    app.append(
      h('div', { class: 'crumbs' }, h('a', { href: '#/live', text: '← Live streams' })),
      h('div', { class: 'card-head' }, title, pill, h('span', { class: 'spacer' }), endBtn),
      note,
      h('div', { class: 'grid' },
        h('div', { class: 'stack' },
          h('section', { class: 'card' }, box,
            h('div', { class: 'player-bar' }, quality.el, edge, h('span', { class: 'spacer' }),
              engineSelect(() => { if (playing) startPlayer(playing); })),
            playerNote),
          mountTimeline(scope, {
            stream: id,
            video: () => player && player.video,
            live: () => !meta || livePending.has(meta.status),
            offset: mediaOffset,
            startAt: query.t,
          }),
          publish ? publishCard(publish) : null),
        h('div', { class: 'stack' },
          h('section', { class: 'card' }, h('h2', { text: 'Stream' }), info),
          h('section', { class: 'card' }, h('h2', { text: 'DVR window' }), windowInfo),
          h('section', { class: 'card' }, h('h2', { text: 'Stage timestamps' }), stages))));

    // load fetches the metadata, updates the page and starts the player
    // when there is something to play; it returns the next poll delay.
    async function load() {
      try {
        meta = await api('GET', '/streams/' + encodeURIComponent(id) + '/metadata');
      } catch (e) {
        setNotice(note, 'bad', e.message);
        if (e.status === 404) {
          box.replaceChildren(h('div', { class: 'placeholder', text: 'No such stream.' }));
          return 0;
        }
        return 5000;
      }
      if (!scope.alive) return 0;
      render();
      if (meta.status === 'created') {
        box.replaceChildren(h('div', { class: 'placeholder', text: 'Waiting for the publisher: the player starts with the first segment.' }));
      } else if (meta.status === 'live' && playing !== 'live') {
        startPlayer('live');
      } else if (meta.status === 'vod' && !playing) {
        if (meta.segment_count > 0) startPlayer('vod');
        else box.replaceChildren(h('div', { class: 'placeholder', text: 'The stream ended without media.' }));
      } else if (meta.status === 'failed' && !playing) {
        box.replaceChildren(h('div', { class: 'placeholder', text: 'Nothing to play: the stream failed.' }));
      }
      // A player already on live.m3u8 (through the master it loaded while
      // the stream was live) keeps going when the stream ends: the
      // playlist gets EXT-X-ENDLIST and stays a complete recording.
      return livePending.has(meta.status) ? 2000 : 0;
    }
    poller = poll(scope, load);
  }

  // -------------------------------------------------------------- router

  let current = null;

  // parseHash splits the fragment into its path parts and its query
  // (#/vod/{id}?t=12.5 → ['vod', id], {t: 12.5}).
  function parseHash(hash) {
    const raw = hash.replace(/^#\/?/, '');
    const cut = raw.indexOf('?');
    const path = cut < 0 ? raw : raw.slice(0, cut);
    const params = new URLSearchParams(cut < 0 ? '' : raw.slice(cut + 1));
    let parts;
    try {
      parts = path.split('/').filter(Boolean).map(decodeURIComponent);
    } catch (e) {
      parts = [];
    }
    const t = Number(params.get('t'));
    return { parts, query: { t: params.has('t') && isFinite(t) && t >= 0 ? t : null, params } };
  }

  // streamHref is the console page of a VOD title or live stream, at a
  // time (seconds) when given.
  function streamHref(streamID, seconds) {
    const section = String(streamID).startsWith('live-') ? 'live' : 'vod';
    const at = seconds != null && isFinite(seconds) ? '?t=' + Number(seconds).toFixed(2) : '';
    return '#/' + section + '/' + encodeURIComponent(streamID) + at;
  }

  const sectionTitles = { vod: 'VOD', live: 'Live', jobs: 'Jobs', alerts: 'Alerts' };

  function route() {
    if (current) current.dispose();
    current = newScope();
    const { parts, query } = parseHash(location.hash);
    const section = sectionTitles[parts[0]] && (parts[0] !== 'jobs' || weir.jobsListView) && (parts[0] !== 'alerts' || weir.alertsView) ? parts[0] : 'vod';
    for (const a of document.querySelectorAll('[data-section]')) {
      if (a.dataset.section === section) a.setAttribute('aria-current', 'page');
      else a.removeAttribute('aria-current');
    }
    app.replaceChildren();
    document.title = sectionTitles[section] + ' · weir console';
    if (section === 'alerts') {
      weir.alertsView(current, app);
    } else if (section === 'jobs') {
      if (parts[1]) weir.jobDetailView(current, app, parts[1]); else weir.jobsListView(current, app, query);
    } else if (section === 'live') {
      if (parts[1]) liveDetailView(current, parts[1], query); else liveListView(current);
    } else if (parts[1]) {
      vodDetailView(current, parts[1], query);
    } else {
      vodListView(current);
    }
    window.scrollTo(0, 0);
  }

  Object.assign(weir, {
    h, fill, appendAll, setNotice, progressBar, copyable, facts,
    fmtTime, fmtClock, fmtAgo, fmtMS, fmtDuration, fmtBytes,
    statusPill, api, token, problemDetail, APIError, poll, pagedList, streamHref,
  });

  // The other scripts are deferred like this one and run before
  // DOMContentLoaded, so their views are there when the router starts.
  document.addEventListener('DOMContentLoaded', () => {
    setupToken();
    checkReadiness();
    window.addEventListener('hashchange', route);
    route();
  });
})();
