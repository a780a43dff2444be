// The live page: polls "activity?after=N" (next to the page, on the emulator or the relay) and
// shows what arrived. Payloads come from games and from anyone who can reach the server, so every
// piece of data goes into the page as text (textContent, SVG attributes): never as markup.
"use strict";

(function () {
  const POLL_MS = 1000; // between polls when the page has caught up
  const RETRY_MS = 2000; // after a failed poll
  const MAX_ROWS = 2000; // rows kept in the table: the oldest go first
  const SVG = "http://www.w3.org/2000/svg";

  const state = {
    after: 0, // the number of the last entry read
    rows: [], // {entry, tr}, newest first
    selected: null,
    statuses: new Set(),
  };

  const $ = (id) => document.getElementById(id);

  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function svgElement(tag, attributes, text) {
    const node = document.createElementNS(SVG, tag);
    for (const [name, value] of Object.entries(attributes || {})) node.setAttribute(name, String(value));
    if (text !== undefined) node.textContent = String(text);
    return node;
  }

  // -- formatting ---------------------------------------------------------------------------------

  function clock(seconds) {
    const when = new Date(seconds * 1000);
    const pad = (n, width) => String(n).padStart(width || 2, "0");
    return `${pad(when.getHours())}:${pad(when.getMinutes())}:${pad(when.getSeconds())}.${pad(when.getMilliseconds(), 3)}`;
  }

  function duration(seconds) {
    if (seconds < 60) return `${seconds} s`;
    const minutes = Math.floor(seconds / 60);
    if (minutes < 60) return `${minutes} min ${seconds % 60} s`;
    return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
  }

  function count(n, one, many) {
    return `${n.toLocaleString()} ${n === 1 ? one : many}`;
  }

  // What the row shows of a payload: the event's name or the session's id, then a detail under it.
  function describeIds(ids) {
    if (ids.eventName !== undefined) return [String(ids.eventName), ids.eventId ? `id ${String(ids.eventId).slice(0, 12)}…` : ""];
    const sessions = ids.sessionIds || [];
    const who = (ids.userIds || []).join(", ");
    const seconds = ids.durationSeconds === undefined ? "" : duration(ids.durationSeconds);
    if (sessions.length === 1) return [String(sessions[0]), [who, seconds].filter(Boolean).join(" · ")];
    if (sessions.length > 1) return [`${sessions.length} sessions`, [who, seconds].filter(Boolean).join(" · ")];
    return ["", ""];
  }

  function routeOf(entry) {
    return [entry.method, entry.route].filter(Boolean).join(" "); // a relay's forwarding has no method
  }

  function serviceOf(entry) {
    return entry.service === "playcamp" || entry.service === "playfab" ? entry.service : "other";
  }

  // -- filters ------------------------------------------------------------------------------------

  function filters() {
    return {
      service: $("filter-service").value,
      status: $("filter-status").value,
      user: $("filter-user").value.trim().toLowerCase(),
      event: $("filter-event").value.trim().toLowerCase(),
    };
  }

  function matches(entry, wanted) {
    if (wanted.service && serviceOf(entry) !== wanted.service) return false;
    if (wanted.status.startsWith("outcome:")) {
      const outcome = wanted.status.slice(8);
      const rejected = entry.outcome === "rejected" || entry.outcome === "dropped" || entry.outcome === "upstream error";
      if (outcome === "rejected" ? !rejected : entry.outcome !== outcome) return false;
    } else if (wanted.status.startsWith("code:") && String(entry.status) !== wanted.status.slice(5)) {
      return false;
    }
    const ids = entry.ids || {};
    if (wanted.user && !(ids.userIds || []).some((user) => String(user).toLowerCase().includes(wanted.user))) return false;
    if (wanted.event && !String(ids.eventName === undefined ? "" : ids.eventName).toLowerCase().includes(wanted.event)) return false;
    return true;
  }

  function applyFilters() {
    const wanted = filters();
    let shown = 0;
    for (const row of state.rows) {
      row.tr.hidden = !matches(row.entry, wanted);
      if (!row.tr.hidden) shown += 1;
    }
    $("shown").textContent = `showing ${shown.toLocaleString()} of ${count(state.rows.length, "request", "requests")}`;
    $("empty").hidden = state.rows.length > 0;
  }

  function noteStatus(status) {
    const key = status === null ? "none" : String(status);
    if (state.statuses.has(key)) return;
    state.statuses.add(key);
    const option = element("option", "", status === null ? "no answer" : `HTTP ${status}`);
    option.value = `code:${key === "none" ? "null" : key}`;
    const select = $("filter-status");
    const codes = Array.from(select.options).filter((o) => o.value.startsWith("code:"));
    const before = codes.find((o) => o.value > option.value);
    select.insertBefore(option, before || null);
  }

  // -- the table ----------------------------------------------------------------------------------

  function rowFor(entry) {
    const tr = element("tr", "fresh");
    tr.tabIndex = 0;
    tr.dataset.seq = String(entry.seq);
    tr.dataset.outcome = entry.outcome;
    tr.appendChild(element("td", "time", clock(entry.time)));
    const service = element("td", "where");
    service.appendChild(element("span", `service ${serviceOf(entry)}`, entry.service || "—"));
    tr.appendChild(service);
    tr.appendChild(element("td", "route", routeOf(entry)));
    const bad = entry.status === null || entry.status >= 400 || entry.outcome === "rejected";
    tr.appendChild(element("td", bad ? "status bad" : "status", entry.status === null ? "—" : entry.status));
    const outcome = element("td", `outcome ${entry.outcome.replace(" ", "-")}`, entry.outcome);
    if (entry.reason) outcome.appendChild(element("span", "reason", entry.reason));
    tr.appendChild(outcome);
    const [what, detail] = describeIds(entry.ids || {});
    const ids = element("td", "ids", what);
    if (detail) ids.appendChild(element("span", "secondary", detail));
    tr.appendChild(ids);
    tr.addEventListener("animationend", () => tr.classList.remove("fresh"));
    tr.addEventListener("click", () => select(entry, tr));
    tr.addEventListener("keydown", (event) => {
      if (event.key === "Enter" || event.key === " ") {
        event.preventDefault();
        select(entry, tr);
      }
    });
    return tr;
  }

  function add(entries) {
    const body = $("rows");
    const wanted = filters();
    for (const entry of entries) {
      const tr = rowFor(entry);
      tr.hidden = !matches(entry, wanted);
      body.insertBefore(tr, body.firstChild);
      state.rows.unshift({ entry, tr });
      noteStatus(entry.status);
    }
    while (state.rows.length > MAX_ROWS) {
      const old = state.rows.pop();
      old.tr.remove();
      if (state.selected === old.entry) closeDetail();
    }
    applyFilters();
  }

  function clearRows() {
    state.rows = [];
    $("rows").textContent = "";
    closeDetail();
  }

  // -- the selected request -----------------------------------------------------------------------

  function select(entry, tr) {
    for (const row of state.rows) row.tr.classList.toggle("selected", row.tr === tr);
    state.selected = entry;
    $("detail").hidden = false;
    $("detail-title").textContent = `#${entry.seq} ${routeOf(entry)}`;
    const fields = $("detail-fields");
    fields.textContent = "";
    const ids = entry.ids || {};
    const shown = [
      ["time", new Date(entry.time * 1000).toLocaleString()],
      ["service", entry.service || "—"],
      ["status", entry.status === null ? "no answer" : entry.status],
      ["outcome", entry.outcome],
      ["reason", entry.reason],
      ["sessions", (ids.sessionIds || []).join(", ")],
      ["users", (ids.userIds || []).join(", ")],
      ["duration", ids.durationSeconds === undefined ? "" : duration(ids.durationSeconds)],
      ["event", ids.eventName],
      ["event id", ids.eventId],
    ];
    for (const [name, value] of shown) {
      if (value === undefined || value === null || value === "") continue;
      fields.appendChild(element("dt", "", name));
      fields.appendChild(element("dd", "", value));
    }
    const note = $("detail-note");
    note.hidden = !entry.payloadNote;
    note.textContent = entry.payloadNote || "";
    const payload = entry.payload;
    $("detail-payload").textContent =
      payload === null || payload === undefined ? "(none)" : typeof payload === "string" ? payload : JSON.stringify(payload, null, 2);
  }

  function closeDetail() {
    state.selected = null;
    $("detail").hidden = true;
    for (const row of state.rows) row.tr.classList.remove("selected");
  }

  // -- the dashboard ------------------------------------------------------------------------------

  function showSummary(data) {
    const summary = data.summary;
    const minutes = summary.perMinute;
    const now = minutes[minutes.length - 1] || { sessions: 0, events: 0 };
    $("total-sessions").textContent = summary.sessions.toLocaleString();
    $("minute-sessions").textContent = `${now.sessions.toLocaleString()} this minute`;
    $("total-events").textContent = summary.events.toLocaleString();
    $("minute-events").textContent = `${now.events.toLocaleString()} this minute`;
    $("total-playtime").textContent = duration(summary.playtimeSeconds);
    $("mean-session").textContent = summary.sessions
      ? `${duration(Math.round(summary.playtimeSeconds / summary.sessions))} a session on average`
      : "no session yet";
    const outcomes = data.outcomes || {};
    const total = Object.values(outcomes).reduce((sum, n) => sum + n, 0);
    const rejected = (outcomes.rejected || 0) + (outcomes.dropped || 0);
    $("total-requests").textContent = total.toLocaleString();
    const parts = [rejected ? `${rejected.toLocaleString()} rejected` : "none rejected"];
    if (outcomes.forwarded) parts.push(`${outcomes.forwarded.toLocaleString()} forwarded`);
    if (outcomes["upstream error"]) parts.push(`${outcomes["upstream error"].toLocaleString()} upstream errors`);
    $("request-outcomes").textContent = parts.join(" · ");
    drawMinutes(minutes);
    drawBars($("chart-durations"), summary.durations.map((d) => [d.label, d.count]), "duration");
    drawNames($("chart-events"), summary.topEvents);
  }

  function drawMinutes(minutes) {
    const chart = $("chart-minutes");
    chart.textContent = "";
    const width = 600, height = 150, top = 8;
    const peak = Math.max(1, ...minutes.map((m) => Math.max(m.sessions, m.events)));
    const slot = width / Math.max(minutes.length, 1);
    for (const fraction of [0.5, 1]) {
      const y = height - (height - top) * fraction;
      chart.appendChild(svgElement("line", { class: "gridline", x1: 0, x2: width, y1: y, y2: y }));
    }
    minutes.forEach((minute, index) => {
      const when = new Date(minute.minute * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
      [["sessions", 0], ["events", 1]].forEach(([name, offset]) => {
        const value = minute[name];
        const barHeight = ((height - top) * value) / peak;
        const bar = svgElement("rect", {
          class: `bar ${name}`,
          x: index * slot + slot * 0.12 + offset * slot * 0.38,
          y: height - barHeight,
          width: slot * 0.36,
          height: barHeight,
          rx: 1.5,
        });
        bar.appendChild(svgElement("title", {}, `${when}: ${value} ${name}`));
        chart.appendChild(bar);
      });
    });
    $("minutes-peak").textContent = `peak ${peak.toLocaleString()} a minute`;
  }

  function drawBars(chart, pairs, className) {
    chart.textContent = "";
    const width = 350, height = 150, bottom = 20, top = 14;
    const peak = Math.max(1, ...pairs.map((pair) => pair[1]));
    const slot = width / Math.max(pairs.length, 1);
    pairs.forEach(([label, value], index) => {
      const barHeight = ((height - bottom - top) * value) / peak;
      const x = index * slot + slot * 0.15;
      const bar = svgElement("rect", { class: `bar ${className}`, x, y: height - bottom - barHeight, width: slot * 0.7, height: barHeight, rx: 2 });
      bar.appendChild(svgElement("title", {}, `${label}: ${value}`));
      chart.appendChild(bar);
      chart.appendChild(svgElement("text", { x: x + slot * 0.35, y: height - 5, "text-anchor": "middle" }, label));
      if (value) {
        chart.appendChild(svgElement("text", { class: "label", x: x + slot * 0.35, y: height - bottom - barHeight - 3, "text-anchor": "middle" }, value));
      }
    });
  }

  function drawNames(chart, names) {
    chart.textContent = "";
    const width = 350, rowHeight = 15, labelWidth = 130;
    const shown = names.slice(0, 9);
    if (!shown.length) {
      chart.appendChild(svgElement("text", { x: width / 2, y: 75, "text-anchor": "middle" }, "no event yet"));
      return;
    }
    const peak = Math.max(1, ...shown.map((n) => n.count));
    shown.forEach((name, index) => {
      const y = index * (rowHeight + 1.5) + 2;
      const label = String(name.name);
      chart.appendChild(
        svgElement("text", { class: "label", x: labelWidth - 6, y: y + 11, "text-anchor": "end" }, label.length > 20 ? `${label.slice(0, 19)}…` : label),
      );
      const barWidth = ((width - labelWidth - 40) * name.count) / peak;
      const bar = svgElement("rect", { class: "bar name", x: labelWidth, y, width: Math.max(barWidth, 1), height: rowHeight - 2, rx: 2 });
      bar.appendChild(svgElement("title", {}, `${label}: ${name.count}`));
      chart.appendChild(bar);
      chart.appendChild(svgElement("text", { x: labelWidth + barWidth + 5, y: y + 11 }, name.count));
    });
  }

  // -- polling ------------------------------------------------------------------------------------

  function connection(live, text) {
    const node = $("connection");
    node.dataset.state = live ? "live" : "down";
    node.textContent = text;
  }

  async function poll() {
    let wait = POLL_MS;
    try {
      const response = await fetch(`activity?after=${state.after}`, { cache: "no-store", credentials: "same-origin" });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const data = await response.json();
      if (data.latest < state.after) {
        // The server started again, numbering from 1: start over with it.
        state.after = 0;
        clearRows();
        wait = 0;
      } else {
        document.body.classList.toggle("relay", data.server === "relay");
        $("server-name").textContent = `${data.server} · live`;
        document.title = `playhooks ${data.server} · live`;
        if (data.missed) {
          const missed = $("missed");
          missed.hidden = false;
          missed.textContent = `${count(data.missed, "request was", "requests were")} forgotten by the server before this page could show them.`;
        }
        if (data.entries.length) add(data.entries);
        state.after = data.last;
        showSummary(data);
        if (data.latest > state.after) wait = 0; // more wait: ask again at once
      }
      connection(true, `live · ${new Date().toLocaleTimeString()}`);
    } catch (error) {
      connection(false, `disconnected (${error.message}); retrying`);
      wait = RETRY_MS;
    }
    window.setTimeout(poll, wait);
  }

  function start() {
    for (const id of ["filter-service", "filter-status"]) $(id).addEventListener("change", applyFilters);
    for (const id of ["filter-user", "filter-event"]) $(id).addEventListener("input", applyFilters);
    $("filters").addEventListener("reset", () => window.setTimeout(applyFilters, 0));
    $("filters").addEventListener("submit", (event) => event.preventDefault());
    $("detail-close").addEventListener("click", closeDetail);
    applyFilters();
    poll();
  }

  document.addEventListener("DOMContentLoaded", start);
})();
