// The jobs view: the scheduler's jobs, their last outcome, "Run now", and a job's
// history (its latest runs with trigger, times, outcome and counts).

import * as api from '/admin/api.js';
import { $, text, fill, guarded, button, when, notice } from '/admin/ui.js';

let open = null;

export async function enter() {
  const view = await guarded(() => api.get('/admin/jobs'), $('jobs-error'));
  if (!view) return;
  fill($('jobs'), view.jobs, (j, row) => {
    row.dataset.job = j.name;
    const run = button('Run now', async () => {
      const done = await guarded(() => api.post(`/admin/jobs/${encodeURIComponent(j.name)}/run`), $('jobs-error'));
      if (done !== undefined) { notice(`${j.name} asked to run`); setTimeout(enter, 1000); }
    });
    const history = button('History', () => runs(j.name));
    history.classList.add('history');
    const actions = document.createElement('span');
    actions.append(run, ' ', history);
    return [
      j.name,
      `${j.schedule} (${j.timezone})${j.enabled ? '' : ', off'}`,
      when(j.next_run),
      j.running ? 'running' : j.last_run ? `${j.last_run.outcome}: ${j.last_run.message}` : 'never ran',
      actions,
    ];
  });
  if (!view.scheduler_running) text($('jobs-error'), 'the scheduler is off on this server (automation.enabled)');
  if (open) await runs(open);
}

export function leave() {}

async function runs(name) {
  open = name;
  const list = await guarded(() => api.get(`/admin/jobs/${encodeURIComponent(name)}/runs?limit=50`), $('jobs-error'));
  if (!list) return;
  text($('job-runs-title'), `History of ${name}`);
  $('job-history').hidden = false;
  fill($('job-runs'), list, (r, row) => {
    row.dataset.run = r.run;
    const counts = Object.entries(r.counts || {}).map(([k, v]) => `${k.replace(/_/g, ' ')}: ${v}`).join(', ');
    return [r.run, r.trigger, when(r.started_at), r.ended_at ? when(r.ended_at) : 'running', r.outcome, r.message, counts || '–'];
  }, 'no run yet');
}
