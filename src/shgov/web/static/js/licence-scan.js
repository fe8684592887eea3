// Read a licence QR code with the camera or from a picture (jsQR decodes it in the browser; nothing
// is uploaded) and verify it at once.
(function () {
  "use strict";
  var form = document.getElementById("verify-form");
  var field = document.getElementById("code");
  var message = document.querySelector("[data-scan-message]");
  var video = document.querySelector("[data-scan-video]");
  var cameraButton = document.querySelector("[data-scan-camera]");
  var imageInput = document.querySelector("[data-scan-image]");
  if (!form || !field || typeof window.jsQR !== "function") {
    return;
  }
  var canvas = document.createElement("canvas");
  var context = canvas.getContext("2d", { willReadFrequently: true });

  function decode(source, width, height) {
    canvas.width = width;
    canvas.height = height;
    context.drawImage(source, 0, 0, width, height);
    var pixels = context.getImageData(0, 0, width, height);
    var found = window.jsQR(pixels.data, width, height);
    return found ? found.data : null;
  }

  function use(code) {
    field.value = code;
    form.submit();
  }

  imageInput.addEventListener("change", function () {
    var file = imageInput.files && imageInput.files[0];
    if (!file) {
      return;
    }
    var image = new Image();
    image.onload = function () {
      var code = decode(image, image.naturalWidth, image.naturalHeight);
      URL.revokeObjectURL(image.src);
      if (code) {
        use(code);
      } else {
        message.textContent = message.getAttribute("data-none");
      }
    };
    image.src = URL.createObjectURL(file);
  });

  if (navigator.mediaDevices && navigator.mediaDevices.getUserMedia) {
    cameraButton.hidden = false;
    cameraButton.addEventListener("click", function () {
      navigator.mediaDevices
        .getUserMedia({ video: { facingMode: "environment" } })
        .then(function (stream) {
          video.srcObject = stream;
          video.hidden = false;
          video.play();
          function tick() {
            if (video.readyState === video.HAVE_ENOUGH_DATA) {
              var code = decode(video, video.videoWidth, video.videoHeight);
              if (code) {
                stream.getTracks().forEach(function (t) { t.stop(); });
                use(code);
                return;
              }
            }
            window.requestAnimationFrame(tick);
          }
          window.requestAnimationFrame(tick);
        })
        .catch(function () {
          message.textContent = message.getAttribute("data-no-camera");
        });
    });
  }
})();
