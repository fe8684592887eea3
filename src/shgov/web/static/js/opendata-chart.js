// Charts a dataset's rows by year (date and time columns) or by bucket (number columns), from chart.json.
(function () {
  "use strict";
  var tip = window.shgovChartTips.tip;
  var axisTip = window.shgovChartTips.axisTip;

  function start() {
    var el = document.getElementById("chart");
    var select = document.getElementById("chart-column");
    if (!el || !select || typeof echarts === "undefined") { return; }
    var chart = echarts.init(el, null, { renderer: "canvas" });
    function draw() {
      el.dataset.ready = "false";
      fetch(el.dataset.url + "?column=" + encodeURIComponent(select.value), { headers: { Accept: "application/json" } })
        .then(function (response) { return response.json(); })
        .then(function (data) {
          chart.setOption({
            tooltip: { trigger: "axis", formatter: function (p) { return axisTip(p); } },
            grid: { left: 60, right: 16, top: 16, bottom: 60 },
            xAxis: { type: "category", data: data.labels, axisLabel: { rotate: data.kind === "number" ? 30 : 0 } },
            yAxis: { type: "value" },
            series: [{ type: "bar", name: el.dataset.seriesName, data: data.counts, itemStyle: { color: "#c8102e" } }]
          }, true);
          el.dataset.ready = "true";
          el.dataset.total = String(data.counts.reduce(function (a, b) { return a + b; }, 0));
        })
        .catch(function () { el.hidden = true; });
    }
    select.addEventListener("change", draw);
    window.addEventListener("resize", function () { chart.resize(); });
    draw();
  }
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", start); } else { start(); }
})();
