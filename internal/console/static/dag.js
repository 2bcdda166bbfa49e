// weir console: drawing a directed acyclic graph as SVG.
//
// weir.dag.draw({nodes, edges}) lays the graph out in columns, left to
// right: a node's column is the length of the longest path that reaches it,
// so every edge points rightwards; within a column nodes are ordered by the
// mean row of the nodes that feed them, which keeps lines from crossing in
// the common shapes (a fan-out and a fan-in). It knows nothing about jobs:
// jobs.js turns a job into nodes and edges (weir.dag.jobGraph), and a job
// with routes between its tasks only needs more edges.
//
//   nodes: [{id, label, sub?, kind?, status?, href?, title?}]
//   edges: [{from, to, label?}]   (ids of nodes; unknown ids are skipped)
//
// kind and status become classes (node-<kind>, status-<status>) that
// app.css colours; href makes the node a link.
(function () {
  'use strict';

  const weir = window.weir = window.weir || {};
  const SVG = 'http://www.w3.org/2000/svg';
  const NODE_W = 164;
  const NODE_H = 48;
  const COL_GAP = 56;
  const ROW_GAP = 14;
  const PAD = 8;
  let drawn = 0; // makes each drawing's marker id unique on the page

  function el(tag, attrs, ...children) {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v != null) e.setAttribute(k, String(v));
    }
    for (const c of children) {
      if (c != null) e.append(c);
    }
    return e;
  }

  // clip shortens text to fit a node, with an ellipsis.
  function clip(text, max) {
    text = String(text == null ? '' : text);
    return text.length > max ? text.slice(0, max - 1) + '…' : text;
  }

  // layers assigns each node its column (longest path from a node with
  // no incoming edge). Nodes on a cycle, which a DAG has none of, keep
  // the column they had when the cycle was found.
  function layers(nodes, edges) {
    const col = new Map(nodes.map((n) => [n.id, 0]));
    const incoming = new Map(nodes.map((n) => [n.id, 0]));
    const out = new Map(nodes.map((n) => [n.id, []]));
    for (const e of edges) {
      out.get(e.from).push(e.to);
      incoming.set(e.to, incoming.get(e.to) + 1);
    }
    const queue = nodes.filter((n) => incoming.get(n.id) === 0).map((n) => n.id);
    while (queue.length) {
      const id = queue.shift();
      for (const to of out.get(id)) {
        col.set(to, Math.max(col.get(to), col.get(id) + 1));
        incoming.set(to, incoming.get(to) - 1);
        if (incoming.get(to) === 0) queue.push(to);
      }
    }
    return col;
  }

  // layout places the nodes: {pos: Map id → {x, y}, width, height}.
  function layout(nodes, edges) {
    const col = layers(nodes, edges);
    const columns = [];
    for (const n of nodes) {
      const c = col.get(n.id);
      (columns[c] = columns[c] || []).push(n.id);
    }
    const row = new Map();
    columns.forEach((ids, c) => {
      if (c > 0) {
        // Order by the mean row of the predecessors (barycentre); ties
        // keep the order the nodes were given in.
        const order = new Map(ids.map((id, i) => [id, i]));
        const bary = (id) => {
          const rows = edges.filter((e) => e.to === id && row.has(e.from)).map((e) => row.get(e.from));
          return rows.length ? rows.reduce((a, b) => a + b, 0) / rows.length : order.get(id);
        };
        ids.sort((a, b) => bary(a) - bary(b) || order.get(a) - order.get(b));
      }
      ids.forEach((id, i) => row.set(id, i - (ids.length - 1) / 2));
    });
    const tallest = Math.max(1, ...columns.map((ids) => (ids ? ids.length : 0)));
    const height = tallest * NODE_H + (tallest - 1) * ROW_GAP + 2 * PAD;
    const pos = new Map();
    for (const n of nodes) {
      pos.set(n.id, {
        x: PAD + col.get(n.id) * (NODE_W + COL_GAP),
        y: height / 2 + row.get(n.id) * (NODE_H + ROW_GAP) - NODE_H / 2,
      });
    }
    const width = columns.length * NODE_W + (columns.length - 1) * COL_GAP + 2 * PAD;
    return { pos, width, height };
  }

  function drawEdge(e, a, b, marker) {
    const x1 = a.x + NODE_W, y1 = a.y + NODE_H / 2;
    const x2 = b.x - 2, y2 = b.y + NODE_H / 2;
    const mid = (x1 + x2) / 2;
    const g = el('g', { class: 'edge', 'data-from': e.from, 'data-to': e.to },
      el('path', { d: `M${x1},${y1} C${mid},${y1} ${mid},${y2} ${x2},${y2}`, 'marker-end': `url(#${marker})` }));
    if (e.label) {
      g.append(el('text', { x: mid, y: (y1 + y2) / 2 - 4, 'text-anchor': 'middle', class: 'edge-label' }, clip(e.label, 14)));
    }
    return g;
  }

  function drawNode(n, p) {
    const classes = ['node', 'node-' + (n.kind || 'task')];
    if (n.status) classes.push('status-' + n.status);
    const title = el('title');
    title.textContent = n.title || [n.label, n.sub].filter(Boolean).join('\n');
    const label = el('text', { x: p.x + 10, y: p.y + (n.sub ? 20 : 29), class: 'label' });
    label.textContent = clip(n.label, 20);
    const g = el('g', { class: classes.join(' '), 'data-id': n.id },
      title,
      el('rect', { x: p.x, y: p.y, width: NODE_W, height: NODE_H, rx: 8 }),
      label);
    if (n.sub) {
      const sub = el('text', { x: p.x + 10, y: p.y + 37, class: 'sub' });
      sub.textContent = clip(n.sub, 26);
      g.append(sub);
    }
    if (!n.href) return g;
    const a = el('a', { href: n.href });
    a.append(g);
    return a;
  }

  // draw returns the graph as an <svg> element (class "dag") sized to
  // fit; it scales down, never up, in a narrower box.
  function draw(graph) {
    const nodes = (graph.nodes || []).filter((n, i, all) => n && n.id != null && all.findIndex((m) => m.id === n.id) === i);
    const ids = new Set(nodes.map((n) => n.id));
    const edges = (graph.edges || []).filter((e) => e && ids.has(e.from) && ids.has(e.to) && e.from !== e.to);
    const { pos, width, height } = layout(nodes, edges);
    const marker = 'dag-arrow-' + (++drawn);
    const svg = el('svg', {
      class: 'dag', viewBox: `0 0 ${width} ${height}`, width, height, role: 'img',
      'aria-label': 'Graph of ' + nodes.length + ' tasks: ' + edges.map((e) => e.from + ' → ' + e.to).join(', '),
    },
    el('defs', null,
      el('marker', { id: marker, viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto-start-reverse' },
        el('path', { d: 'M0,0 L10,5 L0,10 z', class: 'arrow' }))));
    for (const e of edges) svg.append(drawEdge(e, pos.get(e.from), pos.get(e.to), marker));
    for (const n of nodes) svg.append(drawNode(n, pos.get(n.id)));
    return svg;
  }

  weir.dag = { draw, layout };
})();
