/* The new-action form: "national" only for an AMBER Alert, and a photo over 5 MB refused
   before it is uploaded (the server checks both again). */
(function () {
  "use strict";
  var kind = document.getElementById("kind");
  var national = document.getElementById("national");
  var photo = document.getElementById("photo");

  function nationalAllowed() {
    var allowed = kind.value === "amber";
    national.disabled = !allowed;
    if (!allowed && national.checked) { national.checked = false; }
    national.dispatchEvent(new Event("change"));
  }

  if (kind && national) {
    kind.addEventListener("change", nationalAllowed);
    nationalAllowed();
  }
  if (photo) {
    photo.addEventListener("change", function () {
      var file = photo.files && photo.files[0];
      photo.setCustomValidity("");
      var old = document.getElementById("photo-size-error");
      if (old) { old.remove(); }
      if (file && file.size > Number(photo.dataset.maxBytes)) {
        var message = document.createElement("span");
        message.className = "error";
        message.id = "photo-size-error";
        message.setAttribute("role", "alert");
        message.textContent = photo.dataset.tooLarge;
        photo.insertAdjacentElement("afterend", message);
        photo.value = "";
      }
    });
  }
}());
