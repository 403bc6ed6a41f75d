// The example Solution's page: its configuration, and the VersionServers of its namespace.
//
// Every URL is relative to the page (config.json, api/kubernetes/...): the page is served under
// a base path it does not know.  The Kubernetes API is reached at api/kubernetes + one of the
// config's api.paths, with the caller's own rights.
"use strict";

const REFRESH_MS = 5000;

const byId = (id) => document.getElementById(id);

// Kubernetes orders API versions: GA, then beta, then alpha; higher numbers first in each.
function versionRank(path) {
  const version = path.split("/")[3] || "";
  const match = /^v(\d+)(?:(alpha|beta)(\d+))?$/.exec(version);
  if (!match) return [-1, 0, 0];
  const stage = { alpha: 0, beta: 1 }[match[2]] ?? 2;
  return [stage, Number(match[1]), Number(match[3] || 0)];
}

function newestPath(paths) {
  const rank = (path) => versionRank(path).reduce((sum, n) => sum * 1000 + n, 0);
  return [...paths].sort((a, b) => rank(b) - rank(a))[0];
}

function cell(field, value) {
  const td = document.createElement("td");
  td.dataset.field = field;
  td.textContent = value;
  return td;
}

function readiness(item) {
  const status = item.status;
  if (!status) return { ready: "–", reason: "Pending", state: "unknown" };
  const condition = (status.conditions || []).find((c) => c.type === "Ready");
  const desired = status.replicas ?? item.spec?.replicas ?? 1;
  return {
    ready: `${status.readyReplicas ?? 0}/${desired}`,
    reason: condition?.reason || condition?.status || "",
    state: condition ? String(condition.status === "True") : "unknown",
  };
}

function row(item) {
  const tr = document.createElement("tr");
  const { ready, reason, state } = readiness(item);
  tr.dataset.instance = item.metadata.name;
  tr.dataset.ready = state;
  tr.append(
    cell("name", item.metadata.name),
    cell("version", item.spec?.version ?? ""),
    cell("replicas", String(item.spec?.replicas ?? 1)),
    cell("ready", ready),
    cell("status", reason),
  );
  return tr;
}

function render(items, namespace) {
  const rows = [...items]
    .sort((a, b) => a.metadata.name.localeCompare(b.metadata.name))
    .map(row);
  if (rows.length === 0) {
    const tr = document.createElement("tr");
    const td = cell("empty", `No VersionServer in ${namespace}.`);
    td.colSpan = 5;
    td.className = "empty";
    tr.append(td);
    rows.push(tr);
  }
  document.querySelector("#instances tbody").replaceChildren(...rows);
}

function showError(message, detail) {
  const error = byId("error");
  error.replaceChildren(message);
  if (detail) {
    const small = document.createElement("small");
    small.textContent = detail;
    error.append(small);
  }
  error.hidden = !message;
}

class ListError extends Error {
  constructor(message, detail) {
    super(message);
    this.detail = detail;
  }
}

// What went wrong, from the API's answer (a Kubernetes Status, usually).
async function listError(response, namespace) {
  let detail = `HTTP ${response.status}`;
  try {
    const body = await response.json();
    if (body.message) detail += `: ${body.message}`;
  } catch {
    // Not a Kubernetes Status: the status code says enough.
  }
  if (response.status === 401 || response.status === 403) {
    return new ListError(`you are not allowed to list VersionServers in ${namespace}`, detail);
  }
  if (response.status === 404) {
    const message = `VersionServers are not served in ${namespace} (is the Solution active?)`;
    return new ListError(message, detail);
  }
  return new ListError(`listing VersionServers in ${namespace} failed`, detail);
}

async function refresh(url, namespace) {
  const table = byId("instances");
  try {
    const headers = { Accept: "application/json" };
    const response = await fetch(url, { headers, cache: "no-store" });
    if (!response.ok) throw await listError(response, namespace);
    const list = await response.json();
    render(list.items || [], namespace);
    showError("");
    table.dataset.state = "ok";
    byId("updated").textContent = `Updated ${new Date().toLocaleTimeString()}`;
  } catch (error) {
    document.querySelector("#instances tbody").replaceChildren();
    if (error instanceof ListError) showError(error.message, error.detail);
    else showError(`cannot reach the Kubernetes API: ${error.message}`);
    table.dataset.state = "error";
  } finally {
    setTimeout(() => refresh(url, namespace), REFRESH_MS);
  }
}

async function start() {
  let config;
  try {
    const response = await fetch("config.json", { cache: "no-store" });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    config = await response.json();
  } catch (error) {
    showError(`cannot load the configuration (config.json): ${error.message}`);
    byId("instances").dataset.state = "error";
    return;
  }
  const name = config.displayName || config.solution;
  document.title = name;
  byId("solution-name").textContent = name;
  byId("solution-version").textContent = config.version;
  byId("environment").textContent = config.environment;
  byId("namespace").textContent = config.namespace;
  const path = newestPath(config.api.paths);
  byId("instances").dataset.apiPath = path;
  refresh(`api/kubernetes${path}`, config.namespace);
}

start();
