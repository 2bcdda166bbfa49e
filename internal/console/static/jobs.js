// weir console: the Jobs view (#/jobs, #/jobs/{id}).
//
// The list pages GET /jobs with each job's engines and their progress; a
// form starts a job (POST /jobs) on a VOD title or live stream with the
// engines ticked from GET /engines; a search box looks through every job's
// texts (GET /search). A job's page follows GET /jobs/{id} while it runs:
// the job drawn as a graph (weir.dag), each engine's chunk counts, its
// heartbeat and instances, why chunks were dropped or failed, and a Cancel
// button (POST /jobs/{id}/cancel).
(function () {
  'use strict';

  const weir = window.weir = window.weir || {};
  const JOB_STATUSES = ['pending', 'running', 'complete', 'failed', 'cancelled'];
  const active = new Set(['pending', 'running']);

  // sourceOf describes a job's source: {kind, id, label, href}.
  function sourceOf(src) {
    src = src || {};
    if (src.vod) return { kind: 'vod', id: src.vod, label: src.vod, href: weir.streamHref(src.vod) };
    if (src.live) return { kind: 'live', id: src.live, label: src.live, href: weir.streamHref(src.live) };
    if (src.topic) return { kind: 'topic', id: src.topic, label: src.topic, href: null };
    if (src.url) return { kind: 'url', id: src.url, label: src.url, href: null };
    return { kind: '?', id: '', label: 'unknown', href: null };
  }

  function sourceLink(src) {
    const s = sourceOf(src);
    const text = s.kind + ' ' + s.label;
    return s.href ? weir.h('a', { href: s.href, class: 'mono', text }) : weir.h('span', { class: 'mono', text });
  }

  // finished is the chunks of an engine with an answer.
  function finished(e) {
    return (e.done || 0) + (e.ignored || 0) + (e.dropped || 0) + (e.failed || 0);
  }

  function chunkingText(c) {
    c = c || {};
    const parts = [];
    if (c.duration) parts.push(c.duration + ' chunks');
    if (c.frame_rate) parts.push(c.frame_rate + ' fps');
    if (c.scene_threshold) parts.push('scenes > ' + c.scene_threshold);
    return parts.join(' · ');
  }

  // jobGraph turns a job (GET /jobs/{id}) into the nodes and edges
  // weir.dag draws: its source, the chunker, each engine, and the results
  // store. An engine of a task DAG that reads another engine's output
  // (its input, from a route) hangs off that engine instead of the
  // chunker, the edge labelled with what travels (frames, documents).
  function jobGraph(job) {
    const src = sourceOf(job.source);
    const nodes = [
      { id: 'source', kind: 'source', label: src.kind === 'url' ? 'url' : src.kind + ' ' + src.label, sub: 'source', href: src.href, title: src.kind + ' ' + src.label },
      { id: 'chunker', kind: 'chunker', label: 'chunker', sub: chunkingText(job.chunking) },
    ];
    const edges = [{ from: 'source', to: 'chunker' }];
    for (const e of job.engines || []) {
      const id = 'engine:' + e.name;
      nodes.push({
        id, kind: 'engine', label: e.name, status: e.status,
        sub: e.status + ' · ' + finished(e) + '/' + (e.total || 0),
        title: e.name + ': ' + e.status + ', ' + e.done + ' done, ' + e.dropped + ' dropped, ' + e.failed + ' failed of ' + e.total + ' chunks',
      });
      const from = e.input ? { from: 'engine:' + e.input.from, label: e.input.kind } : { from: 'chunker' };
      edges.push({ ...from, to: id }, { from: id, to: 'results' });
    }
    nodes.push({ id: 'results', kind: 'sink', label: 'results', sub: 'GET /jobs/{id}/results' });
    return { nodes, edges };
  }

  function engineBar(e) {
    const b = weir.progressBar();
    b.set(e.total ? (finished(e) / e.total) * 100 : 0);
    return b.el;
  }

  // engineCell is a job's engines in the list: name, bar, counts.
  function engineCell(job) {
    return (job.engines || []).map((e) => weir.h('div', { class: 'engine-progress', dataset: { engine: e.name } },
      weir.h('span', { class: 'engine-name', text: e.name }), engineBar(e),
      weir.h('span', { class: 'muted num', text: finished(e) + '/' + e.total + (e.dropped ? ' · ' + e.dropped + ' dropped' : '') + (e.failed ? ' · ' + e.failed + ' failed' : '') })));
  }

  // ----------------------------------------------------------- the list

  function jobsListView(scope, app, query) {
    const h = weir.h;
    let poller = null;
    const kick = () => poller && poller.kick();
    const params = (query && query.params) || new URLSearchParams();
    const create = createForm(scope, params.get('source'), (job) => {
      location.hash = '#/jobs/' + encodeURIComponent(job.id);
    });
    const search = weir.searchBox(scope, {
      stream: '',
      onHit: (hit) => {
        location.hash = hit.stream_id ? weir.streamHref(hit.stream_id, hit.start_ms / 1000) : '#/jobs/' + encodeURIComponent(hit.job_id);
      },
    });
    const list = weir.pagedList(scope, '/jobs', JOB_STATUSES,
      (status) => status ? 'No jobs with status ' + status + '.' : 'No jobs yet: start one above, or run weir jobs create.',
      (job) => {
        const href = '#/jobs/' + encodeURIComponent(job.id);
        return h('tr', { class: 'clickable', dataset: { id: job.id, status: job.status }, onclick: (ev) => { if (!ev.target.closest('a')) location.hash = href; } },
          h('td', null, h('a', { href, text: job.title || job.id }), job.title ? h('div', { class: 'mono muted', text: job.id }) : null),
          h('td', null, weir.statusPill(job.status)),
          h('td', { class: 'source' }, sourceLink(job.source)),
          h('td', { class: 'engines' }, engineCell(job)),
          h('td', { title: weir.fmtTime(job.created_at), text: weir.fmtAgo(job.created_at) }));
      }, kick, 5);

    app.append(h('div', { class: 'stack' },
      create.el,
      h('section', { class: 'card', id: 'search-card' },
        h('div', { class: 'card-head' }, h('h2', { text: 'Search results' })),
        search.el),
      h('section', { class: 'card' },
        h('div', { class: 'card-head' }, h('h2', { text: 'Jobs' }), h('span', { class: 'spacer' }), list.filter),
        list.listNote,
        h('div', { class: 'table-wrap' },
          h('table', { id: 'jobs-table' },
            h('thead', null, h('tr', null, ['Job', 'Status', 'Source', 'Engines', 'Created'].map((t) => h('th', { text: t })))),
            list.tbody)),
        h('div', { class: 'row' }, list.more))));

    poller = poll(scope, list);
    function poll(sc, l) {
      return weir.poll(sc, async () => {
        try {
          await l.refresh();
        } catch (e) {
          weir.setNotice(l.listNote, 'bad', 'Could not list jobs: ' + e.message);
          return 5000;
        }
        return l.state.items.some((j) => active.has(j.status)) ? 2000 : 10000;
      });
    }
  }

  // createForm starts a job: a source (a VOD title or live stream),
  // engines ticked from GET /engines, the chunk length and a title.
  function createForm(scope, preselect, onCreated) {
    const h = weir.h;
    const sourceSel = h('select', { id: 'job-source', required: true }, h('option', { value: '', text: 'Loading…' }));
    const engineBox = h('div', { class: 'engine-picks', id: 'job-engines' }, h('span', { class: 'muted', text: 'Loading engines…' }));
    const duration = h('input', { type: 'text', id: 'job-duration', value: '10s', size: '6', pattern: '[0-9]+(\\.[0-9]+)?(ms|s|m|h)?([0-9]+(\\.[0-9]+)?(ms|s|m|h))*', title: 'A Go duration such as 10s or 1m30s, or seconds' });
    const title = h('input', { type: 'text', id: 'job-title', maxlength: '200', placeholder: 'optional' });
    const submit = h('button', { type: 'submit', text: 'Start job' });
    const note = h('div', { class: 'notice', role: 'status' });

    async function load() {
      try {
        const [vods, lives, engines] = await Promise.all([
          weir.api('GET', '/vod?status=ready&limit=100'),
          weir.api('GET', '/streams?limit=100'),
          weir.api('GET', '/engines'),
        ]);
        if (!scope.alive) return;
        const opt = (kind, it) => h('option', { value: kind + ':' + it.stream_id, text: (it.title || it.stream_id) + ' (' + it.stream_id + ')' });
        const streams = (lives.items || []).filter((it) => it.status !== 'failed');
        sourceSel.replaceChildren(h('option', { value: '', text: 'Choose a title or stream' }),
          h('optgroup', { label: 'VOD titles' }, (vods.items || []).map((it) => opt('vod', it))),
          h('optgroup', { label: 'Live streams' }, streams.map((it) => opt('live', it))));
        if (preselect) {
          const want = Array.from(sourceSel.options).find((o) => o.value.endsWith(':' + preselect));
          if (want) sourceSel.value = want.value;
        }
        engineBox.replaceChildren(...(engines.items || []).map((e) => {
          const ok = e.status !== 'unavailable';
          return h('label', { class: 'engine-pick' + (ok ? '' : ' muted'), title: ok ? e.summary || '' : e.reason || 'unavailable' },
            h('input', { type: 'checkbox', name: 'engine', value: e.name, disabled: !ok }),
            ' ', h('strong', { text: e.name }), ' ', h('span', { class: 'muted', text: e.title || '' }),
            ok ? null : h('span', { class: 'pill bad', text: 'unavailable' }));
        }));
      } catch (e) {
        weir.setNotice(note, 'bad', 'Could not load the sources or engines: ' + e.message);
      }
    }

    const form = h('form', {
      id: 'job-form',
      onsubmit: async (ev) => {
        ev.preventDefault();
        const [kind, ...rest] = sourceSel.value.split(':');
        const engines = Array.from(engineBox.querySelectorAll('input[name=engine]:checked')).map((c) => ({ name: c.value }));
        if (!kind) return weir.setNotice(note, 'bad', 'Choose a source.');
        if (!engines.length) return weir.setNotice(note, 'bad', 'Tick at least one engine.');
        const body = { source: { [kind]: rest.join(':') }, engines, chunking: { duration: duration.value.trim() || '10s' } };
        if (title.value.trim()) body.title = title.value.trim();
        submit.disabled = true;
        try {
          const job = await weir.api('POST', '/jobs', body);
          weir.setNotice(note, 'ok', 'Started ', h('a', { href: '#/jobs/' + encodeURIComponent(job.id), text: job.id }), '.');
          onCreated(job);
        } catch (e) {
          weir.setNotice(note, 'bad', e.message);
        } finally {
          submit.disabled = false;
        }
      },
    },
    h('div', { class: 'row fields' },
      h('div', { class: 'field' }, h('label', { for: 'job-source', text: 'Source' }), sourceSel),
      h('div', { class: 'field narrow' }, h('label', { for: 'job-duration', text: 'Chunk duration' }), duration),
      h('div', { class: 'field' }, h('label', { for: 'job-title', text: 'Title' }), title)),
    h('fieldset', { class: 'engines-field' }, h('legend', { text: 'Engines' }), engineBox),
    h('div', { class: 'row' }, submit), note);
    load();
    const el = h('section', { class: 'card', id: 'job-create' },
      h('details', { open: preselect ? true : null },
        h('summary', null, h('h2', { class: 'inline', text: 'Start a job' })),
        form,
        h('p', { class: 'hint', text: 'Engines that cannot run here (a program missing) are greyed out; hover for why. docs/engines.md describes each engine and its options; the API and the CLI take options and flow policies too.' })));
    return { el };
  }

  // ------------------------------------------------------ one job's page

  function jobDetailView(scope, app, id) {
    const h = weir.h;
    const title = h('h1', { text: id });
    const pill = h('span');
    const note = h('div', { class: 'notice', role: 'status' });
    const cancel = h('button', { type: 'button', class: 'danger', id: 'job-cancel', text: 'Cancel job', hidden: true });
    const graph = h('div', { class: 'dag-box', id: 'job-dag' });
    const engines = h('div', { class: 'table-wrap' });
    const reasons = h('div', { id: 'job-reasons' });
    const info = h('div');
    let job = null;
    let poller = null;

    cancel.addEventListener('click', async () => {
      if (!confirm('Cancel job ' + id + '? Its engines get no more chunks; the results so far stay.')) return;
      cancel.disabled = true;
      try {
        job = await weir.api('POST', '/jobs/' + encodeURIComponent(id) + '/cancel');
        render();
      } catch (e) {
        weir.setNotice(note, 'bad', e.message);
      } finally {
        cancel.disabled = false;
        if (poller) poller.kick();
      }
    });

    function render() {
      title.textContent = job.title || job.id;
      document.title = (job.title || job.id) + ' · weir';
      pill.replaceChildren(weir.statusPill(job.status));
      cancel.hidden = !active.has(job.status);
      if (job.error) weir.setNotice(note, job.status === 'failed' ? 'bad' : 'warn', (job.status === 'failed' ? 'The job failed: ' : 'Stopped: ') + job.error);
      else weir.setNotice(note, '');
      graph.replaceChildren(weir.dag.draw(jobGraph(job)));
      renderEngines();
      const src = sourceOf(job.source);
      weir.fill(info, weir.facts([
        ['Job id', h('span', { class: 'mono', text: job.id })],
        ['Source', sourceLink(job.source)],
        ['Results', src.href ? h('a', { href: src.href, text: 'on the timeline under the player' }) : null],
        ['Chunking', chunkingText(job.chunking) + (job.chunking && job.chunking.audio ? ' · audio ' + job.chunking.audio : '')],
        ['Created', weir.fmtTime(job.created_at)],
        ['Updated', weir.fmtTime(job.updated_at)],
        ['Export', h('span', null,
          h('a', { href: '/jobs/' + encodeURIComponent(job.id) + '/results?limit=1000', target: '_blank', rel: 'noopener', text: 'JSON' }), ' · ',
          h('a', { href: '/jobs/' + encodeURIComponent(job.id) + '/results?format=vtt', text: 'transcript (WebVTT)' }), ' · ',
          h('a', { href: '/jobs/' + encodeURIComponent(job.id) + '/results?format=srt', text: 'SRT' }), ' · ',
          h('a', { href: '/jobs/' + encodeURIComponent(job.id) + '/results?format=vtt&kind=screen', text: 'text on screen (WebVTT)' }))],
      ]));
    }

    function renderEngines() {
      const cols = ['Engine', 'Status', 'Progress', 'Total', 'Queued', 'Sent', 'Done', 'Ignored', 'Dropped', 'Failed', 'Last heartbeat', 'Instances'];
      const rows = (job.engines || []).map((e) => h('tr', { dataset: { engine: e.name, status: e.status } },
        h('td', null, h('strong', { text: e.name })),
        h('td', null, weir.statusPill(e.status)),
        h('td', { class: 'progress-cell' }, engineBar(e), h('span', { class: 'muted num', text: e.total ? Math.floor((finished(e) / e.total) * 100) + ' %' : '—' })),
        ['total', 'queued', 'sent', 'done', 'ignored', 'dropped', 'failed'].map((k) => h('td', { class: 'num count-' + k, text: String(e[k] || 0) })),
        h('td', { title: e.last_heartbeat ? weir.fmtTime(e.last_heartbeat) : null, text: e.last_heartbeat ? weir.fmtAgo(e.last_heartbeat) : '—' }),
        h('td', { class: 'mono muted' }, (e.instances || []).map((i) => h('div', { text: i })))));
      engines.replaceChildren(h('table', { id: 'job-engines-table' },
        h('thead', null, h('tr', null, cols.map((t) => h('th', { text: t })))),
        h('tbody', null, rows)));
      // Why chunks were dropped or failed, engine by engine.
      const lines = [];
      for (const e of job.engines || []) {
        const p = e.policy || {};
        if (e.dropped) {
          lines.push(h('li', { dataset: { engine: e.name, reason: 'dropped' } }, h('strong', { text: e.name }),
            ': ' + e.dropped + ' chunk' + (e.dropped === 1 ? '' : 's') + ' dropped: the engine fell behind the live source and more than max_backlog (' + (p.max_backlog || '?') + ') chunks were waiting, so the oldest waiting one was dropped.'));
        }
        if (e.failed) {
          lines.push(h('li', { dataset: { engine: e.name, reason: 'failed' } }, h('strong', { text: e.name }),
            ': ' + e.failed + ' chunk' + (e.failed === 1 ? '' : 's') + ' failed: an ERROR answer or no answer within chunk_timeout (' + (p.chunk_timeout || '?') + ') on each of ' + (1 + (p.retries || 0)) + ' tries.'));
        }
        if (e.error) {
          lines.push(h('li', { class: 'fail-reason', dataset: { engine: e.name, reason: 'error' } }, h('strong', { text: e.name }), ': ' + e.error));
        }
      }
      reasons.replaceChildren(...(lines.length ? [h('h3', { text: 'Drops and failures' }), h('ul', null, lines)] : []));
    }

    app.append(
      h('div', { class: 'crumbs' }, h('a', { href: '#/jobs', text: '← Jobs' })),
      h('div', { class: 'card-head' }, title, pill, h('span', { class: 'spacer' }), cancel),
      note,
      h('div', { class: 'grid' },
        h('section', { class: 'card' }, h('h2', { text: 'Graph' }), graph),
        h('section', { class: 'card' }, h('h2', { text: 'Job' }), info)),
      h('section', { class: 'card wide' }, h('h2', { text: 'Engines' }), engines, reasons,
        h('p', { class: 'hint', text: 'Total is every chunk cut for the engine so far; queued chunks wait for room in its flow window (max_in_flight), sent ones are in flight, and done, ignored, dropped and failed ones have their answer. Heartbeats and instances come from the engines\' engine_heartbeat messages.' })));

    poller = weir.poll(scope, async () => {
      try {
        job = await weir.api('GET', '/jobs/' + encodeURIComponent(id));
      } catch (e) {
        weir.setNotice(note, 'bad', e.message);
        return e.status === 404 ? 0 : 5000;
      }
      if (!scope.alive) return 0;
      render();
      return active.has(job.status) ? 1500 : 0;
    });
  }

  Object.assign(weir, { jobsListView, jobDetailView, jobGraph });
})();
