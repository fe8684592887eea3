// "Use my current location": fills the latitude and longitude fields from the device (WGS-84).
(function () {
  "use strict";
  var button = document.querySelector("[data-locate]");
  if (!button) { return; }
  var status = document.querySelector("[data-locate-status]");
  if (!navigator.geolocation) { button.hidden = true; return; }
  button.addEventListener("click", function () {
    status.textContent = "…";
    navigator.geolocation.getCurrentPosition(function (position) {
      document.getElementById("lat").value = position.coords.latitude.toFixed(6);
      document.getElementById("lng").value = position.coords.longitude.toFixed(6);
      status.textContent = "✓ " + position.coords.latitude.toFixed(5) + ", " + position.coords.longitude.toFixed(5);
      document.getElementById("lat").dispatchEvent(new Event("change", { bubbles: true }));
    }, function (error) {
      status.textContent = error.message;
    }, { enableHighAccuracy: true, timeout: 15000 });
  });
})();
