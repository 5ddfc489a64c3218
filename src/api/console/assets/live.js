// The live view: the figures of the operator socket, once a second, charts of the last
// hour, the password-hashing pool's load, the shards' load and the round trip to the
// server.

import * as api from '/admin/api.js';
import { LineChart } from '/admin/chart.js';
import { $, text, fill, guarded, num } from '/admin/ui.js';

let socket = null;
let shardsTimer = null;
const charts = {};
let lastProbe = 0;

export function enter() {
  start();
  loadShards();
  shardsTimer = setInterval(loadShards, 5000);
}

export function leave() {
  clearInterval(shardsTimer);
  if (socket) { const ws = socket; socket = null; ws.onclose = null; ws.close(); }
}

function start() {
  if (socket) return;
  charts.active = charts.active || new LineChart($('chart-active'));
  charts.logins = charts.logins || new LineChart($('chart-logins'), { color: '#1f8a4c' });
  const ws = api.socket('/admin/live');
  socket = ws;
  ws.onopen = () => text($('live-status'), 'connected: one frame a second');
  ws.onmessage = (msg) => {
    let frame;
    try { frame = JSON.parse(msg.data); } catch { return; }
    if (frame.type !== 'live') return;
    const f = frame.figures;
    text($('active-total'), f.active_total);
    for (const t of ['free', 'premium', 'enterprise', 'vip']) text($(`active-${t}`), f.active_users[t] ?? 0);
    text($('logins'), num(f.logins_per_sec, 1));
    text($('refused'), num(f.refused_logins_per_sec, 1));
    text($('events'), num(f.events_per_sec, 1));
    const risk = f.risk_decisions_per_sec;
    text($('risk-allow'), num(risk.allow, 1));
    text($('risk-mfa'), num(risk.require_mfa, 1));
    text($('risk-deny'), num(risk.deny, 1));
    text($('signups'), f.signups_today);
    text($('actors'), f.live_actors);
    const pool = f.hash_pool;
    text($('hash-busy'), `${num(pool.busy * 100, 0)}% of ${pool.workers}`);
    text($('hash-jobs'), num(pool.jobs_per_sec, 1));
    text($('hash-wait'), `${num(pool.mean_wait_ms, 1)} ms`);
    text($('hash-queue'), pool.queued);
    // Plotted at the time each frame arrives: the browser's clock, not the server's.
    const at = Date.now();
    charts.active.push(at, f.active_total);
    charts.logins.push(at, f.logins_per_sec);
    probe();
  };
  ws.onclose = (ev) => {
    if (socket !== ws) return;
    socket = null;
    text($('live-status'), `disconnected (${ev.code}); reconnecting`);
    setTimeout(() => { if (!$('live-view').hidden) start(); }, 2000);
  };
}

// The time a request to the server takes there and back, measured every 5 seconds.
async function probe() {
  if (performance.now() - lastProbe < 5000) return;
  lastProbe = performance.now();
  const t0 = performance.now();
  try {
    await fetch('/healthz', { cache: 'no-store' });
    text($('round-trip'), `${(performance.now() - t0).toFixed(1)} ms`);
  } catch { text($('round-trip'), 'unreachable'); }
}

async function loadShards() {
  const shards = await guarded(() => api.get('/admin/shards'), $('live-status'));
  if (!shards) return;
  fill($('shards'), shards, (s) => [`${s.tier} ${s.index}`, s.resident, num(s.message_rate_per_sec, 1),
    s.in_flight, `${num(s.latency_p50_us / 1000, 1)} / ${num(s.latency_p99_us / 1000, 1)} ms`, s.restarts]);
}
