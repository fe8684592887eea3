// Device pages: the devices of a list page as points on the city map; a device's place on its district's
// map and its readings of the last day, one line per measure.
(function () {
  "use strict";
  if (typeof echarts === "undefined") { return; }

  var tip = window.shgovChartTips.tip;
  var axisTip = window.shgovChartTips.axisTip;

  function withMap(el, only, draw) {
    fetch(el.dataset.geojson, { headers: { Accept: "application/json" } })
      .then(function (response) { return response.json(); })
      .then(function (geojson) {
        geojson.features.forEach(function (f) { f.properties.name = f.properties.name || f.properties.code; });
        if (only) { geojson.features = geojson.features.filter(function (f) { return f.properties.code === only; }); }
        echarts.registerMap("city", geojson);
        var chart = echarts.init(el, null, { renderer: "canvas" });
        draw(chart);
        window.addEventListener("resize", function () { chart.resize(); });
        el.dataset.ready = "true";
      })
      .catch(function () { el.dataset.ready = "failed"; });
  }

  var list = document.getElementById("devices-map");
  if (list) {
    var points = JSON.parse(document.getElementById("devices-data").textContent);
    withMap(list, null, function (chart) {
      chart.setOption({
        tooltip: { trigger: "item", formatter: function (p) { return tip([p.data && p.data.id ? p.data.id + " · " + p.data.type : p.name]); } },
        geo: { map: "city", roam: true, itemStyle: { areaColor: "#f3f4f6" } },
        series: [{ type: "scatter", coordinateSystem: "geo", symbolSize: 5,
                   data: points.map(function (p) { return { id: p.id, type: p.type, value: [p.lng, p.lat] }; }) }]
      });
      chart.on("click", function (p) { if (p.data && p.data.id) { window.location.href = "/ops/devices/" + encodeURIComponent(p.data.id); } });
      list.dataset.points = String(points.length);
    });
  }

  var place = document.getElementById("device-map");
  if (place) {
    withMap(place, place.dataset.district, function (chart) {
      chart.setOption({
        geo: { map: "city", roam: true, itemStyle: { areaColor: "#f3f4f6" } },
        series: [{ type: "effectScatter", coordinateSystem: "geo", symbolSize: 12, name: place.dataset.name,
                   data: [{ name: place.dataset.name, value: [Number(place.dataset.lng), Number(place.dataset.lat)] }] }]
      });
    });
    var readings = JSON.parse(document.getElementById("device-data").textContent);
    var byMeasure = {};
    readings.forEach(function (r) { (byMeasure[r.measure] = byMeasure[r.measure] || []).push([r.ts, r.value]); });
    var chart = echarts.init(document.getElementById("device-readings"), null, { renderer: "canvas" });
    chart.setOption({
      tooltip: { trigger: "axis", formatter: function (p) { return axisTip(p); } },
      legend: { data: Object.keys(byMeasure) },
      xAxis: { type: "time" }, yAxis: { type: "value" },
      series: Object.keys(byMeasure).map(function (m) { return { name: m, type: "line", showSymbol: false, data: byMeasure[m] }; })
    });
    document.getElementById("device-readings").dataset.drawn = "true";
  }
})();
