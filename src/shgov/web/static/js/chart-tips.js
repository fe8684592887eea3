// Chart tooltips built from text nodes, never parsed as markup: every label and name on a chart is data.
// Loaded after echarts and before a page's own chart script, which takes them from window.shgovChartTips.
(function () {
  "use strict";
  // A tooltip of one line per entry.
  function tip(lines) {
    var div = document.createElement("div");
    div.className = "chart-tip";
    lines.forEach(function (line) {
      var row = document.createElement("div");
      row.textContent = line;
      div.appendChild(row);
    });
    return div;
  }
  // An axis tooltip: the axis value, then each series' name and value (the last of a [time, value] pair).
  function axisTip(params, suffix) {
    var list = [].concat(params);
    return tip([list.length ? list[0].axisValueLabel : ""].concat(list.map(function (p) {
      var v = Array.isArray(p.value) ? p.value[p.value.length - 1] : p.value;
      return p.seriesName + ": " + (v === null || v === undefined ? "—" : v) + (suffix || "");
    })));
  }
  window.shgovChartTips = { tip: tip, axisTip: axisTip };
})();
