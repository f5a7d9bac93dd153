// Calls to the gpulab server extension (`gpulab/api/...` on this Jupyter server). The server
// forwards them to the jobs gateway and the culler with its own token, which never reaches
// the browser; XSRF and authentication come from ServerConnection.
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import type { SweepRun } from './sweepRuns';

export interface FieldError {
  field: string;
  message: string;
  allowed?: string;
  code?: string;
}

export interface Job {
  id: string;
  name: string;
  state: string;
  message?: string;
  image?: string;
  gpus: number;
  gpu_type?: string | null;
  created?: string;
  started?: string | null;
  finished?: string | null;
  exit_code?: number | null;
  spec?: { [key: string]: any } | null;
  upload?: string;
  queue?: { position?: number; reason?: string } | null;
  runs?: SweepRun[]; // a sweep's runs
}

/** A catalogue image the user may use (the gateway's `GET api/v1/images`). */
export interface AllowedImage {
  image: string;
  display_name?: string;
  recommended?: boolean;
  ready?: { notebooks: boolean; jobs: boolean };
}

/** A saved job definition (the gateway's `definitions`): run now on demand, or on a schedule. */
export interface Definition {
  name: string;
  id: string;
  schedule: string | null;
  timezone: string | null;
  paused: boolean | null;
  last_schedule_time?: string | null;
  runs?: string[];
}

export interface NotebookParameter {
  name: string;
  value: any;
  source: string;
  literal: boolean;
}

export interface Quota {
  gpus_user_used: number;
  gpus_user_limit: number;
  group: string;
  gpus_group_used: number;
  gpus_group_limit: number;
  jobs_unfinished: number;
  jobs_limit: number;
}

export interface CullStatus {
  state: 'active' | 'idle' | 'warned' | 'kept' | 'exempt';
  reason: string;
  cull_at: string | null;
  keeps_left: number;
  keep_seconds_left: number;
}

export interface LabStatus {
  server: {
    name: string;
    image: string;
    gpus: number;
    gpu_type: string;
    utilisation_pct: number[];
    sampled_at: string | null;
  };
  me: {
    name: string;
    quota: Quota | null;
    policy: { per_job: number; max_runtime: number; gpu_types: string[] } | null;
  } | null;
  me_error: string;
  cull: { culler: boolean; status: CullStatus | null; report_interval: number };
  kernels: {
    warned: { kernel_id: string; at: string }[];
    events: KernelEvent[];
  };
}

export interface Downloaded {
  home_folder: string; // relative to the home
  lab_folder: string | null; // relative to Lab's root; null when out of its reach
  files: string[]; // output paths, relative to the folder
}

/** What the idle-GPU-kernel reaper did: warned a kernel, then shut it down or restarted it. */
export interface KernelEvent {
  kernel_id: string;
  action: 'warn' | 'shutdown' | 'restart' | string;
  reason: string;
  at: string;
}

export interface OutputItem {
  path: string;
  size?: number;
}

/** An answer other than 2xx: the message, and the field errors when the API gave them. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly problems: FieldError[] = []
  ) {
    super(message);
  }
}

const settings = (): ServerConnection.ISettings => ServerConnection.makeSettings();

export function apiUrl(path: string, query: { [k: string]: string } = {}): string {
  const url = URLExt.join(settings().baseUrl, 'gpulab/api', path);
  const q = URLExt.objectToQueryString(query);
  return q && q !== '?' ? url + q : url;
}

export async function raw(
  path: string,
  init: RequestInit = {},
  query: { [k: string]: string } = {}
): Promise<Response> {
  const s = settings();
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(apiUrl(path, query), init, s);
  } catch (error) {
    throw new ApiError(0, String(error));
  }
  if (!response.ok) {
    let body: any = null;
    try {
      body = await response.json();
    } catch {
      body = null;
    }
    const problems: FieldError[] = Array.isArray(body?.problems) ? body.problems : [];
    if (!problems.length && body?.field) {
      problems.push({ field: body.field, message: body.error });
    }
    const message = body?.error || body?.detail || response.statusText;
    throw new ApiError(response.status, String(message), problems);
  }
  return response;
}

export async function requestJSON<T>(
  path: string,
  init: RequestInit = {},
  query: { [k: string]: string } = {}
): Promise<T> {
  const response = await raw(path, init, query);
  const text = await response.text();
  return (text ? JSON.parse(text) : null) as T;
}

export const api = {
  status: () => requestJSON<LabStatus>('lab/status'),
  parameters: (path: string) =>
    requestJSON<{ path: string; parameters: NotebookParameter[] }>(
      'lab/parameters',
      {},
      { path }
    ),
  images: () => requestJSON<{ items: AllowedImage[] }>('images'),
  jobs: (query: { [k: string]: string } = {}) =>
    requestJSON<{ items: Job[]; continue?: string | null }>('jobs', {}, query),
  job: (id: string) => requestJSON<Job>(`jobs/${encodeURIComponent(id)}`),
  submit: (spec: { [k: string]: any }, key: string) =>
    requestJSON<Job>('jobs', {
      method: 'POST',
      body: JSON.stringify(spec),
      headers: { 'Content-Type': 'application/json', 'Idempotency-Key': key }
    }),
  cancel: (id: string) =>
    requestJSON<Job>(`jobs/${encodeURIComponent(id)}/cancel`, { method: 'POST' }),
  resubmit: (id: string) =>
    requestJSON<Job>(`jobs/${encodeURIComponent(id)}/resubmit`, { method: 'POST' }),
  outputs: (id: string) =>
    requestJSON<{ items: OutputItem[] }>(`jobs/${encodeURIComponent(id)}/outputs`),
  download: (id: string) =>
    requestJSON<Downloaded>(`lab/jobs/${encodeURIComponent(id)}/download`,
      { method: 'POST' }
    ),
  definitions: () => requestJSON<{ items: Definition[] }>('definitions'),
  define: (body: { name: string; spec: { [k: string]: any }; schedule: string; timezone: string }) =>
    requestJSON<Definition>('definitions', {
      method: 'POST',
      body: JSON.stringify(body),
      headers: { 'Content-Type': 'application/json' }
    }),
  definitionAction: (name: string, action: 'pause' | 'resume' | 'run-now') =>
    requestJSON<any>(`definitions/${encodeURIComponent(name)}/${action}`, { method: 'POST' }),
  deleteDefinition: (name: string) =>
    requestJSON<any>(`definitions/${encodeURIComponent(name)}`, { method: 'DELETE' }),
  keep: () => requestJSON<CullStatus>('keep', { method: 'POST' }),
  logs: (id: string, follow: boolean, init: RequestInit = {}) =>
    raw(`jobs/${encodeURIComponent(id)}/logs`, init, { follow: follow ? '1' : '0' })
};

export const TERMINAL_STATES = new Set(['Succeeded', 'Failed', 'Cancelled']);

/** "1h 02m", "3m 05s", "12s". */
export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const r = s % 60;
  const pad = (n: number) => String(n).padStart(2, '0');
  if (h) {
    return `${h}h ${pad(m)}m`;
  }
  if (m) {
    return `${m}m ${pad(r)}s`;
  }
  return `${r}s`;
}

export function jobDuration(job: Job, now = Date.now()): number | null {
  if (!job.started) {
    return null;
  }
  const end = job.finished ? Date.parse(job.finished) : now;
  return (end - Date.parse(job.started)) / 1000;
}
