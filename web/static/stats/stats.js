// Draws the statistics page's charts from the JSON the server embedded. Every chart has a
// table with the same numbers beside it, so the page says everything without this script.
(function () {
  "use strict";
  var source = document.getElementById("stats-data");
  if (!source || typeof Chart === "undefined") {
    return;
  }
  var figures = JSON.parse(source.textContent);
  var palette = ["#154273", "#e17000", "#39870c", "#a90061", "#8fcae7", "#ffb612", "#777c00"];
  var locale = document.documentElement.lang === "en" ? "en-GB" : "nl-NL";

  function options(spec) {
    var valueAxis = spec.horizontal ? "x" : "y";
    var scales = {x: {stacked: !!spec.stacked}, y: {stacked: !!spec.stacked}};
    scales[valueAxis].beginAtZero = true;
    scales[valueAxis].ticks = spec.percent
      ? {callback: function (value) { return value.toLocaleString(locale) + "%"; }}
      : {precision: 0};
    if (spec.max) {
      scales[valueAxis].max = spec.max;
    }
    return {
      locale: locale,
      indexAxis: spec.horizontal ? "y" : "x",
      animation: false,
      responsive: true,
      maintainAspectRatio: false,
      scales: scales,
      plugins: {
        legend: {display: spec.datasets.length > 1},
        tooltip: {callbacks: {label: function (item) {
          return item.dataset.label + ": " + item.formattedValue + (spec.percent ? "%" : "");
        }}}
      }
    };
  }

  document.querySelectorAll("canvas[data-chart]").forEach(function (canvas) {
    var spec = figures[canvas.dataset.chart];
    if (!spec) {
      return;
    }
    canvas.parentElement.hidden = false;
    var datasets = spec.datasets.map(function (dataset, index) {
      return Object.assign({backgroundColor: palette[index % palette.length]}, dataset);
    });
    new Chart(canvas, {type: "bar", data: {labels: spec.labels, datasets: datasets},
                       options: options(spec)});
    canvas.dataset.drawn = "true";
  });
}());
