// Stop a server / cancel a job: POST to the culler's admin API with the page's XSRF token.
(function () {
  "use strict";
  const api = document.querySelector('meta[name="api"]').content;
  const xsrf = document.querySelector('meta[name="xsrf"]').content;
  const say = (text) => { document.getElementById("message").textContent = text; };
  async function post(path, body, what) {
    const r = await fetch(api + path, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-XSRFToken": xsrf },
      body: JSON.stringify(body || {}),
    });
    const reply = await r.json().catch(() => ({}));
    say(r.ok ? what + ": done" : what + ": " + (reply.error || r.status));
    if (r.ok) setTimeout(() => location.reload(), 1500);
  }
  document.querySelectorAll("button.stop").forEach((b) => b.addEventListener("click", () => {
    const who = b.dataset.user + "/" + b.dataset.server;
    if (confirm("Stop server " + who + "?")) post("/admin/servers/stop", { user: b.dataset.user, server: b.dataset.server }, "stop " + who);
  }));
  document.querySelectorAll("button.cancel").forEach((b) => b.addEventListener("click", () => {
    if (confirm("Cancel job " + b.dataset.job + "?")) post("/admin/jobs/" + encodeURIComponent(b.dataset.job) + "/cancel", {}, "cancel job " + b.dataset.job);
  }));
})();
