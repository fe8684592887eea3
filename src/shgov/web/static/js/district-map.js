// Draws the district map on the home page from the real outlines, coloured by the table's values.
(function () {
  "use strict";
  var tip = window.shgovChartTips.tip;

  var el = document.getElementById("district-map");
  if (!el || typeof echarts === "undefined") { return; }
  var rows = Array.prototype.slice.call(document.querySelectorAll("tr[data-code]"));
  var values = {};
  rows.forEach(function (row) {
    values[row.dataset.code] = { name: row.cells[0].textContent.trim(), value: Number(row.dataset.value) };
  });
  fetch(el.dataset.geojson, { headers: { Accept: "application/json" } })
    .then(function (response) { return response.json(); })
    .then(function (geojson) {
      geojson.features.forEach(function (f) { f.properties.name = f.properties.name || f.properties.code; });
      echarts.registerMap("city", geojson);
      var data = geojson.features.map(function (f) {
        var v = values[f.properties.code] || { value: 0 };
        return { name: f.properties.name, value: v.value, code: f.properties.code };
      });
      var max = Math.max.apply(null, data.map(function (d) { return d.value; }).concat([1]));
      var chart = echarts.init(el, null, { renderer: "canvas" });
      chart.setOption({
        tooltip: { trigger: "item", formatter: function (p) { return tip([p.name + ": " + (p.value === undefined || isNaN(p.value) ? "—" : p.value)]); } },
        visualMap: { min: 0, max: max, left: "left", bottom: 10, calculable: true,
                     inRange: { color: ["#fde0dd", "#fa9fb5", "#c51b8a"] } },
        series: [{ type: "map", map: "city", name: el.dataset.seriesName, roam: true,
                   label: { show: true, fontSize: 10 }, data: data }]
      });
      chart.on("click", function (p) { if (p.data && p.data.code) { window.location.href = "/regions/" + p.data.code; } });
      el.dataset.ready = "true";
      window.addEventListener("resize", function () { chart.resize(); });
    })
    .catch(function () { el.hidden = true; });
})();
