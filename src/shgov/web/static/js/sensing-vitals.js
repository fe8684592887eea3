// The vital-signs dashboard: the districts coloured by the chosen indicator's warning grade, its value per
// district, the open warnings and the trend of its measure; server-sent events keep the figures live, and a
// click on a district shows that district's trend, over the period chosen (6 hours to 30 days).
(function () {
  "use strict";
  var el = document.getElementById("vitals-map");
  var initial = document.getElementById("vitals-data");
  if (!el || !initial || typeof echarts === "undefined") { return; }
  var data = JSON.parse(initial.textContent);
  var code = el.dataset.indicator;
  var colours = { blue: "#3b82f6", yellow: "#facc15", orange: "#f97316", red: "#dc2626" };
  var chart = null;
  var trend = echarts.init(document.getElementById("vitals-trend"), null, { renderer: "canvas" });

  var tip = window.shgovChartTips.tip;
  var axisTip = window.shgovChartTips.axisTip;

  function chosen(d) { return d.indicators.filter(function (i) { return i.code === code; })[0]; }
  function gradeLabel(g) { return g ? el.dataset["grade" + g.charAt(0).toUpperCase() + g.slice(1)] : el.dataset.labelNormal; }

  function cell(row, text, href, cls) {
    var td = document.createElement("td");
    var node = td;
    if (href) { node = document.createElement("a"); node.href = href; td.appendChild(node); }
    if (cls) { var span = document.createElement("span"); span.className = cls; node.appendChild(span); node = span; }
    node.textContent = text;
    row.appendChild(td);
  }

  function tables(d) {
    var stamp = document.querySelector("[data-testid=generated-at]");
    stamp.setAttribute("datetime", d.generated_at);
    stamp.textContent = new Date(d.generated_at).toLocaleString(document.documentElement.lang || undefined);
    d.indicators.forEach(function (i) {
      var tile = document.querySelector("[data-indicator='" + i.code + "'] [data-warned]");
      if (tile) { tile.textContent = i.districts.filter(function (r) { return r.grade; }).length; }
    });
    var body = document.querySelector("[data-testid=vital-table] tbody");
    body.textContent = "";
    chosen(d).districts.forEach(function (r) {
      var row = document.createElement("tr");
      row.dataset.code = r.code;
      row.dataset.value = r.value === null ? "" : r.value;
      row.dataset.grade = r.grade || "";
      cell(row, r.name);
      cell(row, r.value === null ? "—" : r.value);
      cell(row, r.grade ? gradeLabel(r.grade) : "—", null, r.grade ? "grade grade-" + r.grade : null);
      cell(row, r.reporting);
      body.appendChild(row);
    });
    var warnings = document.querySelector("[data-testid=warnings] tbody");
    warnings.textContent = "";
    d.warnings.forEach(function (w) {
      var row = document.createElement("tr");
      row.dataset.grade = w.grade;
      cell(row, gradeLabel(w.grade), null, "grade grade-" + w.grade);
      cell(row, w.indicator); cell(row, w.area); cell(row, w.value);
      var devices = document.createElement("td");
      w.devices.forEach(function (id) {
        var a = document.createElement("a");
        a.href = "/ops/devices/" + encodeURIComponent(id);
        a.textContent = id;
        devices.appendChild(a);
        devices.appendChild(document.createTextNode(" "));
      });
      row.appendChild(devices);
      cell(row, w.workorder_number || "—", w.workorder_id ? "/ops/orders/" + w.workorder_id : null);
      warnings.appendChild(row);
    });
  }

  function draw(d) {
    if (!chart) { return; }
    var rows = {};
    chosen(d).districts.forEach(function (r) { rows[r.code] = r; });
    var regions = echarts.getMap("city").geoJSON.features.map(function (f) {
      var r = rows[f.properties.code] || {};
      return { name: f.properties.name, code: f.properties.code, value: r.value === undefined ? null : r.value,
               grade: r.grade, itemStyle: { areaColor: r.grade ? colours[r.grade] : (r.value === null || r.value === undefined ? "#eeeeee" : "#c7e9c0") } };
    });
    chart.setOption({
      tooltip: { trigger: "item", formatter: function (p) {
        var v = p.data && p.data.value !== null && p.data.value !== undefined ? p.data.value : "—";
        return tip([p.name + ": " + v + " (" + gradeLabel(p.data && p.data.grade) + ")"]);
      } },
      series: [{ type: "map", map: "city", roam: true, label: { show: true, fontSize: 10 }, data: regions }]
    });
    el.dataset.drawn = String(Number(el.dataset.drawn || 0) + 1);
  }

  var period = { district: el.dataset.home || null, hours: 24 };

  function showTrend(district, name) {
    period.district = district;
    var url = el.dataset.trend + "&hours=" + period.hours + (district ? "&district=" + district : "");
    return fetch(url, { headers: { Accept: "application/json" } })
      .then(function (r) { return r.json(); })
      .then(function (t) {
        if (name) { document.querySelector("[data-testid=trend-area]").textContent = name; }
        trend.setOption({
          tooltip: { trigger: "axis", formatter: function (p) { return axisTip(p); } },
          legend: { data: [el.dataset.labelMean, el.dataset.labelHigh] },
          xAxis: { type: "time" }, yAxis: { type: "value" },
          series: [
            { name: el.dataset.labelMean, type: "line", showSymbol: false, data: t.points.map(function (p) { return [p[0], p[1]]; }) },
            { name: el.dataset.labelHigh, type: "line", showSymbol: false, data: t.points.map(function (p) { return [p[0], p[2]]; }) }
          ]
        });
        var box = document.getElementById("vitals-trend");
        box.dataset.points = String(t.points.length);
        box.dataset.hours = String(period.hours);
      });
  }

  document.querySelectorAll("[data-testid=trend-period] button").forEach(function (button) {
    button.addEventListener("click", function () {
      period.hours = Number(button.dataset.hours);
      document.querySelectorAll("[data-testid=trend-period] button").forEach(function (b) {
        b.setAttribute("aria-pressed", String(b === button));
      });
      showTrend(period.district, null);
    });
  });

  fetch(el.dataset.geojson, { headers: { Accept: "application/json" } })
    .then(function (response) { return response.json(); })
    .then(function (geojson) {
      geojson.features.forEach(function (f) { f.properties.name = f.properties.name || f.properties.code; });
      echarts.registerMap("city", geojson);
      chart = echarts.init(el, null, { renderer: "canvas" });
      draw(data);
      chart.on("click", function (p) { if (p.data && p.data.code) { showTrend(p.data.code, p.name); } });
      window.addEventListener("resize", function () { chart.resize(); trend.resize(); });
      el.dataset.ready = "true";
    })
    .catch(function () { el.dataset.ready = "failed"; });
  function follow() {
    if (!window.EventSource) { return; }
    var live = document.querySelector("[data-testid=live-state]");
    var source = new EventSource(el.dataset.stream);
    source.addEventListener("open", function () { live.dataset.live = "on"; });
    source.addEventListener("error", function () { live.dataset.live = "off"; });
    source.addEventListener("vitals", function (event) {
      data = JSON.parse(event.data);
      tables(data);
      draw(data);
      live.dataset.updates = String(Number(live.dataset.updates || 0) + 1);
    });
  }

  // the page's own data first, then the live stream (one request at a time while the page loads)
  showTrend(el.dataset.home || null, el.dataset.homeName || null).then(follow, follow);
})();
