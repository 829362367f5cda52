// The page's alert (`node`, role="alert"): a title and its detail, or nothing.

export function showAlert(node, title, detail) {
  node.replaceChildren();
  const strong = document.createElement("strong");
  strong.textContent = title;
  const span = document.createElement("span");
  span.className = "alert-detail";
  span.textContent = detail;
  node.append(strong, span);
  node.hidden = false;
}

export function hideAlert(node) {
  node.hidden = true;
  node.replaceChildren();
}
