// jobd web: the live dashboard. Plain JS, no build step; every value is put in the
// page as text (never as HTML), and data arrives by Server-Sent Events.
"use strict";

const API = "/api/v1";
const params = new URLSearchParams(location.search);
const BIG = params.get("big") === "1";
const state = { access: "none", view: null, feed: null, jobFeed: null, route: "", flash: null, asking: null };

// -- small helpers ----------------------------------------------------------

function h(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function clock(epoch) {
  if (!epoch) return "-";
  return new Date(epoch * 1000).toLocaleTimeString([], { hour12: false });
}

function when(epoch) {
  if (!epoch) return "-";
  return new Date(epoch * 1000).toLocaleString([], { hour12: false });
}

function duration(seconds) {
  if (seconds === null || seconds === undefined || isNaN(seconds)) return "-";
  seconds = Math.max(0, Math.round(seconds));
  if (seconds < 60) return seconds + "s";
  if (seconds < 3600) return Math.floor(seconds / 60) + "m" + String(seconds % 60).padStart(2, "0") + "s";
  if (seconds < 86400) return Math.floor(seconds / 3600) + "h" + String(Math.floor(seconds / 60) % 60).padStart(2, "0") + "m";
  return Math.floor(seconds / 86400) + "d" + Math.floor(seconds / 3600) % 24 + "h";
}

function until(epoch, now) {
  if (!epoch) return "-";
  return epoch >= now ? `${clock(epoch)} (in ${duration(epoch - now)})` : clock(epoch);
}

function num(value) { return value === null || value === undefined ? "-" : String(value); }

function bar(percent) {
  const known = percent !== null && percent !== undefined;
  const fill = h("span");
  if (known) fill.style.width = Math.max(0, Math.min(100, percent)).toFixed(1) + "%";
  return h("span", { class: known ? "bar" : "bar unknown", role: "progressbar", "aria-valuenow": known ? percent.toFixed(1) : null,
                     "aria-valuemin": "0", "aria-valuemax": "100" }, fill);
}

function table(headers, rows) {
  return h("table", {}, h("thead", {}, h("tr", {}, headers.map(([text, cls]) => h("th", { class: cls }, text)))), h("tbody", {}, rows));
}

function jobLink(id) { return h("a", { href: `#/job/${id}` }, String(id)); }

async function call(method, path, body) {
  const options = { method, headers: { "X-Requested-By": "jobd" }, credentials: "same-origin" };
  if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const response = await fetch(API + path, options);
  const data = await response.json().catch(() => ({}));
  if (response.status === 401) showSignIn();
  if (!response.ok) throw new Error(data.message || response.statusText);
  return data;
}

function confirmAction(text, number) {
  // Resolves true/false; with `number` (a default), the dialog also asks for a whole number and resolves it (or null).
  const dialog = document.getElementById("confirm");
  const field = document.getElementById("confirm-number");
  document.getElementById("confirm-text").textContent = text;
  document.getElementById("confirm-number-label").hidden = number === undefined;
  if (number !== undefined) field.value = String(number);
  if (state.asking) state.asking(false);  // a question still waiting for its close event is a "no"
  return new Promise((resolve) => {
    const finish = (yes) => {
      dialog.removeEventListener("close", closed);
      if (state.asking === finish) state.asking = null;
      if (number === undefined) resolve(yes);
      else resolve(yes && field.value !== "" ? Number(field.value) : null);
    };
    const closed = () => {
      if (dialog.open) return;  // the late close event of the previous question: this one is still asked
      finish(dialog.returnValue === "yes");
    };
    state.asking = finish;
    dialog.returnValue = "";
    dialog.showModal();
    dialog.addEventListener("close", closed);
  });
}

async function act(question, method, path, body, done) {
  // Every action: the operator confirms, then one POST; the answer (or the refusal) is shown in the note.
  if (!(await confirmAction(question))) return null;
  try {
    const answer = await call(method, path, body);
    setNote(done(answer));
    return answer;
  } catch (error) { setNote(`refused: ${error.message}`); return null; }
}

function setConnection(text, cls) {
  const pill = document.getElementById("connection");
  pill.textContent = text;
  pill.className = "pill " + (cls || "");
}

function setNote(text) {
  // An action's outcome stays shown for a while, next to the live view's own note (frames arrive several a second).
  state.flash = text ? { text, until: Date.now() + 15000 } : null;
  showNote(text);
}

function showNote(text) {
  const note = document.getElementById("note");
  note.hidden = !text;
  note.textContent = text || "";
}

// -- the overview (live) ----------------------------------------------------

function mastersSection(view, now) {
  const registry = view.registry && view.registry.length ? view.registry : null;
  const rows = (registry || view.masters || []).map((m) => {
    const alive = registry ? m.alive : true;
    const up = alive && m.started_at ? now - m.started_at : m.uptime;
    return h("tr", { dataset: { master: m.id } },
      h("td", {}, m.host || "-"), h("td", { class: "num" }, num(m.pid)),
      h("td", { class: alive ? "" : "bad" }, alive ? m.state || "-" : `${m.state} (silent)`),
      h("td", { class: "num" }, m.heartbeat_at ? `${Math.max(0, now - m.heartbeat_at).toFixed(1)}s ago` : "-"),
      h("td", { class: "num" }, duration(up)), h("td", {}, (m.daemons || []).join(", ")), h("td", { class: "dim" }, m.id || ""));
  });
  return h("section", { id: "masters" }, h("h2", {}, `Masters (${rows.length})`),
    rows.length ? table([["host"], ["pid", "num"], ["state"], ["heartbeat", "num"], ["uptime", "num"], ["daemons"], ["id"]], rows)
                : h("p", { class: "bad" }, "no master is running"));
}

function daemonButtons(name, d, view) {
  if (state.access !== "admin") return null;
  const known = (view.daemon_states || {})[name] || {};
  const stopped = known.state === "stopped" || known.state === "stopping";
  return [
    stopped ? h("button", { class: "daemon-start", onclick: () => daemonAction(name, "start") }, "Start")
            : h("button", { class: "danger daemon-stop", onclick: () => daemonAction(name, "stop") }, "Stop"),
    h("button", { class: "daemon-restart", onclick: () => daemonAction(name, "restart") }, "Restart"),
    h("button", { class: "daemon-scale", onclick: () => scaleDaemon(name, known.size ?? d.workers ?? 1) }, "Scale…"),
  ];
}

async function daemonAction(name, action) {
  const questions = { stop: `Stop daemon ${name}? Its workers finish their jobs (up to the drain timeout), then exit.`,
                      start: `Start daemon ${name}?`, restart: `Restart daemon ${name}, one worker at a time?` };
  await act(questions[action], "POST", `/daemons/${encodeURIComponent(name)}/${action}`, {},
            (answer) => `daemon ${name}: ${action} asked (was ${answer.was || "?"})`);
}

async function scaleDaemon(name, current) {
  const workers = await confirmAction(`Scale daemon ${name} to how many workers?`, current);
  if (workers === null) return;
  try {
    await call("POST", `/daemons/${encodeURIComponent(name)}/scale`, { workers });
    setNote(`daemon ${name}: scaling to ${workers} workers`);
  } catch (error) { setNote(`refused: ${error.message}`); }
}

function daemonsSection(view, now) {
  const rows = Object.entries(view.daemons || {}).map(([name, d]) => h("tr", { dataset: { daemon: name, state: ((view.daemon_states || {})[name] || {}).state } },
    h("td", {}, h("strong", {}, name)),
    h("td", { class: "num" }, `${d.busy === null || d.busy === undefined ? "-" : d.busy}/${num(d.workers)}`),
    h("td", { class: "num" }, num(d.queued)), h("td", { class: "num" }, num(d.running)),
    h("td", { class: "num" }, num(d.succeeded_last_hour)),
    h("td", { class: "num" + (d.failed_last_hour ? " warn" : "") }, num(d.failed_last_hour)),
    h("td", { class: "num" + (d.dead_last_hour ? " bad" : "") }, num(d.dead_last_hour)),
    h("td", { class: "num" }, num(d.jobs_per_minute)), h("td", {}, until(d.next_run, now)),
    h("td", { class: "actions" }, daemonButtons(name, d, view))));
  return h("section", { id: "daemons" }, h("h2", {}, "Daemons"),
    table([["daemon"], ["busy/workers", "num"], ["queued", "num"], ["running", "num"], ["ok/h", "num"], ["failed/h", "num"],
           ["dead/h", "num"], ["jobs/min", "num"], ["next run"], [""]], rows));
}

function runningSection(view) {
  const jobs = view.running || [];
  const rows = jobs.map((job) => h("tr", { dataset: { jobId: job.job_id, percent: num(job.percent) } },
    h("td", { class: "num" }, jobLink(job.job_id)), h("td", {}, job.task || "?"), h("td", {}, job.daemon || "-"),
    h("td", {}, bar(job.percent)),
    h("td", { class: "num percent" }, job.percent === null || job.percent === undefined ? "-" : job.percent.toFixed(0) + "%"),
    h("td", { class: "num" }, duration(job.eta_seconds)), h("td", { class: "num" }, duration(job.elapsed)),
    h("td", {}, `${job.host || "-"}/${job.worker_pid || "-"}`), h("td", { class: "message" }, job.message || "")));
  return h("section", { id: "running" }, h("h2", {}, `Running (${jobs.length})`),
    jobs.length ? table([["job", "num"], ["task"], ["daemon"], ["progress"], ["%", "num"], ["eta", "num"], ["elapsed", "num"],
                         ["host/pid"], ["message"]], rows) : h("p", { class: "dim" }, "nothing running"));
}

function workersSection(view) {
  const workers = view.workers || [];
  if (!workers.length) return null;
  const rows = workers.map((w) => h("tr", { dataset: { workerPid: w.pid } },
    h("td", {}, w.daemon), h("td", { class: "num" }, num(w.pid)), h("td", { class: w.state === "busy" ? "state-running" : "" }, w.state),
    h("td", { class: "num" }, w.job_id ? jobLink(w.job_id) : "-"), h("td", {}, w.task || ""),
    h("td", { class: "num" }, w.cpu_percent === null || w.cpu_percent === undefined ? "-" : w.cpu_percent.toFixed(0) + "%"),
    h("td", { class: "num" }, w.rss_bytes ? (w.rss_bytes / 1048576).toFixed(0) + " MiB" : "-"),
    h("td", { class: "num" }, num(w.jobs_done)), h("td", { class: "num" }, duration(w.uptime))));
  return h("section", { id: "workers" }, h("h2", {}, `Workers on ${workers[0].host || "this host"} (${workers.length})`),
    table([["daemon"], ["pid", "num"], ["state"], ["job", "num"], ["task"], ["cpu", "num"], ["rss", "num"], ["jobs done", "num"], ["uptime", "num"]], rows));
}

function retryButton(jobId, label) {
  if (state.access !== "admin") return null;
  return h("button", { class: "danger retry", dataset: { jobId }, onclick: () => retryJob(jobId) }, label || "Retry");
}

function failuresSection(view) {
  const failures = view.failures || [];
  const rows = failures.map((event) => h("tr", { dataset: { jobId: event.job_id } },
    h("td", {}, clock(event.at)), h("td", { class: "num" }, jobLink(event.job_id)), h("td", {}, event.task || "?"),
    h("td", { class: "kind-" + event.kind }, event.kind), h("td", { class: "wrap bad" }, event.error || ""),
    h("td", { class: "actions" }, event.kind === "dead" ? retryButton(event.job_id) : null)));
  return h("section", { id: "failures" }, h("h2", {}, "Recent failures"),
    failures.length ? table([["at"], ["job", "num"], ["task"], [""], ["error"], [""]], rows) : h("p", { class: "dim" }, "none"));
}

function sparkline(points, cls, label, note) {
  points = points.filter((p) => p[1] !== null && p[1] !== undefined);  // a minute read at start may lack one series
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", "0 0 100 40");
  svg.setAttribute("preserveAspectRatio", "none");
  if (points.length > 1) {
    const t0 = points[0][0], t1 = points[points.length - 1][0], top = Math.max(1, ...points.map((p) => p[1]));
    const line = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
    line.setAttribute("points", points.map((p) => `${(100 * (p[0] - t0) / Math.max(1, t1 - t0)).toFixed(2)},${(38 - 36 * p[1] / top).toFixed(2)}`).join(" "));
    svg.append(line);
  }
  const last = points.length ? points[points.length - 1][1] : null;
  return h("div", { class: "chart " + cls }, h("h2", {}, `${label}: ${num(last)}`),
    points.length > 1 ? svg : h("p", { class: "dim" }, "collecting: a point every 5 s since jobd web started"),
    points.length > 1 && note ? h("p", { class: "dim" }, note) : null);
}

function chartsSection(view) {
  const history = view.history || [], notes = view.history_notes || {};
  return h("section", { id: "charts", class: "grid" },
    sparkline(history.map((p) => [p[0], p[1]]), "rate", "Jobs finished per minute, last hour", notes.rate),
    sparkline(history.map((p) => [p[0], p[2]]), "queue", "Queue depth, last hour", notes.queue));
}

function schedulesSection(view, now) {
  const entries = (view.schedules || []).slice(0, 10);
  if (!entries.length) return null;
  return h("section", { id: "upcoming" }, h("h2", {}, "Upcoming"),
    table([["next"], ["daemon"], ["entry"]], entries.map((e) => h("tr", {}, h("td", {}, until(e.next_run, now)), h("td", {}, e.daemon), h("td", {}, e.name)))));
}

function renderOverview() {
  const view = state.view;
  if (!view || state.route !== "overview") return;
  const now = view.generated_at || Date.now() / 1000;
  const main = document.getElementById("main");
  main.replaceChildren(mastersSection(view, now), daemonsSection(view, now), runningSection(view), failuresSection(view),
                       chartsSection(view), workersSection(view) || "", schedulesSection(view, now) || "");
}

function renderSummary() {
  const view = state.view;
  if (!view) return;
  const masters = view.masters || [];
  const hosts = [...new Set(masters.map((m) => m.host).filter(Boolean))];
  document.getElementById("summary").textContent =
    `${masters.length} master${masters.length === 1 ? "" : "s"}${hosts.length ? " on " + hosts.join(", ") : ""} · ` +
    `${num(view.jobs_per_minute)} jobs/min · source: ${view.source} · ${clock(view.generated_at)}`;
  const flash = state.flash && state.flash.until > Date.now() ? state.flash.text : "";
  showNote([flash, view.note].filter(Boolean).join(" · "));
}

function startFeed() {
  if (state.feed) return;
  const feed = new EventSource(API + "/live");
  state.feed = feed;
  feed.addEventListener("view", (event) => {
    state.view = JSON.parse(event.data);
    window.jobdFrames = (window.jobdFrames || 0) + 1;
    setConnection("live", "live");
    renderSummary();
    renderOverview();
  });
  feed.addEventListener("error", () => {
    setConnection("reconnecting…", "down");
    if (feed.readyState === EventSource.CLOSED) {
      state.feed = null;
      call("GET", "/session").then(() => setTimeout(startFeed, 2000)).catch(() => {});
    }
  });
}

// -- jobs list --------------------------------------------------------------

const STATES = ["", "scheduled", "queued", "running", "retrying", "succeeded", "dead", "cancelled"];

async function renderJobs(query) {
  const main = document.getElementById("main");
  const filters = h("form", { class: "filters" },
    h("label", {}, "state ", h("select", { name: "state" }, STATES.map((s) => h("option", { value: s, selected: query.get("state") === s }, s || "any")))),
    h("label", {}, "daemon ", h("select", { name: "daemon" }, [h("option", { value: "" }, "any"),
      ...Object.keys((state.view || {}).daemons || {}).map((d) => h("option", { value: d, selected: query.get("daemon") === d }, d))])),
    h("label", {}, "task ", h("input", { name: "task", value: query.get("task") || "", placeholder: "exact task name" })),
    h("label", {}, "created after ", h("input", { name: "created_after", type: "datetime-local", value: localInput(query.get("created_after")) })),
    h("label", {}, "before ", h("input", { name: "created_before", type: "datetime-local", value: localInput(query.get("created_before")) })),
    h("button", { type: "submit" }, "Filter"));
  filters.addEventListener("submit", (event) => {
    event.preventDefault();
    const form = new FormData(filters);
    const next = new URLSearchParams();
    for (const [key, value] of form) {
      if (!value) continue;
      // The time inputs are in this browser's zone; the API takes epoch seconds.
      next.set(key, key.startsWith("created_") ? String(Math.floor(new Date(value).getTime() / 1000)) : value);
    }
    location.hash = "#/jobs?" + next;
  });
  const section = h("section", { id: "jobs" }, h("h2", {}, "Jobs"), filters, h("p", { class: "dim" }, "loading…"));
  main.replaceChildren(section);
  const api = new URLSearchParams(query);
  api.set("limit", "50");
  try {
    const page = await call("GET", "/jobs?" + api);
    const rows = page.jobs.map((job) => h("tr", { dataset: { jobId: job.id } },
      h("td", { class: "num" }, jobLink(job.id)), h("td", {}, job.daemon), h("td", {}, job.task),
      h("td", { class: "state-" + job.state }, job.state), h("td", { class: "num" }, `${job.attempts}/${num(job.max_attempts)}`),
      h("td", {}, when(job.created_at)), h("td", {}, job.finished_at ? when(job.finished_at) : "-"),
      h("td", { class: "wrap bad" }, job.error || ""),
      h("td", { class: "actions" }, job.state === "dead" ? retryButton(job.id) : null, deleteButton(job))));
    const pager = h("p", {},
      query.get("before") ? h("a", { href: "#/jobs?" + withoutBefore(query) }, "« newest") : null, " ",
      page.next_before ? h("a", { id: "older", href: "#/jobs?" + withBefore(query, page.next_before) }, "older »") : null);
    section.replaceChildren(h("h2", {}, "Jobs"), filters, bulkButtons(query),
      rows.length ? table([["id", "num"], ["daemon"], ["task"], ["state"], ["attempts", "num"], ["created"], ["finished"], ["error"], [""]], rows)
                  : h("p", { class: "dim" }, "no job matches"), pager);
  } catch (error) {
    section.append(h("p", { class: "error" }, error.message));
  }
}

const FINISHED = ["succeeded", "dead", "cancelled"];

function deleteButton(job) {
  if (state.access !== "admin" || !FINISHED.includes(job.state)) return null;
  return h("button", { class: "danger delete", dataset: { jobId: job.id }, onclick: () => deleteJob(job.id) }, "Delete");
}

async function deleteJob(id) {
  const answer = await act(`Delete job ${id} and its log lines? This cannot be undone.`, "POST", `/jobs/${id}/delete`, {},
                           () => `job ${id} deleted`);
  if (answer && state.route === "job") location.hash = "#/jobs";
  else if (answer) route();
}

function bulkFilter(query) {
  const filter = {};
  for (const key of ["daemon", "task"]) if (query.get(key)) filter[key] = query.get(key);
  for (const key of ["created_after", "created_before"]) if (query.get(key)) filter[key] = Number(query.get(key));
  if (!Object.keys(filter).length) filter.all = true;
  return filter;
}

function describeFilter(filter) {
  if (filter.all) return "every dead job";
  const parts = [];
  if (filter.daemon) parts.push(`daemon ${filter.daemon}`);
  if (filter.task) parts.push(`task ${filter.task}`);
  if (filter.created_after) parts.push(`created after ${when(filter.created_after)}`);
  if (filter.created_before) parts.push(`created before ${when(filter.created_before)}`);
  return "every dead job of " + parts.join(", ");
}

function bulkButtons(query) {
  // Offered on the dead jobs' list: the same filter (daemon, task, time) is what the action takes.
  if (state.access !== "admin" || query.get("state") !== "dead") return null;
  const filter = bulkFilter(query);
  const run = (action, question) => act(question, "POST", `/dead-jobs/${action}`, filter, (answer) =>
    `${action === "retry" ? "retried" : "deleted"} ${answer.count} dead job${answer.count === 1 ? "" : "s"}` +
    (answer.more_left ? ` (more are left: run it again)` : "")).then((answer) => { if (answer) route(); });
  return h("p", { class: "actions bulk" },
    h("button", { id: "bulk-retry", class: "danger", onclick: () => run("retry", `Retry ${describeFilter(filter)}?`) }, "Retry all matching"),
    " ",
    h("button", { id: "bulk-delete", class: "danger", onclick: () => run("delete", `Delete ${describeFilter(filter)}? This cannot be undone.`) },
      "Delete all matching"));
}

function localInput(epoch) {
  if (!epoch) return null;
  const date = new Date(Number(epoch) * 1000);
  if (isNaN(date)) return null;
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

function withBefore(query, before) { const q = new URLSearchParams(query); q.set("before", before); return q.toString(); }
function withoutBefore(query) { const q = new URLSearchParams(query); q.delete("before"); return q.toString(); }

// -- one job (live) ---------------------------------------------------------

function jsonBlock(value) { return h("pre", {}, value === null || value === undefined ? "-" : JSON.stringify(value, null, 2)); }

function renderJob(job) {
  const live = job.live || {};
  const progress = { ...(job.progress || {}), ...live };
  const percent = progress.percent ?? (progress.total ? 100 * (progress.done || 0) / progress.total : null);
  const actions = h("p", { class: "actions" },
    ["dead", "cancelled"].includes(job.state) ? retryButton(job.id, "Retry this job") : null,
    state.access === "admin" && ["scheduled", "queued", "running", "retrying"].includes(job.state)
      ? h("button", { id: "cancel", onclick: () => cancelJob(job.id) }, job.state === "running" ? "Ask it to stop" : "Cancel") : null,
    deleteButton(job));
  const fields = [
    ["state", h("span", { id: "job-state", class: "state-" + job.state }, job.state + (job.cancel_requested ? " (cancel requested)" : ""))],
    ["daemon / task", `${job.daemon} / ${job.task}`], ["attempts", `${job.attempts} of ${num(job.max_attempts)}`],
    ["origin", job.origin], ["priority", num(job.priority)], ["created", when(job.created_at)],
    ["started", when(job.started_at)], ["finished", when(job.finished_at)],
    ["run at", job.run_at ? when(job.run_at) : "-"], ["worker pid", num(job.worker_pid)],
  ];
  const logs = job.logs || [];
  document.getElementById("main").replaceChildren(h("section", { id: "job", dataset: { jobId: job.id, state: job.state } },
    h("h2", {}, `Job ${job.id}`), actions,
    h("dl", {}, fields.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)])),
    job.state === "running" || job.progress ? h("p", { class: "progress" }, bar(percent), " ",
      percent === null || percent === undefined ? "" : `${percent.toFixed(0)}%`, " ", progress.message || "",
      progress.eta_seconds !== undefined && progress.eta_seconds !== null ? ` · eta ${duration(progress.eta_seconds)}` : "") : null,
    h("h2", {}, "Args"), jsonBlock(job.args),
    job.checkpoint !== null ? [h("h2", {}, "Checkpoint"), jsonBlock(job.checkpoint)] : null,
    job.result !== null ? [h("h2", {}, "Result"), jsonBlock(job.result)] : null,
    job.error ? [h("h2", {}, "Error"), h("pre", { class: "bad", id: "job-error" }, job.error)] : null,
    job.traceback ? [h("h2", {}, "Traceback"), h("pre", { id: "job-traceback" }, job.traceback)] : null,
    h("h2", {}, `Log (${logs.length})`),
    logs.length ? h("table", { class: "logs" }, h("tbody", {}, logs.map((line) => h("tr", {},
      h("td", {}, clock(line.created_at)), h("td", {}, `#${num(line.attempt)}`), h("td", { class: line.level === "ERROR" ? "bad" : "" }, line.level),
      h("td", { class: "wrap" }, line.message))))) : h("p", { class: "dim" }, "no log lines")));
}

function showJob(id) {
  document.getElementById("main").replaceChildren(h("p", { class: "dim" }, `loading job ${id}…`));
  const feed = new EventSource(`${API}/jobs/${id}/live`);
  state.jobFeed = feed;
  feed.addEventListener("job", (event) => renderJob(JSON.parse(event.data)));
  feed.addEventListener("gone", (event) => { feed.close(); setNote(JSON.parse(event.data).message); });
  feed.addEventListener("error", () => {
    if (feed.readyState === EventSource.CLOSED) {
      call("GET", `/jobs/${id}`).then(renderJob).catch((error) =>
        document.getElementById("main").replaceChildren(h("p", { class: "error" }, error.message)));
    }
  });
}

async function retryJob(id) {
  if (!(await confirmAction(`Retry job ${id}? It is queued again with a fresh set of attempts.`))) return;
  try {
    const answer = await call("POST", `/jobs/${id}/retry`, {});
    setNote(`job ${id} is ${answer.state} again`);
  } catch (error) { setNote(`retry of job ${id} failed: ${error.message}`); }
}

async function cancelJob(id) {
  if (!(await confirmAction(`Cancel job ${id}?`))) return;
  try {
    const answer = await call("POST", `/jobs/${id}/cancel`, {});
    setNote(`job ${id}: ${answer.state === "running" ? "asked to stop" : answer.state}`);
  } catch (error) { setNote(`cancel of job ${id} failed: ${error.message}`); }
}

// -- schedules --------------------------------------------------------------

async function renderSchedules() {
  const section = h("section", { id: "schedules" }, h("h2", {}, "Schedules"), h("p", { class: "dim" }, "loading…"));
  document.getElementById("main").replaceChildren(section);
  try {
    const { schedules } = await call("GET", "/schedules");
    const now = Date.now() / 1000;
    const rows = schedules.map((row) => h("tr", { dataset: { entry: row.name, paused: row.paused ? "1" : "0" } },
      h("td", {}, row.name, row.paused ? " (paused)" : row.enabled === false ? " (disabled)" : ""), h("td", {}, row.daemon),
      h("td", {}, `${row.trigger}`), h("td", {}, row.timezone),
      h("td", {}, row.fired ? `${when(row.last_fire)} ${row.last_outcome || ""}` : "-"),
      h("td", { class: "wrap" }, (row.next || []).map((tick) => inZone(tick, row.timezone, now)).join(" · ")),
      h("td", { class: "actions" }, scheduleButtons(row))));
    section.replaceChildren(h("h2", {}, "Schedules"), rows.length
      ? table([["entry"], ["daemon"], ["trigger"], ["time zone"], ["last fire"], ["next ticks (entry's zone)"], [""]], rows) : h("p", { class: "dim" }, "no schedule entries"));
  } catch (error) { section.append(h("p", { class: "error" }, error.message)); }
}

function scheduleButtons(row) {
  if (state.access !== "admin") return null;
  const name = row.name;
  const path = (action) => `/schedules/${encodeURIComponent(name)}/${action}`;
  const pause = row.paused
    ? h("button", { class: "entry-resume", onclick: () => act(`Resume schedule entry ${name}? It fires again from its next tick.`, "POST",
        path("resume"), {}, () => `${name} resumed`).then(renderSchedulesIfShown) }, "Resume")
    : h("button", { class: "entry-pause", onclick: () => act(`Pause schedule entry ${name}? Its ticks are skipped until it is resumed.`, "POST",
        path("pause"), {}, () => `${name} paused`).then(renderSchedulesIfShown) }, "Pause");
  const run = h("button", { class: "danger entry-run", onclick: () => act(`Run ${name} (${row.task || "its task"} on ${row.daemon}) now, once?`,
    "POST", path("run"), {}, (answer) => `${name}: submitted job ${answer.job_id}`) }, "Run now");
  return [pause, " ", run];
}

function renderSchedulesIfShown() { if (state.route === "schedules") renderSchedules(); }

// -- tenant migrations (read-only) ------------------------------------------

async function renderMigrations() {
  const section = h("section", { id: "migrations" }, h("h2", {}, "Tenant migrations"), h("p", { class: "dim" }, "loading…"));
  document.getElementById("main").replaceChildren(section);
  try {
    const report = await call("GET", "/migrations");
    if (!report.configured) {
      section.replaceChildren(h("h2", {}, "Tenant migrations"), h("p", { class: "dim", id: "migrations-none" }, report.message));
      return;
    }
    const rows = report.tenants.map((t) => {
      const last = (t.runs || [])[0];
      return h("tr", { dataset: { tenant: t.tenant, state: t.state } },
        h("td", {}, t.tenant), h("td", {}, t.database), h("td", { class: t.state === "up_to_date" ? "" : "bad" }, t.state),
        h("td", {}, t.current || "-"), h("td", { class: "num" }, String((t.pending || []).length)),
        h("td", {}, last ? `${last.state} ${last.started_at || ""}${last.failed_step ? " at " + last.failed_step : ""}` : "-"),
        h("td", { class: "num" }, String((t.runs || []).length)), h("td", { class: "wrap bad" }, (t.problems || []).join("; ")));
    });
    section.replaceChildren(h("h2", {}, `Tenant migrations (latest step: ${report.latest || "-"})`),
      rows.length ? table([["tenant"], ["database"], ["state"], ["at step"], ["pending", "num"], ["last run"], ["runs shown", "num"], ["problems"]], rows)
                  : h("p", { class: "dim" }, "no tenants"));
  } catch (error) { section.append(h("p", { class: "error" }, error.message)); }
}

function inZone(epoch, zone, now) {
  // A tick in the entry's own time zone (what its cron expression means), and how far off it is.
  let text;
  try {
    text = new Date(epoch * 1000).toLocaleString([], { timeZone: zone || undefined, hour12: false, dateStyle: "short", timeStyle: "short" });
  } catch (error) { text = when(epoch); }
  return epoch >= now ? `${text} (in ${duration(epoch - now)})` : text;
}

// -- routing and sign-in ----------------------------------------------------

function route() {
  if (state.jobFeed) { state.jobFeed.close(); state.jobFeed = null; }
  const hash = BIG ? "#/" : location.hash || "#/";
  const [path, query] = hash.slice(1).split("?");
  const job = path.match(/^\/job\/(\d+)$/);
  if (job) { state.route = "job"; showJob(job[1]); }
  else if (path === "/jobs") { state.route = "jobs"; renderJobs(new URLSearchParams(query || "")); }
  else if (path === "/schedules") { state.route = "schedules"; renderSchedules(); }
  else if (path === "/migrations") { state.route = "migrations"; renderMigrations(); }
  else { state.route = "overview"; document.getElementById("main").replaceChildren(h("p", { class: "dim" }, "waiting for the first frame…")); renderOverview(); }
}

function showSignIn() {
  document.getElementById("main").replaceChildren();
  document.getElementById("signin").hidden = false;
  setConnection("signed out", "down");
}

async function start() {
  try {
    const who = await call("GET", "/session");
    state.access = who.access;
  } catch (error) { return; }
  document.getElementById("signin").hidden = true;
  startFeed();
  route();
}

document.addEventListener("DOMContentLoaded", () => {
  if (BIG) { document.body.classList.add("big"); document.documentElement.classList.add("big"); }
  window.addEventListener("hashchange", route);
  document.getElementById("signin").addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      await call("POST", "/session", { token: document.getElementById("token").value });
      document.getElementById("token").value = "";
      start();
    } catch (error) { document.getElementById("signin-error").textContent = error.message; }
  });
  start();
});
