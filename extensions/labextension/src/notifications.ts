// Notifications through JupyterLab's Notification system: a job started / succeeded / failed
// (with "Open log" / "Open outputs"), the idle-cull warning with a countdown and "Keep my
// server", and kernels holding GPU memory while idle. Preferences come from the settings.
import { Notification } from '@jupyterlab/apputils';
import { TranslationBundle } from '@jupyterlab/translation';

import { LabStatus, api, formatDuration } from './api';
import { JobWatcher, Transition } from './watcher';

export interface NotificationPrefs {
  jobStarted: boolean;
  jobFinished: boolean;
  cullWarning: boolean;
  idleGpuKernel: boolean;
}

export interface JobActions {
  openLog(jobId: string): void;
  openOutputs(jobId: string): Promise<void>;
}

export class JobNotifier {
  prefs: NotificationPrefs = {
    jobStarted: true,
    jobFinished: true,
    cullWarning: true,
    idleGpuKernel: true
  };

  constructor(
    watcher: JobWatcher,
    private actions: JobActions,
    private trans: TranslationBundle
  ) {
    watcher.transitions.connect((_, change) => this.onTransition(change));
  }

  private onTransition({ job, to }: Transition): void {
    const t = this.trans;
    const openLog = {
      label: t.__('Open log'),
      caption: t.__('Show the log of %1', job.name),
      callback: () => this.actions.openLog(job.id)
    };
    if (to === 'Running' && this.prefs.jobStarted) {
      Notification.info(t.__('Job %1 started', job.name), {
        autoClose: 5000,
        actions: [openLog]
      });
    } else if (to === 'Succeeded' && this.prefs.jobFinished) {
      Notification.success(t.__('Job %1 succeeded', job.name), {
        autoClose: false,
        actions: [
          {
            label: t.__('Open outputs'),
            caption: t.__('Download the outputs of %1 and open them', job.name),
            displayType: 'accent',
            callback: () => void this.actions.openOutputs(job.id)
          },
          openLog
        ]
      });
    } else if (to === 'Failed' && this.prefs.jobFinished) {
      Notification.error(
        t.__('Job %1 failed%2', job.name, job.message ? `: ${job.message}` : ''),
        { autoClose: false, actions: [openLog] }
      );
    }
  }
}

/** Polls this server's status: the cull warning (with a countdown) and idle GPU kernels. */
export class ServerNotifier {
  private cullId: string | null = null;
  private cullAt = 0;
  private ticker = 0;
  private kernelEvents: Set<string> | null = null;
  private timer = 0;
  private hiddenTicks = 0;
  latest: LabStatus | null = null;
  listeners: ((status: LabStatus | null) => void)[] = [];

  constructor(
    private notifier: JobNotifier,
    private trans: TranslationBundle,
    readonly interval = 3000
  ) {}

  start(): void {
    if (!this.timer) {
      void this.poll();
      // Hidden tabs poll too, less often: an idle-cull warning must reach a researcher who
      // comes back to the tab before the server is stopped.
      this.timer = window.setInterval(() => {
        if (!document.hidden || ++this.hiddenTicks % 4 === 0) {
          void this.poll();
        }
      }, this.interval);
      document.addEventListener('visibilitychange', () => {
        if (!document.hidden) {
          void this.poll();
        }
      });
    }
  }

  async poll(): Promise<void> {
    try {
      this.latest = await api.status();
    } catch {
      this.latest = null;
    }
    for (const listener of this.listeners) {
      listener(this.latest);
    }
    if (this.latest) {
      this.cull(this.latest);
      this.kernels(this.latest);
    }
  }

  private message(): string {
    const left = Math.max(0, (this.cullAt - Date.now()) / 1000);
    const gpus = this.latest?.server.gpus ?? 0;
    return gpus > 0
      ? this.trans.__(
          'This server is idle and will be stopped in %1 to free its GPUs.',
          formatDuration(left)
        )
      : this.trans.__('This server is idle and will be stopped in %1.', formatDuration(left));
  }

  private cull(status: LabStatus): void {
    const s = status.cull.status;
    const warned = s?.state === 'warned' && !!s.cull_at && this.notifier.prefs.cullWarning;
    if (!warned) {
      this.dismissCull();
      return;
    }
    this.cullAt = Date.parse(s!.cull_at!);
    const t = this.trans;
    const actions: Notification.IAction[] =
      s!.keeps_left > 0
        ? [
            {
              label: t.__('Keep my server'),
              caption: t.__('Tell the culler you are still using this server'),
              displayType: 'accent',
              callback: () => void this.keep()
            }
          ]
        : [];
    if (this.cullId === null) {
      this.cullId = Notification.warning(this.message(), { autoClose: false, actions });
      this.ticker = window.setInterval(() => {
        if (this.cullId !== null) {
          Notification.update({ id: this.cullId, message: this.message(), type: 'warning', actions, autoClose: false });
        }
      }, 1000);
    }
  }

  private dismissCull(): void {
    if (this.cullId !== null) {
      Notification.dismiss(this.cullId);
      this.cullId = null;
    }
    window.clearInterval(this.ticker);
    this.ticker = 0;
  }

  async keep(): Promise<void> {
    const t = this.trans;
    try {
      const status = await api.keep();
      this.dismissCull();
      const until = formatDuration(status.keep_seconds_left || 0);
      Notification.success(t.__('Your server is kept for %1.', until), { autoClose: 5000 });
    } catch (error) {
      Notification.error(t.__('The server could not be kept: %1', String((error as Error).message)), {
        autoClose: 8000
      });
    }
    void this.poll();
  }

  private kernels(status: LabStatus): void {
    const first = this.kernelEvents === null;
    const seen = this.kernelEvents ?? new Set<string>();
    const pending = new Set(status.kernels.warned.map(w => w.kernel_id));
    for (const event of status.kernels.events) {
      const key = `${event.kernel_id} ${event.action} ${event.at}`;
      if (seen.has(key)) {
        continue;
      }
      seen.add(key);
      // On opening Lab: only warnings still pending, not the history.
      const show = first ? event.action === 'warn' && pending.has(event.kernel_id) : true;
      if (!show || !this.notifier.prefs.idleGpuKernel) {
        continue;
      }
      const message = this.trans.__('Idle kernel holding GPU memory: %1', event.reason);
      if (event.action === 'warn') {
        Notification.warning(message, { autoClose: false });
      } else {
        Notification.info(message, { autoClose: 10000 });
      }
    }
    this.kernelEvents = seen;
  }
}
