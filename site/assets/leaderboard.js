/* Leaderboard tables and charts. Plain JavaScript and inline SVG: nothing is loaded from
   another host. Data comes from <script type="application/json" class="lb-data"> blocks. */
(function () {
  "use strict";
  var SVG = "http://www.w3.org/2000/svg";
  var COLORS = ["#3f51b5", "#e91e63", "#009688", "#ff9800", "#9c27b0", "#795548",
                "#4caf50", "#2196f3", "#f44336", "#607d8b"];

  function el(tag, attrs, parent, text) {
    var node = document.createElementNS(SVG, tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text !== undefined) node.textContent = text;
    if (parent) parent.appendChild(node);
    return node;
  }
  function html(tag, cls, parent, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    if (parent) parent.appendChild(node);
    return node;
  }
  function fmt(value, metric) {
    if (value === null || value === undefined) return "\u2013";
    return (metric.percent ? 100 * value : value).toFixed(metric.decimals);
  }

  /* One tooltip for the page: any element with data-tip shows it on hover. */
  var tip = null;
  function tooltip() {
    if (tip) return tip;
    tip = html("div", "lb-tooltip", document.body);
    tip.hidden = true;
    document.addEventListener("mousemove", function (event) {
      var target = event.target.closest ? event.target.closest("[data-tip]") : null;
      if (!target) { tip.hidden = true; return; }
      tip.textContent = target.getAttribute("data-tip");
      tip.hidden = false;
      tip.style.left = (event.pageX + 12) + "px";
      tip.style.top = (event.pageY + 12) + "px";
    });
    return tip;
  }

  function chartFrame(parent, title, width, height, margin) {
    var box = html("figure", "lb-chart", parent);
    html("figcaption", "", box, title);
    var svg = el("svg", {viewBox: "0 0 " + width + " " + height, role: "img",
                         "aria-label": title}, box);
    svg.style.maxWidth = width + "px";  // never scale a chart up past its natural size
    var plot = {svg: svg, x0: margin.left, x1: width - margin.right,
                y0: height - margin.bottom, y1: margin.top};
    return plot;
  }
  function axes(plot, xTicks, yTicks, xLabel, yLabel) {
    el("line", {x1: plot.x0, y1: plot.y0, x2: plot.x1, y2: plot.y0, class: "lb-axis"}, plot.svg);
    el("line", {x1: plot.x0, y1: plot.y0, x2: plot.x0, y2: plot.y1, class: "lb-axis"}, plot.svg);
    yTicks.forEach(function (t) {
      el("line", {x1: plot.x0, y1: t.pos, x2: plot.x1, y2: t.pos, class: "lb-grid"}, plot.svg);
      el("text", {x: plot.x0 - 6, y: t.pos + 4, "text-anchor": "end", class: "lb-tick"},
         plot.svg, t.label);
    });
    xTicks.forEach(function (t) {
      el("text", {x: t.pos, y: plot.y0 + 16, "text-anchor": "middle", class: "lb-tick"},
         plot.svg, t.label);
    });
    if (xLabel) el("text", {x: (plot.x0 + plot.x1) / 2, y: plot.y0 + 34, "text-anchor": "middle",
                            class: "lb-label"}, plot.svg, xLabel);
    if (yLabel) el("text", {x: 14, y: (plot.y0 + plot.y1) / 2, "text-anchor": "middle",
                            transform: "rotate(-90 14 " + (plot.y0 + plot.y1) / 2 + ")",
                            class: "lb-label"}, plot.svg, yLabel);
  }
  function legend(parent, names) {
    var list = html("div", "lb-legend", parent);
    names.forEach(function (name, i) {
      var item = html("span", "", list);
      html("i", "", item).style.background = COLORS[i % COLORS.length];
      item.appendChild(document.createTextNode(name));
    });
  }

  /* Lines: series = [{name, x: [...], y: [...]}], x and y in [0, 1]. */
  function lineChart(parent, title, series, xLabel, yLabel, metric) {
    var plot = chartFrame(parent, title, 640, 320, {left: 56, right: 16, top: 12, bottom: 44});
    var sx = function (v) { return plot.x0 + v * (plot.x1 - plot.x0); };
    var sy = function (v) { return plot.y0 - v * (plot.y0 - plot.y1); };
    var ticks = [0, 0.25, 0.5, 0.75, 1];
    axes(plot, ticks.map(function (t) { return {pos: sx(t), label: t.toFixed(2)}; }),
         ticks.map(function (t) { return {pos: sy(t), label: fmt(t, metric)}; }), xLabel, yLabel);
    series.forEach(function (s, i) {
      var color = COLORS[i % COLORS.length];
      var points = s.x.map(function (x, j) { return s.y[j] === null ? null : [sx(x), sy(s.y[j])]; })
        .filter(function (p) { return p; });
      el("polyline", {points: points.map(function (p) { return p.join(","); }).join(" "),
                      fill: "none", stroke: color, "stroke-width": 2, class: "lb-line"}, plot.svg);
      var step = Math.max(1, Math.floor(s.x.length / 40));
      s.x.forEach(function (x, j) {
        if (s.y[j] === null || (j % step && j !== s.x.length - 1)) return;
        el("circle", {cx: sx(x), cy: sy(s.y[j]), r: 4, fill: color, class: "lb-point",
                      "data-tip": s.name + ": " + xLabel + " " + x.toFixed(3) + ", " + yLabel +
                      " " + fmt(s.y[j], metric)}, plot.svg);
      });
    });
    legend(plot.svg.parentNode, series.map(function (s) { return s.name; }));
  }

  /* Grouped bars: groups on x, one bar per series. */
  function barChart(parent, title, groups, series, metric) {
    var plot = chartFrame(parent, title, 760, 320, {left: 56, right: 16, top: 12, bottom: 64});
    var max = 1;
    var sy = function (v) { return plot.y0 - v / max * (plot.y0 - plot.y1); };
    var band = (plot.x1 - plot.x0) / groups.length;
    var width = band * 0.8 / Math.max(1, series.length);
    axes(plot, [], [0, 0.25, 0.5, 0.75, 1].map(function (t) {
      return {pos: sy(t), label: fmt(t, metric)}; }), "", metric.name);
    groups.forEach(function (g, gi) {
      el("text", {x: plot.x0 + band * (gi + 0.5), y: plot.y0 + 14, "text-anchor": "end",
                  transform: "rotate(-25 " + (plot.x0 + band * (gi + 0.5)) + " " + (plot.y0 + 14) + ")",
                  class: "lb-tick"}, plot.svg, g.replace(/_/g, " "));
      series.forEach(function (s, si) {
        var v = s.values[gi];
        if (v === null || v === undefined) return;
        el("rect", {x: plot.x0 + band * gi + band * 0.1 + si * width, y: sy(v), width: width - 1,
                    height: plot.y0 - sy(v), fill: COLORS[si % COLORS.length], class: "lb-bar",
                    "data-tip": s.name + " \u2013 " + g + ": " + fmt(v, metric)}, plot.svg);
      });
    });
    legend(plot.svg.parentNode, series.map(function (s) { return s.name; }));
  }

  /* Heat map: rows x columns, colour by value. */
  function heatMap(parent, title, rows, columns, values, metric) {
    var cell = 28, left = 220, top = 90;
    var plot = chartFrame(parent, title, left + cell * columns.length + 10,
                          top + cell * rows.length + 10, {left: 0, right: 0, top: 0, bottom: 0});
    var finite = [].concat.apply([], values).filter(function (v) { return v !== null && v !== undefined; });
    var lo = Math.min.apply(null, finite.concat([1])), hi = Math.max.apply(null, finite.concat([0]));
    columns.forEach(function (c, ci) {
      el("text", {x: left + cell * (ci + 0.5), y: top - 6, transform: "rotate(-45 " +
                  (left + cell * (ci + 0.5)) + " " + (top - 6) + ")", class: "lb-tick"}, plot.svg, c);
    });
    rows.forEach(function (r, ri) {
      el("text", {x: left - 6, y: top + cell * (ri + 0.65), "text-anchor": "end", class: "lb-tick"},
         plot.svg, r.length > 32 ? r.slice(0, 31) + "\u2026" : r);
      columns.forEach(function (c, ci) {
        var v = values[ri][ci];
        var t = (v === null || v === undefined || hi === lo) ? null : (v - lo) / (hi - lo);
        el("rect", {x: left + cell * ci, y: top + cell * ri, width: cell - 2, height: cell - 2,
                    fill: t === null ? "#eee" : "hsl(" + (10 + 120 * t) + ",70%," + (75 - 30 * t) + "%)",
                    class: "lb-cell", "data-tip": r + " \u2013 " + c + ": " + fmt(v, metric)}, plot.svg);
      });
    });
  }

  /* ---------------------------------------------------------------- board pages */
  function board(root) {
    var data = JSON.parse(root.querySelector(".lb-data").textContent);
    var metrics = {};
    data.metrics.forEach(function (m) { metrics[m.name] = m; });
    var state = {slice: data.headline, key: "rank", dir: 1};
    var controls = {
      slice: root.querySelector(".lb-slice"), version: root.querySelector(".lb-version"),
      recomputed: root.querySelector(".lb-recomputed"), baselines: root.querySelector(".lb-baselines"),
      modality: root.querySelector(".lb-modality"), shots: root.querySelector(".lb-shots")
    };
    var table = root.querySelector(".lb-table");
    var headers = table.querySelectorAll("th[data-key]");

    function value(row, key) {
      if (metrics[key]) {
        var v = (row.values[state.slice] || {})[key];
        return v === undefined ? null : v;
      }
      return row[key] === undefined ? null : row[key];
    }
    function visible() {
      return data.rows.filter(function (r) {
        if (controls.recomputed.checked && r.kind !== "recomputed") return false;
        if (!controls.baselines.checked && r.baseline) return false;
        if (controls.modality && controls.modality.value && r.modality !== controls.modality.value) return false;
        if (controls.shots && controls.shots.value && r.shots !== controls.shots.value) return false;
        return true;
      });
    }
    function sorted(rows) {
      return rows.slice().sort(function (a, b) {
        var va = value(a, state.key), vb = value(b, state.key);
        if (va === null && vb === null) return 0;
        if (va === null) return 1;
        if (vb === null) return -1;
        var higherFirst = metrics[state.key] ? -1 : 1;  // metrics sort best first
        return (va < vb ? -1 : va > vb ? 1 : 0) * higherFirst * state.dir;
      });
    }
    function render() {
      var rows = sorted(visible());
      var best = {};
      data.metrics.forEach(function (m) {
        rows.forEach(function (r) {
          var v = value(r, m.name);
          if (v !== null && (best[m.name] === undefined || v > best[m.name])) best[m.name] = v;
        });
      });
      var body = table.querySelector("tbody");
      body.textContent = "";
      rows.forEach(function (r) {
        var tr = html("tr", r.kind, body);
        html("td", "", tr, r.rank === null ? "\u2013" : String(r.rank));
        var name = html("td", "", tr);
        var link = html("a", "", name, r.method);
        link.href = r.url;
        if (r.kind === "reported") {
          name.appendChild(document.createTextNode(" "));
          html("span", "lb-badge reported", name, "reported in paper").title = r.citation || "";
        }
        if (r.reproduce) {
          name.appendChild(document.createTextNode(" "));
          var again = html("a", "lb-badge reproducible", name, "reproduce this row");
          again.href = r.url + "#reproduce-this-row";
          again.title = "a bundled baseline reproduces this row: " + r.reproduce;
        }
        if (r.baseline) { name.appendChild(document.createTextNode(" ")); html("span", "lb-badge baseline", name, "baseline"); }
        if (r.flags.indexOf("upper-bound") >= 0) {
          html("span", "lb-badge flag", name, "\u2020").title = "training data may overlap with the benchmark";
        }
        if (r.group) html("div", "lb-group", name, r.group);
        if (data.settings) { html("td", "", tr, r.modality || "\u2013"); html("td", "", tr, r.shots || "\u2013"); }
        data.metrics.forEach(function (m) {
          var v = value(r, m.name);
          html("td", "num" + (v !== null && v === best[m.name] ? " lb-best" : ""), tr, fmt(v, m));
        });
        html("td", "", tr, r.date || "\u2013");
        var links = html("td", "", tr);
        if (r.paper) { var p = html("a", "", links, "paper"); p.href = r.paper; }
        if (r.code) { links.appendChild(document.createTextNode(" ")); var c = html("a", "", links, "code"); c.href = r.code; }
      });
      root.querySelector(".lb-empty").hidden = rows.length > 0;
      headers.forEach(function (th) {
        th.classList.toggle("lb-sorted", th.getAttribute("data-key") === state.key);
        th.setAttribute("aria-sort", th.getAttribute("data-key") === state.key ?
          (state.dir > 0 ? "descending" : "ascending") : "none");
      });
      charts(rows);
    }
    function charts(rows) {
      var box = root.querySelector(".lb-charts");
      box.textContent = "";
      var primary = metrics[data.primary];
      var top = rows.filter(function (r) { return r.values[data.headline]; }).slice(0, 8);
      if (data.compare && top.length) {
        var series = top.map(function (r) {
          return {name: r.method, values: data.compare.map(function (s) { return (r.values[s] || {})[data.primary]; })};
        });
        if (data.compareStyle === "heatmap") {
          heatMap(box, data.primary + " per category", series.map(function (s) { return s.name; }),
                  data.compare, series.map(function (s) { return s.values; }), primary);
        } else {
          barChart(box, data.primary + " per " + (data.compareName || "slice"), data.compare, series, primary);
        }
      }
      var curves = data.curves.filter(function (c) { return c.curves.kind === "t-mAP"; });
      if (curves.length) {
        ["mAP@1", "mAP@5"].forEach(function (k) {
          lineChart(box, "t-mAP: " + k + " at each OOD threshold (" + state.slice + ")",
            curves.map(function (c) {
              var s = c.curves.slices[state.slice] || {};
              return {name: c.method, x: c.curves.fpr, y: s[k] || []};
            }), "FPR", k, metrics["mAP@1"] || primary);
        });
      }
    }
    headers.forEach(function (th) {
      th.tabIndex = 0;
      var activate = function () {
        var key = th.getAttribute("data-key");
        state.dir = state.key === key ? -state.dir : 1;
        state.key = key;
        render();
      };
      th.addEventListener("click", activate);
      th.addEventListener("keydown", function (e) { if (e.key === "Enter") activate(); });
    });
    controls.slice.addEventListener("change", function () { state.slice = controls.slice.value; render(); });
    [controls.recomputed, controls.baselines, controls.modality, controls.shots].forEach(function (c) {
      if (c) c.addEventListener("change", render);
    });
    controls.version.addEventListener("change", function () { window.location.href = controls.version.value; });
    render();
  }

  /* ---------------------------------------------------------------- entry pages */
  function entry(root) {
    var box = root.querySelector(".lb-charts");
    fetch(root.getAttribute("data-curves"))
      .then(function (response) {
        if (!response.ok) throw new Error("curves: HTTP " + response.status);
        return response.json();
      })
      .then(function (data) { box.textContent = ""; entryCharts(box, data); })
      .catch(function () { box.textContent = "The curves could not be loaded."; });
  }

  function entryCharts(box, data) {
    var c = data.curves;
    if (!c) return;
    var metric = data.metrics[0];
    if (c.kind === "t-mAP") {
      ["mAP@1", "mAP@5"].forEach(function (k) {
        var names = ["overall", "easy", "medium", "hard"].filter(function (s) { return c.slices[s]; });
        lineChart(box, k + " at each OOD threshold (t-mAP curve)", names.map(function (s) {
          return {name: s, x: c.fpr, y: c.slices[s][k]};
        }), "FPR", k, metric);
      });
    } else {
      var fraction = {percent: false, decimals: 3};
      var roc = Object.keys(c.roc);
      if (roc.length) lineChart(box, "ROC per category (pixels)", roc.map(function (name) {
        return {name: name, x: c.roc[name].fpr, y: c.roc[name].tpr}; }), "FPR", "TPR", fraction);
      var pro = Object.keys(c.pro);
      if (pro.length) lineChart(box, "PRO per category", pro.map(function (name) {
        return {name: name, x: c.pro[name].fpr, y: c.pro[name].pro}; }), "FPR", "PRO", fraction);
    }
  }

  function start() {
    tooltip();
    document.querySelectorAll(".lb-board").forEach(board);
    document.querySelectorAll(".lb-entry").forEach(entry);
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
