// The status bar item: this server's GPUs (count, type, utilisation), quota left and the time
// until an idle cull.
import { TranslationBundle } from '@jupyterlab/translation';
import { Widget } from '@lumino/widgets';

import { LabStatus, formatDuration } from './api';

export function statusText(status: LabStatus | null, trans: TranslationBundle, now = Date.now()): string {
  if (!status) {
    return trans.__('gpulab: no status');
  }
  const parts: string[] = [];
  const s = status.server;
  if (s.gpus > 0) {
    const type = s.gpu_type ? ` ${s.gpu_type}` : '';
    const util = s.utilisation_pct.length
      ? trans.__(', %1% busy', Math.round(Math.max(...s.utilisation_pct)))
      : '';
    parts.push(
      s.gpus === 1
        ? trans.__('1 GPU%1%2', type, util)
        : trans.__('%1 GPUs%2%3', s.gpus, type, util)
    );
  } else {
    parts.push(trans.__('no GPU'));
  }
  const q = status.me?.quota;
  if (q) {
    parts.push(trans.__('quota %1/%2 free', Math.max(0, q.gpus_user_limit - q.gpus_user_used), q.gpus_user_limit));
  }
  const cull = status.cull.status;
  if (cull?.cull_at && (cull.state === 'warned' || cull.state === 'idle')) {
    parts.push(trans.__('cull in %1', formatDuration((Date.parse(cull.cull_at) - now) / 1000)));
  } else if (cull?.state === 'kept') {
    parts.push(trans.__('kept %1', formatDuration(cull.keep_seconds_left)));
  }
  return parts.join(' · ');
}

export class GpuStatusItem extends Widget {
  constructor(private trans: TranslationBundle) {
    super();
    this.addClass('gpulab-StatusItem');
    this.node.setAttribute('role', 'status');
    this.node.title = trans.__("This server's GPUs, your GPU quota and the idle-cull clock");
    this.setStatus(null);
  }

  setStatus(status: LabStatus | null): void {
    const text = statusText(status, this.trans);
    this.node.textContent = text;
    this.node.setAttribute('aria-label', text);
    this.node.classList.toggle('gpulab-mod-warned', status?.cull.status?.state === 'warned');
  }
}
