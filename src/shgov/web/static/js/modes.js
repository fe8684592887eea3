// Elder and kiosk displays: read the page aloud where the browser can speak, and sign a kiosk's
// visitor out after a spell without touches, so the next person never sees their data.
(function () {
  "use strict";
  var body = document.body;
  var speak = document.querySelector("[data-read-aloud]");
  if (speak && "speechSynthesis" in window) {
    speak.hidden = false;
    speak.addEventListener("click", function () {
      var main = document.getElementById("main");
      var text = main ? main.innerText : document.body.innerText;
      var utterance = new SpeechSynthesisUtterance(text);
      utterance.lang = document.documentElement.lang || "zh-CN";
      window.speechSynthesis.cancel();
      window.speechSynthesis.speak(utterance);
    });
  }
  var seconds = parseInt(body.getAttribute("data-idle-seconds") || "0", 10);
  if (!seconds) {
    return;
  }
  var timer = null;
  function leave() {
    var logout = document.getElementById("logout-form");
    if (logout) {
      logout.submit();
    } else if (window.location.pathname !== "/kiosk") {
      window.location.assign("/kiosk");
    } else {
      restart();
    }
  }
  function restart() {
    if (timer) {
      window.clearTimeout(timer);
    }
    timer = window.setTimeout(leave, seconds * 1000);
  }
  ["pointerdown", "keydown", "touchstart", "input"].forEach(function (name) {
    document.addEventListener(name, restart, { passive: true });
  });
  restart();
})();
