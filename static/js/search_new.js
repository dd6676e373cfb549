// New-search page: the preset buttons fill the form (values from the page's json_script).
(function () {
  var holder = document.getElementById("presets");
  if (!holder) return;
  var PRESETS = JSON.parse(holder.textContent);
  document.querySelectorAll("button.preset").forEach(function (button) {
    button.addEventListener("click", function () {
      var values = PRESETS[button.dataset.preset];
      Object.keys(values).forEach(function (key) {
        var input = document.getElementById("id_" + key);
        if (input) input.value = values[key];
      });
    });
  });
})();
