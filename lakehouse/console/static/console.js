// The console's behaviour: the bearer token, the upload with its preview, the SQL page.
// Data only ever reaches the page through textContent (never innerHTML).
"use strict";

(function () {
  const TOKEN_KEY = "lakehouse.token";
  const RECENT_KEY = "lakehouse.recent";
  const MAX_RECENT = 10;
  const body = document.body;
  const token = () => sessionStorage.getItem(TOKEN_KEY);

  function authHeaders(headers) {
    const value = token();
    if (value) headers["Authorization"] = "Bearer " + value;
    return headers;
  }

  function byId(id) { return document.getElementById(id); }

  function element(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (className) node.className = className;
    return node;
  }

  function flash(message) {
    const box = byId("flash");
    box.textContent = message;
    box.hidden = false;
  }

  // -- the token: asked once, kept for the tab's session, sent as a header -----------------
  function askToken(message) {
    const form = byId("token-form");
    byId("token-message").textContent = message;
    form.hidden = false;
    form.elements.token.focus();
  }

  byId("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, event.target.elements.token.value);
    location.reload();
  });

  body.addEventListener("htmx:configRequest", (event) => authHeaders(event.detail.headers));
  body.addEventListener("htmx:beforeRequest", (event) => {
    if (body.dataset.auth === "required" && !token()) {
      event.preventDefault();
      askToken("This server needs a token.");
    }
  });
  body.addEventListener("htmx:responseError", (event) => {
    const status = event.detail.xhr.status;
    if (status === 401) {
      sessionStorage.removeItem(TOKEN_KEY);
      askToken("The server refused the token: enter it again.");
    } else {
      flash("The server answered " + status + ".");
    }
  });
  body.addEventListener("htmx:sendError", () => flash("The server cannot be reached."));
  if (body.dataset.auth === "required" && !token()) askToken("This server needs a token.");

  function errorMessage(text, status) {
    try {
      const error = JSON.parse(text).error;
      if (error && error.message) return error.message;
    } catch (ignored) { /* not our JSON error shape */ }
    return "the server answered " + status;
  }

  // -- upload: progress while sending, a dry-run preview, then the commit -----------------
  function setupUpload() {
    const form = byId("upload-form");
    if (!form) return;
    const fileInput = byId("file");
    const drop = byId("drop-zone");
    let file = null;

    function choose(chosen) {
      file = chosen;
      byId("file-name").textContent = chosen ? chosen.name + " (" + formatBytes(chosen.size) + ")" : "";
      const name = byId("dataset-name");
      if (chosen && !name.value) {
        // "people.csv.gz" is "people": the compression suffix goes too (as the CLI does).
        name.value = chosen.name.replace(/\.(gz|gzip|zst|zstd)$/i, "").replace(/\.[^.]*$/, "")
          .replace(/[^A-Za-z0-9_]/g, "_").replace(/^([0-9])/, "_$1");
      }
    }
    fileInput.addEventListener("change", () => choose(fileInput.files[0] || null));
    drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
    drop.addEventListener("dragleave", () => drop.classList.remove("over"));
    drop.addEventListener("drop", (event) => {
      event.preventDefault();
      drop.classList.remove("over");
      if (event.dataTransfer.files.length) choose(event.dataTransfer.files[0]);
    });

    function send(params, onDone) {
      const error = byId("upload-error");
      error.hidden = true;
      // The job id is ours, so the server's progress can be followed before the answer.
      const job = newJobId();
      const query = new URLSearchParams(Object.assign({ job: job }, params));
      const data = new FormData();
      data.append("file", file, file.name);
      const xhr = new XMLHttpRequest();
      xhr.open("POST", "/v1/ingest?" + query.toString());
      const headers = authHeaders({});
      for (const name in headers) xhr.setRequestHeader(name, headers[name]);
      const bar = byId("upload-progress");
      const text = byId("progress-text");
      byId("progress-box").hidden = false;
      bar.value = 0;
      xhr.upload.addEventListener("progress", (event) => {
        if (!event.lengthComputable) return;
        const percent = Math.round((event.loaded / event.total) * 100);
        bar.value = percent;
        text.textContent = percent + "% · " + formatBytes(event.loaded) + " of " + formatBytes(event.total);
      });
      let following = null;
      xhr.upload.addEventListener("load", () => {
        text.textContent = "100% sent · the server is reading it…";
        following = followJob(job, text);
      });
      xhr.addEventListener("loadend", () => { if (following) following.stop(); });
      xhr.addEventListener("load", () => {
        if (xhr.status === 401) {
          sessionStorage.removeItem(TOKEN_KEY);
          askToken("The server refused the token: enter it again.");
          return;
        }
        if (xhr.status !== 200) {
          error.textContent = errorMessage(xhr.responseText, xhr.status);
          error.hidden = false;
          return;
        }
        text.textContent = "done";
        onDone(JSON.parse(xhr.responseText));
      });
      xhr.addEventListener("error", () => {
        error.textContent = "The upload failed: the server cannot be reached.";
        error.hidden = false;
      });
      xhr.send(data);
    }

    function params(extra) {
      const result = { name: byId("dataset-name").value };
      const mode = byId("mode").value;
      if (mode) result.mode = mode;
      return Object.assign(result, extra);
    }

    form.addEventListener("submit", (event) => {
      event.preventDefault();
      if (!file) { choose(fileInput.files[0] || null); }
      if (!file) return;
      byId("committed").hidden = true;
      send(params({ dry_run: "true" }), showPreview);
    });

    byId("commit-button").addEventListener("click", () => {
      const overrides = [];
      for (const select of document.querySelectorAll("#preview-columns select")) {
        if (select.value !== select.dataset.proposed) overrides.push(select.dataset.column + ":" + select.value);
      }
      const extra = overrides.length ? { types: overrides.join(",") } : {};
      send(params(extra), showCommitted);
    });
  }

  const TYPES = ["VARCHAR", "BIGINT", "DOUBLE", "BOOLEAN", "DATE", "TIMESTAMP", "TIMESTAMP WITH TIME ZONE", "DECIMAL(38,0)"];
  const TYPE_OVERRIDE = { "VARCHAR": "varchar", "BIGINT": "bigint", "DOUBLE": "double", "BOOLEAN": "boolean", "DATE": "date", "TIMESTAMP": "timestamp", "TIMESTAMP WITH TIME ZONE": "timestamptz", "DECIMAL(38,0)": "decimal" };
  const RISKS = { leading_zeros: "leading zeros", mixed: "mixed values", defaulted: "defaulted to text", widened: "widened past the sample" };

  function showPreview(preview) {
    const read = [preview.format || "csv"];
    if (preview.compression && preview.compression !== "none") read.push(preview.compression);
    if (preview.delimiter) read.push("delimiter " + JSON.stringify(preview.delimiter));
    byId("preview-summary").textContent = preview.rows + " rows, " + preview.columns.length +
      " columns, " + formatBytes(preview.bytes_read) + " (" + read.join(", ") + ")";
    const rows = byId("preview-columns").tBodies[0];
    rows.replaceChildren();
    for (const column of preview.columns) {
      const tr = element("tr");
      tr.dataset.column = column.name;
      if (column.risk) tr.className = "risky";
      tr.append(element("td", column.name));
      const select = element("select");
      select.dataset.column = column.name;
      select.dataset.proposed = TYPE_OVERRIDE[column.type] || column.type;
      select.setAttribute("aria-label", "type of " + column.name);
      for (const type of TYPES) {
        const option = element("option", type);
        option.value = TYPE_OVERRIDE[type];
        if (type === column.type) option.selected = true;
        select.append(option);
      }
      const typeCell = element("td");
      typeCell.append(select);
      tr.append(typeCell, element("td", column.source), element("td", column.reason || ""));
      tr.append(element("td", column.risk ? "⚠ " + (RISKS[column.risk] || column.risk) : "", "risk"));
      rows.append(tr);
    }
    fillTable(byId("preview-sample"), preview.columns.map((c) => c.name), preview.sample);
    byId("preview").hidden = false;
  }

  function showCommitted(result) {
    byId("preview").hidden = true;
    byId("committed-summary").textContent = result.name + ": version " + result.version + ", " +
      result.row_count + " rows (" + result.ingest.rows + " from this file)";
    const rows = byId("committed-schema").tBodies[0];
    rows.replaceChildren();
    for (const column of result.schema) {
      const tr = element("tr");
      tr.append(element("td", column.name), element("td", column.type));
      rows.append(tr);
    }
    const warnings = byId("committed-warnings");
    warnings.replaceChildren();
    for (const column of result.ingest.defaulted.concat(result.ingest.widened)) {
      warnings.append(element("li", column.name + ": " + column.reason));
    }
    byId("committed-link").href = "/console/datasets/" + encodeURIComponent(result.name);
    byId("committed").hidden = false;
  }

  function fillTable(table, columns, rows) {
    const head = element("tr");
    for (const name of columns) head.append(element("th", name));
    table.tHead.replaceChildren(head);
    const tbody = table.tBodies[0];
    tbody.replaceChildren();
    for (const row of rows) {
      const tr = element("tr");
      for (const value of row) {
        tr.append(value === null ? element("td", "NULL", "null") : element("td", value));
      }
      tbody.append(tr);
    }
  }

  // A random (version 4) UUID; crypto.randomUUID exists only in secure contexts.
  function newJobId() {
    const bytes = crypto.getRandomValues(new Uint8Array(16));
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
    return hex.slice(0, 8) + "-" + hex.slice(8, 12) + "-" + hex.slice(12, 16) + "-" +
      hex.slice(16, 20) + "-" + hex.slice(20);
  }

  // Polls GET /v1/ingest/jobs/{id} while the server converts and commits, so a large file
  // never looks frozen after it was sent: the phase and the rows converted so far.
  function followJob(job, text) {
    let stopped = false;
    let timer = null;
    async function poll() {
      if (stopped) return;
      try {
        const response = await fetch("/v1/ingest/jobs/" + encodeURIComponent(job), { headers: authHeaders({}) });
        if (response.ok && !stopped) {
          const state = await response.json();
          if (state.phase !== "done" && state.phase !== "failed") {
            text.textContent = "100% sent · server: " + state.phase + " · " +
              state.rows_converted.toLocaleString() + " rows converted";
          }
        }
      } catch (ignored) { /* the answer to the upload itself tells what went wrong */ }
      if (!stopped) timer = setTimeout(poll, 250);
    }
    poll();
    return { stop() { stopped = true; if (timer) clearTimeout(timer); } };
  }

  function formatBytes(bytes) {
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let value = bytes, unit = 0;
    while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit += 1; }
    return (unit ? value.toFixed(1) : value) + " " + units[unit];
  }

  // -- SQL: Ctrl/Cmd+Enter, the query in the URL, recent queries, downloads ----------------
  function setupSql() {
    const form = byId("sql-form");
    if (!form) return;
    const text = byId("sql-text");
    text.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
        event.preventDefault();
        form.requestSubmit();
      }
    });
    form.addEventListener("submit", () => {
      const sql = text.value;
      history.replaceState(null, "", "/console/sql?q=" + encodeURIComponent(sql));
      remember(sql);
    });
    for (const button of document.querySelectorAll("button.download")) {
      button.addEventListener("click", () => download(text.value, button.dataset.format));
    }
    showRecent();
  }

  function recent() {
    try { return JSON.parse(localStorage.getItem(RECENT_KEY)) || []; } catch (ignored) { return []; }
  }

  function remember(sql) {
    if (!sql.trim()) return;
    const list = [sql].concat(recent().filter((item) => item !== sql)).slice(0, MAX_RECENT);
    localStorage.setItem(RECENT_KEY, JSON.stringify(list));
    showRecent();
  }

  function showRecent() {
    const list = byId("recent");
    list.replaceChildren();
    for (const sql of recent()) {
      const button = element("button", sql, "recent-query");
      button.type = "button";
      button.addEventListener("click", () => { byId("sql-text").value = sql; });
      const item = element("li");
      item.append(button);
      list.append(item);
    }
  }

  const EXTENSIONS = { csv: "csv", parquet: "parquet", json: "json", arrow: "arrow" };

  async function download(sql, format) {
    const response = await fetch("/v1/sql?format=" + encodeURIComponent(format), {
      method: "POST",
      headers: authHeaders({ "Content-Type": "application/json" }),
      body: JSON.stringify({ sql: sql }),
    });
    if (!response.ok) {
      flash("Download failed: " + errorMessage(await response.text(), response.status));
      return;
    }
    const url = URL.createObjectURL(await response.blob());
    const link = element("a");
    link.href = url;
    link.download = "result." + EXTENSIONS[format];
    body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  }

  setupUpload();
  setupSql();
})();
