// ferry operator pages: local times, date presets, selection, bulk and single actions.
// Plain JavaScript, no build step, no third-party code; served from the binary.
"use strict";

const $ = (sel, root = document) => root.querySelector(sel);
const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));

// ----- messages that survive the reload after an action
function flash(text, kind = "ok") {
  const box = $("#flash");
  if (!box) return;
  box.innerHTML = "";
  const div = document.createElement("div");
  div.className = "banner " + kind;
  div.textContent = text;
  box.appendChild(div);
}
function flashAfterReload(text, kind) {
  sessionStorage.setItem("ferry-flash", JSON.stringify({ text, kind }));
  location.reload();
}
function showStoredFlash() {
  const stored = sessionStorage.getItem("ferry-flash");
  if (!stored) return;
  sessionStorage.removeItem("ferry-flash");
  try {
    const { text, kind } = JSON.parse(stored);
    flash(text, kind);
  } catch (_) { /* ignore */ }
}

// ----- times: shown in the reader's timezone, UTC on hover
function localTimes() {
  const pad = (n) => String(n).padStart(2, "0");
  for (const t of $$("time[datetime]")) {
    const d = new Date(t.getAttribute("datetime"));
    if (isNaN(d)) continue;
    t.textContent = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
    t.title = "UTC: " + t.getAttribute("datetime");
  }
}

// ----- date presets fill the from/to fields with RFC 3339 UTC times
function presets() {
  for (const button of $$(".presets button")) {
    button.addEventListener("click", () => {
      const side = button.closest(".presets").dataset.for;
      const from = $(`input[name="${side}_from"]`);
      const to = $(`input[name="${side}_to"]`);
      const now = new Date();
      let start, end = now;
      switch (button.dataset.preset) {
        case "1h": start = new Date(now - 3600e3); break;
        case "24h": start = new Date(now - 86400e3); break;
        case "7d": start = new Date(now - 7 * 86400e3); break;
        case "yesterday": {
          const midnight = new Date(now.getFullYear(), now.getMonth(), now.getDate());
          start = new Date(midnight - 86400e3);
          end = new Date(midnight - 1);
          break;
        }
      }
      from.value = start.toISOString().replace(/\.\d{3}Z$/, "Z");
      to.value = end.toISOString().replace(/\.\d{3}Z$/, "Z");
      button.closest("form").requestSubmit();
    });
  }
}

// ----- confirmation dialog with an optional reason; resolves to the reason or null
// ----- Tasks page: the address holds only the filters that are set
const filterDefaults = { sort: "created_at", order: "desc", per_page: "50" };

function cleanAddress() {
  const form = document.getElementById("filters");
  if (!form) return;
  form.addEventListener("submit", () => {
    for (const field of form.elements) {
      if (!field.name || field.disabled) continue;
      const text = field.name.endsWith("_match") ? form.elements[field.name.slice(0, -6)] : null;
      const unused = field.value === ""
        || filterDefaults[field.name] === field.value
        || (text && (text.value === "" || field.value === "contains"));
      if (unused) field.disabled = true;
    }
  });
  // Back and Forward may restore the page as it was left: every field usable again.
  window.addEventListener("pageshow", () => {
    for (const field of form.elements) field.disabled = false;
  });
}

function confirmAction(title, text) {
  const dialog = $("#confirm");
  if (!dialog || typeof dialog.showModal !== "function") {
    return Promise.resolve(window.confirm(`${title}\n\n${text}`) ? "" : null);
  }
  $("#confirm-title").textContent = title;
  $("#confirm-text").textContent = text;
  $("#confirm-reason").value = "";
  $("#confirm-ok").textContent = title;
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => {
      resolve(dialog.returnValue === "ok" ? $("#confirm-reason").value.trim() : null);
    }, { once: true });
    dialog.showModal();
  });
}

/** The page's CSRF token: the server refuses changes from a signed-in page without it. */
function csrfToken() {
  const meta = document.querySelector('meta[name="csrf-token"]');
  return meta ? meta.content : "";
}

async function api(method, url, body) {
  const response = await fetch(url, {
    method,
    headers: { "content-type": "application/json", "x-csrf-token": csrfToken() },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  let data = null;
  try { data = await response.json(); } catch (_) { /* not JSON */ }
  if (!response.ok) {
    const message = data && data.error ? data.error.message : `the server answered ${response.status}`;
    throw new Error(message);
  }
  return data;
}

const verbs = { skip: ["Skip", "skipped"], retry: ["Retry", "retried"] };

function busy(button, on) {
  if (!button) return;
  if (on) { button.dataset.label = button.textContent; button.textContent = "Working…"; button.disabled = true; }
  else { button.textContent = button.dataset.label || button.textContent; button.disabled = false; }
}

// ----- one task: row menus and the detail page's buttons
function singleActions() {
  for (const button of $$("button.act")) {
    button.addEventListener("click", async () => {
      const { action, id } = button.dataset;
      const [verb, done] = verbs[action];
      const reason = await confirmAction(`${verb} task`, `${verb} task ${id}?`);
      if (reason === null) return;
      busy(button, true);
      try {
        await api("POST", `/api/v1/tasks/${encodeURIComponent(id)}/${action}`, reason ? { reason } : {});
        flashAfterReload(`Task ${id} ${done}.`, "ok");
      } catch (e) {
        busy(button, false);
        flash(`Could not ${action} task ${id}: ${e.message}`, "error");
      }
    });
  }
}

// ----- selection and bulk actions on the Tasks page
function selection() {
  const bar = $("#bulk");
  if (!bar) return;
  const total = Number(bar.dataset.total);
  // Above 10,000 matches the total may be the database's estimate.
  const about = bar.dataset.totalExact === "false" ? "about " : "";
  const rows = $$(".row-select");
  const pageBox = $("#select-page");
  const allLink = $("#select-all-matching");
  let allMatching = false;

  const selectedIds = () => rows.filter((r) => r.checked).map((r) => r.value);
  const count = () => (allMatching ? total : selectedIds().length);

  function render() {
    const n = count();
    for (const r of rows) r.closest("tr").classList.toggle("selected", r.checked);
    bar.hidden = n === 0;
    const plural = (k) => (k === 1 ? "task" : "tasks");
    $("#selection-text").textContent = allMatching
      ? `All ${about}${total} ${plural(total)} that match the filters are selected.`
      : `${n} ${plural(n)} selected on this page.`;
    // Viewers get no action buttons.
    for (const [id, verb] of [["#bulk-skip", "Skip"], ["#bulk-retry", "Retry"]]) {
      const button = $(id);
      if (button) button.textContent = `${verb} ${n} ${plural(n)}`;
    }
    const pageAll = rows.length > 0 && rows.every((r) => r.checked);
    if (pageBox) {
      pageBox.checked = pageAll;
      pageBox.indeterminate = !pageAll && rows.some((r) => r.checked);
    }
    allLink.hidden = !(pageAll && !allMatching && total > rows.length);
    allLink.textContent = `Select all ${about}${total} tasks that match the filters`;
  }

  for (const r of rows) r.addEventListener("change", () => { allMatching = false; render(); });
  if (pageBox) pageBox.addEventListener("change", () => {
    allMatching = false;
    for (const r of rows) r.checked = pageBox.checked;
    render();
  });
  allLink.addEventListener("click", () => { allMatching = true; render(); });
  $("#clear-selection").addEventListener("click", () => {
    allMatching = false;
    for (const r of rows) r.checked = false;
    render();
  });

  async function bulk(action, button) {
    const [verb, done] = verbs[action];
    const n = count();
    const what = allMatching
      ? `every task that matches the current filters (${n} now)`
      : `the ${n} selected task${n === 1 ? "" : "s"}`;
    const reason = await confirmAction(`${verb} ${n} task${n === 1 ? "" : "s"}`,
      `${verb} ${what}? Tasks whose status does not allow it are left as they are.`);
    if (reason === null) return;
    // Every task that matches: a tracked job in the background, followed below.
    if (allMatching) {
      const body = { action, filter: JSON.parse(bar.dataset.filter) };
      if (reason) body.reason = reason;
      busy(button, true);
      try {
        const job = await api("POST", "/api/v1/bulk-jobs", body);
        busy(button, false);
        allMatching = false;
        render();
        followJob(job, true);
      } catch (e) {
        busy(button, false);
        flash(`Nothing was ${done}: ${e.message}`, "error");
      }
      return;
    }
    const body = { identifiers: selectedIds() };
    if (reason) body.reason = reason;
    busy(button, true);
    try {
      const r = await api("POST", `/api/v1/tasks/${action}`, body);
      let text = `${r.changed} of ${r.matched} task${r.matched === 1 ? "" : "s"} ${done}.`;
      if (r.ineligible) text += ` ${r.ineligible} could not be ${done}: their status does not allow it.`;
      if (r.not_found) text += ` ${r.not_found} no longer exist.`;
      flashAfterReload(text, "ok");
    } catch (e) {
      busy(button, false);
      flash(`Nothing was ${done}: ${e.message}`, "error");
    }
  }
  for (const action of ["skip", "retry"]) {
    const button = $(`#bulk-${action}`);
    if (button) button.addEventListener("click", (e) => bulk(action, e.target));
  }
  render();
}

// ----- bulk jobs: progress of bulk actions by filter, from any operator, until they end
const number = (n) => Number(n).toLocaleString("en-US");

function jobText(job) {
  const [, done] = verbs[job.action] || [job.action, job.action];
  const who = `${job.action === "skip" ? "Skipping" : "Retrying"} by ${job.actor}`;
  const pct = Math.floor(job.progress * 100);
  switch (job.state) {
    case "running": {
      let t = `${who}: ${number(job.changed)} of ${number(job.eligible)} tasks ${done} (${pct}%)`;
      if (job.tasks_per_second) t += ` · ${number(job.tasks_per_second)} tasks/s`;
      if (job.seconds_left != null) t += ` · about ${Math.ceil(job.seconds_left)} s left`;
      if (job.cancel_requested) t += " · stopping after this batch…";
      return t;
    }
    case "done": {
      let t = `${number(job.changed)} of ${number(job.matched)} tasks ${done}.`;
      const left = job.matched - job.changed;
      if (left > 0) t += ` ${number(left)} could not be ${done}: their status did not allow it.`;
      return t;
    }
    case "cancelled":
      return `Cancelled by ${job.cancelled_by || "an operator"} after ${number(job.changed)} of ${number(job.eligible)} tasks were ${done}; those stay ${done}.`;
    case "failed":
      return `Stopped by an error after ${number(job.changed)} tasks were ${done}: ${job.error}. Start the action again to finish it.`;
    default:
      return `Interrupted after ${number(job.changed)} of ${number(job.eligible)} tasks were ${done}: the ferry node running it stopped. Resume it to finish the ${number(Math.max(job.eligible - job.changed, 0))} left.`;
  }
}

function followJob(job, mine) {
  const box = $("#jobs");
  if (!box || box.querySelector(`[data-job="${job.id}"]`)) return;
  const row = document.createElement("div");
  row.className = "job";
  row.dataset.job = job.id;
  const text = document.createElement("span");
  text.className = "job-text";
  const bar = document.createElement("progress");
  bar.max = 1;
  row.append(text, bar);
  let cancel = null;
  let resume = null;
  if (box.dataset.canOperate === "true") {
    cancel = document.createElement("button");
    cancel.type = "button";
    cancel.className = "link";
    cancel.textContent = "Cancel";
    cancel.addEventListener("click", async () => {
      cancel.disabled = true;
      try { show(await api("POST", `/api/v1/bulk-jobs/${job.id}/cancel`)); }
      catch (e) { flash(`Could not cancel: ${e.message}`, "error"); cancel.disabled = false; }
    });
    row.append(cancel);
    // After Cancel, so that a row's first button is still Cancel.
    resume = document.createElement("button");
    resume.type = "button";
    resume.className = "link";
    resume.textContent = "Resume";
    resume.addEventListener("click", async () => {
      resume.disabled = true;
      try {
        show(await api("POST", `/api/v1/bulk-jobs/${job.id}/resume`));
        row.querySelector("a.reload")?.remove();
        setTimeout(poll, 300);
      } catch (e) { flash(`Could not resume: ${e.message}`, "error"); }
      resume.disabled = false;
    });
    row.append(resume);
  }
  box.append(row);
  function show(j) {
    text.textContent = jobText(j);
    bar.value = j.progress;
    row.dataset.state = j.state;
    if (cancel) cancel.hidden = j.state !== "running" || j.cancel_requested;
    if (resume) resume.hidden = j.state !== "interrupted";
    return j;
  }
  show(job);
  const poll = async () => {
    let j;
    try { j = show(await api("GET", `/api/v1/bulk-jobs/${job.id}`)); }
    catch (_) { setTimeout(poll, 2000); return; }
    if (j.state === "running") { setTimeout(poll, 500); return; }
    if (mine && j.state === "done") { flashAfterReload(jobText(j), "ok"); return; }
    if (row.querySelector("a.reload")) return;
    const reload = document.createElement("a");
    reload.className = "reload";
    reload.href = location.href;
    reload.textContent = "Reload to see the changes";
    row.append(reload);
  };
  setTimeout(poll, 300);
}

async function runningJobs() {
  if (!$("#jobs")) return;
  try {
    const list = await api("GET", "/api/v1/bulk-jobs?state=running");
    // Stored as running: still running, or interrupted (its node stopped), to resume.
    for (const job of list.items) {
      if (job.state === "running" || job.state === "interrupted") followJob(job, false);
    }
  } catch (_) { /* the page works without it */ }
}

// ----- Routes page: run now
function runButtons() {
  for (const button of $$("button.run")) {
    button.addEventListener("click", async () => {
      const out = button.closest(".route").querySelector(".run-result");
      busy(button, true);
      try {
        if (button.dataset.incoming) {
          const parts = [];
          for (const id of button.dataset.incoming.split(",")) {
            const r = await api("POST", `/api/v1/incoming/${encodeURIComponent(id)}/run`, {});
            let text = `${id}: ${r.created} task${r.created === 1 ? "" : "s"} created`;
            if (r.errors.length) text += `, ${r.errors.length} problem${r.errors.length === 1 ? "" : "s"}: ${r.errors.slice(0, 3).join("; ")}`;
            parts.push(text);
          }
          flashAfterReload(parts.join(". ") + ".", "ok");
        } else {
          const r = await api("POST", button.dataset.url, {});
          flashAfterReload(r.disabled ? "The route is disabled: nothing was processed."
            : `Run done: ${r.claimed} claimed, ${r.finished} finished, ${r.failed} failed, ${r.skipped} skipped, ${r.retry} to retry.`, "ok");
        }
      } catch (e) {
        busy(button, false);
        out.textContent = `The run failed: ${e.message}`;
      }
    });
  }
}

// ----- Routes page: try a route (nothing is stored or sent)
function el(tag, className, text) {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text !== undefined) e.textContent = text;
  return e;
}

function tryStep(list, step) {
  const li = el("li", step.error ? "try-step error" : "try-step");
  li.append(el("span", "try-side", step.side), " ", el("span", "try-what", step.error ? `${step.transformer}: ${step.error}` : (step.note || step.transformer)));
  for (const out of step.outputs) li.append(el("pre", "mono", JSON.stringify(out, null, 2)));
  list.append(li);
}

function tryReport(out, r) {
  out.replaceChildren();
  const steps = el("ol", "try-steps");
  for (const s of r.steps) tryStep(steps, s);
  out.append(steps);
  if (r.outcome) out.append(el("p", "try-outcome", r.outcome));
  r.tasks.forEach((t, i) => {
    const box = el("section", "try-task");
    box.append(el("h3", null, `Task ${i + 1} of ${r.tasks.length}: entity identifier ${t.entity_identifier || "(none)"}`));
    const more = el("ol", "try-steps");
    for (const s of t.steps) tryStep(more, s);
    box.append(more, el("p", "try-outcome", t.outcome));
    if (t.request) {
      const lines = [`${t.request.method} ${t.request.target}`, ...t.request.headers.map((h) => `${h.name}: ${h.value}`), "", t.request.body];
      box.append(el("pre", "mono try-request", lines.join("\n")));
    }
    out.append(box);
  });
}

function tryPanels() {
  for (const panel of $$("details.try")) {
    const button = panel.querySelector(".try-run");
    const out = panel.querySelector(".try-result");
    button.addEventListener("click", async () => {
      let entity;
      try {
        entity = JSON.parse(panel.querySelector(".try-entity").value);
      } catch (e) {
        out.textContent = `The entity is not JSON: ${e.message}`;
        return;
      }
      busy(button, true);
      try {
        tryReport(out, await api("POST", panel.dataset.url, { entity }));
      } catch (e) {
        out.textContent = `The try failed: ${e.message}`;
      } finally {
        busy(button, false);
      }
    });
  }
}

// ----- Routes page: test a connection
function connectionTests() {
  for (const button of $$("button.test-connection")) {
    button.addEventListener("click", async () => {
      const out = button.closest(".connection").querySelector(".run-result");
      busy(button, true);
      out.textContent = "Reaching the connection…";
      try {
        const r = await api("POST", button.dataset.url, {});
        out.textContent = r.ok ? `Reached: ${r.message}` : `Failed: ${r.message}`;
        out.classList.toggle("bad", !r.ok);
      } catch (e) {
        out.textContent = `The test could not run: ${e.message}`;
      }
      busy(button, false);
    });
  }
}

// ----- small things
function copyButtons() {
  const button = $("#copy-json");
  if (!button) return;
  button.addEventListener("click", async () => {
    const text = $("#" + button.dataset.target).textContent;
    try {
      await navigator.clipboard.writeText(text);
      button.textContent = "Copied";
    } catch (_) {
      const range = document.createRange();
      range.selectNodeContents($("#" + button.dataset.target));
      getSelection().removeAllRanges();
      getSelection().addRange(range);
      button.textContent = "Selected: press Ctrl+C";
    }
  });
}

function menus() {
  document.addEventListener("click", (e) => {
    for (const d of $$("details.menu[open]")) if (!d.contains(e.target)) d.open = false;
  });
  document.addEventListener("keydown", (e) => {
    if (e.key !== "Escape") return;
    for (const d of $$("details.menu[open]")) { d.open = false; d.querySelector("summary").focus(); }
  });
}

document.addEventListener("DOMContentLoaded", () => {
  showStoredFlash();
  connectionTests();
  localTimes();
  presets();
  cleanAddress();
  singleActions();
  selection();
  runningJobs();
  runButtons();
  tryPanels();
  copyButtons();
  menus();
});
