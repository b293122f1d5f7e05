// The reach map of the statistics page: every municipality coloured by its participants per
// 1,000 inhabitants, or by its safety region's. The classes and legends come from the server
// (the same numbers as the tables beside the map); the boundaries are the console's offline
// base layer, so the map needs no internet.
(function () {
  "use strict";
  var element = document.getElementById("reach-map");
  var source = document.getElementById("reach-data");
  if (!element || !source || typeof L === "undefined") {
    return;
  }
  var reach = JSON.parse(source.textContent);
  var NETHERLANDS = [[50.75, 3.35], [53.56, 7.23]];
  var locale = document.documentElement.lang === "en" ? "en-GB" : "nl-NL";
  var view = "municipalities";

  document.querySelectorAll(".reach-legend .swatch").forEach(function (swatch) {
    swatch.style.backgroundColor = swatch.dataset.colour;
  });

  function figuresOf(code) {
    if (view === "regions") {
      return reach.figures.regions[reach.region_of[code]];
    }
    return reach.figures.municipalities[code];
  }

  function colour(value) {
    var legend = reach.legends[view];
    if (value === null || value === undefined) {
      return reach.unknown;
    }
    for (var index = 0; index < legend.breaks.length; index += 1) {
      if (value <= legend.breaks[index]) {
        return legend.colours[index];
      }
    }
    return legend.colours[legend.colours.length - 1];
  }

  function style(feature) {
    var figures = figuresOf(feature.properties.code);
    return {color: "#4a5a68", weight: view === "regions" ? 0.4 : 0.8, fillOpacity: 0.9,
            fillColor: colour(figures ? figures[0] : null)};
  }

  function number(value, digits) {
    return value.toLocaleString(locale, {minimumFractionDigits: digits,
                                         maximumFractionDigits: digits});
  }

  function describe(feature) {
    var figures = figuresOf(feature.properties.code);
    var line = document.createElement("span");
    if (!figures) {
      line.textContent = feature.properties.name;
      return line;
    }
    var name = view === "regions" ? feature.properties.name + " – " + figures[3] : figures[3];
    var strong = document.createElement("strong");
    strong.textContent = name;
    line.appendChild(strong);
    line.appendChild(document.createElement("br"));
    line.appendChild(document.createTextNode(figures[0] === null
      ? reach.labels.unknown
      : number(figures[0], 1) + " " + reach.labels.reach + " (" + number(figures[1], 0) + " " +
        reach.labels.participants + ")"));
    return line;
  }

  element.hidden = false;
  var map = L.map(element, {minZoom: 6, maxZoom: 12, zoomSnap: 0.5,
                            attributionControl: false});
  map.fitBounds(NETHERLANDS);
  var layer = null;

  function show(chosen) {
    view = chosen;
    element.dataset.view = chosen;
    document.querySelectorAll(".reach-legend").forEach(function (legend) {
      legend.hidden = legend.id !== "reach-legend-" + chosen;
    });
    if (layer) {
      layer.setStyle(style);
    }
  }

  fetch(element.dataset.boundariesUrl, {credentials: "same-origin",
                                        headers: {Accept: "application/geo+json"}})
    .then(function (response) {
      if (!response.ok) {
        throw new Error("HTTP " + response.status);
      }
      return response.json();
    })
    .then(function (data) {
      layer = L.geoJSON(data, {
        style: style,
        onEachFeature: function (feature, path) {
          path.options.className = "reach-area gm-" + feature.properties.code;
          path.bindTooltip(function () { return describe(feature); }, {sticky: true});
        }
      }).addTo(map);
      var choice = document.getElementById("reach-view");
      choice.hidden = false;
      choice.addEventListener("change", function (event) {
        show(event.target.value);
      });
      element.dataset.state = "ready";
    })
    .catch(function () {
      element.dataset.state = "failed";
    });
}());
