// A sweep job's runs as a table (index, parameters, state, metrics), sortable by a metric.
import { TranslationBundle } from '@jupyterlab/translation';

/** One run of a sweep, as the job detail's `runs` gives it. */
export interface SweepRun {
  index: number;
  name?: string;
  parameters: { [k: string]: any };
  state: string;
  exit_code?: number | null;
  metrics: { [k: string]: any };
}

/** How the table is sorted: by index, or by a metric (runs without it last either way). */
export interface RunsSort {
  metric: string | null;
  descending: boolean;
}

/** Every metric name any run reported, sorted. */
export function metricNames(runs: SweepRun[]): string[] {
  const names = new Set<string>();
  for (const run of runs) {
    for (const k of Object.keys(run.metrics || {})) {
      names.add(k);
    }
  }
  return [...names].sort();
}

/** `runs` in the order `sort` asks; numbers compare as numbers, other values as text. */
export function sortRuns(runs: SweepRun[], sort: RunsSort): SweepRun[] {
  const { metric, descending } = sort;
  if (!metric) {
    return [...runs].sort((a, b) => (descending ? b.index - a.index : a.index - b.index));
  }
  const has = (r: SweepRun) => r.metrics && r.metrics[metric] !== undefined && r.metrics[metric] !== null;
  return [...runs].sort((a, b) => {
    if (!has(a) || !has(b)) {
      return Number(!has(a)) - Number(!has(b)) || a.index - b.index;
    }
    const x = a.metrics[metric];
    const y = b.metrics[metric];
    const order =
      typeof x === 'number' && typeof y === 'number' ? x - y : String(x).localeCompare(String(y));
    return (descending ? -order : order) || a.index - b.index;
  });
}

function cell(tag: 'td' | 'th', text: string): HTMLTableCellElement {
  const node = document.createElement(tag);
  node.textContent = text;
  return node;
}

function shown(value: any): string {
  return typeof value === 'string' ? value : JSON.stringify(value);
}

/** The runs table; a column header's button sorts by it (again: the other way round). */
export function runsTable(
  runs: SweepRun[],
  sort: RunsSort,
  onSort: (sort: RunsSort) => void,
  trans: TranslationBundle
): HTMLTableElement {
  const t = trans;
  const metrics = metricNames(runs);
  const table = document.createElement('table');
  table.className = 'gpulab-JobsTable gpulab-RunsTable';
  table.setAttribute('aria-label', t.__('Runs of the sweep'));
  const head = document.createElement('tr');
  const sortable = (label: string, metric: string | null) => {
    const th = cell('th', '');
    th.scope = 'col';
    const active = sort.metric === metric;
    th.setAttribute('aria-sort', active ? (sort.descending ? 'descending' : 'ascending') : 'none');
    const b = document.createElement('button');
    b.type = 'button';
    b.className = 'gpulab-RunsTable-sort';
    b.textContent = label + (active ? (sort.descending ? ' ▼' : ' ▲') : '');
    b.setAttribute('aria-label', t.__('Sort runs by %1', label));
    b.addEventListener('click', () =>
      onSort({ metric, descending: active ? !sort.descending : metric !== null })
    );
    th.appendChild(b);
    head.appendChild(th);
  };
  sortable(t.__('Run'), null);
  for (const c of [t.__('Parameters'), t.__('State')]) {
    const th = cell('th', c);
    th.scope = 'col';
    head.appendChild(th);
  }
  for (const m of metrics) {
    sortable(m, m);
  }
  const thead = document.createElement('thead');
  thead.appendChild(head);
  const body = document.createElement('tbody');
  for (const run of sortRuns(runs, sort)) {
    const row = document.createElement('tr');
    row.dataset.index = String(run.index);
    const params = Object.entries(run.parameters || {})
      .map(([k, v]) => `${k}=${shown(v)}`)
      .join(', ');
    row.append(cell('td', String(run.index)), cell('td', params), cell('td', run.state));
    for (const m of metrics) {
      const v = run.metrics?.[m];
      row.append(cell('td', v === undefined || v === null ? '—' : shown(v)));
    }
    body.appendChild(row);
  }
  table.append(thead, body);
  return table;
}
