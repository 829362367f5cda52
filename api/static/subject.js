// The detected subject's box (result.subject, in the original's pixels) drawn over the
// original as it is shown (`box` over `img`); hidden without a subject or a picture.

export function drawSubject(box, img, result) {
  const subject = result && result.subject;
  if (!subject || !img.naturalWidth || img.hidden) {
    box.hidden = true;
    return;
  }
  const stage = img.parentElement.getBoundingClientRect();
  const shown = img.getBoundingClientRect();
  const sx = shown.width / img.naturalWidth;
  const sy = shown.height / img.naturalHeight;
  box.style.left = `${shown.left - stage.left + subject.left * sx}px`;
  box.style.top = `${shown.top - stage.top + subject.top * sy}px`;
  box.style.width = `${subject.width * sx}px`;
  box.style.height = `${subject.height * sy}px`;
  box.dataset.box = [subject.left, subject.top, subject.width, subject.height].join(",");
  box.title = `Subject: ${subject.width}×${subject.height} px, ${Math.round(subject.share * 100)}% of the image`;
  box.hidden = false;
}
