// Pick a model given as ?model=URL, else the default one.
const wanted = new URLSearchParams(location.search).get('model');
const widget = document.querySelector('bit50-classifier');
if (wanted) widget.setAttribute('model', wanted);
document.addEventListener('prediction', (e) => {
  document.getElementById('log').textContent =
    `prediction: ${e.detail.name} -> ${e.detail.top.map((p) => `${p.label} ${(100 * p.prob).toFixed(1)}%`).join(', ')}`;
});
