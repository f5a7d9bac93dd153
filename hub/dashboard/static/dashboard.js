// The dashboard's behaviour (no library, nothing from a CDN):
// - stop a server / cancel a job: a reason is asked for in the row itself, the request goes to
//   the culler's admin API with the page's XSRF token, and the answer is written beside the row
//   in words ("Stopped alice's default server");
// - auto-refresh: every N seconds the page fetches itself and swaps in its sections marked
//   data-refresh, keeping the scroll position, open <details> and the results shown; it pauses
//   while a reason is being typed, while the tab is hidden, or when the admin unticks it.
(function () {
  "use strict";
  const meta = (name) => document.querySelector('meta[name="' + name + '"]').content;
  const api = meta("api");
  const xsrf = meta("xsrf");
  const every = 1000 * Number(meta("refresh-seconds") || 15);
  const RESULT_KEEP_MS = 5 * 60 * 1000;
  // row key -> {text, ok, at, cells}: what an action answered, shown again after a refresh
  const results = new Map();

  const rowOf = (el) => el.closest("tr[data-key]");
  const keyOf = (row) => row.dataset.key;

  function showResults() {
    const now = Date.now();
    const tbody = document.querySelector("#running tbody");
    for (const [key, r] of results) {
      if (now - r.at > RESULT_KEEP_MS) { results.delete(key); continue; }
      let row = document.querySelector('tr[data-key="' + CSS.escape(key) + '"]');
      if (!row && tbody) { // the row is gone (the server stopped): keep the answer where it was
        row = document.createElement("tr");
        row.className = "gone";
        row.dataset.key = key;
        row.innerHTML = r.cells;
        tbody.insertBefore(row, tbody.firstChild);
      }
      if (!row) continue;
      const span = row.querySelector(".result");
      if (span) { span.textContent = r.text; span.className = "result " + (r.ok ? "ok" : "error"); }
    }
  }

  function remember(row, text, ok) {
    // The row's cells without its buttons, to show again if the row disappears.
    const copy = row.cloneNode(true);
    copy.querySelectorAll("button, form").forEach((b) => b.remove());
    results.set(keyOf(row), { text: text, ok: ok, at: Date.now(), cells: copy.innerHTML });
    showResults();
  }

  async function post(path, body) {
    const r = await fetch(api + path, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-XSRFToken": xsrf },
      body: JSON.stringify(body),
    });
    const reply = await r.json().catch(() => ({}));
    return { ok: r.ok, reply: reply, status: r.status };
  }

  function askReason(button) {
    const row = rowOf(button);
    if (!row || row.querySelector("form.reason")) return;
    const stopping = button.classList.contains("stop");
    const form = document.createElement("form");
    form.className = "reason";
    const who = stopping
      ? (button.dataset.server ? button.dataset.user + "'s server " + button.dataset.server
        : button.dataset.user + "'s default server")
      : button.dataset.user + "'s job " + button.dataset.job;
    form.innerHTML =
      '<input name="reason" required minlength="3" maxlength="500" autocomplete="off">' +
      '<button type="submit"></button><button type="button" class="never">keep it</button>';
    const input = form.querySelector("input");
    input.placeholder = "why? " + button.dataset.user + " will read this";
    input.setAttribute("aria-label", "reason for stopping " + who);
    form.querySelector('button[type="submit"]').textContent = stopping ? "stop " + who : "cancel " + who;
    form.querySelector(".never").addEventListener("click", () => form.remove());
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const reason = input.value.trim();
      const answer = stopping
        ? await post("/admin/servers/stop", { user: button.dataset.user, server: button.dataset.server, reason: reason })
        : await post("/admin/jobs/" + encodeURIComponent(button.dataset.job) + "/cancel", { reason: reason });
      form.remove();
      const text = answer.ok
        ? answer.reply.message + " (reason recorded; " + button.dataset.user + " is told)"
        : (stopping ? "Not stopped: " : "Not cancelled: ") + (answer.reply.error || "error " + answer.status);
      remember(row, text, answer.ok);
      if (answer.ok) button.disabled = true;
    });
    button.after(form);
    input.focus();
  }

  document.addEventListener("click", (ev) => {
    const b = ev.target.closest("button.stop, button.cancel");
    if (b && !b.disabled) askReason(b);
  });

  // ------------------------------------------------------------------ auto-refresh
  const toggle = document.getElementById("auto-refresh");
  const state = document.getElementById("refresh-state");
  const paused = () =>
    !toggle.checked || document.hidden || document.querySelector("form.reason") !== null;

  async function refresh() {
    if (paused()) return;
    let text;
    try {
      // The XSRF token too: JupyterHub treats a cookie-authenticated fetch that is not a page
      // view as unauthenticated without it (and redirects it to the hub's login).
      const r = await fetch(location.href, {
        credentials: "same-origin",
        cache: "no-store",
        headers: { "X-XSRFToken": xsrf },
      });
      if (!r.ok) { state.textContent = "refresh failed (" + r.status + ")"; return; }
      text = await r.text();
    } catch (e) {
      state.textContent = "refresh failed (offline, or the login expired: reload the page)";
      return;
    }
    if (paused()) return; // a reason form opened while we fetched: leave the page alone
    const fresh = new DOMParser().parseFromString(text, "text/html");
    const open = new Set([...document.querySelectorAll("details[open][id]")].map((d) => d.id));
    const closed = new Set([...document.querySelectorAll("details[id]:not([open])")].map((d) => d.id));
    const x = window.scrollX, y = window.scrollY;
    document.querySelectorAll("[data-refresh][id]").forEach((el) => {
      const next = fresh.getElementById(el.id);
      if (next) el.innerHTML = next.innerHTML;
    });
    open.forEach((id) => { const d = document.getElementById(id); if (d) d.open = true; });
    closed.forEach((id) => { const d = document.getElementById(id); if (d) d.open = false; });
    window.scrollTo(x, y);
    showResults();
    state.textContent = "";
    document.body.dataset.refreshed = String(Number(document.body.dataset.refreshed || 0) + 1);
  }

  setInterval(refresh, every);
  toggle.addEventListener("change", () => { state.textContent = toggle.checked ? "" : "paused"; });
})();
