/* Leaderboard tables and charts. Plain JavaScript and inline SVG: nothing is loaded from
   another host. Data comes from <script type="application/json" class="lb-data"> blocks.

   A board's view (slice, sort, filters, variants) lives in the page's query string, e.g.
   boards/forb-v1.html?slice=hard&sort=mAP@5&variants=1, so any view can be linked. The #
   column is always the rank by the board's primary metric on the chosen slice among the
   methods shown (a method's main setting with a value; ties share a rank, 1, 1, 3); sorting by
   another column reorders the rows and keeps that rank. Variants (ablations, other backbones,
   one modality) are listed under their method and never ranked. */
(function () {
  "use strict";
  var SVG = "http://www.w3.org/2000/svg";
  var COLORS = ["#3f51b5", "#e91e63", "#009688", "#ff9800", "#9c27b0", "#795548",
                "#4caf50", "#2196f3", "#f44336", "#607d8b"];
  /* Viridis, sampled: perceptually even and readable by colour-blind readers. */
  var SCALE = ["#440154", "#482878", "#3e4989", "#31688e", "#26828e", "#1f9e89",
               "#35b779", "#6ece58", "#b5de2b", "#fde725"];
  var DASH = "\u2013";

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
  function missing(value) { return value === null || value === undefined; }
  function fmt(value, metric) {
    if (missing(value)) return DASH;
    return (metric.percent ? 100 * value : value).toFixed(metric.decimals);
  }
  function truncate(text, length) {
    return text.length > length ? text.slice(0, length - 1) + "\u2026" : text;
  }

  /* One tooltip for the page: any element with data-tip shows it on hover. Fixed position,
     kept inside the window, so it never widens the page. */
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
      var x = Math.min(event.clientX + 12, window.innerWidth - tip.offsetWidth - 8);
      var y = event.clientY + 12;
      if (y + tip.offsetHeight > window.innerHeight - 4) y = event.clientY - tip.offsetHeight - 8;
      tip.style.left = Math.max(4, x) + "px";
      tip.style.top = Math.max(4, y) + "px";
    });
    return tip;
  }

  function chartFrame(parent, title, width, height, margin, natural) {
    var box = html("figure", "lb-chart" + (natural ? " lb-chart-natural" : ""), parent);
    html("figcaption", "", box, title);
    var holder = natural ? html("div", "lb-chart-scroll", box) : box;
    var svg = el("svg", {viewBox: "0 0 " + width + " " + height, role: "img",
                         "aria-label": title}, holder);
    if (natural) { svg.setAttribute("width", width); svg.setAttribute("height", height); }
    else svg.style.maxWidth = width + "px";  // never scale a chart up past its natural size
    return {svg: svg, box: box, x0: margin.left, x1: width - margin.right,
            y0: height - margin.bottom, y1: margin.top};
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
      var points = s.x.map(function (x, j) { return missing(s.y[j]) ? null : [sx(x), sy(s.y[j])]; })
        .filter(function (p) { return p; });
      el("polyline", {points: points.map(function (p) { return p.join(","); }).join(" "),
                      fill: "none", stroke: color, "stroke-width": 2, class: "lb-line"}, plot.svg);
      var step = Math.max(1, Math.floor(s.x.length / 40));
      s.x.forEach(function (x, j) {
        if (missing(s.y[j]) || (j % step && j !== s.x.length - 1)) return;
        el("circle", {cx: sx(x), cy: sy(s.y[j]), r: 4, fill: color, class: "lb-point",
                      "data-tip": s.name + ": " + xLabel + " " + x.toFixed(3) + ", " + yLabel +
                      " " + fmt(s.y[j], metric)}, plot.svg);
      });
    });
    legend(plot.box, series.map(function (s) { return s.name; }));
  }

  /* Grouped bars: groups on x, one bar per series. */
  function barChart(parent, title, groups, series, metric) {
    var plot = chartFrame(parent, title, 760, 320, {left: 56, right: 16, top: 12, bottom: 64});
    var sy = function (v) { return plot.y0 - v * (plot.y0 - plot.y1); };
    var band = (plot.x1 - plot.x0) / groups.length;
    var width = band * 0.8 / Math.max(1, series.length);
    axes(plot, [], [0, 0.25, 0.5, 0.75, 1].map(function (t) {
      return {pos: sy(t), label: fmt(t, metric)}; }), "", metric.name);
    groups.forEach(function (g, gi) {
      var x = plot.x0 + band * (gi + 0.5);
      el("text", {x: x, y: plot.y0 + 14, "text-anchor": "end",
                  transform: "rotate(-25 " + x + " " + (plot.y0 + 14) + ")", class: "lb-tick"},
         plot.svg, g.replace(/_/g, " "));
      series.forEach(function (s, si) {
        var v = s.values[gi];
        if (missing(v)) return;
        el("rect", {x: plot.x0 + band * gi + band * 0.1 + si * width, y: sy(v), width: Math.max(1, width - 1),
                    height: plot.y0 - sy(v), fill: COLORS[si % COLORS.length], class: "lb-bar",
                    "data-tip": s.name + " \u2013 " + g + ": " + fmt(v, metric)}, plot.svg);
      });
    });
    legend(plot.box, series.map(function (s) { return s.name; }));
  }

  function scaleColor(t) {
    var x = Math.max(0, Math.min(1, t)) * (SCALE.length - 1);
    var i = Math.min(SCALE.length - 2, Math.floor(x)), f = x - i;
    var a = parseInt(SCALE[i].slice(1), 16), b = parseInt(SCALE[i + 1].slice(1), 16);
    var mix = [16, 8, 0].map(function (s) {
      return Math.round(((a >> s) & 255) * (1 - f) + ((b >> s) & 255) * f); });
    return {fill: "rgb(" + mix.join(",") + ")",
            dark: 0.299 * mix[0] + 0.587 * mix[1] + 0.114 * mix[2] < 140};
  }

  /* Heat map: one row per row shown, one column per category, the value in each cell. */
  function heatMap(parent, title, rows, columns, values, metric, note) {
    var cellW = 46, cellH = 24, charW = 6.2;
    var longestColumn = Math.max.apply(null, columns.map(function (c) { return c.length; }));
    var labels = rows.map(function (r) { return truncate(r, 46); });
    var longestRow = Math.max.apply(null, labels.map(function (r) { return r.length; }));
    var left = Math.ceil(longestRow * charW) + 12;
    var top = Math.ceil(longestColumn * charW * 0.72) + 14;
    var right = Math.ceil(longestColumn * charW * 0.72);
    var plot = chartFrame(parent, title, left + cellW * columns.length + right,
                          top + cellH * rows.length + 4, {left: 0, right: 0, top: 0, bottom: 0}, true);
    var finite = [].concat.apply([], values).filter(function (v) { return !missing(v); });
    var lo = Math.min.apply(null, finite), hi = Math.max.apply(null, finite);
    columns.forEach(function (c, ci) {
      var x = left + cellW * (ci + 0.5), y = top - 6;
      el("text", {x: x, y: y, transform: "rotate(-45 " + x + " " + y + ")", class: "lb-tick"},
         plot.svg, c);
    });
    rows.forEach(function (r, ri) {
      el("text", {x: left - 6, y: top + cellH * (ri + 0.65), "text-anchor": "end", class: "lb-tick",
                  "data-tip": r}, plot.svg, labels[ri]);
      columns.forEach(function (c, ci) {
        var v = values[ri][ci];
        var x = left + cellW * ci, y = top + cellH * ri;
        var tipText = r + " \u2013 " + c + ": " + fmt(v, metric);
        if (missing(v)) {
          el("rect", {x: x, y: y, width: cellW - 2, height: cellH - 2, class: "lb-cell lb-cell-empty",
                      "data-tip": tipText}, plot.svg);
          return;
        }
        var color = scaleColor(hi === lo ? 1 : (v - lo) / (hi - lo));
        el("rect", {x: x, y: y, width: cellW - 2, height: cellH - 2, fill: color.fill,
                    class: "lb-cell", "data-tip": tipText}, plot.svg);
        el("text", {x: x + (cellW - 2) / 2, y: y + cellH * 0.65, "text-anchor": "middle",
                    class: "lb-cell-value", fill: color.dark ? "#fff" : "#111",
                    "data-tip": tipText}, plot.svg, fmt(v, metric));
      });
    });
    var key = html("div", "lb-scale", plot.box);
    html("span", "", key, fmt(lo, metric));
    html("i", "lb-scale-bar", key).style.background = "linear-gradient(to right, " + SCALE.join(", ") + ")";
    html("span", "", key, fmt(hi, metric));
    html("i", "lb-scale-empty", key);
    html("span", "", key, "not reported");
    if (note) html("span", "lb-scale-note", key, note);
  }

  /* ---------------------------------------------------------------- URLs and copying */
  /* The site's root as an absolute URL, from a relative path such as "../". */
  function siteRoot(relative) { return new URL(relative || "./", window.location.href).href; }

  function permalinks() {
    var root = null;
    document.querySelectorAll("[data-lb-path]").forEach(function (node) {
      root = siteRoot(node.getAttribute("data-lb-root"));
      node.textContent = root + node.getAttribute("data-lb-path");
    });
    if (root === null) return;
    /* Citation blocks write the site's address as "<site>/": it is known only here. */
    document.querySelectorAll(".lb-cite code").forEach(function (code) {
      code.textContent = code.textContent.split("<site>/").join(root);
    });
    document.querySelectorAll("[data-lb-copy]").forEach(function (button) {
      button.addEventListener("click", function () {
        var selector = button.getAttribute("data-lb-copy");
        var text = selector === "location" ? window.location.href :
          (document.querySelector(selector) || {}).textContent || "";
        copy(text, button);
      });
    });
  }
  function copy(text, button) {
    var done = function () {
      var label = button.textContent;
      button.textContent = "Copied";
      setTimeout(function () { button.textContent = label; }, 1500);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, function () { fallbackCopy(text, done); });
    } else fallbackCopy(text, done);
  }
  function fallbackCopy(text, done) {
    var area = html("textarea", "lb-offscreen", document.body);
    area.value = text;
    area.select();
    try { document.execCommand("copy"); done(); } catch (e) { /* the text stays selectable */ }
    area.remove();
  }

  /* ---------------------------------------------------------------- board pages */
  function board(root) {
    var data = JSON.parse(root.querySelector(".lb-data").textContent);
    var metrics = {};
    data.metrics.forEach(function (m) { metrics[m.name] = m; });
    var primary = metrics[data.primary];
    var defaults = data.defaults || {};
    var q = function (name) { return root.querySelector(".lb-" + name); };
    var controls = {
      slice: q("slice"), version: q("version"), recomputed: q("recomputed"),
      baselines: q("baselines"), variants: q("variants"), sort: q("sort")
    };
    /* Setting dimensions (training regime, shots, input data, test split, modality): those that
       rank are always fixed to one value, so a row is only ranked against rows of its own
       setting; the others (modality) filter one ranking and may show all values. */
    var dims = data.dimensions || [];
    var dimKeys = dims.map(function (d) { return d.key; });
    dims.forEach(function (d) { controls[d.key] = q(d.key); });
    var state = {slice: data.headline, key: "rank", reverse: false};
    var table = root.querySelector(".lb-table");
    var status = root.querySelector(".lb-status");
    var sliceNames = {};
    data.slices.forEach(function (s) { sliceNames[s] = true; });
    var columnKeys = ["rank", "method", "date", "year"].concat(dimKeys, Object.keys(metrics));

    /* ---- the view <-> the query string */
    function optionValues(select) {
      return select ? [].map.call(select.options, function (o) { return o.value; }) : [];
    }
    function defaultSetting(name) {
      var wanted = defaults[name] || "";
      return optionValues(controls[name]).indexOf(wanted) >= 0 ? wanted : "";
    }
    function readUrl() {
      var params = new URLSearchParams(window.location.search);
      if (sliceNames[params.get("slice")]) state.slice = params.get("slice");
      if (columnKeys.indexOf(params.get("sort")) >= 0) state.key = params.get("sort");
      state.reverse = params.get("order") === "reversed";
      dimKeys.forEach(function (name) {
        if (!controls[name] || !params.has(name)) return;
        var value = params.get(name) === "all" ? "" : params.get(name);
        if (optionValues(controls[name]).indexOf(value) >= 0) controls[name].value = value;
      });
      var flag = function (name, on) {
        if (controls[name] && params.has(name)) controls[name].checked = params.get(name) === on;
      };
      flag("variants", "1");
      flag("recomputed", "1");
      if (controls.baselines && params.has("baselines")) controls.baselines.checked = params.get("baselines") !== "0";
      controls.slice.value = state.slice;
      if (controls.sort) controls.sort.value = state.key;
    }
    function writeUrl() {
      var params = [];
      var add = function (k, v) {
        params.push(k + "=" + encodeURIComponent(v).replace(/%40/g, "@").replace(/%2F/g, "/"));
      };
      if (state.slice !== data.headline) add("slice", state.slice);
      if (state.key !== "rank") add("sort", state.key);
      if (state.reverse) add("order", "reversed");
      dimKeys.forEach(function (name) {
        var c = controls[name];
        if (c && c.value !== defaultSetting(name)) add(name, c.value || "all");
      });
      if (controls.variants && controls.variants.checked) add("variants", "1");
      if (controls.recomputed && controls.recomputed.checked) add("recomputed", "1");
      if (controls.baselines && !controls.baselines.checked) add("baselines", "0");
      var query = params.length ? "?" + params.join("&") : "";
      if (query !== window.location.search) {
        window.history.replaceState(null, "", window.location.pathname + query + window.location.hash);
      }
    }

    /* ---- which rows, in which order, with which rank */
    function metricValue(row, name, slice) {
      var v = (row.values[slice || state.slice] || {})[name];
      return missing(v) ? null : v;
    }
    /* A ranking dimension without a control (one value on the board) is still fixed to its
       standard value; a filter dimension without one shows everything. */
    function chosen(d) {
      if (controls[d.key]) return controls[d.key].value;
      return d.ranks && d.standard ? d.standard : "";
    }
    function visible() {
      return data.rows.filter(function (r) {
        if (controls.recomputed && controls.recomputed.checked && r.kind !== "recomputed") return false;
        if (controls.baselines && !controls.baselines.checked && r.baseline) return false;
        for (var i = 0; i < dims.length; i++) {
          var value = chosen(dims[i]), own = (r.settings || {})[dims[i].key];
          if (value && own !== value) return false;  // unknown values match no choice
        }
        if (r.variant && !(controls.variants && controls.variants.checked)) return false;
        return true;
      });
    }
    function settingName(d, value) { return (d.names || {})[value] || value; }
    /* Rank by the primary metric among the methods' main rows shown; ties share a rank. */
    function ranking(rows) {
      var ranked = rows.filter(function (r) {
        return !r.variant && metricValue(r, data.primary) !== null; });
      ranked.sort(function (a, b) { return metricValue(b, data.primary) - metricValue(a, data.primary); });
      var ranks = {}, previous = null, rank = 0;
      ranked.forEach(function (r, i) {
        var v = metricValue(r, data.primary);
        if (v !== previous) { rank = i + 1; previous = v; }
        ranks[r.key] = rank;
      });
      return ranks;
    }
    function sortValue(row, key, ranks) {
      if (metrics[key]) return metricValue(row, key);
      if (key === "rank") return missing(ranks[row.key]) ? null : ranks[row.key];
      if (key === "method") return (row.method + " " + (row.variant || "")).toLowerCase();
      if (dimKeys.indexOf(key) >= 0) return missing((row.settings || {})[key]) ? null : row.settings[key];
      return missing(row[key]) ? null : row[key];
    }
    function comparator(ranks) {
      var key = state.key;
      var higherFirst = !!metrics[key] || key === "date" || key === "year";
      return function (a, b) {
        var va = sortValue(a, key, ranks), vb = sortValue(b, key, ranks);
        if (va === null && vb !== null) return 1;  // rows without the value go last, always
        if (vb === null && va !== null) return -1;
        var c = va === vb || va === null ? 0 : (va < vb ? -1 : 1) * (higherFirst ? -1 : 1);
        if (state.reverse) c = -c;
        if (c) return c;
        var pa = metricValue(a, data.primary), pb = metricValue(b, data.primary);
        if (pa !== pb) return pa === null ? 1 : pb === null ? -1 : pb - pa;
        var na = sortValue(a, "method"), nb = sortValue(b, "method");
        return na < nb ? -1 : na > nb ? 1 : 0;
      };
    }
    /* The table's lines: main rows (ranked, then those without the ranking metric when sorted
       by #), each followed by its method's variants; variants of methods not shown last. */
    function layout(rows, ranks) {
      var compare = comparator(ranks);
      var mains = rows.filter(function (r) { return !r.variant; }).sort(compare);
      var variants = rows.filter(function (r) { return r.variant; }).sort(compare);
      var byMethod = {};
      variants.forEach(function (v) { (byMethod[v.method] = byMethod[v.method] || []).push(v); });
      var lines = [], sectionDone = false;
      mains.forEach(function (r) {
        if (state.key === "rank" && missing(ranks[r.key]) && !sectionDone) {
          sectionDone = true;
          lines.push({section: "Not ranked: no " + data.primary + " reported for " + state.slice});
        }
        lines.push({row: r});
        (byMethod[r.method] || []).forEach(function (v) { lines.push({row: v, nested: true}); });
        delete byMethod[r.method];
      });
      Object.keys(byMethod).sort().forEach(function (method) {
        lines.push({section: "Variants of " + method + " (its main result is not among the rows shown)"});
        byMethod[method].forEach(function (v) { lines.push({row: v, nested: true}); });
      });
      return lines;
    }

    /* ---- columns */
    function columns(rows) {
      var any = function (get) { return rows.some(function (r) { return !missing(get(r)); }); };
      var cols = [{key: "rank", label: "#", cls: "lb-c-rank", title: "Rank by " + data.primary +
                   " on " + state.slice + " among the methods shown; ties share a rank"},
                  {key: "method", label: "Method", cls: "lb-c-method"},
                  {key: data.primary, label: data.primary, cls: "num lb-c-primary", metric: primary}];
      data.metrics.forEach(function (m) {
        if (m.name === data.primary) return;
        if (any(function (r) { return metricValue(r, m.name); })) {
          cols.push({key: m.name, label: m.name, cls: "num", metric: m});
        }
      });
      dims.forEach(function (d) {
        if (chosen(d)) return;  // fixed by the view: said once above the table
        if (any(function (r) { return (r.settings || {})[d.key]; })) {
          cols.push({key: d.key, label: d.label, cls: "lb-c-setting", dim: d});
        }
      });
      if (any(function (r) { return r.year; })) cols.push({key: "year", label: "Year", cls: "lb-c-year",
        title: "Year the method was first published"});
      if (any(function (r) { return r.date; })) cols.push({key: "date", label: "Date", cls: "lb-c-date"});
      if (any(function (r) { return r.paper || r.code || r.compare; })) cols.push({key: null, label: "Links", cls: "lb-c-links"});
      return cols;
    }
    function best(rows, cols) {
      var out = {};
      cols.forEach(function (c) {
        if (!c.metric) return;
        var values = rows.filter(function (r) { return !r.variant; })
          .map(function (r) { return metricValue(r, c.key); })
          .filter(function (v) { return v !== null; });
        if (values.length >= 2) out[c.key] = Math.max.apply(null, values);
      });
      return out;
    }

    /* ---- rendering */
    function tables(row) {
      var c = row.citation || "";
      var at = c.indexOf(", Table");
      return at >= 0 ? c.slice(at + 2) : "";
    }
    function methodCell(td, r, nested) {
      var link = html("a", "lb-name", td, r.variant ? r.method + " \u2014 " + r.variant : r.method);
      link.href = r.url;
      if (r.printed && r.printed.length) {
        link.title = "printed in the paper as " + r.printed.map(function (p) {
          return "\u201c" + p + "\u201d"; }).join(", ");
      }
      var badge = function (cls, text, title) {
        td.appendChild(document.createTextNode(" "));
        var b = html("span", "lb-badge " + cls, td, text);
        if (title) b.title = title;
        return b;
      };
      if (r.kind === "reported") {
        var first = (r.sources || [])[0];
        var from = (r.sources || []).map(function (s) { return s.title + " (" + s.kind.replace(/-/g, " ") + ")"; });
        badge("reported", first && !first.primary ? "as reported by " + first.name : "reported",
              "not recomputed here; from " + (from.join("; ") || r.citation || "a paper"));
        if (r.disagree) {
          td.appendChild(document.createTextNode(" "));
          var differ = html("a", "lb-badge lb-disagree", td, "sources differ");
          differ.href = r.url + "#sources";
          differ.title = r.disagree + " value" + (r.disagree === 1 ? "" : "s") + " printed differently by its sources: see the row's page";
        }
      }
      if (r.reproduce) {
        td.appendChild(document.createTextNode(" "));
        var again = html("a", "lb-badge reproducible", td, "reproduce this row");
        again.href = r.url + "#reproduce-this-row";
        again.title = "a bundled baseline reproduces this row: " + r.reproduce;
      }
      if (r.baseline) badge("baseline", "baseline");
      if (r.flags.indexOf("upper-bound") >= 0) {
        badge("flag", "\u2020", "upper bound: training data may overlap with the benchmark")
          .setAttribute("aria-label", "upper bound: training data may overlap with the benchmark");
      }
      if (r.variant) {
        var printed = (r.printed || []).map(function (p) { return "\u201c" + p + "\u201d"; }).join(", ");
        var where = tables(r);
        var text = printed ? "printed as " + printed + (where ? ", " + where : "") : where;
        if (text) html("div", "lb-group", td, "(" + text + ")");
      } else if (r.group) {
        html("div", "lb-group", td, r.group);
      }
      if (nested) td.setAttribute("data-variant-of", r.method);
    }
    /* Ranked rows whose 95 % interval of the ranking metric overlaps the leader's: not
       clearly behind #1 (only where both the row and the leader have an interval). */
    function overlapsLeader(rows, ranks) {
      var interval = function (r) {
        var i = ((r.intervals || {})[state.slice] || {})[data.primary];
        return i && !missing(i[0]) && !missing(i[1]) ? i : null;
      };
      var leader = rows.filter(function (r) { return ranks[r.key] === 1; })[0];
      var top = leader ? interval(leader) : null;
      var out = {};
      if (!top) return out;
      rows.forEach(function (r) {
        var own = interval(r);
        if (r !== leader && !missing(ranks[r.key]) && own && own[1] >= top[0]) out[r.key] = true;
      });
      return out;
    }
    function metricCell(td, r, c, bestValues, overlaps) {
      var v = metricValue(r, c.key);
      td.textContent = fmt(v, c.metric);
      if (v === null) td.classList.add("lb-missing");
      if (v !== null && bestValues[c.key] === v && !r.variant) td.classList.add("lb-best");
      var interval = ((r.intervals || {})[state.slice] || {})[c.key];
      if (v !== null && interval && !missing(interval[0]) && !missing(interval[1])) {
        var half = (interval[1] - interval[0]) / 2;
        var pm = html("span", "lb-pm", td, "\u00b1" + fmt(half, c.metric));
        pm.title = "95 % bootstrap interval: " + fmt(interval[0], c.metric) + " \u2013 " + fmt(interval[1], c.metric);
      }
      if (c.key === data.primary && overlaps[r.key]) {
        var near = html("span", "lb-overlap", td, "\u2248");
        near.title = "its 95 % interval overlaps the leader's: not clearly behind #1";
        near.setAttribute("aria-label", near.title);
      }
    }
    function render() {
      var rows = visible();
      var ranks = ranking(rows);
      var lines = layout(rows, ranks);
      var cols = columns(rows);
      var bestValues = best(rows, cols);
      var overlaps = overlapsLeader(rows, ranks);
      table.textContent = "";
      var head = html("tr", "", html("thead", "", table));
      cols.forEach(function (c) {
        var th = html("th", c.cls, head, c.label);
        if (c.title) th.title = c.title;
        if (!c.key) return;
        th.setAttribute("data-key", c.key);
        th.tabIndex = 0;
        var sorted = state.key === c.key;
        th.classList.toggle("lb-sorted", sorted);
        th.setAttribute("aria-sort", sorted ? (state.reverse ? "ascending" : "descending") : "none");
        if (sorted && state.reverse) th.classList.add("lb-reversed");
      });
      var body = html("tbody", "", table);
      lines.forEach(function (line) {
        if (line.section) {
          var sec = html("tr", "lb-section", body);
          html("td", "", sec, line.section).colSpan = cols.length;
          return;
        }
        var r = line.row;
        var tr = html("tr", r.kind + (r.variant ? " lb-variant" : "") + (line.nested ? " lb-nested" : ""), body);
        tr.setAttribute("data-key", r.key);
        if (r.modality) tr.setAttribute("data-modality", r.modality);
        if (r.shots) tr.setAttribute("data-shots", r.shots);
        cols.forEach(function (c) {
          var td = html("td", c.cls, tr);
          td.setAttribute("data-label", c.label);
          if (c.key === "rank") {
            td.textContent = missing(ranks[r.key]) ? DASH : String(ranks[r.key]);
          } else if (c.key === "method") {
            methodCell(td, r, line.nested);
          } else if (c.metric) {
            metricCell(td, r, c, bestValues, overlaps);
          } else if (c.dim) {
            var own = (r.settings || {})[c.key];
            td.textContent = missing(own) ? DASH : settingName(c.dim, own);
            if (missing(own)) td.classList.add("lb-missing");
            else if ((r.assumed || []).indexOf(c.key) >= 0) td.title = "not stated by the source: the standard protocol is assumed";
          } else if (c.key) {
            td.textContent = r[c.key] || DASH;
            if (!r[c.key]) td.classList.add("lb-missing");
          } else {
            var links = [["paper", r.paper, ""], ["code", r.code, ""],
                         ["compare", r.compare, "compare this row with another, with intervals"]];
            links.filter(function (l) { return l[1]; }).forEach(function (l, i) {
              if (i) td.appendChild(document.createTextNode(" "));
              var a = html("a", "", td, l[0]);
              a.href = l[1];
              if (l[2]) a.title = l[2];
            });
            if (!r.paper && !r.code && !r.compare) td.classList.add("lb-missing");
          }
        });
      });
      root.querySelector(".lb-empty").hidden = rows.length > 0;
      stickyOffsets(cols);
      describe(rows, ranks, cols);
      charts(lines.filter(function (l) { return l.row; }).map(function (l) { return l.row; }), ranks);
      if (controls.sort) controls.sort.value = state.key;
      writeUrl();
    }
    /* The rank, method and ranking-metric columns stay in view when the table scrolls
       sideways: their left offsets are the widths of the columns before them. */
    function stickyOffsets() {
      var ths = table.querySelectorAll("thead th");
      if (ths.length < 3) return;
      table.style.setProperty("--lb-left-1", ths[0].offsetWidth + "px");
      table.style.setProperty("--lb-left-2", (ths[0].offsetWidth + ths[1].offsetWidth) + "px");
    }
    function describe(rows, ranks, cols) {
      var mains = rows.filter(function (r) { return !r.variant; }).length;
      var ranked = Object.keys(ranks).length;
      var parts = [ranked + " of " + mains + " method" + (mains === 1 ? "" : "s") +
                   " shown ranked by " + data.primary + " on \u201c" + state.slice + "\u201d"];
      var variants = rows.length - mains;
      if (variants) parts.push(variants + " variant" + (variants === 1 ? "" : "s") + " (not ranked)");
      if (state.key !== "rank") {
        var column = cols.filter(function (c) { return c.key === state.key; })[0];
        parts.push("sorted by " + (column ? column.label : state.key) + (state.reverse ? " (reversed)" : "") +
                   "; # keeps the rank by " + data.primary);
      }
      var setting = dims.filter(function (d) { return chosen(d); }).map(function (d) {
        return d.label.toLowerCase() + ": " + settingName(d, chosen(d)); });
      if (setting.length) parts.push(setting.join(", "));
      status.textContent = parts.join(" \u00b7 ") + ". ";
      var button = html("button", "lb-copy lb-link-button", status, "Copy link to this view");
      button.type = "button";
      button.addEventListener("click", function () { copy(window.location.href, button); });
    }
    function label(r) {
      var name = r.variant ? r.method + " \u2014 " + r.variant : r.method;
      return r.shots && r.shots !== "full" ? name + " (" + r.shots + "-shot)" : name;
    }
    function charts(rows, ranks) {
      var box = root.querySelector(".lb-charts");
      box.textContent = "";
      if (data.compare) {
        /* Per object type on the chosen difficulty (FORB), per category (anomaly boards). */
        var difficulty = state.slice.indexOf("/") >= 0 ? state.slice.split("/")[1] :
          (data.compare.indexOf(state.slice) < 0 && sliceNames[data.compare[0] + "/" + state.slice] ? state.slice : null);
        var slices = data.compare.map(function (s) { return difficulty ? s + "/" + difficulty : s; });
        var series = rows.map(function (r) {
          return {name: label(r), row: r, values: slices.map(function (s) { return metricValue(r, data.primary, s); })};
        }).filter(function (s) { return s.values.some(function (v) { return v !== null; }); });
        var without = rows.length - series.length;
        if (data.compareStyle === "heatmap" && series.length) {
          heatMap(box, data.primary + " per category (" + series.length + " row" + (series.length === 1 ? "" : "s") + " shown)",
                  series.map(function (s) { return s.name; }), data.compare,
                  series.map(function (s) { return s.values; }), primary,
                  without ? "Left out: " + without + " row" + (without === 1 ? "" : "s") + " shown with no per-category " + data.primary + "." : "");
        } else if (series.length) {
          var top = series.slice(0, COLORS.length);
          var suffix = difficulty ? " (" + difficulty + ")" : "";
          barChart(box, data.primary + " per " + (data.compareName || "slice") + suffix +
                   (series.length > top.length ? " \u2013 first " + top.length + " of " + series.length + " rows shown" : ""),
                   slices, top, primary);
        }
      }
      timeline(box, rows, ranks);
      var shown = {};
      rows.forEach(function (r) { shown[r.key] = true; });
      var curves = data.curves.filter(function (c) { return c.curves.kind === "t-mAP" && shown[c.key]; });
      ["mAP@1", "mAP@5"].forEach(function (k) {
        var series = curves.map(function (c) {
          var s = c.curves.slices[state.slice] || {};
          return {name: c.method, x: c.curves.fpr, y: s[k] || []};
        });
        /* A chart of flat zero lines (the random baseline alone) shows nothing: leave it out. */
        var informative = series.some(function (s) { return s.y.some(function (v) { return !missing(v) && v > 0; }); });
        if (informative) {
          lineChart(box, "t-mAP: " + k + " at each OOD threshold (" + state.slice + ")",
                    series, "FPR", k, metrics["mAP@1"] || primary);
        }
      });
    }

    /* State of the art over time: the best ranking metric among the methods shown (this
       setting, slice and filters), by the year the methods were published. A step line with
       a labelled point wherever the best improved. */
    function timeline(box, rows, ranks) {
      var points = rows.filter(function (r) {
        return !missing(ranks[r.key]) && !missing(r.year) && metricValue(r, data.primary) !== null; });
      var years = points.map(function (r) { return r.year; });
      if (points.length < 2 || Math.min.apply(null, years) === Math.max.apply(null, years)) return;
      points.sort(function (a, b) { return a.year - b.year || metricValue(b, data.primary) - metricValue(a, data.primary); });
      var records = [], best = null;
      points.forEach(function (r) {
        var v = metricValue(r, data.primary);
        if (best === null || v > best) { best = v; records.push({year: r.year, value: v, name: label(r)}); }
      });
      var first = Math.min.apply(null, years), last = Math.max.apply(null, years);
      var values = points.map(function (r) { return metricValue(r, data.primary); });
      var lo = Math.max(0, Math.floor((Math.min.apply(null, values) - 0.02) * 20) / 20);
      var hi = Math.min(1, Math.ceil((best + 0.01) * 20) / 20);
      if (hi <= lo) hi = Math.min(1, lo + 0.05);
      var plot = chartFrame(box, "State of the art over time: best " + data.primary + " (" + state.slice +
                            ") by year, among the " + points.length + " ranked methods shown",
                            720, 340, {left: 56, right: 24, top: 28, bottom: 44});
      plot.box.classList.add("lb-timeline");
      var span = Math.max(1, last - first);
      var sx = function (y) { return plot.x0 + (y - first + 0.5) / (span + 1) * (plot.x1 - plot.x0); };
      var sy = function (v) { return plot.y0 - (v - lo) / (hi - lo) * (plot.y0 - plot.y1); };
      var xTicks = [];
      for (var y = first; y <= last; y++) xTicks.push({pos: sx(y), label: String(y)});
      var yTicks = [0, 0.25, 0.5, 0.75, 1].map(function (t) { var v = lo + t * (hi - lo);
        return {pos: sy(v), label: fmt(v, primary)}; });
      axes(plot, xTicks, yTicks, "Year", data.primary);
      points.forEach(function (r) {
        el("circle", {cx: sx(r.year), cy: sy(metricValue(r, data.primary)), r: 3, class: "lb-timeline-all",
                      "data-tip": label(r) + " (" + r.year + "): " + fmt(metricValue(r, data.primary), primary)}, plot.svg);
      });
      var path = [];
      records.forEach(function (p, i) {
        if (i) path.push([sx(p.year), sy(records[i - 1].value)]);
        path.push([sx(p.year), sy(p.value)]);
      });
      path.push([sx(last) + (sx(last) > sx(records[records.length - 1].year) ? 0 : 12), sy(best)]);
      el("polyline", {points: path.map(function (p) { return p.join(","); }).join(" "), fill: "none",
                      stroke: COLORS[0], "stroke-width": 2, class: "lb-line lb-step"}, plot.svg);
      records.forEach(function (p, i) {
        var x = sx(p.year), yv = sy(p.value);
        el("circle", {cx: x, cy: yv, r: 5, fill: COLORS[0], class: "lb-point lb-record",
                      "data-tip": p.name + " (" + p.year + "): " + fmt(p.value, primary)}, plot.svg);
        var anchor = x > plot.x1 - 170 ? "end" : "start";  // labels run right, but stay inside
        el("text", {x: x + (anchor === "end" ? -8 : 8), y: yv + (i % 2 ? 18 : -9), "text-anchor": anchor,
                    class: "lb-point-label"}, plot.svg, truncate(p.name, 28) + " " + fmt(p.value, primary));
      });
    }

    table.addEventListener("click", function (event) {
      var th = event.target.closest("th[data-key]");
      if (th) activate(th.getAttribute("data-key"));
    });
    table.addEventListener("keydown", function (event) {
      var th = event.target.closest("th[data-key]");
      if (th && (event.key === "Enter" || event.key === " ")) { event.preventDefault(); activate(th.getAttribute("data-key")); }
    });
    function activate(key) {
      state.reverse = state.key === key ? !state.reverse : false;
      state.key = key;
      render();
      var th = table.querySelector("th[data-key='" + key.replace(/'/g, "\\'") + "']");
      if (th && document.activeElement === document.body) th.focus({preventScroll: true});
    }
    controls.slice.addEventListener("change", function () { state.slice = controls.slice.value; render(); });
    if (controls.sort) controls.sort.addEventListener("change", function () {
      state.key = controls.sort.value; state.reverse = false; render(); });
    ["recomputed", "baselines", "variants"].concat(dimKeys).forEach(function (name) {
      if (controls[name]) controls[name].addEventListener("change", render);
    });
    // The version switch is version-switch.js's (it keeps the view's query string).
    window.addEventListener("resize", function () { stickyOffsets(); });
    readUrl();
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
    permalinks();
    document.querySelectorAll(".lb-board").forEach(board);
    document.querySelectorAll(".lb-entry").forEach(entry);
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
