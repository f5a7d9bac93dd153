// "Run as job": a dialog that builds a job spec from a notebook or script, submits it, and
// shows the API's field errors beside their fields (the dialog comes back with the values
// kept until the job is accepted or the user cancels).
import { Dialog, showDialog } from '@jupyterlab/apputils';
import { TranslationBundle } from '@jupyterlab/translation';
import { UUID } from '@lumino/coreutils';
import { Widget } from '@lumino/widgets';

import { AllowedImage, ApiError, Definition, FieldError, Job, LabStatus, NotebookParameter, api } from './api';

export interface RunRequest {
  path: string; // relative to the server's root folder
  kind: 'notebook' | 'script';
}

/** What the dialog made: a job that runs now, or a definition saved with a schedule. */
export type RunResult = { job: Job; definition?: undefined } | { job?: undefined; definition: Definition };

interface FormState {
  when: 'now' | 'schedule';
  schedule: string;
  timezone: string;
  name: string;
  gpus: string;
  image: string;
  parameters: { name: string; value: string }[];
  args: string;
  max_runtime: string;
  cpu: string;
  memory: string;
  gpu_type: string;
  retries: string;
  env: string;
  datasets: string;
}

/** A job name from a file name: a DNS label (lowercase, digits, '-'). */
export function jobNameFor(path: string): string {
  const base = path.split('/').pop() || 'job';
  const stem = base.replace(/\.[^.]+$/, '');
  const name = stem
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 50);
  return name || 'job';
}

function parameterText(p: NotebookParameter): string {
  return p.literal ? JSON.stringify(p.value) : p.source;
}

function parseValue(text: string): any {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

function lines(text: string): string[] {
  return text
    .split('\n')
    .map(l => l.trim())
    .filter(l => l);
}

/** The spec the form describes; `problems` for what the browser can tell before submitting. */
export function buildSpec(
  req: RunRequest,
  form: FormState
): { spec: { [k: string]: any }; problems: FieldError[] } {
  const problems: FieldError[] = [];
  const spec: { [k: string]: any } = { name: form.name.trim() };
  const gpus = Number(form.gpus);
  if (!Number.isInteger(gpus) || gpus < 0) {
    problems.push({ field: 'gpus', message: 'a whole number of GPUs, 0 or more' });
  } else {
    spec.gpus = gpus;
  }
  if (form.image.trim()) {
    spec.image = form.image.trim();
  }
  if (req.kind === 'notebook') {
    spec.notebook = req.path;
    const parameters: { [k: string]: any } = {};
    for (const row of form.parameters) {
      if (row.name.trim()) {
        parameters[row.name.trim()] = parseValue(row.value);
      }
    }
    if (Object.keys(parameters).length) {
      spec.parameters = parameters;
    }
  } else {
    // Run from the script's folder: the server turns working_dir (relative to its root
    // folder, as Lab names files) into a path relative to the home, as the job wants it.
    const at = req.path.lastIndexOf('/');
    spec.working_dir = at > 0 ? req.path.slice(0, at) : '.';
    spec.command = ['python', req.path.slice(at + 1), ...lines(form.args)];
  }
  const optional: [keyof FormState, string][] = [
    ['max_runtime', 'max_runtime'],
    ['cpu', 'cpu'],
    ['memory', 'memory'],
    ['gpu_type', 'gpu_type']
  ];
  for (const [key, field] of optional) {
    const value = String(form[key]).trim();
    if (value) {
      spec[field] = value;
    }
  }
  if (form.retries.trim()) {
    const retries = Number(form.retries);
    if (!Number.isInteger(retries) || retries < 0) {
      problems.push({ field: 'retries', message: 'a whole number, 0 or more' });
    } else {
      spec.retries = retries;
    }
  }
  const env: { [k: string]: string } = {};
  for (const line of lines(form.env)) {
    const at = line.indexOf('=');
    if (at < 1) {
      problems.push({ field: 'env', message: `"${line}": write NAME=value, one a line` });
    } else {
      env[line.slice(0, at)] = line.slice(at + 1);
    }
  }
  if (Object.keys(env).length) {
    spec.env = env;
  }
  const datasets = lines(form.datasets.replace(/,/g, '\n'));
  if (datasets.length) {
    spec.datasets = datasets;
  }
  return { spec, problems };
}

/** Definition names are DNS labels of at most 40 characters (docs/jobs.md). */
const DEFINITION_NAME_MAX = 40;

/** The definition a scheduled form describes (the job spec inside), with what the browser can tell. */
export function buildDefinition(
  req: RunRequest,
  form: FormState
): { body: { name: string; spec: { [k: string]: any }; schedule: string; timezone: string }; problems: FieldError[] } {
  const { spec, problems } = buildSpec(req, form);
  const name = String(spec.name || '');
  if (name.length > DEFINITION_NAME_MAX) {
    problems.push({ field: 'name', message: `at most ${DEFINITION_NAME_MAX} characters for a schedule` });
  }
  if (!form.schedule.trim()) {
    problems.push({ field: 'schedule', message: 'a cron schedule, e.g. "0 2 * * *" or "@daily"' });
  }
  return {
    body: { name, spec, schedule: form.schedule.trim(), timezone: form.timezone.trim() },
    problems
  };
}

/** The browser's time zone, the schedule's default. */
function localZone(): string {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
  } catch {
    return 'UTC';
  }
}

let fieldCounter = 0;

/** A group of the form's controls under its legend. */
function fieldset(className: string, legendText: string): HTMLFieldSetElement {
  const box = document.createElement('fieldset');
  box.className = className;
  const legend = document.createElement('legend');
  legend.textContent = legendText;
  box.appendChild(legend);
  return box;
}

/** The dialog's body: plain labelled inputs, each with a slot for its field's errors. */
class RunForm extends Widget {
  private inputs = new Map<string, HTMLInputElement | HTMLTextAreaElement>();
  private errors = new Map<string, HTMLElement>();
  private paramList!: HTMLElement;

  constructor(
    readonly req: RunRequest,
    readonly state: FormState,
    status: LabStatus | null,
    images: AllowedImage[],
    problems: FieldError[],
    generalError: string,
    private trans: TranslationBundle
  ) {
    super();
    this.addClass('gpulab-RunForm');
    const node = this.node;
    const t = trans;
    const what = document.createElement('p');
    what.className = 'gpulab-RunForm-what';
    what.textContent =
      req.kind === 'notebook'
        ? t.__('Run the notebook %1 as a batch job.', req.path)
        : t.__('Run the script %1 as a batch job.', req.path);
    node.appendChild(what);
    if (generalError) {
      const alert = document.createElement('p');
      alert.className = 'gpulab-RunForm-alert';
      alert.setAttribute('role', 'alert');
      alert.textContent = generalError;
      node.appendChild(alert);
    }
    this.text('name', t.__('Name'), state.name, t.__('lowercase letters, digits and -'));
    this.whenChooser();
    const quota = status?.me?.quota;
    const left = quota ? Math.max(0, quota.gpus_user_limit - quota.gpus_user_used) : null;
    const perJob = status?.me?.policy?.per_job;
    const gpuHints: string[] = [];
    if (left !== null) {
      gpuHints.push(t.__('%1 of your quota free', left));
    }
    if (perJob !== undefined && perJob !== null) {
      gpuHints.push(t.__('at most %1 per job', perJob));
    }
    const gpus = this.text('gpus', t.__('GPUs'), state.gpus, gpuHints.join('; '));
    gpus.type = 'number';
    gpus.min = '0';
    const image = this.text(
      'image',
      t.__('Image'),
      state.image,
      t.__("default: this server's image; type to search your images")
    );
    const listId = `gpulab-images-${++fieldCounter}`;
    const datalist = document.createElement('datalist');
    datalist.id = listId;
    for (const img of images) {
      const option = document.createElement('option');
      option.value = img.image;
      if (img.display_name) {
        option.label = img.recommended
          ? t.__('%1 (recommended)', img.display_name)
          : img.display_name;
      }
      datalist.appendChild(option);
    }
    node.appendChild(datalist);
    image.setAttribute('list', listId);
    if (req.kind === 'notebook') {
      this.parameters();
    } else {
      this.area('args', t.__('Arguments'), state.args, t.__('one argument a line'));
    }
    const more = document.createElement('details');
    more.className = 'gpulab-RunForm-more';
    const summary = document.createElement('summary');
    summary.textContent = t.__('Runtime, CPU, memory and other options');
    more.appendChild(summary);
    node.appendChild(more);
    const host = more;
    this.text('max_runtime', t.__('Maximum runtime'), state.max_runtime, t.__('e.g. 2h, 30m'), host);
    this.text('cpu', t.__('CPU'), state.cpu, t.__('e.g. 4 or 500m'), host);
    this.text('memory', t.__('Memory'), state.memory, t.__('e.g. 16Gi'), host);
    this.text('gpu_type', t.__('GPU type'), state.gpu_type, (status?.me?.policy?.gpu_types || []).join(', '), host);
    this.text('retries', t.__('Retries'), state.retries, t.__('times to retry a failed run'), host);
    this.area('env', t.__('Environment'), state.env, t.__('NAME=value, one a line'), host);
    this.text('datasets', t.__('Datasets'), state.datasets, t.__('names, comma-separated'), host);
    this.showProblems(problems, more);
  }

  /** "Run now" / "On a schedule": the schedule's cron and time zone show only for the latter. */
  private whenChooser(): void {
    const t = this.trans;
    const box = fieldset('gpulab-RunForm-when', t.__('When'));
    const group = `gpulab-run-when-${++fieldCounter}`;
    const fields = document.createElement('div');
    fields.className = 'gpulab-RunForm-schedule';
    const choices: ['now' | 'schedule', string][] = [
      ['now', t.__('Run now')],
      ['schedule', t.__('On a schedule')]
    ];
    for (const [value, label] of choices) {
      const lab = document.createElement('label');
      const radio = document.createElement('input');
      radio.type = 'radio';
      radio.name = group;
      radio.value = value;
      radio.checked = this.state.when === value;
      radio.addEventListener('change', () => {
        this.state.when = value;
        fields.hidden = value !== 'schedule';
      });
      lab.append(radio, ` ${label}`);
      box.appendChild(lab);
    }
    box.appendChild(fields);
    fields.hidden = this.state.when !== 'schedule';
    this.text(
      'schedule',
      t.__('Schedule'),
      this.state.schedule,
      t.__('cron: minute hour day month weekday, e.g. "0 2 * * *" (daily at 02:00), or @daily'),
      fields
    );
    const zone = this.text('timezone', t.__('Time zone'), this.state.timezone, t.__('e.g. Europe/Berlin; type to search'), fields);
    const zones: string[] = (Intl as any).supportedValuesOf?.('timeZone') ?? [];
    if (zones.length) {
      const list = document.createElement('datalist');
      list.id = `gpulab-zones-${++fieldCounter}`;
      for (const z of zones) {
        const option = document.createElement('option');
        option.value = z;
        list.appendChild(option);
      }
      fields.appendChild(list);
      zone.setAttribute('list', list.id);
    }
    this.node.appendChild(box);
  }

  private field(key: string, label: string, hint: string, host: HTMLElement): HTMLElement {
    const row = document.createElement('div');
    row.className = 'gpulab-RunForm-row';
    const id = `gpulab-run-${key}-${++fieldCounter}`;
    const lab = document.createElement('label');
    lab.htmlFor = id;
    lab.textContent = label;
    row.appendChild(lab);
    const error = document.createElement('div');
    error.className = 'gpulab-RunForm-error';
    error.id = `${id}-error`;
    error.setAttribute('aria-live', 'polite');
    this.errors.set(key, error);
    const help = document.createElement('div');
    help.className = 'gpulab-RunForm-hint';
    help.id = `${id}-hint`;
    help.textContent = hint;
    row.dataset.id = id;
    host.appendChild(row);
    (row as any)._extra = [help, error];
    return row;
  }

  private finish(key: string, row: HTMLElement, input: HTMLInputElement | HTMLTextAreaElement) {
    input.id = row.dataset.id!;
    input.name = key;
    input.className = 'jp-mod-styled gpulab-RunForm-input';
    input.setAttribute('aria-describedby', `${input.id}-hint ${input.id}-error`);
    row.appendChild(input);
    for (const extra of (row as any)._extra as HTMLElement[]) {
      row.appendChild(extra);
    }
    this.inputs.set(key, input);
  }

  private text(key: string, label: string, value: string, hint: string, host: HTMLElement = this.node) {
    const row = this.field(key, label, hint, host);
    const input = document.createElement('input');
    input.type = 'text';
    input.value = value;
    this.finish(key, row, input);
    return input;
  }

  private area(key: string, label: string, value: string, hint: string, host: HTMLElement = this.node) {
    const row = this.field(key, label, hint, host);
    const input = document.createElement('textarea');
    input.rows = 3;
    input.value = value;
    this.finish(key, row, input);
    return input;
  }

  private parameters(): void {
    const t = this.trans;
    const box = fieldset('gpulab-RunForm-parameters', t.__('Parameters'));
    const hint = document.createElement('div');
    hint.className = 'gpulab-RunForm-hint';
    hint.textContent = this.state.parameters.length
      ? t.__("From the notebook's parameters cell; values are JSON, or text.")
      : t.__('The notebook has no cell tagged "parameters"; add values here if it reads any.');
    box.appendChild(hint);
    this.paramList = document.createElement('div');
    box.appendChild(this.paramList);
    for (const row of this.state.parameters) {
      this.parameterRow(row);
    }
    const add = document.createElement('button');
    add.type = 'button';
    add.className = 'jp-mod-styled jp-mod-reject gpulab-RunForm-add';
    add.textContent = t.__('Add parameter');
    add.addEventListener('click', () => {
      const row = { name: '', value: '' };
      this.state.parameters.push(row);
      this.parameterRow(row).querySelector('input')?.focus();
    });
    box.appendChild(add);
    const error = document.createElement('div');
    error.className = 'gpulab-RunForm-error';
    error.setAttribute('aria-live', 'polite');
    this.errors.set('parameters', error);
    box.appendChild(error);
    this.node.appendChild(box);
  }

  private parameterRow(row: { name: string; value: string }): HTMLElement {
    const t = this.trans;
    const line = document.createElement('div');
    line.className = 'gpulab-RunForm-param';
    const name = document.createElement('input');
    name.className = 'jp-mod-styled';
    name.value = row.name;
    name.placeholder = t.__('name');
    name.setAttribute('aria-label', t.__('Parameter name'));
    name.addEventListener('input', () => (row.name = name.value));
    const value = document.createElement('input');
    value.className = 'jp-mod-styled';
    value.value = row.value;
    value.placeholder = t.__('value');
    value.setAttribute('aria-label', t.__('Value of %1', row.name || t.__('parameter')));
    value.dataset.parameter = row.name;
    value.addEventListener('input', () => (row.value = value.value));
    const remove = document.createElement('button');
    remove.type = 'button';
    remove.className = 'jp-mod-styled jp-mod-reject';
    remove.textContent = '×';
    remove.setAttribute('aria-label', t.__('Remove parameter %1', row.name));
    remove.addEventListener('click', () => {
      this.state.parameters.splice(this.state.parameters.indexOf(row), 1);
      line.remove();
    });
    line.append(name, value, remove);
    this.paramList.appendChild(line);
    return line;
  }

  private showProblems(problems: FieldError[], more: HTMLDetailsElement): void {
    for (const p of problems) {
      // a definition's job spec fields come back as spec.<field>
      const top = p.field.replace(/^spec\./, '').split(/[.[]/)[0];
      const slot = this.errors.get(top) || this.errors.get('name');
      if (!slot) {
        continue;
      }
      const line = document.createElement('div');
      line.textContent = p.allowed ? `${p.message} (${p.allowed})` : p.message;
      slot.appendChild(line);
      this.inputs.get(top)?.setAttribute('aria-invalid', 'true');
      if (more.contains(slot)) {
        more.open = true;
      }
    }
  }

  /** The values as typed, kept for the next round of the dialog. */
  read(): FormState {
    const v = (k: string) => this.inputs.get(k)?.value ?? '';
    return {
      ...this.state,
      schedule: v('schedule'),
      timezone: v('timezone'),
      name: v('name'),
      gpus: v('gpus'),
      image: v('image'),
      args: v('args'),
      max_runtime: v('max_runtime'),
      cpu: v('cpu'),
      memory: v('memory'),
      gpu_type: v('gpu_type'),
      retries: v('retries'),
      env: v('env'),
      datasets: v('datasets')
    };
  }

  focusFirst(): void {
    const invalid = this.node.querySelector('[aria-invalid="true"]') as HTMLElement | null;
    (invalid || this.inputs.get('name'))?.focus();
  }
}

/** Images to offer: this server's first, then the catalogue images the user may use that
 * can run jobs (an image without the job runner is refused at submit, so it is not offered). */
async function knownImages(status: LabStatus | null): Promise<AllowedImage[]> {
  const offered: AllowedImage[] = [];
  const server = status?.server.image;
  let allowed: AllowedImage[] = [];
  try {
    allowed = (await api.images()).items.filter(img => img.ready?.jobs !== false);
  } catch {
    // the list is a convenience: typing an image works without it
  }
  const own = allowed.find(img => img.image === server);
  if (own) {
    offered.push(own);
  } else if (server && !allowed.length) {
    offered.push({ image: server });
  }
  offered.push(...allowed.filter(img => img.image !== server));
  return offered;
}

/** Shows the dialog until the job (or the scheduled definition) is accepted (returns it) or
 * the user cancels (null). */
export async function runAsJob(req: RunRequest, trans: TranslationBundle): Promise<RunResult | null> {
  let status: LabStatus | null = null;
  let parameters: NotebookParameter[] = [];
  const [st, params] = await Promise.allSettled([
    api.status(),
    req.kind === 'notebook' ? api.parameters(req.path) : Promise.resolve({ parameters: [] })
  ]);
  if (st.status === 'fulfilled') {
    status = st.value;
  }
  if (params.status === 'fulfilled') {
    parameters = params.value.parameters;
  }
  const images = await knownImages(status);
  let form: FormState = {
    when: 'now',
    schedule: '',
    timezone: localZone(),
    name: jobNameFor(req.path),
    gpus: String(status?.server.gpus ?? 0),
    image: status?.server.image ?? '',
    parameters: parameters.map(p => ({ name: p.name, value: parameterText(p) })),
    args: '',
    max_runtime: '',
    cpu: '',
    memory: '',
    gpu_type: '',
    retries: '',
    env: '',
    datasets: ''
  };
  let problems: FieldError[] = [];
  let general = '';
  const key = UUID.uuid4(); // one submission however many rounds the dialog takes
  for (;;) {
    const body = new RunForm(req, form, status, images, problems, general, trans);
    const result = await showDialog({
      title: trans.__('Run as job'),
      body,
      focusNodeSelector: problems.length ? '[aria-invalid="true"]' : 'input[name="name"]',
      buttons: [
        Dialog.cancelButton({ label: trans.__('Cancel') }),
        Dialog.okButton({ label: trans.__('Submit'), ariaLabel: trans.__('Submit job') })
      ]
    });
    form = body.read();
    if (!result.button.accept) {
      return null;
    }
    const scheduled = form.when === 'schedule';
    const built = scheduled ? buildDefinition(req, form) : buildSpec(req, form);
    problems = built.problems;
    general = '';
    if (problems.length) {
      continue;
    }
    try {
      if ('body' in built) {
        return { definition: await api.define(built.body) };
      }
      return { job: await api.submit(built.spec, key) };
    } catch (error) {
      if (error instanceof ApiError && error.problems.length) {
        problems = error.problems;
        general = scheduled
          ? trans.__('The schedule was not saved: see the fields marked below.')
          : trans.__('The job was not submitted: see the fields marked below.');
      } else {
        general = scheduled
          ? trans.__('The schedule was not saved: %1', String((error as Error).message))
          : trans.__('The job was not submitted: %1', String((error as Error).message));
      }
    }
  }
}
