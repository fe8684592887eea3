// The published 好差评 figures as charts: satisfaction by district (bars), by month (lines, with the
// bad-rating rate) and by channel; the tables under each chart carry the same figures for screen readers.
(function () {
  "use strict";
  var tip = window.shgovChartTips.tip;
  var axisTip = window.shgovChartTips.axisTip;

  function pct(rate) { return Math.round(rate * 1000) / 10; }

  function bars(el, labels, rows, name) {
    var chart = echarts.init(el, null, { renderer: "canvas" });
    chart.setOption({
      tooltip: { trigger: "axis", formatter: function (p) { return axisTip(p, "%"); } },
      grid: { left: 48, right: 16, top: 24, bottom: 72 },
      xAxis: { type: "category", data: labels, axisLabel: { rotate: labels.length > 6 ? 40 : 0 } },
      yAxis: { type: "value", min: 0, max: 100, axisLabel: { formatter: "{value}%" } },
      series: [{ type: "bar", name: name, data: rows.map(function (r) { return pct(r.rate); }),
                 itemStyle: { color: "#c8102e" } }]
    });
    return chart;
  }

  function start() {
    var source = document.getElementById("ratings-data");
    if (!source || typeof echarts === "undefined") { return; }
    var data = JSON.parse(source.textContent);
    var chart = data.chart, labels = data.labels, charts = [];
    var district = document.getElementById("chart-district");
    var month = document.getElementById("chart-month");
    var channel = document.getElementById("chart-channel");
    if (district && chart.district.length) {
      charts.push(bars(district, chart.district.map(function (r) { return r.name; }), chart.district, labels.rate));
      district.dataset.ready = String(chart.district.length);
    }
    if (channel && chart.channel.length) {
      var names = chart.channel.map(function (r) { return labels.channels[r.key] || r.key; });
      charts.push(bars(channel, names, chart.channel, labels.rate));
      channel.dataset.ready = String(chart.channel.length);
    }
    if (month && chart.month.length) {
      var line = echarts.init(month, null, { renderer: "canvas" });
      line.setOption({
        tooltip: { trigger: "axis", formatter: function (p) { return axisTip(p, "%"); } },
        legend: { top: 0 },
        grid: { left: 48, right: 16, top: 32, bottom: 40 },
        xAxis: { type: "category", data: chart.month.map(function (r) { return r.key; }) },
        yAxis: { type: "value", min: 0, max: 100, axisLabel: { formatter: "{value}%" } },
        series: [
          { type: "line", name: labels.rate, data: chart.month.map(function (r) { return pct(r.rate); }),
            itemStyle: { color: "#c8102e" } },
          { type: "line", name: labels.bad_rate, data: chart.month.map(function (r) { return pct(r.bad_rate); }),
            itemStyle: { color: "#555" } }
        ]
      });
      charts.push(line);
      month.dataset.ready = String(chart.month.length);
    }
    window.addEventListener("resize", function () { charts.forEach(function (c) { c.resize(); }); });
  }
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", start); } else { start(); }
})();
