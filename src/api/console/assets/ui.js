// Small helpers the console's views share: elements by id, text, tables and lists.

export const $ = (id) => document.getElementById(id);

export function text(el, value) { el.textContent = value == null ? '–' : String(value); }

export function when(ts) { return ts ? new Date(ts).toLocaleString() : '–'; }

export function pct(x) { return x == null ? '–' : `${(x * 100).toFixed(1)}%`; }

export function num(x, digits = 0) { return x == null ? '–' : Number(x).toFixed(digits); }

/** A cell of `value` appended to `row`. */
export function cell(row, value) {
  const td = document.createElement('td');
  td.textContent = value == null ? '–' : String(value);
  row.appendChild(td);
  return td;
}

/** Fills the table body of `table` with a row per item; `columns` maps an item to cells. */
export function fill(table, items, columns, empty = 'nothing yet') {
  const body = table.querySelector('tbody');
  body.replaceChildren();
  for (const item of items) {
    const row = document.createElement('tr');
    for (const c of columns(item, row)) {
      if (c instanceof Node) { const td = document.createElement('td'); td.appendChild(c); row.appendChild(td); } else cell(row, c);
    }
    body.appendChild(row);
  }
  if (items.length === 0) {
    const row = document.createElement('tr');
    const td = cell(row, empty);
    td.colSpan = table.querySelectorAll('thead th').length || 1;
    td.className = 'muted';
    body.appendChild(row);
  }
}

/** A description list of `[label, value]` pairs; each value's `data-field` is its label. */
export function pairs(dl, rows) {
  dl.replaceChildren();
  for (const [k, v] of rows) {
    const dt = document.createElement('dt'); dt.textContent = k;
    const dd = document.createElement('dd'); dd.textContent = v == null ? '–' : String(v);
    dd.dataset.field = k.toLowerCase().replace(/[^a-z]+/g, '-');
    dl.append(dt, dd);
  }
}

/** A button that runs `action` when pressed. */
export function button(label, action, className = 'quiet') {
  const b = document.createElement('button');
  b.type = 'button';
  b.className = className;
  b.textContent = label;
  b.addEventListener('click', action);
  return b;
}

let noticeTimer = null;
export function notice(message) {
  text($('notice'), message || '');
  clearTimeout(noticeTimer);
  if (message) noticeTimer = setTimeout(() => text($('notice'), ''), 8000);
}

/** Runs `fn`; an error is written to `errorEl` (a refused session sends the page back to
 * sign-in through the API module) and gives `undefined`. */
export async function guarded(fn, errorEl) {
  try {
    if (errorEl) text(errorEl, '');
    return await fn();
  } catch (e) {
    if (e.status !== 401 && errorEl) errorEl.textContent = e.message;
    return undefined;
  }
}
