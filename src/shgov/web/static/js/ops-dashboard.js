// The operations dashboard: district outlines coloured by open orders, open orders as points (red when
// overdue), hot spots; a click on a district drills down; server-sent events keep every figure live.
(function () {
  "use strict";
  var el = document.getElementById("ops-map");
  var initial = document.getElementById("ops-data");
  if (!el || !initial) { return; }
  var data = JSON.parse(initial.textContent);
  var chart = null;
  var district = el.dataset.district;

  var tip = window.shgovChartTips.tip;

  function pct(rate) { return rate === null || rate === undefined ? "—" : Math.round(rate * 100) + "%"; }

  function cell(row, text, href) {
    var td = document.createElement("td");
    if (href) { var a = document.createElement("a"); a.href = href; a.textContent = text; td.appendChild(a); }
    else { td.textContent = text; }
    row.appendChild(td);
  }

  function tables(d) {
    document.querySelectorAll("[data-testid=status-counts] [data-status]").forEach(function (card) {
      card.querySelector("[data-count]").textContent = d.by_status[card.dataset.status] || 0;
    });
    document.querySelector("[data-testid=overdue-count]").textContent = d.total.overdue;
    var stamp = document.querySelector("[data-testid=generated-at]");
    stamp.setAttribute("datetime", d.generated_at);
    stamp.textContent = new Date(d.generated_at).toLocaleString(document.documentElement.lang || undefined);
    var body = document.querySelector("[data-testid=by-area] tbody");
    if (body) {
      body.textContent = "";
      d.by_area.forEach(function (a) {
        var row = document.createElement("tr");
        row.dataset.code = a.code;
        row.dataset.value = a.open;
        cell(row, a.name, !district && a.code ? "/ops/dashboard?district=" + a.code + "&days=" + el.dataset.days : null);
        cell(row, a.open); cell(row, a.overdue);
        cell(row, pct(a.on_time_rate) + " (" + a.replied + ")");
        cell(row, pct(a.satisfaction_rate) + " (" + a.rated + ")");
        body.appendChild(row);
      });
    }
    var overdue = document.querySelector("[data-testid=overdue] tbody");
    if (overdue) {
      overdue.textContent = "";
      d.overdue.forEach(function (o) {
        var row = document.createElement("tr");
        cell(row, o.number, "/ops/orders/" + o.id); cell(row, o.hours_over); cell(row, o.area_name);
        cell(row, o.unit_name); cell(row, o.description);
        overdue.appendChild(row);
      });
    }
  }

  function draw(d) {
    if (!chart) { return; }
    var open = {};
    d.by_area.forEach(function (a) { open[a.code] = a.open; });
    var regions = echarts.getMap("city").geoJSON.features.map(function (f) {
      return { name: f.properties.name, code: f.properties.code, value: open[f.properties.code] || 0 };
    });
    var max = Math.max.apply(null, regions.map(function (r) { return r.value; }).concat([1]));
    chart.setOption({
      tooltip: { trigger: "item", formatter: function (p) {
        if (p.seriesType === "scatter") { return tip([p.name]); }
        if (p.seriesType === "effectScatter") { return tip([p.seriesName, p.name + ": " + p.value[2]]); }
        return tip([p.name + ": " + (p.value === undefined || isNaN(p.value) ? 0 : p.value)]);
      } },
      visualMap: { min: 0, max: max, seriesIndex: 0, left: "left", bottom: 10, calculable: true,
                   inRange: { color: ["#e0f3f8", "#abd9e9", "#4575b4"] } },
      geo: { map: "city", roam: true, label: { show: !district, fontSize: 10 } },
      series: [
        { type: "map", geoIndex: 0, name: el.dataset.labelOpen, data: district ? [] : regions },
        { type: "scatter", coordinateSystem: "geo", name: el.dataset.labelOpen, symbolSize: 5,
          data: d.points.map(function (p) {
            return { name: p.number, value: [p.lng, p.lat], id: p.id,
                     itemStyle: { color: p.flag === "overdue" ? "#c0392b" : (p.flag === "due_soon" ? "#e67e22" : "#2c7fb8") } };
          }) },
        { type: "effectScatter", coordinateSystem: "geo", name: el.dataset.labelHotspot,
          symbolSize: function (v) { return 6 + Math.min(v[2], 20) * 1.5; },
          itemStyle: { color: "#8e44ad" },
          data: d.hot_spots.map(function (h) { return { name: h.category_code, value: [h.lng, h.lat, h.count] }; }) }
      ]
    });
    el.dataset.points = String(d.points.length);
  }

  fetch(el.dataset.geojson, { headers: { Accept: "application/json" } })
    .then(function (response) { return response.json(); })
    .then(function (geojson) {
      geojson.features.forEach(function (f) { f.properties.name = f.properties.name || f.properties.code; });
      if (district) {
        geojson.features = geojson.features.filter(function (f) { return f.properties.code === district; });
      }
      echarts.registerMap("city", geojson);
      chart = echarts.init(el, null, { renderer: "canvas" });
      draw(data);
      chart.on("click", function (p) {
        if (p.seriesType === "scatter" && p.data && p.data.id) { window.location.href = "/ops/orders/" + p.data.id; }
        else if (el.dataset.drill === "true" && p.data && p.data.code) {
          window.location.href = "/ops/dashboard?district=" + p.data.code + "&days=" + el.dataset.days;
        }
      });
      window.addEventListener("resize", function () { chart.resize(); });
      el.dataset.ready = "true";
    })
    .catch(function () { el.dataset.ready = "failed"; });

  if (window.EventSource) {
    var live = document.querySelector("[data-testid=live-state]");
    var source = new EventSource(el.dataset.stream);
    source.addEventListener("open", function () { live.dataset.live = "on"; });
    source.addEventListener("error", function () { live.dataset.live = "off"; });
    source.addEventListener("overview", function (event) {
      data = JSON.parse(event.data);
      tables(data);
      draw(data);
      live.dataset.updates = String(Number(live.dataset.updates || 0) + 1);
    });
  }
})();
