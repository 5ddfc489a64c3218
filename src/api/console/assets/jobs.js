// The jobs view: the scheduler's jobs, their last outcome, and "Run now".

import * as api from '/admin/api.js';
import { $, text, fill, guarded, button, when, notice } from '/admin/ui.js';

export async function enter() {
  const view = await guarded(() => api.get('/admin/jobs'), $('jobs-error'));
  if (!view) return;
  fill($('jobs'), view.jobs, (j) => [
    j.name,
    `${j.schedule} (${j.timezone})${j.enabled ? '' : ', off'}`,
    when(j.next_run),
    j.running ? 'running' : j.last_run ? `${j.last_run.outcome}: ${j.last_run.message}` : 'never ran',
    button('Run now', async () => {
      const done = await guarded(() => api.post(`/admin/jobs/${encodeURIComponent(j.name)}/run`), $('jobs-error'));
      if (done !== undefined) { notice(`${j.name} asked to run`); setTimeout(enter, 1000); }
    }),
  ]);
  if (!view.scheduler_running) text($('jobs-error'), 'the scheduler is off on this server (automation.enabled)');
}

export function leave() {}
