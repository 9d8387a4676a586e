// The review page: plain JavaScript over the reviewer routes (/api). Every value read from
// the database is the agent's data: it reaches the page through textContent and attributes
// set one by one, never as markup.
"use strict";

const TOKEN = document.querySelector('meta[name="agentcow-token"]').content;
const SCHEMA = document.querySelector('meta[name="agentcow-schema"]').content;
// Inserts and updates shown per table before "n more"; deletes are always listed.
const ROW_LIMIT = 100;
const OPEN_STATES = new Set(["open", "partially_committed"]);
const COMMITTED_STATES = new Set(["committed", "partially_committed", "undone"]);

const state = {
  sessions: [],
  session: null, // the SessionModel shown
  ops: [], // OperationModel, in write order
  needs: new Map(), // operation -> the operations it depends on
  neededBy: new Map(), // operation -> the operations that depend on it
  chosen: new Set(), // what the person ticked; the selection is its closure
  preview: null, // {ops, fingerprint} of the preview on screen
};

// ---------------------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------------------

const $ = (id) => document.getElementById(id);

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

function clear(node) {
  while (node.firstChild) node.removeChild(node.firstChild);
  return node;
}

function shortId(id) {
  return String(id).slice(0, 8);
}

function opLabel(id) {
  const index = state.ops.findIndex((op) => op.operation_id === id);
  return index < 0 ? shortId(id) : `#${index + 1}`;
}

function byOrder(ids) {
  const index = (id) => state.ops.findIndex((op) => op.operation_id === id);
  return ids.slice().sort((a, b) => index(a) - index(b));
}

function valueText(value) {
  if (value === null || value === undefined) return "NULL";
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

function valueCell(value, className) {
  const cell = el("td", valueText(value), className);
  if (value === null) cell.classList.add("null");
  return cell;
}

function keyText(key) {
  return Object.entries(key || {})
    .map(([name, value]) => `${name}=${valueText(value)}`)
    .join(", ");
}

class ApiError extends Error {
  constructor(status, body) {
    const detail = body && body.detail;
    let message;
    if (detail && typeof detail === "object" && !Array.isArray(detail)) {
      message = detail.message;
    } else if (Array.isArray(detail)) {
      message = detail.map((item) => `${(item.loc || []).join(".")}: ${item.msg}`).join("; ");
    } else {
      message = detail || `HTTP ${status}`;
    }
    super(message);
    this.status = status;
    this.detail = detail;
  }
}

async function api(method, path, body) {
  const options = { method, headers: { "X-Agentcow-Token": TOKEN } };
  if (body !== undefined) {
    options.headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  const response = await fetch(`/api${path}`, options);
  const data = await response.json().catch(() => null);
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

function query(ops) {
  if (!ops) return "";
  return "?" + ops.map((op) => `ops=${encodeURIComponent(op)}`).join("&");
}

function say(text, kind) {
  const box = $("message");
  box.hidden = false;
  box.className = kind || "info";
  clear(box).append(el("span", text));
  if (kind === "error" && state.lastError && state.lastError.detail) {
    const detail = state.lastError.detail;
    const extra = [];
    if (detail.blocking_reasons) extra.push(...detail.blocking_reasons);
    if (detail.missing_operations) {
      extra.push(`missing operations: ${detail.missing_operations.map(opLabel).join(", ")}`);
    }
    if (detail.conflicts) {
      extra.push(...detail.conflicts.map((c) => `${c.table} ${keyText(c.key)}: ${c.kind}`));
    }
    if (extra.length) {
      const list = el("ul");
      extra.forEach((line) => list.append(el("li", line)));
      box.append(list);
    }
  }
}

// Runs one action of the person's at a time: the session's controls stay disabled until
// it has finished (no click lands on a view about to be replaced, no double commit).
async function guarded(action) {
  const controls = $("controls");
  controls.disabled = true;
  try {
    state.lastError = null;
    await action();
  } catch (error) {
    state.lastError = error;
    say(error.message, "error");
  } finally {
    controls.disabled = false;
  }
}

// Whether the session shown is still the one a request was made for.
function still(sessionId) {
  return state.session !== null && state.session.session_id === sessionId;
}

// ---------------------------------------------------------------------------------------
// Sessions
// ---------------------------------------------------------------------------------------

async function loadSessions() {
  state.sessions = await api("GET", "/sessions");
  renderSessions();
}

function renderSessions() {
  const showClosed = $("show-closed").checked;
  const body = clear($("sessions").tBodies[0]);
  const shown = state.sessions.filter((s) => showClosed || OPEN_STATES.has(s.state));
  $("no-sessions").hidden = shown.length > 0;
  for (const s of shown.slice().reverse()) {
    const row = el("tr");
    row.dataset.session = s.session_id;
    if (state.session && state.session.session_id === s.session_id) row.classList.add("current");
    const name = el("td");
    const link = el("a", shortId(s.session_id), "session-link");
    link.href = `#${s.session_id}`;
    link.title = s.session_id;
    name.append(link);
    if (s.label) name.append(el("div", s.label, "label"));
    row.append(name, el("td", s.state.replace("_", " "), `state ${s.state}`));
    const pending = Object.entries(s.pending).filter(([, n]) => n > 0);
    row.append(el("td", pending.map(([table, n]) => `${table} ${n}`).join(", ") || "—"));
    row.addEventListener("click", (event) => {
      event.preventDefault();
      location.hash = s.session_id;
    });
    body.append(row);
  }
}

async function openSession(sessionId) {
  const found = state.sessions.find((s) => s.session_id === sessionId);
  $("pick").hidden = Boolean(found);
  $("session").hidden = !found;
  state.session = found || null;
  state.preview = null;
  renderSessions();
  if (!found) return;
  $("session-id").textContent = found.session_id;
  $("session-state").textContent = found.state.replace("_", " ");
  $("session-state").className = `state ${found.state}`;
  const meta = [];
  if (found.label) meta.push(`label: ${found.label}`);
  if (found.tenant) meta.push(`tenant: ${found.tenant}`);
  if (found.last_active_at) meta.push(`last active ${new Date(found.last_active_at).toLocaleString()}`);
  if (found.committed_at) meta.push(`committed ${new Date(found.committed_at).toLocaleString()} by ${found.committed_by}`);
  $("session-meta").textContent = meta.join(" · ");
  const pending = Object.values(found.pending).some((n) => n > 0);
  $("pending").hidden = !pending;
  $("history-panel").hidden = !COMMITTED_STATES.has(found.state);
  if (pending) await loadPending();
  if (COMMITTED_STATES.has(found.state)) await loadHistory();
}

// ---------------------------------------------------------------------------------------
// Operations, the dependency closure, the graph
// ---------------------------------------------------------------------------------------

async function loadPending() {
  const id = state.session.session_id;
  const [answer, conflicts] = await Promise.all([
    api("GET", `/sessions/${id}/operations`),
    api("GET", `/sessions/${id}/conflicts`),
  ]);
  if (!still(id)) return;
  state.ops = answer.operations;
  state.needs = new Map(state.ops.map((op) => [op.operation_id, new Set()]));
  state.neededBy = new Map(state.ops.map((op) => [op.operation_id, new Set()]));
  for (const arc of answer.dependencies) {
    state.needs.get(arc.operation_id).add(arc.depends_on);
    state.neededBy.get(arc.depends_on).add(arc.operation_id);
  }
  state.chosen = new Set();
  $("preview-panel").hidden = true;
  $("op-rows-panel").hidden = true;
  renderSelection();
  renderConflicts(conflicts);
}

function reach(start, arcs) {
  const seen = new Set(start);
  const stack = [...seen];
  while (stack.length) {
    for (const next of arcs.get(stack.pop()) || []) {
      if (!seen.has(next)) {
        seen.add(next);
        stack.push(next);
      }
    }
  }
  return seen;
}

function selection() {
  return reach(state.chosen, state.needs);
}

function toggle(opId, on) {
  if (on) {
    state.chosen.add(opId);
  } else {
    for (const dependent of reach([opId], state.neededBy)) state.chosen.delete(dependent);
  }
  state.preview = null;
  $("preview-panel").hidden = true;
  renderSelection();
}

function renderSelection() {
  const selected = selection();
  const body = clear($("operations").tBodies[0]);
  state.ops.forEach((op, index) => {
    const id = op.operation_id;
    const row = el("tr");
    row.dataset.op = id;
    const implied = selected.has(id) && !state.chosen.has(id);
    if (selected.has(id)) row.classList.add("selected");
    if (implied) row.classList.add("implied");
    const box = el("input");
    box.type = "checkbox";
    box.checked = selected.has(id);
    box.setAttribute("aria-label", `select operation #${index + 1}`);
    box.addEventListener("change", () => toggle(id, box.checked));
    const pick = el("td");
    pick.append(box);
    row.append(pick, el("td", `#${index + 1}`, "num"));
    const name = el("td");
    name.append(el("code", shortId(id)));
    name.title = id;
    if (implied) {
      const by = [...state.chosen].filter((other) => reach([other], state.needs).has(id));
      name.append(el("span", ` needed by ${by.map(opLabel).join(", ")}`, "implied-note"));
    }
    row.append(name, el("td", op.tables.join(", ")));
    row.append(el("td", `+${op.inserted} ~${op.updated} −${op.deleted}`, "counts"));
    row.append(el("td", [...state.needs.get(id)].map(opLabel).join(", ") || "—", "needs"));
    const show = el("button", "rows", "small");
    show.type = "button";
    show.addEventListener("click", () => guarded(() => showOperationRows(id)));
    const action = el("td");
    action.append(show);
    row.append(action);
    body.append(row);
  });
  $("preview").disabled = selected.size === 0;
  $("discard").disabled = selected.size === 0;
  renderGraph(selected);
}

const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attributes, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
  if (text !== undefined) node.textContent = text;
  return node;
}

function renderGraph(selected) {
  const graph = clear($("graph"));
  const step = 56;
  const radius = 15;
  const positions = new Map(state.ops.map((op, i) => [op.operation_id, 28 + i * step]));
  let tallest = 0;
  const arcs = [];
  for (const [op, needs] of state.needs) {
    for (const dependency of needs) {
      const span = Math.abs(positions.get(op) - positions.get(dependency));
      tallest = Math.max(tallest, span / 2);
      arcs.push([op, dependency, span]);
    }
  }
  const baseline = Math.min(tallest, 120) + radius + 14;
  const width = Math.max(120, 56 + (state.ops.length - 1) * step);
  graph.setAttribute("viewBox", `0 0 ${width} ${baseline + radius + 20}`);
  graph.setAttribute("width", width);
  graph.setAttribute("height", baseline + radius + 20);
  const defs = svg("defs", {});
  const marker = svg("marker", {
    id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7,
    orient: "auto-start-reverse",
  });
  marker.append(svg("path", { d: "M 0 0 L 10 5 L 0 10 z", class: "arrow" }));
  defs.append(marker);
  graph.append(defs);
  for (const [op, dependency, span] of arcs) {
    const from = positions.get(op);
    const to = positions.get(dependency);
    const lift = Math.min(span / 2, 120) + radius;
    const startY = baseline - radius;
    const path = svg("path", {
      d: `M ${from} ${startY} C ${from} ${startY - lift}, ${to} ${startY - lift}, ${to} ${startY}`,
      class: selected.has(op) ? "arc on" : "arc",
      "marker-end": "url(#arrow)",
    });
    path.append(svg("title", {}, `${opLabel(op)} needs ${opLabel(dependency)}`));
    graph.append(path);
  }
  state.ops.forEach((op, i) => {
    const id = op.operation_id;
    const node = svg("g", {
      class: selected.has(id) ? (state.chosen.has(id) ? "node chosen" : "node implied") : "node",
      "data-op": id,
    });
    node.append(svg("circle", { cx: positions.get(id), cy: baseline, r: radius }));
    node.append(svg("text", { x: positions.get(id), y: baseline + 4 }, `#${i + 1}`));
    node.append(svg("title", {}, `${id}: ${op.tables.join(", ")}`));
    node.addEventListener("click", () => toggle(id, !selected.has(id)));
    graph.append(node);
  });
}

// ---------------------------------------------------------------------------------------
// Row diffs
// ---------------------------------------------------------------------------------------

function columnsOf(rows) {
  const columns = [];
  for (const row of rows) {
    for (const image of [row.before, row.after]) {
      for (const name of Object.keys(image || {})) if (!columns.includes(name)) columns.push(name);
    }
  }
  return columns;
}

const KIND = { INSERT: ["+", "insert"], UPDATE: ["~", "update"], DELETE: ["−", "delete"] };

// Rows (RowDiffModel-shaped) as one table per database table: an update shows the stored
// row and the row the commit writes, changed cells highlighted; deletes are always listed.
function renderRows(container, rows, options = {}) {
  clear(container);
  const byTable = new Map();
  for (const row of rows) {
    if (!byTable.has(row.table)) byTable.set(row.table, []);
    byTable.get(row.table).push(row);
  }
  if (!rows.length) container.append(el("p", options.empty || "No rows.", "muted"));
  for (const [table, tableRows] of byTable) {
    const counts = { INSERT: 0, UPDATE: 0, DELETE: 0 };
    tableRows.forEach((row) => (counts[row.type] += 1));
    container.append(
      el("h4", `${table}  +${counts.INSERT} ~${counts.UPDATE} −${counts.DELETE}`, "table-name"),
    );
    const columns = columnsOf(tableRows);
    const grid = el("table", null, "diff");
    grid.dataset.table = table;
    const head = el("tr");
    head.append(el("th", ""), el("th", "key"), el("th", ""));
    columns.forEach((name) => head.append(el("th", name)));
    if (tableRows.some((row) => row.findings !== null && row.findings !== undefined)) {
      head.append(el("th", "checks"));
    }
    grid.append(el("thead"));
    grid.tHead.append(head);
    const body = el("tbody");
    grid.append(body);
    let shown = 0;
    let hidden = 0;
    for (const row of tableRows) {
      if (row.type !== "DELETE" && shown >= ROW_LIMIT) {
        hidden += 1;
        continue;
      }
      if (row.type !== "DELETE") shown += 1;
      appendRow(body, row, columns, head.cells.length);
    }
    container.append(grid);
    if (hidden) {
      container.append(
        el("p", `${hidden} more insert(s) and update(s) not shown; deletes are always listed.`, "muted"),
      );
    }
  }
}

function appendRow(body, row, columns, width) {
  const [sign, kind] = KIND[row.type];
  const changed = new Set(row.changed_columns);
  const images =
    row.type === "UPDATE" ? [["before", row.before], ["after", row.after]]
      : row.type === "INSERT" ? [["new", row.after]] : [["deleted", row.before]];
  images.forEach(([label, image], i) => {
    const line = el("tr", null, `${kind}${row.blocked ? " blocked" : ""}`);
    line.dataset.kind = row.type;
    line.dataset.key = keyText(row.pk);
    if (i === 0) {
      line.append(el("td", sign, "sign"), el("td", keyText(row.pk), "key"));
      if (images.length === 2) {
        line.cells[0].rowSpan = 2;
        line.cells[1].rowSpan = 2;
      }
    }
    line.append(el("td", label, "image"));
    for (const name of columns) {
      const cell = valueCell(image ? image[name] : null);
      if (row.type === "UPDATE" && changed.has(name)) cell.classList.add("changed");
      line.append(cell);
    }
    if (i === 0 && width > columns.length + 3) {
      const findings = row.findings || [];
      const cell = el("td", row.findings === null || row.findings === undefined ? "" : findings.length ? findings.join("; ") : "pass", findings.length ? "fail" : "pass");
      if (images.length === 2) cell.rowSpan = 2;
      line.append(cell);
    }
    body.append(line);
  });
}

// The rows one operation wrote, as a commit of it (with what it needs) would write them.
async function showOperationRows(opId) {
  const id = state.session.session_id;
  const shown = await api("GET", `/sessions/${id}/diff${query([opId])}`);
  if (!still(id)) return;
  const rows = shown.rows.filter((row) => row.operations.includes(opId));
  $("op-rows-panel").hidden = false;
  $("op-rows-title").textContent = `${opLabel(opId)} (${shortId(opId)}): what committing it writes`;
  renderRows($("op-rows"), rows, { empty: "It leaves these rows as they are stored." });
  $("op-rows-panel").scrollIntoView({ block: "nearest" });
}

// ---------------------------------------------------------------------------------------
// Preview and commit
// ---------------------------------------------------------------------------------------

async function preview(ops) {
  const id = state.session.session_id;
  const shown = await api("GET", `/sessions/${id}/diff${query(ops)}`);
  $("message").hidden = true;
  state.preview = { ops, fingerprint: shown.fingerprint };
  $("preview-panel").hidden = false;
  $("preview-what").textContent = ops
    ? `of ${byOrder(shown.operation_ids || []).map(opLabel).join(", ")}`
    : "of the whole session";
  $("fingerprint").textContent = shown.fingerprint;
  const s = shown.summary;
  $("summary").textContent = `${s.INSERT} insert(s), ${s.UPDATE} update(s), ${s.DELETE} delete(s)`;
  renderPolicy(shown.policy);
  renderRows($("diff"), shown.rows, { empty: "These operations change nothing." });
  $("commit").disabled = shown.policy.decision === "block";
  const conflicts = await api("GET", `/sessions/${id}/conflicts${query(ops)}`);
  renderConflicts(conflicts);
}

function renderPolicy(policy) {
  const box = clear($("policy"));
  const labels = { approve: "SAFE", needs_review: "NEEDS A PERSON", block: "BLOCKED" };
  const banner = el("p", null, `decision ${policy.decision}`);
  banner.append(el("strong", labels[policy.decision]));
  banner.append(
    el("span", policy.configured ? " policy checked" : " no policy configured: rows checked against their tables' models only"),
  );
  box.append(banner);
  if (policy.reasons.length) {
    const list = el("ul", null, "reasons");
    policy.reasons.forEach((reason) => list.append(el("li", reason)));
    box.append(list);
  }
  const failed = policy.checks.filter((c) => !c.passed);
  for (const check of failed) {
    box.append(el("p", `check ${check.name}: ${check.row_count} row(s), first ones:`, "fail"));
    const pre = el("pre", check.rows.map((row) => JSON.stringify(row)).join("\n"));
    box.append(pre);
  }
}

async function commit() {
  const id = state.session.session_id;
  const { ops, fingerprint } = state.preview;
  try {
    const done = await api("POST", `/sessions/${id}/commit`, {
      ops,
      fingerprint,
      on_conflict: $("on-conflict").value,
      person_approved: $("person-approved").checked,
    });
    const rows = Object.entries(done.committed).map(([t, n]) => `${t}: ${n} row(s)`).join(", ");
    await reload(id);
    say(`Committed ${rows || "nothing"}.`, "success");
  } catch (error) {
    if (error.detail && error.detail.code === "review_changed") {
      state.preview = null;
      $("preview-panel").hidden = true;
      await loadPending();
    }
    throw error;
  }
}

// ---------------------------------------------------------------------------------------
// Conflicts
// ---------------------------------------------------------------------------------------

function renderConflicts(conflicts) {
  const box = clear($("conflicts"));
  $("no-conflicts").hidden = conflicts.length > 0;
  for (const c of conflicts) {
    box.append(el("h4", `${c.table} ${keyText(c.key)}: production ${c.kind} it${c.mergeable ? " (mergeable)" : ""}`));
    const images = [["when the session wrote it", c.base_then], ["production now", c.base_now], ["the session's", c.session]];
    const columns = [];
    images.forEach(([, image]) => Object.keys(image || {}).forEach((n) => columns.includes(n) || columns.push(n)));
    const grid = el("table", null, "diff conflict");
    const head = el("tr");
    head.append(el("th", ""));
    columns.forEach((n) => head.append(el("th", n)));
    grid.append(el("thead"));
    grid.tHead.append(head);
    const body = el("tbody");
    for (const [label, image] of images) {
      const line = el("tr");
      line.append(el("td", label, "image"));
      columns.forEach((n) => {
        const cell = image ? valueCell(image[n]) : el("td", "no row", "null");
        if (c.columns.includes(n)) cell.classList.add("changed");
        line.append(cell);
      });
      body.append(line);
    }
    grid.append(body);
    box.append(grid);
  }
}

// ---------------------------------------------------------------------------------------
// Discard and undo
// ---------------------------------------------------------------------------------------

async function discard(all) {
  const id = state.session.session_id;
  const chosen = [...selection()];
  const dropped = all ? null : [...reach(chosen, state.neededBy)];
  const what = all ? "every pending change of this session" : `operations ${dropped.map(opLabel).join(", ")}`;
  if (!window.confirm(`Discard ${what}? This cannot be undone.`)) return;
  const done = await api("POST", `/sessions/${id}/discard`, { ops: all ? null : chosen, include_dependents: true });
  await reload(id);
  const rows = Object.entries(done.discarded).map(([t, n]) => `${t}: ${n} row(s)`).join(", ");
  say(`Discarded ${rows || "nothing"}.`, "success");
}

async function loadHistory() {
  const id = state.session.session_id;
  const entries = await api("GET", `/sessions/${id}/history`);
  if (!still(id)) return;
  const ops = new Map();
  for (const entry of entries) {
    for (const op of entry.operations) {
      const seen = ops.get(op) || { rows: 0, live: 0 };
      seen.rows += 1;
      if (!entry.undone) seen.live += 1;
      ops.set(op, seen);
    }
  }
  const body = clear($("history-ops").tBodies[0]);
  for (const [op, seen] of ops) {
    const row = el("tr");
    row.dataset.op = op;
    const box = el("input");
    box.type = "checkbox";
    box.value = op;
    box.disabled = seen.live === 0;
    const pick = el("td");
    pick.append(box);
    row.append(pick, el("td", op, "mono"), el("td", seen.rows), el("td", seen.live ? "committed" : "undone"));
    body.append(row);
  }
  renderRows(
    $("history"),
    entries.map((e) => ({
      table: e.table,
      type: e.before === null ? "INSERT" : e.after === null ? "DELETE" : "UPDATE",
      pk: e.key,
      before: e.before,
      after: e.after,
      changed_columns: Object.keys(e.after || {}).filter(
        (n) => e.before && JSON.stringify(e.before[n]) !== JSON.stringify(e.after[n]),
      ),
      findings: null,
    })),
    { empty: "Nothing committed here." },
  );
  $("undo-all").disabled = ![...ops.values()].some((seen) => seen.live);
}

async function undo(all) {
  const id = state.session.session_id;
  const ops = all ? null : [...document.querySelectorAll("#history-ops input:checked")].map((b) => b.value);
  if (ops && !ops.length) {
    say("Tick the operations to undo first.", "info");
    return;
  }
  const what = all ? "everything this session committed" : `${ops.length} operation(s) and what built on them`;
  if (!window.confirm(`Undo ${what}? Production gets back the rows it had before.`)) return;
  const done = await api("POST", `/sessions/${id}/undo`, { ops, include_dependents: true });
  await reload(id);
  const rows = Object.entries(done.undone).map(([t, n]) => `${t}: ${n} row(s)`).join(", ");
  say(`Undone: ${rows || "nothing"} (undo session ${done.undo_session_id}).`, "success");
}

async function reload(sessionId) {
  await loadSessions();
  await openSession(sessionId);
}

// ---------------------------------------------------------------------------------------
// Wiring
// ---------------------------------------------------------------------------------------

function route() {
  return guarded(() => openSession(location.hash.slice(1)));
}

document.addEventListener("DOMContentLoaded", () => {
  $("schema").textContent = SCHEMA;
  $("refresh").addEventListener("click", () => guarded(() => reload(location.hash.slice(1))));
  $("show-closed").addEventListener("change", renderSessions);
  $("preview").addEventListener("click", () => guarded(() => preview([...state.chosen])));
  $("preview-all").addEventListener("click", () => guarded(() => preview(null)));
  $("select-none").addEventListener("click", () => {
    state.chosen.clear();
    state.preview = null;
    $("preview-panel").hidden = true;
    renderSelection();
  });
  $("commit").addEventListener("click", () => guarded(commit));
  $("discard").addEventListener("click", () => guarded(() => discard(false)));
  $("discard-all").addEventListener("click", () => guarded(() => discard(true)));
  $("undo").addEventListener("click", () => guarded(() => undo(false)));
  $("undo-all").addEventListener("click", () => guarded(() => undo(true)));
  window.addEventListener("hashchange", route);
  guarded(async () => {
    await loadSessions();
    await openSession(location.hash.slice(1));
  });
});
