// A dashboard's report as the server computes it (`{title, panels: [{kind, title,
// columns, rows}]}`): drawn as one table per panel, and written as CSV. Shared by the
// console's dashboards view and the read-only page of a link.

function table(columns, rows) {
  const t = document.createElement('table');
  const head = document.createElement('thead');
  const hr = document.createElement('tr');
  for (const c of columns) { const th = document.createElement('th'); th.textContent = c; hr.appendChild(th); }
  head.appendChild(hr);
  const body = document.createElement('tbody');
  for (const r of rows) {
    const tr = document.createElement('tr');
    for (const v of r) { const td = document.createElement('td'); td.textContent = v == null ? '–' : String(v); tr.appendChild(td); }
    body.appendChild(tr);
  }
  if (rows.length === 0) {
    const tr = document.createElement('tr');
    const td = document.createElement('td');
    td.textContent = 'nothing in this range';
    td.className = 'muted';
    td.colSpan = columns.length || 1;
    tr.appendChild(td);
    body.appendChild(tr);
  }
  t.append(head, body);
  return t;
}

/** Draws `report` into `root`, replacing what it held. */
export function draw(root, report) {
  root.replaceChildren();
  const h = document.createElement('h3');
  h.textContent = report.title;
  h.id = 'dashboard-title';
  root.appendChild(h);
  for (const p of report.panels) {
    const section = document.createElement('section');
    section.className = 'panel';
    section.dataset.kind = p.kind;
    const heading = document.createElement('h4');
    heading.textContent = p.title;
    section.append(heading, table(p.columns, p.rows));
    root.appendChild(section);
  }
}

// A text cell a spreadsheet would read as a formula (= + - @, or a tab or carriage
// return before one) is opened with an apostrophe, so an exported title cannot run; a
// plain signed number such as a cohort's "+3" is no formula and stays as it is.
function csvCell(v) {
  let s = v == null ? '' : String(v);
  if (typeof v === 'string' && /^[=+\-@\t\r]/.test(s) && !/^[+-]\d+(\.\d+)?%?$/.test(s)) s = `'${s}`;
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** The report as CSV: per panel its title, its header row, its rows and a blank line. */
export function csv(report) {
  const lines = [];
  for (const p of report.panels) {
    lines.push(csvCell(p.title), p.columns.map(csvCell).join(','));
    for (const r of p.rows) lines.push(r.map(csvCell).join(','));
    lines.push('');
  }
  return lines.join('\n');
}

/** Offers `text` as the download `name`; its size in bytes. */
export function download(text, name) {
  const blob = new Blob([text], { type: 'text/csv' });
  const a = document.createElement('a');
  a.href = URL.createObjectURL(blob);
  a.download = name;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 10000);
  return blob.size;
}
