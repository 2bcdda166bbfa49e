// weir console: the results timeline under a player, and the search box.
//
// weir.timeline.mount(scope, opts) builds a card of lanes from the results
// of the jobs whose source is the stream (GET /jobs?stream=ID, then GET
// /jobs/{id}/results of each): scenes with thumbnails, the transcript
// following playback, lines read on screen, a loudness graph, fingerprint
// matches, silence and black spans, keywords and the detections of other
// engines. Clicking any result seeks the player to its start. opts:
//
//   stream   the VOD title or live stream id
//   video()  the player's <video> element, or null before it exists
//   live()   whether the stream may still get results (refresh while so)
//   offset() where the player's time 0 lies on the stream's timeline (s)
//   startAt  a time (s, on the stream's timeline) to seek to once playable
//
// Lanes are found by the shape of the results, not by engine name, so an
// external engine answering with the same vtn-standard shapes as a
// built-in one gets the same lane (docs/console.md lists them).
//
// weir.searchBox(scope, {stream, onHit}) is the search form over GET
// /search, used here and on the Jobs page.
(function () {
  'use strict';

  const weir = window.weir = window.weir || {};
  const SVG = 'http://www.w3.org/2000/svg';
  const PAGE = 1000;       // results asked for at a time
  const MAX_PAGES = 50;    // per job and refresh: 50 000 results
  const REFRESH_MS = 3000; // while live or while a job runs
  const LUFS_FLOOR = -60;  // the loudness graph's bottom; -inf is drawn here

  // ---------------------------------------------------------- time text

  // clock is a timeline position: "0:02.07", "1:02:09.5".
  function clock(ms) {
    if (ms == null || !isFinite(ms)) return '—';
    const neg = ms < 0;
    let t = Math.abs(ms) / 1000;
    const hh = Math.floor(t / 3600);
    t -= hh * 3600;
    const mm = Math.floor(t / 60);
    const ss = (t - mm * 60).toFixed(2).padStart(5, '0');
    return (neg ? '-' : '') + (hh ? hh + ':' + String(mm).padStart(2, '0') : String(mm)) + ':' + ss;
  }

  // ----------------------------------------------------- reading results

  function tagMap(tags) {
    const m = new Map();
    for (const t of tags || []) {
      if (t && typeof t.key === 'string') m.set(t.key, t);
    }
    return m;
  }

  function bestWord(s) {
    const ws = Array.isArray(s.words) ? s.words : [];
    return ws.find((w) => w && w.bestPath) || ws[0] || null;
  }

  function num(v) {
    const n = typeof v === 'number' ? v : parseFloat(v);
    return isFinite(n) ? n : null;
  }

  // newModel is what the lanes draw, filled by addResult.
  function newModel() {
    return {
      scenes: [],                // {start, n, score, uri, engine}
      transcripts: new Map(),    // engine → [{start, end, text, words: [{start, end, word}]}]
      looseWords: new Map(),     // engine → [{start, end, word}] without utterances
      ocr: [],                   // {start, end, text, confidence, engine}
      loudness: [],              // {t, m, s}
      summary: null,             // the loudness summary's tags
      spans: [],                 // {start, end, kind: silence|black|frozen}
      fingerprints: [],          // {start, end, label, confidence}
      keywords: [],              // {start, end, label, confidence, engine}
      detections: new Map(),     // engine → [{start, end, label, confidence}]
    };
  }

  // addResult reads one stored result (GET /jobs/{id}/results item) into
  // the model, series by series.
  function addResult(model, r) {
    const doc = r.content || {};
    const series = Array.isArray(doc.series) ? doc.series : [];
    const docTags = tagMap(doc.tags);
    if (docTags.has('summary')) model.summary = docTags;
    const utterances = [];
    const words = [];
    for (const s of series) {
      if (!s || typeof s !== 'object') continue;
      const start = num(s.startTimeMs), end = num(s.stopTimeMs);
      if (start == null) continue;
      const stop = end == null ? start : Math.max(end, start);
      const tags = tagMap(s.tags);
      const obj = s.object && typeof s.object === 'object' ? s.object : null;
      const type = obj && obj.type;
      if (tags.has('utterance')) {
        const w = bestWord(s);
        utterances.push({ start, end: stop, text: w ? String(w.word) : '', words: [] });
      } else if (type === 'text') {
        model.ocr.push({ start, end: stop, text: String(obj.text || ''), confidence: num(obj.confidence), engine: r.engine });
      } else if (type === 'thumbnail' || tags.has('scene')) {
        const t = tags.get('scene');
        model.scenes.push({ start, n: t ? t.value : '', score: t ? num(t.score) : null, uri: obj && obj.uri, engine: r.engine });
      } else if (type === 'fingerprint') {
        model.fingerprints.push({ start, end: stop, label: String(obj.label || obj.entityId || 'match'), confidence: num(obj.confidence) });
      } else if (type === 'keyword') {
        model.keywords.push({ start, end: stop, label: String(obj.label || obj.text || 'keyword'), confidence: num(obj.confidence), engine: r.engine });
      } else if (tags.has('momentary_lufs') || tags.has('short_term_lufs')) {
        const v = (k) => {
          const x = tags.get(k);
          const n = x ? num(x.value) : null;
          return n == null ? LUFS_FLOOR : Math.max(LUFS_FLOOR, n);
        };
        model.loudness.push({ t: stop, m: v('momentary_lufs'), s: v('short_term_lufs') });
      } else if (tags.has('silence')) {
        model.spans.push({ start, end: stop, kind: 'silence' });
      } else if (tags.has('kind') && /^(black|frozen)$/.test(tags.get('kind').value)) {
        model.spans.push({ start, end: stop, kind: tags.get('kind').value });
      } else if (obj) {
        addDetection(model, r.engine, { start, end: stop, label: String(obj.label || type || 'object'), confidence: num(obj.confidence) });
      } else if (Array.isArray(s.words) && s.words.length) {
        const w = bestWord(s);
        if (w && w.word) words.push({ start, end: stop, word: String(w.word) });
      }
    }
    // Objects of the whole piece (vtn-standard's top-level object list).
    for (const obj of Array.isArray(doc.object) ? doc.object : []) {
      if (obj && typeof obj === 'object') {
        addDetection(model, r.engine, { start: r.start_ms, end: r.end_ms, label: String(obj.label || obj.type || 'object'), confidence: num(obj.confidence) });
      }
    }
    if (utterances.length) {
      // stt: each word belongs to the utterance it lies in.
      for (const w of words) {
        const u = utterances.find((x) => w.start >= x.start - 1 && w.start < x.end + 1) || utterances[utterances.length - 1];
        u.words.push(w);
      }
      const list = model.transcripts.get(r.engine) || [];
      list.push(...utterances);
      model.transcripts.set(r.engine, list);
    } else if (words.length) {
      const list = model.looseWords.get(r.engine) || [];
      list.push(...words);
      model.looseWords.set(r.engine, list);
    }
  }

  function addDetection(model, engine, d) {
    const list = model.detections.get(engine) || [];
    list.push(d);
    model.detections.set(engine, list);
  }

  // finish sorts the model and joins what needs joining: an engine's
  // words without utterances become utterances at pauses over a second
  // (as the search index does), and an object seen on consecutive frames
  // becomes one span.
  function finish(model) {
    const byStart = (a, b) => a.start - b.start || a.end - b.end;
    for (const [engine, words] of model.looseWords) {
      words.sort(byStart);
      const utts = model.transcripts.get(engine) || [];
      let cur = null;
      for (const w of words) {
        if (!cur || w.start - cur.end > 1000) {
          cur = { start: w.start, end: w.end, text: '', words: [] };
          utts.push(cur);
        }
        cur.words.push(w);
        cur.end = Math.max(cur.end, w.end);
      }
      for (const u of utts) {
        if (!u.text) u.text = u.words.map((w) => w.word).join(' ');
      }
      model.transcripts.set(engine, utts);
    }
    for (const utts of model.transcripts.values()) {
      utts.sort(byStart);
      for (const u of utts) {
        u.words.sort(byStart);
        // A sentence without word times is still clickable as a whole.
        if (!u.words.length) u.words = [{ start: u.start, end: u.end, word: u.text }];
      }
    }
    model.scenes.sort(byStart);
    model.ocr.sort(byStart);
    model.loudness.sort((a, b) => a.t - b.t);
    model.spans.sort(byStart);
    model.fingerprints.sort(byStart);
    model.keywords.sort(byStart);
    for (const [engine, list] of model.detections) {
      list.sort((a, b) => a.label.localeCompare(b.label) || a.start - b.start);
      const merged = [];
      for (const d of list) {
        const last = merged[merged.length - 1];
        if (last && last.label === d.label && d.start - last.end <= 1500) {
          last.end = Math.max(last.end, d.end);
          last.confidence = Math.max(last.confidence || 0, d.confidence || 0) || null;
          last.count++;
        } else {
          merged.push(Object.assign({ count: 1 }, d));
        }
      }
      merged.sort(byStart);
      model.detections.set(engine, merged);
    }
    return model;
  }

  // modelEnd is the last time the model reaches (ms).
  function modelEnd(model) {
    let end = 0;
    const see = (t) => { if (t != null && isFinite(t) && t > end) end = t; };
    model.scenes.forEach((x) => see(x.start));
    model.ocr.forEach((x) => see(x.end));
    model.loudness.forEach((x) => see(x.t));
    model.spans.forEach((x) => see(x.end));
    model.fingerprints.forEach((x) => see(x.end));
    model.keywords.forEach((x) => see(x.end));
    for (const l of model.transcripts.values()) l.forEach((x) => see(x.end));
    for (const l of model.detections.values()) l.forEach((x) => see(x.end));
    return end;
  }

  // artifactURL keeps a thumbnail on this console's origin when its URL is
  // weir's own artifact route (the public URL may name another host than
  // the one the browser reached), and leaves other (presigned) URLs alone.
  function artifactURL(uri) {
    if (!uri) return null;
    try {
      const u = new URL(uri, location.href);
      if (/^\/jobs\/[^/]+\/artifacts\/[^/]+\/[^/]+$/.test(u.pathname)) return u.pathname;
      return /^https?:$/.test(u.protocol) ? u.href : null;
    } catch (e) {
      return null;
    }
  }

  // snippetNodes turns a search snippet (escaped text with <mark></mark>)
  // into text nodes and <mark> elements, without parsing it as HTML.
  function snippetNodes(snippet) {
    const unescape = (s) => s.replace(/&(amp|lt|gt|quot|#39|#34);/g, (_, e) => ({ amp: '&', lt: '<', gt: '>', quot: '"', '#39': "'", '#34': '"' })[e]);
    const out = [];
    const parts = String(snippet || '').split(/<mark>(.*?)<\/mark>/);
    parts.forEach((p, i) => {
      if (!p) return;
      out.push(i % 2 ? weir.h('mark', { text: unescape(p) }) : unescape(p));
    });
    return out;
  }

  // -------------------------------------------------------------- search

  // searchBox is a search form over GET /search (one stream's texts when
  // opts.stream is set) listing the hits; choosing one calls opts.onHit.
  function searchBox(scope, opts) {
    const h = weir.h;
    const input = h('input', { type: 'search', name: 'q', maxlength: '1000', placeholder: opts.stream ? 'Search what was said or shown here' : 'Search what was said or shown, in every title and stream', 'aria-label': 'Search the results' });
    const note = h('div', { class: 'notice', role: 'status' });
    const hits = h('ol', { class: 'search-hits' });
    const more = h('button', { type: 'button', class: 'ghost small', text: 'More hits', hidden: true });
    let cursor = '';
    let query = '';

    async function run(append) {
      const q = new URLSearchParams({ q: query, limit: '20' });
      if (opts.stream) q.set('stream', opts.stream);
      if (append && cursor) q.set('cursor', cursor);
      let page;
      try {
        page = await weir.api('GET', '/search?' + q.toString());
      } catch (e) {
        weir.setNotice(note, 'bad', e.message);
        return;
      }
      if (!scope.alive) return;
      const items = page.items || [];
      cursor = page.next_cursor || '';
      more.hidden = !cursor;
      if (!append) hits.replaceChildren();
      if (!append && !items.length) weir.setNotice(note, '', 'Nothing found for ' + (page.query || query) + '.');
      else weir.setNotice(note, '');
      for (const it of items) hits.append(hitItem(it));
    }

    function hitItem(it) {
      const where = opts.stream ? null : h('span', { class: 'hit-where', text: it.title || it.stream_id || it.job_id });
      return h('li', null, h('button', {
        type: 'button', class: 'hit',
        dataset: { stream: it.stream_id || '', job: it.job_id, start: String(it.start_ms) },
        onclick: () => opts.onHit(it),
      },
      h('span', { class: 'hit-time mono', text: clock(it.start_ms) }),
      where,
      h('span', { class: 'pill', text: it.engine + ' · ' + it.kind }),
      h('span', { class: 'hit-text' }, snippetNodes(it.snippet || it.text))));
    }

    const form = h('form', {
      class: 'search row', role: 'search',
      onsubmit: (ev) => {
        ev.preventDefault();
        query = input.value.trim();
        cursor = '';
        if (!query) {
          hits.replaceChildren();
          more.hidden = true;
          weir.setNotice(note, '');
          return;
        }
        run(false);
      },
    }, input, h('button', { type: 'submit', class: 'small', text: 'Search' }));
    more.addEventListener('click', () => run(true));
    return { el: h('div', { class: 'search-box' }, form, note, hits, h('div', { class: 'row' }, more)), input, form };
  }

  // ------------------------------------------------------------ timeline

  function mount(scope, opts) {
    const h = weir.h;
    const el = h('section', { class: 'card timeline', id: 'timeline', dataset: { stream: opts.stream } });
    const jobsLine = h('div', { class: 'hint tl-jobs' });
    const note = h('div', { class: 'notice', role: 'status' });
    const lanes = h('div', { class: 'tl-lanes' });
    const search = searchBox(scope, {
      stream: opts.stream,
      onHit: (hit) => {
        if (hit.stream_id === opts.stream) seek(hit.start_ms);
        else if (hit.stream_id) location.hash = weir.streamHref(hit.stream_id, hit.start_ms / 1000);
        else location.hash = '#/jobs/' + encodeURIComponent(hit.job_id);
      },
    });
    el.append(h('div', { class: 'card-head' }, h('h2', { text: 'Results' }), h('span', { class: 'spacer' }),
      h('a', { href: '#/jobs?source=' + encodeURIComponent(opts.stream), class: 'small', text: 'Run engines on this →' })),
    search.el, jobsLine, note, lanes);

    const state = {
      jobs: [],
      results: new Map(),     // job id → Map key → result
      fetchedTo: new Map(),   // job id → {done: bool, end: ms}
      chosen: new Map(),      // engine → job id
      model: newModel(),
      version: 0,
      drawn: -1,
      duration: 0,
    };
    let view = null;           // what render() drew: {update(ms)}
    let pendingSeek = opts.startAt != null ? opts.startAt * 1000 : null;
    let verify = null;         // {target (s), at, tries}: re-seek if the player moved away

    // ----------------------------------------------------- seeking

    function seek(ms) {
      const v = opts.video();
      if (!v || v.readyState < 2) {
        pendingSeek = ms;
        return;
      }
      const target = Math.max(0, ms / 1000 - opts.offset());
      v.currentTime = target;
      verify = { target, at: performance.now(), tries: 0 };
      el.dataset.seekedTo = String(Math.round(ms));
      const p = v.play();
      if (p && p.catch) p.catch(() => { /* autoplay refused: the controls start it */ });
    }

    lanes.addEventListener('click', (ev) => {
      const t = ev.target.closest('[data-seek]');
      if (t && lanes.contains(t)) seek(Number(t.dataset.seek));
    });

    // --------------------------------------------------- fetching

    async function fetchJobs() {
      const page = await weir.api('GET', '/jobs?stream=' + encodeURIComponent(opts.stream) + '&limit=100');
      state.jobs = page.items || [];
      // Each engine's results come from the newest job that ran it and
      // got past pending, so a job run again does not show twice.
      const chosen = new Map();
      for (const j of state.jobs) {
        if (j.status === 'pending') continue;
        for (const e of j.engines || []) {
          if (!chosen.has(e.name)) chosen.set(e.name, j.id);
        }
      }
      if ([...chosen].some(([e, j]) => state.chosen.get(e) !== j) || chosen.size !== state.chosen.size) state.version++;
      state.chosen = chosen;
    }

    // fetchResults reads a job's results: all of them the first time,
    // then those from a minute before the latest seen (results of a
    // running job arrive roughly in time order, a window at a time).
    async function fetchResults(job) {
      const seen = state.fetchedTo.get(job.id) || { done: false, end: 0 };
      if (seen.done) return;
      const finished = job.status !== 'pending' && job.status !== 'running';
      const stored = state.results.get(job.id) || new Map();
      state.results.set(job.id, stored);
      let cursor = '';
      let changed = false;
      for (let i = 0; i < MAX_PAGES; i++) {
        const q = new URLSearchParams({ limit: String(PAGE) });
        if (seen.end > 60000) q.set('from', String(seen.end - 60000));
        if (cursor) q.set('cursor', cursor);
        const page = await weir.api('GET', '/jobs/' + encodeURIComponent(job.id) + '/results?' + q.toString());
        for (const r of page.items || []) {
          const key = r.engine + '|' + r.chunk_uuid + '|' + r.start_ms;
          const old = stored.get(key);
          if (!old || old.rev !== r.rev) {
            stored.set(key, r);
            changed = true;
          }
          if (r.end_ms > seen.end) seen.end = r.end_ms;
        }
        cursor = page.next_cursor || '';
        if (!cursor) break;
      }
      seen.done = finished;
      state.fetchedTo.set(job.id, seen);
      if (changed) state.version++;
    }

    function rebuild() {
      const model = newModel();
      for (const [engine, jobID] of state.chosen) {
        const stored = state.results.get(jobID);
        if (!stored) continue;
        for (const r of stored.values()) {
          if (r.engine === engine) addResult(model, r);
        }
      }
      state.model = finish(model);
    }

    async function refresh() {
      try {
        await fetchJobs();
        const wanted = new Set(state.chosen.values());
        for (const j of state.jobs) {
          if (wanted.has(j.id)) await fetchResults(j);
        }
      } catch (e) {
        weir.setNotice(note, 'bad', 'Could not read the results: ' + e.message);
        return 5000;
      }
      if (!scope.alive) return 0;
      weir.setNotice(note, '');
      renderJobsLine();
      if (state.version !== state.drawn) {
        rebuild();
        render();
        state.drawn = state.version;
      }
      const running = state.jobs.some((j) => j.status === 'pending' || j.status === 'running');
      return opts.live() || running ? REFRESH_MS : 0;
    }

    function renderJobsLine() {
      if (!state.jobs.length) {
        weir.fill(jobsLine, 'No job has run on this stream yet. ',
          h('a', { href: '#/jobs?source=' + encodeURIComponent(opts.stream), text: 'Run engines on it' }), ' to see its scenes, transcript, text on screen and loudness here.');
        return;
      }
      const used = [...new Set(state.chosen.values())];
      const parts = used.map((id) => {
        const j = state.jobs.find((x) => x.id === id);
        const engines = [...state.chosen].filter(([, jid]) => jid === id).map(([e]) => e);
        return h('span', { class: 'tl-job' }, h('a', { href: '#/jobs/' + encodeURIComponent(id), text: j.title || id }),
          ' ', weir.statusPill(j.status), ' ', engines.join(', '));
      });
      weir.fill(jobsLine, used.length ? 'From ' : 'The jobs on this stream have not started yet.', parts.map((p, i) => [i ? ' · ' : null, p]));
    }

    // ---------------------------------------------------- drawing

    function currentDuration() {
      const v = opts.video();
      let d = modelEnd(state.model);
      if (v && isFinite(v.duration) && v.duration > 0) d = Math.max(d, (v.duration + opts.offset()) * 1000);
      return Math.max(d, 1000);
    }

    function render() {
      const d = state.duration = currentDuration();
      const m = state.model;
      const shown = [];  // lanes in page order: {el, update(ms)}
      const tracks = []; // the lanes drawn on the time axis
      if (m.scenes.length) shown.push(scenesLane(m.scenes));
      if (m.loudness.length) tracks.push(loudnessLane(m.loudness, m.summary, d));
      if (m.spans.length) tracks.push(spanLane('silence', 'Silence & black', m.spans, d, (s) => s.kind, (s) => s.kind));
      if (m.fingerprints.length) {
        tracks.push(spanLane('fingerprint', 'Fingerprints', m.fingerprints, d,
          (s) => s.label + (s.confidence != null ? ' (' + s.confidence.toFixed(2) + ')' : ''), () => 'match'));
      }
      if (m.keywords.length) tracks.push(spanLane('keywords', 'Keywords', m.keywords, d, (s) => s.label, () => 'keyword'));
      for (const [engine, ds] of m.detections) {
        tracks.push(spanLane('detections', 'Detections · ' + engine, ds, d,
          (s) => s.label + (s.confidence != null ? ' ' + Math.round(s.confidence * 100) + ' %' : '') + (s.count > 1 ? ' ×' + s.count : ''),
          () => 'object', engine));
      }
      if (tracks.length) {
        const axis = axisLane(d);
        shown.push({ el: h('div', { class: 'tl-tracks' }, axis.el, tracks.map((l) => l.el)), update: axis.update }, ...tracks.map((l) => ({ update: l.update })));
      }
      for (const [engine, utts] of m.transcripts) shown.push(transcriptLane(engine, utts, m.transcripts.size > 1));
      if (m.ocr.length) shown.push(ocrLane(m.ocr));
      const els = shown.filter((l) => l.el).map((l) => l.el);
      if (!els.length && state.jobs.length) els.push(h('p', { class: 'muted', text: 'No results yet.' }));
      lanes.replaceChildren(...els);
      view = { update(ms) { for (const l of shown) l.update(ms); } };
      el.dataset.version = String(state.version);
      tick(true);
    }

    function pct(ms, duration) {
      return Math.max(0, Math.min(100, (ms / duration) * 100));
    }

    function laneBox(kind, name, body, extra) {
      return h('div', { class: 'lane lane-' + kind, dataset: { lane: kind } },
        h('div', { class: 'lane-name', text: name }), h('div', { class: 'lane-body' }, body), extra || null);
    }

    function playhead() {
      const line = h('div', { class: 'playhead', 'aria-hidden': 'true' });
      return { el: line, update(ms, duration) { line.style.left = pct(ms, duration) + '%'; } };
    }

    function axisLane(duration) {
      const ticks = [0, 0.25, 0.5, 0.75, 1].map((f) => {
        const t = h('span', { class: 'tick', text: clock(f * duration).replace(/\.\d\d$/, '') });
        t.style.left = f * 100 + '%';
        return t;
      });
      const head = playhead();
      const track = h('div', { class: 'track axis', title: 'Click to seek',
        onclick: (ev) => {
          const r = track.getBoundingClientRect();
          seek(((ev.clientX - r.left) / r.width) * duration);
        } }, ticks, head.el);
      return { el: laneBox('axis', '', track), update: (ms) => head.update(ms, duration) };
    }

    function scenesLane(scenes) {
      const items = scenes.map((s) => {
        const src = artifactURL(s.uri);
        return h('button', { type: 'button', class: 'scene', dataset: { seek: String(s.start) },
          title: 'Scene ' + s.n + ' at ' + clock(s.start) + (s.score != null ? ' (score ' + s.score.toFixed(2) + ')' : '') },
        src ? h('img', { src, alt: 'Scene ' + s.n + ' at ' + clock(s.start), loading: 'lazy' }) : h('span', { class: 'noimg', text: 'scene ' + s.n }),
        h('span', { class: 'scene-time mono', text: clock(s.start) }));
      });
      const strip = h('div', { class: 'scene-strip' }, items);
      let cur = -1;
      return {
        el: laneBox('scenes', 'Scenes', strip),
        update(ms) {
          let i = -1;
          while (i + 1 < scenes.length && scenes[i + 1].start <= ms) i++;
          if (i === cur) return;
          if (cur >= 0) items[cur].classList.remove('current');
          if (i >= 0) items[i].classList.add('current');
          cur = i;
        },
      };
    }

    function loudnessLane(points, summary, duration) {
      const y = (lufs) => ((0 - lufs) / (0 - LUFS_FLOOR)) * 100;
      const x = (ms) => (ms / duration) * 1000;
      const line = (key, cls) => {
        const pl = document.createElementNS(SVG, 'polyline');
        pl.setAttribute('class', cls);
        pl.setAttribute('points', points.map((p) => x(p.t).toFixed(1) + ',' + y(p[key]).toFixed(1)).join(' '));
        return pl;
      };
      const svg = document.createElementNS(SVG, 'svg');
      svg.setAttribute('viewBox', '0 0 1000 100');
      svg.setAttribute('preserveAspectRatio', 'none');
      svg.setAttribute('class', 'loudness');
      svg.setAttribute('role', 'img');
      svg.setAttribute('aria-label', 'Loudness: momentary and short-term LUFS over time');
      const ref = document.createElementNS(SVG, 'line');
      ref.setAttribute('class', 'ref');
      ref.setAttribute('x1', '0');
      ref.setAttribute('x2', '1000');
      ref.setAttribute('y1', String(y(-23)));
      ref.setAttribute('y2', String(y(-23)));
      svg.append(ref, line('m', 'momentary'), line('s', 'short-term'));
      const head = playhead();
      const box = h('div', { class: 'track graph', title: 'Momentary (thin) and short-term (thick) loudness, -60 to 0 LUFS; the dashed line is -23 LUFS. Click to seek.',
        onclick: (ev) => {
          const r = box.getBoundingClientRect();
          seek(((ev.clientX - r.left) / r.width) * duration);
        } }, svg, head.el);
      const integrated = summary && summary.get('integrated_lufs');
      const name = 'Loudness' + (integrated ? ' · ' + integrated.value + ' LUFS' : '');
      return { el: laneBox('loudness', name, box), update: (ms) => head.update(ms, duration) };
    }

    function spanLane(kind, name, spans, duration, label, cls, engine) {
      const head = playhead();
      const items = spans.map((s) => {
        const b = h('button', { type: 'button', class: 'span ' + cls(s), dataset: { seek: String(s.start) },
          title: label(s) + ': ' + clock(s.start) + ' – ' + clock(s.end) }, h('span', { text: label(s) }));
        b.style.left = pct(s.start, duration) + '%';
        b.style.width = Math.max(0.4, pct(s.end, duration) - pct(s.start, duration)) + '%';
        return b;
      });
      const box = laneBox(kind, name, h('div', { class: 'track' }, items, head.el));
      if (engine) box.dataset.engine = engine;
      return { el: box, update: (ms) => head.update(ms, duration) };
    }

    function transcriptLane(engine, utts, named) {
      const rows = utts.map((u) => {
        const words = [];
        u.words.forEach((w, i) => {
          if (i) words.push(' ');
          words.push(h('button', { type: 'button', class: 'word', dataset: { seek: String(w.start), start: String(w.start), end: String(w.end), word: w.word },
            title: clock(w.start) }, w.word));
        });
        return h('p', { class: 'utt', dataset: { start: String(u.start), end: String(u.end) } },
          h('button', { type: 'button', class: 'ts mono', dataset: { seek: String(u.start) }, text: clock(u.start) }), ' ', words);
      });
      const box = h('div', { class: 'transcript', dataset: { engine } }, rows);
      let cur = null;
      let curWord = null;
      return {
        el: laneBox('transcript', named ? 'Transcript · ' + engine : 'Transcript', box),
        update(ms) {
          const i = utts.findIndex((u) => ms >= u.start && ms < u.end);
          const row = i >= 0 ? rows[i] : null;
          if (row !== cur) {
            if (cur) cur.classList.remove('current');
            if (row) {
              row.classList.add('current');
              // Keep it in view inside the box, without scrolling the page.
              if (row.offsetTop < box.scrollTop || row.offsetTop + row.offsetHeight > box.scrollTop + box.clientHeight) {
                box.scrollTop = Math.max(0, row.offsetTop - box.clientHeight / 3);
              }
            }
            cur = row;
          }
          let word = null;
          if (row) {
            for (const w of row.querySelectorAll('.word')) {
              if (ms >= Number(w.dataset.start) && ms < Number(w.dataset.end)) word = w;
            }
          }
          if (word !== curWord) {
            if (curWord) curWord.classList.remove('now');
            if (word) word.classList.add('now');
            curWord = word;
          }
        },
      };
    }

    function ocrLane(lines) {
      const rows = lines.map((l) => h('li', { class: 'ocr-line', dataset: { start: String(l.start), end: String(l.end) } },
        h('button', { type: 'button', class: 'ts mono', dataset: { seek: String(l.start) }, text: clock(l.start) + ' – ' + clock(l.end) }),
        ' ', h('button', { type: 'button', class: 'ocr-text', dataset: { seek: String(l.start) }, text: l.text,
          title: l.confidence != null ? 'confidence ' + l.confidence.toFixed(2) : null })));
      return {
        el: laneBox('ocr', 'On screen', h('ol', { class: 'ocr-lines' }, rows)),
        update(ms) {
          lines.forEach((l, i) => rows[i].classList.toggle('current', ms >= l.start && ms < l.end));
        },
      };
    }

    // ------------------------------------------------------ ticking

    // tick follows the player: it applies a seek asked for before the
    // player could take it, seeks again if the player went back to its
    // start within 2 s (hls.js moves a fresh player to its start position
    // once the first fragment is in), and moves the playheads and the
    // highlights.
    function tick(force) {
      const v = opts.video();
      if (v && pendingSeek != null && v.readyState >= 2) {
        const ms = pendingSeek;
        pendingSeek = null;
        seek(ms);
      }
      if (v && verify && !v.seeking) {
        const age = performance.now() - verify.at;
        if (age > 2000) verify = null;
        else if (v.currentTime < 1 && verify.target > 1 && verify.tries < 3) {
          verify.tries++;
          v.currentTime = verify.target;
        }
      }
      if (!view) return;
      const d = currentDuration();
      if (Math.abs(d - state.duration) > 500 && !force) {
        render(); // the video's duration is known now, or the stream grew
        return;
      }
      const ms = v ? (v.currentTime + opts.offset()) * 1000 : 0;
      el.dataset.playhead = String(Math.round(ms));
      view.update(ms);
    }
    const timer = setInterval(() => tick(false), 250);
    scope.onDispose(() => clearInterval(timer));

    weir.poll(scope, refresh);
    return { el, seek };
  }

  weir.timeline = { mount, addResult, finish, newModel, clock };
  weir.searchBox = searchBox;
})();
