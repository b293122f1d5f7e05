/* The area picker and the read-only area view; the contract (input names, ids) is at the top
   of templates/map/area_picker.html. Works offline: the base layer is the municipality
   boundaries from our own server; online tiles only when configured. */
(function () {
  "use strict";

  var NETHERLANDS = [[50.75, 3.35], [53.56, 7.23]];
  var LIMITS = [[49.0, 0.5], [55.5, 10.5]];
  var AREA_STYLE = { color: "#b00020", weight: 2, fillColor: "#b00020", fillOpacity: 0.15 };
  var loaded = {};

  function escapeHtml(text) {
    var span = document.createElement("span");
    span.textContent = text || "";
    return span.innerHTML;
  }

  function boundaries(url) {
    if (!loaded[url]) {
      loaded[url] = fetch(url, { credentials: "same-origin", headers: { Accept: "application/geo+json" } })
        .then(function (response) {
          if (!response.ok) { throw new Error("HTTP " + response.status); }
          return response.json();
        });
    }
    return loaded[url];
  }

  function addLabels(map, data) {
    var group = L.layerGroup();
    data.features.forEach(function (feature) {
      var name = document.createElement("span");
      name.textContent = feature.properties.name;
      group.addLayer(L.tooltip({ permanent: true, direction: "center", interactive: false,
                                 className: "area-picker-label" })
        .setLatLng(feature.properties.label).setContent(name));
    });
    function update() {
      if (map.getZoom() >= 10) { group.addTo(map); } else { group.remove(); }
    }
    map.on("zoomend", update);
    update();
  }

  /* A map of the Netherlands with the municipality boundaries (and tiles, if configured). */
  function baseMap(element, config) {
    element.hidden = false;
    var map = L.map(element, { maxBounds: LIMITS, minZoom: 6, maxZoom: 18, zoomSnap: 0.5 });
    map.createPane("boundaries").style.zIndex = 350;  /* over tiles (200), under areas (400) */
    map.fitBounds(NETHERLANDS);
    var online = !!config.tilesUrl;
    if (online) {
      L.tileLayer(config.tilesUrl, { maxZoom: 19,
                                     attribution: escapeHtml(config.tilesAttribution) }).addTo(map);
    }
    boundaries(config.boundariesUrl).then(function (data) {
      L.geoJSON(data, {
        pane: "boundaries",
        interactive: false,
        style: { color: "#4a5a68", weight: 1, fillColor: "#f4f1e6", fillOpacity: online ? 0 : 1 }
      }).addTo(map);
      map.attributionControl.addAttribution(escapeHtml(config.textBoundaries));
      if (!online) { addLabels(map, data); }
      element.dataset.state = "ready";
      element.dispatchEvent(new CustomEvent("area-picker:ready", { bubbles: true }));
    }).catch(function () {
      element.dataset.state = "failed";
      map.attributionControl.addAttribution(escapeHtml(config.textFailed));
    });
    return map;
  }

  function number(input) {
    var value = parseFloat(String(input.value).replace(",", "."));
    return isFinite(value) ? value : null;
  }

  function picker(root) {
    var prefix = root.id.replace(/-picker$/, "");
    function byId(suffix) { return document.getElementById(prefix + "-" + suffix); }
    var lat = byId("lat"), lon = byId("lon"), radius = byId("radius"), polygonInput = byId("polygon");
    var circleFields = root.querySelector("[data-circle-fields]");
    var tools = root.querySelector("[data-polygon-tools]");
    var statusText = root.querySelector("[data-polygon-status]");
    var nationalNote = root.querySelector("[data-national-note]");
    var closeButton = byId("close-polygon");
    root.querySelectorAll("[data-js-only]").forEach(function (el) { el.hidden = false; });
    var map = baseMap(byId("map"), root.dataset);
    var mode = "circle", circle = null, centre = null;
    var vertices = [], closed = false, drawn = L.layerGroup().addTo(map);
    var national = root.dataset.nationalInput ? document.getElementById(root.dataset.nationalInput) : null;

    function drawCircle(fit) {
      var la = number(lat), lo = number(lon), r = number(radius);
      if (la === null || lo === null || mode !== "circle") {
        if (circle) { circle.remove(); centre.remove(); circle = centre = null; }
        return;
      }
      if (!circle) {
        circle = L.circle([la, lo], L.extend({ radius: r || 0, interactive: false, className: "area-circle" },
                                             AREA_STYLE)).addTo(map);
        centre = L.circleMarker([la, lo], { radius: 4, color: "#b00020", interactive: false }).addTo(map);
      }
      circle.setLatLng([la, lo]).setRadius(r && r > 0 ? r : 0);
      centre.setLatLng([la, lo]);
      if (fit) { map.fitBounds(circle.getBounds(), { maxZoom: 14, padding: [20, 20] }); }
    }

    function ring() {
      var points = vertices.map(function (p) { return [+p.lng.toFixed(6), +p.lat.toFixed(6)]; });
      points.push(points[0]);
      return points;
    }

    function drawPolygon() {
      drawn.clearLayers();
      if (closed) {
        drawn.addLayer(L.polygon(vertices, L.extend({ interactive: false }, AREA_STYLE)));
      } else if (vertices.length) {
        drawn.addLayer(L.polyline(vertices, { color: AREA_STYLE.color, dashArray: "6 4", interactive: false }));
        vertices.forEach(function (point, index) {
          var marker = L.circleMarker(point, { radius: index === 0 ? 7 : 4, color: AREA_STYLE.color,
                                               interactive: index === 0 });
          if (index === 0) {
            marker.on("click", function (event) {
              L.DomEvent.stopPropagation(event);
              closePolygon();
            });
          }
          drawn.addLayer(marker);
        });
      }
      polygonInput.value = closed ? JSON.stringify({ type: "Polygon", coordinates: [ring()] }) : "";
      if (closeButton) { closeButton.disabled = closed || vertices.length < 3; }
      if (statusText) {
        statusText.textContent = closed ? root.dataset.textClosed
          : (vertices.length ? root.dataset.textPoints.replace("{n}", vertices.length) : "");
      }
    }

    function closePolygon() {
      if (vertices.length >= 3) { closed = true; drawPolygon(); }
    }

    function setMode(next) {
      mode = next;
      var polygonMode = mode === "polygon";
      [lat, lon, radius].forEach(function (input) { input.disabled = polygonMode; });
      circleFields.classList.toggle("is-off", polygonMode);
      if (tools) { tools.hidden = !polygonMode; }
      map.doubleClickZoom[polygonMode ? "disable" : "enable"]();
      if (!polygonMode) { vertices = []; closed = false; }
      drawPolygon();
      drawCircle(false);
    }

    function applyNational() {
      var on = !!(national && national.checked && !national.disabled);
      root.classList.toggle("is-national", on);
      nationalNote.hidden = !on;
      root.querySelectorAll("input, button").forEach(function (el) {
        if (el !== polygonInput) { el.disabled = on; }
      });
      if (!on) { setMode(mode); }
      if (on) { map.fitBounds(NETHERLANDS); }
    }

    map.on("click", function (event) {
      if (root.classList.contains("is-national")) { return; }
      if (mode === "circle") {
        lat.value = event.latlng.lat.toFixed(5);
        lon.value = event.latlng.lng.toFixed(5);
        drawCircle(false);
      } else if (!closed) {
        vertices.push(event.latlng);
        drawPolygon();
      }
    });
    [lat, lon, radius].forEach(function (input) {
      input.addEventListener("input", function () { drawCircle(false); });
    });
    root.querySelectorAll("[data-radius]").forEach(function (button) {
      button.addEventListener("click", function () {
        radius.value = button.dataset.radius;
        drawCircle(number(lat) !== null);
      });
    });
    root.querySelectorAll("input[type=radio][value]").forEach(function (radio) {
      radio.addEventListener("change", function () { if (radio.checked) { setMode(radio.value); } });
    });
    if (closeButton) {
      closeButton.addEventListener("click", closePolygon);
      byId("undo").addEventListener("click", function () {
        if (closed) { closed = false; } else { vertices.pop(); }
        drawPolygon();
      });
      byId("clear").addEventListener("click", function () { vertices = []; closed = false; drawPolygon(); });
    }
    if (national) { national.addEventListener("change", applyNational); }
    /* A place chosen in the place search (place-search.js): a circle around it. */
    root.addEventListener("area-picker:place", function (event) {
      var place = event.detail;
      if (root.classList.contains("is-national")) { return; }
      if (mode !== "circle") { byId("mode-circle").checked = true; setMode("circle"); }
      lat.value = place.lat.toFixed(5);
      lon.value = place.lon.toFixed(5);
      radius.value = String(place.radius_m);
      drawCircle(true);
    });
    var form = root.closest("form");
    if (form) {
      form.addEventListener("submit", function (event) {
        if (mode !== "polygon" || closed || root.classList.contains("is-national")) { return; }
        if (vertices.length >= 3) { closePolygon(); return; }
        event.preventDefault();
        statusText.textContent = root.dataset.textTooFew;
      });
    }

    var stored = null;
    try { stored = polygonInput.value ? JSON.parse(polygonInput.value) : null; } catch (e) { stored = null; }
    if (stored && stored.type === "Polygon" && stored.coordinates && stored.coordinates[0]) {
      vertices = stored.coordinates[0].slice(0, -1).map(function (p) { return L.latLng(p[1], p[0]); });
      closed = vertices.length >= 3;
      byId("mode-polygon").checked = true;
      setMode("polygon");
      if (closed) { map.fitBounds(L.polygon(vertices).getBounds(), { maxZoom: 14, padding: [20, 20] }); }
    } else {
      setMode("circle");
      drawCircle(true);
    }
    applyNational();
  }

  function view(element) {
    var area = JSON.parse(element.dataset.area || "{}");
    var map = baseMap(element, element.dataset);
    var layer = null;
    if (area.polygon) {
      layer = L.geoJSON(JSON.parse(area.polygon), { style: AREA_STYLE, interactive: false });
    } else if (area.lat !== undefined && area.lat !== null) {
      layer = L.circle([area.lat, area.lon], L.extend({ radius: area.radius_m, interactive: false }, AREA_STYLE));
    } else if (area.national) {
      layer = L.rectangle(NETHERLANDS, L.extend({ interactive: false }, AREA_STYLE, { fillOpacity: 0.05 }));
      map.attributionControl.addAttribution(escapeHtml(element.dataset.textNational));
    }
    if (layer) {
      layer.addTo(map);
      map.fitBounds(layer.getBounds(), { maxZoom: 14, padding: [20, 20] });
    }
  }

  document.querySelectorAll("[data-area-picker]").forEach(picker);
  document.querySelectorAll("[data-area-view]").forEach(view);
}());
