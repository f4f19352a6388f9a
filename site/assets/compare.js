/* Compare two entries of a board: every slice side by side, the difference A - B and, for two
   recomputed entries, the paired 95 % bootstrap interval of the difference that one of the two
   evaluation records holds (the later one; the sign is flipped when it is B's). Plain
   JavaScript: no library, nothing fetched. Text from submissions is only ever set as
   textContent. The choice lives in the address: ?a=<row id>&b=<row id>&metric=<name|all>
   (the board's primary metric when absent). */
(function () {
  "use strict";

  function el(tag, text, cls) {
    var node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = text;
    if (cls) node.className = cls;
    return node;
  }

  function scaled(value, metric) {
    return metric.percent ? 100 * value : value;
  }

  function fmt(value, metric) {
    if (value === null || value === undefined) return "–";
    return scaled(value, metric).toFixed(metric.decimals);
  }

  function signed(value, metric) {
    if (value === null || value === undefined) return "–";
    var text = Math.abs(scaled(value, metric)).toFixed(metric.decimals);
    if (Number(text) === 0) return text;
    return (value > 0 ? "+" : "−") + text;
  }

  function interval(pair, metric) {
    return "[" + signed(pair[0], metric) + ", " + signed(pair[1], metric) + "]";
  }

  function label(row) {
    var parts = [row.method];
    if (row.variant) parts.push("(" + row.variant + ")");
    if (row.modality) parts.push("· " + row.modality + (row.shots && row.shots !== "full" ? ", " + row.shots + "-shot" : ""));
    parts.push(row.kind === "reported" ? "· reported in paper" : "· recomputed" + (row.baseline ? ", baseline" : ""));
    if (row.rank) parts.unshift("#" + row.rank);
    return parts.join(" ");
  }

  function value(row, slice, metric) {
    var values = row.values[slice];
    var v = values ? values[metric] : undefined;
    return v === undefined ? null : v;
  }

  function ownInterval(row, slice, metric) {
    var s = row.intervals && row.intervals[slice];
    return s && s[metric] ? s[metric] : null;
  }

  function sameResampling(a, b) {
    if (!a.bootstrap || !b.bootstrap) return false;
    return ["resamples", "seed", "level", "method", "unit"].every(function (k) {
      return a.bootstrap[k] === b.bootstrap[k];
    });
  }

  /* The paired interval of A - B: from A's record, or B's record with the sign flipped. */
  function pairedInterval(a, b, slice, metric) {
    if (a.kind !== "recomputed" || b.kind !== "recomputed" || !sameResampling(a, b)) return null;
    var own = a.entry && b.paired[a.entry] && b.paired[a.entry][slice];
    var mine = b.entry && a.paired[b.entry] && a.paired[b.entry][slice];
    if (mine && mine[metric]) return mine[metric].slice();
    if (own && own[metric]) return [-own[metric][1], -own[metric][0]];
    return null;
  }

  function compare(root) {
    var data = JSON.parse(root.querySelector(".lb-compare-data").textContent);
    var selectA = root.querySelector(".lb-compare-a");
    var selectB = root.querySelector(".lb-compare-b");
    var selectMetric = root.querySelector(".lb-compare-metric");
    var table = root.querySelector(".lb-compare-table");
    var body = table.querySelector("tbody");
    var summary = root.querySelector(".lb-compare-summary");
    var byId = {};
    data.rows.forEach(function (row) {
      byId[row.id] = row;
      [selectA, selectB].forEach(function (select) {
        var option = el("option", label(row));
        option.value = row.id;
        select.appendChild(option);
      });
    });
    if (!data.rows.length) {
      summary.textContent = "This board has no entries yet.";
      return;
    }

    var params = new URLSearchParams(window.location.search);
    var first = byId[params.get("a")] ? params.get("a") : data.rows[0].id;
    var second = byId[params.get("b")] ? params.get("b")
      : (data.rows.filter(function (r) { return r.id !== first; })[0] || data.rows[0]).id;
    selectA.value = first;
    selectB.value = second;
    var metricNames = data.metrics.map(function (m) { return m.name; });
    var chosen = params.get("metric");
    selectMetric.value = chosen === "all" || metricNames.indexOf(chosen) >= 0 ? chosen : data.primary;

    function remember() {
      var query = new URLSearchParams(window.location.search);
      query.set("a", selectA.value);
      query.set("b", selectB.value);
      if (selectMetric.value !== data.primary) query.set("metric", selectMetric.value);
      else query.delete("metric");
      var url = window.location.pathname + "?" + query.toString() + window.location.hash;
      window.history.replaceState(null, "", url);
    }

    function render() {
      var a = byId[selectA.value], b = byId[selectB.value];
      var metrics = data.metrics.filter(function (m) {
        return selectMetric.value === "all" || m.name === selectMetric.value;
      });
      body.textContent = "";
      table.classList.toggle("lb-one-metric", metrics.length === 1);
      var paired = 0, resolved = 0, plain = a.kind === "reported" || b.kind === "reported";
      data.slices.forEach(function (slice) {
        metrics.forEach(function (metric) {
          var va = value(a, slice, metric.name), vb = value(b, slice, metric.name);
          if (va === null && vb === null) return;
          var tr = el("tr");
          if (slice === data.headline) tr.className = "lb-compare-headline";
          tr.appendChild(el("td", slice.split("/").join("/\u200b"), "lb-compare-slice"));
          tr.appendChild(el("td", metric.name, "lb-compare-metric-col"));
          [[a, va], [b, vb]].forEach(function (pair) {
            var td = el("td", fmt(pair[1], metric), "num");
            var own = ownInterval(pair[0], slice, metric.name);
            if (own && pair[1] !== null) {
              td.appendChild(document.createTextNode(" "));
              td.appendChild(el("span", "[" + fmt(own[0], metric) + ", " + fmt(own[1], metric) + "]", "lb-ci"));
            }
            tr.appendChild(td);
          });
          var diff = va !== null && vb !== null ? va - vb : null;
          tr.appendChild(el("td", signed(diff, metric), "num lb-compare-diff"));
          var ci = diff === null ? null : pairedInterval(a, b, slice, metric.name);
          var reading;
          if (a === b) {
            reading = "same entry";
          } else if (diff === null) {
            reading = "not reported by both";
          } else if (ci) {
            paired += 1;
            var better = metric.higherIsBetter === false ? -1 : 1;
            if (ci[0] > 0 || ci[1] < 0) {
              resolved += 1;
              reading = (ci[0] > 0) === (better > 0) ? "A ahead" : "B ahead";
            } else {
              reading = "within noise";
            }
          } else if (plain) {
            reading = "plain difference";
          } else {
            reading = "no interval";
          }
          tr.appendChild(el("td", ci ? interval(ci, metric) : "–", "num lb-compare-ci"));
          tr.appendChild(el("td", reading));
          body.appendChild(tr);
        });
      });
      if (a === b) {
        summary.textContent = "A and B are the same row: pick two different entries.";
      } else if (plain) {
        summary.textContent = "At least one of A and B is reported in a paper, not recomputed: " +
          "the table shows the plain difference, without an interval.";
      } else if (paired) {
        summary.textContent = "Both are recomputed: " + resolved + " of " + paired +
          " paired 95 % intervals exclude 0 (the difference is larger than the sampling noise of the test set).";
      } else {
        summary.textContent = "Both are recomputed, but no paired interval is recorded for this pair " +
          "(a record written before intervals existed, or slices too small to resample): plain difference.";
      }
    }

    function update() {
      remember();
      render();
    }
    selectA.addEventListener("change", update);
    selectB.addEventListener("change", update);
    selectMetric.addEventListener("change", update);
    root.querySelector(".lb-compare-swap").addEventListener("click", function () {
      var previous = selectA.value;
      selectA.value = selectB.value;
      selectB.value = previous;
      update();
    });
    render();
  }

  function start() {
    document.querySelectorAll(".lb-compare").forEach(compare);
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
