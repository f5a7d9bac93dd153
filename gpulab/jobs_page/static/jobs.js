// gpulab jobs page: vanilla JS. Served by a user's server it talks to that server's gpulab/api/
// (never to the gateway); served by the jobs gateway, to the gateway's api/v1/ (same answers).
(function () {
  "use strict";
  const cfg = JSON.parse(document.getElementById("gpulab-config").textContent);
  const api = cfg.apiUrl;
  const $ = (id) => document.getElementById(id);
  const STATES = ["Queued", "Pending", "Running", "Succeeded", "Failed", "Cancelled"];
  const CANCELLABLE = ["Queued", "Pending", "Running"];
  let selected = null; // job id
  let selectedRun = null; // a sweep's run index (its log and outputs), null: the whole job
  let runs = []; // the selected sweep's runs, from its detail
  let runSort = { key: "index", desc: false };
  let runsFetched = ""; // job id + state + version of the last runs fetch
  let logAbort = null;
  let jobs = [];
  // How many of the newest jobs the list shows; "Show older jobs" adds a page.
  const PAGE = 50;
  let wanted = PAGE;

  function headers(extra) {
    return Object.assign({ "X-XSRFToken": cfg.xsrfToken }, extra || {});
  }

  // Answers that mean the gateway could not serve the request now (restarting, cut connection).
  const TRANSIENT = [502, 503, 504];
  const RETRY_DELAYS_MS = [500, 1000, 2000];

  async function call(method, path, body, extraHeaders) {
    const init = { method, credentials: "same-origin", headers: headers(extraHeaders) };
    if (body !== undefined) {
      init.body = JSON.stringify(body);
      init.headers["Content-Type"] = "application/json";
    }
    const r = await fetch(api + path, init);
    let data = null;
    try { data = await r.json(); } catch (e) { data = null; }
    return { status: r.status, ok: r.ok, data: data || {} };
  }

  // crypto.randomUUID exists only in secure contexts (https, localhost); a hub served over
  // plain http elsewhere still gets 128 random bits.
  function newKey() {
    if (crypto.randomUUID) return crypto.randomUUID();
    return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");
  }

  // A submit carries one Idempotency-Key, made per click and sent again on each retry: the
  // gateway makes at most one job per key, so a retry after a lost answer returns that job.
  async function submitOnce(spec) {
    const key = { "Idempotency-Key": newKey() };
    for (let attempt = 0; ; attempt++) {
      const last = attempt === RETRY_DELAYS_MS.length;
      let r;
      try {
        r = await call("POST", "jobs", spec, key);
      } catch (e) { // network error: the request may have arrived
        if (last) throw e;
      }
      if (r && (last || !TRANSIENT.includes(r.status))) return r;
      await new Promise((resolve) => setTimeout(resolve, RETRY_DELAYS_MS[attempt]));
    }
  }

  function problemsText(data) {
    const lines = [data.error || "request failed"];
    for (const p of data.problems || []) {
      lines.push("  " + (p.field || "(spec)") + ": " + p.message + (p.allowed ? " (allowed: " + p.allowed + ")" : ""));
    }
    return lines.join("\n");
  }

  function showError(text) {
    const el = $("error");
    el.textContent = text || "";
    el.hidden = !text;
  }

  // A queued job's place and what it waits for ("#2 in alice · 2 × a100 in vision: 1 job
  // ahead, 6 of 8 GPUs busy"), or a preempted job's requeues; "" otherwise.
  function queueText(j) {
    if (j.state === "Queued" && j.queue) return "#" + j.queue.position + " in " + j.queue.name + " · " + (j.message || "");
    if (j.preemptions) return "preempted, requeued (" + j.preemptions + "×), " + j.gpu_hours_lost + " GPU-h lost";
    return "";
  }

  function stateBadge(state) {
    const span = document.createElement("span");
    span.className = "state state-" + (STATES.includes(state) ? state : "unknown");
    span.textContent = state || "?";
    return span;
  }

  function when(iso) {
    if (!iso) return "";
    const d = new Date(iso);
    return isNaN(d) ? iso : d.toLocaleString();
  }

  // ------------------------------------------------------------------ job list
  async function refreshJobs() {
    // The gateway answers a page at a time: follow `continue` until `wanted` jobs are in.
    const found = [];
    let token = null;
    do {
      const query = "jobs?limit=" + Math.min(500, wanted - found.length) +
        (token ? "&continue=" + encodeURIComponent(token) : "");
      const r = await call("GET", query);
      if (!r.ok) { showError("Listing jobs: " + problemsText(r.data)); return; }
      found.push(...(r.data.items || []));
      token = r.data.continue;
    } while (token && found.length < wanted);
    showError("");
    jobs = found;
    $("older-button").hidden = !token;
    const body = $("jobs-table").querySelector("tbody");
    body.textContent = "";
    for (const j of jobs) {
      const tr = document.createElement("tr");
      tr.dataset.id = j.id;
      if (j.id === selected) tr.className = "selected";
      const cells = [j.name, j.id, null, String(j.gpus ?? ""), when(j.created)];
      cells.forEach((text, i) => {
        const td = document.createElement("td");
        if (i === 2) {
          td.appendChild(stateBadge(j.state));
          const waits = queueText(j);
          if (waits) {
            const small = document.createElement("small");
            small.className = "queue"; small.textContent = waits;
            td.appendChild(small);
          }
        } else td.textContent = text || "";
        tr.appendChild(td);
      });
      const td = document.createElement("td");
      if (CANCELLABLE.includes(j.state)) {
        const b = document.createElement("button");
        b.type = "button"; b.className = "secondary cancel"; b.textContent = "Cancel";
        b.addEventListener("click", (ev) => { ev.stopPropagation(); cancel(j.id); });
        td.appendChild(b);
      }
      tr.appendChild(td);
      tr.addEventListener("click", () => select(j.id));
      body.appendChild(tr);
    }
    $("jobs-empty").hidden = jobs.length > 0;
    $("jobs-updated").textContent = "updated " + new Date().toLocaleTimeString();
    if (selected) updateDetail(jobs.find((j) => j.id === selected));
  }

  // ------------------------------------------------------------------ saved definitions
  async function refreshDefinitions() {
    const r = await call("GET", "definitions");
    if (!r.ok) return; // an older gateway without definitions: the panel stays empty
    const items = r.data.items || [];
    const body = $("definitions-table").querySelector("tbody");
    body.textContent = "";
    for (const d of items) {
      const tr = document.createElement("tr");
      tr.dataset.name = d.name;
      const schedule = d.schedule === null ? "run-now only"
        : d.schedule + " (" + (d.timezone || "UTC") + ")";
      const paused = d.paused === null ? "" : (d.paused ? "yes" : "no");
      for (const text of [d.name, schedule, paused, when(d.last_schedule_time),
        String((d.runs || []).length)]) {
        const td = document.createElement("td");
        td.textContent = text || "";
        tr.appendChild(td);
      }
      const td = document.createElement("td");
      const actions = [["run-now", "Run now"]];
      if (d.paused === true) actions.push(["resume", "Resume"]);
      if (d.paused === false) actions.push(["pause", "Pause"]);
      actions.push(["delete", "Delete"]);
      for (const [action, label] of actions) {
        const b = document.createElement("button");
        b.type = "button"; b.className = "secondary definition-" + action; b.textContent = label;
        b.addEventListener("click", () => definitionAction(d.name, action));
        td.appendChild(b);
      }
      tr.appendChild(td);
      body.appendChild(tr);
    }
    $("definitions-empty").hidden = items.length > 0;
  }

  async function definitionAction(name, action) {
    const path = "definitions/" + encodeURIComponent(name);
    if (action === "delete" && !confirm("Delete " + name + " and its scheduled runs?")) return;
    const r = action === "delete" ? await call("DELETE", path)
      : await call("POST", path + "/" + action);
    if (!r.ok) { showError(label(action) + " " + name + ": " + problemsText(r.data)); return; }
    showError("");
    await refreshDefinitions();
    if (action === "run-now") { await refreshJobs(); select(r.data.id); }
  }

  function label(action) {
    return { "run-now": "Run now", pause: "Pause", resume: "Resume", delete: "Delete" }[action];
  }

  // ------------------------------------------------------------------ detail, log, outputs
  function updateDetail(job) {
    if (!job) return;
    $("detail-title").textContent = job.name + " (" + job.id + ")";
    const st = $("detail-state");
    st.className = "state state-" + job.state; st.textContent = job.state;
    const bits = [job.message || "", job.exit_code != null ? "exit code " + job.exit_code : ""];
    $("detail-message").textContent = bits.filter(Boolean).join(" · ");
    $("cancel-button").disabled = !CANCELLABLE.includes(job.state);
    const finished = ["Succeeded", "Failed", "Cancelled"].includes(job.state);
    if (finished && $("detail-panel").dataset.outputsFor !== job.id + job.upload) {
      $("detail-panel").dataset.outputsFor = job.id + job.upload;
      loadOutputs(job.id);
    }
    const sweep = !!(job.spec && job.spec.sweep);
    $("runs-box").hidden = !sweep;
    if (sweep) loadRuns(job);
  }

  // ------------------------------------------------------------------ a sweep's runs
  // The results table: each run's parameters that differ between runs, its state and its
  // metrics (the result.json it wrote); sorted by the clicked column.
  async function loadRuns(job) {
    const stamp = job.id + job.state + (job.finished || "") + Math.floor(Date.now() / 10000);
    if (runsFetched === stamp) return;
    runsFetched = stamp;
    const r = await call("GET", "jobs/" + encodeURIComponent(job.id));
    if (!r.ok || selected !== job.id) return;
    runs = r.data.runs || [];
    renderRuns();
  }

  function cellText(v) {
    if (v === undefined || v === null) return "";
    if (typeof v === "number") return String(Number(v.toPrecision(6)));
    return typeof v === "string" ? v : JSON.stringify(v);
  }

  function runValue(run, key) {
    if (key === "index" || key === "state") return run[key];
    if (run.metrics && key in run.metrics) return run.metrics[key];
    return run.parameters ? run.parameters[key] : undefined;
  }

  function sortedRuns() {
    const { key, desc } = runSort;
    const has = runs.filter((r) => runValue(r, key) !== undefined && runValue(r, key) !== null);
    const lacks = runs.filter((r) => !has.includes(r));
    has.sort((a, b) => {
      const x = runValue(a, key), y = runValue(b, key);
      const c = typeof x === "number" && typeof y === "number"
        ? x - y : cellText(x).localeCompare(cellText(y));
      return desc ? -c : c;
    });
    return has.concat(lacks); // runs without the value last, whichever the direction
  }

  function renderRuns() {
    const metrics = [...new Set(runs.flatMap((r) => Object.keys(r.metrics || {})))].sort();
    const params = []; // those that differ between runs; a name that is a metric shows once
    for (const r of runs) {
      for (const k of Object.keys(r.parameters || {})) {
        if (params.includes(k) || metrics.includes(k)) continue;
        const values = new Set(runs.map((x) => cellText((x.parameters || {})[k])));
        if (values.size > 1) params.push(k);
      }
    }
    const cols = [["index", "Run"], ["state", "State"]]
      .concat(params.map((p) => [p, p]), metrics.map((m) => [m, m]));
    const head = document.createElement("tr");
    for (const [key, label] of cols) {
      const th = document.createElement("th");
      th.textContent = label;
      th.dataset.key = key;
      if (runSort.key === key) th.className = "sorted" + (runSort.desc ? " desc" : "");
      th.addEventListener("click", () => {
        runSort = { key, desc: runSort.key === key ? !runSort.desc : false };
        renderRuns();
      });
      head.appendChild(th);
    }
    const thead = $("runs-table").querySelector("thead");
    thead.textContent = "";
    thead.appendChild(head);
    const body = $("runs-table").querySelector("tbody");
    body.textContent = "";
    for (const run of sortedRuns()) {
      const tr = document.createElement("tr");
      tr.dataset.run = String(run.index);
      if (run.index === selectedRun) tr.className = "selected";
      for (const [key] of cols) {
        const td = document.createElement("td");
        if (key === "state") {
          const span = document.createElement("span");
          span.className = "state state-" + run.state;
          span.textContent = run.state;
          td.appendChild(span);
        } else {
          const v = runValue(run, key);
          td.textContent = cellText(v);
          if (typeof v === "number") td.className = "num";
        }
        tr.appendChild(td);
      }
      tr.addEventListener("click", () => selectRun(run.index));
      body.appendChild(tr);
    }
  }

  function selectRun(index) {
    selectedRun = index;
    renderRuns();
    streamLog(selected);
    loadOutputs(selected);
  }

  async function select(id) {
    selected = id;
    selectedRun = null;
    runs = [];
    runsFetched = "";
    $("detail-panel").hidden = false;
    $("detail-panel").dataset.outputsFor = "";
    $("outputs-list").textContent = "";
    $("upload-state").textContent = "";
    document.querySelectorAll("#jobs-table tbody tr").forEach((tr) => {
      tr.className = tr.dataset.id === id ? "selected" : "";
    });
    updateDetail(jobs.find((j) => j.id === id));
    streamLog(id);
    loadOutputs(id);
  }

  async function streamLog(id) {
    if (logAbort) logAbort.abort();
    const view = $("log-view");
    view.textContent = "";
    const ctrl = new AbortController();
    logAbort = ctrl;
    const follow = $("follow-box").checked ? "1" : "0";
    const run = selectedRun === null ? "" : "&run=" + selectedRun;
    $("log-run").textContent = selectedRun === null ? "" : "run " + selectedRun;
    try {
      const r = await fetch(api + "jobs/" + encodeURIComponent(id) + "/logs?follow=" + follow + run,
        { credentials: "same-origin", headers: headers(), signal: ctrl.signal });
      if (!r.ok) {
        let d = {}; try { d = await r.json(); } catch (e) { /* not JSON */ }
        view.textContent = "(" + (d.error || "no log yet") + ")";
        return;
      }
      const reader = r.body.getReader();
      const dec = new TextDecoder();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        const atBottom = view.scrollTop + view.clientHeight >= view.scrollHeight - 20;
        view.textContent += dec.decode(value, { stream: true });
        if (atBottom) view.scrollTop = view.scrollHeight;
      }
    } catch (e) {
      if (e.name !== "AbortError") view.textContent += "\n(log stream ended: " + e.message + ")";
    }
  }

  async function loadOutputs(id) {
    const run = selectedRun === null ? "" : "?run=" + selectedRun;
    const r = await call("GET", "jobs/" + encodeURIComponent(id) + "/outputs" + run);
    const list = $("outputs-list");
    list.textContent = "";
    if (!r.ok) { $("upload-state").textContent = "(" + (r.data.error || "none") + ")"; return; }
    $("upload-state").textContent = r.data.upload ? "upload: " + r.data.upload : "";
    for (const f of r.data.items || []) {
      const li = document.createElement("li");
      const a = document.createElement("a");
      a.href = api + "jobs/" + encodeURIComponent(id) + "/outputs/" +
        f.path.split("/").map(encodeURIComponent).join("/");
      a.textContent = f.path;
      a.className = "download";
      a.setAttribute("download", f.path.split("/").pop());
      li.appendChild(a);
      li.appendChild(document.createTextNode(" (" + (f.size ?? "?") + " bytes)"));
      list.appendChild(li);
    }
    if (!(r.data.items || []).length) list.textContent = "No outputs (yet).";
  }

  async function cancel(id) {
    if (!confirm("Cancel job " + id + "?")) return;
    const r = await call("DELETE", "jobs/" + encodeURIComponent(id));
    if (!r.ok) showError("Cancel: " + problemsText(r.data));
    refreshJobs();
  }

  // ------------------------------------------------------------------ submit
  function lines(text) {
    return text.split("\n").map((s) => s.trim()).filter(Boolean);
  }

  function parseParams(text) {
    const out = {};
    for (const line of lines(text)) {
      const i = line.indexOf("=");
      if (i <= 0) throw new Error("parameter line '" + line + "' is not key=value");
      const key = line.slice(0, i).trim();
      const raw = line.slice(i + 1).trim();
      let value = raw;
      try { value = JSON.parse(raw); } catch (e) { value = raw; }
      out[key] = value;
    }
    return out;
  }

  function buildSpec() {
    const kind = $("f-kind").value;
    const spec = { name: $("f-name").value.trim(), gpus: parseInt($("f-gpus").value || "0", 10) };
    const image = $("f-image").value.trim();
    if (image) spec.image = image;
    const args = lines($("f-args").value);
    if (kind === "notebook") {
      spec.notebook = $("f-path").value.trim();
      const params = parseParams($("f-params").value);
      if (Object.keys(params).length) spec.parameters = params;
    } else if (kind === "script") {
      spec.command = ["python", $("f-path").value.trim()].concat(args);
    } else {
      spec.command = lines($("f-command").value);
      if (args.length) spec.args = args;
    }
    return spec;
  }

  function kindChanged() {
    const kind = $("f-kind").value;
    $("l-path").hidden = kind === "command";
    $("l-command").hidden = kind !== "command";
    $("l-params").hidden = kind !== "notebook";
    $("f-path").placeholder = kind === "notebook" ? "work/train.ipynb" : "work/train.py";
  }

  async function submit(ev) {
    ev.preventDefault();
    const out = $("submit-result");
    let spec;
    try { spec = buildSpec(); } catch (e) { out.className = "result bad"; out.textContent = e.message; return; }
    $("submit-button").disabled = true;
    try {
      const r = await submitOnce(spec);
      if (r.ok) {
        out.className = "result ok";
        out.textContent = "Submitted " + r.data.name + " (" + r.data.id + ")";
        await refreshJobs();
        select(r.data.id);
      } else {
        out.className = "result bad";
        out.textContent = problemsText(r.data);
      }
    } finally {
      $("submit-button").disabled = false;
    }
  }

  // ------------------------------------------------------------------ cull warning
  async function refreshCull() {
    const r = await call("GET", "cull-status");
    if (!r.ok) return;
    const st = r.data.status;
    const banner = $("cull-banner");
    if (st && st.state === "warned" && st.cull_at) {
      const mins = Math.max(0, Math.round((new Date(st.cull_at) - new Date()) / 60000));
      $("cull-text").textContent = "This server will be stopped at " +
        new Date(st.cull_at).toLocaleTimeString() + " (in " + mins + " min): " + (st.reason || "idle") +
        ". Keeps left: " + st.keeps_left + ".";
      $("keep-button").disabled = !(st.keeps_left > 0);
      banner.hidden = false;
    } else {
      banner.hidden = true;
    }
    const kb = $("kernel-banner");
    const warned = (r.data.kernels && r.data.kernels.warned) || [];
    const events = (r.data.kernels && r.data.kernels.events) || [];
    if (warned.length) {
      const reasons = events.filter((e) => e.action === "warn" && warned.some((w) => w.kernel_id === e.kernel_id));
      kb.textContent = reasons.length ? reasons.map((e) => e.reason).join("\n") :
        warned.length + " idle kernel(s) hold GPU memory and will be stopped";
      kb.hidden = false;
    } else {
      kb.hidden = true;
    }
  }

  async function keep() {
    const r = await call("POST", "keep");
    $("keep-result").textContent = r.ok ? (r.data.message || "kept") : (r.data.error || "refused");
    refreshCull();
  }

  // ------------------------------------------------------------------ notifications
  function notifyResult(text, ok) {
    const el = $("notify-result");
    el.textContent = text;
    el.className = "result " + (ok ? "ok" : "bad");
  }

  function showNotify(d) {
    $("n-email").value = d.email || "";
    $("n-email").disabled = d.email_available === false;
    $("n-email").title = d.email_available === false ? "this hub sends no e-mail" : "";
    $("n-webhook").value = d.webhook_url || "";
    for (const box of $("n-events").querySelectorAll("input")) box.checked = (d.events || []).includes(box.value);
    const secret = $("notify-secret");
    // The secret is answered once (on the first save with a webhook, or a rotation): show it now.
    secret.hidden = !d.webhook_secret;
    secret.textContent = d.webhook_secret ? "Webhook secret (shown once; keep it to verify X-Gpulab-Signature):\n" + d.webhook_secret : "";
    const list = $("notify-deliveries");
    list.replaceChildren();
    for (const x of d.deliveries || []) {
      const li = document.createElement("li");
      const chans = (x.channels || []).map((c) => c.channel + " " + c.status + (c.attempts > 1 ? " after " + c.attempts + " tries" : "") + (c.error ? " (" + c.error + ")" : "")).join(", ");
      li.textContent = x.at + " · " + x.job_id + " " + x.event + ": " + x.status + (chans ? " — " + chans : "");
      list.appendChild(li);
    }
    if (!list.children.length) list.innerHTML = "<li>none yet</li>";
  }

  async function loadNotify() {
    const r = await call("GET", "notify");
    if (!r.ok) { $("notify-panel").hidden = r.status === 404 || r.status === 503; return; }
    showNotify(r.data);
  }

  async function saveNotify(ev) {
    ev.preventDefault();
    const events = Array.from($("n-events").querySelectorAll("input:checked"), (b) => b.value);
    const body = { webhook_url: $("n-webhook").value.trim() || null, events };
    if (!$("n-email").disabled) body.email = $("n-email").value.trim() || null;
    const r = await call("PUT", "notify", body);
    if (!r.ok) { notifyResult(problemsText(r.data), false); return; }
    showNotify(r.data); notifyResult("Saved.", true);
  }

  async function testNotify() {
    const r = await call("POST", "notify/test");
    if (!r.ok) { notifyResult(problemsText(r.data), false); return; }
    const ds = r.data.deliveries || [];
    notifyResult(ds.map((d) => d.channel + ": " + d.status + (d.error ? " (" + d.error + ")" : "")).join(", ") || "no channel", ds.every((d) => d.status === "delivered"));
  }

  async function rotateNotify() {
    if (!confirm("Make a new webhook secret? The old one stops verifying at once.")) return;
    const r = await call("POST", "notify/secret");
    if (!r.ok) { notifyResult(problemsText(r.data), false); return; }
    showNotify(r.data); notifyResult("New secret made.", true);
  }

  // ------------------------------------------------------------------ wiring
  // Served by the user's server, the page also submits and shows the cull warning; served by
  // the jobs gateway (no server needed), it has neither.
  if (cfg.server) {
    $("submit-form").addEventListener("submit", submit);
    $("f-kind").addEventListener("change", kindChanged);
    $("keep-button").addEventListener("click", keep);
    kindChanged();
  }
  $("cancel-button").addEventListener("click", () => selected && cancel(selected));
  $("resubmit-button").addEventListener("click", async () => {
    if (!selected) return;
    const r = await call("POST", "jobs/" + encodeURIComponent(selected) + "/resubmit");
    if (!r.ok) { showError("Resubmit: " + problemsText(r.data)); return; }
    await refreshJobs(); select(r.data.id);
  });
  $("follow-box").addEventListener("change", () => selected && streamLog(selected));
  $("older-button").addEventListener("click", () => { wanted += PAGE; refreshJobs(); });
  $("notify-form").addEventListener("submit", saveNotify);
  $("notify-test").addEventListener("click", testNotify);
  $("notify-rotate").addEventListener("click", rotateNotify);
  loadNotify();
  refreshJobs();
  setInterval(refreshJobs, 3000);
  refreshDefinitions();
  setInterval(refreshDefinitions, 15000);
  if (cfg.server) {
    refreshCull();
    setInterval(refreshCull, 15000);
  }
})();
