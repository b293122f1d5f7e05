/* The live page: polls progress.json every 2 seconds and redraws the numbers, the calls and
   the tips in place. Every text from the server goes in as text, never as HTML. */
(function () {
  "use strict";
  var root = document.getElementById("live");
  if (!root) { return; }
  var url = root.dataset.progressUrl;
  var INTERVAL = 2000;
  var shownTips = {};

  function setText(id, value) {
    var element = document.getElementById(id);
    if (element) { element.textContent = value; }
  }

  function cell(row, text) {
    var td = document.createElement("td");
    td.textContent = text;
    row.appendChild(td);
  }

  function drawDeliveries(data) {
    document.querySelectorAll("#delivery-table td[id^='count-']").forEach(function (td) {
      td.textContent = "0";
    });
    Object.keys(data.channels).forEach(function (channel) {
      var info = data.channels[channel];
      Object.keys(info.counts).forEach(function (status) {
        setText("count-" + channel + "-" + status, String(info.counts[status]));
      });
      setText("rate-" + channel, String(info.rate));
      setText("remaining-" + channel, info.remaining);
    });
    setText("total-deliveries", String(data.total));
    setText("forecast", data.forecast);
    var status = document.getElementById("live-status");
    if (status && data.status !== root.dataset.status) {
      status.textContent = data.status_label;
      status.className = "status status-" + data.status;
      root.dataset.status = data.status;
    }
  }

  function drawCalls(calls) {
    setText("calls-total", String(calls.total));
    setText("calls-connected", String(calls.connected));
    var body = document.getElementById("calls-latest");
    body.replaceChildren();
    calls.latest.forEach(function (call) {
      var row = document.createElement("tr");
      row.id = "call-" + call.id;
      [call.at, call.caller, call.meldkamer, call.outcome].forEach(function (text) { cell(row, text); });
      body.appendChild(row);
    });
  }

  function tipItem(tip) {
    var item = document.createElement("li");
    item.id = "tip-" + tip.id;
    var time = document.createElement("time");
    time.textContent = tip.at;
    item.appendChild(time);
    var text = document.createElement("p");
    text.className = "pre";
    text.textContent = tip.text;
    item.appendChild(text);
    if (tip.photo_url) {
      var link = document.createElement("a");
      link.href = tip.photo_url;
      link.target = "_blank";
      link.rel = "noopener";
      var image = document.createElement("img");
      image.src = tip.photo_url;
      image.alt = root.dataset.textPhoto;
      image.className = "thumbnail";
      image.loading = "lazy";
      link.appendChild(image);
      item.appendChild(link);
    }
    return item;
  }

  function drawTips(tips) {
    setText("tips-total", String(tips.total));
    if (!tips.latest) { return; }
    var list = document.getElementById("tips-list");
    tips.latest.slice().reverse().forEach(function (tip) {
      if (shownTips[tip.id]) { return; }
      shownTips[tip.id] = true;
      list.insertBefore(tipItem(tip), list.firstChild);
    });
  }

  function poll() {
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        return response.json();
      })
      .then(function (data) {
        drawDeliveries(data);
        drawCalls(data.calls);
        drawTips(data.tips);
        setText("live-updated", "");
        root.dataset.polls = String(Number(root.dataset.polls || 0) + 1);
      })
      .catch(function () { setText("live-updated", root.dataset.textStale); })
      .then(function () { window.setTimeout(poll, INTERVAL); });
  }

  poll();
}());
