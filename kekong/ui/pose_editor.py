"""The pose editor: an OpenPose skeleton on a canvas whose joints can be dragged.

Gradio has no pose component, so this is a `gr.HTML` whose value is the OpenPose JSON text: the
browser draws it on a canvas and, when a joint is dropped, writes the moved pose back to the
value and fires `change`. Adding and removing people, import and export are plain Python on
the same JSON, so what the editor holds is always a valid OpenPose document.
"""

from __future__ import annotations

import json
from typing import Any

from kekong.detect.openpose import render_json
from kekong.detect.openpose.keypoints import PoseResult
from kekong.detect.openpose.render import COLORS as RENDER_COLORS
from kekong.detect.openpose.render import LIMBS as RENDER_LIMBS
from kekong.errors import ParameterError

# A standing figure in OpenPose's 18-point body order, as fractions of the canvas.
_STANDING = [(0.50, 0.16), (0.50, 0.28), (0.40, 0.28), (0.37, 0.43), (0.36, 0.57), (0.60, 0.28), (0.63, 0.43),
             (0.64, 0.57), (0.44, 0.56), (0.44, 0.73), (0.44, 0.90), (0.56, 0.56), (0.56, 0.73), (0.56, 0.90),
             (0.48, 0.14), (0.52, 0.14), (0.46, 0.15), (0.54, 0.15)]

_SHIFTS = (0.0, -0.25, 0.25, -0.12, 0.12)  # where each added figure stands, across the canvas

# The renderer's limbs and colours (one declaration), as the editor's canvas takes them: 0-based, CSS hex.
LIMBS = [[a - 1, b - 1] for a, b in RENDER_LIMBS]
COLORS = ["#{:02x}{:02x}{:02x}".format(*rgb) for rgb in RENDER_COLORS]


def empty_pose(width: int = 512, height: int = 512) -> str:
    return json.dumps({"people": [], "canvas_width": width, "canvas_height": height})


def parse(text: str | None) -> dict[str, Any]:
    """The editor's JSON, checked as OpenPose (the renderer's own reader decides)."""
    if not text:
        return json.loads(empty_pose())
    try:
        data = json.loads(text) if isinstance(text, str) else text
    except ValueError as error:
        raise ParameterError(f"pose JSON is malformed: {error}") from None
    if isinstance(data, list) and len(data) == 1:
        data = data[0]
    PoseResult.from_json(data)  # raises with what is wrong
    return data


def add_person(text: str | None) -> str:
    """Another standing figure, shifted so it does not cover the last one."""
    pose = parse(text)
    width, height = pose.get("canvas_width", 512), pose.get("canvas_height", 512)
    shift = _SHIFTS[len(pose["people"]) % len(_SHIFTS)]
    points = []
    for x, y in _STANDING:
        points += [round((x + shift) * width, 1), round(y * height, 1), 1.0]
    pose["people"].append({"pose_keypoints_2d": points})
    return json.dumps(pose)


def remove_person(text: str | None) -> str:
    pose = parse(text)
    if pose["people"]:
        pose["people"].pop()
    return json.dumps(pose)


def render(text: str | None):
    """The control map the pose gives (uint8 HxWx3), as /controlnet/render_openpose_json makes it."""
    return render_json(parse(text))


TEMPLATE = """<div class="kekong-pose"><canvas data-pose="" width="512" height="512"></canvas>
<div class="kekong-pose-hint">Drag a joint to move it.</div></div>"""

CSS = """.kekong-pose canvas { width: 100%; max-width: 512px; background: #000; cursor: crosshair;
  touch-action: none; display: block; }
.kekong-pose-hint { font-size: 0.85em; opacity: 0.7; }"""

JS = """
const LIMBS = __LIMBS__;
const COLORS = __COLORS__;
let drag = null;
const canvas = () => element.querySelector('canvas');
const current = () => {
  try { const p = JSON.parse(props.value || '{}'); p.people = p.people || []; return p; }
  catch (e) { return {people: [], canvas_width: 512, canvas_height: 512}; }
};
function draw(pose) {
  const c = canvas(); if (!c) return;
  c.width = pose.canvas_width || 512; c.height = pose.canvas_height || 512;
  const g = c.getContext('2d');
  g.fillStyle = '#000'; g.fillRect(0, 0, c.width, c.height);
  const r = Math.max(3, c.width / 120);
  for (const person of pose.people) {
    const k = person.pose_keypoints_2d || [];
    LIMBS.forEach(([a, b], i) => {
      if (k[3 * a + 2] > 0 && k[3 * b + 2] > 0) {
        g.strokeStyle = COLORS[i]; g.lineWidth = r * 1.3; g.globalAlpha = 0.6;
        g.beginPath(); g.moveTo(k[3 * a], k[3 * a + 1]); g.lineTo(k[3 * b], k[3 * b + 1]); g.stroke();
      }
    });
    g.globalAlpha = 1;
    for (let i = 0; i < 18; i++) {
      if (k[3 * i + 2] > 0) {
        g.fillStyle = COLORS[i]; g.beginPath(); g.arc(k[3 * i], k[3 * i + 1], r, 0, 2 * Math.PI); g.fill();
      }
    }
  }
  c.dataset.pose = JSON.stringify(pose);
}
function at(ev) {
  const c = canvas(); const box = c.getBoundingClientRect();
  return [(ev.clientX - box.left) * c.width / box.width, (ev.clientY - box.top) * c.height / box.height];
}
element.addEventListener('pointerdown', (ev) => {
  if (ev.target.tagName !== 'CANVAS') return;
  const pose = current(); const [x, y] = at(ev);
  let best = null, bestDistance = Math.max(12, pose.canvas_width / 25);
  pose.people.forEach((person, p) => {
    const k = person.pose_keypoints_2d || [];
    for (let i = 0; i < 18; i++) {
      if (!(k[3 * i + 2] > 0)) continue;
      const d = Math.hypot(k[3 * i] - x, k[3 * i + 1] - y);
      if (d < bestDistance) { bestDistance = d; best = [p, i]; }
    }
  });
  if (best) { drag = {pose, person: best[0], point: best[1]}; ev.preventDefault(); }
});
window.addEventListener('pointermove', (ev) => {
  if (!drag) return;
  const [x, y] = at(ev); const k = drag.pose.people[drag.person].pose_keypoints_2d;
  k[3 * drag.point] = Math.round(Math.min(Math.max(x, 0), drag.pose.canvas_width) * 10) / 10;
  k[3 * drag.point + 1] = Math.round(Math.min(Math.max(y, 0), drag.pose.canvas_height) * 10) / 10;
  draw(drag.pose);
});
window.addEventListener('pointerup', () => {
  if (!drag) return;
  const moved = drag.pose; drag = null;
  props.value = JSON.stringify(moved);
  trigger('change');
});
watch('value', () => draw(current()));
draw(current());
""".replace("__LIMBS__", json.dumps(LIMBS)).replace("__COLORS__", json.dumps(COLORS))


def component(gr: Any, **kwargs: Any) -> Any:
    """The editor as a Gradio component (value: OpenPose JSON text)."""
    return gr.HTML(value=empty_pose(), html_template=TEMPLATE, css_template=CSS, js_on_load=JS,
                   elem_id="pose-editor", **kwargs)
