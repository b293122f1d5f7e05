// App notifications on the participant's page: register the service worker, subscribe with
// the server's VAPID key, and hand the subscription to the portal (CSRF header included).
(function () {
  "use strict";
  const box = document.getElementById("push");
  if (!box) return;
  const status = document.getElementById("push-status");
  const button = document.getElementById("push-enable");
  const csrf = document.querySelector('meta[name="csrf-token"]').content;

  function say(text, failed) {
    status.textContent = text;
    status.classList.toggle("error", Boolean(failed));
  }

  function keyBytes(base64url) {
    const padded = (base64url + "===".slice((base64url.length + 3) % 4))
      .replace(/-/g, "+").replace(/_/g, "/");
    return Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
  }

  function supported() {
    return "serviceWorker" in navigator && "PushManager" in window && "Notification" in window;
  }

  async function registration() {
    await navigator.serviceWorker.register(box.dataset.workerUrl, {scope: box.dataset.scope});
    return navigator.serviceWorker.ready;
  }

  async function enable() {
    if (!supported()) return say(box.dataset.msgUnsupported, true);
    if (await Notification.requestPermission() !== "granted") {
      return say(box.dataset.msgDenied, true);
    }
    say(box.dataset.msgBusy);
    const reg = await registration();
    const subscription = await reg.pushManager.getSubscription() ||
      await reg.pushManager.subscribe({
        userVisibleOnly: true, applicationServerKey: keyBytes(box.dataset.vapidKey)});
    const response = await fetch(box.dataset.subscribeUrl, {
      method: "POST", credentials: "same-origin",
      headers: {"Content-Type": "application/json", "X-CSRFToken": csrf},
      body: JSON.stringify({subscription: subscription.toJSON(),
                            label: navigator.userAgent.slice(0, 160)})});
    const answer = await response.json().catch(() => ({}));
    if (!response.ok || !answer.ok) return say(answer.error || box.dataset.msgFailed, true);
    say(answer.message);
    window.location.reload();
  }

  if (button) {
    button.addEventListener("click", () => {
      button.disabled = true;
      enable().catch(() => say(box.dataset.msgFailed, true)).finally(() => {
        button.disabled = false;
      });
    });
  }

  // Removing this browser's own device also ends its subscription at the push service.
  document.querySelectorAll("form.remove-device").forEach((form) => {
    form.addEventListener("submit", async (event) => {
      if (!supported() || form.dataset.done) return;
      event.preventDefault();
      try {
        const reg = await navigator.serviceWorker.getRegistration(box.dataset.scope);
        const subscription = reg && await reg.pushManager.getSubscription();
        if (subscription && subscription.endpoint === form.dataset.endpoint) {
          await subscription.unsubscribe();
        }
      } finally {
        form.dataset.done = "1";
        form.submit();
      }
    });
  });
})();
