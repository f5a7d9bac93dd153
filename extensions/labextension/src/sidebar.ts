// The GPU jobs sidebar: my jobs (live state, GPUs, duration), filter/sort/page, and one job's
// detail: parameters, image, times, outputs tree, live log, cancel and resubmit; and my saved
// schedules (pause, resume, run now, delete).
import { Dialog, showDialog, showErrorMessage } from '@jupyterlab/apputils';
import { TranslationBundle } from '@jupyterlab/translation';
import { Panel, Widget } from '@lumino/widgets';

import {
  Definition,
  Downloaded,
  Job,
  OutputItem,
  TERMINAL_STATES,
  api,
  formatDuration,
  jobDuration
} from './api';
import { LogView } from './logView';
import { RunsSort, runsTable } from './sweepRuns';
import { JobWatcher } from './watcher';

const PAGE = 25;
const STATES = ['Queued', 'Pending', 'Running', 'Succeeded', 'Failed', 'Cancelled'];

export interface SidebarActions {
  /** Opens a file (path relative to the server root) in JupyterLab. */
  open(path: string): Promise<void>;
}

function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: { [k: string]: string } = {},
  text = ''
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') {
      node.className = v;
    } else {
      node.setAttribute(k, v);
    }
  }
  if (text) {
    node.textContent = text;
  }
  return node;
}

function button(label: string, cls: string, onClick: () => void, aria = ''): HTMLButtonElement {
  const b = el('button', { class: `jp-mod-styled ${cls}`, type: 'button' }, label);
  if (aria) {
    b.setAttribute('aria-label', aria);
  }
  b.addEventListener('click', onClick);
  return b;
}

function when(iso: string | null | undefined): string {
  return iso ? new Date(iso).toLocaleString() : '—';
}

/** Output paths as a tree: folders before files, each sorted by name. */
interface TreeNode {
  name: string;
  path: string;
  children: Map<string, TreeNode>;
  item?: OutputItem;
}

export function outputTree(items: OutputItem[]): TreeNode {
  const root: TreeNode = { name: '', path: '', children: new Map() };
  for (const item of items) {
    let node = root;
    const parts = item.path.split('/');
    parts.forEach((part, i) => {
      let next = node.children.get(part);
      if (!next) {
        next = { name: part, path: parts.slice(0, i + 1).join('/'), children: new Map() };
        node.children.set(part, next);
      }
      node = next;
    });
    node.item = item;
  }
  return root;
}

export class JobsSidebar extends Panel {
  private filterInput: HTMLInputElement;
  private stateSelect: HTMLSelectElement;
  private sortSelect: HTMLSelectElement;
  private listBody: HTMLTableSectionElement;
  private pager: HTMLElement;
  private notice: HTMLElement;
  private detail: HTMLElement;
  private log: LogView;
  private page = 0;
  private older: Job[] = [];
  private olderContinue: string | null | undefined = undefined;
  private selected: string | null = null;
  private selectedState = '';
  private outputsFor = '';
  private runsSort: RunsSort = { metric: null, descending: false };
  private definitionsBody: HTMLTableSectionElement;
  private definitionsNotice: HTMLElement;

  constructor(
    private watcher: JobWatcher,
    private actions: SidebarActions,
    private trans: TranslationBundle
  ) {
    super();
    const t = trans;
    this.id = 'gpulab-jobs-sidebar';
    this.addClass('gpulab-Sidebar');
    this.title.caption = t.__('GPU jobs');
    const head = new Widget();
    head.addClass('gpulab-Sidebar-head');
    const h = el('h2', {}, t.__('GPU jobs'));
    const controls = el('div', { class: 'gpulab-Sidebar-controls' });
    this.filterInput = el('input', {
      class: 'jp-mod-styled',
      type: 'search',
      placeholder: t.__('Filter by name or id'),
      'aria-label': t.__('Filter jobs by name or id')
    });
    this.filterInput.addEventListener('input', () => this.reset());
    this.stateSelect = el('select', { class: 'jp-mod-styled', 'aria-label': t.__('Show jobs in state') });
    this.stateSelect.append(el('option', { value: '' }, t.__('All states')));
    for (const s of STATES) {
      this.stateSelect.append(el('option', { value: s }, s));
    }
    this.stateSelect.addEventListener('change', () => this.reset());
    this.sortSelect = el('select', { class: 'jp-mod-styled', 'aria-label': t.__('Sort jobs by') });
    for (const [v, label] of [
      ['newest', t.__('Newest first')],
      ['oldest', t.__('Oldest first')],
      ['name', t.__('Name')],
      ['state', t.__('State')]
    ]) {
      this.sortSelect.append(el('option', { value: v }, label));
    }
    this.sortSelect.addEventListener('change', () => this.render());
    const refresh = button(t.__('Refresh'), 'jp-mod-reject', () => void this.watcher.poll(), t.__('Refresh the jobs list'));
    controls.append(this.filterInput, this.stateSelect, this.sortSelect, refresh);
    this.notice = el('div', { class: 'gpulab-Sidebar-notice', 'aria-live': 'polite' });
    const table = el('table', { class: 'gpulab-JobsTable', 'aria-label': t.__('My jobs') });
    const thead = el('thead');
    const hr = el('tr');
    for (const c of [t.__('Job'), t.__('State'), t.__('GPUs'), t.__('Duration')]) {
      hr.append(el('th', { scope: 'col' }, c));
    }
    thead.append(hr);
    this.listBody = el('tbody');
    table.append(thead, this.listBody);
    this.pager = el('div', { class: 'gpulab-Sidebar-pager' });
    head.node.append(h, controls, this.notice, table, this.pager);
    this.addWidget(head);
    const schedules = new Widget();
    schedules.addClass('gpulab-Definitions');
    const defsHead = el('h3', {}, t.__('Schedules'));
    const defsRefresh = button(t.__('Refresh'), 'jp-mod-reject', () => void this.showDefinitions(), t.__('Refresh the schedules list'));
    this.definitionsNotice = el('div', { class: 'gpulab-Sidebar-notice', 'aria-live': 'polite' });
    const defsTable = el('table', { class: 'gpulab-JobsTable gpulab-DefinitionsTable', 'aria-label': t.__('My schedules') });
    const defsThead = el('thead');
    const defsRow = el('tr');
    for (const c of [t.__('Name'), t.__('Schedule'), t.__('State'), t.__('Actions')]) {
      defsRow.append(el('th', { scope: 'col' }, c));
    }
    defsThead.append(defsRow);
    this.definitionsBody = el('tbody');
    defsTable.append(defsThead, this.definitionsBody);
    schedules.node.append(defsHead, defsRefresh, this.definitionsNotice, defsTable);
    this.addWidget(schedules);
    const detail = new Widget();
    detail.addClass('gpulab-Detail');
    this.detail = detail.node;
    this.addWidget(detail);
    this.log = new LogView(trans);
    this.log.hide();
    this.addWidget(this.log);
    watcher.changed.connect(() => this.render(), this);
  }

  private reset(): void {
    this.page = 0;
    this.render();
  }

  private all(): Job[] {
    const seen = new Set<string>();
    const out: Job[] = [];
    for (const job of [...this.watcher.jobs, ...this.older]) {
      if (!seen.has(job.id)) {
        seen.add(job.id);
        out.push(job);
      }
    }
    return out;
  }

  private visible(): Job[] {
    const needle = this.filterInput.value.trim().toLowerCase();
    const state = this.stateSelect.value;
    const jobs = this.all().filter(
      j =>
        (!state || j.state === state) &&
        (!needle || j.name.toLowerCase().includes(needle) || j.id.includes(needle))
    );
    const created = (j: Job) => Date.parse(j.created || '') || 0;
    const sorters: { [k: string]: (a: Job, b: Job) => number } = {
      newest: (a, b) => created(b) - created(a),
      oldest: (a, b) => created(a) - created(b),
      name: (a, b) => a.name.localeCompare(b.name),
      state: (a, b) => a.state.localeCompare(b.state) || created(b) - created(a)
    };
    return jobs.sort(sorters[this.sortSelect.value] || sorters.newest);
  }

  render(): void {
    const t = this.trans;
    this.notice.textContent = this.watcher.error
      ? t.__('Jobs could not be listed: %1', this.watcher.error)
      : '';
    const jobs = this.visible();
    const pages = Math.max(1, Math.ceil(jobs.length / PAGE));
    this.page = Math.min(this.page, pages - 1);
    const shown = jobs.slice(this.page * PAGE, (this.page + 1) * PAGE);
    // Rows are rebuilt on every refresh: a keyboard user's focus stays on the same job.
    const focused = (document.activeElement as HTMLElement | null)?.closest?.('tr[data-id]');
    const focusedId = focused && this.listBody.contains(focused) ? (focused as HTMLElement).dataset.id : null;
    this.listBody.replaceChildren();
    for (const job of shown) {
      const row = el('tr', {
        class: 'gpulab-JobsTable-row',
        tabindex: '0',
        'data-id': job.id,
        'aria-selected': String(job.id === this.selected),
        'aria-label': t.__('%1, %2', job.name, job.state)
      });
      const duration = jobDuration(job);
      const queued = job.queue?.position ? ` #${job.queue.position}` : '';
      row.append(
        el('td', { title: job.id }, job.name),
        el('td', { class: `gpulab-state gpulab-state-${job.state}` }, job.state + queued),
        el('td', {}, String(job.gpus)),
        el('td', {}, duration === null ? '—' : formatDuration(duration))
      );
      const open = () => this.select(job.id);
      row.addEventListener('click', open);
      row.addEventListener('keydown', e => {
        if (e.key === 'Enter' || e.key === ' ') {
          e.preventDefault();
          open();
        }
      });
      this.listBody.append(row);
    }
    if (focusedId) {
      (this.listBody.querySelector(`tr[data-id="${CSS.escape(focusedId)}"]`) as HTMLElement | null)?.focus();
    }
    if (!shown.length) {
      const row = el('tr');
      row.append(el('td', { colspan: '4' }, this.watcher.jobs.length ? t.__('No job matches.') : t.__('No jobs yet.')));
      this.listBody.append(row);
    }
    this.pager.replaceChildren(
      button(t.__('Previous'), 'jp-mod-reject', () => { this.page--; this.render(); }, t.__('Previous page of jobs')),
      el('span', {}, t.__('Page %1 of %2 (%3 jobs)', this.page + 1, pages, jobs.length)),
      button(t.__('Next'), 'jp-mod-reject', () => { this.page++; this.render(); }, t.__('Next page of jobs'))
    );
    const [prev, , next] = Array.from(this.pager.children) as HTMLButtonElement[];
    prev.disabled = this.page === 0;
    next.disabled = this.page >= pages - 1;
    if (this.olderContinue !== null) {
      this.pager.append(button(t.__('Load older jobs'), 'jp-mod-reject', () => void this.loadOlder()));
    }
    if (this.selected) {
      const job = this.all().find(j => j.id === this.selected);
      if (job && job.state !== this.selectedState) {
        void this.select(job.id); // its state changed: new buttons, the whole log
      }
    }
  }

  private async loadOlder(): Promise<void> {
    const token = this.olderContinue ?? (await api.jobs({ limit: '100' })).continue;
    if (!token) {
      this.olderContinue = null;
      this.render();
      return;
    }
    const page = await api.jobs({ limit: '100', continue: token });
    this.older.push(...page.items);
    this.olderContinue = page.continue || null;
    this.render();
  }

  async select(id: string): Promise<void> {
    const t = this.trans;
    let job: Job;
    try {
      job = await api.job(id);
    } catch (error) {
      this.detail.replaceChildren(el('p', { role: 'alert' }, String((error as Error).message)));
      return;
    }
    const changed = this.selected !== id || this.selectedState !== job.state;
    this.selected = id;
    this.selectedState = job.state;
    for (const row of Array.from(this.listBody.children)) {
      row.setAttribute('aria-selected', String((row as HTMLElement).dataset.id === id));
    }
    const d = this.detail;
    d.replaceChildren();
    d.append(el('h3', {}, job.name));
    const facts = el('dl', { class: 'gpulab-Detail-facts' });
    const fact = (k: string, v: string) => facts.append(el('dt', {}, k), el('dd', {}, v));
    fact(t.__('Id'), job.id);
    fact(t.__('State'), job.message ? `${job.state}: ${job.message}` : job.state);
    fact(t.__('Image'), job.image || '—');
    fact(t.__('GPUs'), String(job.gpus) + (job.gpu_type ? ` (${job.gpu_type})` : ''));
    fact(t.__('Created'), when(job.created));
    fact(t.__('Started'), when(job.started));
    fact(t.__('Finished'), when(job.finished));
    if (job.exit_code !== null && job.exit_code !== undefined) {
      fact(t.__('Exit code'), String(job.exit_code));
    }
    const params = job.spec?.parameters || {};
    for (const [k, v] of Object.entries(params)) {
      fact(t.__('Parameter %1', k), JSON.stringify(v));
    }
    d.append(facts);
    const actions = el('div', { class: 'gpulab-Detail-actions' });
    if (!TERMINAL_STATES.has(job.state)) {
      actions.append(
        button(t.__('Cancel job'), 'jp-mod-warn gpulab-Cancel', () => void this.cancel(job), t.__('Cancel job %1', job.name))
      );
    } else {
      actions.append(
        button(t.__('Resubmit'), 'jp-mod-accept', () => void this.resubmit(job), t.__('Resubmit job %1', job.name))
      );
    }
    actions.append(
      button(t.__('Download into my home'), 'jp-mod-reject', () => void this.download(job.id), t.__('Download the outputs of %1 into my home', job.name))
    );
    d.append(actions);
    if (job.runs?.length) {
      const runs = job.runs;
      const host = el('div', { class: 'gpulab-Runs' });
      const draw = () =>
        host.replaceChildren(
          runsTable(runs, this.runsSort, sort => {
            this.runsSort = sort;
            draw();
            // the header just pressed keeps the keyboard focus
            (host.querySelector('th:not([aria-sort="none"]) button') as HTMLElement | null)?.focus();
          }, t)
        );
      draw();
      d.append(el('h4', {}, t.__('Runs')), host);
    }
    const outputs = el('div', { class: 'gpulab-Outputs', 'aria-label': t.__('Outputs') });
    d.append(el('h4', {}, t.__('Outputs')), outputs);
    void this.showOutputs(job, outputs);
    d.append(el('h4', {}, t.__('Log')));
    this.log.show();
    if (changed) {
      void this.log.load(job.id, job.state);
    }
  }

  private async showOutputs(job: Job, host: HTMLElement): Promise<void> {
    const t = this.trans;
    this.outputsFor = job.id;
    if (!TERMINAL_STATES.has(job.state)) {
      host.textContent = t.__('Outputs appear when the job has finished.');
      return;
    }
    let items: OutputItem[];
    try {
      items = (await api.outputs(job.id)).items;
    } catch (error) {
      host.textContent = t.__('No outputs: %1', String((error as Error).message));
      return;
    }
    if (this.outputsFor !== job.id) {
      return;
    }
    if (!items.length) {
      host.textContent = t.__('No outputs (yet).');
      return;
    }
    const renderNode = (node: TreeNode): HTMLElement => {
      const ul = el('ul', { role: 'group' });
      const children = [...node.children.values()].sort(
        (a, b) => Number(!!a.item) - Number(!!b.item) || a.name.localeCompare(b.name)
      );
      for (const child of children) {
        const li = el('li', { role: 'treeitem' });
        if (child.item) {
          li.append(el('span', { class: 'gpulab-Outputs-file' }, child.name));
          li.append(
            button(t.__('Open'), 'jp-mod-reject gpulab-Outputs-open', () => void this.openOutput(job.id, child.path), t.__('Open %1 in JupyterLab', child.path))
          );
        } else {
          const details = el('details', { open: '' });
          details.append(el('summary', {}, child.name + '/'), renderNode(child));
          li.append(details);
        }
        ul.append(li);
      }
      return ul;
    };
    const tree = renderNode(outputTree(items));
    tree.setAttribute('role', 'tree');
    tree.setAttribute('aria-label', t.__('Outputs of %1', job.name));
    host.replaceChildren(tree);
  }

  /** Downloads the job's outputs into ~/outputs/<id>/; null when that failed (said). */
  async download(id: string): Promise<Downloaded | null> {
    try {
      const where = await api.download(id);
      this.notice.textContent = this.trans.__('Outputs downloaded into ~/%1/', where.home_folder);
      return where;
    } catch (error) {
      void showErrorMessage(this.trans.__('Download failed'), String((error as Error).message));
      return null;
    }
  }

  async openOutput(id: string, path: string): Promise<void> {
    const where = await this.download(id);
    if (where?.lab_folder !== null && where?.lab_folder !== undefined) {
      await this.actions.open(`${where.lab_folder}/${path}`);
    }
  }

  private async cancel(job: Job): Promise<void> {
    try {
      await api.cancel(job.id);
    } catch (error) {
      void showErrorMessage(this.trans.__('Cancel failed'), String((error as Error).message));
    }
    await this.watcher.poll();
    await this.select(job.id);
  }

  private async resubmit(job: Job): Promise<void> {
    try {
      const fresh = await api.resubmit(job.id);
      this.watcher.track(fresh);
      await this.select(fresh.id);
    } catch (error) {
      void showErrorMessage(this.trans.__('Resubmit failed'), String((error as Error).message));
    }
  }

  /** Lists my saved definitions: name, schedule (and its time zone), paused or active. */
  async showDefinitions(): Promise<void> {
    const t = this.trans;
    let items: Definition[];
    try {
      items = (await api.definitions()).items;
      this.definitionsNotice.textContent = '';
    } catch (error) {
      this.definitionsNotice.textContent = t.__('Schedules could not be listed: %1', String((error as Error).message));
      return;
    }
    this.definitionsBody.replaceChildren();
    for (const d of items) {
      const row = el('tr', { 'data-definition': d.name });
      const schedule = d.schedule ? (d.timezone ? `${d.schedule} (${d.timezone})` : d.schedule) : '—';
      const state = d.paused === null ? t.__('on demand') : d.paused ? t.__('paused') : t.__('active');
      const actions = el('td', { class: 'gpulab-Definitions-actions' });
      if (d.paused !== null) {
        actions.append(
          d.paused
            ? button(t.__('Resume'), 'jp-mod-reject', () => void this.definitionAction(d, 'resume'), t.__('Resume schedule %1', d.name))
            : button(t.__('Pause'), 'jp-mod-reject', () => void this.definitionAction(d, 'pause'), t.__('Pause schedule %1', d.name))
        );
      }
      actions.append(
        button(t.__('Run now'), 'jp-mod-reject', () => void this.definitionAction(d, 'run-now'), t.__('Run %1 now', d.name)),
        button(t.__('Delete'), 'jp-mod-warn', () => void this.deleteDefinition(d), t.__('Delete schedule %1', d.name))
      );
      row.append(el('td', {}, d.name), el('td', {}, schedule), el('td', {}, state), actions);
      this.definitionsBody.append(row);
    }
    if (!items.length) {
      const row = el('tr');
      row.append(el('td', { colspan: '4' }, t.__('No schedules yet.')));
      this.definitionsBody.append(row);
    }
  }

  private async definitionAction(d: Definition, action: 'pause' | 'resume' | 'run-now'): Promise<void> {
    try {
      const answer = await api.definitionAction(d.name, action);
      if (action === 'run-now' && answer?.id) {
        this.watcher.track(answer as Job);
        void this.select(answer.id);
      }
    } catch (error) {
      void showErrorMessage(this.trans.__('%1 failed', d.name), String((error as Error).message));
    }
    await this.showDefinitions();
  }

  private async deleteDefinition(d: Definition): Promise<void> {
    const t = this.trans;
    const answer = await showDialog({
      title: t.__('Delete schedule'),
      body: t.__('Delete %1 and its runs?', d.name),
      buttons: [Dialog.cancelButton({ label: t.__('Cancel') }), Dialog.warnButton({ label: t.__('Delete') })]
    });
    if (!answer.button.accept) {
      return;
    }
    try {
      await api.deleteDefinition(d.name);
    } catch (error) {
      void showErrorMessage(t.__('Delete failed'), String((error as Error).message));
    }
    await this.showDefinitions();
  }

  onAfterShow(): void {
    void this.watcher.poll();
    void this.showDefinitions();
  }
}
