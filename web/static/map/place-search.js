/* Place search above the area picker's map: a combobox (ARIA 1.2 pattern: the focus stays in
   the input, the options are pointed at with aria-activedescendant) that asks the server for
   suggestions as the user types. Choosing one sends "area-picker:place" to the picker with
   {lat, lon, radius_m, ...}; area-picker.js centres the map and sets the circle. The markup
   and ids are in templates/map/area_picker.html. */
(function () {
  "use strict";

  var DEBOUNCE_MS = 150;

  function fill(template, values) {
    return template.replace(/\{(\w+)\}/g, function (whole, name) {
      return Object.prototype.hasOwnProperty.call(values, name) ? String(values[name]) : whole;
    });
  }

  function setup(box) {
    var input = box.querySelector("input[role=combobox]");
    var list = document.getElementById(input.getAttribute("aria-controls"));
    var status = document.getElementById(input.id + "-status");
    var picked = box.querySelector("[data-place-picked]");
    var picker = box.closest("[data-area-picker]");
    var texts = box.dataset;
    var items = [], active = -1, timer = null, asked = 0, controller = null, enterWaiting = false;

    function setActive(index) {
      active = index;
      Array.prototype.forEach.call(list.children, function (option, i) {
        option.setAttribute("aria-selected", i === active ? "true" : "false");
        option.classList.toggle("is-active", i === active);
      });
      if (active >= 0) {
        input.setAttribute("aria-activedescendant", list.children[active].id);
        list.children[active].scrollIntoView({ block: "nearest" });
      } else {
        input.removeAttribute("aria-activedescendant");
      }
    }

    function close() {
      list.hidden = true;
      input.setAttribute("aria-expanded", "false");
      setActive(-1);
    }

    function open() {
      if (!items.length) { return; }
      list.hidden = false;
      input.setAttribute("aria-expanded", "true");
    }

    function option(item, index) {
      var li = document.createElement("li");
      li.id = input.id + "-option-" + index;
      li.setAttribute("role", "option");
      li.setAttribute("aria-selected", "false");
      li.dataset.kind = item.kind;
      var label = document.createElement("span");
      label.className = "place-search-label";
      label.textContent = item.label;
      var where = document.createElement("span");
      where.className = "place-search-where";
      where.textContent = [texts["kind" + item.kind.charAt(0).toUpperCase() + item.kind.slice(1)],
                           item.municipality.name, item.meldkamer.name].join(" · ");
      li.appendChild(label);
      li.appendChild(where);
      if (item.note) {
        var note = document.createElement("span");
        note.className = "place-search-note";
        note.textContent = item.note.message;
        li.appendChild(note);
      }
      return li;
    }

    function show(found) {
      items = found;
      list.replaceChildren.apply(list, found.map(option));
      setActive(-1);
      if (found.length) { open(); } else { close(); }
      status.textContent = !found.length ? texts.textNone
        : (found.length === 1 ? texts.textOne : fill(texts.textMany, { n: found.length }));
      if (enterWaiting && found.length) { choose(0); }
      enterWaiting = false;
    }

    function fail(message) {
      items = [];
      list.replaceChildren();
      close();
      status.textContent = message || texts.textFailed;
      enterWaiting = false;
    }

    function search() {
      clearTimeout(timer);
      timer = null;
      var query = input.value.trim();
      if (controller) { controller.abort(); }
      if (!query) {
        items = [];
        close();
        status.textContent = "";
        box.dataset.state = "done";
        enterWaiting = false;
        return;
      }
      var mine = ++asked;
      controller = new AbortController();
      box.dataset.state = "searching";
      fetch(texts.placesUrl + "?q=" + encodeURIComponent(query), {
        credentials: "same-origin", headers: { Accept: "application/json" }, signal: controller.signal
      }).then(function (response) {
        return response.json().then(function (body) { return { ok: response.ok, body: body }; });
      }).then(function (answer) {
        if (mine !== asked) { return; }
        box.dataset.state = "done";
        if (answer.ok) { show(answer.body.items); } else { fail(answer.body.error && answer.body.error.message); }
      }).catch(function (error) {
        if (error.name === "AbortError" || mine !== asked) { return; }
        box.dataset.state = "done";
        fail(null);
      });
    }

    function choose(index) {
      var item = items[index];
      if (!item) { return; }
      input.value = item.label;
      close();
      var text = fill(texts.textPicked, { label: item.label, radius: item.radius_m,
                                          municipality: item.municipality.name,
                                          meldkamer: item.meldkamer.name });
      picked.textContent = item.note ? text + " " + item.note.message : text;
      status.textContent = "";
      picker.dispatchEvent(new CustomEvent("area-picker:place", { detail: item }));
    }

    input.addEventListener("input", function () {
      clearTimeout(timer);
      timer = setTimeout(search, DEBOUNCE_MS);
    });
    input.addEventListener("keydown", function (event) {
      var last = items.length - 1;
      if (event.key === "ArrowDown" || event.key === "ArrowUp") {
        event.preventDefault();
        if (!items.length) { return; }
        if (list.hidden) { open(); setActive(event.key === "ArrowDown" ? 0 : last); return; }
        var next = active + (event.key === "ArrowDown" ? 1 : -1);
        setActive(next > last ? 0 : (next < 0 ? last : next));
      } else if (event.key === "Enter") {
        event.preventDefault();  /* never submits the action form */
        if (timer !== null || box.dataset.state === "searching") {
          enterWaiting = true;
          if (timer !== null) { search(); }
        } else if (!list.hidden && items.length) {
          choose(active >= 0 ? active : 0);
        }
      } else if (event.key === "Escape") {
        if (!list.hidden) { event.preventDefault(); close(); }
        else if (input.value) { event.preventDefault(); input.value = ""; items = []; status.textContent = ""; }
      }
    });
    input.addEventListener("blur", function () { setTimeout(close, 0); });
    input.addEventListener("focus", function () { if (items.length && input.value.trim()) { open(); } });
    list.addEventListener("mousedown", function (event) { event.preventDefault(); });
    list.addEventListener("click", function (event) {
      var target = event.target.closest("[role=option]");
      if (target) { choose(Array.prototype.indexOf.call(list.children, target)); }
    });
  }

  document.querySelectorAll("[data-place-search]").forEach(setup);
}());
