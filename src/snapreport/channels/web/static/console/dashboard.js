// The dashboard: GET /api/v1/stats grouped by day, type, team and location, drawn with the
// vendored Chart.js (static/vendor/chartjs). Every chart has its numbers in a table beside it
// and a one-line summary as the canvas's accessible name.

import { format } from "../texts.js";

const DEFAULT_DAYS = 14;
const MAX_DAYS = 366;
const REFRESH_AFTER_CHANGE_MS = 2000;
const TOP_LOCATIONS = 10;
// the per-day charts stack this many types, the rest as one "other"
const TYPE_SERIES = 6;
// measures (created, closed, ...) in greys and teal; types in the colours after them
const MEASURES = ["#0f766e", "#64748b", "#b42318"];
const PALETTE = ["#2563eb", "#d97706", "#db2777", "#7c3aed", "#65a30d", "#0891b2", "#dc2626"];

function isoDay(date) {
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
}

function nextDay(day) {
  const [y, m, d] = day.split("-").map(Number);
  return isoDay(new Date(y, m - 1, d + 1));
}

function sum(groups, field) {
  return groups.reduce((total, group) => total + (group[field] ?? 0), 0);
}

function minutes(value) {
  return value === null || value === undefined ? null : Math.round(value * 10) / 10;
}

export class Dashboard {
  constructor({ api, T, locale }) {
    this.api = api;
    this.T = T;
    this.locale = locale;
    this.form = document.getElementById("range");
    this.status = document.getElementById("dashboard-status");
    this.totals = document.getElementById("totals");
    this.charts = document.getElementById("charts");
    this.template = document.getElementById("chart-template");
    this.drawn = [];
    this.timer = null;
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      const from = this.form.elements.from.value;
      const to = this.form.elements.to.value;
      history.pushState(null, "", `/console/dashboard?from=${from}&to=${to}`);
      this.show();
    });
  }

  /** The period in the address (?from=YYYY-MM-DD&to=YYYY-MM-DD, both days included), or the
   * last two weeks. */
  period() {
    const params = new URLSearchParams(location.search);
    const valid = (v) => /^\d{4}-\d{2}-\d{2}$/.test(v ?? "");
    const today = new Date();
    let to = valid(params.get("to")) ? params.get("to") : isoDay(today);
    let from = params.get("from");
    if (!valid(from)) {
      const start = new Date(today);
      start.setDate(start.getDate() - (DEFAULT_DAYS - 1));
      from = isoDay(start);
    }
    if (from > to) [from, to] = [to, from];
    const days = (Date.parse(to) - Date.parse(from)) / 86400000;
    if (days >= MAX_DAYS) from = isoDay(new Date(Date.parse(to) - (MAX_DAYS - 1) * 86400000));
    return { from, to };
  }

  changed() {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.show(), REFRESH_AFTER_CHANGE_MS);
  }

  async show() {
    const T = this.T;
    const { from, to } = this.period();
    this.form.elements.from.value = from;
    this.form.elements.to.value = to;
    // dates: the service's local days (SNAPREPORT_TIMEZONE); "to" is exclusive
    const range = `from=${from}&to=${nextDay(to)}`;
    const stats = (groupBy, extra = "") => this.api(`/api/v1/stats?${range}&group_by=${groupBy}${extra}`);
    this.status.textContent = T.loading;
    this.charts.setAttribute("aria-busy", "true");
    let days;
    let types;
    let teams;
    let locations;
    try {
      [days, types, teams, locations] = await Promise.all([
        stats("day"),
        stats("alarm_type"),
        stats("team"),
        stats("location", `&limit=${TOP_LOCATIONS}`),
      ]);
    } catch (error) {
      this.status.textContent = error.message;
      this.charts.removeAttribute("aria-busy");
      return;
    }
    // per day, by type: the day grouping of each of the most reported types
    const shownTypes = types.groups.slice(0, TYPE_SERIES).map((g) => g.key);
    let byType;
    try {
      byType = await Promise.all(
        shownTypes.map((type) => stats("day", `&alarm_type=${encodeURIComponent(type)}`)),
      );
    } catch (error) {
      this.status.textContent = error.message;
      this.charts.removeAttribute("aria-busy");
      return;
    }
    const perType = shownTypes.map((type, i) => ({ type, groups: byType[i].groups }));
    this.draw(days.groups, perType, types.groups, teams.groups, locations.groups);
    this.charts.removeAttribute("aria-busy");
    this.status.textContent = days.groups.some((g) => g.created || g.closed || g.open_backlog)
      ? `${T.range}: ${from} – ${to}`
      : T.noData;
  }

  draw(days, perType, types, teams, locations) {
    const T = this.T;
    for (const chart of this.drawn) chart.destroy();
    this.drawn = [];
    this.charts.replaceChildren();
    const last = days[days.length - 1];
    this.totals.replaceChildren(
      ...[
        ["created", T.totalCreated, sum(days, "created")],
        ["closed", T.totalClosed, sum(days, "closed")],
        ["rejected", T.totalRejected, sum(days, "rejected")],
        ["open_backlog", T.totalBacklog, last ? last.open_backlog : 0],
        ["sla_breaches", T.totalBreaches, sum(days, "sla_breaches")],
      ].map(([key, label, value]) => {
        const box = document.createElement("div");
        box.dataset.total = key;
        const dt = document.createElement("dt");
        dt.textContent = label;
        const dd = document.createElement("dd");
        dd.textContent = String(value);
        box.append(dt, dd);
        return box;
      }),
    );
    const dayKeys = days.map((g) => g.key);
    for (const [name, title, field] of [
      ["created-per-day", T.chartCreatedPerDay, "created"],
      ["closed-per-day", T.chartClosedPerDay, "closed"],
    ]) {
      const series = perType.map(({ type, groups }) => ({
        label: type,
        data: groups.map((g) => g[field]),
      }));
      const other = days.map((g, i) => g[field] - series.reduce((n, s) => n + s.data[i], 0));
      if (other.some((n) => n > 0)) series.push({ label: T.otherTypes, data: other });
      series.push({ label: T.totalSeries, data: days.map((g) => g[field]), tableOnly: true });
      this.chart(name, title, "bar", dayKeys, series, { head: T.day, stacked: true, colors: PALETTE });
    }
    this.chart("by-type", T.chartTypes, "bar",
      types.map((g) => g.key), [
        { label: T.createdSeries, data: types.map((g) => g.created) },
        { label: T.closedSeries, data: types.map((g) => g.closed) },
      ], { head: T.alarmType });
    this.chart("backlog", T.chartBacklog, "line", dayKeys, [
      { label: T.backlogSeries, data: days.map((g) => g.open_backlog) },
    ], { head: T.day });
    this.chart("medians", T.chartMedians, "bar", teams.map((g) => g.key ?? T.noTeam), [
      { label: T.acceptSeries, data: teams.map((g) => minutes(g.median_minutes_to_accept)) },
      { label: T.closeSeries, data: teams.map((g) => minutes(g.median_minutes_to_close)) },
    ], { head: T.team });
    this.chart("breaches", T.chartBreaches, "bar", dayKeys, [
      { label: T.breachesSeries, data: days.map((g) => g.sla_breaches) },
    ], { head: T.day });
    // the service answers the most reported places first
    this.chart("locations", T.chartLocations, "bar", locations.map((g) => g.key), [
      { label: T.reportsSeries, data: locations.map((g) => g.created) },
    ], { head: T.fields.location, horizontal: true });
  }

  /** One figure: caption, canvas (named by a summary of its numbers) and the data table. */
  chart(name, title, type, labels, series, { head, horizontal = false, stacked = false, colors = MEASURES }) {
    const T = this.T;
    const figure = this.template.content.firstElementChild.cloneNode(true);
    figure.dataset.chart = name;
    const captionId = `chart-${name}-title`;
    const caption = figure.querySelector("figcaption");
    caption.id = captionId;
    caption.textContent = title;
    const canvas = figure.querySelector("canvas");
    const summary = labels.length
      ? labels
          .map((label, i) => `${label} ${series.map((s) => `${s.label} ${s.data[i] ?? "—"}`).join(" ")}`)
          .join("; ")
      : T.noData;
    canvas.setAttribute("aria-label", format(T.chartSummary, { title, summary }));
    figure.querySelector("summary").textContent = `${T.table} · ${title}`;
    const table = figure.querySelector("table");
    table.setAttribute("aria-labelledby", captionId);
    const headRow = table.querySelector("thead tr");
    for (const text of [head, ...series.map((s) => s.label)]) {
      const th = document.createElement("th");
      th.scope = "col";
      th.textContent = text;
      headRow.append(th);
    }
    const body = table.querySelector("tbody");
    labels.forEach((label, i) => {
      const row = document.createElement("tr");
      const th = document.createElement("th");
      th.scope = "row";
      th.textContent = label;
      row.append(th);
      for (const s of series) {
        const td = document.createElement("td");
        td.textContent = s.data[i] === null || s.data[i] === undefined ? "—" : String(s.data[i]);
        row.append(td);
      }
      body.append(row);
    });
    this.charts.append(figure);
    if (!window.Chart) return; // the numbers are still in the table
    const chart = new window.Chart(canvas, {
      type,
      data: {
        labels,
        datasets: series.filter((s) => !s.tableOnly).map((s, i) => ({
          label: s.label,
          data: s.data,
          backgroundColor: colors[i % colors.length],
          borderColor: colors[i % colors.length],
          tension: 0.2,
        })),
      },
      options: {
        animation: false,
        responsive: true,
        maintainAspectRatio: false,
        indexAxis: horizontal ? "y" : "x",
        plugins: { legend: { position: "bottom" } },
        scales: {
          [horizontal ? "y" : "x"]: { stacked },
          [horizontal ? "x" : "y"]: { stacked, beginAtZero: true, ticks: { precision: 0 } },
        },
      },
    });
    this.drawn.push(chart);
  }
}
