/* letrade-perf charts: chart specifications (letrade_perf/reports/charts.py) → Apache ECharts.
 * Shared by the self-contained HTML report and the web UI's live Charts page.
 * window.letradeCharts.render(container, specs) builds (or updates in place) one section per spec:
 * a heading and either a chart or, when the spec carries a note, that note. */
(function () {
  "use strict";
  var THRESHOLD_COLOUR = "#cf222e";

  function pairs(x, ys) {
    var out = [];
    for (var i = 0; i < x.length && i < ys.length; i++) { out.push([x[i], ys[i]]); }
    return out;
  }

  function diff(upper, lower) {
    var out = [];
    for (var i = 0; i < upper.length; i++) {
      out.push(upper[i] == null || lower[i] == null ? null : Math.round((upper[i] - lower[i]) * 1000) / 1000);
    }
    return out;
  }

  function thresholdLine(thresholds) {
    if (!thresholds || !thresholds.length) { return undefined; }
    return {
      symbol: "none", silent: true,
      lineStyle: {color: THRESHOLD_COLOUR, type: "dashed", width: 1.5},
      label: {formatter: "{b}", position: "insideEndTop", color: THRESHOLD_COLOUR},
      data: thresholds.map(function (t) { return {name: t.name, yAxis: t.value}; })
    };
  }

  function dataMax(spec) {
    var m = 0;
    spec.series.forEach(function (s) {
      (s.kind === "band" ? s.upper : s.data).forEach(function (v) { if (v != null && v > m) { m = v; } });
    });
    return m;
  }

  // A threshold far above the data would squash the lines to the floor: those are named above the
  // chart instead of drawn (within FAR × the data's maximum, a dashed line and the axis stretches).
  var FAR = 4;

  function splitThresholds(spec) {
    var top = dataMax(spec), near = [], far = [];
    (spec.thresholds || []).forEach(function (t) {
      (top > 0 && t.value > FAR * top ? far : near).push(t);
    });
    return {near: near, far: far};
  }

  function buildSeries(spec, thresholds) {
    var out = [];
    spec.series.forEach(function (s, i) {
      if (s.kind === "band") {
        var stack = "band-" + i;
        out.push({name: s.name, type: "line", stack: stack, symbol: "none", connectNulls: false,
                  lineStyle: {opacity: 0}, data: pairs(spec.x, s.lower), tooltip: {show: false}});
        out.push({name: s.name, type: "line", stack: stack, symbol: "none", connectNulls: false,
                  lineStyle: {opacity: 0}, areaStyle: {color: "rgba(9,105,218,0.15)"},
                  data: pairs(spec.x, diff(s.upper, s.lower)), tooltip: {show: false}});
        return;
      }
      var one = {name: s.name, type: s.kind === "bar" ? "bar" : "line", data: pairs(spec.x, s.data),
                 yAxisIndex: s.axis || 0, symbolSize: 4, connectNulls: false};
      if (s.stack) { one.stack = s.stack; }
      if (s.step) { one.step = "end"; }
      if (s.dashed) { one.lineStyle = {type: "dashed"}; }
      if (s.area) { one.areaStyle = {opacity: 0.2}; }
      out.push(one);
    });
    var line = thresholdLine(thresholds);
    if (line && out.length) {
      // on the last series: a band's hidden halves stack, so their y is not the chart's y
      out[out.length - 1].markLine = line;
    }
    return out;
  }

  function option(spec) {
    var yAxes = [{type: "value", name: spec.y_name || "", scale: false}];
    if (spec.y2_name) { yAxes.push({type: "value", name: spec.y2_name, splitLine: {show: false}, minInterval: 1}); }
    var split = splitThresholds(spec), max = null;
    split.near.forEach(function (t) { max = max == null ? t.value : Math.max(max, t.value); });
    if (max != null) {   // keep the threshold line in view
      yAxes[0].max = function (v) { return Math.max(v.max, max) * 1.05; };
    }
    var far = split.far.map(function (t) { return t.name + " (" + t.value + ", above the chart)"; }).join("; ");
    return {
      animation: false,
      title: far ? {text: "", subtext: "thresholds: " + far, right: 10, top: 14,
                    subtextStyle: {color: THRESHOLD_COLOUR, fontSize: 11}} : undefined,
      grid: {left: 60, right: spec.y2_name ? 60 : 24, top: far ? 56 : 40, bottom: 40},
      legend: {top: 0, type: "scroll"},
      tooltip: {trigger: "axis"},
      xAxis: {type: "value", name: "s", min: 0, max: "dataMax"},
      yAxis: yAxes,
      series: buildSeries(spec, split.near)
    };
  }

  function section(container, spec) {
    var id = "letrade-chart-" + spec.id;
    var box = document.getElementById(id);
    if (!box) {
      box = document.createElement("div");
      box.id = id;
      box.className = "letrade-chart-section";
      var h = document.createElement("h3");
      box.appendChild(h);
    }
    container.appendChild(box);     // (re)appended: the sections keep the specs' order as charts come and go
    box.firstChild.textContent = spec.title;
    return box;
  }

  function render(container, specs) {
    if (typeof container === "string") { container = document.getElementById(container); }
    var seen = {};
    specs.forEach(function (spec) {
      var box = section(container, spec);
      seen[box.id] = true;
      var body = box.childNodes[1];
      var wantNote = !!spec.note;
      if (body && (body.className === "letrade-note") !== wantNote) {
        var old = window.echarts.getInstanceByDom(body);
        if (old) { old.dispose(); }
        box.removeChild(body);
        body = null;
      }
      if (wantNote) {
        if (!body) { body = document.createElement("p"); body.className = "letrade-note"; box.appendChild(body); }
        body.textContent = spec.note;
        return;
      }
      if (!body) {
        body = document.createElement("div");
        body.className = "letrade-chart";
        body.setAttribute("data-chart", spec.id);
        body.style.height = "280px";
        body.style.width = "100%";
        box.appendChild(body);
      }
      var chart = window.echarts.getInstanceByDom(body) || window.echarts.init(body);
      chart.setOption(option(spec), {notMerge: true});
    });
    Array.prototype.slice.call(container.querySelectorAll(".letrade-chart-section")).forEach(function (box) {
      if (!seen[box.id]) {
        var c = box.querySelector(".letrade-chart");
        if (c && window.echarts.getInstanceByDom(c)) { window.echarts.getInstanceByDom(c).dispose(); }
        box.parentNode.removeChild(box);
      }
    });
  }

  window.addEventListener("resize", function () {
    Array.prototype.slice.call(document.querySelectorAll(".letrade-chart")).forEach(function (el) {
      var c = window.echarts && window.echarts.getInstanceByDom(el);
      if (c) { c.resize(); }
    });
  });

  window.letradeCharts = {render: render, option: option};
})();
