// gpulab in JupyterLab: "Run as job" (notebook toolbar, file browser, palette), the GPU jobs
// sidebar, notifications and the status bar item. Everything talks to this server's
// gpulab/api/... (the gpulab server extension).
import {
  ILabShell,
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette, ToolbarButton, showDialog, Dialog } from '@jupyterlab/apputils';
import { IDocumentManager } from '@jupyterlab/docmanager';
import { DocumentRegistry } from '@jupyterlab/docregistry';
import { IDefaultFileBrowser } from '@jupyterlab/filebrowser';
import { INotebookModel, INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { IStatusBar } from '@jupyterlab/statusbar';
import { ITranslator, nullTranslator, TranslationBundle } from '@jupyterlab/translation';
import { LabIcon } from '@jupyterlab/ui-components';
import { DisposableDelegate, IDisposable } from '@lumino/disposable';

import { runAsJob, RunRequest } from './runDialog';
import { JobsSidebar } from './sidebar';
import { JobNotifier, NotificationPrefs, ServerNotifier } from './notifications';
import { GpuStatusItem } from './statusbar';
import { JobWatcher } from './watcher';

const PLUGIN_ID = '@gpulab/labextension:plugin';

export namespace CommandIDs {
  export const runAsJob = 'gpulab:run-as-job';
  export const runFileAsJob = 'gpulab:run-file-as-job';
  export const openJobs = 'gpulab:open-jobs';
  export const keepServer = 'gpulab:keep-server';
}

const GPU_SVG =
  '<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">' +
  '<path class="jp-icon3" fill="#616161" d="M4 6h16a2 2 0 0 1 2 2v8a2 2 0 0 1-2 2H4a2 2 0 0 ' +
  '1-2-2V8a2 2 0 0 1 2-2zm1 3v6h2V9H5zm4 0v6h2V9H9zm6 1a2 2 0 1 0 0 4 2 2 0 0 0 0-4zM6 19h2v2H6' +
  'v-2zm4 0h2v2h-2v-2z"/></svg>';
export const gpuIcon = new LabIcon({ name: 'gpulab:gpu', svgstr: GPU_SVG });

const RUN_SVG =
  '<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">' +
  '<path class="jp-icon3" fill="#616161" d="M3 5h10v2H3zm0 4h10v2H3zm0 4h6v2H3zm11-1 7 4.5-7 ' +
  '4.5z"/></svg>';
export const runJobIcon = new LabIcon({ name: 'gpulab:run-job', svgstr: RUN_SVG });

function kindOf(path: string): RunRequest['kind'] | null {
  if (path.endsWith('.ipynb')) {
    return 'notebook';
  }
  if (path.endsWith('.py')) {
    return 'script';
  }
  return null;
}

/** Unsaved edits would be ignored (the job runs the saved file): offer to save first. */
async function saveFirst(
  context: DocumentRegistry.IContext<DocumentRegistry.IModel> | undefined,
  trans: TranslationBundle
): Promise<boolean> {
  if (!context || !context.model.dirty) {
    return true;
  }
  const result = await showDialog({
    title: trans.__('Save before running?'),
    body: trans.__(
      '%1 has unsaved changes. The job runs the saved file: save it first to run what you see.',
      context.path
    ),
    buttons: [
      Dialog.cancelButton({ label: trans.__('Cancel') }),
      Dialog.warnButton({ label: trans.__('Run the saved version') }),
      Dialog.okButton({ label: trans.__('Save and run') })
    ]
  });
  if (!result.button.accept) {
    return false;
  }
  if (result.button.displayType !== 'warn') {
    await context.save();
  }
  return true;
}

class RunButtonExtension
  implements DocumentRegistry.IWidgetExtension<NotebookPanel, INotebookModel>
{
  constructor(
    private app: JupyterFrontEnd,
    private trans: TranslationBundle
  ) {}

  createNew(panel: NotebookPanel): IDisposable {
    const button = new ToolbarButton({
      className: 'gpulab-RunJobButton',
      icon: runJobIcon,
      label: this.trans.__('Run as job'),
      tooltip: this.trans.__('Run this notebook as a GPU batch job'),
      onClick: () => {
        void this.app.commands.execute(CommandIDs.runAsJob, { path: panel.context.path });
      }
    });
    panel.toolbar.insertItem(10, 'gpulabRunAsJob', button);
    return new DisposableDelegate(() => button.dispose());
  }
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description: 'gpulab: Run as job, the GPU jobs sidebar, notifications and a status bar item.',
  autoStart: true,
  requires: [INotebookTracker],
  optional: [
    IDocumentManager,
    ICommandPalette,
    IDefaultFileBrowser,
    ILayoutRestorer,
    ILabShell,
    IStatusBar,
    ISettingRegistry,
    ITranslator
  ],
  activate: (
    app: JupyterFrontEnd,
    notebooks: INotebookTracker,
    docManager: IDocumentManager | null,
    palette: ICommandPalette | null,
    browser: IDefaultFileBrowser | null,
    restorer: ILayoutRestorer | null,
    _labShell: ILabShell | null,
    statusBar: IStatusBar | null,
    settings: ISettingRegistry | null,
    translator: ITranslator | null
  ) => {
    const trans = (translator ?? nullTranslator).load('gpulab');
    const category = trans.__('GPU jobs');
    const watcher = new JobWatcher();

    const openPath = async (path: string) => {
      await app.commands.execute('docmanager:open', { path });
    };
    const sidebar = new JobsSidebar(watcher, { open: openPath }, trans);
    sidebar.title.icon = gpuIcon;
    app.shell.add(sidebar, 'right', { rank: 200 });
    restorer?.add(sidebar, 'gpulab-jobs-sidebar');

    const showJob = (id: string) => {
      app.shell.activateById(sidebar.id);
      void sidebar.select(id);
    };
    const notifier = new JobNotifier(
      watcher,
      {
        openLog: showJob,
        openOutputs: async (id: string) => {
          showJob(id);
          const where = await sidebar.download(id);
          if (!where || where.lab_folder === null) {
            return;
          }
          // The executed notebook (notebook jobs); else the folder in the file browser.
          const executed =
            where.files.find(f => f === 'notebook.ipynb') ||
            where.files.find(f => f.endsWith('.ipynb'));
          if (executed) {
            await openPath(`${where.lab_folder}/${executed}`);
          } else {
            await app.commands.execute('filebrowser:go-to-path', { path: where.lab_folder });
          }
        }
      },
      trans
    );
    const server = new ServerNotifier(notifier, trans);

    const run = async (path: string) => {
      const kind = kindOf(path);
      if (!kind) {
        return;
      }
      // The file may be open in any tab (the file browser's menu names files, not tabs).
      const open = docManager?.findWidget(path);
      const context = open
        ? docManager?.contextForWidget(open)
        : notebooks.currentWidget?.context.path === path
          ? notebooks.currentWidget.context
          : undefined;
      if (!(await saveFirst(context, trans))) {
        return;
      }
      const result = await runAsJob({ path, kind }, trans);
      if (result?.job) {
        watcher.track(result.job);
        showJob(result.job.id);
      } else if (result?.definition) {
        app.shell.activateById(sidebar.id);
        void sidebar.showDefinitions();
      }
    };

    app.commands.addCommand(CommandIDs.runAsJob, {
      label: trans.__('Run as Job…'),
      caption: trans.__('Run the current notebook as a GPU batch job'),
      icon: args => (args.toolbar ? runJobIcon : undefined),
      isEnabled: args => !!(args.path || notebooks.currentWidget),
      execute: args => {
        const path = (args.path as string) || notebooks.currentWidget?.context.path || '';
        return run(path);
      }
    });
    notebooks.currentChanged.connect(() => app.commands.notifyCommandChanged(CommandIDs.runAsJob));
    app.commands.addCommand(CommandIDs.runFileAsJob, {
      label: trans.__('Run as Job…'),
      caption: trans.__('Run the selected notebook or script as a GPU batch job'),
      icon: runJobIcon,
      execute: () => {
        const first = browser?.selectedItems().next();
        if (first && !first.done && first.value.path) {
          return run(first.value.path);
        }
      }
    });
    app.commands.addCommand(CommandIDs.openJobs, {
      label: trans.__('Show GPU Jobs'),
      caption: trans.__('Open the GPU jobs sidebar'),
      execute: () => app.shell.activateById(sidebar.id)
    });
    app.commands.addCommand(CommandIDs.keepServer, {
      label: trans.__('Keep My Server'),
      caption: trans.__('Tell the idle culler you are still using this server'),
      execute: () => server.keep()
    });
    for (const command of [CommandIDs.runAsJob, CommandIDs.openJobs, CommandIDs.keepServer]) {
      palette?.addItem({ command, category });
    }
    for (const type of ['notebook', 'python']) {
      app.contextMenu.addItem({
        command: CommandIDs.runFileAsJob,
        selector: `.jp-DirListing-item[data-file-type="${type}"]`,
        rank: 3
      });
    }
    app.docRegistry.addWidgetExtension('Notebook', new RunButtonExtension(app, trans));

    if (statusBar) {
      const item = new GpuStatusItem(trans);
      statusBar.registerStatusItem('@gpulab/labextension:status', {
        item,
        align: 'left',
        rank: 50
      });
      server.listeners.push(status => item.setStatus(status));
    }

    const applyPrefs = (s: ISettingRegistry.ISettings) => {
      const composite = s.composite as unknown as Partial<NotificationPrefs>;
      notifier.prefs = { ...notifier.prefs, ...composite };
    };
    if (settings) {
      settings
        .load(PLUGIN_ID)
        .then(s => {
          applyPrefs(s);
          s.changed.connect(applyPrefs);
        })
        .catch(reason => console.warn('gpulab: settings not loaded', reason));
    }
    watcher.start();
    server.start();
  }
};

export default plugin;
