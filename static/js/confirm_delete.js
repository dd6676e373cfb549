// Delete page: the button says the deletion is under way and cannot be pressed twice.
(function () {
  var form = document.getElementById("delete-form");
  if (!form) return;
  form.addEventListener("submit", function () {
    var button = document.getElementById("confirm-delete");
    button.disabled = true;
    button.textContent = "Deleting…";
  });
})();
