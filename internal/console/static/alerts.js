// weir console: the Alerts view (#/alerts).
//
// Three cards, refreshed every few seconds: the rules (GET /rules, each
// with a Delete button: DELETE /rules/{id}), the recent alerts (GET
// /alerts: open ones first to catch the eye, each with its media or
// wall-clock times and a link to its job or stream), and the dead-lettered
// deliveries (GET /alerts/deliveries?state=dead, each with a Redeliver
// button: POST /alerts/deliveries/{id}/redeliver). Rules are created with
// POST /rules or weir rules add; docs/alerts.md is the reference.
(function () {
  'use strict';

  const weir = window.weir = window.weir || {};

  // describeCondition says what a rule looks for in a few words.
  function describeCondition(c) {
    c = c || {};
    const parts = [c.type || '?'];
    if (c.phrase) parts.push('"' + c.phrase + '"');
    if (c.pattern) parts.push('/' + c.pattern + '/');
    if (c.reference) parts.push('"' + c.reference + '"');
    if (c.label) parts.push(c.label + ' ≥ ' + (c.min_count || 1));
    if (c.min_lufs != null || c.max_lufs != null) {
      parts.push((c.measure || 'short_term') + ' outside [' + (c.min_lufs != null ? c.min_lufs : '−∞') + ', ' + (c.max_lufs != null ? c.max_lufs : '+∞') + '] LUFS');
    }
    if (c.min_duration) parts.push('for ' + c.min_duration);
    return parts.join(' ');
  }

  function describeScope(s) {
    s = s || {};
    for (const k of ['stream', 'title', 'job']) {
      if (s[k]) return k + ' ' + s[k];
    }
    return 'all jobs';
  }

  // whereLink links an alert to its job, or to its stream's page.
  function whereLink(a) {
    const h = weir.h;
    if (a.job_id) return h('a', { href: '#/jobs/' + encodeURIComponent(a.job_id), class: 'mono', text: a.job_id });
    if (a.stream_id) return h('a', { href: weir.streamHref(a.stream_id), class: 'mono', text: a.stream_id });
    return h('span', { class: 'muted', text: a.scope });
  }

  // span is when an alert's condition held: media times of its job's
  // source, or wall-clock times for a stream's segments.
  function span(a) {
    if (a.start_ms != null) {
      const end = a.state === 'resolved' ? weir.fmtMS(a.end_ms) : 'now (' + weir.fmtMS(a.end_ms) + ' so far)';
      return weir.fmtMS(a.start_ms) + ' – ' + end;
    }
    return weir.fmtTime(a.started_at) + ' – ' + (a.ended_at ? weir.fmtTime(a.ended_at) : 'now');
  }

  function alertsView(scope, app) {
    const h = weir.h;
    const note = h('div', { class: 'notice', role: 'status' });
    const rules = h('tbody', { id: 'rules-body' });
    const alerts = h('tbody', { id: 'alerts-body' });
    const dead = h('tbody', { id: 'dead-body' });
    let poller = null;

    async function act(button, method, path, done) {
      button.disabled = true;
      try {
        await weir.api(method, path);
        weir.setNotice(note, 'ok', done);
      } catch (e) {
        weir.setNotice(note, 'bad', e.message);
      }
      if (poller) poller.kick();
    }

    function renderRules(items) {
      if (!items.length) {
        rules.replaceChildren(h('tr', null, h('td', { colspan: '6', class: 'muted', text: 'No rules yet: create one with POST /rules or weir rules add (docs/alerts.md).' })));
        return;
      }
      rules.replaceChildren(...items.map((r) => {
        const del = h('button', { type: 'button', class: 'ghost danger', text: 'Delete' });
        del.onclick = () => {
          if (confirm('Delete rule ' + r.name + '? Its open alerts are resolved and its pending deliveries dropped.')) {
            act(del, 'DELETE', '/rules/' + encodeURIComponent(r.id), 'Rule ' + r.id + ' deleted.');
          }
        };
        return h('tr', { dataset: { id: r.id } },
          h('td', null, h('strong', { text: r.name }), h('div', { class: 'mono muted', text: r.id })),
          h('td', { class: 'condition', text: describeCondition(r.condition) }),
          h('td', { text: describeScope(r.scope) }),
          h('td', { class: 'num', text: r.cooldown }),
          h('td', null, (r.webhooks || []).map((w) => h('div', { class: 'mono', text: w.url }))),
          h('td', null, del));
      }));
    }

    function renderAlerts(items) {
      if (!items.length) {
        alerts.replaceChildren(h('tr', null, h('td', { colspan: '5', class: 'muted', text: 'No alerts raised yet.' })));
        return;
      }
      const open = items.filter((a) => a.state === 'open');
      const rest = items.filter((a) => a.state !== 'open');
      alerts.replaceChildren(...open.concat(rest).map((a) => h('tr', { dataset: { id: a.id, state: a.state } },
        h('td', null, h('span', { class: 'pill ' + (a.state === 'open' ? 'bad' : 'ok'), text: a.state })),
        h('td', null, h('div', { text: a.summary }), h('div', { class: 'mono muted', text: a.id })),
        h('td', null, whereLink(a)),
        h('td', { class: 'num', text: span(a) }),
        h('td', { title: weir.fmtTime(a.raised_at), text: weir.fmtAgo(a.raised_at) }))));
    }

    function renderDead(items) {
      if (!items.length) {
        dead.replaceChildren(h('tr', null, h('td', { colspan: '5', class: 'muted', text: 'No dead letters: every delivery went through or is still being tried.' })));
        return;
      }
      dead.replaceChildren(...items.map((d) => {
        const again = h('button', { type: 'button', text: 'Redeliver' });
        again.onclick = () => act(again, 'POST', '/alerts/deliveries/' + encodeURIComponent(d.id) + '/redeliver', 'Delivery ' + d.id + ' queued again.');
        return h('tr', { dataset: { id: d.id } },
          h('td', null, h('div', { class: 'mono', text: d.id })),
          h('td', { class: 'mono', text: d.target === 'webhook' ? d.url : 'weir.alerts' }),
          h('td', { class: 'num', text: String(d.attempts) }),
          h('td', { class: 'fail-reason', text: d.last_error || '' }),
          h('td', null, again));
      }));
    }

    const table = (id, cols, body) => h('div', { class: 'table-wrap' },
      h('table', { id }, h('thead', null, h('tr', null, cols.map((t) => h('th', { text: t })))), body));

    app.append(h('div', { class: 'stack' },
      note,
      h('section', { class: 'card', id: 'rules-card' },
        h('h2', { text: 'Rules' }),
        table('rules-table', ['Rule', 'Condition', 'Scope', 'Cool-down', 'Webhooks', ''], rules)),
      h('section', { class: 'card', id: 'alerts-card' },
        h('h2', { text: 'Recent alerts' }),
        table('alerts-table', ['State', 'Alert', 'Where', 'When', 'Raised'], alerts)),
      h('section', { class: 'card', id: 'dead-card' },
        h('h2', { text: 'Dead-lettered deliveries' }),
        table('dead-table', ['Delivery', 'Target', 'Attempts', 'Last error', ''], dead),
        h('p', { class: 'hint', text: 'A delivery is dead once every attempt (exponential backoff with jitter) failed until its rule\'s retry time ran out. Redeliver sends it again, with the same payload and event id.' }))));

    poller = weir.poll(scope, async () => {
      try {
        const [r, a, d] = await Promise.all([
          weir.api('GET', '/rules'),
          weir.api('GET', '/alerts?limit=50'),
          weir.api('GET', '/alerts/deliveries?state=dead&limit=50'),
        ]);
        if (!scope.alive) return 0;
        renderRules(r.items || []);
        renderAlerts(a.items || []);
        renderDead(d.items || []);
      } catch (e) {
        weir.setNotice(note, 'bad', 'Could not read the alerts: ' + e.message);
        return 5000;
      }
      return 3000;
    });
  }

  Object.assign(weir, { alertsView });
})();
