// The dashboard page: a list of Rollouts, a page per Rollout, live from server-sent events.
'use strict';

const $ = (sel) => document.querySelector(sel);
let rollouts = [];
let current = null; // {ns, name} on a detail page
const series = {}; // "ns/name/metric" -> [{t, v}] for the measurement charts

function esc(s) {
  return String(s ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
}

function route() {
  const m = location.hash.match(/^#\/([^/]+)\/([^/]+)$/);
  current = m ? { ns: decodeURIComponent(m[1]), name: decodeURIComponent(m[2]) } : null;
  $('#list-view').hidden = !!current;
  $('#detail-view').hidden = !current;
  $('#result').hidden = true;
  if (current) loadDetail(); else renderList();
}

function renderList() {
  const filter = $('#ns-filter').value;
  const namespaces = [...new Set(rollouts.map((r) => r.namespace))].sort();
  const sel = $('#ns-filter');
  const have = [...sel.options].map((o) => o.value);
  if (namespaces.join() !== have.slice(1).join()) {
    sel.innerHTML = '<option value="">all</option>' + namespaces.map((n) => `<option>${esc(n)}</option>`).join('');
    sel.value = namespaces.includes(filter) ? filter : '';
  }
  const rows = rollouts.filter((r) => !sel.value || r.namespace === sel.value);
  $('#rollouts tbody').innerHTML = rows.map((r) => `
    <tr class="row" data-rollout="${esc(r.namespace)}/${esc(r.name)}">
      <td>${esc(r.namespace)}</td><td><a href="#/${encodeURIComponent(r.namespace)}/${encodeURIComponent(r.name)}">${esc(r.name)}</a></td>
      <td><span class="badge ${esc(r.status)}">${esc(r.status)}</span></td>
      <td class="step">${r.steps ? `${r.step}/${r.steps}` : '-'}</td><td>${esc(r.state)}</td><td>${esc(r.progress)}</td>
      <td>${esc(r.workload)}</td><td>${esc(r.message)}</td>
    </tr>`).join('');
  $('#empty').hidden = rows.length > 0;
}

async function loadDetail() {
  if (!current) return;
  const { ns, name } = current;
  const res = await fetch(`/api/rollouts/${encodeURIComponent(ns)}/${encodeURIComponent(name)}`);
  const d = await res.json();
  if (!current || current.ns !== ns || current.name !== name) return;
  if (!res.ok) { showError(d.message); return; }
  showError('');
  const ro = d.rollout;
  const cs = (ro.status || {}).canaryStatus;
  $('#title').textContent = `${ns}/${name}`;
  $('#status').textContent = d.status;
  $('#status').className = `badge ${d.status}`;
  $('#summary').textContent = (ro.status || {}).message || '';
  $('#step').textContent = cs ? `${cs.currentStepIndex}/${d.steps.length}` : `-/${d.steps.length}`;
  $('#state').textContent = cs ? cs.currentStepState : '';
  $('#pending').textContent = d.pending ? `(pending: ${d.pending})` : '';
  $('#stepbar').innerHTML = d.steps.map((s) => `<li class="${s.mark}" data-step="${s.index}"><b>Step ${s.index}</b>${esc(s.text)}</li>`).join('');
  $('#routing').textContent = d.routing || 'no traffic routing';
  renderAnalysis(ns, name, d.analysis || []);
  $('#revisions').innerHTML = (d.revisions || []).filter((r) => r.pods.length || r.role).map((r) => `
    <div class="revision"><b>Revision ${r.number}</b> ${r.role ? `<span class="badge">${esc(r.role)}</span>` : ''}
      ${esc(r.images.join(', '))} · ${esc(r.kind)} ${esc(r.name)} · ${r.pods.filter((p) => p.ready && !p.deleting).length}/${r.pods.length} ready
      <div class="pods">${r.pods.map((p) => `<span class="pod ${p.ready ? 'ready' : ''} ${p.deleting ? 'deleting' : ''}" title="${esc(p.name)} ${esc(p.phase)}"></span>`).join('')}</div>
    </div>`).join('') || (d.workloadError ? `<p class="error">${esc(d.workloadError)}</p>` : '<p>none</p>');
  $('#events tbody').innerHTML = (d.events || []).map((e) => `
    <tr><td>${esc(new Date(e.last).toLocaleTimeString())}</td><td>${esc(e.type)}</td><td>${esc(e.reason)}</td><td>${esc(e.message)}</td></tr>`).join('');
}

// renderAnalysis shows each metric check with a small chart of the values this page saw.
function renderAnalysis(ns, name, results) {
  if (!results.length) { $('#analysis').innerHTML = '<p>none</p>'; return; }
  $('#analysis').innerHTML = results.map((m) => {
    const key = `${ns}/${name}/${m.name}/${m.stepIndex}`;
    const s = (series[key] = series[key] || []);
    const v = parseFloat(m.lastValue);
    if (!Number.isNaN(v) && (!s.length || s[s.length - 1].t !== m.lastMeasuredAt)) s.push({ t: m.lastMeasuredAt, v });
    return `<p><b>${esc(m.name)}</b> step ${m.stepIndex}: ${esc(m.phase)} · ${m.successful || 0} ok, ${m.failed || 0} failed, ${m.errors || 0} errors · last ${esc(m.lastValue || '-')} ${spark(s)}</p>`;
  }).join('');
}

function spark(points) {
  if (points.length < 2) return '';
  const w = 160, h = 32, vs = points.map((p) => p.v);
  const lo = Math.min(...vs), hi = Math.max(...vs), span = hi - lo || 1;
  const xy = points.map((p, i) => `${(i * w) / (points.length - 1)},${h - 2 - ((p.v - lo) * (h - 4)) / span}`).join(' ');
  return `<svg class="spark" width="${w}" height="${h}"><polyline fill="none" stroke="#3b6fd8" stroke-width="2" points="${xy}"/></svg>`;
}

function showError(msg) {
  $('#error').textContent = msg;
  $('#error').hidden = !msg;
}

async function act(button) {
  if (!current) return;
  const body = {};
  if (button.dataset.full) body.full = true;
  if (button.dataset.action === 'abort') body.reason = $('#abort-reason').value;
  button.disabled = true;
  try {
    const res = await fetch(`/api/rollouts/${encodeURIComponent(current.ns)}/${encodeURIComponent(current.name)}/${button.dataset.action}`, {
      method: 'POST', headers: { 'Content-Type': 'application/json', 'X-Rollouts-Dashboard': '1' }, body: JSON.stringify(body),
    });
    const r = await res.json();
    const out = $('#result');
    out.hidden = false;
    out.className = r.ok ? 'ok' : 'fail';
    out.textContent = r.ok ? r.message : `${r.code}: ${r.message}`;
  } finally {
    button.disabled = false;
  }
  loadDetail();
}

function connect() {
  const es = new EventSource('/api/events');
  es.addEventListener('open', () => $('#live').className = 'live on');
  es.addEventListener('error', () => $('#live').className = 'live off');
  es.addEventListener('change', (ev) => {
    const msg = JSON.parse(ev.data);
    if (msg.error) { showError(msg.error); return; }
    rollouts = msg.rollouts || [];
    if (current) loadDetail(); else renderList();
  });
}

document.querySelectorAll('.actions button').forEach((b) => b.addEventListener('click', () => act(b)));
$('#ns-filter').addEventListener('change', renderList);
$('#rollouts').addEventListener('click', (ev) => {
  const row = ev.target.closest('tr.row');
  if (row && ev.target.tagName !== 'A') location.hash = `#/${row.dataset.rollout}`;
});
window.addEventListener('hashchange', route);
fetch('/api/rollouts').then((r) => r.json()).then((items) => { if (Array.isArray(items)) rollouts = items; else showError(items.message); route(); });
connect();
