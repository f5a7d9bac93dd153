// A job's log: streamed while the job runs (follow), the archived log once the pod is gone
// (the gateway serves both on the same route). Follows the tail unless the user scrolled up.
import { TranslationBundle } from '@jupyterlab/translation';
import { Widget } from '@lumino/widgets';

import { TERMINAL_STATES, api } from './api';

export class LogView extends Widget {
  private pre: HTMLPreElement;
  private statusLine: HTMLElement;
  private abort: AbortController | null = null;

  constructor(private trans: TranslationBundle) {
    super();
    this.addClass('gpulab-LogView');
    this.statusLine = document.createElement('div');
    this.statusLine.className = 'gpulab-LogView-status';
    this.statusLine.setAttribute('aria-live', 'polite');
    this.pre = document.createElement('pre');
    this.pre.className = 'gpulab-LogView-text';
    this.pre.tabIndex = 0;
    this.pre.setAttribute('role', 'log');
    this.pre.setAttribute('aria-label', trans.__('Job log'));
    this.node.append(this.statusLine, this.pre);
  }

  get text(): string {
    return this.pre.textContent || '';
  }

  stop(): void {
    this.abort?.abort();
    this.abort = null;
  }

  async load(jobId: string, state: string): Promise<void> {
    this.stop();
    const abort = new AbortController();
    this.abort = abort;
    this.pre.textContent = '';
    const follow = !TERMINAL_STATES.has(state);
    this.statusLine.textContent = follow
      ? this.trans.__('Following the log…')
      : this.trans.__('The whole log');
    try {
      const response = await api.logs(jobId, follow, { signal: abort.signal });
      const reader = response.body!.getReader();
      const decoder = new TextDecoder();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) {
          break;
        }
        this.append(decoder.decode(value, { stream: true }));
      }
      if (this.abort === abort) {
        this.statusLine.textContent = this.trans.__('End of the log');
      }
    } catch (error) {
      if (!abort.signal.aborted) {
        this.statusLine.textContent = this.trans.__(
          'No log: %1',
          String((error as Error).message)
        );
      }
    }
  }

  private append(text: string): void {
    const pre = this.pre;
    const atBottom = pre.scrollHeight - pre.scrollTop - pre.clientHeight < 24;
    pre.appendChild(document.createTextNode(text));
    if (atBottom) {
      pre.scrollTop = pre.scrollHeight;
    }
  }

  dispose(): void {
    this.stop();
    super.dispose();
  }
}
