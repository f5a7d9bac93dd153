// One poller of "my jobs" for the sidebar and the notifications: the newest page every few
// seconds, and each state change seen between two polls (never one seen only at start-up).
import { ISignal, Signal } from '@lumino/signaling';

import { Job, api } from './api';

export interface Transition {
  job: Job;
  from: string;
  to: string;
}

export class JobWatcher {
  private _jobs: Job[] = [];
  private _known = new Map<string, string>();
  private _primed = false;
  private _timer = 0;
  private _changed = new Signal<this, Job[]>(this);
  private _transitions = new Signal<this, Transition>(this);
  private _error = '';

  constructor(readonly interval = 5000) {}

  get jobs(): Job[] {
    return this._jobs;
  }

  get error(): string {
    return this._error;
  }

  get changed(): ISignal<this, Job[]> {
    return this._changed;
  }

  get transitions(): ISignal<this, Transition> {
    return this._transitions;
  }

  start(): void {
    if (!this._timer) {
      void this.poll();
      // A hidden tab does not poll (many open tabs would load the gateway for nothing); it
      // catches up as soon as it is shown again.
      this._timer = window.setInterval(() => {
        if (!document.hidden) {
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

  /** A job the user just submitted: watched from its first state on. */
  track(job: Job): void {
    if (!this._known.has(job.id)) {
      this._known.set(job.id, '');
    }
    void this.poll();
  }

  async poll(): Promise<void> {
    let jobs: Job[];
    try {
      jobs = (await api.jobs({ limit: '100' })).items;
      this._error = '';
    } catch (error) {
      this._error = String((error as Error).message);
      this._changed.emit(this._jobs);
      return;
    }
    for (const job of jobs) {
      const before = this._known.get(job.id);
      if (this._primed || before !== undefined) {
        if (before !== job.state) {
          this._transitions.emit({ job, from: before ?? '', to: job.state });
        }
      }
      this._known.set(job.id, job.state);
    }
    this._primed = true;
    this._jobs = jobs;
    this._changed.emit(jobs);
  }
}
