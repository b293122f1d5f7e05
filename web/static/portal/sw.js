// The portal's service worker: shows Burgernet's push messages and opens them when tapped.
"use strict";

self.addEventListener("push", (event) => {
  let data = {};
  try {
    data = event.data ? event.data.json() : {};
  } catch (error) {
    data = {body: event.data ? event.data.text() : ""};
  }
  const options = {
    body: data.body || "",
    lang: data.lang || "nl",
    data: {url: data.url || self.registration.scope},
    requireInteraction: data.priority === "urgent",
  };
  if (data.action_id) options.tag = "burgernet-action-" + data.action_id;
  event.waitUntil(self.registration.showNotification(data.title || "Burgernet", options));
});

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  // Only pages of this site: a message cannot send the participant elsewhere.
  let target = new URL(self.registration.scope);
  try {
    const asked = new URL(event.notification.data.url, self.location.origin);
    if (asked.origin === self.location.origin) target = asked;
  } catch (error) { /* keep the portal */ }
  event.waitUntil(self.clients.openWindow(target.href));
});
